"""The batched conv's "fft" method (NCHW, as ``torch.nn.functional.conv2d``): scipy.fft
in float64 with a per-pixel accuracy certificate (_fft_conv); stride 1, dilation 1 and
groups 1 only: for few channels with large kernels (_nchw_rule says where). A pass whose
operands are not all finite, or whose result its certificate rejects, runs the direct
"tap" kernels instead (_tap_kernels: sums over real pixels only).

Shapes as in _nchw_kernels: x (N, C_in, H, W) unpadded, w (C_out, C_in, kH, kW).
"""
from __future__ import annotations

from . import _fft_conv
from ._finite import all_finite
from ._tap_kernels import tap_backward, tap_forward, tap_grad_input, tap_grad_weight


def fft_forward(x, w, geometry):
    """y (no bias) and the state fft_backward takes: by the certified FFT of _fft_conv,
    or by the tap kernels for non-finite operands or an uncertified result."""
    if not all_finite(x, w):
        return tap_forward(x, w, None, geometry), (None, x)
    y, spectra = _fft_conv.fft_forward(x, w, geometry.padding, geometry.out_hw,
                                          tap_fixups=True)
    if y is None:
        y = tap_forward(x, w, None, geometry)
    return y, (spectra, x)


def fft_backward(gy, w, state, geometry, need_input, need_weight):
    """(grad_input, grad_weight): arrays or None."""
    spectra, x = state
    if spectra is None or not all_finite(gy):
        return tap_backward(gy, w, x, geometry, need_input, need_weight)
    grad_input, grad_weight, certified = _fft_conv.fft_backward(gy, spectra, need_input,
                                                                need_weight)
    if need_input and not certified[0]:
        grad_input = tap_grad_input(gy, w, x.shape, geometry)
    if need_weight and not certified[1]:
        grad_weight = tap_grad_weight(x, gy, w.shape, geometry)
    return grad_input, grad_weight
