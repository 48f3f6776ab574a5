"""kn2row: im2col's layout turned round for convs with fewer output than input channels
(per group), at stride 1 on finite operands.

im2col copies C_in kH kW window rows of the input and runs one GEMM against them; kn2row
(Anderson, Vasudevan, Keane and Gregg, "Low-memory GEMM-based convolution algorithms for
deep neural networks", 2017) runs the GEMM first, every tap's C_out x C_in weights times
the whole padded input at once, giving C_out kH kW rows, and shift-adds those rows into
the output. The expanded matrix has C_out kH kW rows instead of C_in kH kW: with few
output channels, a fraction of im2col's memory traffic for the same multiply-adds.
The backward expands the output side too: gy's windows (C_out kH kW rows, each gy row
shifted back by a tap) feed one GEMM for grad_input and one for grad_weight.

All three passes work on the tall layout of _tall (every image of a channel in one flat
row) so that each GEMM covers the whole batch and every shift is one contiguous run.
Each entry is a sum of its own window's products (plus products with the padding's or
gy's zeros, +-0 for finite operands), in another order than im2col's: the accuracy
contract's bound holds by construction. Non-finite operands take the tap kernels
(inf * 0 would make a NaN here), as for im2col.
"""
from __future__ import annotations

import numpy as np

from ._conv_rule import dtype_name
from ._tall import TallLayout, from_tall, grad_output_tall, outputs_from_tall, tall_padded
from ._ufunc_rows import rows_in_place
from ._workspace import output, recycle, scratch

# Output channels per input channel (per group) up to which kn2row runs: im2col's time
# over kn2row's, fwd+bwd, one process (Zen 4 VM of docs/performance.md, 7 shapes x 6
# ratios a dtype, 3x3-7x7, 16-128 input channels; float32 | float64): output / input
# 1/16 0.14-0.39 | 0.11-0.38, 1/4 0.36-0.72 | 0.38-0.79, 1/2 0.46-0.94 | 0.57-0.89,
# 3/4 0.85-1.09 | 0.89-1.10, 1 0.95-1.33 | 1.07-1.36.
MAX_OUTPUT_RATIO = {"float32": 0.5, "float64": 0.5}


def takes(w_shape, groups: int, dtype) -> bool:
    """Fewer output than input channels a group, by MAX_OUTPUT_RATIO for the dtype."""
    c_out, c_group = w_shape[:2]
    ratio = MAX_OUTPUT_RATIO[dtype_name(dtype)]
    return c_group > 1 and 0 < c_out // groups <= ratio * c_group


# kn2row computes every padded input position (N Hp Wp) and keeps the outputs (N Ho Wo):
# on outputs much smaller than the padded input (a kernel near the image's size, large
# dilations) that multiplies the work and its expanded rows, up to GBs where im2col needs
# MBs (a hostile pass: 1x64x112x112 -> 16 at 112x112 asked for 18.8 GiB). So it runs only
# while it computes at most MAX_COMPUTED_PER_OUTPUT positions an output and its expanded
# rows (C_out kH kW x N Hp Wp) are no larger than im2col's windows (C_in kH kW x N Ho Wo,
# times MAX_ROWS_PER_WINDOW).
# Measured kn2row / im2col time, fwd+bwd, no padding (computed / kept, rows / windows;
# float32, float64): 2x64x20x20 -> 1 k11 (4.0, 0.06) 0.13, 0.13; 1x64x16x16 -> 4 k9 (4.0,
# 0.25) 0.59, 0.66; 8x64x14x14 -> 8 k7 (3.1, 0.38) 0.45, 0.56; 2x64x16x16 -> 32 k9 (4.0,
# 2.0) 2.10, 2.21; 1x256x9x9 -> 16 k7 (9.0, 0.56) 2.42, 2.31; 4x32x10x10 -> 4 k7 (6.2,
# 0.78) 0.59, 0.75 (left to im2col: a conservative limit).
MAX_COMPUTED_PER_OUTPUT = 4.0
MAX_ROWS_PER_WINDOW = 1.0


def runs(x_shape, w_shape, geometry, dtype) -> bool:
    """Stride 1, :func:`takes`, something to compute, and not too much thrown away (see
    MAX_COMPUTED_PER_OUTPUT)."""
    if not (geometry.stride == (1, 1) and takes(w_shape, geometry.groups, dtype)
            and x_shape[0] > 0 and min(geometry.out_hw) > 0):
        return False
    layout = TallLayout(x_shape, w_shape, geometry)
    return (layout.length <= MAX_COMPUTED_PER_OUTPUT * layout.kept
            and w_shape[0] * layout.flat_length <= MAX_ROWS_PER_WINDOW * x_shape[1] * layout.kept)


def _tap_weights(w, groups):
    """(G, C_out/G kH kW, C_in/G): rows (output channel, tap), each tap's weights."""
    c_out, c_group, k_h, k_w = w.shape
    return w.transpose(0, 2, 3, 1).reshape(groups, c_out // groups * k_h * k_w, c_group)


def forward(x, w, bias, geometry):
    """(y (N, C_out, Ho, Wo) (+ bias) in an output() buffer, the tall padded x (scratch,
    for grad_weight; the caller recycles it))."""
    groups, layout = geometry.groups, TallLayout(x.shape, w.shape, geometry)
    c_out, taps = w.shape[0], len(layout.starts)
    flat = tall_padded(x, layout)
    products = scratch((groups, c_out // groups * taps, layout.flat_length), x.dtype)
    np.matmul(_tap_weights(w, groups), flat.reshape(groups, -1, layout.flat_length),
              out=products)
    by_tap = products.reshape(c_out, taps, layout.flat_length)
    rows = scratch((c_out, layout.length), x.dtype)
    np.copyto(rows, by_tap[:, 0, :layout.length])
    with rows_in_place(layout.length):  # C_out strided rows of `length` per add
        for tap, (*_, start) in enumerate(layout.starts[1:], 1):
            rows += by_tap[:, tap, start:start + layout.length]
    recycle(products)
    y = outputs_from_tall(rows, layout, bias)
    recycle(rows)
    return y, flat


def backward(gy, w, x, flat, geometry, need_input: bool, need_weight: bool):
    """(grad_input, grad_weight), fresh arrays or None; gy finite. ``flat``: forward's
    tall padded x, or None (then rebuilt from x when grad_weight is wanted)."""
    groups, layout = geometry.groups, TallLayout(x.shape, w.shape, geometry)
    c_out, c_group = w.shape[:2]
    taps, tail = len(layout.starts), layout.tail
    # gy placed on its tall output rows, zero on the dropped rows and columns and for
    # `tail` before them: row (o, tap) of `windows` is gy's row o shifted back by the
    # tap's start, so that entry m of it meets input position m of the tap.
    shifted = grad_output_tall(gy, layout, lead=tail)
    windows = scratch((c_out, taps, layout.length), gy.dtype)
    for tap, (*_, start) in enumerate(layout.starts):
        windows[:, tap] = shifted[:, tail - start:tail - start + layout.length]
    recycle(shifted)
    by_group = windows.reshape(groups, c_out // groups * taps, layout.length)
    grad_x = grad_w = None
    if need_weight:
        own_flat = flat is None
        if own_flat:
            flat = tall_padded(x, layout)
        inputs = flat.reshape(groups, c_group, layout.flat_length)[..., :layout.length]
        grad = np.matmul(by_group, inputs.transpose(0, 2, 1))  # (G, C_out/G kH kW, C_in/G)
        grad_w = np.ascontiguousarray(
            grad.reshape(c_out, *w.shape[2:], c_group).transpose(0, 3, 1, 2))
        if own_flat:
            recycle(flat)
    if need_input:
        weights = np.ascontiguousarray(_tap_weights(w, groups).transpose(0, 2, 1))
        padded = scratch((groups, c_group, layout.length), gy.dtype)
        np.matmul(weights, by_group, out=padded)
        grad_x = from_tall(padded.reshape(-1, layout.length), layout,
                           output(x.shape, gy.dtype))
        recycle(padded)
    recycle(windows)
    return grad_x, grad_w
