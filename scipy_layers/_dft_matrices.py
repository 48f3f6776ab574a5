"""The DFT matrices of the FFT layer's matrix axes (:mod:`scipy_layers._dft_axes`), and
the H axis's transform and adjoint by them, folded by the symmetry of the DFT's rows.

W axis (real input): ``x @ w_forward(W)``, a (W, 2 Wr) real matrix whose columns
alternate cos and -sin, is the rfft along W as (re, im) pairs, which ``.view(complex)``
reads without a copy; its adjoint is ``pairs @ w_adjoint(W)``.

H axis (complex lines T, (..., H, Wr)): Z[k] = sum_r exp(-2 pi i k r / H) T[r]. Rows k and
H - k of the DFT matrix have the same cosines and opposite sines, so with U = C T and
V = S T over k = 0 .. H // 2 only (C[k, r] = cos(2 pi k r / H), S[k, r] = sin(...)):

    Z[k] = U[k] - i V[k],   Z[H - k] = U[k] + i V[k].

U and V are one real GEMM of the stacked (2h, H) matrix [C; S] (h = H // 2 + 1) with T
read as real pairs: H (H + 2) 2 Wr real multiply-adds against 4 H^2 Wr for the complex
product, then four ufunc passes to assemble Z. The adjoint, L[r] = sum_k exp(+2 pi i k r
/ H) G[k], folds the same rows on the way in: L = C^T E + S^T O with E[k] = G[k] + G[H-k],
O[k] = i (G[k] - G[H-k]) (k = 1 .. (H-1)//2; E[0] = G[0], E[H/2] = G[H/2] for even H,
O 0 at both): one GEMM of the same matrix, transposed (a view: one matrix a length
serves both directions).

The passes cost ~12 numpy calls a forward+adjoint and a few strided passes over the
lines, which the halved GEMM pays back only on long lines: the fold runs where
:func:`folds` says (an image's shape and dtype alone decide, so a batch's images get the
bits each gets alone), the complex product elsewhere. Measured (the H stage's forward +
adjoint alone, one thread, OpenBLAS SkylakeX, the Intel Xeon VM of docs/performance.md;
complex product -> folded, us): float64 H x Wr 31x16 8.9 -> 22.7, 61x31 42.3 -> 42.6,
79x40 69.9 -> 60.7, 127x64 254 -> 201, 47x24 x 32 images 548 -> 494; float32 79x40
35.3 -> 43.8, 97x49 70.3 -> 62.6, 127x64 126 -> 115; 13x66 x 256 images 874 -> 1602.

Rounding: each component of Z is two sums of H products (by C and by S) and their sum:
its error is at most gamma_(H+2) sum_r (|C[k, r]| |Re T[r]| + |S[k, r]| |Im T[r]|) <=
gamma_(H+2) sum_r |T[r]| (Cauchy-Schwarz, C^2 + S^2 = 1), the bound of the complex
product that :func:`scipy_layers._dft_axes.zero_bin_floor` takes for this stage; errors
carried in T weigh as there (|C|, |S| against a unit |twiddle|).
"""
from __future__ import annotations

import functools

import numpy as np

from ._workspace import recycle, scratch

# The fold where an image's lines are this long and its H stage this large (H^2 Wr
# complex multiply-adds a direction): the measured break-evens above, per dtype.
FOLD_MIN_HEIGHT = {np.dtype(np.float32): 56, np.dtype(np.float64): 40}
FOLD_MIN_PRODUCTS = {np.dtype(np.float32): 400_000, np.dtype(np.float64): 150_000}


def folds(height: int, bins: int, dtype) -> bool:
    """Whether the H stage of (..., height, bins) lines of real ``dtype`` runs folded."""
    dtype = np.dtype(dtype)
    return height >= FOLD_MIN_HEIGHT[dtype] and height * height * bins >= FOLD_MIN_PRODUCTS[dtype]


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
    return frozen(twiddles(height, height, height, sign).astype(np.result_type(dtype, 1j)))


@functools.lru_cache(maxsize=64)
def h_folded(height: int, dtype: np.dtype) -> np.ndarray:
    """(2h, H) real, h = H // 2 + 1: the cosines [C] over the sines [S] of the rows
    k = 0 .. H // 2 of the H-point DFT (S's rows 0 and, for even H, H/2 exactly 0)."""
    half = twiddles(height // 2 + 1, height, height, +1)
    return frozen(np.concatenate((half.real, half.imag)).astype(dtype))


def _as_pairs(spectrum: np.ndarray) -> np.ndarray:
    """A complex array as real (re, im) pairs along its last axis (a view; a C-ordered
    copy first where it is not C-contiguous)."""
    return np.ascontiguousarray(spectrum).view(spectrum.real.dtype)


def _rows_behind(array: np.ndarray, height: int, pairs: int) -> np.ndarray:
    """Rows H-1, H-2, .. H-pairs of ``array`` (..., H, n): row H-k at index k-1."""
    return array[..., height - 1:height - pairs - 1:-1, :]


def h_forward(lines: np.ndarray, folded: bool | None = None) -> np.ndarray:
    """The DFT of complex ``lines`` (..., H, Wr) along H, in a new complex array:
    folded (the module's doc) or as a complex product, as ``folded`` says (None: as
    :func:`folds` says)."""
    height, bins = lines.shape[-2:]
    real = lines.real.dtype
    if not (folds(height, bins, real) if folded is None else folded):
        return np.matmul(h_matrix(height, real, -1), lines)
    half, pairs = height // 2 + 1, (height - 1) // 2
    folded = np.matmul(h_folded(height, real), _as_pairs(lines))  # (..., 2h, 2 Wr): U; V
    u, v = folded[..., :half, :], folded[..., half:, :]
    spectrum = scratch(lines.shape, lines.dtype)
    z = spectrum.view(real)
    ahead = z[..., :half, :]  # Z[k] = U[k] - i V[k], k = 0 .. H // 2 (V is 0 at 0, H/2)
    np.add(u[..., 0::2], v[..., 1::2], out=ahead[..., 0::2])
    np.subtract(u[..., 1::2], v[..., 0::2], out=ahead[..., 1::2])
    behind = _rows_behind(z, height, pairs)  # Z[H - k] = U[k] + i V[k], k = 1 .. pairs
    u, v = u[..., 1:pairs + 1, :], v[..., 1:pairs + 1, :]
    np.subtract(u[..., 0::2], v[..., 1::2], out=behind[..., 0::2])
    np.add(u[..., 1::2], v[..., 0::2], out=behind[..., 1::2])
    return spectrum


def h_adjoint(spectrum: np.ndarray, folded: bool | None = None) -> np.ndarray:
    """sum_k exp(+2 pi i k r / H) spectrum[k] along H, a new complex array, ``folded``
    as in :func:`h_forward`; ``spectrum`` (..., H, Wr) is left as it was."""
    height, bins = spectrum.shape[-2:]
    real = spectrum.real.dtype
    if not (folds(height, bins, real) if folded is None else folded):
        return np.matmul(h_matrix(height, real, +1), spectrum)
    half, pairs = height // 2 + 1, (height - 1) // 2
    g = _as_pairs(spectrum)
    stacked = scratch((*spectrum.shape[:-2], 2 * half, 2 * bins), real)  # E over O
    even, odd = stacked[..., :half, :], stacked[..., half:, :]
    ahead, behind = g[..., 1:pairs + 1, :], _rows_behind(g, height, pairs)  # G[k], G[H-k]
    even[..., 0, :] = g[..., 0, :]
    np.add(ahead, behind, out=even[..., 1:pairs + 1, :])
    odd[..., 0, :] = 0  # (S's zero rows meet these: 0, not whatever the buffer held)
    if height % 2 == 0:
        even[..., half - 1, :] = g[..., half - 1, :]
        odd[..., half - 1, :] = 0
    # O = i (G[k] - G[H-k]): Re O = Im G[H-k] - Im G[k], Im O = Re G[k] - Re G[H-k]
    np.subtract(behind[..., 1::2], ahead[..., 1::2], out=odd[..., 1:pairs + 1, 0::2])
    np.subtract(ahead[..., 0::2], behind[..., 0::2], out=odd[..., 1:pairs + 1, 1::2])
    lines = np.matmul(h_folded(height, real).T, stacked)
    recycle(stacked)
    return lines.view(spectrum.dtype)
