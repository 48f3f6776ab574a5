"""Convolution by FFT (stride 1, dilation 1, groups 1) that keeps the accuracy contract
of a direct sum, for both conv layers (the single-channel one is N = C_in = C_out = 1).

An FFT convolution's error scales with the whole signal, not with each output's window:
one 1e6 pixel spoils outputs far away that a direct sum gets right. So each pass

1. computes in float64 (for float32 too) on operands scaled by powers of two to a
   maximum near 1 (exact, and no overflow however large the input); operands whose
   products would underflow there (float64 spanning ~300 decades), or could overflow
   the dtype unscaled, skip the FFT;
2. bounds its error E per output channel pair from the operands' norms
   (_fft_certificate: a worst-case bound for float32, a statistical model for float64);
3. certifies every output pixel p against the contract of ``agreement.py``,
   E <= (c * eps - u) * M(p), M(p) = sum over the window of |a||b| (c = terms summed):
   first with a cheap, exact lower bound of M (||kernel||_1 times the window minimum of
   |a|, by tiles), then, where that does not suffice, with M itself by a float32 FFT of
   |a| and |b| less that FFT's own worst-case error;
4. recomputes the pixels that fail by a direct sum, or, when they are too many for that
   to pay, returns None so the caller runs its direct method for the whole pass.

Passes (circular transforms of the padded input's size T, which never wrap for these):
forward y = IFFT(X conj W), grad_input = IFFT(G W) cropped, grad_weight = IFFT(X conj G).
Operands must be finite (callers route non-finite ones to the tap kernels).
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field

import numpy as np
import scipy.fft
from numpy.lib.stride_tricks import sliding_window_view

from . import _fft_certificate as cert
from . import _fft_into
from ._workspace import recycle, scratch

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
# The channel contraction runs as numpy's matmul on bins-first views (its own loop: the
# views are strided) from this many multiply-adds per bin, einsum below. One process,
# the six contractions of a fwd+bwd (three passes, their M), float64, ms einsum / matmul:
# 8x16x32x32 -> 32 k7 at 32x17 bins (4096 a bin) 29.4 / 7.3 (the layer 53.8 / 34.8);
# 8x3 -> 16 k11 (384) 3.6 / 2.4; at 96-128 a bin (4x3 -> 8, 2x16 -> 4) matmul was 0-30%
# slower a pass. With one image the forward and grad_input products are vector-matrix,
# which einsum runs 2-3x faster (its order streams the weight spectra once): 1x64x56x56
# -> 64, 15-16 / 35-46 ms a pass.
MATMUL_MIN_PRODUCTS = 256


def _spectrum(a: np.ndarray, shape, bins_first: bool = False) -> np.ndarray:
    """rfft2(a, s=shape), rows first: only a's own rows are transformed along W (a
    kernel's few rows instead of T_h zero-padded ones), then every column along H.
    ``bins_first``: (P, Q, U, V) a view of (U, V, P, Q) memory, which _matmul_bins
    multiplies without copying it (see BINS_CHUNK_BYTES)."""
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


def contracts_by_matmul(n: int, c_in: int, c_out: int) -> bool:
    """Whether all three passes of an (n, c_in) by (c_out, c_in) conv contract by
    _matmul_bins in _contract (and their M's, which contract alike): two or more images
    and channels on both sides, MATMUL_MIN_PRODUCTS per bin."""
    return min(n, c_in, c_out) >= 2 and n * c_in * c_out >= MATMUL_MIN_PRODUCTS


def _contract(pattern: str, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """np.einsum(pattern, a, b) for the three passes, each a small matrix product per
    frequency bin: a broadcast product when the summed axis has length 1 (the single-
    channel layer); a stacked matmul over bins-first views, into a pooled buffer, where
    each bin's product is large enough (MATMUL_MIN_PRODUCTS) and, for the two passes
    whose rows are images, there are two or more images; else einsum. Results are
    C-contiguous whatever the operands' layout (a copy only where they are not: bins
    first, which only matmul's passes take). The matmul's results are scratch: callers
    recycle() them once transformed back."""
    n_rows = a.shape[0]
    products = n_rows * a.shape[1] * b.shape[0 if pattern == "ncuv,ocuv->nouv" else 1]
    if pattern == "ncuv,ocuv->nouv":
        if a.shape[1] == 1:
            return np.ascontiguousarray(a[:, None, 0] * b[None, :, 0])
        if n_rows >= 2 and products >= MATMUL_MIN_PRODUCTS:
            return _matmul_bins(_bins_first(a), _bins_first(b).transpose(0, 2, 1), a)
    elif pattern == "nouv,ocuv->ncuv":
        if a.shape[1] == 1:
            return np.ascontiguousarray(a[:, 0][:, None] * b[0][None])
        if n_rows >= 2 and products >= MATMUL_MIN_PRODUCTS:
            return _matmul_bins(_bins_first(a), _bins_first(b), a)
    elif pattern == "ncuv,nouv->ocuv":
        if n_rows == 1:
            return np.ascontiguousarray(b[0][:, None] * a[0][None])
        if products >= MATMUL_MIN_PRODUCTS:
            return _matmul_bins(_bins_first(b).transpose(0, 2, 1), _bins_first(a), a)
    return np.ascontiguousarray(np.einsum(pattern, a, b))


def _bins_first(a: np.ndarray) -> np.ndarray:
    """(P, Q, U, V) -> a (U V, P, Q) view (a's own layout: no copy)."""
    return a.reshape(a.shape[0], a.shape[1], -1).transpose(2, 0, 1)


# The stacked matmul's operands, bins-first views of the spectra, have every stride
# large, so numpy ran its own triple loop on them, each product a cache line apart
# (~2.5x slower on the Intel VM of docs/performance.md than on Zen 4). Copied
# C-contiguous a chunk of bins at a time (this many bytes of both operands and the
# product, in cache), each bin is one BLAS call. fft fwd+bwd, one process, Intel VM,
# chunks of 128 bins / strided: 8x16x32x32 -> 32 k7 float64 0.87 (45.8 / 52.7 ms), k15
# float32 0.86, 8x3x32x32 -> 16 k15 float32 0.78, 2x16x16x16 -> 32 k9 float32 0.75;
# 64 or 256 bins alike, 16-32 slower, the whole in one copy slower. (A summed axis of
# length 1 never gets here: _contract's broadcast products.)
BINS_CHUNK_BYTES = 2 << 20
# Where every pass contracts by _matmul_bins (contracts_by_matmul), the operands' spectra
# are laid out bins first once, as they are made (_spectrum), and each bin's matrices go
# to BLAS as they lie (numpy passes a transposed one with BLAS's transpose flag): each
# spectrum feeds two passes and its M one more, which copied it chunk by chunk every time.
# Elsewhere spectra keep (P, Q, U, V) memory: einsum and the broadcast products run on
# whole contiguous bins, and a bins-first layout made them strided (4x3x128x128 -> 2 k9
# 'same' float32 +70%, 2x3x48x48 -> 2 k15 float64 +36%). Side by side, fwd+bwd, the
# Intel VM of docs/performance.md, 24 batches: 8x16x32x32 -> 32 k7 float64 -7.5%, k15
# -8%, 8x8x24x24 -> 32 k15 'same' float32 -8%, 4x4x48x48 -> 128 k13 'same' float64 -4.5%;
# 8x3x32x32 -> 16 k15 (3 input channels) level.


def _matmul_bins(left: np.ndarray, right: np.ndarray, like: np.ndarray) -> np.ndarray:
    """left @ right per bin ((U V, P, K) @ (U V, K, Q)), into a C-contiguous (P, Q, U, V)
    scratch array (the layout the inverse transforms take), a chunk of bins at a time:
    each chunk's operands copied C-contiguous, so that numpy hands every bin to BLAS
    instead of running its own loop on the strided views (see BINS_CHUNK_BYTES)."""
    rows, columns, bins = left.shape[1], right.shape[2], left.shape[0]
    dtype = np.result_type(left, right)
    result = scratch((rows, columns, *like.shape[2:]), dtype)
    flat = result.reshape(rows, columns, bins)
    per_bin = (left[0].size + right[0].size + rows * columns) * dtype.itemsize
    step = max(1, min(bins, BINS_CHUNK_BYTES // per_bin))
    # (a chunk of each operand that is not laid out bins first, copied C-contiguous)
    chunks = [None if _blas_ready(operand) else np.empty((step, *operand.shape[1:]), dtype)
              for operand in (left, right)]
    product = np.empty((step, rows, columns), dtype)
    for begin in range(0, bins, step):
        end = min(bins, begin + step)
        size = end - begin
        operands = []
        for operand, chunk in zip((left, right), chunks):
            if chunk is not None:
                np.copyto(chunk[:size], operand[begin:end])
            operands.append(operand[begin:end] if chunk is None else chunk[:size])
        np.matmul(*operands, out=product[:size])
        np.copyto(flat[:, :, begin:end], product[:size].transpose(1, 2, 0))
    return result


def _blas_ready(operand: np.ndarray) -> bool:
    """(bins, P, Q) laid out bins first, each bin's matrix C- or Fortran-contiguous and
    the bins one after another: what BLAS takes without a copy."""
    return operand.flags.c_contiguous or operand.transpose(0, 2, 1).flags.c_contiguous


@dataclass
class _Operand:
    """A float64 operand scaled to a maximum in [0.5, 1), its spectrum, and (lazily) the
    float32 spectrum of its magnitude and its norms."""

    array: np.ndarray
    exponent: int
    smallest_exponent: int      # of the smallest nonzero |array| (MIN_PRODUCT_EXPONENT)
    shape: tuple
    spectrum: np.ndarray
    bins_first: bool            # the spectra's memory (_spectrum, BINS_CHUNK_BYTES)
    _magnitude_spectrum: np.ndarray | None = field(default=None, repr=False)
    _norms: tuple | None = field(default=None, repr=False)

    @classmethod
    def of(cls, array: np.ndarray, shape, bins_first: bool = False) -> "_Operand":
        peak = max(float(array.max()), -float(array.min())) if array.size else 0.0
        exponent = math.frexp(peak)[1] if peak > 0 else 0
        scaled = np.ldexp(array, -exponent, dtype=np.float64)  # exact, in one pass
        smallest = 0
        if array.dtype == np.float64 and peak > 0:  # (float32 values cannot underflow here)
            magnitude = np.abs(array)  # unscaled: scaling may have flushed the smallest to 0
            least = float(np.min(magnitude, initial=peak, where=magnitude > 0))
            smallest = math.frexp(least)[1] - exponent
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


@dataclass
class FFTState:
    x: _Operand                 # padded input (N, C_in, Hp, Wp)
    w: _Operand                 # weight (C_out, C_in, kH, kW)
    padding: tuple
    out_hw: tuple
    dtype: np.dtype
    tap_fixups: bool = False    # the caller's direct method is the tap kernels


def _bound(a: _Operand, b: _Operand, contract, contracted, spectrum, dtype):
    norm = _result_norm(spectrum, a.shape) if dtype == np.float64 else None
    return cert.error_bound(a.norms(), b.norms(), contract, contracted, math.prod(a.shape),
                            dtype, norm)


def _m_lower(pattern, a: _Operand, b: _Operand, contract, contracted, conj, rows, crop):
    """A lower bound of M per output: the float32 FFT of |a| and |b|, less its error."""
    b_spec = b.magnitude_spectrum().conj() if conj else b.magnitude_spectrum()
    spectrum = _contract(pattern, a.magnitude_spectrum(), b_spec)
    m = _inverse_rows(spectrum, a.shape, rows)[crop]
    recycle(spectrum)
    error = cert.float32_error_bound(a.norms(), b.norms(), contract, contracted,
                                     math.prod(a.shape))
    return (m - error[:, :, None, None]) * (1 - 4 * cert.U32)  # the magnitudes' roundings


def _tile_lower(minima: cert.WindowMinima, kernel_l1, contract, terms):
    """Per output tile: sum over channels of ||kernel||_1 x the window minima (less the
    rounding of those ``terms``-term sums)."""
    return np.einsum(contract, kernel_l1, minima.tiles) * (1 - 2 * cert.U64 * terms)


def fft_forward(x, w, padding, out_hw, tap_fixups=False):
    """(y or None, state): y = conv(x, w) on the zero-padded x, in x's dtype; None when
    not certified (run a direct method; the state still serves fft_backward).
    ``tap_fixups``: that direct method is the tap kernels (cert.fixup_budget)."""
    top, bottom, left, right = padding
    xp = np.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right))) if any(padding) else x
    shape = tuple(scipy.fft.next_fast_len(n, real=True) for n in xp.shape[2:])
    bins_first = contracts_by_matmul(x.shape[0], w.shape[1], w.shape[0])
    state = FFTState(_Operand.of(xp, shape, bins_first), _Operand.of(w, shape, bins_first),
                     padding, out_hw, np.result_type(x, w), tap_fixups)
    sx, sw = state.x, state.w
    if not sx.products_in_range(sw, state.dtype):
        return None, state
    k_h, k_w = w.shape[2:]
    c_in = w.shape[1]
    spectrum = _contract("ncuv,ocuv->nouv", sx.spectrum, sw.spectrum.conj())
    y = _inverse_rows(spectrum, shape, out_hw[0])[..., :out_hw[1]]
    bound = _bound(sx, sw, "nc,oc->no", c_in, spectrum, state.dtype)
    recycle(spectrum)
    minima = cert.WindowMinima(sx.array, (k_h, k_w))
    crop = (Ellipsis, slice(0, out_hw[0]), slice(0, out_hw[1]))

    def direct_at(n, o, r, c):
        windows = sliding_window_view(sx.array, (k_h, k_w), axis=(2, 3))[n, :, r, c]
        return np.einsum("pcij,pcij->p", windows, sw.array[o])

    terms = c_in * k_h * k_w
    eps = cert.EPS[state.dtype]
    y = cert.certify(
        y, bound, terms * eps - eps / 2,
        lambda: _tile_lower(minima, sw.norms()[1], "oc,nchw->nohw", terms),
        lambda mask: minima.pixels(mask, out_hw),
        lambda: _m_lower("ncuv,ocuv->nouv", sx, sw, "nc,oc->no", c_in, True, out_hw[0], crop),
        direct_at, terms, cert.fixup_budget(sx.array.size, y.size, terms,
                                             c_in if tap_fixups else 0))
    if y is None:
        return None, state
    return np.ldexp(y, sx.exponent + sw.exponent).astype(state.dtype), state


def fft_backward(gy, state: FFTState, need_input, need_weight):
    """(grad_input or None, grad_weight or None, certified): each gradient in the
    state's dtype, or None with certified[k] False when the caller must run a direct
    method for it."""
    sx, sw = state.x, state.w
    shape = sx.shape
    sg = _Operand.of(gy, shape, sx.bins_first)
    n, c_in, hp, wp = sx.array.shape
    c_out, _, k_h, k_w = sw.array.shape
    eps = cert.EPS[state.dtype]
    grad_input = grad_weight = None
    certified = [sg.products_in_range(sw, state.dtype), sx.products_in_range(sg, state.dtype)]
    if need_input and certified[0]:
        top, bottom, left, right = state.padding
        crop = (Ellipsis, slice(top, hp - bottom), slice(left, wp - right))
        spectrum = _contract("nouv,ocuv->ncuv", sg.spectrum, sw.spectrum)
        result = _inverse_rows(spectrum, shape, hp)[..., :wp][crop]
        bound = _bound(sg, sw, "no,oc->nc", c_out, spectrum, state.dtype)
        recycle(spectrum)
        @functools.cache  # (padded once, on the first fix-up: certify calls in chunks)
        def g_windows():
            g_padded = np.pad(sg.array, ((0, 0), (0, 0), (k_h - 1, k_h - 1), (k_w - 1, k_w - 1)))
            return sliding_window_view(g_padded, (k_h, k_w), axis=(2, 3))

        def direct_at(b, c, r, s):
            windows = g_windows()[b, :, r + top, s + left]
            w_flipped = sw.array[:, :, ::-1, ::-1]
            return np.einsum("poij,poij->p", windows, w_flipped[:, c].transpose(1, 0, 2, 3))

        terms = c_out * k_h * k_w
        # No tile bound here: the edge tiles always hold g's zero padding, so M is
        # computed anyway (and the tiles would cost ~15% of the pass for nothing).
        result = cert.certify(
            result, bound, terms * eps - eps / 2, None, None,
            lambda: _m_lower("nouv,ocuv->ncuv", sg, sw, "no,oc->nc", c_out, False, hp,
                             (Ellipsis, slice(0, hp), slice(0, wp)))[crop],
            direct_at, terms, cert.fixup_budget(sg.array.size, result.size, terms,
                                                 c_out if state.tap_fixups else 0))
        if result is None:
            certified[0] = False
        else:
            grad_input = np.ldexp(result, sg.exponent + sw.exponent).astype(state.dtype)
    if need_weight and certified[1]:
        out_h, out_w = gy.shape[2:]
        spectrum = _contract("ncuv,nouv->ocuv", sx.spectrum, sg.spectrum.conj())
        result = _inverse_rows(spectrum, shape, k_h)[..., :k_w]
        bound = _bound(sg, sx, "no,nc->oc", n, spectrum, state.dtype)
        recycle(spectrum)

        def direct_at(o, c, i, j):
            return np.array([np.vdot(sx.array[:, ci, ii:ii + out_h, jj:jj + out_w],
                                     sg.array[:, oi]) for oi, ci, ii, jj in zip(o, c, i, j)])

        terms = n * out_h * out_w
        result = cert.certify(
            result, bound, terms * eps - eps / 2, None, None,
            lambda: _m_lower("ncuv,nouv->ocuv", sx, sg, "nc,no->oc", n, True, k_h,
                             (Ellipsis, slice(0, k_h), slice(0, k_w))),
            direct_at, terms, cert.fixup_budget(sx.array.size, result.size, terms, 0))
        if result is None:
            certified[1] = False
        else:
            grad_weight = np.ldexp(result, sx.exponent + sg.exponent).astype(state.dtype)
    return grad_input, grad_weight, certified
