"""Which method ``method="auto"`` runs for the batched conv (:func:`choose_nchw_method`):
"shift", "fft" or "im2col", with the measurements behind each threshold."""
from __future__ import annotations

import math

import scipy.fft
import torch

from .conv import is_float64, shift_max_taps

# "auto", first rule: one output channel (up to 8 input channels) at a kernel the
# single-channel layer runs by shift (conv.SHIFT_MAX_TAPS) takes "shift": im2col's GEMMs
# would have one row. Measured fwd+bwd, one process, shift / im2col (float32; float64):
# 4x1x128x128 k3 0.50; 0.40, k9 0.29; 0.27, 8x3x32x32 k3 0.73; 0.55, 4x8x64x64 k3
# 0.61; 0.44, 2x4x32x32 k7 0.57; 0.51; with two or more output channels im2col's GEMM
# catches up (4x1x64x64 -> 2: 0.95; 0.80, -> 4: 1.6; 1.2) and past 121 / 81 taps fft wins.
# With more input channels shift still wins up to 7x7 (SHIFT_MANY_CHANNELS_MAX_TAPS), and
# fft from 11x11; until then such inputs ran im2col, up to 9.4x native. Measured on the
# Zen 4 VM of docs/performance.md (fwd+bwd / native, one process, 'same' padding; shift,
# im2col, fft; float32): 4x16x64x64 k3 0.77, 1.84, 9.3; k5 0.83, 3.06, 4.75; k7 0.87,
# 3.13, 2.24; k11 1.08, 4.77, 1.21; 1x64x56x56 k3 1.32, 2.48, 5.2; k7 0.87, 4.03, 1.64;
# k11 1.06, 4.54, 0.72; 8x128x16x16 k5 1.38, 4.55, 3.29; k7 1.75, 7.59, 2.69; k11 3.70,
# 9.39, 1.85; 2x256x16x16 k3 4.07, 3.11, 5.8 (shift's worst: 512 pixels a channel
# pair); float64 alike (k7: shift 0.09-0.26, fft 0.11-0.35, im2col 0.39-0.90;
# k11: fft 0.05-0.10, shift 0.08-0.23). Over 48 cells (16-256 input channels, 3x3 to
# 11x11, both dtypes) the rule (with the work limit below) picks the fastest of the
# three in 45 and is within 1.19x of it in the other 3; the rule before ran 1.1x or more
# the fastest's time in 42, up to 8x. 9x9 was not measured (it goes to the model, which
# puts fft at 0.07-0.25x im2col).
# Side by side without padding, 2x256x16x16 -> 1 k3 float32 (14x14 outputs) read 2.55 ->
# 4.43x native (shift's Python work per channel pair outweighs ~4,600 multiply-adds of
# it), while 8x128x16x16 -> 1 k5 read 3.88 -> 1.27: so such inputs take shift from
# SHIFT_MANY_CHANNELS_MIN_PAIR_WORK multiply-adds a channel pair (N x padded H x W x taps).
SHIFT_MANY_CHANNELS_MAX_TAPS = 49
SHIFT_MANY_CHANNELS_MIN_PAIR_WORK = 8192
# Then fft only with stride 1, no dilation, one group and a kernel of FFT_MIN_TAPS or
# more, where the cost model below puts it well below im2col: on any batch for few
# channel pairs (FFT_MAX_CHANNEL_PAIRS; measured (4,1,128,128)->1 k15: fft ~0.01-0.03x of
# im2col's time), on the batches it was fitted on otherwise; frequency-domain channel
# contraction loses badly with many channels at small kernels (20-180x slower), so
# everything else takes im2col + BLAS. Few channel pairs took fft without the model
# until a side-by-side on the Zen 4 VM of docs/performance.md found it 2-9x slower than
# im2col at 5x5 / 7x7 with 2-16 output channels (fwd+bwd, one process, 'same' padding,
# fft / im2col, float32; float64: 4x1x128x128->16 k5 7.1; 8.9, k7 5.2; 2.5, ->4 k5 4.3;
# 3.6, 1x1x128x128->16 k5 9.0; 8.0, 8x2x64x64->8 k5 3.7; 1.9); over 83 such cells (1-16
# channel pairs, k5-k15, both dtypes, shift's own cells left out) the fixed rule ran 1.1x
# or more the time of the faster of the two in 37, up to 9x, the model in 8, up to 1.8x
# (2x1x256x256->4 k11 float32, where fft's lead of 0.57 is modelled 0.68).
SHIFT_MAX_IN_CHANNELS = 8
FFT_MIN_TAPS = 25
FFT_MAX_CHANNEL_PAIRS = 16
# Both dtypes also take fft where a cost model puts it well below im2col (fft computes
# in float64 for both; im2col's float32 GEMMs run at about twice their float64 rate,
# FLOAT32_GEMM_SPEEDUP). Model, ns, fwd+bwd: fft ~ 1.7 x (N C_in + C_in C_out + N C_out)
# T log2 T (transforms of T points) + N C_in C_out F x the channel contraction's cost
# per bin and channel triple, certificate's included: FFT_NS_PER_CONTRACTION by einsum,
# FFT_NS_PER_MATMUL_CONTRACTION for _fft_conv's stacked matmul on two or more images
# with FFT_MODEL_MATMUL_MIN_PRODUCTS or more a bin; im2col ~ max(0.15, 6 / C_out) x its
# multiply-adds in float64 (GEMMs with few output rows run far below BLAS peak), half
# that in float32. Fitted on the Zen 5 VM of docs/performance.md with the einsum
# contraction, fwd+bwd in one process, fft / im2col ms: 8x3x32x32->16 k7 6.7 / 4.4, k11
# 9.5 / 9.7, k13 5.4 / 8.1, k15 6.0 / 9.9; 8x8x32x32->8 k11 7.4 / 23.6; 8x16x32x32->32 k7
# 50 / 29, k11 48 / 47, k15 45 / 62; 1x64x56x56->64 k15 420 / 264; 1x3x224x224->64 k15
# 349 / 258. The matmul's constant is 15 x its ratio to einsum fitted on the Zen 4 VM
# (17 shapes, both contractions, one process, rotated, a shared transform constant:
# 0.29 in float64, 0.16 in float32; float64's taken). The gain is that large from 2048
# multiply-adds a bin (8x16 -> 32, 4x64 -> 16, 16x8 -> 16); at 384-512 (8x3 -> 16,
# 8x8 -> 8) it was within the VM's noise, so there the model keeps einsum's constant.
# fft must be modelled FFT_MODEL_MARGIN x im2col or less (the ties stay im2col). Side by
# side against the rule before this model (tools/side_by_side.py, 30 batches, fwd+bwd /
# native): 8x3x32x32->16 k15 float64 0.88 -> 0.55, 8x8x32x32->8 k11 0.96 -> 0.42. On
# the Zen 3 VM float64 GEMMs are slower against its FFTs (calibrated 39 / 7.1 GFLOP/s
# against 83 / 9.4), so fft's lead is larger there; on the Zen 4 VM im2col ran 1.5-2x
# slower than modelled against fft's 1.0-1.3x, so the margin leaves some of fft's wins
# there to im2col (8x16x32x32->32 k15 float32: fft 0.42 x im2col's time, modelled 0.90).
FFT_NS_PER_TRANSFORM_WORK = 1.7
FFT_NS_PER_CONTRACTION = 15.0
FFT_NS_PER_MATMUL_CONTRACTION = 4.3
FFT_MODEL_MATMUL_MIN_PRODUCTS = 2048
IM2COL_NS_PER_MAC_X_C_OUT = 6.0
IM2COL_MIN_NS_PER_MAC = 0.15
FLOAT32_GEMM_SPEEDUP = 2.0  # (calibrated GEMM float32 / float64: 2.2 Zen 3, 2.3 Zen 5, 2.0 Zen 4)
FFT_MODEL_MARGIN = 0.65
# (0.65, not 0.75: on shapes the model puts at 0.75 the measured fft / im2col ranged
# 0.68-1.18, e.g. 4x3x48x48 -> 8 k7 'same' 6.5 / 5.6 ms, 4x64x16x16 -> 16 k13 'same'
# 72.4 / 72.5; at 0.52-0.63 it measured 0.62-0.76.)
# The model was fitted on batches of 8 with 8-64 output channels; a hostile pass found it
# ~2x too kind to fft on small batches with few output channels and many input channels
# (one process, fft / im2col: 1x64x16x16 -> 8 k13 'same' 26.0 / 17.3 ms, unbatched
# 128x8x8 -> 4 k13 'same' 22.1 / 11.1, 2x16x32x32 -> 4 k5 'same' 4.0 / 2.9): outside
# batches of FFT_MODEL_MIN_BATCH and FFT_MODEL_MIN_OUT_CHANNELS it is not used.
FFT_MODEL_MIN_BATCH = 4
FFT_MODEL_MIN_OUT_CHANNELS = 8
# And only while its spectra (every input, weight and output channel image, complex128)
# fit in this many bytes: they grow as C_in x C_out x T, im2col's windows as C_in k^2 x
# (H W) for one image at a time (8x256x64x64 -> 256 at 15x15 would model fft cheaper
# and need ~2.2 GB for the weight spectra alone). The method's peak is ~4x its spectra
# (the certificate's magnitude spectra, the products): measured below im2col's peak on
# the shapes tried (8x4x128x128 -> 128 k15 'same': 1030 against 2078 MiB).
FFT_MODEL_MAX_SPECTRA_BYTES = 256 << 20
# (Not for few channel pairs or one output channel: their spectra grow as the image
# does, no faster than im2col's windows, N C_in k^2 x Ho Wo, which at 25 taps or more
# are the larger: 1x1x4096x4096 -> 1 at 15x15 takes ~0.4 GB of spectra against ~15 GB of
# float32 windows.)
# Its cost when the certificate rejects a pass on ordinary data (zero regions: a loss
# over a centre crop zeroes grad_output's border, letterboxed images): the pass then runs
# the tap kernels after the transforms, e.g. 8x3x32x32 -> 16 k15 'same' with a centre-crop
# loss 1.25x im2col's time (hostile pass, 15 rounds).


def choose_nchw_method(x_shape, w_shape, stride, dilation, groups, dtype=torch.float32,
                       padding=(0, 0, 0, 0)) -> str:
    """The method "auto" runs for an input of ``x_shape`` (N, C_in, H, W) and a weight
    of ``w_shape`` with these (normalised) stride, dilation, groups and (top, bottom,
    left, right) padding, in ``dtype`` (torch or numpy); the comments above say why."""
    c_out, c_in, k_h, k_w = w_shape
    if stride != (1, 1) or dilation != (1, 1) or groups != 1:
        return "im2col"
    if _takes_shift(x_shape, w_shape, dtype, padding):
        return "shift"
    taps = k_h * k_w
    # few channel pairs or one output channel: spectra no larger than im2col's windows
    narrow = c_out == 1 or c_in * c_out <= FFT_MAX_CHANNEL_PAIRS
    if taps >= FFT_MIN_TAPS and (narrow or (x_shape[0] >= FFT_MODEL_MIN_BATCH
                                            and c_out >= FFT_MODEL_MIN_OUT_CHANNELS)):
        fft_ns, spectra_bytes = _fft_model(x_shape, w_shape, padding)
        im2col_ns = _im2col_time_model(x_shape, w_shape, padding, dtype)
        fits = narrow or spectra_bytes <= FFT_MODEL_MAX_SPECTRA_BYTES  # (see the limit)
        if fits and fft_ns <= FFT_MODEL_MARGIN * im2col_ns:
            return "fft"
    return "im2col"


def _takes_shift(x_shape, w_shape, dtype, padding) -> bool:
    """One output channel at a kernel shift runs, with few input channels, or with more
    at small kernels and enough work a channel pair (the comments above)."""
    c_out, c_in, k_h, k_w = w_shape
    taps = k_h * k_w
    if c_out != 1 or taps > shift_max_taps(dtype):
        return False
    if c_in <= SHIFT_MAX_IN_CHANNELS:
        return True
    pair_work = x_shape[0] * math.prod(_padded_hw(x_shape, padding)) * taps
    return (taps <= SHIFT_MANY_CHANNELS_MAX_TAPS
            and pair_work >= SHIFT_MANY_CHANNELS_MIN_PAIR_WORK)


def _padded_hw(x_shape, padding):
    top, bottom, left, right = padding
    return x_shape[2] + top + bottom, x_shape[3] + left + right


def _fft_model(x_shape, w_shape, padding) -> tuple[float, int]:
    """(modelled time, ns, see FFT_NS_PER_TRANSFORM_WORK; bytes of its complex128
    spectra) of the FFT method."""
    n, c_in = x_shape[:2]
    c_out = w_shape[0]
    height, width = _padded_hw(x_shape, padding)
    t_h = scipy.fft.next_fast_len(height, real=True)
    t_w = scipy.fft.next_fast_len(width, real=True)
    points, bins = t_h * t_w, t_h * (t_w // 2 + 1)
    transforms = n * c_in + c_in * c_out + n * c_out
    by_matmul = n >= 2 and n * c_in * c_out >= FFT_MODEL_MATMUL_MIN_PRODUCTS
    contraction = FFT_NS_PER_MATMUL_CONTRACTION if by_matmul else FFT_NS_PER_CONTRACTION
    time_ns = (FFT_NS_PER_TRANSFORM_WORK * transforms * points * math.log2(points)
               + contraction * n * c_in * c_out * bins)
    return time_ns, 16 * bins * transforms


def _im2col_time_model(x_shape, w_shape, padding, dtype=torch.float64) -> float:
    """im2col's modelled time in ``dtype``, ns (see FFT_NS_PER_TRANSFORM_WORK); 0 with no
    output."""
    n, c_in = x_shape[:2]
    c_out, _, k_h, k_w = w_shape
    height, width = _padded_hw(x_shape, padding)
    out_pixels = max(0, height - k_h + 1) * max(0, width - k_w + 1)
    per_mac = max(IM2COL_MIN_NS_PER_MAC, IM2COL_NS_PER_MAC_X_C_OUT / max(c_out, 1))
    speedup = 1.0 if is_float64(dtype) else FLOAT32_GEMM_SPEEDUP
    return per_mac * n * c_out * c_in * k_h * k_w * out_pixels / speedup
