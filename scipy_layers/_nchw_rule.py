"""Which method ``method="auto"`` runs for the batched conv (:func:`choose_nchw_method`):
"shift", "fft" or "im2col", with the measurements behind each threshold."""
from __future__ import annotations

import math

import scipy.fft
import torch

from . import _kn2row
from ._nchw_args import ConvGeometry
from .conv import dtype_name, shift_max_taps

# "auto", first rule: one output channel (up to 3 input channels) at a kernel the
# single-channel layer runs by shift (conv.SHIFT_MAX_TAPS) takes "shift": im2col's GEMMs
# would have one row. Measured fwd+bwd, one process, shift / im2col (float32; float64):
# 4x1x128x128 k3 0.50; 0.40, k9 0.29; 0.27, 8x3x32x32 k3 0.73; 0.55, 4x8x64x64 k3
# 0.61; 0.44, 2x4x32x32 k7 0.57; 0.51; with two or more output channels im2col's GEMM
# catches up (4x1x64x64 -> 2: 0.95; 0.80, -> 4: 1.6; 1.2) and past 121 / 81 taps fft wins.
# With more input channels shift won up to 7x7 against im2col, which ran such inputs at up
# to 9.4x native; im2col's kn2row layout (_kn2row: fewer output than input channels) now
# beats both from 4 input channels. Measured on the Zen 4 VM of docs/performance.md
# (fwd+bwd / native, one process, rotated, 'same' padding; kn2row, shift; float32 |
# float64): 4x8x64x64 k3 0.22, 0.36 | 0.32, 0.82; 2x4x32x32 k7 0.40, 0.47 | 0.76, 1.14;
# 8x9x32x32 k3 0.33, 0.64 | 0.43, 0.95; 4x16x64x64 k5 0.27, 0.70 | 0.04, 0.13; 1x64x56x56
# k7 0.18, 0.63 | 0.02, 0.09; 8x128x16x16 k5 0.34, 1.20 | 0.04, 0.19; 2x256x16x16 k3
# 0.56, 3.89 | 0.23, 2.06 (24 cells, 4-256 input channels, 3x3-7x7: kn2row in all). At
# 3 input channels it was mixed (8x3x32x32 k3 0.55, 0.60 | 0.35, 0.41; k7 0.41, 0.55 |
# 0.96, 0.75) and at 2 shift won (4x2x128x128 k9 0.41, 0.22 | 0.29, 0.11): shift keeps
# up to SHIFT_MAX_IN_CHANNELS.
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
SHIFT_MAX_IN_CHANNELS = 3
FFT_MIN_TAPS = 25
FFT_MAX_CHANNEL_PAIRS = 16
# Both dtypes also take fft where a cost model puts it below im2col: fwd+bwd, ns, per dtype
# (by dtype name), each term a cost the method pays per unit of its work:
# - im2col: IM2COL_NS_PER_WINDOW_ELEMENT x its window elements (N C_in kH kW Ho Wo,
#   copied from the padded input, scatter-added back for grad_input), + ..._PER_MAC x
#   the multiply-adds of one pass (x C_out; the three GEMMs), + ..._PER_WINDOW_ROW x its
#   rows of Wo (N C_in kH kW Ho: each copy and add runs along one, so small outputs pay
#   per row, not per element), + a fixed cost;
# - fft: FFT_NS_PER_TRANSFORM_WORK x (N C_in + C_in C_out + N C_out) T log2 T
#   (transforms of T points) + the channel contraction per bin and channel triple (N
#   C_in C_out bins; einsum's constant, or FFT_NS_PER_MATMUL_CONTRACTION for _fft_conv's
#   stacked matmul on two or more images with FFT_MODEL_MATMUL_MIN_PRODUCTS or more a bin),
#   certificate included, + a fixed cost.
# Fitted (least squares on relative error, non-negative) on the Zen 4 VM of
# docs/performance.md: 265 random cells where this model is asked (batch 1-16, 1-64
# input and 1-128 output channels, 16-128 px, 5x5-15x15, valid and 'same'), both
# methods in both dtypes, fwd+bwd, one process, rotated. Measured / modelled, 10th-90th
# percentile: im2col 0.84-1.59 (float32), 0.84-1.42 (float64); fft 0.83-1.31, 0.83-1.44.
# Fitted on 155 of them and tried on the other 110: fft where modelled at
# FFT_MODEL_MARGIN x im2col or less ran 1.506 s in all against 1.462 s for the faster
# method in every cell (float32; float64 2.451 against 2.432), where the model before
# it (one GEMM rate for both dtypes, im2col as max(0.15, 6 / C_out) ns a multiply-add,
# margin 0.65) ran 1.554 s (2.585): 6 cells 1.1x or more slower than the faster method
# against 10 (float64 8 against 15). The margin is 0.9, not 1.0 (alike there): a pass
# whose certificate rejects it (zero regions) runs the tap kernels too, so ties stay
# im2col. The model before undercounted im2col's copies in float32 (it halved them with
# the GEMMs) and on small outputs, so it left fft's wins to im2col: 8x3x32x32 -> 16 k15
# float32 modelled fft at 0.87 x im2col, measured 0.60 (now modelled 0.77). Fitted on
# one CPU: calibrated float64 GEMM / FFT GFLOP/s (reports/) Zen 4 50.6 / 9.71, Zen 3
# 42.9 / 7.8 (alike), Zen 5 92.5 / 12.7 and an Intel Xeon 66.9 / 10 (GEMMs 1.3-1.4x
# faster against FFTs: there the model errs toward fft). tools/method_choice.py times
# both methods on a seeded draw of cells where the model decides (the same cells on
# every machine): on the Intel VM auto ran 1.10-1.11x the faster method's total in
# both dtypes, up to 1.6-1.8x on a cell, both ways (docs/performance.md, "An Intel CPU";
# there the contraction's numpy loop ran ~2.5x its Zen 4 time until _fft_conv's
# chunks of bins, which left the regret where it was).
FFT_MODEL_MATMUL_MIN_PRODUCTS = 2048
IM2COL_NS_PER_WINDOW_ELEMENT = {"float32": 0.97, "float64": 2.54}
IM2COL_NS_PER_MAC = {"float32": 0.080, "float64": 0.152}
IM2COL_NS_PER_WINDOW_ROW = {"float32": 27.4, "float64": 34.4}
IM2COL_FIXED_NS = {"float32": 248e3, "float64": 75e3}
FFT_NS_PER_TRANSFORM_WORK = {"float32": 1.49, "float64": 1.77}
FFT_NS_PER_CONTRACTION = {"float32": 8.6, "float64": 10.2}
FFT_NS_PER_MATMUL_CONTRACTION = {"float32": 5.35, "float64": 6.05}
FFT_FIXED_NS = {"float32": 443e3, "float64": 695e3}
FFT_MODEL_MARGIN = 0.9
# Where im2col runs its kn2row layout, fft is weighed against kn2row's model instead: ns,
# fwd+bwd, KN2ROW_NS_PER_MAC x its multiply-adds (N Hp Wp kH kW C_in C_out / G, the
# dropped rows and columns included) + KN2ROW_NS_PER_ROW_ELEMENT x the elements of its
# expanded rows (C_out kH kW x N Hp Wp: written, shift-added, copied) + ..._PER_INPUT x
# C_in N Hp Wp (the tall copies) + a fixed cost, per dtype. Least squares on 76 cells
# per dtype (Zen 4 VM, fwd+bwd, one process; 1-256 input channels, output / input 0.004
# -1, 3x3-15x15, groups 1-8): within 0.58-1.35x (float32), 0.55-1.45x (float64) of
# the measured time. Against the measured best of fft and kn2row on 12 cells a dtype
# with 25+ taps (one to 16 output channels on 2-128 input channels), it picked the faster
# of the two in all 24 (fft at 15x15 on few channels; kn2row on many input channels
# at 9x9-11x11, where fft measured 1.75-7.9x kn2row's time and the rule before took it).
# With the fft model above (60 random kn2row cells, 1-8 output channels on 2-256 input
# channels): 0.563 s in all against 0.552 for the faster (float32), 0.980 against 0.946
# (float64), as with the model before it.
KN2ROW_NS_PER_MAC = {"float32": 0.069, "float64": 0.147}
KN2ROW_NS_PER_ROW_ELEMENT = {"float32": 1.8, "float64": 3.6}
KN2ROW_NS_PER_INPUT = {"float32": 1.8, "float64": 2.4}
KN2ROW_FIXED_NS = {"float32": 158e3, "float64": 73e3}
# An earlier model, fitted on batches of 8 with 8-64 output channels, was found by a
# hostile pass ~2x too kind to fft on small batches with few output channels and many
# input channels (one process, fft / im2col: 1x64x16x16 -> 8 k13 'same' 26.0 / 17.3 ms, unbatched
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
    left, right) padding, in ``dtype`` (torch or numpy); the comments above say why. A
    TypeError for any dtype but float32 and float64, whichever rule the shape reaches."""
    dtype_name(dtype)  # (the check alone: the rules below read it only on some shapes)
    fixed = _fixed_rule(w_shape, stride, dilation, groups, dtype)
    if fixed:
        return fixed
    if _modelled(x_shape, w_shape, padding):
        fft_ns, spectra_bytes, im2col_ns = modelled_times(x_shape, w_shape, padding, dtype)
        fits = _narrow(w_shape) or spectra_bytes <= FFT_MODEL_MAX_SPECTRA_BYTES  # (the limit)
        if fits and fft_ns <= FFT_MODEL_MARGIN * im2col_ns:
            return "fft"
    return "im2col"


def weighs_fft(x_shape, w_shape, stride, dilation, groups, dtype=torch.float32,
               padding=(0, 0, 0, 0)) -> bool:
    """Whether :func:`choose_nchw_method` weighs fft against im2col by the cost model
    (:func:`modelled_times`) on this shape: no fixed rule decides (stride 1, no
    dilation, one group, a kernel shift does not take) and the model is asked (a kernel
    of FFT_MIN_TAPS or more, few channel pairs or a batch and output channels it was
    fitted on, a padded input with pixels). A TypeError for any dtype but float32 and
    float64, as choose_nchw_method's."""
    dtype_name(dtype)  # (the check alone)
    return (not _fixed_rule(w_shape, stride, dilation, groups, dtype)
            and _modelled(x_shape, w_shape, padding))


def _fixed_rule(w_shape, stride, dilation, groups, dtype) -> str | None:
    """"im2col" or "shift" where a fixed rule decides (the comments above), else None."""
    if stride != (1, 1) or dilation != (1, 1) or groups != 1:
        return "im2col"
    c_out, c_in, k_h, k_w = w_shape
    if c_out == 1 and c_in <= SHIFT_MAX_IN_CHANNELS and k_h * k_w <= shift_max_taps(dtype):
        return "shift"
    return None


def _narrow(w_shape) -> bool:
    """Few channel pairs or one output channel: spectra no larger than im2col's windows."""
    c_out, c_in = w_shape[:2]
    return c_out == 1 or c_in * c_out <= FFT_MAX_CHANNEL_PAIRS


def _modelled(x_shape, w_shape, padding) -> bool:
    """Where no fixed rule decides, whether the cost model is asked (see weighs_fft)."""
    if w_shape[2] * w_shape[3] < FFT_MIN_TAPS:
        return False
    fitted = x_shape[0] >= FFT_MODEL_MIN_BATCH and w_shape[0] >= FFT_MODEL_MIN_OUT_CHANNELS
    return (fitted or _narrow(w_shape)) and min(_padded_hw(x_shape, padding)) > 0


def modelled_times(x_shape, w_shape, padding, dtype=torch.float32) -> tuple[float, int, float]:
    """(fft's modelled time, ns; the bytes of its spectra; im2col's modelled time, ns,
    by kn2row's model where im2col runs kn2row) at stride 1, no dilation, one group."""
    fft_ns, spectra_bytes = _fft_model(x_shape, w_shape, padding, dtype)
    if _kn2row.runs(x_shape, w_shape, _stride_one(x_shape, w_shape, padding), dtype):
        im2col_ns = _kn2row_time_model(x_shape, w_shape, padding, dtype)
    else:
        im2col_ns = _im2col_time_model(x_shape, w_shape, padding, dtype)
    return fft_ns, spectra_bytes, im2col_ns


def _stride_one(x_shape, w_shape, padding) -> ConvGeometry:
    """The geometry of stride 1, no dilation, one group."""
    height, width = _padded_hw(x_shape, padding)
    out_hw = (height - w_shape[2] + 1, width - w_shape[3] + 1)
    return ConvGeometry((1, 1), tuple(padding), (1, 1), 1, out_hw)


def _padded_hw(x_shape, padding):
    top, bottom, left, right = padding
    return x_shape[2] + top + bottom, x_shape[3] + left + right


def _fft_model(x_shape, w_shape, padding, dtype=torch.float64) -> tuple[float, int]:
    """(modelled time in ``dtype``, ns, see FFT_NS_PER_TRANSFORM_WORK; bytes of its
    complex128 spectra) of the FFT method."""
    n, c_in = x_shape[:2]
    c_out = w_shape[0]
    height, width = _padded_hw(x_shape, padding)
    t_h = scipy.fft.next_fast_len(height, real=True)
    t_w = scipy.fft.next_fast_len(width, real=True)
    points, bins = t_h * t_w, t_h * (t_w // 2 + 1)
    transforms = n * c_in + c_in * c_out + n * c_out
    by_matmul = n >= 2 and n * c_in * c_out >= FFT_MODEL_MATMUL_MIN_PRODUCTS
    name = dtype_name(dtype)
    contraction = (FFT_NS_PER_MATMUL_CONTRACTION if by_matmul else FFT_NS_PER_CONTRACTION)[name]
    time_ns = (FFT_NS_PER_TRANSFORM_WORK[name] * transforms * points * math.log2(points)
               + contraction * n * c_in * c_out * bins + FFT_FIXED_NS[name])
    return time_ns, 16 * bins * transforms


def _im2col_time_model(x_shape, w_shape, padding, dtype=torch.float64) -> float:
    """im2col's modelled time in ``dtype``, ns (see IM2COL_NS_PER_WINDOW_ELEMENT); 0 with
    no output."""
    n, c_in = x_shape[:2]
    c_out, _, k_h, k_w = w_shape
    height, width = _padded_hw(x_shape, padding)
    out_h, out_w = max(0, height - k_h + 1), max(0, width - k_w + 1)
    if not out_h * out_w:
        return 0.0
    name = dtype_name(dtype)
    window_rows = n * c_in * k_h * k_w * out_h
    elements = window_rows * out_w
    return (IM2COL_NS_PER_WINDOW_ELEMENT[name] * elements
            + IM2COL_NS_PER_MAC[name] * elements * c_out
            + IM2COL_NS_PER_WINDOW_ROW[name] * window_rows + IM2COL_FIXED_NS[name])


def _kn2row_time_model(x_shape, w_shape, padding, dtype=torch.float64) -> float:
    """im2col's modelled time in ``dtype`` where it runs kn2row, ns (KN2ROW_NS_PER_MAC)."""
    n, c_in = x_shape[:2]
    c_out, c_group, k_h, k_w = w_shape
    pixels = n * math.prod(_padded_hw(x_shape, padding))
    name = dtype_name(dtype)
    return (KN2ROW_NS_PER_MAC[name] * pixels * k_h * k_w * c_group * c_out
            + KN2ROW_NS_PER_ROW_ELEMENT[name] * c_out * k_h * k_w * pixels
            + KN2ROW_NS_PER_INPUT[name] * c_in * pixels + KN2ROW_FIXED_NS[name])
