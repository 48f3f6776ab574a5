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
  Those layout rules, grad_weight's GEMM orientation and the bias as a GEMM row are
  _im2col_layout's; grad_weight's GEMM and grad_input's col2im, _im2col_grads's.
  The batch runs in chunks of images (_windows.CHUNK_BYTES) so that each GEMM reads
  windows just filled, and each col2im adds window gradients just made, while in cache.
  With fewer output than input channels (a group) at stride 1 the layout turns round
  (kn2row, _kn2row: the GEMM first, then shift-adds of C_out kH kW rows); depthwise
  convs run along the tall rows of _depthwise_wide instead (with a channel multiplier
  only on large images: _im2col_route). Where one image's wide
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
from . import _im2col_layout as layout
from ._finite import all_finite
from ._im2col_grads import _col2im, _grad_weight, _inner
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
    wide = layout._wide(geometry, w.shape)
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
    (_im2col_route); depthwise convs of one output channel an input channel take
    _depthwise_wide on finite operands (state "depthwise"), else the tap kernels too
    (with a channel multiplier, finite: im2col per group, DEPTHWISE_MAX_MULTIPLIER,
    but for large images, DEPTHWISE_MAX_IMAGE_WINDOW_BYTES); fewer output than input
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
    wide = layout._wide(geometry, w.shape)
    flat, grid, length = _window_source(x, w.shape, geometry, wide)
    hp, wp = grid.shape[2:]
    if _im2col_bands.runs(x.shape, w.shape, geometry, x.dtype, wide):
        y = _im2col_bands.forward(flat, w, bias, layout._bias_in_gemm(bias, groups), geometry, wp)
        if grid is not x:
            recycle(flat)
        return y, ((hp, wp), BANDS, x, None)
    window_rows = groups * c_group * k_h * k_w
    bias_row = layout._bias_in_gemm(bias, groups)
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
    input_wide = need_input and (wide or layout._wide(geometry, w.shape,
                                                      layout.GRAD_INPUT_WIDE_MAX_EXTRA))
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
        geometry, padded_hw[1], lambda rows: layout.grad_weight_cols_first(gy.dtype, rows),
        layout.BIAS_GRAD_MAX_LENGTH)
    if grid is not None and grid is not x:
        recycle(flat)
    if need_input:
        grad_x = grad_grid if unpadded else _inner(grad_grid, geometry.padding)
        if not unpadded:
            recycle(grad_grid)
    return grad_x, grad_w, grad_b
