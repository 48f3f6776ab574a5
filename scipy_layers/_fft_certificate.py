"""The error model of the FFT convolution's accuracy certificate (_fft_conv): the bound E
of an FFT pass's error per output pair, from its operands' norms, row norms and peaks,
and the early rejection of a pass by E's linear term alone. The per-pixel check
E <= (c * eps - u) * M against each output's M = sum over its window of |a||b|, with
direct fix-ups, is _fft_certify's (see _fft_conv's docstring).

All arrays here are the scaled float64 operands of _fft_conv (_fft_operand: maximum near
1), so no intermediate overflows and (products_in_range) no product underflows.
"""
from __future__ import annotations

import math

import numpy as np

U64 = 2.0 ** -53
U32 = 2.0 ** -24
EPS = {np.dtype(np.float32): 2.0 ** -23, np.dtype(np.float64): 2.0 ** -52}
# Per-stage error constant of one transform (radix-2..5 butterflies, twiddles to ~u):
# ||fl(FFT a) - FFT a||_2 <= C_STAGE * log2(T) * u * ||FFT a||_2 (Higham, Accuracy and
# Stability, Thm 24.2, eta = u + gamma_4 (sqrt 2 + u) ~ 6.7u rounded up). Carried through
# a circular correlation r = IFFT(A conj B) / T, each output is off by at most
#     u ((2 C log2 T + 2 + 3K) ||a||_2 ||b||_2 + C log2 T min(||a||_2 ||b||_1, ||a||_1 ||b||_2))
# (K: the channels summed in the frequency domain): the forward transforms' errors meet
# the other spectrum (Cauchy-Schwarz, Parseval), the inverse's is at most its 2-norm
# error, and |B_k| <= ||b||_1. The channel sum of each bin runs in real arithmetic (BLAS's
# complex products, numpy's einsum): its real and imaginary parts are sums of 2K real
# products each, so it errs by up to sqrt(2) gamma_2K <= 3K u times sum_k |A_k| |B_k|
# (K u until 2026-12-05; a hostile pass's reading, no case seen past 0.32 of the bound).
CHANNEL_SUM_TERMS_PER_CHANNEL = 3
C_STAGE = 8.0
# float64 operands: the worst-case bound above cannot certify float64 against eps64 (it
# grows with sqrt(T) relative to a window), so their E is a root-mean-square model: the
# transforms' errors act like noise of size u * sqrt(log2 T) spread over the T outputs,
# giving per output u * sqrt(log2 T) * (2 ||a||_2 ||b||_2 + ||r||_2) / sqrt(T), times
# this factor (~4x a 5-sigma maximum over the outputs). A model, not a proof:
# tests/test_accuracy.py and a hostile tester's ~7,400 adversarial cases check it
# (worst seen: 0.14 of the contract).
# The transforms along W (the first forward pass, the last inverse one) keep each row's
# errors in that row, not spread over all T outputs: the log2 T_w stages along W err per
# output by u * sqrt(log2 T_w) * (2 min(rowmax(a) ||b||_2, ||a||_2 rowmax(b)) +
# rowmax(r)) / sqrt(T_w), rowmax the largest 2-norm of one row (a row's error meets the
# other operand's rows one for one, hence the min); the log2 T_h stages along H spread
# theirs as above. E is the larger of the two models: at least the one above, and at
# least 1 / sqrt(2) of the two added as variances. Rows of equal norm leave E as above
# (random rows: the row model is 0.9-1.1x it); one large row (a spike on a +-1
# background, 1024x1024 k7: 1.8x the contract, hostile pass 116) gives up to sqrt(T_h)
# times more, and the worst seen since is 0.35 of E (0.16 where M lets it count).
# Each bin's sum over the K channels would drift by up to ~K u times its running sums
# where the channels are alike (hostile passes 118 and 120: 1.6x and 8.7x the contract at
# K = 4096-8192); float64's passes sum them in pairwise blocks of a few, which keeps the
# drift within what this model covers (_fft_contract.CHANNEL_BLOCK).
STATISTICAL_SAFETY = 20.0
# Nor do a transform's errors always spread: one large entry's (a spike's) come back in
# part as a few point errors of up to ~0.7-1 u times the entry (scipy's rfft / irfft of
# one delta, W = 256..65536, 5-smooth sizes too), at its neighbours and at "ghosts" away
# from it (W / 4, W / 2, 0.6 W, ...), however wide the row; a spike column repeats them
# down a whole ghost column, which a kernel column sums coherently. The spread models
# shrink as 1 / sqrt(T_w), so wide images passed background pixels beside them: 32x65536
# k15, a spike column 2400x a +-1 background, 1.44x the contract (native 0.02; hostile
# pass 119; 64x65536 1.9x, 1x2x64x16384 -> 2 1.18x). Each of the three transforms (a's,
# b's, the result's) may put up to POINT_ERROR u times its largest entry at any point,
# and such a point meets the other operand at most as max|a| ||b||_1 (or ||a||_1
# max|b|; |r| <= both too), so E is at least 3 POINT_ERROR u min(max|a| ||b||_1,
# ||a||_1 max|b|). The three can share a ghost: a spike column beside a kernel of one
# nonzero column, W = 6000, erred 2.5 u max|a| ||b||_1 (0.42 of this E; with
# POINT_ERROR = 1, 0.83 of the contract). Float64 operands with one entry far above the
# rest at small k (lognormal data, k <= 7) now fail their forward certificate.
POINT_ERROR = 2.0
# Several spikes' ghosts can meet at one output: 10 spike columns, 74x a +-1 background
# of 16x6000, their signs picked so that their ghosts add at one background column
# (hostile pass 121, a greedy search), gave 1.036x the contract where max|a| stood for
# one spike. So "max|a|" above is the larger of it and the largest sum over one row (or
# column) of how far its entries stand above PEAK_RMS times the line's root mean square:
# 0 on random data (no entry of a normal sample stands 6 rms out), the spikes' sum where
# a few stand out; entries closer to the rms are the spread models' noise (as are more
# than ~n / 36 spikes in a line of n, which raise its rms past them: the row model holds
# their energy). Those 10 columns now reach 0.10 of the contract at any height, and a
# greedy search against this E 0.16. Of a's peak, only what stands above PEAK_RMS times
# a's rms counts (standing_out): the rest is the spread models' noise too, and counted
# whole the term led E on random data from k = 11 (conv 64x64 k15 float64 +0.4 ms, 0.87
# -> 1.29 of native; +0.08 ms now). The kernel's side keeps its whole peak(b).
PEAK_RMS = 6.0
# Nor are a transform's errors independent of the other operand: the pass multiplies a's
# spectrum by b's computed one, fl(B) = B + dB, so its result holds a correlated with
# db = IFFT(dB), linear in a, and an a that matches db (a(j + p) = sign db(j)) adds the
# whole of ||a||_2 ||db||_2 into output p (Cauchy-Schwarz), where the spread models spread
# it as if over sqrt(T) outputs: a 1024x1024 float64 +-1 image so matched to a 15x15
# kernel of ones, its window at p quiet enough (+-0.094) that p is certified, erred 1.82x
# the contract there (grad_input, its grad_output matched: 1.38x; native 0.01; hostile
# pass 126). pocketfft's spectra err by ||dB||_2 <= 0.58 sqrt(log2 T) u ||B||_2 for
# kernels (ones, random, +-1, few taps, 1xk, kx1; T 64^2..1024^2, 5-, 7-, 11-smooth), 0.76
# for dense images, so E is at least LINEAR_ERROR sqrt(log2 T) u sum_k ||a_k|| ||b_k||.
# It leads the spread models from T ~ 3600 (conv 64x64 k15: ~1.1-1.25x the E before),
# and from ~1024x1024 k15 (k7 from ~128x128) it certifies few outputs of random data.
# It does not make the point term redundant: the image's own error da = IFFT(dX) meets
# the kernel the same way, and one spike's da sits mostly at a few ghosts (c ~0.97 on
# 3^k lengths, against ~0.6 on 2^k), so a full-size kernel shaped as da gathers ~1.1x
# this term (1x59049, hostile pass 127: 1.10x the contract without the point term, or
# with peak's line sums dropped; the point term is ~6x this one there).
# Nor is 0.76 a bound: an alternating +-1 line of odd length errs by up to 1.49 (3^10;
# segments of it 1.73, 81x729 1.39, a 63x63 alternating kernel 0.87), in X's few large
# bins near Nyquist, where the result's norm (the spread and row models' ||r||) holds
# it: grad_output matched to such an image's error gathers 1.17x this term into a
# grad_weight output, ~0.11 of E (hostile pass 131; filtered off X's large bins, 0.56).
# Nor is the operands' transform the only linear one: the result's inverse transform
# runs on the same rounded twiddles, so its error is linear in r too, and where a is one
# entry (grad_output 1x1: r is b, shifted) the two add along one row of the round trip
# fl(IFFT(fl(FFT b))) - b. Estimated by regression over 262,144 random inputs (the
# twiddles' part: a delta's own rows, up to 1.97, hold roundings a dense b does not
# repeat), those rows reach 1.49 sqrt(log2 T) u ||b||_2 on 3^8 (~1.0 typical; 0.32 on
# 2^13), and a 1x6561 kernel shaped as one of them (int8, 0 and 1 -> +-1) erred 1.12x
# the linear term at its output (grad_input of a 1x1 grad_output, standing_out 0 so no
# point term; its window just quiet enough to be certified: 1.16x the contract, native
# 0; hostile pass 132). The inverse's error meets r itself, so E's linear term counts
# it against the result's norm: LINEAR_ERROR sqrt(log2 T) u (sum_k ||a_k|| ||b_k|| +
# ||r||_2), 0.56 of the contract there (random data: ||r|| ~ sum ||a|| ||b|| for one
# channel, sqrt(K) less for K alike ones).
LINEAR_ERROR = 1.0


# The passes' contractions of per (dim0, dim1) quantities, a (X, K) with b (Y, K) over K,
# and, where K is 1 (every pass of the single-channel layer), the same products by
# broadcasting: no sum, so equal to einsum's bit for bit, at ~0.2 us against ~1.4 (~20 of
# them in a single-channel fwd+bwd).
_OUTER_PRODUCTS = {"nc,oc->no": (1, lambda a, b: a * b.T),
                   "no,oc->nc": (1, lambda a, b: a * b),
                   "no,nc->oc": (0, lambda a, b: a.T * b),
                   "nc,no->oc": (0, lambda a, b: b.T * a)}


def pair_sums(contract: str, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """np.einsum(contract, a, b) (by _OUTER_PRODUCTS where it holds the contract)."""
    summed_axis, outer = _OUTER_PRODUCTS.get(contract, (None, None))
    if outer is not None and a.shape[summed_axis] == 1:
        return outer(a, b)
    return np.einsum(contract, a, b)


def linear_term(both2: np.ndarray, transform_size: int) -> np.ndarray:
    """E's linear term (LINEAR_ERROR) for the contracted products of 2-norms ``both2``
    (error_bound adds the result's norm, the inverse transform's share): error_bound's
    and linear_term_rejects' one formula (the rejection holds only where E is at least
    this very value, which it is with the result's norm added too)."""
    return LINEAR_ERROR * math.sqrt(math.log2(max(transform_size, 2))) * U64 * both2


def linear_term_rejects(a_norms, b_norms, contract: str, transform_size: int, outputs: int,
                        tolerance: float, work_per_fix: int, budget: float) -> bool:
    """Whether float64's linear term alone fails more of a pass's outputs (``outputs`` per
    pair, contracting a with b as ``contract``) than its fix-up budget allows, whatever
    their M: the pass would run its FFTs and then fall back to the direct method. A
    pair's outputs' M sum to at most sum_k ||a_k||_1 ||b_k||_1 (each product lies in one
    output), so by Markov's inequality at least 1 - tolerance sum M / (outputs E_lin) of
    them have tolerance M < E_lin, and fail (tiles and M's float32 bound are <= M)."""
    (a2, a1), (b2, b1) = a_norms, b_norms
    linear = linear_term(pair_sums(contract, a2, b2), transform_size)
    total_m = pair_sums(contract, a1, b1)
    share = 1 - np.divide(tolerance * total_m, outputs * linear,
                          out=np.ones_like(linear), where=linear > 0)
    return float(np.clip(share, 0, 1).sum()) * outputs * work_per_fix > budget


def norms(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per (dim0, dim1) 2-norm and 1-norm over the spatial dims."""
    flat = a.reshape(a.shape[0], a.shape[1], -1)
    return np.sqrt(np.einsum("ncp,ncp->nc", flat, flat)), np.abs(flat).sum(axis=2)


def peak(a: np.ndarray, squares: np.ndarray | None = None) -> np.ndarray:
    """Per (dim0, dim1) of a (X, Y, H, W): the largest |a| over the spatial dims, or,
    where larger, the largest sum over one row or one column of how far its entries
    stand above PEAK_RMS times that line's root mean square (the spikes whose point
    errors may meet at one output). For the scaled operands (maximum near 1: squares of
    entries past ~1e154 would overflow). ``squares``: row_squares(a), if at hand."""
    largest = np.maximum(a.max(axis=(2, 3), initial=0.0), -a.min(axis=(2, 3), initial=0.0))
    square = None
    for axis in (3, 2):  # rows, then columns
        n = a.shape[axis]
        if n <= SHORT_LINE:
            continue
        # No line holds an entry that far out where no plane's largest entry stands so
        # far above its quietest line's rms: one pass, no temporaries, which random data
        # passes (the margin covers these sums' rounding against mean()'s below).
        sums = (squares if axis == 3 and squares is not None
                else np.einsum(_LINE_SQUARES[axis], a, a))
        if (largest * largest <= _QUIET_MARGIN * PEAK_RMS ** 2 / n
                * sums.min(axis=2, initial=np.inf)).all():
            continue
        square = np.square(a) if square is None else square
        mean_square = square.mean(axis=axis, keepdims=True)
        above = square > PEAK_RMS ** 2 * mean_square
        if not above.any():
            continue
        excess = np.where(above, np.abs(a) - PEAK_RMS * np.sqrt(mean_square), 0.0)
        largest = np.maximum(largest, excess.sum(axis=axis).max(axis=2, initial=0.0))
    return largest


# A line of n entries, rms r, whose k entries e_i stand above PEAK_RMS r = 6 r: k 36 r^2
# < sum e_i^2 <= n r^2, and by Cauchy-Schwarz sum |e_i| <= sqrt(k n) r, so their excess
# is at most (sqrt(k n) - 6 k) r < (sqrt(k n) - 6 k) / 6 times the largest; one alone
# (k = 1), |e| - 6 r <= (1 - 6 / sqrt(n)) |e|. Up to n = (2 PEAK_RMS)^2 = 144 that is at
# most 0.83 (k = 2) or 0.5 (k = 1) of max|a|: such lines never raise the peak, and are
# not scanned (64x64 images: 2 numpy calls, not ~12). The bound reaches 1 at n = 162;
# equal spikes on a zero line first pass max|a| at n = 244 (k = 3).
SHORT_LINE = (2 * PEAK_RMS) ** 2
_LINE_SQUARES = {3: "nchw,nchw->nch", 2: "nchw,nchw->ncw"}  # per row, per column
_QUIET_MARGIN = 1 - 1e-9


def standing_out(peak: np.ndarray, norm: np.ndarray, size: int) -> np.ndarray:
    """How far ``peak`` (per (dim0, dim1)) stands above PEAK_RMS times the root mean
    square of its ``size`` entries of 2-norm ``norm`` (0 where it does not): the point
    term's share of a's spikes that the spread models do not hold already."""
    return np.maximum(peak - PEAK_RMS * norm / math.sqrt(max(size, 1)), 0.0)


def row_squares(a: np.ndarray) -> np.ndarray:
    """Per (dim0, dim1, row) of a (X, Y, H, W) the sum of its squares."""
    return np.einsum(_LINE_SQUARES[3], a, a)


def row_max(a: np.ndarray, squares: np.ndarray | None = None) -> np.ndarray:
    """Per (dim0, dim1) the largest 2-norm of one row (the last dim) of a (X, Y, H, W);
    ``squares``: row_squares(a), if at hand."""
    squares = row_squares(a) if squares is None else squares
    return np.sqrt(squares.max(axis=2, initial=0.0))


def error_bound(a_norms, b_norms, contract: str, contracted: int, transform_size: int,
                exact_dtype, result_norm: np.ndarray | None, rows=None,
                peaks=None) -> np.ndarray:
    """E per output pair (see C_STAGE and STATISTICAL_SAFETY), contracting a (X, K, ...)
    with b (Y, K, ...) over K as ``contract``; ``result_norm`` (needed for float64) is
    the 2-norm of each whole circular result; ``rows`` (needed for float64) is
    (rowmax(a), rowmax(b), rowmax(result), T_w): the largest row 2-norms, (X, K), (Y, K)
    and (X, Y), and the transforms' width; ``peaks`` (needed for float64) is (peak(a),
    peak(b)), (X, K) and (Y, K) (POINT_ERROR, PEAK_RMS)."""
    (a2, a1), (b2, b1) = a_norms, b_norms
    stages = math.log2(max(transform_size, 2))
    both2 = pair_sums(contract, a2, b2)
    if exact_dtype == np.float64:
        spread = (2 * both2 + result_norm) / math.sqrt(transform_size)
        a_row, b_row, result_row, width = rows
        row_spread = (2 * np.minimum(pair_sums(contract, a_row, b2),
                                     pair_sums(contract, a2, b_row))
                      + result_row) / math.sqrt(width)
        spreads = STATISTICAL_SAFETY * U64 * np.maximum(
            math.sqrt(stages) * spread, math.sqrt(math.log2(max(width, 2))) * row_spread)
        models = np.maximum(spreads, linear_term(both2 + result_norm, transform_size))
        a_peak, b_peak = peaks
        if not a_peak.any():  # (then the point term is min(0, ...): random data's case)
            return models
        point = 3 * POINT_ERROR * U64 * np.minimum(pair_sums(contract, a_peak, b1),
                                                   pair_sums(contract, a1, b_peak))
        return np.maximum(models, point)
    cross = np.minimum(pair_sums(contract, a2, b1), pair_sums(contract, a1, b2))
    return U64 * ((2 * C_STAGE * stages + 2 + CHANNEL_SUM_TERMS_PER_CHANNEL * contracted)
                  * both2 + C_STAGE * stages * cross)


def float32_error_bound(a_norms, b_norms, contract: str, contracted: int, transform_size):
    """The same worst-case bound for a correlation computed in float32 (for M)."""
    return error_bound(a_norms, b_norms, contract, contracted, transform_size,
                       np.float32, None) * (U32 / U64)
