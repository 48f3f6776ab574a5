"""numpy/scipy autograd layers from PyTorch's "Creating extensions using numpy and
scipy" tutorial, with proven gradients, and their native torch twins.

The layers load on first use (``from scipy_layers import conv2d`` or
``scipy_layers.conv2d``), not with the package: its report command
(``python -m scipy_layers.reports``) reads asv's results with pandas alone, and
importing torch and scipy.signal first cost it ~4 s a run.
"""
import importlib

# Each public name -> the module that defines it.
_EXPORTS = {
    "NativeConv2d": "conv", "ScipyConv2d": "conv", "ScipyConv2dFunction": "conv",
    "native_conv2d": "conv", "scipy_conv2d": "conv",
    "BadFFTFunction": "fft", "FFTAbsFunction": "fft", "fft_abs": "fft",
    "incorrect_fft": "fft", "native_fft_abs": "fft",
    "Conv2d": "nn", "conv2d": "nn",
    "LAYERS": "registry", "NATIVE": "registry", "Implementation": "registry",
    "Layer": "registry",
}
__all__ = list(_EXPORTS)


def __getattr__(name):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # (found directly from now on)
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))
