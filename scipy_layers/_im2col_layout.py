"""Which layout the batched conv's im2col kernels (_nchw_kernels) run: windows along
whole padded rows or strided ones (_wide), grad_weight's GEMM orientation
(grad_weight_cols_first), and the bias as one more GEMM row (_bias_in_gemm): the rules,
with the measurements behind their constants. The kernels (_nchw_kernels, _im2col_grads)
read each from this module when they run, so a test that patches one patches it here."""
from __future__ import annotations

import numpy as np

from ._finite import all_finite

# The wide layout computes (Wp - Wo) / Wo extra output columns in all three GEMMs; with
# the page faults gone (workspace) it measured 2-4% faster at (1,64,56,56) k3 (3.7%
# extra) and 2-10% slower at 32x32 k3 inputs (6.7% extra) than the strided copies.
WIDE_MAX_EXTRA = 0.05
# grad_input alone (its GEMM and the col2im adds) takes the wide layout up to far more
# extra columns: the narrow col2im adds short strided rows, numpy's per-row overhead,
# where the wide one adds a few long contiguous runs. Measured (wide / narrow time of
# that GEMM + col2im, one process, one thread, OpenBLAS SkylakeX, the Zen 5 VM of
# docs/performance.md; float32, float64): 8x16x32x32 -> 32 k3 (7% extra) 0.81, 0.90;
# k7 (23%) 0.90, 1.00; 1x64x56x56 -> 64 k3 0.75, 0.77, k7 (12%) 0.77, 0.81, k15 (33%)
# 0.96, 0.98; 8x3x32x32 -> 16 k7 0.83, 0.95; 8x16x32x32 k15 (78%) 1.35, 1.35.
GRAD_INPUT_WIDE_MAX_EXTRA = 0.25
# Both wide layouts also copy the output side: y out of its wide buffer, gy into one (C_out
# strided rows of Wo per output row each). They pay only while that is less than what
# the window side saves (C_in kH kW strided rows per output row, per image): with more
# output channels than window rows, narrow was faster in every case measured (narrow /
# wide, fwd+bwd of the whole layer, one process, rotated, one thread, OpenBLAS SkylakeX,
# the Zen 4 VM of docs/performance.md; float32, float64): 1x3x224x224 -> 64 k3 (64 on 27
# rows) 0.78, 0.75, 'same' 0.83, 0.85; -> 32 k3 0.83, 0.83; 2x3x128x128 -> 64 k3 0.87,
# 0.74; 2x1x256x256 -> 32 k3 0.69; 4x8x64x64 -> 128 k3 0.91, 0.84; 8x1x28x28 -> 32 k3
# 'same' 0.85, 0.82; 8x4x16x16 -> 64 k3 'same' 0.91, 0.89; 16x3x32x32 -> 64 k3 'same'
# 0.92. At or below one output channel per window row it was level or mixed (4x8x64x64
# -> 64 k3 0.96, 2x16x64x64 -> 64 k3 1.01, 1x64x56x56 -> 64 k3 1.01, 1x3x224x224 -> 16
# k3 0.96, -> 64 k7 0.94 float32): those keep the extra-column rules.
WIDE_MAX_OUTPUT_ROWS = 1.0  # C_out / (C_in kH kW) up to which the wide layouts run
# grad_weight's GEMM as cols @ gy^T (the (K, C_out) transpose of the result) instead of
# gy @ cols^T where the window matrix has K rows (C_in/G kH kW, and the bias's row of
# ones) in the dtype's range here: which runs faster depends on K as much as on the
# dtype. The GEMM alone (per-image shapes as the layer runs them, the two orientations
# alternated AB / BA, one thread, OpenBLAS SkylakeX, the Intel VM of
# docs/performance.md; cols-first / gy-first), float32: K 28 (3 channels at 3x3) 1.00 at
# 8x3x32x32 -> 16, 1.15 at 1x3x224x224 -> 64; K 145-785 0.59-0.84 (8x3x32x32 k7, k15,
# 8x16x32x32 k3, k7, 1x64x56x56 k3); K 3,137 1.00 (1x64x56x56 k7), 14,401 1.13 (k15);
# float64: K 28 0.97 and 0.81; 145-148 0.87-0.93, but inside the layer 8x16x32x32 -> 32
# k3 (K 145) ran +0.36 / +0.44 ms slower side by side (two runs), so float64 keeps
# gy-first from there; K 577-785 1.08-1.63, 3,137 and 14,401 1.48-1.61. Side by side at
# these bounds against the one orientation per dtype before (float32 cols-first,
# float64 gy-first; fwd+bwd, us): 1x3x224x224 -> 64 k3 float64 -1,990 / -1,821, float32
# -228 / -482, 1x64x56x56 -> 64 k15 float32 -6,425 / -5,266, 2x3x128x128 -> 32 k3
# float64 -175, 8x3x32x32 -> 16 k3 float64 level (+2, +63, -47). The Zen 5 VM's
# figures, from which each dtype took one orientation at first (float32 cols-first
# 0.49-0.95 on the CNN shapes, float64 0.96-1.40, k7 the largest), lie on the same
# sides of these bounds. On the Zen 4 and Zen 5 VMs (tools/gemm_orientation.py, both
# dtypes, the suite's CNN shapes) float64's bounds hold (the rule's picks 1.000x / 1.001x
# the faster in all) but float32 runs cols-first faster past 4,096 rows too: 1x64x56x56
# -> 64 k15 (K 14,401) 0.88 / 0.82, where the Intel VM read 1.13, so that pick costs the
# AMD CPUs about what it gains the Intel one (side by side: +5.0 / +3.2 ms, 1.068 ->
# 1.105 / 1.091 -> 1.135 of native); the bounds stay the Intel VM's, which measured them
# in the layer too.
GRAD_WEIGHT_COLS_FIRST_ROWS = {np.dtype(np.float32): (64, 4096), np.dtype(np.float64): (1, 64)}
# The bias as one more GEMM row (a row of ones in the windows, the bias beside the
# weights) instead of passes of its own: the add over y after forward's GEMM and the sum
# of grad_output over (N, Ho, Wo) in backward (grad_weight's GEMM gives it), for one more
# row of K in two GEMMs. Side by side against the bias apart (tools/side_by_side.py, 30
# batches, fwd+bwd / native, one thread, OpenBLAS Haswell, the Zen 3 VM of
# docs/performance.md): 8x3x32x32 -> 16 k3 float32 1.154 -> 1.089 (-63 us); 1x3x224x224
# -> 64 k7 float32 0.938 -> 0.872; 4x1x64x64 -> 16 k1 float32 4.14 -> 2.50; the other
# CNN cells (8x3x32x32 k7, 8x16x32x32 -> 32 k3, 1x64x56x56 -> 64 k3, both dtypes) 0-3%
# faster, within their spread; none slower. Only for one group (the ones row is one row
# of the window matrix) and a finite bias (a planted inf or NaN then lands as native's
# add puts it). Where finite terms overflow (magnitude sums above the dtype's largest
# value, outside the accuracy contract) the bias and the sum of gy meet the partial sums
# in BLAS's order, not after them, and can land inf or NaN elsewhere than native does,
# as the GEMM's own sums already could.
BIAS_IN_GEMM = True
# grad_bias from the GEMM is a float32 sum along each image's L columns in BLAS's
# blocks: constant grad_output, relative to the exact sum, 2.6e-6 at 64x64 to 7.7e-6 at
# 1024x1024 (numpy's pairwise sum 1.2e-7; native 5e-8 to 1e-2 on 3 -> 8 channels k3), but
# 1.6e-4 on one 8192x8192 image (native 9e-7; hostile pass). Beyond this many columns an
# image, grad_bias is numpy's sum of grad_output again.
BIAS_GRAD_MAX_LENGTH = 1 << 20


def grad_weight_cols_first(dtype, window_rows: int) -> bool:
    """Whether grad_weight's GEMM runs as cols @ gy^T for windows of ``window_rows`` rows
    in ``dtype`` (GRAD_WEIGHT_COLS_FIRST_ROWS)."""
    low, high = GRAD_WEIGHT_COLS_FIRST_ROWS.get(dtype, (1, 0))
    return low <= window_rows <= high


def _bias_in_gemm(bias, groups) -> bool:
    """Whether im2col's GEMMs carry ``bias`` (see BIAS_IN_GEMM)."""
    return BIAS_IN_GEMM and bias is not None and groups == 1 and all_finite(bias)


def _wide(geometry, w_shape, max_extra=None):
    """Stride 1, few extra columns (at most ``max_extra``, WIDE_MAX_EXTRA by default, of
    the output's width) and no more output channels than window rows (times
    WIDE_MAX_OUTPUT_ROWS): windows along whole padded rows."""
    max_extra = WIDE_MAX_EXTRA if max_extra is None else max_extra
    c_out, c_group, k_h, k_w = w_shape
    extra = geometry.dilation[1] * (k_w - 1)
    window_rows = geometry.groups * c_group * k_h * k_w
    return (geometry.stride == (1, 1) and extra <= max_extra * geometry.out_hw[1]
            and c_out <= WIDE_MAX_OUTPUT_ROWS * window_rows)
