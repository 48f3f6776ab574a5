"""Elementwise numpy ops on strided arrays with long contiguous rows, without numpy's
copies through its ufunc buffer.

Why: a ufunc whose operand is not contiguous as a whole (a window of whole padded rows,
say: (N, C, L) in a longer (N, C, R) array) runs through numpy's buffered iterator, which
copies operands through a buffer of ``np.getbufsize()`` elements (8192) so that its inner
loop is long, even where every row is already a contiguous run (numpy gh-17471). With a
buffer no longer than one row there is nothing to gain by copying and the loop runs on
the rows in place. Measured (numpy 2.4.6, one thread, the Zen 4 VM of
docs/performance.md; strided in-place add of ~40,000 elements, time with the buffer at
the row length / at 8192): float32 rows of 48: 1.55, 96: 1.02, 128: 0.86, 256: 0.60,
1024: 0.42, 2048: 0.33, 4096-12000: 0.92-1.01; float64 48: 0.85, 128: 0.59, 1024: 0.32,
2048: 0.27, 4096-12000: 0.98-1.03. So rows from MIN_ROW elements take it. A contiguous
array plus a constant per row (a bias broadcast along rows of Ho * Wo) gains later, the
per-row loop costing more than the copy it saves on short rows (same VM; N x C rows of
1x64, 8x16, 8x64): float32 rows of 400: 1.09-1.59, 576: 0.75-1.25, 784: 0.62-0.95,
1024: 0.63-0.88, 1600: 0.51-0.71; float64 256: 0.80-1.29, 400: 0.62-1.03, 576:
0.58-0.86, 1024: 0.50-0.67; so those rows take it from BIAS_MIN_ROW_BYTES (`add_bias`).
A strided input plus a bias into a contiguous output (rows of Wo in Wp) was mixed, 0.37
to 1.79 for rows of 128-400, and does not take it. Elementwise ops give the same bits
either way (the buffer only decides how the loop is cut; not so a reduction, whose
partial sums follow the buffer: none runs inside), and the buffer size is numpy's
per-thread (per-context) state, set and put back around the ops.
"""
from __future__ import annotations

import math
import operator

import numpy as np

MIN_ROW = 128  # elements: below, float32 loses (rows of 48: 1.55x the time)
BIAS_MIN_ROW_BYTES = 3072  # float32 rows of 768, float64 of 384
_BUFFER_STEP = 16  # np.setbufsize takes multiples of 16


class rows_in_place:
    """``with rows_in_place(row_length):`` numpy's ufunc buffer cut to one row (rounded
    down to a multiple of 16) for rows of at least MIN_ROW elements shorter than the
    buffer in force (numpy's default 8192, or what the caller set); nothing changes
    otherwise. A class, not a generator context: ~1 us less per use."""

    __slots__ = ("_size", "_previous")

    def __init__(self, row_length: int, min_row: int | None = None):
        row_length = operator.index(row_length)  # an int, checked before numpy's state
        size = row_length // _BUFFER_STEP * _BUFFER_STEP
        shortest = MIN_ROW if min_row is None else min_row
        self._size = size if row_length >= shortest and size < np.getbufsize() else None

    def __enter__(self):
        if self._size is not None:
            self._previous = np.setbufsize(self._size)
        return self

    def __exit__(self, *exc_info):
        if self._size is not None:
            np.setbufsize(self._previous)
        return False


def add_bias(y: np.ndarray, bias: np.ndarray) -> None:
    """y[:, c] += bias[c] in place for y of (N, C, H, W): on a C-contiguous y as N x C rows
    of H * W, with the buffer cut to one row from BIAS_MIN_ROW_BYTES a row."""
    if not y.flags.c_contiguous:
        y += bias[:, None, None]
        return
    rows = y.reshape(*y.shape[:2], math.prod(y.shape[2:]))  # a view: y is C-contiguous
    shortest = -(-BIAS_MIN_ROW_BYTES // y.itemsize)
    with rows_in_place(rows.shape[-1], min_row=shortest):
        np.add(rows, bias[:, None], out=rows)
