"""The FFT convolution's channel contraction: for each frequency bin, a small matrix
product of two spectra (``contract_channels``), as a broadcast product, einsum, or a
stacked matmul over bins on BLAS (``_matmul_bins``). _fft_conv's three passes and their
certificates' M's call it; their spectra are (P, Q, U, V), bins last, or, where every
pass multiplies (``contracts_by_matmul``), views of bins-first (U, V, P, Q) memory."""
from __future__ import annotations

import numpy as np

from ._workspace import recycle, scratch

# The channel contraction runs as numpy's matmul on bins-first views (its own loop: the
# views are strided) from this many multiply-adds per bin, einsum below. One process,
# the six contractions of a fwd+bwd (three passes, their M), float64, ms einsum / matmul:
# 8x16x32x32 -> 32 k7 at 32x17 bins (4096 a bin) 29.4 / 7.3 (the layer 53.8 / 34.8);
# 8x3 -> 16 k11 (384) 3.6 / 2.4; at 96-128 a bin (4x3 -> 8, 2x16 -> 4) matmul was 0-30%
# slower a pass. With one image the forward and grad_input products are vector-matrix,
# which einsum runs 2-3x faster (its order streams the weight spectra once): 1x64x56x56
# -> 64, 15-16 / 35-46 ms a pass.
MATMUL_MIN_PRODUCTS = 256


def contracts_by_matmul(n: int, c_in: int, c_out: int) -> bool:
    """Whether all three passes of an (n, c_in) by (c_out, c_in) conv contract by
    _matmul_bins in contract_channels (and their M's, which contract alike): two or more
    images and channels on both sides, MATMUL_MIN_PRODUCTS per bin."""
    return min(n, c_in, c_out) >= 2 and n * c_in * c_out >= MATMUL_MIN_PRODUCTS


def contract_channels(pattern: str, a: np.ndarray, b: np.ndarray,
                      pairwise: bool = False) -> np.ndarray:
    """np.einsum(pattern, a, b) for the three passes, each a small matrix product per
    frequency bin: a broadcast product when the summed axis has length 1 (the single-
    channel layer); a stacked matmul over bins-first views, into a pooled buffer, where
    each bin's product is large enough (MATMUL_MIN_PRODUCTS) and, for the two passes
    whose rows are images, there are two or more images; else einsum. Results are
    C-contiguous whatever the operands' layout (a copy only where they are not: bins
    first, which only matmul's passes take). The matmul's results are scratch: callers
    recycle() them once transformed back. ``pairwise``: the summed axis in blocks of
    CHANNEL_BLOCK, their results added pairwise (see CHANNEL_BLOCK)."""
    contract = _contraction(pattern, a, b)
    a_axis, b_axis = SUMMED_AXES[pattern]
    if not pairwise or a.shape[a_axis] <= CHANNEL_BLOCK:
        return contract(a, b)
    return _pairwise_blocks(contract, a, b, a_axis, b_axis)


# Each bin's sum over the summed axis (channels, or images for grad_weight) runs one term
# after another in einsum and in BLAS (which blocks it but adds its blocks in turn): alike
# terms round alike, so a sum of K terms drifts by up to ~K u times its running sums, not
# as noise, and running sums may be ~K |term| where the final one cancels to nearly 0
# (hostile passes 118 and 120: 4096-8192 alike channels, float64, certified outputs 1.6x
# and 8.7x the contract). Summed in blocks of this many terms whose results are added
# pairwise, a sum drifts by at most ~(CHANNEL_BLOCK + log2(K / CHANNEL_BLOCK)) u times
# its terms' magnitudes (identical blocks round identically and their pairwise sums are
# exact doublings), a drift float64's statistical model covers as it covers sums of 16
# one by one: on both passes' attacks at most 0.054 of its E (8.7x the contract before).
# Only float64's passes are blocked: float32's bound is worst case, with its 3K u term.
CHANNEL_BLOCK = 16
# (the summed axis of a and of b, per pattern)
SUMMED_AXES = {"ncuv,ocuv->nouv": (1, 1), "nouv,ocuv->ncuv": (1, 0), "ncuv,nouv->ocuv": (0, 0)}


def _contraction(pattern: str, a: np.ndarray, b: np.ndarray):
    """The function (a, b) -> contract_channels(pattern, a, b) picks for these operands
    (for their blocks too: the choice is made on the whole contraction)."""
    n_rows = a.shape[0]
    products = n_rows * a.shape[1] * b.shape[0 if pattern == "ncuv,ocuv->nouv" else 1]
    if pattern == "ncuv,ocuv->nouv":
        if a.shape[1] == 1:
            return lambda a, b: np.ascontiguousarray(a[:, None, 0] * b[None, :, 0])
        if n_rows >= 2 and products >= MATMUL_MIN_PRODUCTS:
            return lambda a, b: _matmul_bins(_bins_first(a), _bins_first(b).transpose(0, 2, 1), a)
    elif pattern == "nouv,ocuv->ncuv":
        if a.shape[1] == 1:
            return lambda a, b: np.ascontiguousarray(a[:, 0][:, None] * b[0][None])
        if n_rows >= 2 and products >= MATMUL_MIN_PRODUCTS:
            return lambda a, b: _matmul_bins(_bins_first(a), _bins_first(b), a)
    elif pattern == "ncuv,nouv->ocuv":
        if n_rows == 1:
            return lambda a, b: np.ascontiguousarray(b[0][:, None] * a[0][None])
        if products >= MATMUL_MIN_PRODUCTS:
            return lambda a, b: _matmul_bins(_bins_first(b).transpose(0, 2, 1), _bins_first(a), a)
    return lambda a, b: np.ascontiguousarray(np.einsum(pattern, a, b))


def _pairwise_blocks(contract, a, b, a_axis: int, b_axis: int) -> np.ndarray:
    """contract(a, b) as the sum of its CHANNEL_BLOCK-term blocks, added pairwise (a
    binary counter: at most log2(blocks) partial results held at once)."""
    held = []  # (level, partial sum of 2**level blocks)
    for start in range(0, a.shape[a_axis], CHANNEL_BLOCK):
        block = slice(start, start + CHANNEL_BLOCK)
        total = contract(a[(slice(None),) * a_axis + (block,)],
                         b[(slice(None),) * b_axis + (block,)])
        level = 0
        while held and held[-1][0] == level:
            total = _added(held.pop()[1], total)
            level += 1
        held.append((level, total))
    total = held.pop()[1]
    while held:
        total = _added(held.pop()[1], total)
    return total


def _added(into: np.ndarray, other: np.ndarray) -> np.ndarray:
    """into += other, other back to the workspace (contract's results are scratch or
    new arrays alike)."""
    into += other
    recycle(other)
    return into


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
# length 1 never gets here: contract_channels' broadcast products.)
BINS_CHUNK_BYTES = 2 << 20
# Where every pass contracts by _matmul_bins (contracts_by_matmul), the operands'
# spectra are laid out bins first once, as they are made (_fft_operand._spectrum), and each
# bin's matrices go to BLAS as they lie (numpy passes a transposed one with BLAS's
# transpose flag): each spectrum feeds two passes and its M one more, which copied it
# chunk by chunk every time.
# Elsewhere spectra keep (P, Q, U, V) memory: einsum and the broadcast products run on
# whole contiguous bins, and a bins-first layout made them strided (4x3x128x128 -> 2 k9
# 'same' float32 +70%, 2x3x48x48 -> 2 k15 float64 +36%). Side by side, fwd+bwd, the
# Intel VM of docs/performance.md, 24 batches: 8x16x32x32 -> 32 k7 float64 -7.5%, k15
# -8%, 8x8x24x24 -> 32 k15 'same' float32 -8%, 4x4x48x48 -> 128 k13 'same' float64 -4.5%;
# 8x3x32x32 -> 16 k15 (3 input channels) level.


def _matmul_bins(left: np.ndarray, right: np.ndarray, like: np.ndarray) -> np.ndarray:
    """left @ right per bin ((U V, P, K) @ (U V, K, Q)), into a C-contiguous (P, Q, U, V)
    scratch array (the layout the inverse transforms take), a chunk of bins at a time:
    each chunk of an operand not laid out bins first copied C-contiguous, so that numpy
    hands every bin to BLAS instead of running its own loop on the strided views (see
    BINS_CHUNK_BYTES)."""
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
