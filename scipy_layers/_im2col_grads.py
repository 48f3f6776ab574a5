"""The gradient passes of the batched conv's im2col method (_nchw_kernels.im2col_backward):
grad_weight's GEMM over the window matrix (_grad_weight, with grad_bias where the bias
rode in the GEMMs), and grad_input's GEMM and col2im adds back onto the padded grid
(_col2im), unpadded by _inner. Their layout rules are _im2col_layout's."""
from __future__ import annotations

import numpy as np

from . import _im2col_layout as layout
from . import _windows
from ._workspace import output, recycle, scratch


def _inner(grid, padding):
    """An output() copy of the unpadded part of a padded (N, C, Hp, Wp) array."""
    top, bottom, left, right = padding
    inner = grid[:, :, top:grid.shape[2] - bottom, left:grid.shape[3] - right]
    out = output(inner.shape, inner.dtype)
    np.copyto(out, inner)
    return out


def _grad_weight(gy_groups, cols, w_shape, cols_first=None):
    """(grad_weight, grad_bias): the sum over images of gy @ cols^T, (C_out, C_in/G, kH,
    kW), in the GEMM orientation grad_weight_cols_first picks (``cols_first``, where
    given, forces one: tools/gemm_orientation.py times both); and, where
    cols ends with forward's row of ones (BIAS_IN_GEMM: one more row than the weight
    has taps) and images have at most BIAS_GRAD_MAX_LENGTH columns, the last column of
    that product, the sum of gy (C_out,), else None."""
    if cols_first is None:
        cols_first = layout.grad_weight_cols_first(gy_groups.dtype, cols.shape[-2])
    if cols_first:
        # (N, G, K, C_out/G), seen transposed
        grad = np.matmul(cols, gy_groups.transpose(0, 1, 3, 2)).transpose(0, 1, 3, 2)
    else:  # (N, G, C_out/G, K)
        grad = np.matmul(gy_groups, cols.transpose(0, 1, 3, 2))
    grad = grad.sum(axis=0) if grad.shape[0] > 1 else grad[0]  # (G, C_out/G, K)
    taps = w_shape[1] * w_shape[2] * w_shape[3]
    if grad.shape[-1] == taps:  # (a copy only after the transpose)
        return np.ascontiguousarray(grad).reshape(w_shape), None
    grad_bias = None
    if cols.shape[-1] <= layout.BIAS_GRAD_MAX_LENGTH:
        grad_bias = np.ascontiguousarray(grad[..., taps]).reshape(w_shape[0])
    return np.ascontiguousarray(grad[..., :taps]).reshape(w_shape), grad_bias


def _col2im(gy_groups, w, xp_shape, geometry, wide):
    n, c_in, hp, wp = xp_shape
    c_out, c_group, k_h, k_w = w.shape
    groups, length, dtype = geometry.groups, gy_groups.shape[-1], gy_groups.dtype
    out_h, out_w = geometry.out_hw
    window_rows = groups * c_group * k_h * k_w
    w_groups = w.reshape(groups, c_out // groups, c_group * k_h * k_w)
    chunks = _windows.image_chunks(n, window_rows * length * dtype.itemsize, k_h * k_w)
    grad_cols = scratch((_windows.largest(chunks), groups, c_group * k_h * k_w, length), dtype)
    unpadded = not any(geometry.padding)  # then grid is the result itself
    grid = (output if unpadded else scratch)(xp_shape, dtype)
    if wide:  # the first window row is copied into the first L columns; the rest start at 0
        flat = grid.reshape(n, c_in, hp * wp)  # (a view)
        flat[:, :, length:] = 0
    else:
        grid.fill(0)
    for images in chunks:  # each chunk's window gradients added while in cache
        chunk = grad_cols[:images.stop - images.start]
        np.matmul(w_groups.transpose(0, 2, 1), gy_groups[images], out=chunk)
        if wide:
            _windows.add_wide_windows(flat[images],
                                      chunk.reshape(-1, c_in, k_h, k_w, length), wp,
                                      geometry.dilation)
        else:
            _windows.add_windows(grid[images],
                                 chunk.reshape(-1, c_in, k_h, k_w, out_h, out_w), geometry)
    recycle(grad_cols)
    if unpadded:
        return grid
    grad_x = _inner(grid, geometry.padding)
    recycle(grid)
    return grad_x
