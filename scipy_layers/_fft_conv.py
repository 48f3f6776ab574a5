"""Convolution by FFT (stride 1, dilation 1, groups 1) that keeps the accuracy contract
of a direct sum, for both conv layers (the single-channel one is N = C_in = C_out = 1).

An FFT convolution's error scales with the whole signal, not with each output's window:
one 1e6 pixel spoils outputs far away that a direct sum gets right. So each pass

1. computes in float64 (for float32 too) on operands scaled by powers of two to a
   maximum near 1 (_fft_operand: exact, and no overflow however large the input);
   operands whose products would underflow there (float64 spanning ~300 decades), or
   could overflow the dtype unscaled, skip the FFT;
2. bounds its error E per output channel pair from the operands' norms
   (_fft_certificate: a worst-case bound for float32, a statistical model for float64);
3. certifies every output pixel p (_fft_certify) against the contract of ``agreement.py``,
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
from dataclasses import dataclass

import numpy as np
import scipy.fft
from numpy.lib.stride_tricks import sliding_window_view

from . import _fft_certificate as cert
from . import _fft_certify, _fft_route
from ._fft_contract import contract_channels, contracts_by_matmul
from ._fft_operand import _inverse_rows, _Operand, _result_norm
from ._workspace import recycle


@dataclass
class FFTState:
    x: _Operand                 # padded input (N, C_in, Hp, Wp)
    w: _Operand                 # weight (C_out, C_in, kH, kW)
    padding: tuple
    out_hw: tuple
    dtype: np.dtype
    tap_fixups: bool = False    # the caller's direct method is the tap kernels

    @property
    def output_bound(self) -> bool:
        """Whether certify may bound M by the output itself (OUTPUT_BOUND_DTYPES)."""
        return self.dtype in _fft_certify.OUTPUT_BOUND_DTYPES

    @property
    def pairwise(self) -> bool:
        """Whether the passes sum their channels in pairwise blocks (float64's statistical
        model assumes no long one-by-one sum: _fft_contract.CHANNEL_BLOCK)."""
        return self.dtype == np.float64


def _bound(a: _Operand, b: _Operand, contract, contracted, spectrum, dtype, result_rows):
    """E per output pair; ``result_rows``: the result's rows the pass keeps, at the
    transforms' full width (float64's model takes their largest 2-norm)."""
    size = math.prod(a.shape)
    if dtype != np.float64:
        return cert.error_bound(a.norms(), b.norms(), contract, contracted, size, dtype, None)
    rows = (a.row_max(), b.row_max(), cert.row_max(result_rows), a.shape[1])
    peaks = (cert.standing_out(a.peak(), a.norms()[0], math.prod(a.array.shape[2:])),
             b.peak())
    return cert.error_bound(a.norms(), b.norms(), contract, contracted, size, dtype,
                            _result_norm(spectrum, a.shape), rows, peaks)


def _zero_bordered(a: np.ndarray, padding) -> np.ndarray:
    """a (N, C, H, W) with (top, bottom, left, right) zeros about its last two dims, a
    fresh array (np.pad took ~19 us of a 64x64 grad_input's fix-ups; not _fft_into's
    _zero_padded, which cuts or pads one axis to a length)."""
    top, bottom, left, right = padding
    n, c, height, width = a.shape
    padded = np.zeros((n, c, height + top + bottom, width + left + right), a.dtype)
    padded[:, :, top:top + height, left:left + width] = a
    return padded


def _tolerance(terms: int, dtype) -> float:
    """The contract's tolerance for outputs of ``terms`` products (certify's, and the
    early rejection's, which must match it)."""
    eps = cert.EPS[dtype]
    return terms * eps - eps / 2


def _rejected_before_its_ffts(a: _Operand, b: _Operand, contract, outputs, terms, dtype,
                              budget) -> bool:
    """Whether float64's certificate would reject the pass whatever its M
    (cert.linear_term_rejects): then its contraction, transforms back and M are not run.
    Asked only where the term is not far below the limit on normal data (its einsums cost
    ~8 us of a 64x64 call, where it is 0.05)."""
    if dtype != np.float64:
        return False
    taps = math.prod(b.array.shape[2:])
    # (the route's limit read where it is defined, so that one patch moves both rules)
    if _fft_route.linear_term_on_normal_data(
            math.prod(a.array.shape[2:]), math.prod(a.shape), taps,
            terms // max(taps, 1)) < _fft_route.FFT_LINEAR_LIMIT / 4:
        return False
    return cert.linear_term_rejects(a.norms(), b.norms(), contract, math.prod(a.shape),
                                    outputs, _tolerance(terms, dtype), terms, budget)


def _m_lower(pattern, a: _Operand, b: _Operand, contract, contracted, conj, rows, crop):
    """A lower bound of M per output: the float32 FFT of |a| and |b|, less its error."""
    b_spec = b.magnitude_spectrum().conj() if conj else b.magnitude_spectrum()
    spectrum = contract_channels(pattern, a.magnitude_spectrum(), b_spec)
    m = _inverse_rows(spectrum, a.shape, rows)[crop]
    recycle(spectrum)
    error = cert.float32_error_bound(a.norms(), b.norms(), contract, contracted,
                                     math.prod(a.shape))
    return (m - error[:, :, None, None]) * (1 - 4 * cert.U32)  # the magnitudes' roundings


def _tile_lower(minima: _fft_certify.WindowMinima, kernel_l1, contract, terms):
    """Per output tile: sum over channels of ||kernel||_1 x the window minima (less the
    rounding of those ``terms``-term sums)."""
    return np.einsum(contract, kernel_l1, minima.tiles) * (1 - 2 * cert.U64 * terms)


def _tiles_may_pass(a: np.ndarray, kernel_l1, bound, tolerance: float) -> bool:
    """Whether the tile bound may spare M: only where every tile passes (one failing tile,
    and certify computes M whole), so not where a, with one input channel, holds an entry
    below the least need / ||kernel||_1 over the output pairs (its tile fails for every
    pair): random data at float64's tolerance (64x64 k15: 3% of the entries), whose tiles
    cost ~15 us a 64x64 call. (Tiles that pass there could still spare a fix-up where M's
    float32 bound is the looser one: hostile pass 130 saw 20 such pixels in 1 of 500
    cases, and no pass rejected for them.) Tiles of several channels sum theirs, so they
    are always tried; so are zero kernels'."""
    l1 = kernel_l1.sum(axis=1)
    if a.shape[1] != 1 or not (l1 > 0).all():
        return True
    least = float((bound / (tolerance * l1[None, :])).min())
    return not (np.abs(a) < least).any()


def fft_forward(x, w, padding, out_hw, tap_fixups=False):
    """(y or None, state): y = conv(x, w) on the zero-padded x, in x's dtype; None when
    not certified (run a direct method; the state still serves fft_backward).
    ``tap_fixups``: that direct method is the tap kernels (_fft_certify.fixup_budget)."""
    xp = _zero_bordered(x, padding) if any(padding) else x
    shape = tuple(scipy.fft.next_fast_len(n, real=True) for n in xp.shape[2:])
    bins_first = contracts_by_matmul(x.shape[0], w.shape[1], w.shape[0])
    state = FFTState(_Operand.of(xp, shape, bins_first), _Operand.of(w, shape, bins_first),
                     padding, out_hw, np.result_type(x, w), tap_fixups)
    sx, sw = state.x, state.w
    if not sx.products_in_range(sw, state.dtype):
        return None, state
    k_h, k_w = w.shape[2:]
    c_in = w.shape[1]
    terms = c_in * k_h * k_w
    budget = _fft_certify.fixup_budget(sx.array.size,
                                       x.shape[0] * w.shape[0] * math.prod(out_hw), terms,
                                       c_in if tap_fixups else 0)
    if _rejected_before_its_ffts(sx, sw, "nc,oc->no", math.prod(out_hw), terms, state.dtype,
                                 budget):
        return None, state
    spectrum = contract_channels("ncuv,ocuv->nouv", sx.spectrum, sw.spectrum.conj(), state.pairwise)
    rows = _inverse_rows(spectrum, shape, out_hw[0])
    y = rows[..., :out_hw[1]]
    bound = _bound(sx, sw, "nc,oc->no", c_in, spectrum, state.dtype, rows)
    recycle(spectrum)
    tolerance = _tolerance(terms, state.dtype)
    lower_tiles = pixels_of = None  # (certify's tile bound, where it may spare M)
    if _tiles_may_pass(sx.array, sw.norms()[1], bound, tolerance):
        minima = _fft_certify.WindowMinima(sx.array, (k_h, k_w))

        def lower_tiles():
            return _tile_lower(minima, sw.norms()[1], "oc,nchw->nohw", terms)

        def pixels_of(mask):
            return minima.pixels(mask, out_hw)

    crop = (Ellipsis, slice(0, out_hw[0]), slice(0, out_hw[1]))

    def direct_at(n, o, r, c):
        windows = sliding_window_view(sx.array, (k_h, k_w), axis=(2, 3))[n, :, r, c]
        return np.einsum("pcij,pcij->p", windows, sw.array[o])

    y = _fft_certify.certify(
        y, bound, tolerance, lower_tiles, pixels_of,
        lambda: _m_lower("ncuv,ocuv->nouv", sx, sw, "nc,oc->no", c_in, True, out_hw[0], crop),
        direct_at, terms, budget, output_bound=state.output_bound)
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
    grad_input = grad_weight = None
    certified = [sg.products_in_range(sw, state.dtype), sx.products_in_range(sg, state.dtype)]
    top, bottom, left, right = state.padding
    pixels = (hp - top - bottom) * (wp - left - right)  # (grad_input's, per image and channel)
    terms = c_out * k_h * k_w
    budget = _fft_certify.fixup_budget(sg.array.size, n * c_in * pixels, terms,
                                       c_out if state.tap_fixups else 0)
    if need_input and certified[0] and _rejected_before_its_ffts(
            sg, sw, "no,oc->nc", pixels, terms, state.dtype, budget):
        certified[0] = False
    if need_input and certified[0]:
        crop = (Ellipsis, slice(top, hp - bottom), slice(left, wp - right))
        spectrum = contract_channels("nouv,ocuv->ncuv", sg.spectrum, sw.spectrum, state.pairwise)
        rows = _inverse_rows(spectrum, shape, hp)
        result = rows[..., :wp][crop]
        bound = _bound(sg, sw, "no,oc->nc", c_out, spectrum, state.dtype,
                       rows[..., top:hp - bottom, :])
        recycle(spectrum)
        @functools.cache  # (padded once, on the first fix-up: certify calls in chunks)
        def g_windows():
            g_padded = _zero_bordered(sg.array, (k_h - 1, k_h - 1, k_w - 1, k_w - 1))
            return sliding_window_view(g_padded, (k_h, k_w), axis=(2, 3))

        def direct_at(b, c, r, s):
            windows = g_windows()[b, :, r + top, s + left]
            w_flipped = sw.array[:, :, ::-1, ::-1]
            if c_in == 1:  # (one kernel for every pixel: a matrix-vector product, not its copies)
                return windows.reshape(len(b), -1) @ w_flipped[:, 0].reshape(-1)
            return np.einsum("poij,poij->p", windows, w_flipped[:, c].transpose(1, 0, 2, 3))

        # No tile bound here: the edge tiles always hold g's zero padding, so M is
        # computed anyway (and the tiles would cost ~15% of the pass for nothing).
        result = _fft_certify.certify(
            result, bound, _tolerance(terms, state.dtype), None, None,
            lambda: _m_lower("nouv,ocuv->ncuv", sg, sw, "no,oc->nc", c_out, False, hp,
                             (Ellipsis, slice(0, hp), slice(0, wp)))[crop],
            direct_at, terms, budget, output_bound=state.output_bound)
        if result is None:
            certified[0] = False
        else:
            grad_input = np.ldexp(result, sg.exponent + sw.exponent).astype(state.dtype)
    if need_weight and certified[1]:
        out_h, out_w = gy.shape[2:]
        spectrum = contract_channels("ncuv,nouv->ocuv", sx.spectrum, sg.spectrum.conj(),
                                     state.pairwise)
        rows = _inverse_rows(spectrum, shape, k_h)
        result = rows[..., :k_w]
        bound = _bound(sg, sx, "no,nc->oc", n, spectrum, state.dtype, rows)
        recycle(spectrum)

        def direct_at(o, c, i, j):
            return np.array([np.vdot(sx.array[:, ci, ii:ii + out_h, jj:jj + out_w],
                                     sg.array[:, oi]) for oi, ci, ii, jj in zip(o, c, i, j)])

        terms = n * out_h * out_w
        result = _fft_certify.certify(
            result, bound, _tolerance(terms, state.dtype), None, None,
            lambda: _m_lower("ncuv,nouv->ocuv", sx, sg, "nc,no->oc", n, True, k_h,
                             (Ellipsis, slice(0, k_h), slice(0, k_w))),
            direct_at, terms,
            _fft_certify.fixup_budget(sx.array.size, result.size, terms, 0),
            output_bound=state.output_bound)
        if result is None:
            certified[1] = False
        else:
            grad_weight = np.ldexp(result, sx.exponent + sg.exponent).astype(state.dtype)
    return grad_input, grad_weight, certified
