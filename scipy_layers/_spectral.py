"""Math shared by the numpy and CuPy versions of the FFT layer's gradient."""
from __future__ import annotations


def mirror_weights(xp, n_columns: int, width: int, dtype):
    """c_j of the true gradient of |rfft2(x)|: 1/2 for the columns 1..(W-1)//2 that
    irfft2 counts twice (as +j and its Hermitian mirror), 1 for column 0 and, for even
    W, the Nyquist column W/2. ``xp`` is numpy or cupy."""
    weights = xp.full(n_columns, 0.5, dtype=dtype)
    for column in mirror_ones(n_columns, width):
        weights[column] = 1.0
    return weights


def mirror_ones(n_columns: int, width: int) -> tuple:
    """The columns where :func:`mirror_weights` is 1 (column 0 and, for even W, the last):
    everywhere else it is 1/2."""
    return (0, n_columns - 1) if width % 2 == 0 and n_columns > 1 else (0,)
