"""Argument checks of the single-channel conv layer (:mod:`scipy_layers.conv`): a fast
path for the common call, and the checks one by one, whose errors name the first
argument that is wrong."""
from __future__ import annotations

from ._checks import (check_float_tensor, check_same_dtype_and_device, LayerValueError,
                      plain_cpu_floats)

BIAS_SHAPES = ((), (1,), (1, 1))


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
            raise LayerValueError(
                f"bias must hold one value, of shape (), (1,) or (1, 1); "
                f"got shape {tuple(bias.shape)}"
            )
    check_same_dtype_and_device("input", input, filter=filter, bias=bias)
    if filter.shape[0] > input.shape[0] or filter.shape[1] > input.shape[1]:
        raise LayerValueError(
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
