"""Where "auto" keeps float64 off the certified FFT method: the shapes whose
certificate (_fft_certificate) would reject forward or grad_input on unit normal data,
through its linear term (hostile pass 126), so that the FFTs would run for nothing
before the direct method. A cost rule of _conv_rule.choose_method and _nchw_rule; the
certificate itself decides on the data at run time."""
from __future__ import annotations

import functools
import math
import operator

import numpy as np
import scipy.fft

from . import _fft_certify
from ._fft_certificate import LINEAR_ERROR
from ._fft_certify import fixup_budget

# On unit normal data a pass's linear term stands at about
# linear_term_on_normal_data(...) times tolerance * mean M: from ~0.6 (255x255 k11, 5-9% of
# grad_input's pixels fixed up) the certificate fixes up more, and past ~1 (1024x1024 k15
# 1.07, 512x512 k11 1.28) it rejects the pass after its FFTs. "auto" takes a direct method
# for float64 from FFT_LINEAR_LIMIT (0.60 certified, 1.07 rejected, on this project's data;
# 400x400 k11, 0.98, rejected), or where borders hold too many outputs with few products
# (float64_rejects_on_normal_data). (Those figures are the term before hostile pass 132
# added the result's norm, which doubles it for one channel: 255x255 k11 now 1.20,
# rejected, 512x512 k15 1.01, 256x256 k15 0.48.)
FFT_LINEAR_LIMIT = 0.8


def linear_term_on_normal_data(pixels: int, transform_size: int, taps: int,
                               channels: int) -> float:
    """E's linear term over tolerance times the mean M for unit normal images of
    ``pixels`` and kernels of ``taps``, ``channels`` contracted: LINEAR_ERROR
    sqrt(log2 T) (C + sqrt C) sqrt(pixels taps) u over (2 C taps u) (2 / pi) C taps
    (the term counts the result's norm too, ~sqrt(C pixels taps) on such data: hostile
    pass 132)."""
    if channels * taps == 0:  # (no products, no term: choose_nchw_method's odd shapes)
        return 0.0
    return (LINEAR_ERROR * math.sqrt(math.log2(max(transform_size, 2)) * pixels)
            * (1 + 1 / math.sqrt(channels)) / (4 / math.pi * channels * taps ** 1.5))


def float64_rejects_on_normal_data(image_hw, kernel_hw, padding, in_channels: int,
                                   out_channels: int) -> bool:
    """Whether float64's certificate would reject forward or grad_input on unit normal
    data, for an unpadded image of ``image_hw``, kernels of ``kernel_hw`` and (top,
    bottom, left, right) ``padding``: where "auto" takes a direct method. Either the
    linear term passes FFT_LINEAR_LIMIT of tolerance times a full window's mean M, or
    more outputs than the fix-up budget allows hold too few products for it (grad_input's
    borders; the forward's where padded: hostile pass 128, float64 3x41 kernels on
    130-328 wide images were rejected there after their FFTs)."""
    return _rejects(*map(operator.index, (*image_hw, *kernel_hw, *padding, in_channels,
                                          out_channels)), _constants())


def _constants() -> tuple:
    """What _rejects reads besides the shape, part of its cache key: a verdict is kept
    only for the constants it was made with (tests change them; before the key held them,
    a shape asked once kept its first verdict: hostile pass 130)."""
    return (FFT_LINEAR_LIMIT, LINEAR_ERROR, fixup_budget, _fft_certify.FIXUP_WORK_PER_ELEMENT,
            _fft_certify.TAP_FIXUP_SHARE)


@functools.lru_cache(maxsize=1024)  # (a pure rule of shape and constants: ~33 us uncached)
def _rejects(height, width, k_h, k_w, top, bottom, left, right, in_channels,
             out_channels, constants) -> bool:
    padded_h, padded_w = height + top + bottom, width + left + right
    out_h, out_w, taps = padded_h - k_h + 1, padded_w - k_w + 1, k_h * k_w
    if min(out_h, out_w, height, width, taps, in_channels, out_channels) <= 0:
        return False
    size = scipy.fft.next_fast_len(padded_h, real=True) * scipy.fft.next_fast_len(
        padded_w, real=True)
    forward = linear_term_on_normal_data(height * width, size, taps, in_channels)
    backward = linear_term_on_normal_data(out_h * out_w, size, taps, out_channels)
    if max(forward, backward) > FFT_LINEAR_LIMIT:
        return True
    forward_fails = _few_products(_forward_taps(out_h, k_h, top, height),
                                  _forward_taps(out_w, k_w, left, width), forward * taps)
    backward_fails = _few_products(_backward_taps(height, k_h, top, out_h),
                                   _backward_taps(width, k_w, left, out_w), backward * taps)
    # (the passes' own fix-up budgets, for one image, in outputs of their channel pairs)
    return (forward_fails > fixup_budget(in_channels * padded_h * padded_w,
                                         out_channels * out_h * out_w, in_channels * taps,
                                         in_channels) / (in_channels * taps * out_channels)
            or backward_fails > fixup_budget(out_channels * out_h * out_w,
                                             in_channels * height * width,
                                             out_channels * taps, out_channels)
            / (out_channels * taps * in_channels))


def _forward_taps(outputs: int, k: int, before: int, real: int) -> np.ndarray:
    """Per output row (or column), how many of the kernel's k rows meet the image's
    ``real`` rows, which start ``before`` rows into the padded image."""
    r = np.arange(outputs)
    return np.clip(np.minimum(k - 1, before + real - 1 - r) - np.maximum(0, before - r) + 1,
                   0, None)


def _backward_taps(real: int, k: int, before: int, outputs: int) -> np.ndarray:
    """Per row (or column) of grad_input, how many of the kernel's k rows meet one of
    grad_output's ``outputs`` rows (grad_input's rows start ``before`` into the padded
    image)."""
    q = np.arange(before, before + real)
    return np.clip(np.minimum(k - 1, q) - np.maximum(0, q - outputs + 1) + 1, 0, None)


def _few_products(rows: np.ndarray, columns: np.ndarray, least: float) -> int:
    """How many (row, column) pairs have rows[r] * columns[c] < least products."""
    ordered = np.sort(columns)
    limits = np.divide(least, rows, out=np.full(rows.shape, np.inf), where=rows > 0)
    return int(np.searchsorted(ordered, limits, side="left").sum())
