"""The operands of the FFT convolution's passes (_fft_conv): each scaled by a power of
two to a maximum near 1 in float64, with its spectrum, whether its products with another
stay in range, and, lazily, what the certificate (_fft_certificate) reads of it; and the
transforms to and from such spectra."""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from . import _fft_certificate as cert
from . import _fft_into
from ._finite import stored

# Scaled operands' products must stay normal floats: below float64's smallest normal
# (2**-1022) a product loses digits, in the transforms, in M and in the fix-ups alike, so
# the certificate could not see the loss. A float32 operand never comes near.
MIN_PRODUCT_EXPONENT = -1000
# Nor may a product overflow the dtype unscaled (|a b| < 2**(exponents' sum) <= half
# the next power of two past its largest value): there native's products give inf or
# NaN (inf - inf) and the sum is outside the contract's domain, where scaled float64
# would return finite values that are wrong by up to the whole of M (hostile pass: 1e30
# pixels on +-1e10 weights, float32, exact 0: -3.4e23 where native has inf). Such a pass
# runs the caller's direct method, whose products overflow where native's mostly do
# (native's fused multiply-adds can keep a sum finite past one overflowing product).
# (_Operand.products_in_range checks both.)


def _spectrum(a: np.ndarray, shape, bins_first: bool = False) -> np.ndarray:
    """rfft2(a, s=shape), rows first: only a's own rows are transformed along W (a
    kernel's few rows instead of T_h zero-padded ones), then every column along H.
    ``bins_first``: (P, Q, U, V) a view of (U, V, P, Q) memory, which _matmul_bins
    multiplies without copying it (see _fft_contract)."""
    spectrum = _fft_into.fft_n(_fft_into.rfft_n(a, shape[1], -1), shape[0], -2)
    if bins_first:
        return np.ascontiguousarray(spectrum.transpose(2, 3, 0, 1)).transpose(2, 3, 0, 1)
    return spectrum


def _inverse_rows(spectrum: np.ndarray, shape, rows: int) -> np.ndarray:
    """irfft2(spectrum, s=shape)[..., :rows, :], without the row transforms it drops."""
    partial = _fft_into.ifft(spectrum, -2)[..., :rows, :]
    return _fft_into.irfft_n(partial, shape[1], -1)


def _result_norm(spectrum: np.ndarray, shape) -> np.ndarray:
    """2-norm of each whole circular result irfft2(spectrum, s=shape), by Parseval on the
    half spectrum (inner columns stand for two)."""
    power = (spectrum.real ** 2 + spectrum.imag ** 2).sum(axis=-2)
    weights = np.full(power.shape[-1], 2.0)
    weights[0] = 1.0
    if shape[1] % 2 == 0:
        weights[-1] = 1.0
    return np.sqrt(power @ weights / math.prod(shape))


@dataclass
class _Operand:
    """A float64 operand scaled to a maximum in [0.5, 1), its spectrum, and (lazily) the
    float32 spectrum of its magnitude and its norms."""

    array: np.ndarray
    exponent: int
    smallest_exponent: int      # of the smallest nonzero |array| (MIN_PRODUCT_EXPONENT)
    shape: tuple
    spectrum: np.ndarray
    bins_first: bool            # the spectra's memory (_spectrum)
    _magnitude_spectrum: np.ndarray | None = field(default=None, repr=False)
    _norms: tuple | None = field(default=None, repr=False)
    _row_squares: np.ndarray | None = field(default=None, repr=False)
    _row_max: np.ndarray | None = field(default=None, repr=False)
    _peak: np.ndarray | None = field(default=None, repr=False)

    @classmethod
    def of(cls, array: np.ndarray, shape, bins_first: bool = False) -> "_Operand":
        data = stored(array)  # (an expanded operand: its repeats change no extreme)
        least = None
        if array.dtype == np.float64 and array.size:  # (float32 values cannot underflow here)
            magnitude = np.abs(data)  # unscaled: scaling may flush the smallest to 0
            peak, least = float(magnitude.max()), float(magnitude.min())
            if least == 0 < peak:  # (zeros: the smallest nonzero entry, one pass more)
                least = float(np.min(magnitude, initial=peak, where=magnitude > 0))
        else:
            peak = max(float(data.max()), -float(data.min())) if array.size else 0.0
        exponent = math.frexp(peak)[1] if peak > 0 else 0
        smallest = math.frexp(least)[1] - exponent if least and peak > 0 else 0
        scaled = np.ldexp(array, -exponent, dtype=np.float64)  # exact, in one pass
        return cls(scaled, exponent, smallest, shape, _spectrum(scaled, shape, bins_first),
                   bins_first)

    def products_in_range(self, other: "_Operand", dtype) -> bool:
        """No product with ``other`` underflows scaled (MIN_PRODUCT_EXPONENT) or can
        overflow ``dtype`` unscaled."""
        return (self.smallest_exponent + other.smallest_exponent > MIN_PRODUCT_EXPONENT
                and self.exponent + other.exponent < np.finfo(dtype).maxexp)

    def magnitude_spectrum(self) -> np.ndarray:
        if self._magnitude_spectrum is None:
            self._magnitude_spectrum = _spectrum(np.abs(self.array).astype(np.float32),
                                                 self.shape, self.bins_first)
        return self._magnitude_spectrum

    def norms(self):
        if self._norms is None:
            self._norms = cert.norms(self.array)
        return self._norms

    def peak(self):
        if self._peak is None:
            self._peak = cert.peak(self.array, self.row_squares())
        return self._peak

    def row_max(self):
        if self._row_max is None:
            self._row_max = cert.row_max(self.array, self.row_squares())
        return self._row_max

    def row_squares(self):
        if self._row_squares is None:
            self._row_squares = cert.row_squares(self.array)
        return self._row_squares
