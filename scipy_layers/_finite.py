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


def all_finite(*arrays) -> bool:
    """True when every element of every array (None skipped) is finite.

    A sum is a fast, allocation-free reduction: finite terms give a finite sum unless the
    sum overflows, so only then (or for a real NaN/inf) is the exact elementwise check
    run. The answer is always exact; the fast path only decides how fast it comes.
    Callers run under ``numpy_quiet`` (the layers' numpy bodies do), so an overflowing sum
    warns of nothing; no errstate of its own (~2 us a call, most of a 16x16 check).
    """
    for array in arrays:
        if array is None or array.size == 0:
            continue
        if not math.isfinite(array.sum()) and not np.isfinite(array).all():
            return False
    return True
