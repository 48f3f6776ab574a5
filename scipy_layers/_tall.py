"""Tall padded images: each channel's N zero-padded images stacked into one tall image
(N Hp rows of Wp) and flattened, so that a tap's window over every image of a channel is
one contiguous run of the flat row (the depthwise path, _depthwise_wide, and kn2row,
_kn2row, work on it). Each image's last (kH - 1) dH rows and last Wp - Wo columns of
output are computed along and dropped; zeros after the last image (the tail) cover the
windows that reach past it.

At a stride s > 1 the padded images are first split into their phases (polyphase): phase
(a, b) holds the padded pixels (a + s_h u, b + s_w v), an image of Hq x Wq = ceil(Hp /
s_h) x ceil(Wp / s_w) (zero-filled where a phase is shorter). Tap (i, j) then reads phase
((dH i) mod s_h, (dW j) mod s_w) at offset ((dH i) div s_h, (dW j) div s_w), and output
(r, c) of the strided conv is the stride-1 position (r, c) of the phase images: every
tap's window is again one contiguous run, of its phase's tall row. Only the phases some
tap reads are built.
"""
from __future__ import annotations

import functools

import numpy as np

from ._workspace import output, scratch


class TallLayout:
    """Where the tall (phase) images lie: their size (Hq, Wq), the flat length of N
    images, the outputs kept of it and the zeros after them that the last windows reach
    into; and, made on first use (the sizes alone decide whether a path runs), each tap's
    (i, j, phase, start) in tap order and each phase's part of the input."""

    def __init__(self, x_shape, w_shape, geometry):
        n, _, height, width = x_shape
        self._shapes, self._geometry = (x_shape, w_shape), geometry
        _, _, k_h, k_w = w_shape
        top, bottom, left, right = geometry.padding
        (s_h, s_w), (d_h, d_w) = geometry.stride, geometry.dilation
        self.out_h, self.out_w = geometry.out_hw
        self.hq = -(-(height + top + bottom) // s_h)
        self.wq = -(-(width + left + right) // s_w)
        self.length = n * self.hq * self.wq  # every output row of every image, kept or not
        self.kept = n * self.out_h * self.out_w
        # the last tap's window starts furthest in (offsets grow with i and j)
        self.tail = (d_h * (k_h - 1) // s_h) * self.wq + d_w * (k_w - 1) // s_w
        self.flat_length = self.length + self.tail
        self.n = n

    @functools.cached_property
    def _taps(self):
        (_, _, height, width), (_, _, k_h, k_w) = self._shapes
        top, _, left, _ = self._geometry.padding
        (s_h, s_w), (d_h, d_w) = self._geometry.stride, self._geometry.dilation
        # tap (i, j): (i, j, its phase (a, b), its offset (u, v) in the phase), in tap order
        taps = [(i, j, (d_h * i % s_h, d_w * j % s_w), (d_h * i // s_h, d_w * j // s_w))
                for i in range(k_h) for j in range(k_w)]
        used = sorted({phase for _, _, phase, _ in taps})
        index = {phase: p for p, phase in enumerate(used)}
        starts = [(i, j, index[phase], u * self.wq + v)  # each tap's window
                  for i, j, phase, (u, v) in taps]
        # per phase built: (phase rows u, x's rows, phase columns v, x's columns)
        phases = [_axis(a, s_h, top, height, self.hq) + _axis(b, s_w, left, width, self.wq)
                  for a, b in used]
        return starts, phases, len(used) == s_h * s_w

    @property
    def starts(self):
        return self._taps[0]

    @property
    def phases(self):
        return self._taps[1]

    @property
    def complete(self) -> bool:
        """Whether every input pixel lies in a phase some tap reads."""
        return self._taps[2]

    def images(self, flat):
        """(C, N, Hq, Wq) view of a flat (C, flat_length or length) array."""
        return flat[:, :self.length].reshape(-1, self.n, self.hq, self.wq)


def _axis(offset, stride, before, size, phase_size):
    """(the phase's slice of positions holding input, the input's matching slice) along
    one axis: padded position offset + stride u is input position offset + stride u -
    before."""
    # ceil((before - offset) / stride) and ceil((before + size - offset) / stride) in
    # integers: a float quotient rounds from 2**53 up (a padding and stride of 2**60 put
    # a depthwise pass's pixels in the wrong rows; hostile pass 138)
    first = max(0, -((offset - before) // stride))
    stop = max(first, min(phase_size, -((offset - before - size) // stride)))
    start = offset + stride * first - before
    return slice(first, stop), slice(start, start + stride * (stop - first), stride)


def tall_padded(x, layout):
    """x (N, C, H, W) as flat tall padded images (phases x C, flat_length), a scratch
    array: zeros, then x copied in once per phase."""
    c = x.shape[1]
    flat = scratch((len(layout.phases) * c, layout.flat_length), x.dtype)
    flat.fill(0)  # (one pass: zeroing only the borders, a short column a row, was no faster)
    for p, (rows, x_rows, cols, x_cols) in enumerate(layout.phases):
        grid = layout.images(flat[p * c:(p + 1) * c])
        grid[:, :, rows, cols] = x[:, :, x_rows, x_cols].transpose(1, 0, 2, 3)
    return flat


def from_tall(flat, layout, out):
    """Write the input's pixels of flat tall images (phases x C, flat_length or length),
    each phase's own, into ``out`` (N, C, H, W); pixels in no phase (no tap reads them)
    get 0."""
    c = out.shape[1]
    if not layout.complete:
        out.fill(0)
    for p, (rows, x_rows, cols, x_cols) in enumerate(layout.phases):
        grid = layout.images(flat[p * c:(p + 1) * c])
        out[:, :, x_rows, x_cols] = grid[:, :, rows, cols].transpose(1, 0, 2, 3)
    return out


def outputs_from_tall(rows, layout, bias=None):
    """The kept outputs of tall output rows (C_out, length) as y (N, C_out, Ho, Wo) in an
    output() buffer, + bias after the sums when given."""
    kept = layout.images(rows)[:, :, :layout.out_h, :layout.out_w].transpose(1, 0, 2, 3)
    y = output(kept.shape, rows.dtype)
    if bias is None:
        np.copyto(y, kept)
    else:
        np.add(kept, bias[:, None, None], out=y)
    return y


def grad_output_tall(gy, layout, lead: int = 0):
    """gy (N, C_out, Ho, Wo) on tall output rows: a scratch (C_out, lead + length) array,
    zero for ``lead`` before them and where no output was kept."""
    rows = scratch((gy.shape[1], lead + layout.length), gy.dtype)
    rows.fill(0)
    layout.images(rows[:, lead:])[:, :, :layout.out_h, :layout.out_w] = gy.transpose(1, 0, 2, 3)
    return rows
