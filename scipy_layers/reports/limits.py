"""The machine's limit: for every timed case a lower bound on its time, single thread,
from the bytes it must move and the arithmetic it must do, divided by the machine's
calibrated figures (tools/calibrate.py writes them)::

    bound = max(bytes / bandwidth, min(direct_flops / gemm_rate, fft_flops / fft_rate))

- ``bytes / bandwidth``: every operand a measurement needs is read from memory once and
  every result written once (``elements`` below, times the dtype's itemsize), at the
  calibrated copy bandwidth. No implementation moves less; it holds while the data do not
  stay in cache between calls (small cases that fit in cache can beat it).
- ``direct_flops / gemm_rate``: the multiply-adds of the sum over the kernel's taps (2 per
  tap and output, a tap on the padding left out), at the rate of a large GEMM of the
  dtype, the fastest the machine does dense arithmetic on one core: a direct method
  (im2col, shift-and-add, Winograd aside) cannot run its arithmetic faster.
- ``fft_flops / fft_rate``: the transforms a spectral method cannot avoid (2.5 T log2 T
  flops for a real transform of T points, FFTW's convention) plus its pointwise products,
  at the rate of scipy.fft's large real transform of the dtype.
- ``min`` of the two families: the case may take the cheaper one. An algorithm cheaper
  than both (Winograd's fewer multiplies, a transform faster than the calibrated rate, a
  smaller transform size) would beat the bound; so would a case whose data stay in cache.
  It is a bound, not a prediction: ``limit_fraction = bound / time`` is the fraction of
  the machine's limit the implementation reaches (1 = at the limit).

Formulas (``FORMULAS``), stride 1, no padding, as the suite runs: a convolution of
N x C_in x H x W by C_out x C_in x kh x kw gives N x C_out x Ho x Wo (Ho = H - kh + 1);
``conv2d`` is N = C_in = C_out = 1. Its spectral method transforms at T = H W points (a
circular correlation of size H x W holds the valid outputs), with H (W//2 + 1) bins; a
complex product costs 6 flops, a complex multiply-add 8. Bias terms (C_out numbers) are
left out, which keeps the bound a lower one. The layer-type view's cases (a ``conv``
parameter, scipy_layers.conv_spec) add groups G, stride s, padding p and dilation d:
Ho = (H + 2p - d (kh - 1) - 1) // s + 1, the weight and each output's sum take C_in / G
channels, and only what reads the input counts (``conv_axes``): the (output, tap) pairs
whose input index is not padding, the inputs and taps they read; the spectral terms
compute every stride-1 output at T = (H + q_h)(W + q_w), q = min(p, d (k - 1)).

The calibration files: ``calibration``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Callable, NamedTuple

import numpy as np
import pandas as pd

from ..conv_spec import parse_conv_case
# (the calibration's names are also this module's, as they were before calibration.py)
from .calibration import (CALIBRATED_ENVIRONMENT, CALIBRATION_FILE, FIGURE_UNITS,  # noqa: F401
                          ITEMSIZE, Calibration, _blank, environment_differences,
                          read_calibration, read_calibrations)
from .conv_axes import Axis, axis
from .naming import DEFAULT_THREADS, TIME_MEASUREMENTS

LIMIT_COLUMNS = ["bound_time", "limit_fraction"]
# The suite's batched conv (benchmarks/bench_conv2d_nchw.py OUTPUT_CHANNELS): input size
# -> output channels, for results whose kernel parameter is kh x kw alone. The report
# reads asv's results, never the suite's code; tests/test_reports_limits.py checks that
# this copy matches the suite's.
SUITE_OUTPUT_CHANNELS = {"8x3x32x32": 16, "8x16x32x32": 32, "1x64x56x56": 64,
                         "1x3x224x224": 64, "4x1x128x128": 1}


def real_transform_flops(points: int) -> float:
    """2.5 T log2 T: FFTW's flop count for a real transform of T points."""
    return 2.5 * points * math.log2(points) if points > 1 else 0.0


class Work(NamedTuple):
    """What one measurement must do: ``elements`` read or written (x itemsize = bytes),
    the direct method's flops (inf: there is none), and the spectral method's real
    transforms of ``points`` points each plus its pointwise flops on the spectra."""
    elements: float
    direct_flops: float
    transforms: float
    points: int
    bin_flops: float

    @property
    def fft_flops(self) -> float:
        return self.transforms * real_transform_flops(self.points) + self.bin_flops

    def __add__(self, other: "Work") -> "Work":
        return Work(self.elements + other.elements, self.direct_flops + other.direct_flops,
                    self.transforms + other.transforms, self.points,
                    self.bin_flops + other.bin_flops)


@dataclass(frozen=True)
class Conv:
    """A convolution N x C_in x H x W by C_out x C_in/G x kh x kw (stride 1, no padding,
    dilation 1, one group unless given); along each axis, what reads the input
    (``conv_axes``)."""
    n: int
    c_in: int
    c_out: int
    h: int
    w: int
    kh: int
    kw: int
    groups: int = 1
    stride: int = 1
    padding: int = 0
    dilation: int = 1

    @cached_property
    def axes(self) -> tuple[Axis, Axis]:
        return tuple(axis(size, k, self.stride, self.padding, self.dilation)
                     for size, k in ((self.h, self.kh), (self.w, self.kw)))

    @property
    def c_group(self): return self.c_in // self.groups
    @property
    def out_group(self): return self.c_out // self.groups
    @property
    def input(self): return self.n * self.c_in * self.h * self.w
    @property
    def input_read(self): return self.n * self.c_in * self.axes[0].touched * self.axes[1].touched
    @property
    def weight(self): return self.c_out * self.c_group * self.kh * self.kw
    @property
    def weight_read(self): return self.c_out * self.c_group * self.axes[0].taps * self.axes[1].taps
    @property
    def output(self): return self.n * self.c_out * self.axes[0].outputs * self.axes[1].outputs
    @property
    def macs(self): return self.n * self.c_out * self.c_group * self.axes[0].pairs * self.axes[1].pairs
    @property
    def points(self): return self.axes[0].points * self.axes[1].points
    @property
    def bins(self): return self.axes[0].points * (self.axes[1].points // 2 + 1)


@dataclass(frozen=True)
class Images:
    """A batch of H x W images (fft_abs)."""
    batch: int
    h: int
    w: int

    @property
    def input(self): return self.batch * self.h * self.w
    @property
    def output(self): return self.batch * self.h * (self.w // 2 + 1)  # |rfft2|: one per bin
    @property
    def points(self): return self.h * self.w
    @property
    def matrix_dft_flops(self):
        """The 2-D real DFT as two matrix products, the cheaper axis first: along W, W ->
        2 (W//2+1) real columns (a real multiply-add per entry), then H x H complex on the
        W//2+1 columns (8 flops each); or along H first, keeping H//2+1 rows (the others
        follow by Hermitian symmetry), then W x W complex on them."""
        def first(along, other):
            half = along // 2 + 1
            return 2 * other * along * 2 * half + 8 * other * other * half
        return self.batch * min(first(self.w, self.h), first(self.h, self.w))


ABS_FLOPS = 4    # |z| per bin: two squares, an add, a square root
PHASE_FLOPS = 6  # backward per bin: g / |z| (a division) times z (two multiplies), its
                 # Hermitian weight (a multiply on each part)
MATRIX_PHASE_FLOPS = 3  # the same by DFT matrices, which need no Hermitian weight
INF = math.inf

# layer -> pass -> what it must do, from the parsed case. A measurement is a sum of passes
# (MEASUREMENT_PASSES). Each pass reads each operand it needs once and writes each result
# once; spectra the forward made are reused by the backward.
FORMULAS: dict[str, dict[str, Callable]] = {
    "conv": {
        # read input, weight (what some output reads of them); write output. Spectral:
        # transform input and weight, invert the output; per bin each output channel sums
        # C_in products.
        "forward": lambda c: Work(
            elements=c.input_read + c.weight_read + c.output, direct_flops=2 * c.macs,
            transforms=c.n * c.c_in + c.c_out * c.c_group + c.n * c.c_out, points=c.points,
            bin_flops=c.bins * c.n * c.c_out * (8 * c.c_group - 2)),
        # read grad_output, input, weight (as the forward); write grad_input, grad_weight
        # whole. Direct: two correlations as large as the forward. Spectral: transform
        # grad_output, invert grad_input and grad_weight; per bin, sums over C_out and N.
        "backward": lambda c: Work(
            elements=c.output + c.input_read + c.weight_read + c.input + c.weight,
            direct_flops=4 * c.macs,
            transforms=c.n * c.c_out + c.n * c.c_in + c.c_out * c.c_group, points=c.points,
            bin_flops=c.bins * (c.n * c.c_in * (8 * c.out_group - 2)
                                + c.c_out * c.c_group * (8 * c.n - 2))),
    },
    "fft_abs": {
        # read x, write |rfft2(x)|: one real transform per image, |.| per bin. "Direct":
        # the transform as DFT matrix products at GEMM rate (the layer's path on lengths
        # with a large prime factor).
        "forward": lambda x: Work(
            elements=x.input + x.output, direct_flops=x.matrix_dft_flops + ABS_FLOPS * x.output,
            transforms=x.batch, points=x.points, bin_flops=ABS_FLOPS * x.output),
        # read grad_output and the phase's source (at least the input's size: the saved
        # spectrum or x itself), write grad_input: one inverse transform per image.
        "backward": lambda x: Work(
            elements=x.output + x.input + x.input,
            direct_flops=x.matrix_dft_flops + MATRIX_PHASE_FLOPS * x.output, transforms=x.batch,
            points=x.points, bin_flops=PHASE_FLOPS * x.output),
    },
}
MEASUREMENT_PASSES = {"forward": ("forward",), "backward": ("backward",),
                      "forward+backward": ("forward", "backward")}


def _dims(text) -> tuple[int, ...] | None:
    try:
        dims = tuple(int(part) for part in str(text).split("x"))
    except ValueError:
        return None
    return dims if dims and all(d > 0 for d in dims) else None


def _conv(n, c_in, h, w, c_out, kh, kw) -> Conv | None:
    return Conv(n, c_in, c_out, h, w, kh, kw) if kh <= h and kw <= w else None


def _conv_of_spec(spec) -> Conv | None:
    """The layer-type view's ``conv`` string (scipy_layers.conv_spec) as a Conv."""
    try:
        case = parse_conv_case(spec)
    except ValueError:
        return None
    (n, c_in, h, w), (c_out, kh, kw) = case.size, case.kernel
    return Conv(n, c_in, c_out, h, w, kh, kw, case.groups, case.stride, case.padding,
                case.dilation)


def parse_case(layer: str, size, kernel, conv=None):
    """(formula key, parsed case) from the suite's size and kernel strings (or, for the
    batched conv's layer-type view, its conv string), or None when the layer has no
    formula or the strings do not describe a case it runs."""
    dims, taps = _dims(size), _dims(kernel)
    if layer == "conv2d_nchw" and not _blank(conv):
        shape = _conv_of_spec(conv)
    elif layer == "conv2d" and dims and taps and len(dims) == 2 and len(taps) == 2:
        shape = _conv(1, 1, *dims, 1, *taps)
    elif layer == "conv2d_nchw" and dims and taps and 2 <= len(dims) <= 4 and 2 <= len(taps) <= 3:
        # As the registry's input maker reads them: missing leading dims are 1; a kernel
        # of kh x kw takes C_out from the suite's input -> output channel mapping.
        n, c_in, h, w = (1,) * (4 - len(dims)) + dims
        c_out = taps[0] if len(taps) == 3 else SUITE_OUTPUT_CHANNELS.get(str(size))
        shape = _conv(n, c_in, h, w, c_out, *taps[-2:]) if c_out else None
    elif layer == "fft_abs" and dims and len(dims) >= 2 and kernel is None:
        shape = Images(math.prod(dims[:-2]), *dims[-2:])  # (np.prod wrapped past int64)
    else:
        return None
    return None if shape is None else ("fft_abs" if layer == "fft_abs" else "conv", shape)


def work(layer: str, measurement: str, size, kernel, conv=None) -> Work | None:
    """What ``measurement`` of a case must do (None: no formula for it)."""
    parsed, passes = parse_case(layer, size, kernel, conv), MEASUREMENT_PASSES.get(measurement)
    if parsed is None or passes is None:
        return None
    key, shape = parsed
    total = FORMULAS[key][passes[0]](shape)
    for name in passes[1:]:
        total = total + FORMULAS[key][name](shape)
    return total


def bound_times(table: pd.DataFrame, calibrations: dict[str, Calibration]) -> np.ndarray:
    """Each row's bound (s): timed CPU cases at one thread on a calibrated machine, of a
    layer with a formula, run where the calibration ran (``environment_differences``);
    NaN for every other row. Computed once per distinct case."""
    if table.empty:
        return np.empty(0)
    # (results without a layer-type view have no conv column)
    table = table if "conv" in table else table.assign(conv=None)
    table = table.assign(**{c: "" for c in CALIBRATED_ENVIRONMENT if c not in table})
    columns = ["layer", "measurement", "size", "kernel", "conv", "dtype", "device", "threads",
               "machine", *CALIBRATED_ENVIRONMENT]
    groups = table.groupby(columns, dropna=False, sort=False).ngroup().to_numpy()
    firsts = table.loc[~pd.Series(groups).duplicated().to_numpy(), columns]  # group order

    def bound(layer, measurement, size, kernel, conv, dtype, device, threads, machine,
              *environment) -> float:
        calibration = calibrations.get(machine)
        if (calibration is None or measurement not in TIME_MEASUREMENTS or dtype not in ITEMSIZE
                or not (_blank(device) or device == "cpu") or threads != DEFAULT_THREADS
                or environment_differences(calibration, dict(zip(CALIBRATED_ENVIRONMENT, environment)))):
            return math.nan
        try:
            item = work(layer, measurement, size, None if _blank(kernel) else kernel, conv)
            return math.nan if item is None else calibration.bound(item, dtype)
        except OverflowError:  # (sizes no float holds, in a hand-made results file)
            return math.nan

    per_group = np.array([bound(*row) for row in firsts.itertuples(index=False)], dtype=float)
    return per_group[groups]


def join_limits(table: pd.DataFrame, results_dir: Path) -> pd.DataFrame:
    """``table`` with LIMIT_COLUMNS inserted after ``repeat``: ``bound_time`` (s) and
    ``limit_fraction`` = bound_time / value for rows that ran (status ok, time > 0)."""
    calibrations = read_calibrations(results_dir, table["machine"].unique())
    bounds = bound_times(table, calibrations)
    ran = (table["status"] == "ok").to_numpy() & (table["value"] > 0).to_numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        fraction = np.where(ran, bounds / table["value"].to_numpy(dtype=float), np.nan)
    at = list(table.columns).index("repeat") + 1
    table.insert(at, "bound_time", bounds)
    table.insert(at + 1, "limit_fraction", fraction)
    return table
