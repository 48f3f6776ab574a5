"""numpy/scipy autograd layers from PyTorch's "Creating extensions using numpy and
scipy" tutorial, with proven gradients, and their native torch twins.

The layers load on first use (``from scipy_layers import conv2d`` or
``scipy_layers.conv2d``), not with the package: its report command
(``python -m scipy_layers.reports``) reads asv's results with pandas alone, and
importing torch and scipy.signal first cost it ~4 s a run. Submodules load on first
use too (``scipy_layers._workspace.WORKSPACE_LIMIT_BYTES`` works after a bare
``import scipy_layers``).
"""
import importlib as _importlib
import importlib.util as _importlib_util

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
for _name in _EXPORTS:  # (importlib.reload: names cached by an earlier load go stale)
    globals().pop(_name, None)
del _name


def __getattr__(name):
    module = _EXPORTS.get(name)
    if module is not None:
        value = getattr(_importlib.import_module(f".{module}", __name__), name)
        globals()[name] = value  # (found directly from now on)
        return value
    if not name.startswith("__") and _importlib_util.find_spec(f"{__name__}.{name}"):
        return _importlib.import_module(f".{name}", __name__)  # (binds itself here)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))
