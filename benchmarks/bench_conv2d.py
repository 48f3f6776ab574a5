"""The tutorial's single-channel cross-correlation layer (``conv2d`` in the registry):
every numpy/scipy method against F.conv2d, on the same seeded inputs."""
from .common import DEVICES, DTYPES, THREADS, _BackwardTiming, _GradientAgreement, _ThreadTimings, _Timings

LAYER = "conv2d"
# Fixed lists, never read from what is installed: an older commit lacking a method shows
# n/a for it. tests/test_benchmarks.py fails if a registered implementation is missing.
IMPLEMENTATIONS = ["native", "scipy", "scipy-direct", "scipy-shift", "scipy-fft"]
SIZES = ["16x16", "64x64", "127x127", "256x256", "1021x1021", "1024x1024", "2048x2048"]
KERNELS = ["3x3", "5x5", "7x7", "15x15", "31x31"]
PARAM_NAMES = ["implementation", "size", "kernel", "dtype", "device"]
PARAMS = [IMPLEMENTATIONS, SIZES, KERNELS, list(DTYPES), DEVICES]


def in_default_grid(implementation, size, kernel, dtype):
    """The default grid: every implementation at a small, a prime and a large size, with
    a small and a large kernel (the FFT/direct crossover lies between them)."""
    return size in ("16x16", "127x127", "1024x1024") and kernel in ("3x3", "15x15")


class Conv2d(_Timings):
    layer = LAYER
    param_names = PARAM_NAMES
    params = PARAMS

    in_default_grid = staticmethod(in_default_grid)

    def setup(self, implementation, size, kernel, dtype, device):
        self.setup_case(implementation, size, kernel, dtype, device)


class Conv2dBackward(_BackwardTiming):
    layer = LAYER
    param_names = PARAM_NAMES
    params = PARAMS

    in_default_grid = staticmethod(in_default_grid)

    def setup(self, implementation, size, kernel, dtype, device):
        self.setup_case(implementation, size, kernel, dtype, device)


class Conv2dThreads(_ThreadTimings):
    layer = LAYER
    param_names = ["implementation", "size", "kernel", "dtype", "threads"]
    params = [IMPLEMENTATIONS, SIZES, KERNELS, list(DTYPES), THREADS]

    def in_default_grid(self, implementation, size, kernel, dtype):
        return (implementation in ("scipy", "native") and size in ("127x127", "1024x1024")
                and kernel == "3x3" and dtype == "float32")

    def setup(self, implementation, size, kernel, dtype, threads):
        self.setup_case(implementation, size, kernel, dtype, "cpu", threads)


class Conv2dGradients(_GradientAgreement):
    layer = LAYER
    param_names = ["implementation", "size", "kernel", "dtype", "quantity"]
    params = [IMPLEMENTATIONS, ["16x16", "127x127"], ["3x3", "15x15"], list(DTYPES),
              ["output", "grad_input", "grad_filter", "grad_bias"]]

    def setup(self, implementation, size, kernel, dtype, quantity):
        self.setup_case(implementation, size, kernel, dtype, quantity)
