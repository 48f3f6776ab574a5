"""The FFT layer |rfft2(x)| (``fft_abs`` in the registry): the true gradient on scipy.fft
or DFT matrices (``scipy``: per axis, by its cost model), the tutorial's BadFFTFunction on
numpy.fft, and torch.fft. ``FFTAbsMethods`` puts both transform methods beside them."""
from .common import (DEVICES, DTYPES, THREADS, _BackwardTiming, _ForwardBackwardTiming,
                     _Memory, _ThreadTimings, _Timings, parse_size, skip)
from .gradients import LAYOUTS, VALUES, _GradientAgreement

LAYER = "fft_abs"
IMPLEMENTATIONS = ["native", "scipy", "numpy-tutorial"]
# Fixed list (an older commit lacking a method shows n/a for it).
METHODS = ["scipy-fft", "scipy-matrix"]
MATRIX_MAX_LENGTH = 128  # scipy_layers._dft_axes.MATRIX_MAX_LENGTH, fixed here likewise
# Leading numbers are batch dims: "8x256x256" is eight 256x256 images.
SIZES = ["16x16", "64x64", "127x127", "255x255", "256x256", "8x256x256", "1024x1024",
         "2048x2048"]  # 127: prime; 255: odd
PARAM_NAMES = ["implementation", "size", "dtype", "device"]
PARAMS = [IMPLEMENTATIONS, SIZES, list(DTYPES), DEVICES]
DEFAULT_SIZES = ("16x16", "127x127", "256x256", "8x256x256", "1024x1024")


def in_default_grid(implementation, size, kernel, dtype):
    return size in DEFAULT_SIZES


class _FFTAbsCase:
    layer = LAYER
    param_names = PARAM_NAMES
    params = PARAMS
    in_default_grid = staticmethod(in_default_grid)

    def setup(self, implementation, size, dtype, device):
        self.setup_case(implementation, size, None, dtype, device)


class FFTAbs(_FFTAbsCase, _Timings):
    pass


class FFTAbsBackward(_FFTAbsCase, _BackwardTiming):
    pass


class FFTAbsMemory(_FFTAbsCase, _Memory):
    pass


class FFTAbsMethods(_ForwardBackwardTiming):
    """Forward+backward of each transform method, torch at one thread, on the CPU: lengths
    of small factors (16, 128: scipy.fft), primes (61, 127: matrices; 127 ~1.6x faster
    than scipy.fft's Bluestein) and 69 = 3 x 23 (matrices in float32 only)."""

    layer = LAYER
    param_names = ["implementation", "size", "dtype"]
    params = [["native", "scipy", *METHODS], ["16x16", "61x61", "69x69", "127x127", "128x128"],
              list(DTYPES)]

    def in_default_grid(self, implementation, size, kernel, dtype):
        return size in ("16x16", "127x127")

    def setup(self, implementation, size, dtype):
        if implementation == "scipy-matrix" and max(parse_size(size)[-2:]) > MATRIX_MAX_LENGTH:
            skip(f"method='matrix' takes H and W up to {MATRIX_MAX_LENGTH}")
        self.setup_case(implementation, size, None, dtype, "cpu")


class FFTAbsThreads(_ThreadTimings):
    """float32 on the CPU, at a few sizes: enough to see what threads change."""

    layer = LAYER
    param_names = ["implementation", "size", "dtype", "threads"]
    params = [["native", "scipy"], ["256x256", "1024x1024"], ["float32"], THREADS]

    def setup(self, implementation, size, dtype, threads):
        self.setup_case(implementation, size, None, dtype, "cpu", threads)


class FFTAbsGradients(_GradientAgreement):
    """The tutorial's numpy-tutorial implementation shows a relative gradient error near
    1 here on purpose: its backward is knowingly wrong (see BadFFTFunction)."""

    layer = LAYER
    param_names = ["implementation", "size", "dtype", "layout", "values", "quantity"]
    params = [[*IMPLEMENTATIONS[1:], *METHODS], ["16x16", "127x127", "4x31x30"], list(DTYPES),
              LAYOUTS, VALUES, ["output", "grad_input"]]

    def setup_cache(self):
        return self.error_table()

    @staticmethod
    def case(implementation, size, dtype):
        return implementation, size, None, dtype
