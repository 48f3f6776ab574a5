"""im2col's wide layout (_nchw_kernels) in bands of output rows, for images whose window
matrix is large: few input channels on large maps (an ImageNet stem, 3 x 224 x 224 at
7x7: 147 window rows of 218 x 224 columns, 28 MB in float32).

Why: im2col fills an image's whole window matrix, then multiplies it (and in backward
makes the whole window gradient matrix, then adds it back). From a few MB up the matrix
leaves the cache between the fill and the GEMM, and the GEMM's operand streams from
memory; forward also keeps it for grad_weight, tens of MB. In bands of whole output
rows, BAND_BYTES of windows at a time, each band is filled and at once multiplied while
in cache, and backward fills it again (a copy from cache, instead of keeping the matrix)
for grad_weight's GEMM and makes and adds its window gradients at once. Every GEMM then
reads operands just written. Entries are the same sums as im2col's, split along the
output rows: each of y's and grad_input's window gradients is one band's (each output
column lies in one band); grad_weight's and grad_bias's add one partial sum a band, in
float64 (in float32 too: one per band is fewer and shorter sums than one GEMM along a
whole image, see _im2col_layout.BIAS_GRAD_MAX_LENGTH). The accuracy contract's bound
holds as for whole-image im2col.

Where: the wide layout (stride 1, few extra columns), one group, an image's window
matrix over MIN_IMAGE_WINDOW_BYTES, and a band of at least MIN_BAND_COLUMNS columns
(on many channels a band holds a row or less, and each GEMM packs the whole weight
matrix again for a narrow operand). Measured below (BAND_BYTES).
"""
from __future__ import annotations

import numpy as np

from . import _windows
from ._workspace import output, recycle, scratch

# Windows a band holds (its rows of Wp columns, at least one); bands run where an
# image's windows (C_in kH kW + 1 rows of Ho Wp) take more than MIN_IMAGE_WINDOW_BYTES
# and a band has MIN_BAND_COLUMNS or more. Measured: the layer's fwd+bwd / native, one
# process, bands and whole-image im2col alternated with a second whole-image control,
# 8-12 rounds, medians (one thread, OpenBLAS SkylakeX, the Intel Xeon VM of
# docs/performance.md; whole -> bands, float32 | float64): 1x3x224x224 -> 64 k7 0.87 ->
# 0.61 | 0.73 -> 0.52; 2x3x128x128 -> 16 k7 2.31 -> 1.52 | 1.12 -> 0.67; 1x32x112x112 ->
# 32 k3 2.07 -> 1.49 | 0.76 -> 0.52; 1x64x112x112 -> 64 k3 (448 | 224 columns a band)
# 1.65 -> 1.31 | 0.60 -> 0.53; 1x16x128x128 -> 32 k3 1.75 -> 1.58 | 1.07 -> 0.80. With
# fewer columns a band, each GEMM packs the whole weight matrix again for a narrow
# operand: 1x128x64x64 -> 128 k3 (192 | 96 columns) 1.61 -> 1.57 | 0.81 -> 0.98. On
# smaller images float64 still gained (32x3x64x64 -> 16 k3, 444 KB an image: 0.84 ->
# 0.61; 64x3x42x42 -> 8 k3, 188 KB: 1.10 -> 0.87; 4x16x64x64 -> 32 k3 1.08 -> 0.94;
# 16x2x64x64 -> 4 k3, 159 KB: level) where float32 lost below a few MB an image
# (16x3x48x48 -> 8 k3 0.41 -> 0.49, 8x8x64x64 -> 8 k3 1.33 -> 1.46, 4x3x128x128 -> 16
# k3 1.8 MB 1.25 -> 1.37, 1x64x56x56 -> 64 k3 7 MB 1.35 -> 1.57 in one run, 1.78 ->
# 1.58 in another): float32 windows are half the bytes for the same copies and calls.
# Bands of 512 KB and 2 MB were within a few % of 1 MB on the large cells.
BAND_BYTES = 1 << 20
MIN_BAND_COLUMNS = 200
MIN_IMAGE_WINDOW_BYTES = {"float32": 8 << 20, "float64": 128 << 10}


def band_rows(window_rows: int, wp: int, itemsize: int) -> int:
    """Output rows a band takes: as many as fit BAND_BYTES of windows, at least one."""
    return max(1, BAND_BYTES // (window_rows * wp * itemsize))


def runs(x_shape, w_shape, geometry, dtype, wide: bool) -> bool:
    """Whether im2col runs in bands here (see the module's doc), in numpy ``dtype``;
    ``wide``: whether it would run the wide layout."""
    if not wide or geometry.groups != 1:
        return False
    window_rows, wp, image_bytes = image_windows(x_shape, w_shape, geometry, dtype.itemsize)
    return (image_bytes > MIN_IMAGE_WINDOW_BYTES[dtype.name]
            and band_rows(window_rows, wp, dtype.itemsize) * wp >= MIN_BAND_COLUMNS)


def image_windows(x_shape, w_shape, geometry, itemsize: int):
    """(rows, Wp, bytes) of one image's wide window matrix: C_in kH kW rows and the
    bias's row of ones, of Ho Wp columns."""
    k_h, k_w = w_shape[2:]
    wp = x_shape[3] + geometry.padding[2] + geometry.padding[3]
    window_rows = x_shape[1] * k_h * k_w + 1
    return window_rows, wp, window_rows * geometry.out_hw[0] * wp * itemsize


def _bands(out_h: int, rows: int):
    return [(start, min(out_h, start + rows)) for start in range(0, out_h, rows)]


def forward(flat, w, bias, bias_row: bool, geometry, wp: int):
    """y (N, C_out, Ho, Wo) in an output() buffer, from ``flat`` (N, C_in, Hp Wp + tail),
    the C-contiguous padded input with the wide layout's zero tail; ``bias`` (or None)
    rides in the GEMM as a last weight column against a row of ones where ``bias_row``
    (_im2col_layout.BIAS_IN_GEMM), else on the copy out of each band."""
    n, c_in = flat.shape[:2]
    c_out, _, k_h, k_w = w.shape
    (out_h, out_w), dtype = geometry.out_hw, flat.dtype
    taps = c_in * k_h * k_w
    rows = band_rows(taps + 1, wp, dtype.itemsize)
    weights = w.reshape(c_out, taps)
    if bias_row:
        weights = np.concatenate((weights, bias.reshape(c_out, 1)), axis=1)
    cols_buffer = scratch(((taps + bias_row) * rows * wp,), dtype)
    y_buffer = scratch((c_out * rows * wp,), dtype)
    y = output((n, c_out, out_h, out_w), dtype)
    bands = _bands(out_h, rows)
    for image in range(n):
        for start, stop in bands:
            length = (stop - start) * wp
            cols = cols_buffer[:(taps + bias_row) * length].reshape(taps + bias_row, length)
            _windows.fill_wide_band(cols[:taps], flat[image:image + 1], (k_h, k_w),
                                    geometry.dilation, wp, start * wp)
            if bias_row:
                cols[taps] = 1
            band = y_buffer[:c_out * length].reshape(c_out, length)
            np.matmul(weights, cols, out=band)
            kept = band.reshape(c_out, stop - start, wp)[..., :out_w]
            if bias is None or bias_row:
                np.copyto(y[image, :, start:stop], kept)
            else:  # (a bias that is not finite: added as native adds it)
                np.add(kept, bias[:, None, None], out=y[image, :, start:stop])
    recycle(cols_buffer, y_buffer)
    return y


def backward(gy, w, flat, grad_flat, geometry, wp: int, cols_first_for,
             bias_max_length: int):
    """(grad_weight, grad_bias) from ``flat`` (as forward's; None: not wanted, both None),
    and, where ``grad_flat`` (N, C_in, Hp Wp), zero, is given, the padded input's
    gradient added into it. grad_bias is the sum of gy, from a row of ones beside the
    windows in grad_weight's GEMM, where an image has at most ``bias_max_length``
    columns, as whole-image im2col decides (_im2col_layout.BIAS_GRAD_MAX_LENGTH: BLAS's
    float32 sums along rows of ~1M columns erred ~1e-5, 7e-4 at 33M; hostile passes),
    else None (the caller sums gy); ``cols_first_for(rows)``: whether that GEMM runs as
    cols @ gy^T for windows of that many rows (_im2col_layout.grad_weight_cols_first), asked
    with the rows it multiplies (the taps, and the row of ones where there is one)."""
    n, c_out, out_h, out_w = gy.shape
    _, c_in, k_h, k_w = w.shape
    dtype, taps = gy.dtype, c_in * k_h * k_w
    need_weight, need_input = flat is not None, grad_flat is not None
    rows = band_rows(taps + 1, wp, dtype.itemsize)
    ones = int(out_h * wp <= bias_max_length)  # (a row of ones for grad_bias, or none)
    gy_buffer = scratch((c_out, rows, wp), dtype)  # gy on whole padded rows
    gy_buffer[..., out_w:] = 0  # (the dropped columns: zero for every band)
    cols_first = need_weight and cols_first_for(taps + ones)
    if need_weight:
        cols_buffer = scratch(((taps + ones) * rows * wp,), dtype)
        total = np.zeros((taps + ones, c_out) if cols_first else (c_out, taps + ones),
                         np.float64)
        part = np.empty(total.shape, dtype)
    if need_input:
        grad_cols_buffer = scratch((taps * rows * wp,), dtype)
        weights_t = w.reshape(c_out, taps).T
    bands = _bands(out_h, rows)
    for image in range(n):
        for start, stop in bands:
            count = stop - start
            length = count * wp
            gy_buffer[:, :count, :out_w] = gy[image, :, start:stop]
            band_gy = gy_buffer[:, :count].reshape(c_out, length)  # (a view: rows apart)
            if need_weight:
                cols = cols_buffer[:(taps + ones) * length].reshape(taps + ones, length)
                _windows.fill_wide_band(cols[:taps], flat[image:image + 1], (k_h, k_w),
                                        geometry.dilation, wp, start * wp)
                cols[taps:] = 1
                if cols_first:
                    np.matmul(cols, band_gy.T, out=part)
                else:
                    np.matmul(band_gy, cols.T, out=part)
                total += part
            if need_input:
                grad_cols = grad_cols_buffer[:taps * length].reshape(taps, length)
                np.matmul(weights_t, band_gy, out=grad_cols)
                _windows.add_wide_band(grad_flat[image],
                                       grad_cols.reshape(c_in, k_h, k_w, length), wp,
                                       geometry.dilation, start * wp)
    recycle(gy_buffer)
    if need_input:
        recycle(grad_cols_buffer)
    if not need_weight:
        return None, None
    recycle(cols_buffer)
    if cols_first:
        total = total.T
    grad_w = total[:, :taps].astype(dtype).reshape(w.shape)
    return grad_w, total[:, taps].astype(dtype) if ones else None
