"""The one cheap pass that decides whether a convolution pass may take a fast method.

Fast methods (FFT, the shift and im2col layouts with junk columns, scipy.signal's
zero-filled full convolution) form products that a direct sum over real pixels never
forms (padding x weight, spectrum x spectrum): with finite operands those products are
exact zeros or cancel, but one NaN or inf would reach outputs native torch keeps finite.
So each pass checks its operands first and runs the direct "tap" kernels when any is
not finite.
"""
from __future__ import annotations

import math

import numpy as np


# all_finite looks for an expanded view's repeats only in arrays larger than this: a
# smaller one sums in well under a millisecond however it is laid out.
STORED_MIN_SIZE = 1 << 20


def stored(array: np.ndarray) -> np.ndarray:
    """``array`` without the repeats of an expanded view (each stride-0 dim cut to its one
    stored index): the same elements for a reduction such as a sum's finiteness or a max,
    where the view itself may be far larger than memory (an expanded 2**24 x 2**24 image
    took hours to sum before the layer could fail to allocate its output, hostile pass
    112). A view of ``array``, or ``array`` itself where no stride is 0."""
    if 0 not in array.strides:
        return array
    return array[tuple(slice(0, 1) if step == 0 else slice(None) for step in array.strides)]


def all_finite(*arrays, blas: bool = True) -> bool:
    """True when every element of every array (None skipped) is finite.

    Fast path: the sum of squares (BLAS dot of the array with itself, half the time of
    ``sum()``, which pays numpy's reduction set-up; 64x64 float32 1.1 against 2.2 us,
    1024x1024 92 against 233 us). Its terms are >= 0, so nothing cancels: it is finite
    only when every element is and it does not overflow (|x| above ~1e19 in float32,
    ~1e154 in float64, or their sums). Only then, or for a real NaN/inf, is the exact
    elementwise check run: the answer is always exact; the fast path only decides how
    fast it comes. Arrays not contiguous in memory (a view with steps) take a plain
    sum, which needs no copy. Callers run under ``numpy_quiet`` (the layers' numpy
    bodies do), so an overflow warns of nothing; no errstate of its own (~2 us a call,
    most of a 16x16 check).

    ``blas=False``: the plain sum for every array, for callers whose kernels run no BLAS
    (scipy.signal's): a call that touches BLAS only for this check pays for bringing
    its code back into the core's caches, ~4 us of a 16x16 single-channel forward+backward
    (docs/performance.md), more than the dot saves on arrays that small.
    """
    for array in arrays:
        if array is None or array.size == 0:
            continue
        if blas and (array.flags.c_contiguous or array.flags.f_contiguous):
            flat = array.ravel(order="K")  # (a view: contiguous in C or Fortran order)
            total = np.dot(flat, flat)
        else:
            if array.size > STORED_MIN_SIZE and 0 in array.strides:  # (inline, the size
                # first: the direct method's every pass comes here, ~0.5 us a call otherwise)
                array = stored(array)
            total = np.add.reduce(array, axis=None)
        if not math.isfinite(total) and not np.isfinite(array).all():
            return False
    return True
