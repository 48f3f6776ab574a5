"""Which kernels the batched conv's im2col method runs on a pass (its own, or another
family's where they suit the input better), and what its forward keeps for backward:
the rules, with the measurements behind their thresholds (_nchw_kernels runs them)."""
from __future__ import annotations

from . import _depthwise_wide, _kn2row
from ._im2col_bands import image_windows
from ._im2col_layout import _wide
from ._finite import all_finite
from ._tap_kernels import _tap_range, depthwise

TAP = "tap"  # marks a state whose forward ran the tap kernels
DEPTHWISE = "depthwise"  # ... or _depthwise_wide's
KN2ROW = "kn2row"  # ... or _kn2row's
BANDS = "bands"  # ... or im2col in bands of output rows (_im2col_bands)

# Padding the windows mostly do not read: a stride or dilation far beyond the image, with
# padding to match, or feature maps smaller than the kernel's reach. im2col's padded copy
# of the input (and col2im's padded gradient grid) and its window matrix would hold
# mostly zeros, where native reads real pixels only (hostile passes: (1,16,8,8) padding
# 4000 stride 4000, a 1x4x3x3 output: a 3.8 GiB padded copy; padding 2**40: numpy's
# "Maximum allowed dimension exceeded"; (1,64,8,8) -> 1 1x1 stride 2 padding 1000: a 984
# MiB copy and 246 MiB of windows for a 3.8 MiB output). Where the padded input or the
# whole batch's window matrix would hold more than PADDED_MAX_FACTOR times the elements
# of the input and of the windows' entries that read real pixels together, the passes
# run the tap kernels, which never pad and form exactly those products: memory as the
# input and output, the same contract. Ordinary padding on maps larger than the kernel
# stays far below the factor (nearly every window entry reads a real pixel). On smaller
# maps the taps skip im2col's products with padding (fwd+bwd / native, one process,
# rotated, float32 / float64, taps against im2col): 1x1 maps, 3x3 padding 1 (4.5 times
# the real entries): (64,512,1,1) -> 512 1.21 / 1.24 against 4.99 / 3.98, (8,64,1,1) ->
# 64 1.00 / 1.18 against 2.11 / 2.52, (1,3,1,1) -> 8 2.59 / 2.64 against 3.34 / 3.22;
# (8,128,3,3) -> 128 7x7 p3 2.98 / 0.60 against 3.81 / 1.04; (1,8,2,2) -> 8 7x7 p3
# (9.8) 1.76 / 3.98 against 1.77 / 4.16; the one loss, (8,512,2,2) -> 512 5x5 p2 (5.0)
# 2.68 / 0.96 against 2.27 / 0.96. Below the factor im2col won every case timed (ratios
# 1.1-2.5: (1,64,4,4) -> 64 3x3 p1 2.38 / 1.63 against the taps' 3.55 / 2.48).
PADDED_MAX_FACTOR = 4

# Depthwise convs (groups = C_in) with a channel multiplier m = C_out / C_in above this run
# im2col's GEMM per group on finite operands, an (m x kH kW) weight block a group, instead
# of the tall rows' products (m passes over every tap's window, and a copy of it
# m times over, as they ran then; since they broadcast instead, im2col per group still
# won 49 of 56 cells against them). Side by side (tools/side_by_side.py, 14 batches,
# fwd+bwd / native, one thread, the Zen 4 VM of docs/performance.md, thirty-seventh
# session), float32: 16x4x16x33 -> 64 k5 5.57 -> 0.93, 8x32x28x28 -> 128 k3 1.60 -> 0.72,
# 4x8x32x32 -> 64 k3 s2 2.29 -> 1.05, 8x32x56x56 -> 64 (m 2) 0.91 -> 0.60, 1x512x7x7 ->
# 1024 (m 2, 512 groups) 1.34 -> 0.98, 1x1024x7x7 -> 2048 1.01 -> 0.91; float64 8x32x28x28
# -> 128 2.75 -> 1.19. Every multiplier of 2 or more timed (2-32, 3-1024 channels) gained
# but one shape the tap kernels ran before, 8x12x2x300 -> 24 7x7 p3 (m 2): 1.07 -> 1.29
# (docs/performance.md, "Depthwise convs with a channel multiplier").
# At m = 1 the tall rows win (one GEMM row a group is all overhead; the comment in route;
# 8x32x56x56 / 8x64x28x28 / 8x256x14x14 k3 float32, one process: grouped GEMMs 2.3x, 2.0x,
# 2.0x the tall rows' time).
DEPTHWISE_MAX_MULTIPLIER = 1
# ... except on large images: where an image's wide windows pass this many bytes (as
# _im2col_bands.MIN_IMAGE_WINDOW_BYTES for float32, in either dtype) the tall rows run,
# which keep nothing; im2col per group (no bands: one group only) keeps or rebuilds the
# whole batch's windows, kH kW times the input (hostile pass 158: 4x16x256x256 -> 32 7x7
# p3 float32, a 16 MiB input, kept 802 MiB and peaked at 1.8 GiB in forward+backward,
# 2.0 GiB with nothing kept; the tall rows 133 MiB).
DEPTHWISE_MAX_IMAGE_WINDOW_BYTES = 8 << 20


def _real_positions(k, dilation, stride, pad_before, size, out):
    """Over the taps of one axis, how many (tap, output position) pairs read a real
    pixel: the tap kernels' own output ranges (_tap_range), summed."""
    total = 0
    for tap in range(k):
        first, last, _ = _tap_range(tap, dilation, stride, pad_before, size, out)
        total += last - first
    return total


def padding_mostly_unread(x_shape, w_shape, geometry) -> bool:
    """Whether im2col's padded input or window matrix would be mostly zeros no window
    reads (see PADDED_MAX_FACTOR); Python ints throughout (no overflow at any padding)."""
    top, bottom, left, right = geometry.padding
    if not (top or bottom or left or right):  # (the common case: every entry is real)
        return False
    n, c_in, height, width = x_shape
    (k_h, k_w), (out_h, out_w) = w_shape[2:], geometry.out_hw
    padded = n * c_in * (height + top + bottom) * (width + left + right)
    windows = n * c_in * k_h * k_w * out_h * out_w
    largest = max(padded, windows)
    (s_h, s_w), (d_h, d_w) = geometry.stride, geometry.dilation
    real = n * c_in * (_real_positions(k_h, d_h, s_h, top, height, out_h)
                       * _real_positions(k_w, d_w, s_w, left, width, out_w))
    return largest > PADDED_MAX_FACTOR * (n * c_in * height * width + real)


def kept_windows_bytes(x_shape, w_shape, geometry, itemsize) -> int:
    """At most what im2col_forward keeps for grad_weight (keep_cols): its window matrix
    (N, G, C_in/G kH kW + 1, Ho Wp), the bias row and whole padded rows counted, or
    kn2row's tall padded input (C_in, N Hp Wp + its tail; stride 1), whichever is larger
    (kn2row's is, for few taps at a large dilation; hostile pass)."""
    n, c_in, height, width = x_shape
    k_h, k_w = w_shape[2:]
    top, bottom, left, right = geometry.padding
    hp, wp = height + top + bottom, width + left + right
    (d_h, d_w), out_h = geometry.dilation, geometry.out_hw[0]
    windows = n * (c_in * k_h * k_w + 1) * out_h * max(wp, geometry.out_hw[1])
    tall = c_in * (n * hp * wp + d_h * (k_h - 1) * wp + d_w * (k_w - 1))
    return max(windows, tall) * itemsize


def _large_windows(x_shape, w_shape, geometry, itemsize) -> bool:
    """Wide windows of an image over DEPTHWISE_MAX_IMAGE_WINDOW_BYTES."""
    return (_wide(geometry, w_shape)
            and image_windows(x_shape, w_shape, geometry, itemsize)[2]
            > DEPTHWISE_MAX_IMAGE_WINDOW_BYTES)


def route(x, w, geometry):
    """Which kernels im2col_forward runs: DEPTHWISE, TAP, KN2ROW or None (its own)."""
    # Depthwise convs of multiplier 1 never run im2col: one GEMM row per group is all
    # overhead (measured (4,256,32,32) groups=256 7x7 fwd+bwd: 1.9 s in per-group GEMMs,
    # native 0.16 s). With a larger multiplier, finite, they do (DEPTHWISE_MAX_MULTIPLIER).
    finite = all_finite(x, w)  # (not finite: the tap kernels, whatever the multiplier)
    is_depthwise = depthwise(geometry.groups, x.shape[1]) and (
        w.shape[0] <= DEPTHWISE_MAX_MULTIPLIER * x.shape[1]
        or _large_windows(x.shape, w.shape, geometry, x.itemsize))
    if is_depthwise and _depthwise_wide.runs(x.shape, w.shape, geometry, finite):
        return DEPTHWISE
    if is_depthwise or not finite or padding_mostly_unread(x.shape, w.shape, geometry):
        return TAP
    if _kn2row.runs(x.shape, w.shape, geometry, x.dtype):
        return KN2ROW
    return None
