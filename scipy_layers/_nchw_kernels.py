"""numpy/scipy kernels of a batched, multi-channel 2-D convolution (NCHW), as
``torch.nn.functional.conv2d`` computes it (a cross-correlation), and its gradients.

Shapes: x (N, C_in, H, W) unpadded (the kernels pad it), w (C_out, C_in/groups, kH, kW),
y (N, C_out, Ho, Wo); ``geometry`` is _nchw_args.ConvGeometry. The "im2col" method (the
"fft" method is _nchw_fft's, "shift" _nchw_shift's):

- the (C_in/groups * kH * kW, L) window matrix of each image and group, then
  one BLAS matmul per (image, group) for y, grad_weight and the window gradients, which
  kH * kW adds scatter back. Any stride, dilation and groups; at stride 1 the windows
  may run along whole padded rows (L = Ho * Wp, see im2col_forward) so that the copies
  are contiguous block moves: forward's (and grad_weight's) when that adds few columns
  (WIDE_MAX_EXTRA), grad_input's up to more (GRAD_INPUT_WIDE_MAX_EXTRA), both only where
  the output has no more channels than the windows have rows (WIDE_MAX_OUTPUT_ROWS).
  The batch runs in chunks of images (_windows.CHUNK_BYTES) so that each GEMM reads
  windows just filled, and each col2im adds window gradients just made, while in cache.
  With fewer output than input channels (a group) at stride 1 the layout turns round
  (kn2row, _kn2row: the GEMM first, then shift-adds of C_out kH kW rows); depthwise
  convs run along the tall rows of _depthwise_wide instead. Where one image's wide
  windows are large, they run in bands of output rows (_im2col_bands), filled again in
  backward instead of kept.

Every pass whose operands are not all finite runs the direct "tap" kernels instead
(_tap_kernels: sums over real pixels only, so NaN and inf land where native puts them).
The window copies use plain slicing, and two views made by hand (_windows): the narrow
layout's windows, whose strides are the padded grid's own (the input itself where
nothing is padded) times stride and dilation, and the wide layout's window rows, a view
of the C-contiguous flattened padded input; each bounds-checked where it is made and
tested against F.unfold or its definition (tests/test_windows.py).

Scratch buffers (padded inputs, window matrices, window gradients) come from the
workspace (_workspace) and go back to it once used (measured (8,16,32,32)->32 k3 float32
fwd+bwd: ~2200 page faults, 6.3 ms with fresh buffers; 2.8 ms once no page faulted).
"""
from __future__ import annotations

import numpy as np

from . import _depthwise_wide, _im2col_bands, _kn2row, _windows
from ._finite import all_finite
from ._im2col_route import BANDS, DEPTHWISE, KN2ROW, TAP, route
from ._tap_kernels import tap_backward, tap_forward
from ._ufunc_rows import add_bias
from ._workspace import output, recycle, scratch


def _padded(x, padding, tail=0):
    """x zero-padded: (flat, grid), flat a C-contiguous (N, C, Hp * Wp + tail) array (zero
    tail) and grid its (N, C, Hp, Wp) view. A fresh scratch copy, or views of x when it
    is C-contiguous and nothing is added, so the window copies below may read it as
    whole padded rows whatever the input's strides were."""
    top, bottom, left, right = padding
    n, c, h, w = x.shape
    if not (top or bottom or left or right or tail) and x.flags.c_contiguous:
        return x.reshape(n, c, h * w), x
    hp, wp = h + top + bottom, w + left + right
    flat = scratch((n, c, hp * wp + tail), x.dtype)
    grid = flat[:, :, :hp * wp].reshape(n, c, hp, wp)
    flat[:, :, hp * wp:] = 0
    grid[:, :, :top] = 0
    grid[:, :, top + h:] = 0
    grid[:, :, top:top + h, :left] = 0
    grid[:, :, top:top + h, left + w:] = 0
    grid[:, :, top:top + h, left:left + w] = x
    return flat, grid


def _inner(grid, padding):
    """An output() copy of the unpadded part of a padded (N, C, Hp, Wp) array."""
    top, bottom, left, right = padding
    inner = grid[:, :, top:grid.shape[2] - bottom, left:grid.shape[3] - right]
    out = output(inner.shape, inner.dtype)
    np.copyto(out, inner)
    return out


# The wide layout computes (Wp - Wo) / Wo extra output columns in all three GEMMs; with
# the page faults gone (workspace) it measured 2-4% faster at (1,64,56,56) k3 (3.7%
# extra) and 2-10% slower at 32x32 k3 inputs (6.7% extra) than the strided copies.
WIDE_MAX_EXTRA = 0.05
# grad_input alone (its GEMM and the col2im adds) takes the wide layout up to far more
# extra columns: the narrow col2im adds short strided rows, numpy's per-row overhead,
# where the wide one adds a few long contiguous runs. Measured (wide / narrow time of
# that GEMM + col2im, one process, one thread, OpenBLAS SkylakeX, the Zen 5 VM of
# docs/performance.md; float32, float64): 8x16x32x32 -> 32 k3 (7% extra) 0.81, 0.90;
# k7 (23%) 0.90, 1.00; 1x64x56x56 -> 64 k3 0.75, 0.77, k7 (12%) 0.77, 0.81, k15 (33%)
# 0.96, 0.98; 8x3x32x32 -> 16 k7 0.83, 0.95; 8x16x32x32 k15 (78%) 1.35, 1.35.
GRAD_INPUT_WIDE_MAX_EXTRA = 0.25
# Both wide layouts also copy the output side: y out of its wide buffer, gy into one (C_out
# strided rows of Wo per output row each). They pay only while that is less than what
# the window side saves (C_in kH kW strided rows per output row, per image): with more
# output channels than window rows, narrow was faster in every case measured (narrow /
# wide, fwd+bwd of the whole layer, one process, rotated, one thread, OpenBLAS SkylakeX,
# the Zen 4 VM of docs/performance.md; float32, float64): 1x3x224x224 -> 64 k3 (64 on 27
# rows) 0.78, 0.75, 'same' 0.83, 0.85; -> 32 k3 0.83, 0.83; 2x3x128x128 -> 64 k3 0.87,
# 0.74; 2x1x256x256 -> 32 k3 0.69; 4x8x64x64 -> 128 k3 0.91, 0.84; 8x1x28x28 -> 32 k3
# 'same' 0.85, 0.82; 8x4x16x16 -> 64 k3 'same' 0.91, 0.89; 16x3x32x32 -> 64 k3 'same'
# 0.92. At or below one output channel per window row it was level or mixed (4x8x64x64
# -> 64 k3 0.96, 2x16x64x64 -> 64 k3 1.01, 1x64x56x56 -> 64 k3 1.01, 1x3x224x224 -> 16
# k3 0.96, -> 64 k7 0.94 float32): those keep the extra-column rules.
WIDE_MAX_OUTPUT_ROWS = 1.0  # C_out / (C_in kH kW) up to which the wide layouts run
# grad_weight's GEMM as cols @ gy^T (the (K, C_out) transpose of the result) instead of
# gy @ cols^T where the window matrix has K rows (C_in/G kH kW, and the bias's row of
# ones) in the dtype's range here: which runs faster depends on K as much as on the
# dtype. The GEMM alone (per-image shapes as the layer runs them, the two orientations
# alternated AB / BA, one thread, OpenBLAS SkylakeX, the Intel VM of
# docs/performance.md; cols-first / gy-first), float32: K 28 (3 channels at 3x3) 1.00 at
# 8x3x32x32 -> 16, 1.15 at 1x3x224x224 -> 64; K 145-785 0.59-0.84 (8x3x32x32 k7, k15,
# 8x16x32x32 k3, k7, 1x64x56x56 k3); K 3,137 1.00 (1x64x56x56 k7), 14,401 1.13 (k15);
# float64: K 28 0.97 and 0.81; 145-148 0.87-0.93, but inside the layer 8x16x32x32 -> 32
# k3 (K 145) ran +0.36 / +0.44 ms slower side by side (two runs), so float64 keeps
# gy-first from there; K 577-785 1.08-1.63, 3,137 and 14,401 1.48-1.61. Side by side at
# these bounds against the one orientation per dtype before (float32 cols-first,
# float64 gy-first; fwd+bwd, us): 1x3x224x224 -> 64 k3 float64 -1,990 / -1,821, float32
# -228 / -482, 1x64x56x56 -> 64 k15 float32 -6,425 / -5,266, 2x3x128x128 -> 32 k3
# float64 -175, 8x3x32x32 -> 16 k3 float64 level (+2, +63, -47). The Zen 5 VM's
# figures, from which each dtype took one orientation at first (float32 cols-first
# 0.49-0.95 on the CNN shapes, float64 0.96-1.40, k7 the largest), lie on the same
# sides of these bounds. On the Zen 4 and Zen 5 VMs (tools/gemm_orientation.py, both
# dtypes, the suite's CNN shapes) float64's bounds hold (the rule's picks 1.000x / 1.001x
# the faster in all) but float32 runs cols-first faster past 4,096 rows too: 1x64x56x56
# -> 64 k15 (K 14,401) 0.88 / 0.82, where the Intel VM read 1.13, so that pick costs the
# AMD CPUs about what it gains the Intel one (side by side: +5.0 / +3.2 ms, 1.068 ->
# 1.105 / 1.091 -> 1.135 of native); the bounds stay the Intel VM's, which measured them
# in the layer too.
GRAD_WEIGHT_COLS_FIRST_ROWS = {np.dtype(np.float32): (64, 4096), np.dtype(np.float64): (1, 64)}
# The bias as one more GEMM row (a row of ones in the windows, the bias beside the
# weights) instead of passes of its own: the add over y after forward's GEMM and the sum
# of grad_output over (N, Ho, Wo) in backward (grad_weight's GEMM gives it), for one more
# row of K in two GEMMs. Side by side against the bias apart (tools/side_by_side.py, 30
# batches, fwd+bwd / native, one thread, OpenBLAS Haswell, the Zen 3 VM of
# docs/performance.md): 8x3x32x32 -> 16 k3 float32 1.154 -> 1.089 (-63 us); 1x3x224x224
# -> 64 k7 float32 0.938 -> 0.872; 4x1x64x64 -> 16 k1 float32 4.14 -> 2.50; the other
# CNN cells (8x3x32x32 k7, 8x16x32x32 -> 32 k3, 1x64x56x56 -> 64 k3, both dtypes) 0-3%
# faster, within their spread; none slower. Only for one group (the ones row is one row
# of the window matrix) and a finite bias (a planted inf or NaN then lands as native's
# add puts it). Where finite terms overflow (magnitude sums above the dtype's largest
# value, outside the accuracy contract) the bias and the sum of gy meet the partial sums
# in BLAS's order, not after them, and can land inf or NaN elsewhere than native does,
# as the GEMM's own sums already could.
BIAS_IN_GEMM = True
# grad_bias from the GEMM is a float32 sum along each image's L columns in BLAS's
# blocks: constant grad_output, relative to the exact sum, 2.6e-6 at 64x64 to 7.7e-6 at
# 1024x1024 (numpy's pairwise sum 1.2e-7; native 5e-8 to 1e-2 on 3 -> 8 channels k3), but
# 1.6e-4 on one 8192x8192 image (native 9e-7; hostile pass). Beyond this many columns an
# image, grad_bias is numpy's sum of grad_output again.
BIAS_GRAD_MAX_LENGTH = 1 << 20


def grad_weight_cols_first(dtype, window_rows: int) -> bool:
    """Whether grad_weight's GEMM runs as cols @ gy^T for windows of ``window_rows`` rows
    in ``dtype`` (GRAD_WEIGHT_COLS_FIRST_ROWS)."""
    low, high = GRAD_WEIGHT_COLS_FIRST_ROWS.get(dtype, (1, 0))
    return low <= window_rows <= high


def _bias_in_gemm(bias, groups) -> bool:
    """Whether im2col's GEMMs carry ``bias`` (see BIAS_IN_GEMM)."""
    return BIAS_IN_GEMM and bias is not None and groups == 1 and all_finite(bias)


def _wide(geometry, w_shape, max_extra=None):
    """Stride 1, few extra columns (at most ``max_extra``, WIDE_MAX_EXTRA by default, of
    the output's width) and no more output channels than window rows (times
    WIDE_MAX_OUTPUT_ROWS): windows along whole padded rows."""
    max_extra = WIDE_MAX_EXTRA if max_extra is None else max_extra
    c_out, c_group, k_h, k_w = w_shape
    extra = geometry.dilation[1] * (k_w - 1)
    window_rows = geometry.groups * c_group * k_h * k_w
    return (geometry.stride == (1, 1) and extra <= max_extra * geometry.out_hw[1]
            and c_out <= WIDE_MAX_OUTPUT_ROWS * window_rows)


def _window_source(x, w_shape, geometry, wide):
    """(flat, grid, L): x padded as the window copies read it (_padded, with the zero
    tail the wide layout's last stretches run into) and the window matrix's row length
    (Ho Wp wide, Ho Wo narrow). The caller recycles flat where grid is not x."""
    flat, grid = _padded(x, geometry.padding,
                         geometry.dilation[1] * (w_shape[3] - 1) if wide else 0)
    if wide and not flat.flags.c_contiguous:
        raise AssertionError("im2col wide layout needs a C-contiguous padded input")
    out_h, out_w = geometry.out_hw
    return flat, grid, out_h * grid.shape[3] if wide else out_h * out_w


def im2col_state(x, w, geometry, keep_cols):
    """The state im2col_forward(x, w, None, geometry, keep_cols) gives backward, without
    its output: for a backward whose forward kept nothing (saved-tensor hooks, the
    KEPT_LIMIT_BYTES limit). Only the window matrix is built (where keep_cols), not
    forward's GEMM: the same windows, bit for bit."""
    path = route(x, w, geometry)
    if path is not None:  # (their backward rebuilds what it needs from x)
        return None, path, x, None
    top, bottom, left, right = geometry.padding
    padded_hw = (x.shape[2] + top + bottom, x.shape[3] + left + right)
    wide = _wide(geometry, w.shape)
    if _im2col_bands.runs(x.shape, w.shape, geometry, x.dtype, wide):
        return padded_hw, BANDS, x, None  # (its backward fills its bands again)
    if not keep_cols:
        return padded_hw, wide, x, None
    c_group, k_h, k_w = w.shape[1:]
    flat, grid, length = _window_source(x, w.shape, geometry, wide)
    cols = scratch((x.shape[0], geometry.groups, c_group * k_h * k_w, length), x.dtype)
    _windows.fill_windows(cols, flat, grid, (k_h, k_w), geometry, wide)
    if grid is not x:  # a scratch copy, not views of the input
        recycle(flat)
    return padded_hw, wide, x, cols


def im2col_forward(x, w, bias, geometry, keep_cols):
    """y (N, C_out, Ho, Wo) (+ bias, when not None) in an output() buffer, and the state
    im2col_backward takes (with the window matrix (N, G, C_in/G * kH * kW, L) when
    keep_cols, else None).

    At stride 1 with few extra columns and no more output channels than window rows
    ("wide", see WIDE_MAX_EXTRA and WIDE_MAX_OUTPUT_ROWS), L = Ho * Wp: each window row
    is one contiguous stretch of the flattened padded input (a tail of zeros covers the
    last stretches), so im2col is kH * kW block copies and col2im kH * kW contiguous
    adds; the Wp - Wo extra columns of each output row are computed and dropped
    (backward gives them a zero gradient).
    Otherwise L = Ho * Wo from strided slices. Operands that are not all finite take the
    tap kernels (state marked "tap"), as does padding no window reads
    (_im2col_route); depthwise convs take _depthwise_wide on finite
    operands (state "depthwise"), else the tap kernels too; fewer output than input
    channels take _kn2row where it runs (state "kn2row"). The state ends with the
    window matrix (or None), which the caller may recycle() once the graph node dies.

    With one group and a finite bias, the bias rides in the forward GEMM (BIAS_IN_GEMM):
    the window matrix gets a last row of ones and the weight matrix the bias as a last
    column; grad_weight's GEMM then gives grad_bias in its last column too.
    """
    path = route(x, w, geometry)
    if path is DEPTHWISE:
        return _depthwise_wide.forward(x, w, bias, geometry), (None, DEPTHWISE, x, None)
    if path is TAP:
        return tap_forward(x, w, bias, geometry), (None, TAP, x, None)
    if path is KN2ROW:
        y, flat = _kn2row.forward(x, w, bias, geometry)
        if not keep_cols:
            recycle(flat)
            flat = None
        return y, (None, KN2ROW, x, flat)
    n, c_in = x.shape[:2]
    c_out, c_group, k_h, k_w = w.shape
    (out_h, out_w), groups = geometry.out_hw, geometry.groups
    wide = _wide(geometry, w.shape)
    flat, grid, length = _window_source(x, w.shape, geometry, wide)
    hp, wp = grid.shape[2:]
    if _im2col_bands.runs(x.shape, w.shape, geometry, x.dtype, wide):
        y = _im2col_bands.forward(flat, w, bias, _bias_in_gemm(bias, groups), geometry, wp)
        if grid is not x:
            recycle(flat)
        return y, ((hp, wp), BANDS, x, None)
    window_rows = groups * c_group * k_h * k_w
    bias_row = _bias_in_gemm(bias, groups)
    # the whole batch's windows only when kept for grad_weight, else one chunk's
    chunks = _windows.image_chunks(n, (window_rows + bias_row) * length * x.itemsize,
                                   k_h * k_w, bounded=not keep_cols)
    held = n if keep_cols else _windows.largest(chunks)
    cols = scratch((held, groups, c_group * k_h * k_w + bias_row, length), x.dtype)
    w_groups = w.reshape(groups, c_out // groups, c_group * k_h * k_w)
    if bias_row:  # (G = 1) y = [w | bias] @ [windows; ones]
        cols[:, :, -1] = 1
        w_groups = np.concatenate((w_groups, bias.reshape(1, c_out, 1)), axis=2)
    if wide:
        y_wide = y_groups = scratch((n, groups, c_out // groups, length), x.dtype)
    else:
        y = output((n, c_out, out_h, out_w), x.dtype)
        y_groups = y.reshape(n, groups, c_out // groups, -1)
    for images in chunks:  # each chunk's GEMM reads the windows just filled
        windows = cols[images] if keep_cols else cols[:images.stop - images.start]
        _windows.fill_windows(windows[:, :, :window_rows] if bias_row else windows,
                              flat[images], grid[images], (k_h, k_w), geometry, wide)
        np.matmul(w_groups, windows, out=y_groups[images])
    if grid is not x:  # a scratch copy, not views of the input
        recycle(flat)
    if wide:
        y_kept = y_wide.reshape(n, c_out, out_h, wp)[..., :out_w]
        y = output(y_kept.shape, x.dtype)
        if bias is None or bias_row:
            np.copyto(y, y_kept)
        else:  # the bias rides on the copy out
            np.add(y_kept, bias[:, None, None], out=y)
        recycle(y_wide)
    elif bias is not None and not bias_row:
        add_bias(y, bias)
    if not keep_cols:
        recycle(cols)
        cols = None
    return y, ((hp, wp), wide, x, cols)


def im2col_backward(gy, w, state, geometry, need_input, need_weight):
    """(grad_input, grad_weight, grad_bias), fresh arrays or None, from im2col_forward's
    state; grad_bias only where grad_weight's GEMM gave it (the window matrix kept with
    its row of ones, BIAS_IN_GEMM), else None: the caller sums grad_output."""
    padded_hw, wide, x, cols = state
    if wide is TAP or not all_finite(gy):
        return (*tap_backward(gy, w, x, geometry, need_input, need_weight), None)
    if wide is DEPTHWISE:
        return (*_depthwise_wide.backward(gy, w, x, geometry, need_input, need_weight), None)
    if wide is KN2ROW:
        return (*_kn2row.backward(gy, w, x, cols, geometry, need_input, need_weight), None)
    if wide is BANDS:
        return _bands_backward(gy, w, x, padded_hw, geometry, need_input, need_weight)
    hp, wp = padded_hw
    n, c_out, out_h, out_w = gy.shape
    _, c_group, k_h, k_w = w.shape
    groups = geometry.groups
    # grad_input may run wide where forward ran narrow (GRAD_INPUT_WIDE_MAX_EXTRA);
    # grad_weight takes forward's layout, that of its window matrix.
    input_wide = need_input and (wide or _wide(geometry, w.shape, GRAD_INPUT_WIDE_MAX_EXTRA))
    gy_wide = None
    if wide or input_wide:  # gy on whole padded rows, zero on the dropped columns
        gy_wide = scratch((n, c_out, out_h, wp), gy.dtype)
        gy_wide[..., :out_w] = gy
        gy_wide[..., out_w:] = 0
    group_shape = (n, groups, c_out // groups, -1)
    grad_x = grad_w = grad_b = None
    if need_weight:
        grad_w, grad_b = _grad_weight((gy_wide if wide else gy).reshape(group_shape), cols,
                                      w.shape)
    if need_input:
        grad_x = _col2im((gy_wide if input_wide else gy).reshape(group_shape), w,
                         (n, groups * c_group, hp, wp), geometry, input_wide)
    recycle(gy_wide)
    return grad_x, grad_w, grad_b


def _bands_backward(gy, w, x, padded_hw, geometry, need_input, need_weight):
    """im2col_backward's result where forward ran in bands (_im2col_bands)."""
    flat = grid = grad_grid = grad_x = None
    if need_weight:  # the bands' windows are filled again from the padded input
        flat, grid, _ = _window_source(x, w.shape, geometry, True)
    unpadded = not any(geometry.padding)  # then grad_grid is the result itself
    if need_input:
        grad_grid = (output if unpadded else scratch)((x.shape[0], x.shape[1], *padded_hw),
                                                      x.dtype)
        grad_grid.fill(0)
    grad_w, grad_b = _im2col_bands.backward(
        gy, w, flat, None if grad_grid is None else grad_grid.reshape(*x.shape[:2], -1),
        geometry, padded_hw[1], lambda rows: grad_weight_cols_first(gy.dtype, rows),
        BIAS_GRAD_MAX_LENGTH)
    if grid is not None and grid is not x:
        recycle(flat)
    if need_input:
        grad_x = grad_grid if unpadded else _inner(grad_grid, geometry.padding)
        if not unpadded:
            recycle(grad_grid)
    return grad_x, grad_w, grad_b


def _grad_weight(gy_groups, cols, w_shape, cols_first=None):
    """(grad_weight, grad_bias): the sum over images of gy @ cols^T, (C_out, C_in/G, kH,
    kW), in the GEMM orientation grad_weight_cols_first picks (``cols_first``, where
    given, forces one: tools/gemm_orientation.py times both); and, where
    cols ends with forward's row of ones (BIAS_IN_GEMM: one more row than the weight
    has taps) and images have at most BIAS_GRAD_MAX_LENGTH columns, the last column of
    that product, the sum of gy (C_out,), else None."""
    if cols_first is None:
        cols_first = grad_weight_cols_first(gy_groups.dtype, cols.shape[-2])
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
    if cols.shape[-1] <= BIAS_GRAD_MAX_LENGTH:
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
