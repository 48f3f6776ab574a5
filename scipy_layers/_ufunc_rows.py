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
2048: 0.27, 4096-12000: 0.98-1.03. So rows from MIN_ROW elements take it. Elementwise
ops give the same bits either way (the buffer only decides how the loop is cut; not so a
reduction, whose partial sums follow the buffer: none runs inside), and the buffer size
is numpy's per-thread (per-context) state, set and put back around the ops.
"""
from __future__ import annotations

import numpy as np

MIN_ROW = 128  # elements: below, float32 loses (rows of 48: 1.55x the time)
_BUFFER_STEP = 16  # np.setbufsize takes multiples of 16


class rows_in_place:
    """``with rows_in_place(row_length):`` numpy's ufunc buffer cut to one row (rounded
    down to a multiple of 16, at most numpy's default) for rows of at least MIN_ROW
    elements; nothing changes for shorter rows. A class, not a generator context: ~1 us
    less per use."""

    __slots__ = ("_size", "_previous")

    def __init__(self, row_length: int):
        default = np.getbufsize()
        size = row_length // _BUFFER_STEP * _BUFFER_STEP
        self._size = min(size, default) if row_length >= MIN_ROW and size < default else None

    def __enter__(self):
        if self._size is not None:
            self._previous = np.setbufsize(self._size)
        return self

    def __exit__(self, *exc_info):
        if self._size is not None:
            np.setbufsize(self._previous)
        return False
