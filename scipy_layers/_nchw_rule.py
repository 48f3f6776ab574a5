"""Which method ``method="auto"`` runs for the batched conv (:func:`choose_nchw_method`):
"shift", "fft" or "im2col", with the measurements behind each threshold."""
from __future__ import annotations

import math

import scipy.fft
import torch

from . import _kn2row
from ._nchw_args import ConvGeometry
from ._fft_route import float64_rejects_on_normal_data
from ._conv_rule import dtype_name, is_float64, shift_max_taps

# "auto", first rule: one output channel (up to 3 input channels) at a kernel the
# single-channel layer runs by shift (_conv_rule.SHIFT_MAX_TAPS) takes "shift": im2col's GEMMs
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
# Fitted by tools/fit_cost_model.py (least squares on relative error, non-negative) on
# the Intel VM of docs/performance.md (a 2-core Xeon KVM, AVX-512), with the code as it
# runs since im2col's bands, the FFT spectra laid out bins first and float32 passes
# certified by their own output: tools/method_choice.py's seeded draw, cells 41-160
# (batch 1-16, 1-64 input and 1-128 output channels, 16-128 px, 5x5-15x15, valid and
# 'same'), both methods in both dtypes, fwd+bwd, one process, balanced batches.
# Measured / modelled, 10th-90th percentile: im2col 0.84-1.52 (float32), 0.83-1.70
# (float64); fft 0.83-1.62, 0.80-1.72. Judged on cells it never saw, auto's time over
# the faster method's: the draw's first 40 cells (method_choice's own) float32 1.165x
# -> 1.002x, float64 1.103x -> 1.003x; cells 161-240 (79 a dtype) 1.091x -> 1.011x,
# 1.031x -> 1.027x. The constants before were fitted on the Zen 4 VM (265 cells), before
# those three changes; on the Intel VM they priced float32 im2col's window copies at
# about half their cost (0.97 against 1.79 ns an element), so auto left fft's wins on
# few channel pairs and large maps to im2col (4x4x128x128 -> 8 k9 'same' float32: im2col
# 115 ms, fft 53). Not measured on the Zen CPUs since: there tools/method_choice.py
# says how far auto is from the faster method. The margin is 0.9, not 1.0: a pass whose
# certificate rejects it (zero regions) runs the tap kernels too, so ties stay im2col.
# Calibrated float64 GEMM / FFT GFLOP/s (reports/): Zen 4 50.6 / 9.71, Zen 3 42.9 / 7.8,
# Zen 5 92.5 / 12.7, the Intel VM 66.9 / 10.
FFT_MODEL_MATMUL_MIN_PRODUCTS = 2048
IM2COL_NS_PER_WINDOW_ELEMENT = {"float32": 1.79, "float64": 2.90}
IM2COL_NS_PER_MAC = {"float32": 0.0797, "float64": 0.170}
IM2COL_NS_PER_WINDOW_ROW = {"float32": 26.3, "float64": 53.8}
IM2COL_FIXED_NS = {"float32": 213e3, "float64": 165e3}
FFT_NS_PER_TRANSFORM_WORK = {"float32": 1.52, "float64": 2.56}
FFT_NS_PER_CONTRACTION = {"float32": 8.73, "float64": 17.3}
FFT_NS_PER_MATMUL_CONTRACTION = {"float32": 5.03, "float64": 8.97}
FFT_FIXED_NS = {"float32": 380e3, "float64": 798e3}
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
# With the Zen 4 fft model (60 random kn2row cells, 1-8 output channels on 2-256 input
# channels): 0.563 s in all against 0.552 for the faster (float32), 0.980 against 0.946
# (float64). The refit above left these constants as they were; its held-out regrets
# count the draw's kn2row cells, weighed by this model against the new fft one.
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
# Few channel pairs or one output channel may pass that limit while their spectra hold
# at most NARROW_SPECTRA_PER_ELEMENT complex numbers per element of the input and output
# together: their spectra grow as the images do (1x1x4096x4096 -> 1 at 15x15: ~0.4 GB,
# 0.75 a data element, where im2col ran ~5x longer), except where a large kernel's
# padding makes the transforms far taller or wider than the images. There the peak ran
# to many times im2col's for no gain (hostile pass; fwd+bwd, one thread, Intel VM,
# float32: 64x1x5x4096 -> 8 k31 'same', 693 MiB of spectra, 3.85 a data element: fft 8.3
# s and a 1.7 GB traced numpy peak against im2col's 7.8 s and 130 MB).
NARROW_SPECTRA_PER_ELEMENT = 2
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
        fits = spectra_bytes <= FFT_MODEL_MAX_SPECTRA_BYTES or (  # (the limits above)
            _narrow(w_shape) and spectra_bytes <= 16 * NARROW_SPECTRA_PER_ELEMENT
            * _data_elements(x_shape, w_shape, padding))
        if fits and fft_ns <= FFT_MODEL_MARGIN * im2col_ns and not (
                is_float64(dtype) and float64_rejects_on_normal_data(
                    x_shape[2:], w_shape[2:], padding, w_shape[1], w_shape[0])):
            return "fft"  # (float64: unless the certificate's linear term would reject it)
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


def _data_elements(x_shape, w_shape, padding) -> int:
    """Elements of the input and the output together (stride 1)."""
    n, c_in, height, width = x_shape
    return n * (c_in * height * width + w_shape[0] * math.prod(_out_hw(x_shape, w_shape,
                                                                        padding)))


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
    if runs_kn2row(x_shape, w_shape, padding, dtype):
        im2col_ns = _kn2row_time_model(x_shape, w_shape, padding, dtype)
    else:
        im2col_ns = _im2col_time_model(x_shape, w_shape, padding, dtype)
    return fft_ns, spectra_bytes, im2col_ns


def runs_kn2row(x_shape, w_shape, padding, dtype=torch.float32) -> bool:
    """Whether im2col runs its kn2row layout here (stride 1, no dilation, one group), so
    that modelled_times prices it by kn2row's model."""
    return _kn2row.runs(x_shape, w_shape, _stride_one(x_shape, w_shape, padding), dtype)


def _stride_one(x_shape, w_shape, padding) -> ConvGeometry:
    """The geometry of stride 1, no dilation, one group."""
    height, width = _padded_hw(x_shape, padding)
    out_hw = (height - w_shape[2] + 1, width - w_shape[3] + 1)
    return ConvGeometry((1, 1), tuple(padding), (1, 1), 1, out_hw)


def _padded_hw(x_shape, padding):
    top, bottom, left, right = padding
    return x_shape[2] + top + bottom, x_shape[3] + left + right


def _out_hw(x_shape, w_shape, padding):
    """The output's (H, W) at stride 1, 0 where the kernel passes the padded image."""
    height, width = _padded_hw(x_shape, padding)
    return max(0, height - w_shape[2] + 1), max(0, width - w_shape[3] + 1)


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
    out_h, out_w = _out_hw(x_shape, w_shape, padding)
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
