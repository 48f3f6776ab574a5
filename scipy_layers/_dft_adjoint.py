"""The adjoint of the FFT layer's 2-D real transform (:func:`scipy_layers._dft_axes.rfft2`),
axis by axis in the reverse order, each axis as forward's plan ran it: by scipy.fft
(irfft, with the per-column weights the caller folds in) or by the adjoint DFT matrix
product; the FFT layer's gradient applies it.
"""
from __future__ import annotations

import functools

import numpy as np

from . import _dft_matrices, _fft_into
from ._dft_axes import AxisPlan
from ._dft_matrices import as_pairs, frozen, h_adjoint_rows, h_fold_spectrum, h_matrix, w_adjoint
from ._spectral import mirror_ones, mirror_weights
from ._workspace import recycle


@functools.lru_cache(maxsize=256)
def adjoint_columns(plan: AxisPlan, n_columns: int, width: int, dtype: np.dtype):
    """(the per-column weights the caller must fold into the spectrum before
    :func:`adjoint`, read-only; the columns where they are 1: _spectral.mirror_ones).
    irfft counts the inner columns twice (their Hermitian mirror); the W-axis matrix
    does not, so it needs none: (None, None). ``dtype``: a numpy dtype."""
    if plan.matrix_w:
        return None, None
    return (frozen(mirror_weights(np, n_columns, width, dtype)),
            mirror_ones(n_columns, width))


def adjoint(spectrum: np.ndarray, width: int, plan: AxisPlan) -> np.ndarray:
    """The adjoint of :func:`_dft_axes.rfft2` (real, (..., H, width)) applied to ``spectrum``,
    already multiplied by :func:`adjoint_columns`' weights. May overwrite ``spectrum``."""
    if not (plan.matrix_h or plan.matrix_w):
        return _fft_into.rfft2_adjoint(spectrum, width)
    height = spectrum.shape[-2]
    real_dtype = spectrum.real.dtype
    # as _dft_axes._centred_rfft2, backwards
    if plan.matrix_h and _dft_matrices.folds(height, width, real_dtype):
        folded = h_fold_spectrum(spectrum)
        rows = _w_adjoint_stage(folded, width, plan.matrix_w)
        recycle(folded.base)  # (a view of its workspace pairs)
        return h_adjoint_rows(rows, height)
    if plan.matrix_h:
        lines = np.matmul(h_matrix(height, real_dtype, +1), spectrum)
    else:
        lines = _fft_into.fft_axis(np.ascontiguousarray(spectrum), -2, False)
    return _w_adjoint_stage(lines, width, plan.matrix_w)


def _w_adjoint_stage(lines: np.ndarray, width: int, matrix: bool) -> np.ndarray:
    """The adjoint of :func:`_dft_axes._w_stage` (by the W matrix, or irfft weighted by the caller:
    :func:`adjoint_columns`): real (..., n, width), a new array."""
    real_dtype = lines.real.dtype
    if matrix:
        return np.matmul(as_pairs(lines), w_adjoint(width, real_dtype))
    return _fft_into.irfft_last(lines, width, np.empty((*lines.shape[:-1], width), real_dtype))
