"""Depthwise convolution (groups = C_in, channel multiplier m = C_out / C_in) at stride 1
on finite operands, along whole padded rows: each tap's window of a channel is one
contiguous run of its flattened zero-padded images (the layout of im2col's "wide"
windows, _nchw_kernels), so a tap is two elementwise passes over long rows instead of
many short ones (the tap kernels' output blocks are rows of Wo, 14-56 elements on
MobileNet-sized images).

Same bits as the tap kernels for y and grad_input: every output (input) value gets the
same products in the same tap order, plus products with the zero padding (or with the
zeros of gy's dropped columns), which are +-0 for finite operands and leave a sum that
starts at +0 unchanged. grad_weight sums the same products (and such zeros) in another
order. Non-finite operands take the tap kernels: inf * 0 would make a NaN there.

Arrays: ``flat`` (N, C_in, Hp * Wp + tail) a zero-padded input (_nchw_kernels._padded),
rows (N, C, Ho * Wp): an output-side array on whole padded rows (Wp - Wo dropped columns
a row; zero in gy's).
"""
from __future__ import annotations

import numpy as np

from ._tap_kernels import channel_blocks
from ._ufunc_rows import rows_in_place
from ._workspace import scratch


def _tap_starts(w_shape, geometry, wp: int):
    """(i, j, start of tap (i, j)'s window in a flattened padded image), in tap order."""
    _, _, k_h, k_w = w_shape
    d_h, d_w = geometry.dilation
    return [(i, j, i * d_h * wp + j * d_w) for i in range(k_h) for j in range(k_w)]


def _blocks(rows_shape, c_in: int, multiplier: int, itemsize: int):
    n, _, length = rows_shape
    return channel_blocks(c_in, multiplier, n * length * multiplier * itemsize)


def forward(flat, w, geometry, wp: int):
    """y on whole padded rows, (N, C_out, Ho * Wp), a scratch array."""
    n, c_in = flat.shape[:2]
    c_out, multiplier = w.shape[0], w.shape[0] // c_in
    length = geometry.out_hw[0] * wp
    rows = scratch((n, c_out, length), flat.dtype)
    rows.fill(0)  # (a sum from +0, as the tap kernels': the same bits)
    starts = _tap_starts(w.shape, geometry, wp)
    with rows_in_place(length):
        for ci, co in _blocks(rows.shape, c_in, multiplier, rows.itemsize):
            x_block, y_block, w_block = flat[:, ci], rows[:, co], w[co, 0]
            for i, j, start in starts:
                window = x_block[:, :, start:start + length]
                if multiplier > 1:  # output channel o reads input channel o // m
                    window = np.repeat(window, multiplier, axis=1)
                y_block += window * w_block[:, i, j][:, None]
    return rows


def grad_input(gy_rows, w, geometry, flat_shape):
    """grad_input on the flattened padded grid, (N, C_in, Hp * Wp + tail), a scratch
    array: the caller crops the real pixels out of it."""
    n, c_in = flat_shape[:2]
    multiplier, length = w.shape[0] // c_in, gy_rows.shape[2]
    wp = length // geometry.out_hw[0]
    flat = scratch(flat_shape, gy_rows.dtype)
    flat.fill(0)
    starts = _tap_starts(w.shape, geometry, wp)
    with rows_in_place(length):
        for ci, co in _blocks(gy_rows.shape, c_in, multiplier, flat.itemsize):
            g_block, grad_block, w_block = gy_rows[:, co], flat[:, ci], w[co, 0]
            for i, j, start in starts:
                contribution = g_block * w_block[:, i, j][:, None]
                if multiplier > 1:
                    contribution = contribution.reshape(
                        n, ci.stop - ci.start, multiplier, length).sum(2)
                grad_block[:, :, start:start + length] += contribution
    return flat


def grad_weight(flat, gy_rows, w_shape, geometry):
    """grad_weight (C_out, 1, kH, kW)."""
    n, c_in = flat.shape[:2]
    multiplier, length = w_shape[0] // c_in, gy_rows.shape[2]
    wp = length // geometry.out_hw[0]
    grad = np.empty(w_shape, dtype=gy_rows.dtype)
    starts = _tap_starts(w_shape, geometry, wp)
    for ci, co in _blocks(gy_rows.shape, c_in, multiplier, flat.itemsize):
        x_block, g_block = flat[:, ci], gy_rows[:, co]
        for i, j, start in starts:
            window = x_block[:, :, start:start + length]
            if multiplier > 1:
                window = np.repeat(window, multiplier, axis=1)
            grad[co, 0, i, j] = np.einsum("ncl,ncl->c", g_block, window)
    return grad
