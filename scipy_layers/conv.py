"""The tutorial's single-channel cross-correlation layer on scipy.signal, and its
native twin on ``torch.nn.functional.conv2d``.

Both compute ``y = correlate2d(input, filter, 'valid') + bias`` for a 2-D input
(H, W), a 2-D filter (kH, kW) with kH <= H and kW <= W, and a one-element bias
(shape (), (1,) or (1, 1), as the tutorial's ``ScipyConv2d`` uses), giving
y of shape (H - kH + 1, W - kW + 1).

The layer's argument checks live in _conv_args, and the rule that picks the method
"auto" runs (:func:`choose_method`, with the measured thresholds behind it) in _conv_rule.
"""
from __future__ import annotations

import functools
import operator

import numpy as np
import torch
import torch.nn.functional as F
from torch.autograd import Function

from . import _cupy_conv, gpu
from ._autocast import check_twins_arguments
from ._checks import check_method_name, LayerValueError
# (check_each_conv_argument, dtype_name, is_float64 and shift_max_taps stay importable
# from here, as before they moved; the constants that the rule and the checks read do
# not: read and patch those in _conv_rule and _conv_args)
from ._conv_args import _plainly_valid, check_conv_arguments, check_each_conv_argument
from ._conv_rule import choose_method, dtype_name, is_float64, shift_max_taps  # noqa: F401
from ._nchw_args import _is_int, LARGEST_GEOMETRY_INT
from ._forward_state import (as_forward_saved, check_forward_state, holders, new_forward_state,
                             remember_inputs, state_for)
from ._func_rules import check_not_legacy_batched, linear_tangent, vmap_by_loop, vmap_rule
from ._numpy_bridge import apply_positional, numpy_gradients, to_numpy, to_tensor
from ._numpy_quiet import numpy_quiet
from ._torch_protocols import (graph_break_here, never_compiled, opaque_to_compile,
                               own_frame_never_compiled, refuse_onnx, refuse_scripting,
                               torch_function_layer)
from ._fft_conv import FFTState
from ._workspace import is_large
from .conv_methods import METHODS

AUTO = "auto"
ACCEPTED_METHODS = (AUTO, *METHODS, gpu.CUPY)

_has_torch_function_variadic = torch._C._has_torch_function_variadic


def check_method(method) -> None:
    check_method_name(method, ACCEPTED_METHODS)


class ScipyConv2dFunction(Function):
    """Valid 2-D cross-correlation plus bias on numpy/scipy, with exact gradients.

    ``method`` picks the kernels (see :mod:`scipy_layers.conv_methods`): "direct"
    (scipy.signal correlate2d / convolve2d, the tutorial's), "shift" (shift-and-add),
    "fft" (scipy.fft), "cupy" (CUDA tensors on CuPy, see :mod:`scipy_layers.gpu`) or
    "auto" (CuPy for CUDA tensors where usable, else :func:`choose_method`). Each
    gradient is computed only when asked for and kept in the input dtype (the tutorial
    cast them to float32, which broke float64 modules). Meta tensors give a result of the
    right shape without touching numpy. vmap runs one call per batch entry.
    """

    # apply_positional: the leading arguments that may be tensors; those a
    # __torch_function__ handler gets (all but the ForwardState)
    TENSOR_ARGUMENTS, PUBLIC_ARGUMENTS = 3, 4
    # (for errors that send the user to the layer's native twin)
    LAYER, NATIVE_TWIN = "scipy_conv2d / ScipyConv2d", "native_conv2d / NativeConv2d"
    NAME_IN_ERRORS = f"ScipyConv2dFunction ({LAYER})"  # (its gradient step's errors)
    TRACEABLE = True  # (torch.jit.trace: _numpy_bridge.traced_arguments)
    symbolic = refuse_onnx(LAYER, NATIVE_TWIN)  # (torch.onnx.export: refused)

    @classmethod
    @opaque_to_compile
    def apply(cls, input, filter, bias=None, method=AUTO, saved=None):
        # ``saved``: internal; torch.func passes the one made by the outermost call down.
        if saved is None:
            saved = new_forward_state()
        else:
            check_forward_state(cls, saved)
        return apply_positional(cls, input, filter, bias, method, saved)

    @staticmethod
    @opaque_to_compile
    @numpy_quiet
    def forward(input, filter, bias=None, method=AUTO, saved=None):
        if not (type(method) is str and method in ACCEPTED_METHODS):  # (no frame if so)
            check_method(method)  # (which names what is accepted)
        check_conv_arguments(input, filter, bias)
        if input.is_meta:  # (empty tensors were refused above, as torch refuses them)
            return input.new_empty(input.shape[0] - filter.shape[0] + 1,
                                   input.shape[1] - filter.shape[1] + 1)
        backend = gpu.resolve_backend(input, method)
        if backend == gpu.CUPY:
            result, state = _cupy_conv.conv_forward(input, filter, bias)
        else:
            kernels = METHODS[choose_method(input.shape, filter.shape, input.dtype) if method == AUTO
                              else method]
            x, w = to_numpy(input), to_numpy(filter)
            y, kernel_state = kernels.forward(x, w)
            if bias is not None:
                y += bias.item()  # exact in either dtype; y is always a fresh array
            result = to_tensor(y, like=input)
            state = (kernels, x, w, kernel_state)  # the numpy views: no second conversion
        if saved is not None:
            saved.value = (backend, state)
            # fft's state holds complex128 spectra of the padded input, ~2x its bytes
            # in float32: judged by the input alone, a 250x256 float32 input (under
            # 256 KiB) kept ~1 MiB of them with the graph (hostile pass 157).
            if is_large(input) or is_large(filter) or isinstance(state[-1], FFTState):
                # ``value`` (numpy views of the input and filter, the method's state)
                # goes when autograd frees the saved tensors, as native's would, not
                # with the graph: a loss kept without .item() held each step's input
                # (hostile pass 155). (Small ones go with the graph: a holder costs.)
                saved.new_keeper()
        return result

    @staticmethod
    @opaque_to_compile
    def setup_context(ctx, inputs, output):
        input, filter, bias, method, saved = inputs
        ctx.save_for_backward(input, filter, *holders(saved))
        ctx.save_for_forward(input, filter)
        ctx.method, ctx.forward_state = method, saved
        remember_inputs(ctx, input, filter)
        ctx.bias_shape = None if bias is None else bias.shape
        ctx.output_shape = output.shape

    @staticmethod
    @opaque_to_compile
    def backward(ctx, grad_output):
        input, filter = ctx.saved_tensors[:2]  # raises if either was modified in place
        compute = functools.partial(_conv_gradients, method=ctx.method,
                                    needs=tuple(ctx.needs_input_grad[:3]),
                                    bias_shape=ctx.bias_shape)
        if ctx.forward_state is None:  # (forward ran under saved-tensor hooks)
            input, filter = as_forward_saved(grad_output, input, filter)
        state = state_for(ctx, input, filter)
        grads = numpy_gradients(ScipyConv2dFunction.NAME_IN_ERRORS, compute, state, grad_output,
                                input, filter)
        return (*grads, None, None)

    @staticmethod
    @opaque_to_compile
    def jvp(ctx, input_tangent, filter_tangent, bias_tangent, *_):
        check_not_legacy_batched(ScipyConv2dFunction.NAME_IN_ERRORS, input_tangent,
                                 filter_tangent, bias_tangent)
        # Bilinear in (input, filter) plus bias: the tangent is the layer on the tangents.
        input, filter = ctx.saved_tensors[:2]
        conv = functools.partial(ScipyConv2dFunction.apply, bias=None, method=ctx.method)
        return linear_tangent(ctx.output_shape, input, [
            (input_tangent, lambda t: conv(t, filter)),
            (filter_tangent, lambda t: conv(input, t)),
            (bias_tangent, lambda t: t.reshape(())),
        ])

    @staticmethod
    @opaque_to_compile
    @vmap_rule
    def vmap(info, in_dims, input, filter, bias, method, saved):
        return vmap_by_loop(lambda x, w, b: ScipyConv2dFunction.apply(x, w, b, method),
                            info, in_dims[:3], (input, filter, bias))


def _conv_gradients(state, grad_output, input, filter, *, method, needs, bias_shape):
    """(grad_input, grad_filter, grad_bias), None where not needed, from forward's
    (backend, state) (None: recomputed from input and filter)."""
    need_input, need_filter, need_bias = needs
    need_bias = need_bias and bias_shape is not None
    if input.is_meta:
        return (torch.zeros_like(input) if need_input else None,
                torch.zeros_like(filter) if need_filter else None,
                input.new_zeros(bias_shape) if need_bias else None)
    if state is None:
        state = (gpu.resolve_backend(input, method), None)
    backend, forward_state = state
    if backend == gpu.CUPY:
        return _cupy_conv.conv_backward(forward_state, grad_output, input, filter, need_input,
                                        need_filter, bias_shape, need_bias)
    g = to_numpy(grad_output)
    grad_input = grad_filter = grad_bias = None
    if need_input or need_filter:
        if forward_state is None:
            x, w = to_numpy(input), to_numpy(filter)
            kernels = METHODS[choose_method(x.shape, w.shape, x.dtype) if method == AUTO
                              else method]
            kernel_state = kernels.forward(x, w)[1]
        else:
            kernels, x, w, kernel_state = forward_state
        grad_x, grad_w = kernels.backward(g, x, w, kernel_state, need_input, need_filter)
        grad_input = None if grad_x is None else to_tensor(grad_x, like=input)
        grad_filter = None if grad_w is None else to_tensor(grad_w, like=filter)
    if need_bias:
        # (np.add.reduce: what g.sum() runs, without its Python wrapper)
        grad_bias = to_tensor(np.add.reduce(g, axis=None, keepdims=True).reshape(bias_shape),
                              like=input)
    return grad_input, grad_filter, grad_bias


@graph_break_here
def scipy_conv2d(input, filter, bias=None, method=AUTO) -> torch.Tensor:
    """Valid cross-correlation of ``input`` with ``filter`` plus ``bias``, on numpy/scipy,
    by ``method`` ("auto", "direct", "shift", "fft" or "cupy")."""
    if _has_torch_function_variadic(input, filter, bias):  # (see torch_function_layer)
        return torch_function_layer(scipy_conv2d, (input, filter, bias), input, filter, bias,
                                    method)
    return ScipyConv2dFunction.apply(input, filter, bias, method)


def native_conv2d(input, filter, bias=None) -> torch.Tensor:
    """The native twin of :func:`scipy_conv2d` on ``torch.nn.functional.conv2d``. Under
    ``torch.autocast`` it takes float16 / bfloat16 arguments as F.conv2d does (autocast
    runs it in its own dtype), where the layer casts them to float32 for numpy."""
    if not _plainly_valid(input, filter, bias):  # (check_conv_arguments, under autocast too)
        check_twins_arguments("native_conv2d", "scipy_conv2d", check_each_conv_argument,
                              input=input, filter=filter, bias=bias)
    result = F.conv2d(input[None, None], filter[None, None],
                      None if bias is None else bias.reshape(1))
    return result[0, 0]


class FilterSizeError(LayerValueError, TypeError):
    """A filter size that is not an int, or is past int64: a ValueError, as the module
    documents, and a TypeError, as native torch's for the same size (torch.nn.Conv2d's
    and torch.randn's "failed to unpack")."""


class ScipyConv2d(torch.nn.Module):
    """The tutorial's module: a learnable (filter_width, filter_height) filter and a
    (1, 1) bias, applied with :class:`ScipyConv2dFunction` by ``method``."""

    # The default for a module whose state has no ``method`` of its own: one pickled
    # (torch.save) before the methods existed (the first commit's ScipyConv2d had none;
    # "auto" computes the same correlation), as nn.Conv2d's __setstate__ gives old
    # pickles padding_mode='zeros'. (Before hostile pass 149 such a module's forward and
    # repr raised AttributeError.)
    method = AUTO

    def __init__(self, filter_width: int, filter_height: int, method: str = AUTO):
        super().__init__()
        sizes = []
        for name, value in (("filter_width", filter_width), ("filter_height", filter_height)):
            # (numpy ints too, as nn.Conv2d takes them)
            if not _is_int(value) or value > LARGEST_GEOMETRY_INT:
                limit = " (at most 2**63 - 1)" if _is_int(value) else ""
                raise FilterSizeError(f"{name} must be a positive int{limit}, got {value!r}")
            if value < 1:
                raise LayerValueError(f"{name} must be a positive int, got {value!r}")
            sizes.append(operator.index(value))
        check_method(method)
        self.method = method
        self.filter = torch.nn.Parameter(torch.randn(*sizes))
        self.bias = torch.nn.Parameter(torch.randn(1, 1))

    def extra_repr(self):
        return f"filter={tuple(self.filter.shape)}, method={self.method!r}"

    def __prepare_scriptable__(self):
        # (its native twin NativeConv2d runs Python argument checks: not scriptable either)
        refuse_scripting(self, "torch.nn.functional.conv2d on input[None, None] and "
                               "filter[None, None] (what NativeConv2d computes)")

    # As nn.Conv2d's forward and _conv_forward: the parameters are read here, so that a
    # parametrization of them compiles (hostile pass), and neither frame is compiled on
    # its own (else once per filter shape: see never_compiled). torch.compile of a model
    # that calls the module traces forward and stops at scipy_conv2d, whose error names
    # the layer under fullgraph=True; of the bare module, it compiles no frame.
    @own_frame_never_compiled
    def forward(self, input):
        return self._correlate(input, self.filter, self.bias)

    @never_compiled
    def _correlate(self, input, filter, bias):
        return scipy_conv2d(input, filter, bias, self.method)


class NativeConv2d(ScipyConv2d):
    """:class:`ScipyConv2d`'s twin on ``F.conv2d``: same parameters, same output."""

    def extra_repr(self):
        return f"filter={tuple(self.filter.shape)}"

    def __prepare_scriptable__(self):
        refuse_scripting(self, "torch.nn.functional.conv2d on input[None, None] and "
                               "filter[None, None] (what it computes)",
                         runs="native_conv2d's argument checks",
                         compiled="it compiles whole: its checks run at trace time")

    def forward(self, input):
        return native_conv2d(input, self.filter, self.bias)
