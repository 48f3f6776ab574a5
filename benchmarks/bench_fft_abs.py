"""The FFT layer |rfft2(x)| (``fft_abs`` in the registry): scipy.fft with the true
gradient, the tutorial's BadFFTFunction on numpy.fft, and torch.fft."""
from .common import DEVICES, DTYPES, THREADS, _BackwardTiming, _GradientAgreement, _ThreadTimings, _Timings

LAYER = "fft_abs"
IMPLEMENTATIONS = ["native", "scipy", "numpy-tutorial"]
# Leading numbers are batch dims: "8x256x256" is eight 256x256 images.
SIZES = ["16x16", "64x64", "127x127", "256x256", "255x255", "8x256x256", "1021x1021",
         "1024x1024", "2048x2048"]
PARAM_NAMES = ["implementation", "size", "dtype", "device"]
PARAMS = [IMPLEMENTATIONS, SIZES, list(DTYPES), DEVICES]
DEFAULT_SIZES = ("16x16", "127x127", "256x256", "8x256x256", "1024x1024")


def in_default_grid(implementation, size, kernel, dtype):
    return size in DEFAULT_SIZES


class FFTAbs(_Timings):
    layer = LAYER
    param_names = PARAM_NAMES
    params = PARAMS

    in_default_grid = staticmethod(in_default_grid)

    def setup(self, implementation, size, dtype, device):
        self.setup_case(implementation, size, None, dtype, device)


class FFTAbsBackward(_BackwardTiming):
    layer = LAYER
    param_names = PARAM_NAMES
    params = PARAMS

    in_default_grid = staticmethod(in_default_grid)

    def setup(self, implementation, size, dtype, device):
        self.setup_case(implementation, size, None, dtype, device)


class FFTAbsThreads(_ThreadTimings):
    layer = LAYER
    param_names = ["implementation", "size", "dtype", "threads"]
    params = [IMPLEMENTATIONS, SIZES, list(DTYPES), THREADS]

    def in_default_grid(self, implementation, size, kernel, dtype):
        return (implementation in ("scipy", "native") and size in ("256x256", "1024x1024")
                and dtype == "float32")

    def setup(self, implementation, size, dtype, threads):
        self.setup_case(implementation, size, None, dtype, "cpu", threads)


class FFTAbsGradients(_GradientAgreement):
    """The tutorial's numpy-tutorial implementation shows a relative gradient error near
    1 here on purpose: its backward is knowingly wrong (see BadFFTFunction)."""

    layer = LAYER
    param_names = ["implementation", "size", "dtype", "quantity"]
    params = [IMPLEMENTATIONS, ["16x16", "127x127", "4x31x30"], list(DTYPES),
              ["output", "grad_input"]]

    def setup(self, implementation, size, dtype, quantity):
        self.setup_case(implementation, size, None, dtype, quantity)
