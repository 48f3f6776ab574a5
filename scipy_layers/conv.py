"""The tutorial's single-channel cross-correlation layer on scipy.signal, and its
native twin on ``torch.nn.functional.conv2d``.

Both compute ``y = correlate2d(input, filter, 'valid') + bias`` for a 2-D input
(H, W), a 2-D filter (kH, kW) with kH <= H and kW <= W, and a one-element bias
(shape (), (1,) or (1, 1), as the tutorial's ``ScipyConv2d`` uses), giving
y of shape (H - kH + 1, W - kW + 1).
"""
from __future__ import annotations

import functools
import operator

import numpy as np
import torch
import torch.nn.functional as F
from torch.autograd import Function

from . import _cupy_conv, gpu
from ._fft_route import float64_rejects_on_normal_data
from ._checks import (check_float_tensor, check_method_name, check_same_dtype_and_device,
                      plain_cpu_floats)
from ._nchw_args import _is_int
from ._forward_state import (check_forward_state, new_forward_state, remember_inputs,
                             state_for)
from ._numpy_bridge import (apply_positional, check_not_legacy_batched, linear_tangent,
                            numpy_gradients, to_numpy, to_tensor, vmap_by_loop, vmap_rule)
from ._numpy_quiet import numpy_quiet
from ._torch_protocols import (graph_break_here, never_compiled, opaque_to_compile,
                               own_frame_never_compiled, refuse_onnx, refuse_scripting,
                               torch_function_layer)
from .conv_methods import METHODS

AUTO = "auto"
ACCEPTED_METHODS = (AUTO, *METHODS, gpu.CUPY)

BIAS_SHAPES = ((), (1,), (1, 1))

_has_torch_function_variadic = torch._C._has_torch_function_variadic


def check_conv_arguments(input, filter, bias) -> None:
    """Raise a clear TypeError/ValueError for anything the layer cannot take."""
    if not _plainly_valid(input, filter, bias):
        check_each_conv_argument(input, filter, bias)


def check_each_conv_argument(input, filter, bias) -> None:
    """:func:`check_conv_arguments` without its fast path: each argument checked in turn,
    an error naming the first that is wrong."""
    check_float_tensor("input", input, ndim=2)
    check_float_tensor("filter", filter, ndim=2)
    if bias is not None:
        check_float_tensor("bias", bias)
        if tuple(bias.shape) not in BIAS_SHAPES:
            raise ValueError(
                f"bias must hold one value, of shape (), (1,) or (1, 1); "
                f"got shape {tuple(bias.shape)}"
            )
    check_same_dtype_and_device("input", input, filter=filter, bias=bias)
    if filter.shape[0] > input.shape[0] or filter.shape[1] > input.shape[1]:
        raise ValueError(
            f"filter of shape {tuple(filter.shape)} is larger than input of shape "
            f"{tuple(input.shape)}; a valid cross-correlation needs filter <= input in both dims"
        )


def _plainly_valid(input, filter, bias) -> bool:
    """True for the common call that :func:`check_each_conv_argument` accepts:
    plain CPU tensors of one float dtype (:func:`plain_cpu_floats`), a non-empty 2-D
    input, a 2-D filter no larger, a one-value bias or None; False sends a call to those
    checks, which name what is wrong (or accept what this leaves to them: subclasses,
    other devices). The checks one by one cost ~4 us of a 16x16 forward+backward."""
    if not plain_cpu_floats(input, filter, bias) or (
            bias is not None and bias.shape not in BIAS_SHAPES):
        return False
    shape, filter_shape = input.shape, filter.shape  # (not nested: they have sizes)
    return (len(shape) == 2 and len(filter_shape) == 2 and 0 < filter_shape[0] <= shape[0]
            and 0 < filter_shape[1] <= shape[1])


def check_method(method) -> None:
    check_method_name(method, ACCEPTED_METHODS)


# "auto" thresholds, from forward+backward timings on this project's 2-core machine
# (AMD EPYC family 25 model 1, OpenBLAS Haswell kernel, torch pinned to 1 thread; N x N
# input, k x k filter; medians of one process per method, 2026-12-01):
# - direct wins where output pixels x taps is tiny (N = 16 with k >= 5: 61 vs 61 us at
#   k=5, 87 vs 97 us (shift) vs 110 us (fft) at k=15), and on small outputs of large
#   filters (below); elsewhere its N^2 k^2 scipy.signal loops lose (64^2, k=3: 193 us
#   vs 75 us for shift).
# - fft is certified (float64 transforms, a per-pixel accuracy check: _fft_conv), so it
#   pays off only for large kernels. float32: shift up to 11x11 at every size (256^2 k11:
#   5.2 vs 13.5 ms; 1024^2 k11: 89 vs 196 ms), fft from 15x15 (1024^2: 160 vs 184 ms;
#   128^2: 2.9 vs 6.9 ms). float64: shift up to 9x9 (1024^2: 174 vs 211 ms), fft from
#   11x11 (256^2: 9.3 vs 10.7 ms), except on small images, where shift keeps 11x11
#   (64^2: 1.0 vs 3.0 ms; 128^2: 2.0 vs 3.0 ms).
# - fft's cost hardly depends on k (1024^2 float32: 160-197 ms for k = 5..31).
# - a filter with at least as many taps as the output has pixels (nearly as large as the
#   image): there direct's grad_input loops over g, not the filter (conv_methods), and
#   direct beats shift's per-row calls (one per filter row and pass) and fft's float64
#   transforms further (forward+backward, one process, rotated, float32 / float64, us):
#   16^2 k9 direct 343 / 296 against shift 428 / 349; 32^2 k25 764 / 714 against fft
#   1588 / 2208 (shift 1019); 64^2 k63 567 / 604 against fft 1850 / 16764; 64^2 k57 (208k
#   products) 2008 / 2214 against fft 1810 / 3327, where fft takes over in float32; the
#   crossover with shift: 32^2 k23 (53k products) direct 519 / 514 against shift 637 /
#   588, k21 (64k) 593 / 592 against 616 / 566, k19 (71k) 687 / 686 against 615 / 573.
# - images up to 48x48 keep shift up to 21x21 (fft's fixed cost is ~1 / 1.4 ms there):
#   32^2 k13 517 / 549 against fft 1018 / 1379, k19 615 / 573 against 991 / 1408; 40^2
#   k21 944 / 843 against 1234 / 1539; 48^2 k15 987 / 1126 against 1103 / 1563 (48^2 k25
#   is fft's in float32: 1283 against 1576).
# shift's figures above predate its windows tier (_shift_kernels), which made it faster
# on small images (float32 32^2 k15 0.82 -> 0.40x native); these crossovers were kept.
# - with shift's windows tier, direct still wins up to ~6000 products where the filter
#   is at least 2 wide (scipy's loop runs along the filter's rows), measured fwd+bwd /
#   native, one process, 25 batches, direct always right after native (the costlier
#   place, docs/performance.md), the Zen 4 VM, direct against shift: float64 16^2 k7
#   (4900 products) 1.06 / 1.20, 17^2 k7 1.08 / 1.19, 24^2 k3 1.06 / 1.19, 26^2 k3 1.14
#   / 1.24, 33^2 k2 1.16 / 1.23, 32x32 1x5 1.05 / 1.23; float32 24^2 k3 1.08 / 1.21,
#   18^2 k5 0.40 / 0.44, 17^2 k7 0.42 / 0.44; past it level or shift's (28^2 k3 1.18 /
#   1.21, 30^2 k3 1.21 / 1.21, 32^2 k3 float32 1.31 / 1.23, 40^2 k2 1.28 / 1.24). Filters
#   one column wide stay at DIRECT_MAX_WORK: 32x32 5x1 float64 1.31 / 1.18 (24x24 7x1, 3024
#   products, 1.22 / 1.19). Measured on that one CPU; side by side, balanced, 16^2 k7
#   float64 1.226 -> 1.085 of native.
# - float64 fft's certificate holds a linear term (hostile pass 126) that rejects large
#   images with smaller kernels, and narrow kernels' grad_input borders: there shift
#   (_fft_route.float64_rejects_on_normal_data).
DIRECT_MAX_WORK = 4000          # output pixels x filter taps
DIRECT_WIDE_FILTER_MAX_WORK = 6000  # the same, for filters 2 or more columns wide
DIRECT_SMALL_OUTPUT_MAX_WORK = 60_000  # the same, where output pixels <= taps
SHIFT_MAX_TAPS = {"float32": 121, "float64": 81}
SHIFT_SMALL_IMAGE_MAX_TAPS = 121
SHIFT_SMALL_IMAGE_MAX_PIXELS = 128 * 128
SHIFT_TINY_IMAGE_MAX_TAPS = 441
SHIFT_TINY_IMAGE_MAX_PIXELS = 48 * 48


def is_float64(dtype) -> bool:
    """Whether ``dtype`` (torch or numpy) is float64 rather than float32; a TypeError for
    anything else (the layers take no other dtype, and None would read as numpy's
    default float64)."""
    # (a torch dtype compared with a numpy dtype makes numpy try to convert it: ~2 us)
    if isinstance(dtype, torch.dtype):
        if dtype is torch.float64 or dtype is torch.float32:
            return dtype is torch.float64
    elif dtype is not None:
        try:
            kind = np.dtype(dtype)
        except (TypeError, ValueError):
            kind = None
        if kind == np.float64 or kind == np.float32:
            return kind == np.float64
    raise TypeError(f"dtype must be float32 or float64, as a torch or numpy dtype; "
                    f"got {dtype!r}")


def dtype_name(dtype) -> str:
    """"float32" or "float64" for ``dtype`` (torch or numpy): the key of every per-dtype
    table of measured constants (here, _nchw_rule, _kn2row)."""
    return "float64" if is_float64(dtype) else "float32"


def shift_max_taps(dtype) -> int:
    """Up to how many filter taps shift beats fft at every image size, for ``dtype``."""
    return SHIFT_MAX_TAPS[dtype_name(dtype)]


def choose_method(input_shape, filter_shape, dtype=torch.float32) -> str:
    """The method "auto" runs for an input of ``input_shape`` and a filter of
    ``filter_shape`` (both (rows, cols)) in ``dtype`` (torch or numpy); the thresholds
    above say why."""
    height, width = input_shape
    k_height, k_width = filter_shape
    taps = k_height * k_width
    outputs = (height - k_height + 1) * (width - k_width + 1)
    work = outputs * taps
    if work <= DIRECT_MAX_WORK or (k_width >= 2 and work <= DIRECT_WIDE_FILTER_MAX_WORK) or (
            outputs <= taps and work <= DIRECT_SMALL_OUTPUT_MAX_WORK):
        return "direct"
    pixels = height * width
    if taps <= shift_max_taps(dtype) or (
            taps <= SHIFT_SMALL_IMAGE_MAX_TAPS and pixels <= SHIFT_SMALL_IMAGE_MAX_PIXELS) or (
            taps <= SHIFT_TINY_IMAGE_MAX_TAPS and pixels <= SHIFT_TINY_IMAGE_MAX_PIXELS):
        return "shift"
    if is_float64(dtype) and float64_rejects_on_normal_data(
            input_shape, filter_shape, (0, 0, 0, 0), 1, 1):
        return "shift"  # (the certificate's linear term: _fft_route)
    return "fft"


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
        return result

    @staticmethod
    @opaque_to_compile
    def setup_context(ctx, inputs, output):
        input, filter, bias, method, saved = inputs
        ctx.save_for_backward(input, filter)
        ctx.save_for_forward(input, filter)
        ctx.method, ctx.forward_state = method, saved
        remember_inputs(ctx, input, filter)
        ctx.bias_shape = None if bias is None else bias.shape
        ctx.output_shape = output.shape

    @staticmethod
    @opaque_to_compile
    def backward(ctx, grad_output):
        input, filter = ctx.saved_tensors  # raises if either was modified in place
        compute = functools.partial(_conv_gradients, method=ctx.method,
                                    needs=tuple(ctx.needs_input_grad[:3]),
                                    bias_shape=ctx.bias_shape)
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
        input, filter = ctx.saved_tensors
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
    """The native twin of :func:`scipy_conv2d` on ``torch.nn.functional.conv2d``."""
    check_conv_arguments(input, filter, bias)
    result = F.conv2d(input[None, None], filter[None, None],
                      None if bias is None else bias.reshape(1))
    return result[0, 0]


class ScipyConv2d(torch.nn.Module):
    """The tutorial's module: a learnable (filter_width, filter_height) filter and a
    (1, 1) bias, applied with :class:`ScipyConv2dFunction` by ``method``."""

    def __init__(self, filter_width: int, filter_height: int, method: str = AUTO):
        super().__init__()
        sizes = []
        for name, value in (("filter_width", filter_width), ("filter_height", filter_height)):
            if not _is_int(value) or value < 1:  # (numpy ints too, as nn.Conv2d takes them)
                raise ValueError(f"{name} must be a positive int, got {value!r}")
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
