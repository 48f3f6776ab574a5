"""Direct convolution one kernel tap at a time, over real pixels only ("tap" method).

For each tap (i, j) of the kernel, the output pixels whose input pixel
(r * s_h + i * d_h - top, c * s_w + j * d_w - left) lies inside the unpadded input get
``w[:, :, i, j] @ x[pixels]`` added; padding contributes no term at all. So every sum
holds exactly the products native torch's oneDNN path forms: a NaN or inf reaches only
the outputs and gradients whose windows hold it (0 * inf never appears where native
has no product), and each output is a plain direct sum (error <= n * eps * sum |x||w|).

Used for any pass whose operands are not all finite, by both conv layers (depthwise
convs on finite operands run _depthwise_wide, whose results are these kernels' bits),
and as the exact recomputation behind the FFT method's accuracy certificate. Any stride,
padding, dilation and groups; arrays in, fresh arrays out, inputs never written; only
basic slicing (no stride tricks), so any memory layout of the inputs is safe.

Shapes: x (N, C_in, H, W), w (C_out, C_in/groups, kH, kW), y / gy (N, C_out, Ho, Wo);
``geometry`` is _nchw_args.ConvGeometry.
"""
from __future__ import annotations

import functools

import numpy as np


def _quiet(kernel):
    """NaN and inf are expected operands here: no RuntimeWarning for them."""

    @functools.wraps(kernel)
    def wrapper(*args):
        with np.errstate(invalid="ignore", over="ignore"):
            return kernel(*args)

    return wrapper


def _tap_range(tap: int, dilation: int, stride: int, pad_before: int, size: int, out: int):
    """(first output index, last + 1, first input index) of the outputs o whose input
    index o * stride + tap * dilation - pad_before lies in [0, size)."""
    offset = tap * dilation - pad_before
    first = max(0, -(offset // stride))                 # ceil(-offset / stride), at least 0
    last = min(out, (size - 1 - offset) // stride + 1)  # floor division: <= 0 when none fit
    return first, max(first, last), first * stride + offset


def _taps(w_shape, x_hw, geometry):
    """Every tap with its output block and input slice, skipping taps that hit no pixel."""
    _, _, k_h, k_w = w_shape
    (s_h, s_w), (d_h, d_w) = geometry.stride, geometry.dilation
    top, _, left, _ = geometry.padding
    out_h, out_w = geometry.out_hw
    for i in range(k_h):
        r0, r1, in_r = _tap_range(i, d_h, s_h, top, x_hw[0], out_h)
        if r0 >= r1:
            continue
        rows_in = slice(in_r, in_r + s_h * (r1 - r0 - 1) + 1, s_h)
        for j in range(k_w):
            c0, c1, in_c = _tap_range(j, d_w, s_w, left, x_hw[1], out_w)
            if c0 >= c1:
                continue
            cols_in = slice(in_c, in_c + s_w * (c1 - c0 - 1) + 1, s_w)
            yield i, j, (slice(r0, r1), slice(c0, c1)), (rows_in, cols_in)


def depthwise(groups: int, c_in: int) -> bool:
    """One input channel per group (depthwise, channel multiplier C_out / groups): every
    group's GEMM would be a single row, so the taps run as broadcast products over all
    channels at once instead of a Python loop over the groups."""
    return groups > 1 and c_in == groups


def sum_in_order(terms, axis: int):
    """terms summed along ``axis`` one after another. (numpy's sum pairs terms up where
    the axis is contiguous and 8 or more long, so its order would follow the layout: a
    depthwise grad_input over 1x1 output blocks summed the channel multiplier's terms in
    another order than over larger blocks, and than _depthwise_wide.)"""
    terms = np.moveaxis(terms, axis, 0)
    total = terms[0].copy()
    for term in terms[1:]:
        total += term
    return total


def per_output_channel(block, multiplier: int, axis: int = 1):
    """A depthwise block with C_in channels along ``axis`` (N, C_in, h, w by default) as
    one with C_out: output channel o reads input channel o // multiplier."""
    return block if multiplier == 1 else np.repeat(block, multiplier, axis=axis)


def _group_slices(groups: int, c_in: int, c_out: int):
    c_group, o_group = c_in // groups, c_out // groups
    for g in range(groups):
        yield slice(g * c_group, (g + 1) * c_group), slice(g * o_group, (g + 1) * o_group)


# Depthwise taps run over blocks of channels whose images (N x H x W x multiplier a
# channel) take about this many bytes, so that the per-tap products and sums stay in
# cache instead of streaming every channel's images through memory once a tap. Measured
# (fwd + grad_input + grad_weight kernels, one thread, 9 alternating rounds, blocked /
# all channels at once, Zen 4 VM of docs/performance.md, 1 MiB L2): 8x32x56x56 k3
# float32 0.75, float64 0.57, 1x96x112x112 k3 float32 0.55, 1x32x112x112 float64 0.87;
# 0.99-1.04 (within the noise) on 8x256x14x14, 8x64x28x28 stride 2, 4x16x32x32 k5 x2,
# 8x3x32x32. With 2 MiB: 0.62-0.93 on the first four, with 128 KiB up to 1.35 (more
# Python work per byte).
DEPTHWISE_BLOCK_BYTES = 1 << 20


def channel_blocks(c_in: int, multiplier: int, channel_bytes: int):
    """(input channels, output channels) slices of depthwise blocks of about
    DEPTHWISE_BLOCK_BYTES, for channels of ``channel_bytes`` each (their images, times the
    multiplier). Each output value sums its taps in the same order whatever the blocks,
    so the blocking changes no bit of y or grad_input (grad_weight's einsum may sum in
    another order)."""
    step = max(1, DEPTHWISE_BLOCK_BYTES // max(1, channel_bytes))
    for c0 in range(0, c_in, step):
        c1 = min(c_in, c0 + step)
        yield slice(c0, c1), slice(c0 * multiplier, c1 * multiplier)


def _depthwise_blocks(x_shape, w_shape, geometry, itemsize: int):
    """(input channels, output channels, taps) per block of depthwise channels."""
    n, c_in, height, width = x_shape
    multiplier = w_shape[0] // c_in
    taps = list(_taps(w_shape, (height, width), geometry))
    for ci, co in channel_blocks(c_in, multiplier, n * height * width * multiplier * itemsize):
        yield ci, co, taps


@_quiet
def tap_forward(x, w, bias, geometry):
    """y (N, C_out, Ho, Wo) = conv(x, w) + bias, summing real pixels only."""
    n, c_in, height, width = x.shape
    c_out = w.shape[0]
    out_h, out_w = geometry.out_hw
    y = np.zeros((n, c_out, out_h, out_w), dtype=np.result_type(x, w))
    if depthwise(geometry.groups, c_in):  # output channel o reads input channel o // multiplier
        for ci, co, taps in _depthwise_blocks(x.shape, w.shape, geometry, y.itemsize):
            x_block, y_block, w_block = x[:, ci], y[:, co], w[co, 0]
            for i, j, (rows_out, cols_out), (rows_in, cols_in) in taps:
                block = per_output_channel(x_block[:, :, rows_in, cols_in], c_out // c_in)
                y_block[:, :, rows_out, cols_out] += block * w_block[:, i, j][:, None, None]
    else:
        for i, j, (rows_out, cols_out), (rows_in, cols_in) in _taps(w.shape, (height, width),
                                                                     geometry):
            for ci, co in _group_slices(geometry.groups, c_in, c_out):
                block = x[:, ci, rows_in, cols_in]                      # (N, Cg, h, w)
                h, w_ = block.shape[2:]
                # (Og, Cg) @ (N, Cg, h*w): one small GEMM per tap and group.
                contribution = np.matmul(w[co, :, i, j], block.reshape(n, -1, h * w_))
                y[:, co, rows_out, cols_out] += contribution.reshape(n, -1, h, w_)
    if bias is not None:
        y += bias[:, None, None]
    return y


@_quiet
def tap_grad_input(gy, w, x_shape, geometry):
    """grad_input (N, C_in, H, W): each real pixel gets gy @ w over the outputs it feeds."""
    n, c_in, height, width = x_shape
    c_out = w.shape[0]
    grad = np.zeros(x_shape, dtype=np.result_type(gy, w))
    if depthwise(geometry.groups, c_in):
        for ci, co, taps in _depthwise_blocks(x_shape, w.shape, geometry, grad.itemsize):
            g_block, grad_block, w_block = gy[:, co], grad[:, ci], w[co, 0]
            for i, j, (rows_out, cols_out), (rows_in, cols_in) in taps:
                w_tap = w_block[:, i, j][:, None, None]
                contribution = g_block[:, :, rows_out, cols_out] * w_tap
                h, w_ = contribution.shape[2:]
                grad_block[:, :, rows_in, cols_in] += sum_in_order(contribution.reshape(
                    n, ci.stop - ci.start, c_out // c_in, h, w_), axis=2)
        return grad
    for i, j, (rows_out, cols_out), (rows_in, cols_in) in _taps(w.shape, (height, width), geometry):
        for ci, co in _group_slices(geometry.groups, c_in, c_out):
            block = gy[:, co, rows_out, cols_out]                   # (N, Og, h, w)
            h, w_ = block.shape[2:]
            contribution = np.matmul(w[co, :, i, j].T, block.reshape(n, -1, h * w_))
            grad[:, ci, rows_in, cols_in] += contribution.reshape(n, -1, h, w_)
    return grad


@_quiet
def tap_grad_weight(x, gy, w_shape, geometry):
    """grad_weight (C_out, C_in/groups, kH, kW): per tap, gy against the real pixels it saw."""
    n, c_in, height, width = x.shape
    c_out = w_shape[0]
    grad = np.zeros(w_shape, dtype=np.result_type(x, gy))
    if depthwise(geometry.groups, c_in):
        for ci, co, taps in _depthwise_blocks(x.shape, w_shape, geometry, grad.itemsize):
            x_block, g_block = x[:, ci], gy[:, co]
            for i, j, (rows_out, cols_out), (rows_in, cols_in) in taps:
                block = per_output_channel(x_block[:, :, rows_in, cols_in], c_out // c_in)
                grad[co, 0, i, j] = np.einsum("nohw,nohw->o",
                                              g_block[:, :, rows_out, cols_out], block)
        return grad
    for i, j, (rows_out, cols_out), (rows_in, cols_in) in _taps(w_shape, (height, width), geometry):
        for ci, co in _group_slices(geometry.groups, c_in, c_out):
            g_block = gy[:, co, rows_out, cols_out].reshape(n, c_out // geometry.groups, -1)
            x_block = x[:, ci, rows_in, cols_in].reshape(n, c_in // geometry.groups, -1)
            # sum over images and pixels: (N, Og, P) @ (N, P, Cg) -> (Og, Cg)
            grad[co, :, i, j] = np.matmul(g_block, x_block.transpose(0, 2, 1)).sum(axis=0)
    return grad


def tap_backward(gy, w, x, geometry, need_input, need_weight):
    """(grad_input, grad_weight) by the tap kernels, None where not needed."""
    return (tap_grad_input(gy, w, x.shape, geometry) if need_input else None,
            tap_grad_weight(x, gy, w.shape, geometry) if need_weight else None)
