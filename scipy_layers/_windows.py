"""The window copies of the batched conv's im2col method (_nchw_kernels), and the
chunks of images they run in: im2col's window matrix filled from a padded input, and
col2im's window gradients added back into one. Plain slicing, and two strided views,
each bounds-checked where it is made: fill_windows' narrow windows, whose strides are
the padded grid's own scaled by stride and dilation (right for any layout of the grid:
the input itself where there is no padding, channels_last, transposed, step-sliced or
expanded), and its wide window rows, a view of the C-contiguous flattened padded input
(_nchw_kernels._padded).

Layouts (see _im2col_layout.WIDE_MAX_EXTRA): "wide" windows run along whole padded rows
of the flattened image (stride 1), "narrow" ones are strided slices of the padded grid.
"""
from __future__ import annotations

import operator

import numpy as np
from numpy.lib.stride_tricks import as_strided

from ._ufunc_rows import rows_in_place

# Images per chunk: im2col fills a chunk's windows and at once multiplies them (col2im
# likewise makes a chunk's window gradients and at once adds them up), so the GEMM reads,
# and the adds read, windows still in cache; over the whole batch the window matrix
# (MBs) left the cache before its GEMM read it. Measured (one process, one thread,
# OpenBLAS SkylakeX, the Zen 4 VM of docs/performance.md): 8x3x32x32 -> 16 k7 float64's
# fills 0.30 ms warm, 0.74-0.97 ms cold, 0.80 ms inside the layer. A chunk takes at least
# MIN_TAP_BYTES a window copy, as each copy is one numpy call (~1 us): one image a chunk
# made 8x3x32x32 k7 slower (+1.0 ms float64, +0.6 ms float32). Chunks of CHUNK_BYTES /
# MIN_TAP_BYTES, fwd+bwd over native, rotated, 25 batches, against one chunk: 8x16x32x32
# -> 32 k3 float64 1.03 (1.10), float32 1.75 (1.91); 8x3x32x32 -> 16 k3 float32 0.81
# (0.90), float64 1.03 (1.02); k7 float64 1.15 (1.22), float32 1.33 (1.31); 2 MiB / 64
# KiB and 2 MiB / 32 KiB within 0.05 of those.
CHUNK_BYTES = 1 << 20
MIN_TAP_BYTES = 1 << 16
# Chunks that MIN_TAP_BYTES makes larger than this (a quarter of the 32 MiB L3 here)
# leave the cache as the whole batch does: they would only add numpy calls, so the batch
# runs whole where its windows are held whole anyway. 8x16x32x32 -> 32 k15 float32
# (chunks of 4 images, 18.7 MB) ran 3.1-3.2 ms (5%) slower in chunks, rotated, two runs,
# and 4% slower in one-image chunks; chunks of 3.2 MB (8x3x32x32 -> 16 k7 float64) and
# 4.2 MB (8x16x32x32 -> 32 k7, both dtypes) ran 3-22% faster.
MAX_CHUNK_BYTES = 8 << 20
# Both layouts' windows are one copy from a strided view from this many taps on, instead
# of one numpy call per tap (~0.5 us each, and a strided destination each: (M, C_in, Ho,
# Wo) blocks kH kW Ho Wo apart). Fill alone, one chunk as the layer runs it, one process,
# one thread (Zen 4 VM of docs/performance.md), one copy / per tap: narrow 5 taps
# 0.74-0.87, 3x3 0.79-0.94, 3x5 0.82-0.86, 7x7 0.73-0.79 (1x64x56x56 float32 0.49: 3.5
# -> 1.7 ms); wide 3x3 0.54-0.57 on 3 channels, 1x64x56x56 0.57 / 0.86 (float32 /
# float64), 1x3x224x224 0.87-0.91, its 7x7 0.95 / 1.03; a 1x1 kernel 1.06 (the view
# costs ~1-3 us to make), so fewer taps keep the per-tap copies.
ONE_COPY_MIN_TAPS = 4


def image_chunks(n, bytes_per_image, taps=1, bounded=False):
    """Slices of the batch: the fewest near-equal chunks of at most M images each, M as
    many as fit CHUNK_BYTES (at least one), or more where a window copy (1 / taps of a
    chunk) of fewer would move less than MIN_TAP_BYTES. Where M images take more than
    MAX_CHUNK_BYTES: the whole batch, or, ``bounded`` (the caller holds one chunk's
    windows only, and their memory must not grow with the batch), as many images as
    fit MAX_CHUNK_BYTES (at least one)."""
    bytes_per_image = max(1, bytes_per_image)
    most = max(1, CHUNK_BYTES // bytes_per_image, -(-MIN_TAP_BYTES * taps // bytes_per_image))
    if most * bytes_per_image > MAX_CHUNK_BYTES:
        most = max(1, MAX_CHUNK_BYTES // bytes_per_image) if bounded else max(1, n)
    count = -(-n // most)  # (0 for an empty batch: no chunk)
    bounds = [n * part // count for part in range(count + 1)] if count else []
    return [slice(start, stop) for start, stop in zip(bounds, bounds[1:])]


def largest(chunks) -> int:
    """The images in the largest of image_chunks' chunks (0 for none): a one-chunk
    buffer's length."""
    return max((chunk.stop - chunk.start for chunk in chunks), default=0)


def _wide_starts(kernel, dilation, wp):
    """(i, j, start) of each window row: where it begins in a flattened padded image."""
    for i in range(kernel[0]):
        for j in range(kernel[1]):
            yield i, j, i * dilation[0] * wp + j * dilation[1]


def _narrow_slices(kernel, geometry):
    """(i, j, rows, columns) of each window: its strided slices of the padded grid."""
    (d_h, d_w), (s_h, s_w), (out_h, out_w) = geometry.dilation, geometry.stride, geometry.out_hw
    for i in range(kernel[0]):
        rows = slice(i * d_h, i * d_h + s_h * (out_h - 1) + 1, s_h)
        for j in range(kernel[1]):
            yield i, j, rows, slice(j * d_w, j * d_w + s_w * (out_w - 1) + 1, s_w)


def fill_windows(cols, flat, grid, kernel, geometry, wide):
    """The window matrix of some images: cols (M, G, C_in/G * kH * kW, L) from their
    padded input, as whole padded rows of ``flat`` (wide) or strided slices of ``grid``.
    ``cols`` may be a view with gaps between images (the rows of a longer matrix)."""
    m, c_in = grid.shape[:2]
    if wide:  # window row (i, j): one contiguous stretch of each flattened padded image
        length = cols.shape[-1]
        taps = cols.reshape(m, c_in, *kernel, length)
    else:  # plain slicing of the padded grid: right for any strides it has
        taps = cols.reshape(m, c_in, *kernel, *geometry.out_hw)
    # splitting axes of a view is a view; were it ever a copy, the windows would be lost
    if taps.size and not np.may_share_memory(taps, cols):
        raise AssertionError("fill_windows: the window matrix could not be split in place")
    if wide and kernel[0] * kernel[1] >= ONE_COPY_MIN_TAPS and flat.flags.c_contiguous:
        np.copyto(taps, _wide_windows(flat, kernel, geometry.dilation, grid.shape[3], length))
    elif wide:
        for i, j, start in _wide_starts(kernel, geometry.dilation, grid.shape[3]):
            taps[:, :, i, j] = flat[:, :, start:start + length]
    elif kernel[0] * kernel[1] >= ONE_COPY_MIN_TAPS:
        np.copyto(taps, _narrow_windows(grid, kernel, geometry))
    else:
        for i, j, rows, columns in _narrow_slices(kernel, geometry):
            taps[:, :, i, j] = grid[:, :, rows, columns]


def _wide_windows(flat, kernel, dilation, wp, length, offset=0):
    """Every window row of the C-contiguous ``flat`` (M, C, Hp Wp + tail) as a read-only
    view (M, C, kH, kW, length): row (i, j) is flat[m, c, offset + i dH Wp + j dW:][:length]
    (``offset``: where a band of output rows starts, _im2col_bands), so its strides are
    flat's own and dH Wp, dW elements. Bounds-checked here (the last row must end within
    the tail)."""
    m, c, size = flat.shape
    d_h, d_w, k_h, k_w, wp, length, offset = (operator.index(value) for value in (
        *dilation, *kernel, wp, length, offset))
    if (min(d_h, d_w, k_h, k_w, wp, length) < 1 or offset < 0
            or not flat.flags.c_contiguous):
        raise AssertionError(f"im2col wide windows need a C-contiguous input, steps and "
                             f"sizes >= 1 and an offset >= 0, got dilation {dilation}, kernel "
                             f"{kernel}, width {wp}, length {length}, offset {offset}")
    _check_wide_reach(kernel, dilation, wp, length, offset, size)
    st_m, st_c, step = flat.strides
    base = flat.reshape(-1)[offset:] if offset else flat  # (a view: flat is C-contiguous)
    return _read_only_view(base, (m, c, k_h, k_w, length),
                           (st_m, st_c, d_h * wp * step, d_w * step, step))


def _check_wide_reach(kernel, dilation, wp, length, offset, size) -> None:
    """The last wide window row (from ``offset``) must end within the flattened padded
    image and its tail of ``size`` elements."""
    reach = (kernel[0] - 1) * dilation[0] * wp + (kernel[1] - 1) * dilation[1]
    if offset + reach + length > size:
        raise AssertionError(f"im2col wide windows {kernel} of length {length} from {offset} "
                             f"run past the flattened padded image ({size} elements)")


def _narrow_windows(grid, kernel, geometry):
    """Every window of ``grid`` (M, C, Hp, Wp) as a read-only view (M, C, kH, kW, Ho, Wo):
    element (m, c, i, j, y, x) is grid[m, c, y sH + i dH, x sW + j dW], so its strides are
    grid's own (any layout, 0 for a broadcast dim) times dilation and stride. What
    ``sliding_window_view`` would give, without its ~9 us of argument handling."""
    m, c, height, width = grid.shape
    # Steps and sizes as Python ints >= 1 (a negative or wrapping numpy int would pass
    # the bounds check below and read outside the grid); the view's last element then
    # lies in the grid, and its first is the grid's.
    d_h, d_w, s_h, s_w, out_h, out_w, k_h, k_w = (operator.index(value) for value in (
        *geometry.dilation, *geometry.stride, *geometry.out_hw, *kernel))
    if min(d_h, d_w, s_h, s_w, out_h, out_w, k_h, k_w) < 1:
        raise AssertionError(f"im2col windows need steps and sizes >= 1, got dilation "
                             f"{geometry.dilation}, stride {geometry.stride}, kernel {kernel}, "
                             f"output {geometry.out_hw}")
    if (out_h - 1) * s_h + (k_h - 1) * d_h >= height or (
            (out_w - 1) * s_w + (k_w - 1) * d_w >= width):
        raise AssertionError(f"im2col windows {kernel} of output {geometry.out_hw} run past "
                             f"the padded grid {grid.shape[2:]}")
    st_m, st_c, st_h, st_w = grid.strides
    return _read_only_view(grid, (m, c, k_h, k_w, out_h, out_w),
                           (st_m, st_c, st_h * d_h, st_w * d_w, st_h * s_h, st_w * s_w))


def _read_only_view(base, shape, strides):
    """A read-only view of ``base`` with ``shape`` and ``strides`` (bytes), which the
    caller has bounds-checked. An axis of one entry never steps: stride 0 there, so a
    huge stride or dilation on it, which the caller's bounds do not limit, cannot
    overflow. numpy's buffer view where ``base`` is C-contiguous (~0.7 us; numpy checks
    the bounds again), else as_strided (~3 us of Python)."""
    strides = tuple(0 if size == 1 else stride for size, stride in zip(shape, strides))
    if not base.flags.c_contiguous:
        return as_strided(base, shape, strides, writeable=False)
    view = np.ndarray(shape, base.dtype, buffer=base, strides=strides)
    view.flags.writeable = False
    return view


def add_wide_windows(flat, taps, wp, dilation):
    """flat (M, C_in, Hp * Wp) gets the window gradients taps (M, C_in, kH, kW, L), each
    window row (i, j) added to its contiguous stretch; the first one copied (flat's first
    L columns are taken for it, the rest must be zero). The last dW (kW - 1) columns of
    the last rows run past the image, on dropped output columns: they are not added
    (were a tail kept for them, it would be thrown away)."""
    length, end = taps.shape[-1], flat.shape[-1]
    flat[:, :, :length] = taps[:, :, 0, 0]
    with rows_in_place(length):  # M * C_in strided rows of `length` per add
        for i, j, start in _wide_starts(taps.shape[2:4], dilation, wp):
            if i or j:
                stop = min(start + length, end)
                flat[:, :, start:stop] += taps[:, :, i, j, :stop - start]


def add_windows(grid, taps, geometry):
    """grid (M, C_in, Hp, Wp), zero, gets the window gradients taps (M, C_in, kH, kW, Ho,
    Wo) added by strided slices."""
    with rows_in_place(taps.shape[-1] if geometry.stride[1] == 1 else 0):  # contiguous rows
        for i, j, rows, columns in _narrow_slices(taps.shape[2:4], geometry):
            grid[:, :, rows, columns] += taps[:, :, i, j]


def fill_wide_band(cols, flat, kernel, dilation, wp, offset):
    """One band of the wide window matrix: cols (C kH kW, L) gets the window rows of the
    C-contiguous ``flat`` (1, C, Hp Wp + tail), one image, that start ``offset`` elements
    into each channel (the band's first output row times Wp)."""
    length = cols.shape[-1]
    taps = cols.reshape(flat.shape[1], *kernel, length)
    if taps.size and not np.may_share_memory(taps, cols):
        raise AssertionError("fill_wide_band: the band could not be split in place")
    if kernel[0] * kernel[1] >= ONE_COPY_MIN_TAPS:
        np.copyto(taps, _wide_windows(flat, kernel, dilation, wp, length, offset)[0])
    else:  # (a view's set-up costs more than a few copies; bounds as the view checks)
        _check_wide_reach(kernel, dilation, wp, length, offset, flat.shape[-1])
        for i, j, start in _wide_starts(kernel, dilation, wp):
            taps[:, i, j] = flat[0, :, offset + start:offset + start + length]


def add_wide_band(flat, taps, wp, dilation, offset):
    """flat (C_in, Hp * Wp), one image's padded input gradient, gets the window gradients
    taps (C_in, kH, kW, L) of one band, each window row (i, j) added to its stretch from
    ``offset`` (the band's first output row times Wp). Bands overlap by kH - 1 rows, so
    every row is added, none copied (flat starts at zero). As add_wide_windows, the
    stretches that run past the image (on dropped output columns) are cut there."""
    length, end = taps.shape[-1], flat.shape[-1]
    with rows_in_place(length):  # C_in strided rows of `length` per add
        for i, j, start in _wide_starts(taps.shape[1:3], dilation, wp):
            begin = offset + start
            stop = min(begin + length, end)
            flat[:, begin:stop] += taps[:, i, j, :stop - begin]
