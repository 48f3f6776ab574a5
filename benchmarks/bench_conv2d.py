"""The tutorial's single-channel cross-correlation layer (``conv2d`` in the registry)
against F.conv2d on the same seeded inputs.

``Conv2d*`` classes compare the layer as users call it (``scipy``: the method its rule
picks) with the native twin; ``Conv2dMethods`` puts every numpy/scipy method beside them,
which shows where each method wins and whether the rule picks the winner.
"""
from .common import (DEVICES, DTYPES, THREADS, _BackwardTiming, _ForwardBackwardTiming,
                     _Memory, _ThreadTimings, _Timings, parse_size, skip)
from .gradients import LAYOUTS, VALUES, _GradientAgreement

LAYER = "conv2d"
# Fixed lists, never read from what is installed: an older commit lacking a method shows
# n/a for it. tests/test_benchmarks.py fails if a registered implementation is missing.
METHODS = ["scipy-direct", "scipy-shift", "scipy-fft"]
IMPLEMENTATIONS = ["native", "scipy", *METHODS]
SIZES = ["16x16", "64x64", "127x127", "256x256", "1024x1024", "2048x2048"]  # 127: odd, prime
KERNELS = ["3x3", "5x5", "7x7", "15x15", "31x31"]
PARAM_NAMES = ["implementation", "size", "kernel", "dtype", "device"]
# Per-pass timings (forward, backward, memory; CPU and CUDA) on a sparser grid than
# Conv2dMethods' forward+backward one: each parameter combination costs an asv launch
# (~25 ms) even when skipped, and this keeps `asv run --quick` within its 2 minutes.
PARAMS = [["native", "scipy"], ["16x16", "127x127", "1024x1024", "2048x2048"],
          ["3x3", "7x7", "15x15", "31x31"], list(DTYPES), DEVICES]


DEFAULT_CASES = {  # size -> kernels run without SCIPY_LAYERS_BENCH_FULL=1
    "16x16": ("3x3", "15x15"),
    "127x127": ("3x3", "15x15"),
    "1024x1024": ("3x3", "7x7"),  # 15x15 costs native float64 ~3 s a call (im2col)
}


def in_default_grid(implementation, size, kernel, dtype):
    """A small, a prime and a large size, each with a small and a larger kernel (the
    crossovers between the direct, shift and FFT methods lie between them)."""
    return kernel in DEFAULT_CASES.get(size, ())


IM2COL_LIMIT_BYTES = 4 * 2**30


def skip_infeasible(implementation, size, kernel, dtype, device="cpu"):
    """torch's float64 CPU conv has no oneDNN path: it builds a (kH*kW) x (Ho*Wo) im2col
    buffer, 31 GB at 2048x2048 with 31x31 (more than this machine has). cuDNN has none."""
    (height, width), (k_h, k_w) = parse_size(size), parse_size(kernel)
    im2col_bytes = k_h * k_w * (height - k_h + 1) * (width - k_w + 1) * 8
    if (implementation == "native" and dtype == "float64" and device == "cpu"
            and im2col_bytes > IM2COL_LIMIT_BYTES):
        skip(f"native float64 would need a {im2col_bytes / 2**30:.0f} GiB im2col buffer")


class _Conv2dCase:
    layer = LAYER
    param_names = PARAM_NAMES
    params = PARAMS
    in_default_grid = staticmethod(in_default_grid)

    def setup(self, implementation, size, kernel, dtype, device):
        skip_infeasible(implementation, size, kernel, dtype, device)
        self.setup_case(implementation, size, kernel, dtype, device)


class Conv2d(_Conv2dCase, _Timings):
    pass


class Conv2dBackward(_Conv2dCase, _BackwardTiming):
    pass


class Conv2dMemory(_Conv2dCase, _Memory):
    pass


class Conv2dMethods(_ForwardBackwardTiming):
    """Forward+backward of every method, torch at one thread, on the CPU."""

    layer = LAYER
    param_names = ["implementation", "size", "kernel", "dtype"]
    params = [IMPLEMENTATIONS, SIZES, KERNELS, list(DTYPES)]

    def in_default_grid(self, implementation, size, kernel, dtype):
        return in_default_grid(implementation, size, kernel, dtype) and dtype == "float32"

    def setup(self, implementation, size, kernel, dtype):
        skip_infeasible(implementation, size, kernel, dtype)
        self.setup_case(implementation, size, kernel, dtype, "cpu")


class Conv2dThreads(_ThreadTimings):
    """float32 on the CPU at a few sizes: enough to see what torch's threads change."""

    layer = LAYER
    param_names = ["implementation", "size", "kernel", "dtype", "threads"]
    params = [["native", "scipy"], ["127x127", "1024x1024"], ["3x3", "15x15"], ["float32"], THREADS]

    def setup(self, implementation, size, kernel, dtype, threads):
        skip_infeasible(implementation, size, kernel, dtype)
        self.setup_case(implementation, size, kernel, dtype, "cpu", threads)


class Conv2dGradients(_GradientAgreement):
    layer = LAYER
    param_names = ["implementation", "size", "kernel", "dtype", "layout", "values", "quantity"]
    params = [IMPLEMENTATIONS[1:], ["16x16", "127x127"], ["3x3", "15x15"], list(DTYPES),
              LAYOUTS, VALUES, ["output", "grad_input", "grad_filter", "grad_bias"]]

    def setup_cache(self):
        return self.error_table()

    @staticmethod
    def case(implementation, size, kernel, dtype):
        return implementation, size, kernel, dtype
