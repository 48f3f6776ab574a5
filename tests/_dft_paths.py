"""Run the FFT layer's matrix H axis first and folded (scipy_layers/_dft_matrices.py)
whatever the image's size, so that the sample-driven tests reach that path on their
small inputs (the rule, _dft_matrices.folds, takes it from ~97x97 up only).

    with dft_path("matrix-folded"):
        fft_abs(x, "matrix")

Any other name passes through unchanged, as tests/_shift_tiers.py's do.
"""
import contextlib
from unittest import mock

from scipy_layers import _dft_matrices

DFT_PATHS = ("matrix-folded",)


@contextlib.contextmanager
def dft_path(path: str):
    if path not in DFT_PATHS:
        yield path
        return
    with mock.patch.object(_dft_matrices, "folds", lambda *arguments: True):
        yield path
