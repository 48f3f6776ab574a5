"""Argument checks of the FFT layers (:mod:`scipy_layers.fft`): a fast path for the common
input, the input checks one by one, whose errors name what is wrong, and the method's;
and the shape the layers return."""
from __future__ import annotations

from . import _dft_axes
from ._checks import (PLAIN_TENSORS, STRIDED, SUPPORTED_DTYPES, check_dims_not_empty,
                      check_float_tensor, check_method_name)

_IMAGE_DIMS = {-2: "H", -1: "W"}  # (a constant: a dict built per call costs ~0.3 us)


def check_fft_input(input) -> None:
    """A float tensor (..., H, W): batch dims may be empty, H and W may not (torch.fft
    raises for those too)."""
    if not _plainly_valid(input):
        check_fft_input_fully(input)


def _plainly_valid(input) -> bool:
    """True for the common input that :func:`check_fft_input_fully` accepts (a plain
    float tensor, strided, at least 2-D, H and W not empty), read in one frame (see
    _conv_args._plainly_valid); False leaves it to those checks."""
    if not (type(input) in PLAIN_TENSORS and not input.is_nested):
        return False
    shape = input.shape  # (not nested: it has sizes)
    return (len(shape) >= 2 and shape[-1] != 0 and shape[-2] != 0
            and input.dtype in SUPPORTED_DTYPES and input.layout is STRIDED)


def check_fft_input_fully(input) -> None:
    """:func:`check_fft_input` without its fast path."""
    check_float_tensor("input", input, min_ndim=2, may_be_empty=True)
    check_dims_not_empty("input", input, _IMAGE_DIMS, "the batch dims")


def check_fft_method(method, input) -> None:
    check_method_name(method, _dft_axes.METHODS)
    if method == "matrix":
        _dft_axes.check_matrix_lengths(*input.shape[-2:])


def rfft2_shape(input) -> tuple:
    """The FFT layers' output shape: (..., H, W // 2 + 1) for an input (..., H, W)."""
    return (*input.shape[:-1], input.shape[-1] // 2 + 1)
