"""The tutorial's single-channel cross-correlation layer on scipy.signal, and its
native twin on ``torch.nn.functional.conv2d``.

Both compute ``y = correlate2d(input, filter, 'valid') + bias`` for a 2-D input
(H, W), a 2-D filter (kH, kW) with kH <= H and kW <= W, and a one-element bias
(shape (), (1,) or (1, 1), as the tutorial's ``ScipyConv2d`` uses), giving
y of shape (H - kH + 1, W - kW + 1).
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from scipy import signal
from torch.autograd import Function

from ._checks import check_float_tensor, check_same_dtype_and_device
from ._numpy_bridge import numpy_backward, to_numpy, to_tensor

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


class ScipyConv2dFunction(Function):
    """Valid 2-D cross-correlation plus bias on ``scipy.signal``, with exact gradients.

    Forward ``correlate2d(x, w, 'valid') + b``; backward
    ``grad_x = convolve2d(g, w, 'full')``, ``grad_w = correlate2d(x, g, 'valid')``,
    ``grad_b = sum(g)``, each computed only when asked for and kept in the input dtype
    (the tutorial cast them to float32, which broke float64 modules).
    """

    @staticmethod
    def forward(ctx, input, filter, bias=None):
        check_conv_arguments(input, filter, bias)
        x, w = to_numpy(input), to_numpy(filter)
        result = signal.correlate2d(x, w, mode="valid")
        if bias is not None:
            result += to_numpy(bias).reshape(())
        ctx.save_for_backward(input, filter)
        ctx.bias_shape = None if bias is None else bias.shape
        return to_tensor(result, like=input)

    @staticmethod
    @numpy_backward
    def backward(ctx, grad_output):
        input, filter = ctx.saved_tensors
        g = to_numpy(grad_output)
        grad_input = grad_filter = grad_bias = None
        if ctx.needs_input_grad[0]:
            grad_input = to_tensor(signal.convolve2d(g, to_numpy(filter), mode="full"), like=input)
        if ctx.needs_input_grad[1]:
            grad_filter = to_tensor(signal.correlate2d(to_numpy(input), g, mode="valid"), like=filter)
        if ctx.bias_shape is not None and ctx.needs_input_grad[2]:
            grad_bias = to_tensor(np.sum(g), like=input).reshape(ctx.bias_shape)
        return grad_input, grad_filter, grad_bias


def scipy_conv2d(input, filter, bias=None) -> torch.Tensor:
    """Valid cross-correlation of ``input`` with ``filter`` plus ``bias``, on scipy."""
    return ScipyConv2dFunction.apply(input, filter, bias)


def native_conv2d(input, filter, bias=None) -> torch.Tensor:
    """The native twin of :func:`scipy_conv2d` on ``torch.nn.functional.conv2d``."""
    check_conv_arguments(input, filter, bias)
    result = F.conv2d(input[None, None], filter[None, None],
                      None if bias is None else bias.reshape(1))
    return result[0, 0]


class ScipyConv2d(torch.nn.Module):
    """The tutorial's module: a learnable (filter_width, filter_height) filter and a
    (1, 1) bias, applied with :class:`ScipyConv2dFunction`."""

    def __init__(self, filter_width: int, filter_height: int):
        super().__init__()
        for name, value in (("filter_width", filter_width), ("filter_height", filter_height)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        self.filter = torch.nn.Parameter(torch.randn(filter_width, filter_height))
        self.bias = torch.nn.Parameter(torch.randn(1, 1))

    def forward(self, input):
        return ScipyConv2dFunction.apply(input, self.filter, self.bias)


class NativeConv2d(ScipyConv2d):
    """:class:`ScipyConv2d`'s twin on ``F.conv2d``: same parameters, same output."""

    def forward(self, input):
        return native_conv2d(input, self.filter, self.bias)
