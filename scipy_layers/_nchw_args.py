"""Argument checks and normalisation for :func:`scipy_layers.conv2d`, mirroring what
``torch.nn.functional.conv2d`` accepts. Every check runs before any numpy call and names
the argument, what it got, and what is accepted."""
from __future__ import annotations

import operator
from typing import NamedTuple

import numpy as np

from ._checks import (check_dims_not_empty, check_float_tensor, check_same_dtype_and_device,
                      LayerTypeError, LayerValueError, plain_cpu_floats)


class ConvGeometry(NamedTuple):
    stride: tuple[int, int]
    padding: tuple[int, int, int, int]  # top, bottom, left, right
    dilation: tuple[int, int]
    groups: int
    out_hw: tuple[int, int]


# The most elements of an array numpy can make (its byte size must fit in a signed
# intp; float64 takes 8 bytes): beyond it numpy's own error names no argument.
LARGEST_ARRAY_ELEMENTS = np.iinfo(np.intp).max // 8
LARGEST_STRIDE = np.iinfo(np.int64).max
# F.conv2d reads stride, padding and dilation as 64-bit ints and refuses larger ones
# ("Overflow when unpacking long long"); so does this layer, in words.
LARGEST_GEOMETRY_INT = np.iinfo(np.int64).max


class GeometryOverflowError(LayerValueError, TypeError):
    """A stride, padding or dilation past int64. F.conv2d raises a ValueError for a plain
    int and a TypeError for one inside a tuple ("failed to unpack"): so both."""


def _is_int(value) -> bool:
    """Python and numpy integers (as F.conv2d takes them), not bools."""
    if isinstance(value, (bool, np.bool_)):
        return False
    try:
        operator.index(value)
    except TypeError:
        return False
    return True


def _pair(name: str, value, minimum: int) -> tuple[int, int]:
    if _is_int(value):
        pair = (operator.index(value),) * 2
    elif (isinstance(value, (tuple, list)) and len(value) in (1, 2)
          and all(_is_int(v) for v in value)):
        pair = (operator.index(value[0]), operator.index(value[-1]))
    else:
        raise LayerTypeError(f"{name} must be an int or a pair of ints, got {value!r}")
    if min(pair) < minimum:
        raise LayerValueError(f"{name} must be >= {minimum} in both dims, got {value!r}")
    if max(pair) > LARGEST_GEOMETRY_INT:
        raise GeometryOverflowError(f"{name} must be at most 2**63 - 1 in both dims (a 64-bit "
                                    f"int, as F.conv2d reads it), got {value!r}")
    return pair


def _padding(padding, stride, dilation, kernel) -> tuple[int, int, int, int]:
    if isinstance(padding, str):
        if padding == "valid":
            return (0, 0, 0, 0)
        if padding != "same":
            raise LayerValueError(f"padding must be 'valid', 'same', an int or a pair of ints, "
                                  f"got {padding!r}")
        if stride != (1, 1):
            raise LayerValueError(f"padding='same' is not supported for strided convolutions "
                                  f"(stride={stride}); use an int or pair padding")
        # torch puts the odd pixel of an even kernel's padding at the bottom/right.
        total_h, total_w = (d * (k - 1) for d, k in zip(dilation, kernel))
        return (total_h // 2, total_h - total_h // 2, total_w // 2, total_w - total_w // 2)
    try:
        pad_h, pad_w = _pair("padding", padding, 0)
    except LayerTypeError:  # (_pair's words, with the strings padding also takes)
        raise LayerTypeError(f"padding must be 'valid', 'same', an int or a pair of ints, "
                             f"got {padding!r}") from None
    return (pad_h, pad_h, pad_w, pad_w)


def output_channels(weight_shape) -> int:
    """The output's channels for a weight of ``weight_shape`` (C_out, C_in/G, kH, kW):
    none without input channels, as F.conv2d gives."""
    return weight_shape[0] if weight_shape[1] else 0


# Geometries of plain calls already checked, by _plain_call_key (the checks below cost
# ~6 us a call in a loop and 3-4 times that inside a forward+backward, the batched conv's
# largest fixed cost); cleared when full, so a program of many shapes stays bounded.
_CHECKED_GEOMETRIES: dict = {}
CHECKED_GEOMETRIES_MAX = 256


def check_conv2d_arguments(input, weight, bias, stride, padding, dilation, groups
                           ) -> ConvGeometry:
    """Check everything ``F.conv2d`` would, and return the normalised geometry. A plain
    call (:func:`_plain_call_key`) whose shapes and arguments passed before takes the
    geometry they gave: every check below is a function of those alone."""
    key = _plain_call_key(input, weight, bias, stride, padding, dilation, groups)
    geometry = None if key is None else _CHECKED_GEOMETRIES.get(key)
    if geometry is None:
        geometry = check_each_conv2d_argument(input, weight, bias, stride, padding, dilation,
                                              groups)
        if key is not None:
            if len(_CHECKED_GEOMETRIES) >= CHECKED_GEOMETRIES_MAX:
                _CHECKED_GEOMETRIES.clear()
            _CHECKED_GEOMETRIES[key] = geometry
    return geometry


def _plain_call_key(input, weight, bias, stride, padding, dilation, groups):
    """(shapes, arguments) of a call whose tensors pass every check that reads more than
    their shapes (plain CPU tensors of one float dtype, dense, not nested) and whose
    arguments are of exact types (int, tuples of ints, str: no bool, float or numpy
    scalar, which compare equal to ints but are checked apart), else None. Equal keys
    then get the same verdict from :func:`check_each_conv2d_argument`."""
    if not plain_cpu_floats(input, weight, bias):
        return None
    if not (type(groups) is int and _exact_ints(stride) and _exact_ints(dilation)
            and (type(padding) is str or _exact_ints(padding))):
        return None
    return (input.shape, weight.shape, None if bias is None else bias.shape, stride, padding,
            dilation, groups)


def _exact_ints(value) -> bool:
    """An int, or a tuple of ints (exact types: see _plain_call_key)."""
    if type(value) is int:
        return True
    if type(value) is not tuple:
        return False
    for item in value:
        if type(item) is not int:
            return False
    return True


def check_each_conv2d_argument(input, weight, bias, stride, padding, dilation, groups
                               ) -> ConvGeometry:
    """:func:`check_conv2d_arguments` without its memory of plain calls."""
    check_float_tensor("input", input, may_be_empty=True)
    if input.dim() not in (3, 4):
        raise LayerValueError(f"input must be 3-D (C_in, H, W) or 4-D (N, C_in, H, W), got a "
                              f"{input.dim()}-D tensor of shape {tuple(input.shape)}")
    # As F.conv2d: an empty batch or no input channels give an empty output; nothing
    # else may be empty (torch raises for those too).
    check_dims_not_empty("input", input, {-2: "H", -1: "W"},
                         f"{'N and ' if input.dim() == 4 else ''}C_in (as in F.conv2d)")
    check_float_tensor("weight", weight, ndim=4, may_be_empty=True)
    check_dims_not_empty("weight", weight, {0: "C_out", 2: "kH", 3: "kW"},
                         "C_in/groups (as in F.conv2d)")
    if bias is not None:
        check_float_tensor("bias", bias, ndim=1)
    check_same_dtype_and_device("input", input, weight=weight, bias=bias)
    if not _is_int(groups):
        raise LayerTypeError(f"groups must be an int, got {groups!r}")
    groups = operator.index(groups)
    if groups < 1:
        raise LayerValueError(f"groups must be >= 1, got {groups}")
    stride = _pair("stride", stride, 1)
    dilation = _pair("dilation", dilation, 1)
    c_out, c_group, k_h, k_w = weight.shape
    c_in, height, width = input.shape[-3:]
    if c_out % groups:
        raise LayerValueError(f"weight of shape {tuple(weight.shape)} has {c_out} output channels, "
                              f"which groups={groups} does not divide")
    if c_in != c_group * groups:
        raise LayerValueError(f"weight of shape {tuple(weight.shape)} with groups={groups} expects "
                              f"input with {c_group * groups} channels, got input of shape "
                              f"{tuple(input.shape)} ({c_in} channels)")
    if bias is not None and bias.shape[0] != c_out:
        raise LayerValueError(f"bias must have shape ({c_out},), one value per output channel of "
                              f"weight {tuple(weight.shape)}; got shape {tuple(bias.shape)}")
    pads = _padding(padding, stride, dilation, (k_h, k_w))
    reach_h, reach_w = dilation[0] * (k_h - 1) + 1, dilation[1] * (k_w - 1) + 1
    padded_h, padded_w = height + pads[0] + pads[1], width + pads[2] + pads[3]
    if padded_h < reach_h or padded_w < reach_w:
        raise LayerValueError(f"input of shape {tuple(input.shape)} padded to ({padded_h}, "
                              f"{padded_w}) is smaller than weight {tuple(weight.shape)}'s kernel "
                              f"with dilation {dilation} ({reach_h}, {reach_w})")
    out_hw = ((padded_h - reach_h) // stride[0] + 1, (padded_w - reach_w) // stride[1] + 1)
    # (an empty output (no images, or no channels: none without input channels, as in
    # torch) is never an array for numpy, but torch's strides, up to C Ho Wo with a 0
    # counted as 1, must still fit an int64)
    batch = input.shape[0] if input.dim() == 4 else 1
    channels = output_channels(weight.shape)
    pixels = out_hw[0] * out_hw[1]
    if (batch * channels * pixels > LARGEST_ARRAY_ELEMENTS
            or max(channels, 1) * pixels > LARGEST_STRIDE):
        raise LayerValueError(f"the output would be {out_hw[0]} x {out_hw[1]} pixels for each of "
                              f"{batch} image(s) and {channels} channel(s) (input of shape "
                              f"{tuple(input.shape)}, padding={padding!r}, stride={stride}, "
                              f"dilation={dilation}): more elements than any array can hold")
    return ConvGeometry(stride, pads, dilation, groups, out_hw)


def check_padding_mode(padding_mode) -> None:
    if padding_mode != "zeros":
        raise LayerValueError(f"padding_mode must be 'zeros' for scipy_layers.Conv2d, got "
                              f"{padding_mode!r} (torch.nn.Conv2d also takes 'reflect', "
                              f"'replicate' and 'circular'; they are not implemented here)")

