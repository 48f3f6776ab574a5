"""Convolution by FFT (stride 1, dilation 1, groups 1) that keeps the accuracy contract
of a direct sum, for both conv layers (the single-channel one is N = C_in = C_out = 1).

An FFT convolution's error scales with the whole signal, not with each output's window:
one 1e6 pixel spoils outputs far away that a direct sum gets right. So each pass

1. computes in float64 (for float32 too) on operands scaled by powers of two to a
   maximum near 1 (exact, and no overflow however large the input);
2. bounds its error E per output channel pair from the operands' norms (E_BOUND below);
3. certifies every output pixel p against the contract of ``agreement.py``,
   E <= (c * eps - u) * M(p), M(p) = sum over the window of |a||b| (c = terms summed):
   first with a cheap lower bound of M (the smallest |kernel tap| times a window sum of
   |a| from a summed-area table), then, where that does not suffice, with M itself by
   FFT of |a| and |b| (its own error is the same E, subtracted);
4. recomputes the pixels that fail by a direct sum, or, when they are too many for that
   to pay, returns None so the caller runs its direct method for the whole pass.

Passes (circular transforms of the padded input's size T, which never wrap for these):
forward y = IFFT(X conj W), grad_input = IFFT(G W) cropped, grad_weight = IFFT(X conj G).
Operands must be finite (callers route non-finite ones to the tap kernels).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import scipy.fft
from numpy.lib.stride_tricks import sliding_window_view

U64 = 2.0 ** -53
EPS = {np.dtype(np.float32): 2.0 ** -23, np.dtype(np.float64): 2.0 ** -52}
# Per-stage error constant of one transform (radix-2..5 butterflies, twiddles to ~u):
# ||fl(FFT a) - FFT a||_2 <= C_STAGE * log2(T) * u * ||FFT a||_2 (Higham, Accuracy and
# Stability, Thm 24.2, eta = u + gamma_4 (sqrt 2 + u) ~ 6.7u rounded up).
C_STAGE = 8.0
# float64 operands: the worst-case bound above cannot certify float64 against eps64 (it
# grows with sqrt(T)), so their E is a root-mean-square model: the transforms' errors act
# like noise of size u * sqrt(log2 T) spread over the T outputs, giving per output
# u * sqrt(log2 T) * (2 ||a||_2 ||b||_2 + ||r||_2) / sqrt(T) (r: the full circular
# result), times this factor (~4x a 5-sigma maximum over the outputs). It is a model, not
# a proof: tests/test_accuracy.py checks it on adversarial inputs (spikes, periodic,
# constant, zero regions) against a long-double direct sum.
STATISTICAL_SAFETY = 20.0
# A fix-up may cost at most this many multiply-adds per element of the padded input (the
# FFT pass itself costs ~ 3 log2 T per element); beyond it the caller's direct method runs.
FIXUP_WORK_PER_ELEMENT = 16


# The scaled operands' products must stay normal floats: a product below float64's
# smallest normal (2**-1022) loses digits (or becomes 0) in the transforms, in M and in
# the fix-ups alike, so the certificate could not see the loss. Operands whose smallest
# and largest nonzero magnitudes are that far apart (float64 spanning ~300 decades; a
# float32 operand never is) skip the FFT: the caller's direct method runs.
MIN_PRODUCT_EXPONENT = -1000


def _scaled(array: np.ndarray) -> tuple[np.ndarray, int, int]:
    """(array / 2**e in float64, e, f): max |array / 2**e| in [0.5, 1), exact; f is the
    binary exponent of the smallest nonzero |array / 2**e| (0 for an all-zero array)."""
    magnitude = np.abs(array)
    peak = float(magnitude.max()) if array.size else 0.0
    if peak == 0:
        return np.zeros(array.shape), 0, 0
    exponent = math.frexp(peak)[1]
    smallest = float(np.min(magnitude, initial=peak, where=magnitude > 0))
    return (np.ldexp(np.asarray(array, dtype=np.float64), -exponent), exponent,
            math.frexp(smallest)[1] - exponent)


def _norms(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per (dim0, dim1) 2-norm and 1-norm over the spatial dims."""
    flat = a.reshape(a.shape[0], a.shape[1], -1)
    return np.sqrt(np.einsum("ncp,ncp->nc", flat, flat)), np.abs(flat).sum(axis=2)


def _error_bound(a_norms, b_norms, contract: str, contracted: int, transform_size,
                 exact_dtype, full_result) -> np.ndarray:
    """E per output pair, contracting a (X, K, ...) with b (Y, K, ...) over K as ``contract``
    ("xk,yk->xy" or a transposition of it); ``full_result`` is the whole circular result."""
    (a2, a1), (b2, b1) = a_norms, b_norms
    stages = math.log2(max(transform_size, 2))
    both2 = np.einsum(contract, a2, b2)
    if exact_dtype == np.float64:
        r2 = np.sqrt(np.einsum("xypq,xypq->xy", full_result, full_result))
        return (STATISTICAL_SAFETY * U64 * math.sqrt(stages) * (2 * both2 + r2)
                / math.sqrt(transform_size))
    cross = np.minimum(np.einsum(contract, a2, b1), np.einsum(contract, a1, b2))
    return U64 * ((2 * C_STAGE * stages + 2 + contracted) * both2 + C_STAGE * stages * cross)


def _window_sums(a: np.ndarray, window) -> np.ndarray:
    """Sums of |a| over every window of shape ``window`` (valid positions), float64,
    minus a bound on their own rounding error, clipped at 0: lower bounds."""
    h, w = window
    table = np.zeros(a.shape[:2] + (a.shape[2] + 1, a.shape[3] + 1))
    np.cumsum(np.abs(a), axis=2, out=table[:, :, 1:, 1:])
    np.cumsum(table[:, :, 1:, 1:], axis=3, out=table[:, :, 1:, 1:])
    sums = table[:, :, h:, w:] - table[:, :, :-h, w:] - table[:, :, h:, :-w] + table[:, :, :-h, :-w]
    error = (4 * (a.shape[2] + a.shape[3]) + 8) * U64 * table[:, :, -1:, -1:]
    return np.maximum(sums - error, 0)


def _spectrum(a: np.ndarray, shape) -> np.ndarray:
    return scipy.fft.rfft2(a, s=shape)


@dataclass
class _Operand:
    """One scaled float64 operand, its spectrum, and (lazily) its |.| spectrum and norms."""

    array: np.ndarray
    exponent: int
    smallest_exponent: int      # of the smallest nonzero |array| (see MIN_PRODUCT_EXPONENT)
    shape: tuple
    spectrum: np.ndarray
    _abs_spectrum: np.ndarray | None = field(default=None, repr=False)
    _norms: tuple | None = field(default=None, repr=False)

    @classmethod
    def of(cls, array, shape):
        scaled, exponent, smallest = _scaled(array)
        return cls(scaled, exponent, smallest, shape, _spectrum(scaled, shape))

    def products_stay_normal(self, other: "_Operand") -> bool:
        return self.smallest_exponent + other.smallest_exponent > MIN_PRODUCT_EXPONENT

    def abs_spectrum(self):
        if self._abs_spectrum is None:
            self._abs_spectrum = _spectrum(np.abs(self.array), self.shape)
        return self._abs_spectrum

    def norms(self):
        if self._norms is None:
            self._norms = _norms(self.array)
        return self._norms


@dataclass
class FFTState:
    x: _Operand                 # padded input (N, C_in, Hp, Wp)
    w: _Operand                 # weight (C_out, C_in, kH, kW)
    padding: tuple
    out_hw: tuple
    dtype: np.dtype


def _inverse(spectrum, shape):
    return scipy.fft.irfft2(spectrum, s=shape)


def _certify(result, bound, tolerance, lower_bound, exact_m, direct_at, work_per_fix, budget):
    """Make ``result`` meet the contract or return None (see the module docstring)."""
    need = bound[:, :, None, None] / tolerance
    if lower_bound is not None:
        failing = need > lower_bound()
        if not failing.any():
            return result
    else:
        failing = None
    m = exact_m()
    failing = need > np.maximum(m - bound[:, :, None, None], 0) if failing is None else (
        failing & (need > np.maximum(m - bound[:, :, None, None], 0)))
    count = int(np.count_nonzero(failing))
    if count == 0:
        return result
    if count * work_per_fix > budget:
        return None
    index = np.nonzero(failing)
    result[index] = direct_at(*index)
    return result


def fft_forward(x, w, padding, out_hw):
    """(y or None, state): y = conv(x, w) on the zero-padded x, in x's dtype; None when
    not certified (run a direct method; the state still serves fft_backward)."""
    top, bottom, left, right = padding
    xp = np.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right))) if any(padding) else x
    shape = tuple(scipy.fft.next_fast_len(n, real=True) for n in xp.shape[2:])
    state = FFTState(_Operand.of(xp, shape), _Operand.of(w, shape), padding, out_hw,
                     np.result_type(x, w))
    sx, sw = state.x, state.w
    if not sx.products_stay_normal(sw):
        return None, state
    full = _inverse(np.einsum("ncuv,ocuv->nouv", sx.spectrum, sw.spectrum.conj()), shape)
    y = full[:, :, :out_hw[0], :out_hw[1]]
    k_h, k_w = w.shape[2:]
    c_in = w.shape[1]
    terms = c_in * k_h * k_w
    bound = _error_bound(sx.norms(), sw.norms(), "nc,oc->no", c_in, math.prod(shape),
                         state.dtype, full)
    w_min = np.abs(sw.array).min(axis=(2, 3))

    def lower():
        return np.einsum("oc,nchw->nohw", w_min, _window_sums(sx.array, (k_h, k_w)))

    def exact_m():
        m = _inverse(np.einsum("ncuv,ocuv->nouv", sx.abs_spectrum(), sw.abs_spectrum().conj()),
                     shape)
        return m[:, :, :out_hw[0], :out_hw[1]]

    def direct_at(n, o, r, c):
        windows = sliding_window_view(sx.array, (k_h, k_w), axis=(2, 3))[n, :, r, c]
        return np.einsum("pcij,pcij->p", windows, sw.array[o])

    tolerance = terms * EPS[state.dtype] - EPS[state.dtype] / 2
    y = _certify(y, bound, tolerance, lower, exact_m, direct_at, terms,
                 FIXUP_WORK_PER_ELEMENT * sx.array.size)
    if y is None:
        return None, state
    return np.ldexp(y, sx.exponent + sw.exponent).astype(state.dtype), state


def fft_backward(gy, state: FFTState, need_input, need_weight):
    """(grad_input or None, grad_weight or None, certified): each gradient in the
    state's dtype, or None with certified[k] False when the caller must run a direct
    method for it."""
    sx, sw = state.x, state.w
    shape = sx.shape
    sg = _Operand.of(gy, shape)
    n, c_in, hp, wp = sx.array.shape
    c_out, _, k_h, k_w = sw.array.shape
    eps = EPS[state.dtype]
    transform = math.prod(shape)
    grad_input = grad_weight = None
    certified = [sg.products_stay_normal(sw), sx.products_stay_normal(sg)]
    if need_input and certified[0]:
        top, bottom, left, right = state.padding
        crop = (slice(top, hp - bottom), slice(left, wp - right))
        full = _inverse(np.einsum("nouv,ocuv->ncuv", sg.spectrum, sw.spectrum), shape)
        bound = _error_bound(sg.norms(), sw.norms(), "no,oc->nc", c_out, transform,
                             state.dtype, full)
        g_padded = np.pad(sg.array, ((0, 0), (0, 0), (k_h - 1, k_h - 1), (k_w - 1, k_w - 1)))
        w_flipped = sw.array[:, :, ::-1, ::-1]
        w_min = np.abs(sw.array).min(axis=(2, 3))

        def lower():
            return np.einsum("oc,nohw->nchw", w_min,
                             _window_sums(g_padded, (k_h, k_w))[:, :, crop[0], crop[1]])

        def exact_m():
            m = _inverse(np.einsum("nouv,ocuv->ncuv", sg.abs_spectrum(), sw.abs_spectrum()),
                         shape)
            return m[:, :, crop[0], crop[1]]

        def direct_at(b, c, r, s):
            windows = sliding_window_view(g_padded, (k_h, k_w), axis=(2, 3))[b, :, r + top, s + left]
            return np.einsum("poij,poij->p", windows, w_flipped[:, c].transpose(1, 0, 2, 3))

        terms = c_out * k_h * k_w
        result = _certify(full[:, :, crop[0], crop[1]].copy(), bound, terms * eps - eps / 2,
                          lower, exact_m, direct_at, terms, FIXUP_WORK_PER_ELEMENT * g_padded.size)
        if result is None:
            certified[0] = False
        else:
            grad_input = np.ldexp(result, sg.exponent + sw.exponent).astype(state.dtype)
    if need_weight and certified[1]:
        out_h, out_w = gy.shape[2:]
        full = _inverse(np.einsum("ncuv,nouv->ocuv", sx.spectrum, sg.spectrum.conj()), shape)
        bound = _error_bound(sg.norms(), sx.norms(), "no,nc->oc", n, transform, state.dtype,
                             full)

        def exact_m():
            m = _inverse(np.einsum("ncuv,nouv->ocuv", sx.abs_spectrum(), sg.abs_spectrum().conj()),
                         shape)
            return m[:, :, :k_h, :k_w]

        def direct_at(o, c, i, j):
            values = [np.vdot(sx.array[:, ci, ii:ii + out_h, jj:jj + out_w], sg.array[:, oi])
                      for oi, ci, ii, jj in zip(o, c, i, j)]
            return np.array(values)

        terms = n * out_h * out_w
        result = _certify(full[:, :, :k_h, :k_w].copy(), bound, terms * eps - eps / 2, None,
                          exact_m, direct_at,
                          terms, FIXUP_WORK_PER_ELEMENT * sx.array.size)
        if result is None:
            certified[1] = False
        else:
            grad_weight = np.ldexp(result, sx.exponent + sg.exponent).astype(state.dtype)
    return grad_input, grad_weight, certified
