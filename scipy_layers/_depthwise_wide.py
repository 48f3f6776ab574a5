"""Depthwise convolution (groups = C_in, channel multiplier m = C_out / C_in) on finite
operands, along whole padded rows of one tall image a channel (at a stride, one a phase
of the padded input: _tall).

Each channel's N zero-padded images are stacked into one tall image (N Hp rows of Wp) and
flattened, as im2col's "wide" windows (_nchw_kernels) and the shift method do: then a
tap's window over all images of a channel is one contiguous run, and a tap is two
elementwise passes over C long rows instead of N C Ho rows of Wo (14-56 elements on
MobileNet-sized images, where numpy's per-row cost dominated the tap kernels). Each
image's last (kH - 1) dH rows and last Wp - Wo columns of output are computed and dropped;
the gy fed back has zeros there.

Same bits as the tap kernels for y and grad_input: every output (input) value gets the
same products in the same tap order, plus products with the zero padding or with gy's
zeros, which are +-0 for finite operands and leave a sum that starts at +0 unchanged.
grad_weight sums the same products (and such zeros) in another order. At a stride the
taps read the phases (polyphase; the same products, the same tap order: the same bits).
Non-finite operands take the tap kernels (inf * 0 would make a NaN here).
"""
from __future__ import annotations

import math

import numpy as np

from ._tall import TallLayout, from_tall, grad_output_tall, outputs_from_tall, tall_padded
from ._tap_kernels import channel_blocks, sum_in_order
from ._ufunc_rows import rows_in_place
from ._workspace import output, recycle, scratch


# The tall images hold every padded (phase) position, computed and dropped where no output
# is kept: on outputs far smaller than the padded input (large dilation with large
# padding) that is work and memory the tap kernels never spend (a hostile pass: 1x64x3x3
# k3, stride 2, dilation and padding 300, 2x2 outputs: 68 MiB against 0.02). So it runs
# while it computes at most MAX_COMPUTED_PER_OUTPUT positions a kept output (as kn2row).
MAX_COMPUTED_PER_OUTPUT = 4.0


def runs(x_shape, w_shape, geometry, finite: bool) -> bool:
    """Whether a depthwise pass runs here: finite operands, something to do, not too
    much thrown away (MAX_COMPUTED_PER_OUTPUT)."""
    if not (finite and math.prod(x_shape) > 0 and min(geometry.out_hw) > 0):
        return False
    layout = TallLayout(x_shape, w_shape, geometry)
    return layout.length <= MAX_COMPUTED_PER_OUTPUT * layout.kept


def _blocks(c_in: int, multiplier: int, layout, itemsize: int):
    return channel_blocks(c_in, multiplier, layout.length * multiplier * itemsize)


def forward(x, w, bias, geometry):
    """y (N, C_out, Ho, Wo) (+ bias) in an output() buffer."""
    c_in, c_out = x.shape[1], w.shape[0]
    multiplier, layout = c_out // c_in, TallLayout(x.shape, w.shape, geometry)
    flat = tall_padded(x, layout)
    phases = flat.reshape(-1, c_in, layout.flat_length)
    rows = scratch((c_out, layout.length), x.dtype)
    rows.fill(0)  # (a sum from +0, as the tap kernels': the same bits)
    with rows_in_place(layout.length):
        for ci, co in _blocks(c_in, multiplier, layout, rows.itemsize):
            x_block, w_block = phases[:, ci], w[co, 0]
            # output row o of the block reads input row o // multiplier: (c, m, L) views
            y_block = rows[co].reshape(-1, multiplier, layout.length)
            for i, j, phase, start in layout.starts:
                window = x_block[phase, :, None, start:start + layout.length]
                y_block += window * w_block[:, i, j].reshape(-1, multiplier, 1)
    recycle(flat)
    y = outputs_from_tall(rows, layout, bias)  # (bias after the sum, as the tap kernels')
    recycle(rows)
    return y


def backward(gy, w, x, geometry, need_input: bool, need_weight: bool):
    """(grad_input, grad_weight), fresh arrays or None; gy finite."""
    c_in, c_out = x.shape[1], w.shape[0]
    multiplier, layout = c_out // c_in, TallLayout(x.shape, w.shape, geometry)
    gy_rows = grad_output_tall(gy, layout)  # zero where output was dropped
    grad_x = grad_w = None
    if need_weight:
        flat = tall_padded(x, layout)
        phases = flat.reshape(-1, c_in, layout.flat_length)
        grad_w = np.empty(w.shape, dtype=gy.dtype)
        for ci, co in _blocks(c_in, multiplier, layout, flat.itemsize):
            x_block = phases[:, ci]
            g_block = gy_rows[co].reshape(-1, multiplier, layout.length)
            for i, j, phase, start in layout.starts:
                window = x_block[phase, :, start:start + layout.length]
                grad_w[co, 0, i, j] = np.einsum("cml,cl->cm", g_block, window).reshape(-1)
        recycle(flat)
    if need_input:
        flat = scratch((len(layout.phases) * c_in, layout.flat_length), gy.dtype)
        flat.fill(0)
        phases = flat.reshape(-1, c_in, layout.flat_length)
        with rows_in_place(layout.length):
            for ci, co in _blocks(c_in, multiplier, layout, flat.itemsize):
                g_block, grad_block, w_block = gy_rows[co], phases[:, ci], w[co, 0]
                for i, j, phase, start in layout.starts:
                    contribution = g_block * w_block[:, i, j][:, None]
                    if multiplier > 1:
                        contribution = sum_in_order(contribution.reshape(
                            ci.stop - ci.start, multiplier, layout.length), axis=1)
                    grad_block[phase, :, start:start + layout.length] += contribution
        grad_x = from_tall(flat, layout, output(x.shape, gy.dtype))
        recycle(flat)
    recycle(gy_rows)
    return grad_x, grad_w
