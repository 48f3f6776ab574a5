"""The tutorial's single-channel cross-correlation layer on scipy.signal, and its
native twin on ``torch.nn.functional.conv2d``.

Both compute ``y = correlate2d(input, filter, 'valid') + bias`` for a 2-D input
(H, W), a 2-D filter (kH, kW) with kH <= H and kW <= W, and a one-element bias
(shape (), (1,) or (1, 1), as the tutorial's ``ScipyConv2d`` uses), giving
y of shape (H - kH + 1, W - kW + 1).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.autograd import Function

from . import gpu
from ._checks import check_float_tensor, check_same_dtype_and_device
from ._numpy_bridge import numpy_backward, to_numpy, to_tensor
from .conv_methods import METHODS

AUTO = "auto"
ACCEPTED_METHODS = (AUTO, *METHODS, gpu.CUPY)

BIAS_SHAPES = ((), (1,), (1, 1))


def check_conv_arguments(input, filter, bias) -> None:
    """Raise a clear TypeError/ValueError for anything the layer cannot take."""
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


def check_method(method) -> None:
    if method not in ACCEPTED_METHODS:  # also rejects non-strings: none is in the tuple
        raise ValueError(f"method must be one of {', '.join(map(repr, ACCEPTED_METHODS))}; "
                         f"got {method!r}")


# "auto" thresholds, from forward+backward timings on this project's 2-core machine
# (torch pinned to 1 thread; float32 and float64, N x N input, k x k filter):
# - direct wins only where output pixels x taps is tiny (N = 16 with k >= 5: 61 vs 61 us
#   at k=5, 87 vs 97 us (shift) vs 110 us (fft) at k=15); elsewhere its N^2 k^2 scipy.signal
#   loops lose (64^2, k=3: 193 us vs 75 us for shift).
# - shift beats fft up to 5x5 filters at every size (k=5: 96 vs 149 us at 64^2, 596 vs
#   736 us at 256^2, 16 vs 18 ms at 1024^2; float64 1024^2 is a tie, 30 vs 28 ms) and up
#   to 7x7 on small images (64^2: 133 vs 149 us); from 7x7 at 256^2 fft wins (726 vs 991 us).
# - fft's cost hardly depends on k (256^2: 0.71-0.74 ms for k = 3..31), so it takes the rest.
DIRECT_MAX_WORK = 4000          # output pixels x filter taps
SHIFT_MAX_TAPS = 25
SHIFT_SMALL_IMAGE_MAX_TAPS = 49
SHIFT_SMALL_IMAGE_MAX_PIXELS = 128 * 128


def choose_method(input_shape, filter_shape) -> str:
    """The method "auto" runs for an input of ``input_shape`` and a filter of
    ``filter_shape`` (both (rows, cols)); the thresholds above say why."""
    height, width = input_shape
    k_height, k_width = filter_shape
    taps = k_height * k_width
    if (height - k_height + 1) * (width - k_width + 1) * taps <= DIRECT_MAX_WORK:
        return "direct"
    if taps <= SHIFT_MAX_TAPS or (taps <= SHIFT_SMALL_IMAGE_MAX_TAPS
                                  and height * width <= SHIFT_SMALL_IMAGE_MAX_PIXELS):
        return "shift"
    return "fft"


class ScipyConv2dFunction(Function):
    """Valid 2-D cross-correlation plus bias on numpy/scipy, with exact gradients.

    ``method`` picks the kernels (see :mod:`scipy_layers.conv_methods`): "direct"
    (scipy.signal correlate2d / convolve2d, the tutorial's), "shift" (shift-and-add),
    "fft" (scipy.fft), "cupy" (CUDA tensors on CuPy, see :mod:`scipy_layers.gpu`) or
    "auto" (CuPy for CUDA tensors where usable, else :func:`choose_method`). Each
    gradient is computed only when asked for and kept in the input dtype (the tutorial
    cast them to float32, which broke float64 modules).
    """

    @staticmethod
    def forward(ctx, input, filter, bias=None, method=AUTO):
        check_method(method)
        check_conv_arguments(input, filter, bias)
        ctx.backend = gpu.resolve_backend(input, method)
        if ctx.backend == gpu.CUPY:
            return gpu.conv_forward(ctx, input, filter, bias)
        if method == AUTO:
            method = choose_method(input.shape, filter.shape)
        kernels = METHODS[method]
        x, w = to_numpy(input), to_numpy(filter)
        result, ctx.state = kernels.forward(x, w)
        if bias is not None:
            result += bias.item()  # exact in either dtype; result is always a fresh array
        ctx.save_for_backward(input, filter)
        ctx.arrays = (x, w)  # the numpy views, so backward need not convert again
        ctx.kernels = kernels
        ctx.bias_shape = None if bias is None else bias.shape
        return to_tensor(result, like=input)

    @staticmethod
    @numpy_backward
    def backward(ctx, grad_output):
        if ctx.backend == gpu.CUPY:
            return gpu.conv_backward(ctx, grad_output)
        input, filter = ctx.saved_tensors  # raises if either was modified in place
        g = to_numpy(grad_output)
        need_input, need_filter, need_bias = ctx.needs_input_grad[:3]
        grad_input = grad_filter = grad_bias = None
        if need_input or need_filter:
            x, w = ctx.arrays
            grad_x, grad_w = ctx.kernels.backward(g, x, w, ctx.state, need_input, need_filter)
            grad_input = None if grad_x is None else to_tensor(grad_x, like=input)
            grad_filter = None if grad_w is None else to_tensor(grad_w, like=filter)
        if ctx.bias_shape is not None and need_bias:
            grad_bias = to_tensor(g.sum(keepdims=True).reshape(ctx.bias_shape), like=input)
        return grad_input, grad_filter, grad_bias, None


def scipy_conv2d(input, filter, bias=None, method=AUTO) -> torch.Tensor:
    """Valid cross-correlation of ``input`` with ``filter`` plus ``bias``, on numpy/scipy,
    by ``method`` ("auto", "direct", "shift", "fft" or "cupy")."""
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
        for name, value in (("filter_width", filter_width), ("filter_height", filter_height)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        check_method(method)
        self.method = method
        self.filter = torch.nn.Parameter(torch.randn(filter_width, filter_height))
        self.bias = torch.nn.Parameter(torch.randn(1, 1))

    def forward(self, input):
        return ScipyConv2dFunction.apply(input, self.filter, self.bias, self.method)


class NativeConv2d(ScipyConv2d):
    """:class:`ScipyConv2d`'s twin on ``F.conv2d``: same parameters, same output."""

    def forward(self, input):
        return native_conv2d(input, self.filter, self.bias)
