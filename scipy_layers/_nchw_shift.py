"""The batched conv for few channel pairs: the single-channel "shift" kernels
(_shift_kernels: shift-and-add along the flattened padded image) once per (output channel,
input channel) pair, on the whole batch stacked into one tall image.

Where C_in * C_out is small (4x1x128x128 -> 1: one pair) im2col's GEMMs have a single
row and most of its time is the window copies; the shift kernels stream the images once
per tap with no window matrix. Stacking the N padded images of a channel as one
(N * Hp, Wp) image makes each pass one kernel call per pair instead of N: the output rows
that straddle two images are computed and dropped, and the output gradient is zero on
them (and on the junk columns), so they add exact zeros. Stride 1, dilation 1, groups 1
only; padding is the zero-padded copy, cropped off the input gradient.

Every entry is a plain sum of the products native forms (each pair's kernel sums its
kH * kW taps, then the pairs and the bias are added), so the accuracy contract of
agreement.py holds as for any direct sum. A pass whose operands are not all finite runs
the tap kernels instead (see _finite: a zero of the padding or of a dropped row must
never meet an inf).
"""
from __future__ import annotations

import numpy as np

from ._finite import all_finite
from ._nchw_kernels import TAP, _padded
from ._workspace import output, recycle, scratch
from ._tap_kernels import tap_backward, tap_forward
from ._shift_kernels import _shift_forward, _shift_grad_filter, _shift_grad_input


def shift_state(x, w):
    """What shift_backward needs of forward (no forward work is reused)."""
    return (None if all_finite(x, w) else TAP), x


def _stacked(x, padding):
    """(C, N * Hp, Wp): each channel's zero-padded images one under the other, C-contiguous
    (a view of x when nothing is padded, C is 1 and x is C-contiguous), and the scratch
    buffer to recycle (or None)."""
    flat, grid = _padded(x, padding)
    n, c, hp, wp = grid.shape
    if c == 1:
        return grid.reshape(1, n * hp, wp), (None if grid is x else flat)
    stacked = scratch((c, n, hp, wp), x.dtype)
    np.copyto(stacked, grid.transpose(1, 0, 2, 3))
    if grid is not x:
        recycle(flat)
    return stacked.reshape(c, n * hp, wp), stacked


def shift_forward(x, w, bias, geometry):
    """y (N, C_out, Ho, Wo) (+ bias, when not None) and the state shift_backward takes."""
    state = shift_state(x, w)
    if state[0] is TAP:
        return tap_forward(x, w, bias, geometry), state
    stacked, buffer = _stacked(x, geometry.padding)
    n, c_in = x.shape[:2]
    c_out = w.shape[0]
    out_h, out_w = geometry.out_hw
    rows = stacked.shape[1] - w.shape[2] + 1  # the last image's rows end here
    total = scratch((stacked.shape[1], out_w), x.dtype)
    y = output((n, c_out, out_h, out_w), x.dtype)
    for o in range(c_out):
        total[:rows] = _shift_forward(stacked[0], w[o, 0])[0]
        for c in range(1, c_in):
            total[:rows] += _shift_forward(stacked[c], w[o, c])[0]
        kept = total.reshape(n, -1, out_w)[:, :out_h]
        if bias is None:
            y[:, o] = kept
        else:
            np.add(kept, bias[o], out=y[:, o])
    recycle(total, buffer)
    return y, state


def shift_backward(gy, w, state, geometry, need_input, need_weight):
    """(grad_input, grad_weight), fresh arrays or None, from shift_forward's state."""
    tag, x = state
    if tag is TAP or not all_finite(gy):
        return tap_backward(gy, w, x, geometry, need_input, need_weight)
    stacked, buffer = _stacked(x, geometry.padding)
    n, c_in, height, width = x.shape
    c_out, _, k_h, k_w = w.shape
    out_h, out_w = geometry.out_hw
    tall, padded_w = stacked.shape[1:]
    # gy of each output channel on the stacked padded grid, zero on the junk columns and
    # on the rows that straddle two images, cut to the run the shift kernels read.
    length = (tall - k_h) * padded_w + out_w
    g_grid = np.zeros((c_out, n, tall // n, padded_w), dtype=gy.dtype)
    g_grid[:, :, :out_h, :out_w] = gy.transpose(1, 0, 2, 3)
    g_flat = g_grid.reshape(c_out, -1)[:, :length]
    grad_x = grad_w = None
    if need_input:
        grad_x = output(x.shape, x.dtype)
        top, left = geometry.padding[0], geometry.padding[2]
        for c in range(c_in):
            total = _shift_grad_input(g_flat[0], (tall, padded_w), w[0, c])
            for o in range(1, c_out):
                total += _shift_grad_input(g_flat[o], (tall, padded_w), w[o, c])
            grad_x[:, c] = total.reshape(n, -1, padded_w)[:, top:top + height, left:left + width]
    if need_weight:
        grad_w = np.empty(w.shape, dtype=w.dtype)
        for o in range(c_out):
            for c in range(c_in):
                grad_w[o, c] = _shift_grad_filter(stacked[c], g_flat[o], (k_h, k_w))
    recycle(buffer)
    return grad_x, grad_w
