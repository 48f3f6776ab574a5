"""Tall padded images: each channel's N zero-padded images stacked into one tall image
(N Hp rows of Wp) and flattened, so that a tap's window over every image of a channel is
one contiguous run of the flat row (the depthwise path, _depthwise_wide, and kn2row,
_kn2row, work on it). Each image's last (kH - 1) dH rows and last Wp - Wo columns of
output are computed along and dropped; zeros after the last image (the tail) cover the
windows that reach past it."""
from __future__ import annotations

from ._workspace import scratch


class TallLayout:
    """Where the tall images lie: padded (Hp, Wp), the flat length of N images and the
    zeros after them that the last windows reach into."""

    def __init__(self, x_shape, w_shape, geometry):
        n, _, height, width = x_shape
        _, _, k_h, k_w = w_shape
        top, bottom, left, right = geometry.padding
        (d_h, d_w), (self.out_h, self.out_w) = geometry.dilation, geometry.out_hw
        self.hp, self.wp = height + top + bottom, width + left + right
        self.length = n * self.hp * self.wp  # every output row of every image, kept or not
        self.tail = (k_h - 1) * d_h * self.wp + (k_w - 1) * d_w
        self.flat_length = self.length + self.tail
        self.starts = [(i, j, i * d_h * self.wp + j * d_w)  # each tap's window, in tap order
                       for i in range(k_h) for j in range(k_w)]
        self.n, self.inner = n, (slice(top, top + height), slice(left, left + width))

    def images(self, flat):
        """(C, N, Hp, Wp) view of a flat (C, flat_length or length) array."""
        return flat[:, :self.length].reshape(-1, self.n, self.hp, self.wp)


def tall_padded(x, layout):
    """x (N, C, H, W) as flat tall padded images (C, flat_length), a scratch array: x
    copied in once, zeros written only around it."""
    flat = scratch((x.shape[1], layout.flat_length), x.dtype)
    grid = layout.images(flat)
    rows, cols = layout.inner
    flat[:, layout.length:] = 0
    grid[:, :, :rows.start] = 0
    grid[:, :, rows.stop:] = 0
    grid[:, :, rows, :cols.start] = 0
    grid[:, :, rows, cols.stop:] = 0
    grid[:, :, rows, cols] = x.transpose(1, 0, 2, 3)
    return flat
