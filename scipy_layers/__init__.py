"""numpy/scipy autograd layers from PyTorch's "Creating extensions using numpy and
scipy" tutorial, with proven gradients, and their native torch twins."""
from .conv import NativeConv2d, ScipyConv2d, ScipyConv2dFunction, native_conv2d, scipy_conv2d
from .fft import BadFFTFunction, FFTAbsFunction, fft_abs, incorrect_fft, native_fft_abs
from .nn import Conv2d, conv2d
from .registry import LAYERS, NATIVE, Implementation, Layer

__all__ = [
    "BadFFTFunction", "FFTAbsFunction", "fft_abs", "incorrect_fft", "native_fft_abs",
    "ScipyConv2dFunction", "ScipyConv2d", "NativeConv2d", "scipy_conv2d", "native_conv2d",
    "conv2d", "Conv2d",
    "LAYERS", "NATIVE", "Implementation", "Layer",
]
