"""The FFT layer's 2-D real transform, one axis at a time, each axis by scipy.fft
(pocketfft) or by a DFT matrix product (numpy matmul on BLAS); its adjoint, axis by axis
as the same plan ran them, is in :mod:`scipy_layers._dft_adjoint`.

Why two ways: on lengths with a prime factor above 11 pocketfft has no butterfly pass
for it: it runs a generic O(p^2) pass or Bluestein's algorithm (three transforms of a
padded length), while a DFT matrix product, length^2 multiply-adds per line, runs as one
GEMM at BLAS speed. Measured (numpy/scipy part of forward+backward, one process, one
thread, AMD EPYC family 25 model 1): 127x127 (prime) 685 -> 358 us float32 and 1971 ->
854 us float64; the whole layer call, against native: 1.29 -> 0.79 float32, 1.31 ->
0.75 float64 (docs/performance.md). Matrices would win on short lengths of
small factors too (16x16 float32 58 -> 18 us) but are kept off them: there pocketfft's
butterflies, like native's FFT, subtract equal terms exactly, so a large constant offset
cancels without error, where a matrix product leaves ~length * eps of it in every bin (a
16x16 float64 image of 1000 + 1e-4 * noise: gradient 1e-8 off native, the layer's
tolerance being 1e-10). Where matrices do run, each image's mean is taken out first
(:func:`rfft2`).
The check for exact zero bins (:func:`transform`) sends a call back to scipy.fft; of
100 random 127x127 float32 images it did so for 3 standard-normal, 5 uniform [0, 1) and
18 100 + noise ones (none in float64, none at 61x61), which then pay both transforms.

The matrices and the products (:mod:`scipy_layers._dft_matrices`): the W axis is one real
GEMM whose result reads as complex (re, im) pairs without a copy; a matrix H axis runs
after it as a complex product on small images, and first on large ones (from ~88x88
float64, ~122x122 float32: :func:`scipy_layers._dft_matrices.folds`), on the real image,
folded by the symmetry of the DFT's rows: ~3/4 of the multiply-adds at 127x127.

Accuracy: a DFT entry is a sum of ``length`` products, so its rounding error is at most
~length * eps of the sum of magnitudes (Higham, sec. 3.1), against pocketfft's
~log2(length) * eps; capping the matrix path at MATRIX_MAX_LENGTH keeps float32 at
~1e-5 worst case, inside the layer's norm-wise 1e-4 tolerance (agreement.py).
"""
from __future__ import annotations

import functools
import math
from typing import NamedTuple

import numpy as np
import scipy.fft

from . import _dft_matrices, _fft_into
from ._checks import LayerValueError
from ._dft_matrices import h_assemble, h_forward_rows, h_matrix, w_forward
from ._workspace import output, recycle, scratch

# Matrix DFT (per axis) on a length with a prime factor pocketfft has no butterfly pass
# for, when its modelled cost is below MATRIX_MARGIN x pocketfft's; never above
# MATRIX_MAX_LENGTH (its matrices grow as length^2, its rounding as length).
MATRIX_MAX_LENGTH = 128
BUTTERFLY_PRIMES = (2, 3, 5, 7, 11)  # pocketfft's dedicated passes (2, 3, 4, 5, 7, 8, 11)
# How many pocketfft "cost units" (pocketfft's own estimate, below) one multiply-add of
# a BLAS GEMM is worth, per dtype: fitted to the measured crossovers on the machine
# named above (numpy/scipy part of forward+backward, matrix vs scipy.fft on n x n:
# float32 91 = 7 x 13: 207 vs 227 us, 104 = 8 x 13: 266 vs 240 us; float64 65 = 5 x 13:
# 186 vs 249 us, 91: 279 vs 201 us).
GEMM_SPEEDUP = {np.dtype(np.float32): 4.6, np.dtype(np.float64): 3.7}
# Matrices must be modelled this much cheaper (cost <= MATRIX_MARGIN x pocketfft's): they
# also pay for taking the mean out and the zero-bin check (layer, fwd+bwd / native:
# 65x65 float32 1.24 against scipy.fft's 1.37; 91x91 float32 1.33 against 1.21).
MATRIX_MARGIN = 0.6
METHODS = ("auto", "fft", "matrix")


class AxisPlan(NamedTuple):
    """Which axes run as DFT matrix products (True) instead of scipy.fft (False)."""

    matrix_h: bool
    matrix_w: bool


@functools.lru_cache(maxsize=None)
def _pocketfft_cost(length: int) -> float:
    """pocketfft's cost estimate of one complex transform of ``length`` (its
    ``cost_guess``: length times the sum of its prime factors, larger primes x1.1),
    or of Bluestein's three padded transforms where pocketfft would take those."""

    def guess(n: int) -> float:
        total, rest = 0.0, n
        while rest % 2 == 0:
            total, rest = total + 2, rest // 2
        factor = 3
        while factor * factor <= rest:
            while rest % factor == 0:
                total, rest = total + (factor if factor <= 5 else 1.1 * factor), rest // factor
            factor += 2
        if rest > 1:
            total += rest if rest <= 5 else 1.1 * rest
        return total * n

    direct = guess(length)
    padded = scipy.fft.next_fast_len(2 * length - 1)
    return min(direct, 3.0 * guess(padded))  # pocketfft: 2 * cost * 1.5 "fudge factor"


def _butterflies_only(length: int) -> bool:
    """True when every prime factor of ``length`` has a pocketfft butterfly pass."""
    for prime in BUTTERFLY_PRIMES:
        while length % prime == 0:
            length //= prime
    return length == 1


def _matrix_wins(length: int, dtype) -> bool:
    if length > MATRIX_MAX_LENGTH or _butterflies_only(length):
        return False
    return (length * length / GEMM_SPEEDUP[np.dtype(dtype)]
            < MATRIX_MARGIN * _pocketfft_cost(length))


@functools.lru_cache(maxsize=1024)
def choose_plan(height: int, width: int, dtype, method: str = "auto") -> AxisPlan:
    """The axis plan for an (..., height, width) input of ``dtype`` (numpy dtype):
    ``method`` "fft" (scipy.fft on both axes), "matrix" (matrix products on both axes;
    the caller checks the lengths, :func:`check_matrix_lengths`) or "auto" (per axis:
    a matrix on a length up to 128 with a prime factor above 11, where the cost model
    above says it is cheaper; on the H axis only where the W axis takes one too).

    Why not H alone: beside scipy.fft's W pass, scipy.fft runs the H pass over many
    columns at once (pocketfft vectorises lines along a strided axis), which every
    H-only matrix plan measured lost to: the layer's fwd+bwd / native, one process, one
    thread, the Intel Xeon VM of docs/performance.md (sixteenth session), H-only
    matrices -> scipy.fft on both axes: float64 127x2 1.82 -> 1.03, 127x8 1.75 -> 0.98,
    127x32 1.37 -> 0.83, 127x64 0.98 -> 0.76, 127x256 0.94 -> 0.67, 127x1024 0.72 ->
    0.61, 31x128 0.59 -> 0.48, 113x200 0.87 -> 0.76, 61x256 0.368 -> 0.374; float32
    13x130 1.61 -> 1.16, 13x1024 1.05 -> 0.88, 61x64 1.14 -> 0.93, 97x48 1.09 -> 0.97,
    127x256 1.01 -> 0.73 (in float32 its zero-bin floor, which grows with W, also sent
    most such calls back to scipy.fft: 20 of 20 random 127x1024 images). A matrix W
    axis alone, where pocketfft runs each row on its own, measured faster: 64x127
    float64 1.54 -> 0.97, 256x127 1.65 -> 0.79, 1024x13 float32 0.92 -> 0.83 (131x26
    float64 0.82 -> 0.91, the one loss measured, kept by the same rule)."""
    if method == "fft":
        return AxisPlan(False, False)
    if method == "matrix":
        return AxisPlan(True, True)
    matrix_w = _matrix_wins(width, dtype)
    return AxisPlan(matrix_w and _matrix_wins(height, dtype), matrix_w)


def check_matrix_lengths(height: int, width: int) -> None:
    if max(height, width) > MATRIX_MAX_LENGTH:
        raise LayerValueError(
            f"method='matrix' takes H and W up to {MATRIX_MAX_LENGTH} (its DFT matrices grow "
            f"as length^2 and its rounding error as length); got H={height}, W={width}. Use "
            f"method='auto' or 'fft'")


def rfft2(x: np.ndarray, plan: AxisPlan) -> np.ndarray:
    """rfft2 of real ``x`` (..., H, W) over its last two axes, complex (..., H, W//2+1).

    With a matrix axis, each image's mean is taken out first and put back into bin
    (0, 0) alone: a matrix product leaves ~length * eps of a constant offset in every
    bin, where butterflies cancel it exactly (1000 + 1e-4 * noise would otherwise lose
    the small bins' phases). (:func:`transform` does the same with its own checks.)"""
    if not (plan.matrix_h or plan.matrix_w):
        return _fft_into.rfft2(x)
    mean = x.mean(axis=(-2, -1), keepdims=True)
    return _from_centred(x - mean, mean, plan)


def _from_centred(centred: np.ndarray, mean: np.ndarray, plan: AxisPlan) -> np.ndarray:
    """rfft2 of centred + mean: ``centred`` transformed by ``plan``, then H W mean added
    at bin (0, 0), the only bin a constant has."""
    spectrum = _centred_rfft2(centred, plan)
    spectrum[..., 0, 0] += centred.shape[-2] * centred.shape[-1] * mean[..., 0, 0]
    return spectrum


def _centred_rfft2(x: np.ndarray, plan: AxisPlan) -> np.ndarray:
    height, width = x.shape[-2:]
    if plan.matrix_h and _dft_matrices.folds(height, width, x.dtype):  # H first, folded
        rows = h_forward_rows(x)
        lines = _w_stage(rows, plan.matrix_w)
        recycle(rows)
        spectrum = h_assemble(lines, height)
        recycle(lines)  # (a view of the pairs, or scratch: only the latter goes back)
        return spectrum
    lines = _w_stage(x, plan.matrix_w)
    if plan.matrix_h:
        spectrum = np.matmul(h_matrix(height, x.dtype, -1), lines)
        recycle(lines)
        return spectrum
    return _fft_into.fft_axis(lines, -2, True)  # (in place: lines is a fresh array)


def _w_stage(rows: np.ndarray, matrix: bool) -> np.ndarray:
    """The rfft of real ``rows`` (..., n, W) along W: complex (..., n, Wr), fresh or
    scratch."""
    width = rows.shape[-1]
    complex_dtype = _fft_into.complex_of(rows.dtype)
    if matrix:
        # (re, im) pairs read as complex: needs the last axis contiguous, which
        # ascontiguousarray guarantees (a no-op on the GEMM's fresh C-ordered result)
        pairs = np.ascontiguousarray(np.matmul(rows, w_forward(width, rows.dtype)))
        return pairs.view(complex_dtype)
    return _fft_into.rfft_last(rows, scratch((*rows.shape[:-1], width // 2 + 1), complex_dtype))


def transform(x: np.ndarray, method: str = "auto"):
    """(rfft2(x), |rfft2(x)|, the plan that computed them) for ``method``.

    Where "auto" picked a matrix and a bin comes out within the matrix DFT's rounding
    error of zero (or anything is not finite, or the sums could overflow), the call is
    redone on scipy.fft, the layer's transform before matrices: a matrix product gives
    rounding noise where the spectrum is exactly zero (constant or periodic images),
    whose phase would enter the gradient (d|Z|/dZ = Z/|Z|) where scipy.fft may give 0
    (torch's sgn(0) = 0); one NaN would spread through a matrix product to every bin of
    its image. "matrix" never redoes (see :func:`zero_bin_floor`)."""
    plan = choose_plan(*x.shape[-2:], x.dtype, method)
    if not (plan.matrix_h or plan.matrix_w):  # (the common case, one call less)
        return _with_magnitude(_fft_into.rfft2(x), plan)
    if method != "auto":
        return _with_magnitude(rfft2(x, plan), plan)
    mean = x.mean(axis=(-2, -1), keepdims=True)
    centred = x - mean
    floor = zero_bin_floor(x, mean, centred)
    if floor < math.inf:  # (inf: not finite, too small or too large for matrices' sums)
        spectrum = _from_centred(centred, mean, plan)
        result = _with_magnitude(spectrum, plan)
        if result[1].min() > floor:  # (not "<=": a NaN bin must redo too)
            return result
    return _with_magnitude(_fft_into.rfft2(x), AxisPlan(False, False))


def _with_magnitude(spectrum, plan):
    """(spectrum, |spectrum| in a workspace output() array, plan)."""
    return spectrum, np.abs(spectrum, out=output(spectrum.shape, spectrum.real.dtype)), plan


def zero_bin_floor(x: np.ndarray, mean: np.ndarray | None = None,
                   centred: np.ndarray | None = None) -> float:
    """A bound on the rounding error of any bin of :func:`rfft2` with a matrix axis, over
    every image of ``x``; ``mean`` (..., 1, 1) and ``centred`` (x - mean, as computed)
    are taken from the caller or computed. With A the largest image sum of |centred| and
    u the unit roundoff (eps/2): with the W axis first, the W stage sums W real products
    with |twiddle| <= 1, stored to within u, of operands each within u of x - mean: error
    <= (gamma_W + 3u) (its row's sum of |centred|); the H stage, a complex product,
    errs by <= sqrt(2) gamma_(H+2) sum |T| (Higham, 2nd ed., lemma 3.5; sum |T| <= A),
    plus the carried errors, <= (W + 3) u A: <= (W + 3 + sqrt(2) (H + 4)) u A in all.
    With the H axis first and folded (_dft_matrices, whose doc derives it): <= sqrt(2)
    (W + H/2 + 5) u A. The larger of the two is taken, whichever ran. Adding H W mean
    back at (0, 0) rounds by <= 2u H W |mean| (a constant's sum, x - mean's, is exact for
    any mean), and x1.25 covers the twiddles' own float64 rounding, |.|'s rounding and
    gamma's higher terms; products that underflow err by up to half the smallest
    subnormal each, absolutely: (H + 1)(W + 4) of those covers a bin's products in either
    order. (A scipy.fft axis in place of a matrix one errs far less than its length's
    term here.) An exactly zero bin comes out below it (constant, checkerboard, periodic
    and +-1e30 images: at most 5% of it); on random data a bin rarely does (the module
    docstring has the measured odds). Centring makes offset images (1000 + noise) keep
    matrices: their A is the noise's, not the offset's.

    inf (the call then runs on scipy.fft) where the images' sums of |x| (at most A + H W
    |mean|) are not finite or could overflow the sums (above the dtype's largest value /
    (4 (H + 1) (W + 1))), and where they are so small (below 1024 times the smallest
    normal number per element) that underflowing products lose relative accuracy
    (float32 all-subnormal images: 1e-4 off native by matrices, 3e-7 by scipy.fft)."""
    height, width = x.shape[-2:]
    points = height * width
    if mean is None:
        mean = x.mean(axis=(-2, -1), keepdims=True)
    if centred is None:
        centred = x - mean
    magnitudes = np.abs(centred)
    spread = float(magnitudes.sum() if x.ndim == 2 else magnitudes.sum(axis=(-2, -1)).max())
    offset = float(np.abs(mean).max())
    unit_roundoff, smallest, smallest_normal, largest = _LIMITS[x.dtype]
    total = spread + points * offset  # >= every image's sum of |x|
    if not (1024 * smallest_normal * points <= total
            <= largest / (4 * (height + 1) * (width + 1))):  # (NaN too)
        return math.inf
    orders = max(width + 3 + math.sqrt(2) * (height + 4), math.sqrt(2) * (width + height / 2 + 5))
    return (1.25 * (orders * unit_roundoff * spread + 2 * unit_roundoff * points * offset)
            + (height + 1) * (width + 4) * smallest)


_LIMITS = {np.dtype(t): (float(np.finfo(t).eps) / 2, float(np.finfo(t).smallest_subnormal),
                         float(np.finfo(t).smallest_normal), float(np.finfo(t).max))
           for t in (np.float32, np.float64)}
