"""The DFT matrices of the FFT layer's matrix axes (:mod:`scipy_layers._dft_axes`), and
the H axis run first and folded by the symmetry of its rows where the image is large.

W axis (real rows): ``rows @ w_forward(W)``, a (W, 2 Wr) real matrix whose columns
alternate cos and -sin, is the rfft along W as (re, im) pairs, which ``.view(complex)``
reads without a copy; its adjoint is ``pairs @ w_adjoint(W)``.

H axis, as a complex product (small images): the W axis first, then the (H, H) complex
DFT matrix times the (..., H, Wr) complex lines: 4 H^2 Wr real multiply-adds a direction.

H axis folded, first (large images): the H-point DFT of a real column is fixed by its
rows k = 0 .. H // 2, and rows k and H - k of the DFT matrix share cosines and have
opposite sines (C[k, r] = cos(2 pi k r / H) = C[k, H - r], S[k, r] = -S[k, H - r]). So
with U = C x and V = S x over those rows only (h = H // 2 + 1 of them), each folded on
the way in (U = Cf [x_0; x_r + x_(H-r); x_(H/2)], V = Sf [x_r - x_(H-r)], r = 1 .. (H-1)//2),
and the W axis then run on the 2h real rows [U; V] (P = rfft_W):

    Z[k] = P_U[k] - i P_V[k],   Z[H - k] = P_U[k] + i P_V[k].

H^2 W / 2 real multiply-adds for the H stage and 2h W 2Wr for the W stage, against H W
2Wr + 4 H^2 Wr for the W axis then the complex product: ~3/4 of the work at 127x127.
The adjoint runs the same steps backwards: G's rows folded into [E; O], E[k] = G[k] +
G[H-k] and O[k] = i (G[k] - G[H-k]) (E[0] = G[0], E[H/2] = G[H/2] for even H, O 0 at
both), the W axis's adjoint on those 2h rows, then x[r] = a[r] + b[r], x[H-r] = a[r] -
b[r] with a = Cf^T E', b = Sf^T O' (the same two matrices, transposed views).

The fold costs ~8 more numpy calls a forward+backward and passes over the rows, which
its saved products pay back only on long columns: it runs where :func:`folds` says (an
image's shape and dtype alone decide, not the batch's size, so an image takes the same
path in a batch as alone; `auto`'s zero-bin check, _dft_axes.transform, still decides
for the whole call). Measured (the layer's fwd+bwd / native, one process, alternated 14 rounds, one
thread, OpenBLAS SkylakeX, the Intel Xeon VM of docs/performance.md; complex product ->
folded): float64 61x61 0.263 -> 0.285, 79x79 0.377 -> 0.396, 97x97 0.828 -> 0.750,
113x113 1.043 -> 0.912, 8x61x61 0.284 -> 0.301, 16x31x31 0.457 -> 0.632; float32 97x97
0.871 -> 0.891, 113x113 0.976 -> 0.969 (1.000 against 0.990 in a second run: kept
complex), 127x127 1.013 -> 0.976, 8x97x97 0.632 -> 0.608.

Rounding, with A = sum |x| over the (centred) image and u the unit roundoff, for a W
axis by matrix: the folded H stage
errs by <= gamma_(h+2) sum_r |C[k, r]| |x_r| in U (and with |S| in V), column by column;
the W stage adds <= gamma_(W+2) sum_b (|U_b| |cos| + |V_b| |sin|) to each component of
Z, and carries the H stage's errors with the same weights; as |C||cos| + |S||sin| <= 1
(Cauchy-Schwarz), each component of Z errs by <= (gamma_(W+2) + gamma_(h+2)) A:
|error| <= sqrt(2) (W + H/2 + 5) u A, which :func:`scipy_layers._dft_axes.zero_bin_floor`
takes with the W-first order's bound. Not derived here, as for the W-first order: the
centring's own rounding (x - mean within u A), inside that floor's x1.25, and a W axis
on pocketfft, whose butterflies err far less than a matrix's W term (a hostile pass
measured the largest error at 0.36 of the floor, at bin (0, 0) of offset images, and at
most 0.08 of it elsewhere, over 15 families of images at every folding shape).
"""
from __future__ import annotations

import functools

import numpy as np

from ._fft_into import complex_of
from ._workspace import recycle, scratch

# The fold where an image's columns are this long and its H^2 W this large: the
# measured break-evens above, per dtype.
FOLD_MIN_HEIGHT = {np.dtype(np.float32): 112, np.dtype(np.float64): 88}
FOLD_MIN_PRODUCTS = {np.dtype(np.float32): 1_800_000, np.dtype(np.float64): 600_000}


@functools.lru_cache(maxsize=1024)  # (asked twice a call: a hit costs less than the tests)
def folds(height: int, width: int, dtype) -> bool:
    """Whether a matrix H axis of (..., height, width) real ``dtype`` images runs folded,
    first (the module's doc), instead of as a complex product after the W axis."""
    dtype = np.dtype(dtype)
    return (height >= FOLD_MIN_HEIGHT[dtype]
            and height * height * width >= FOLD_MIN_PRODUCTS[dtype])


def twiddles(rows: int, cols: int, length: int, sign: int) -> np.ndarray:
    """exp(sign * 2 pi i * r * c / length) for r < rows, c < cols, in complex128; the
    product r * c is reduced mod length in integers first, so no angle loses bits, and
    the quarter turns are exact (sin(pi) would read 1.2e-16, so a zero row of sines, the
    folded H matrix's at H/2, would not be zero)."""
    turns = np.outer(np.arange(rows), np.arange(cols)) % length
    angle = turns * (2 * np.pi / length)
    cos, sin = np.cos(angle), np.sin(angle)
    for quarter, (c, s) in enumerate(((1, 0), (0, 1), (-1, 0), (0, -1))):
        exact = 4 * turns == quarter * length
        cos[exact], sin[exact] = c, s
    return cos + 1j * sign * sin


def frozen(array: np.ndarray) -> np.ndarray:
    array.flags.writeable = False  # cached and shared by every call
    return array


@functools.lru_cache(maxsize=64)
def w_forward(width: int, dtype: np.dtype) -> np.ndarray:
    """(W, 2*Wr) real: x @ it is the W-axis rfft as (re, im) pairs."""
    half = twiddles(width, width // 2 + 1, width, -1)
    pairs = np.empty((width, 2 * half.shape[1]))
    pairs[:, 0::2], pairs[:, 1::2] = half.real, half.imag
    return frozen(pairs.astype(dtype))


@functools.lru_cache(maxsize=64)
def w_adjoint(width: int, dtype: np.dtype) -> np.ndarray:
    """(2*Wr, W) real: (re, im) pairs @ it is Re(sum_j P_j exp(+2 pi i j b / W))."""
    half = twiddles(width // 2 + 1, width, width, +1)
    pairs = np.empty((2 * half.shape[0], width))
    pairs[0::2], pairs[1::2] = half.real, -half.imag
    return frozen(pairs.astype(dtype))


@functools.lru_cache(maxsize=64)
def h_matrix(height: int, dtype: np.dtype, sign: int) -> np.ndarray:
    """(H, H) complex: its product with (..., H, Wr) lines transforms along H."""
    return frozen(twiddles(height, height, height, sign).astype(complex_of(dtype)))


@functools.lru_cache(maxsize=64)
def h_halves(height: int, dtype: np.dtype) -> tuple:
    """(Cf, Sf): the cosines (h, h) and sines (h, (H-1)//2) of the H-point DFT's rows
    k = 0 .. H // 2 that meet the folded columns [x_0; x_r + x_(H-r); x_(H/2)] and
    [x_r - x_(H-r)] (r = 1 .. (H-1)//2); Sf's rows 0 and, for even H, H/2 exactly 0."""
    half, pairs = height // 2 + 1, (height - 1) // 2
    rows = twiddles(half, height, height, +1)
    return (frozen(np.ascontiguousarray(rows.real[:, :half]).astype(dtype)),
            frozen(np.ascontiguousarray(rows.imag[:, 1:pairs + 1]).astype(dtype)))


def as_pairs(spectrum: np.ndarray) -> np.ndarray:
    """A complex array as real (re, im) pairs along its last axis (a view; a C-ordered
    copy first where it is not C-contiguous)."""
    return np.ascontiguousarray(spectrum).view(spectrum.real.dtype)


def _rows_behind(array: np.ndarray, height: int, pairs: int) -> np.ndarray:
    """Rows H-1, H-2, .. H-pairs of ``array`` (..., H, n): row H-r at index r-1."""
    return array[..., height - 1:height - pairs - 1:-1, :]


def h_forward_rows(x: np.ndarray) -> np.ndarray:
    """[U; V] (..., 2h, W) real, in a workspace array: C x and S x over the rows k = 0 ..
    H // 2 of real ``x`` (..., H, W), its columns folded first (the module's doc)."""
    height, width = x.shape[-2:]
    half, pairs = height // 2 + 1, (height - 1) // 2
    cosines, sines = h_halves(height, x.dtype)
    lead = x.shape[:-2]
    folded = scratch((*lead, half + pairs, width), x.dtype)  # even part over odd part
    behind = _rows_behind(x, height, pairs)
    folded[..., 0, :] = x[..., 0, :]
    np.add(x[..., 1:pairs + 1, :], behind, out=folded[..., 1:pairs + 1, :])
    if height % 2 == 0:
        folded[..., half - 1, :] = x[..., half - 1, :]
    np.subtract(x[..., 1:pairs + 1, :], behind, out=folded[..., half:, :])
    rows = scratch((*lead, 2 * half, width), x.dtype)
    np.matmul(cosines, folded[..., :half, :], out=rows[..., :half, :])
    if pairs:
        np.matmul(sines, folded[..., half:, :], out=rows[..., half:, :])
    else:  # (H = 1, 2: no sines)
        rows[..., half:, :] = 0
    recycle(folded)
    return rows


def h_assemble(lines: np.ndarray, height: int) -> np.ndarray:
    """Z (..., H, Wr) complex, in a workspace array, from ``lines`` (..., 2h, Wr): the W
    axis's transform of :func:`h_forward_rows`'s [U; V] (the module's doc)."""
    real = lines.real.dtype
    half, pairs = height // 2 + 1, (height - 1) // 2
    p = as_pairs(lines)
    u, v = p[..., :half, :], p[..., half:, :]
    spectrum = scratch((*lines.shape[:-2], height, lines.shape[-1]), lines.dtype)
    z = spectrum.view(real)
    ahead = z[..., :half, :]  # Z[k] = P_U[k] - i P_V[k], k = 0 .. H // 2 (P_V 0 at 0, H/2)
    np.add(u[..., 0::2], v[..., 1::2], out=ahead[..., 0::2])
    np.subtract(u[..., 1::2], v[..., 0::2], out=ahead[..., 1::2])
    behind = _rows_behind(z, height, pairs)  # Z[H - k] = P_U[k] + i P_V[k], k = 1 .. pairs
    u, v = u[..., 1:pairs + 1, :], v[..., 1:pairs + 1, :]
    np.subtract(u[..., 0::2], v[..., 1::2], out=behind[..., 0::2])
    np.add(u[..., 1::2], v[..., 0::2], out=behind[..., 1::2])
    return spectrum


def h_fold_spectrum(spectrum: np.ndarray) -> np.ndarray:
    """[E; O] (..., 2h, Wr) complex, in a workspace array: the adjoint of
    :func:`h_assemble` applied to ``spectrum`` (..., H, Wr), which is left as it was."""
    height, bins = spectrum.shape[-2:]
    real = spectrum.real.dtype
    half, pairs = height // 2 + 1, (height - 1) // 2
    g = as_pairs(spectrum)
    stacked = scratch((*spectrum.shape[:-2], 2 * half, 2 * bins), real)
    even, odd = stacked[..., :half, :], stacked[..., half:, :]
    ahead, behind = g[..., 1:pairs + 1, :], _rows_behind(g, height, pairs)  # G[k], G[H-k]
    even[..., 0, :] = g[..., 0, :]
    np.add(ahead, behind, out=even[..., 1:pairs + 1, :])
    odd[..., 0, :] = 0  # (Sf's zero rows meet these: 0, not whatever the buffer held)
    if height % 2 == 0:
        even[..., half - 1, :] = g[..., half - 1, :]
        odd[..., half - 1, :] = 0
    # O = i (G[k] - G[H-k]): Re O = Im G[H-k] - Im G[k], Im O = Re G[k] - Re G[H-k]
    np.subtract(behind[..., 1::2], ahead[..., 1::2], out=odd[..., 1:pairs + 1, 0::2])
    np.subtract(ahead[..., 0::2], behind[..., 0::2], out=odd[..., 1:pairs + 1, 1::2])
    return stacked.view(spectrum.dtype)


def h_adjoint_rows(rows: np.ndarray, height: int) -> np.ndarray:
    """The adjoint of :func:`h_forward_rows` applied to real ``rows`` (..., 2h, W): a new
    real (..., H, W) array."""
    width = rows.shape[-1]
    half, pairs = height // 2 + 1, (height - 1) // 2
    cosines, sines = h_halves(height, rows.dtype)
    a = np.matmul(cosines.T, rows[..., :half, :])  # rows r = 0 .. pairs (and H/2)
    result = np.empty((*rows.shape[:-2], height, width), rows.dtype)
    result[..., 0, :] = a[..., 0, :]
    if pairs:
        b = np.matmul(sines.T, rows[..., half:, :])  # rows r = 1 .. pairs
        np.add(a[..., 1:pairs + 1, :], b, out=result[..., 1:pairs + 1, :])
        np.subtract(a[..., 1:pairs + 1, :], b, out=_rows_behind(result, height, pairs))
    if height % 2 == 0:
        result[..., half - 1, :] = a[..., half - 1, :]
    return result
