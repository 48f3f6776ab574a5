"""The per-pixel check of an FFT pass against the accuracy contract (see _fft_conv's
docstring): each output certified by cheap lower bounds of its M where they suffice, by
M itself where not, the rest fixed up by direct sums within a budget, or the pass
rejected. E comes from the error model (_fft_certificate)."""
from __future__ import annotations

import numpy as np

from ._fft_certificate import U64

# A fix-up may cost at most this many multiply-adds per element of the pass's operand (the
# FFT pass itself costs ~ 3 log2 T per element); beyond it the caller's direct method runs.
FIXUP_WORK_PER_ELEMENT = 16
# Fix-ups gather each pixel's terms (its windows) before summing them: at most this many
# terms at a time, so their memory stays ~8 MiB however many pixels fail.
FIXUP_CHUNK_TERMS = 1 << 20
# Where the caller's direct method is the tap kernels (_nchw_fft), a forward or
# grad_input pass may instead spend TAP_FIXUP_SHARE / c of that direct pass's
# multiply-adds, c the channels each tap's GEMM sums (C_in forward, C_out grad_input):
# taps take ~1.4 / c ns a multiply-add, fix-ups 2-6 (docs/performance.md), so at most
# about half the tap pass. Float64 grad_input with one output channel fails ~10% of its
# pixels on random data (the borders, where M holds few products), C_in times more than
# grad_output has elements: every such pass ran the tap kernels after its FFT.
TAP_FIXUP_SHARE = 0.12


# A float32 pass's E bounds float64 transforms (C_STAGE): ~2^29 below float32's contract,
# so the output's own magnitude bounds M far enough above E / tolerance for every output
# not within a hair of zero, which on real data is all of them, and M's float32 transforms
# (_fft_conv._m_lower) never run. Side by side, fwd+bwd / native, the Intel VM of
# docs/performance.md: 8x3x32x32 -> 16 k15 float32 1.015 -> 0.746, 8x16x32x32 -> 32 k15
# 0.826 -> 0.565, 4x3x128x128 -> 2 k9 'same' 0.757 -> 0.475. float64's contract sits at its
# transforms' own precision: there |result| - E left a share of the outputs to M anyway,
# and the extra pass cost 2-5% (8x16x32x32 -> 32 k7 float64 +3%), so float64 skips it.
OUTPUT_BOUND_DTYPES = (np.dtype(np.float32),)


def fixup_budget(operand_size: int, result_size: int, terms: int, tap_channels: int) -> float:
    """Multiply-adds a pass's fix-ups may take before the caller's direct method runs
    the whole pass (``result_size`` outputs of ``terms`` multiply-adds) instead:
    FIXUP_WORK_PER_ELEMENT per element of its operand, or TAP_FIXUP_SHARE's
    (``tap_channels``: its c, 0 where it does not apply)."""
    budget = FIXUP_WORK_PER_ELEMENT * operand_size
    if tap_channels:
        budget = max(budget, TAP_FIXUP_SHARE / tap_channels * result_size * terms)
    return budget


class WindowMinima:
    """Lower bounds of min |a| over every (kh, kw) window of a (N, C, H, W), by blocks:
    the block minima of (kh, kw) tiles, each tile's taken with its right, lower and
    diagonal neighbours, bound every window whose top-left pixel lies in the tile (a
    window spans at most 2 x 2 tiles). Exact (a minimum has no rounding); 2 passes."""

    def __init__(self, a: np.ndarray, window):
        self.window = window
        k_h, k_w = window
        magnitude = np.abs(a)
        rows = np.minimum.reduceat(magnitude, np.arange(0, a.shape[2], k_h), axis=2)
        tiles = np.minimum.reduceat(rows, np.arange(0, a.shape[3], k_w), axis=3)
        tiles[:, :, :-1] = np.minimum(tiles[:, :, :-1], tiles[:, :, 1:])
        tiles[:, :, :, :-1] = np.minimum(tiles[:, :, :, :-1], tiles[:, :, :, 1:])
        self.tiles = tiles  # (N, C, ceil(H / kh), ceil(W / kw))

    def pixels(self, tile_mask: np.ndarray, out_hw) -> np.ndarray:
        """The output pixels (out_hw) whose windows start in the masked tiles."""
        k_h, k_w = self.window
        expanded = np.repeat(np.repeat(tile_mask, k_h, axis=-2), k_w, axis=-1)
        return expanded[..., :out_hw[0], :out_hw[1]]


def certify(result, bound, tolerance, lower_tiles, pixels_of, exact_m, direct_at,
            work_per_fix, budget, output_bound=False):
    """Make ``result`` (X, Y, ...) meet the contract, or return None.

    ``lower_tiles()``: (X, Y, tiles) lower bounds of M per tile of outputs, with
    ``pixels_of(tile_mask)`` the outputs of masked tiles (both None: no cheap bound);
    ``output_bound``: bound M from below by the result itself (OUTPUT_BOUND_DTYPES) before
    ``exact_m()``, a lower bound of M per output by FFT; ``direct_at(*index)``: the
    outputs at ``index`` by direct sums, each of ``work_per_fix`` multiply-adds."""
    need = bound[:, :, None, None] / tolerance
    failing = None
    if lower_tiles is not None:
        tile_failing = need > lower_tiles()
        if not tile_failing.any():
            return result
        failing = pixels_of(tile_failing)
    if output_bound:
        # M >= |exact output| >= |result| - E: a sum of products is at most the sum of
        # their magnitudes, and the result is within E of it; (1 - 4u) covers the
        # rounding of |result| - E (see OUTPUT_BOUND_DTYPES).
        output_failing = need > (np.abs(result) - bound[:, :, None, None]) * (1 - 4 * U64)
        failing = output_failing if failing is None else failing & output_failing
        if not failing.any():
            return result
    # M by FFT before any fix-up: gathering windows for direct sums costs more per pixel
    # (measured 256x256 7x7 grad_input, whose edge tiles always hold the zero padding:
    # 5 ms of fix-ups against ~1 ms for M).
    m_failing = need > exact_m()
    failing = m_failing if failing is None else failing & m_failing
    count = int(np.count_nonzero(failing))
    if count == 0:
        return result
    if count * work_per_fix > budget:
        return None
    index = np.nonzero(failing)
    step = max(1, FIXUP_CHUNK_TERMS // max(1, work_per_fix))
    for start in range(0, count, step):
        part = tuple(axis[start:start + step] for axis in index)
        result[part] = direct_at(*part)
    return result
