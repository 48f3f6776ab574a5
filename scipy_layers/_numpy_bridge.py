"""Moving tensors to numpy and back, and the autograd plumbing shared by the layers that
compute with numpy/scipy: what forward hands to backward, and the opaque numpy gradient
step. (The helpers of the layers' vmap and jvp rules: _func_rules.)

How the layers' Functions are built, and why:
- ``forward`` takes no ctx and ``setup_context`` fills it (the style torch.func needs).
  What forward computed for backward (numpy arrays, kernel state) goes into a
  ``_forward_state.ForwardState`` passed as forward's last argument: torch.func lets
  setup_context keep only what the inputs and output hold. The state is a cache: a backward that finds
  none (e.g. under ``vmap(grad(f))``, where forward ran on a folded batch) recomputes it.
- Every staticmethod is hidden from ``torch.compile`` (``_torch_protocols.opaque_to_compile``):
  Dynamo would otherwise trace into numpy code and into ctx bookkeeping
  (weak-reference callbacks, the scratch workspace), installing guards on module state
  that the same frame then changes ("Guard failed on the same frame it was created"). A call
  to a layer is a graph break; the code around it still compiles.
- Gradients are computed by :class:`NumpyStep`, an opaque step of its own whose
  derivative is a clear error (double backward) and whose vmap rule is a loop, so that
  ``torch.func.jacrev`` (vmap over backward) works. Plain ``.backward()`` calls the
  numpy code directly (no extra node) when nothing needs the step.
- Forward mode (``jvp``): the convolutions are linear in each argument, so their
  tangent is the layer itself applied to the tangents; the FFT layer's goes through a
  :class:`NumpyStep`.
"""
from __future__ import annotations

import numpy as np
import torch
from torch.autograd import Function

from ._autocast import any_autocast, autocast_devices, in_float32
from ._checks import LayerTypeError, PLAIN_TENSORS, raise_out_of_memory
from ._func_rules import check_not_legacy_batched, vmap_by_loop, vmap_rule
from ._numpy_quiet import numpy_quiet
from ._torch_protocols import (backward_jit_trace_error, check_not_tracing,
                               jit_trace_error, opaque_to_compile, torch_function_layer)

_unwrap_if_dead = torch._C._functorch.unwrap_if_dead
_has_torch_function = torch._C._has_torch_function  # (also True under a TorchFunctionMode)
_functorch_active = torch._C._are_functorch_transforms_active
_is_grad_enabled = torch._C.is_grad_enabled
_is_jit_tracing = torch._C._is_tracing  # (torch.jit.is_tracing less its Python frame)


def apply_positional(cls, *args):
    """``cls.apply(*args)`` for a Function whose every forward argument is in ``args``.

    torch's ``Function.apply`` binds each call's arguments to forward's signature
    (inspect, pure Python: ~20 us, the largest fixed cost of a 16x16 call) to fill in
    defaults that are all given here; without functorch transforms it then unwraps dead
    functorch wrappers and calls the C apply, which this does directly. Under a transform
    (vmap, grad, ...) torch's own path runs. Under ``torch.autocast``: see
    :func:`in_float32`. Under ``make_fx`` and non-strict ``torch.export``: see
    :func:`check_not_tracing`. Under ``torch.jit.trace``: see :func:`traced_arguments`
    (``torch.onnx.export``: see ``_torch_protocols.refuse_onnx``).

    A tensor subclass with ``__torch_function__`` (or a TorchFunctionMode) gets the call
    through that protocol, as native ops give it theirs (:func:`torch_function_layer`).
    ``cls.TENSOR_ARGUMENTS``: how many leading arguments may be tensors, the only ones
    tested (plain tensors, Parameters and None: one C call, ~0.1 us; a str or an object
    there would cost a failed attribute lookup, ~0.3 us each); ``cls.PUBLIC_ARGUMENTS``:
    how many leading arguments the handler gets. The rest (a ForwardState) stays
    out: a handler that calls ``cls.apply`` twice (an ensemble, a probe) makes a state
    per call, where one shared state gave the first call's backward the second's
    values.

    One frame on the common path, its loop inline: inside a forward+backward each
    Python frame costs ~0.5 us, several times its cost in a hot loop (the numpy kernels
    between two calls evict the interpreter's code from the CPU's caches): the helper
    and list comprehension this once called cost ~2.4 us of a 16x16 call."""
    count = cls.TENSOR_ARGUMENTS
    if _has_torch_function(args[:count]):
        return torch_function_layer(cls.apply, args[:count], *args[:cls.PUBLIC_ARGUMENTS])
    if _is_jit_tracing():
        args = traced_arguments(cls, args)
    check_not_tracing()
    if any_autocast():
        devices = autocast_devices(args)
        if devices:  # (again, with autocast off on those devices: devices is then empty)
            return in_float32(devices, apply_positional, cls, *args)
    try:  # (free where nothing is raised)
        if _functorch_active():
            check_not_functionalized(cls.__name__, cls.LAYER, cls.NATIVE_TWIN)
            return Function.apply.__func__(cls, *args)
        # the C apply of torch._C._FunctionBase, bound to cls, with dead functorch wrappers
        # unwrapped as torch's unwrap_dead_wrappers does
        args = list(args)
        for index in range(count):
            if isinstance(args[index], torch.Tensor):
                args[index] = _unwrap_if_dead(args[index])
        return super(Function, cls).apply(*args)
    except MemoryError as error:
        raise_out_of_memory(cls.LAYER, args[:count], error)


def traced_arguments(cls, args):
    """``args`` as ``torch.jit.trace`` may record them: without the per-call ForwardState
    (the arguments after ``cls.PUBLIC_ARGUMENTS``), which the trace would hold as a
    constant shared by every later call of the traced function (a backward after a second
    call read that call's spectrum or windows: wrong gradients, hostile pass 94). The
    trace records None, and each call of the traced function calls ``cls.apply`` with
    it, which makes that call's own state. Refused: a Function whose public arguments
    are per call too (``cls.TRACEABLE`` False: the batched conv's geometry, fixed to one
    input size)."""
    if not cls.TRACEABLE:
        raise jit_trace_error(cls.LAYER, cls.NATIVE_TWIN)
    extra = len(args) - cls.PUBLIC_ARGUMENTS
    return (*args[:cls.PUBLIC_ARGUMENTS], *(None,) * extra) if extra > 0 else args


@numpy_quiet
def _computed(compute, state, tensors):
    return tuple(compute(state, *tensors))


def to_numpy(tensor: torch.Tensor) -> np.ndarray:
    """A numpy view (CPU tensors) or copy (other devices) of ``tensor``, without grad."""
    if type(tensor) in PLAIN_TENSORS:
        # force=True: detach, cpu, resolve_conj and resolve_neg (a lazily negated view,
        # torch._neg_view: numpy needs the values) in one C call; a view where none
        # applies. (Each Python-level step costs 2-5 us inside an autograd call.)
        try:  # (free where nothing is raised)
            return tensor.numpy(force=True)
        except TypeError as error:
            raise not_dense_error(tensor, error) from error
    # a subclass (its numpy() may not take force, its __torch_function__ may watch each step)
    tensor = tensor.detach()
    if tensor.is_neg():
        tensor = tensor.resolve_neg()
    try:
        return tensor.numpy() if tensor.is_cpu else tensor.cpu().numpy()
    except RuntimeError as error:  # (torch's own words name no layer and no way out)
        raise LayerTypeError(
            f"a scipy_layers layer reads its tensors' values with numpy, and this "
            f"{type(tensor).__name__} gives none ({error}): a tensor subclass that wraps "
            f"other tensors or holds no data (a __torch_dispatch__ subclass such as "
            f"MaskedTensor; the fake and functional tensors of tracing) cannot run a "
            f"numpy layer. Pass a plain tensor (for example the wrapped one), or use the "
            f"native twin (native_conv2d, native_fft_abs, torch.nn.functional.conv2d)"
        ) from error


def not_dense_error(tensor: torch.Tensor, error: TypeError) -> LayerTypeError:
    """numpy's refusal of a sparse tensor, named. The layers check their arguments'
    layouts, so it is a gradient autograd handed to a backward: torch.autograd.grad's
    grad_outputs, ``.backward(gradient=...)`` and a vjp function take a sparse COO one for
    a dense output, which native torch's backward refuses too (a NotImplementedError, a
    RuntimeError; numpy's TypeError alone was not one, hostile pass 147)."""
    return LayerTypeError(
        f"a scipy_layers layer's backward reads the gradient it is given (grad_output) "
        f"with numpy, and this one has layout {tensor.layout} ({error}): pass a dense "
        f"gradient (call .to_dense() on it), as native torch's backward needs too")


def to_tensor(array: np.ndarray, like: torch.Tensor) -> torch.Tensor:
    """``array`` as a (C-contiguous) tensor with the dtype and device of ``like``, of its
    shape: a 0-d array stays 0-d (np.ascontiguousarray would make it 1-d, so a 0-d
    bias's gradient came back as shape (1,) for autograd to reshape)."""
    if not (type(array) is np.ndarray and array.flags.c_contiguous):
        array = np.ascontiguousarray(array)  # (numpy scalars too: 1-d, as before)
    tensor = torch.from_numpy(array)
    if like.is_cpu and tensor.dtype == like.dtype:  # (tensor_like's common case, inline:
        return tensor                               # a frame is ~0.5 us inside autograd)
    return tensor_like(tensor, like)


def tensor_like(tensor: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``tensor`` with the dtype and device of ``like``; a dense tensor keeps its strides."""
    if like.is_cpu and tensor.dtype == like.dtype:
        return tensor  # the common case: no .to() call
    return tensor.to(device=like.device, dtype=like.dtype)


def shape_only(*tensors: torch.Tensor) -> bool:
    """True where a layer must not (meta tensors: no data) or need not (no elements)
    run numpy, and answers from shapes alone."""
    for tensor in tensors:  # (a loop: a generator's frame costs more than the tests)
        if tensor is not None and (tensor.is_meta or tensor.numel() == 0):
            return True
    return False


_FUNCTIONALIZE = torch._C._functorch.TransformType.Functionalize


def check_not_functionalized(name: str, layer: str | None = None,
                             native_twin: str | None = None) -> None:
    """A clear error under ``torch.func.functionalize`` (at any level of the transform
    stack): torch has no functionalize rule for a custom Function and says only "NYI:
    Functionalize rule for custom_function_call". ``name``: the Function's; ``layer``
    and ``native_twin``: the public layer and what to use instead (None: the Function's
    gradient step, NumpyStep). The message is built only when raised: this runs on
    every call under a transform (a vmap of the single-channel conv calls it per entry)."""
    for interpreter in torch._C._functorch.get_interpreter_stack() or ():
        if interpreter.key() == _FUNCTIONALIZE:
            what = f"the backward of {name}" if layer is None else f"{name} ({layer})"
            way_out = ("the layer's native twin" if native_twin is None
                       else f"its native twin, {native_twin}")
            raise RuntimeError(
                f"{what} cannot run under torch.func.functionalize: it computes with "
                f"numpy/scipy, which a functionalized program cannot hold (torch has no "
                f"functionalize rule for a custom autograd Function). Call the layer "
                f"outside functionalize, or functionalize {way_out}")


def double_backward_error(name: str) -> RuntimeError:
    return RuntimeError(
        f"{name} does not support double backward: its backward runs in numpy/scipy, "
        f"outside autograd, so a second derivative would be silently wrong. Use the "
        f"native torch twin for higher-order gradients. (torch.autograd.functional.jvp "
        f"and hvp compute through double backward; torch.func.jvp computes a "
        f"Jacobian-vector product without it, where the layer has a forward-mode rule.)")


def forward_mode_error(name: str) -> RuntimeError:
    return RuntimeError(
        f"{name} does not support forward-mode AD (torch.func.jvp, jacfwd, "
        f"torch.autograd.forward_ad): it has only a reverse-mode rule. Use torch.func.vjp, "
        f"jacrev or torch.autograd.grad instead.")


class NumpyStep(Function):
    """``compute(state, *tensors)`` (numpy/scipy code returning a tuple of tensors or
    None) as one autograd node: differentiating it raises :func:`double_backward_error`,
    and vmap runs it once per batch entry (``state`` belongs to the unbatched call, so
    each entry gets None and recomputes what it needs)."""

    @staticmethod
    @opaque_to_compile
    def forward(name, compute, state, *tensors):
        return _computed(compute, state, tensors)

    @staticmethod
    @opaque_to_compile
    def setup_context(ctx, inputs, output):
        ctx.name = inputs[0]

    @staticmethod
    @opaque_to_compile
    def backward(ctx, *grad_outputs):
        raise double_backward_error(ctx.name)

    @staticmethod
    @opaque_to_compile
    def jvp(ctx, *tangents):  # forward-over-reverse (e.g. torch.func.hessian)
        raise double_backward_error(ctx.name)

    @staticmethod
    @opaque_to_compile
    @vmap_rule
    def vmap(info, in_dims, name, compute, state, *tensors):
        return vmap_by_loop(lambda *args: NumpyStep.apply(name, compute, None, *args),
                            info, in_dims[3:], tensors)


@numpy_quiet  # (for the direct call: one frame fewer than through _computed)
def numpy_gradients(name: str, compute, state, *tensors):
    """``compute(state, *tensors)``: directly in a plain backward, through
    :class:`NumpyStep` where a graph of the gradients is being built (create_graph) or a
    torch.func transform is active (the step unwraps, vmaps and guards it)."""
    check_not_legacy_batched(name, *tensors)
    check_not_tracing()  # (make_fx of a backward would record its result as a constant)
    if _is_jit_tracing():  # (and so would torch.jit.trace; inline: ~0.2 us a call)
        raise backward_jit_trace_error(name)
    # (the one test of a direct call: FFTAbsFunction.backward hands its spectrum over
    # to be overwritten by the same test)
    try:  # (free where nothing is raised)
        if computes_directly():
            return tuple(compute(state, *tensors))
        if _functorch_active():  # (torch's message would be "NYI: ... custom_function_call")
            check_not_functionalized(name)
        return NumpyStep.apply(name, compute, state, *tensors)
    except MemoryError as error:
        raise_out_of_memory(f"the backward of {name}", tensors, error)


def computes_directly() -> bool:
    """True where :func:`numpy_gradients` calls its compute directly, once (a plain
    backward: no graph of the gradients built, no torch.func transform active), so a
    backward may consume what its forward left (NumpyStep may run it again on the same
    state: vmap, a vjp function called twice)."""
    return not _is_grad_enabled() and not _functorch_active()
