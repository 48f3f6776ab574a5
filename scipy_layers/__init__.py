"""numpy/scipy autograd layers from PyTorch's "Creating extensions using numpy and
scipy" tutorial, with proven gradients, and their native torch twins.

The layers load on first use (``from scipy_layers import conv2d`` or
``scipy_layers.conv2d``), not with the package: its report command
(``python -m scipy_layers.reports``) reads asv's results with pandas alone, and
importing torch and scipy.signal first cost it ~4 s a run. Submodules load on first
use too (``scipy_layers._workspace.WORKSPACE_LIMIT_BYTES`` works after a bare
``import scipy_layers``).
"""
from ._lazy_names import lazy_names

# Each public name -> the module that defines it.
_EXPORTS = {
    "NativeConv2d": "conv", "ScipyConv2d": "conv", "ScipyConv2dFunction": "conv",
    "native_conv2d": "conv", "scipy_conv2d": "conv",
    "BadFFTFunction": "fft", "FFTAbsFunction": "fft", "fft_abs": "fft",
    "incorrect_fft": "fft", "native_fft_abs": "fft",
    "Conv2d": "nn", "conv2d": "nn",
    "LAYERS": "registry", "NATIVE": "registry", "Implementation": "registry",
    "Layer": "registry",
    # the errors (each also a RuntimeError, as native torch's)
    "LayerValueError": "_checks", "LayerTypeError": "_checks", "EmptyDimensionError": "_checks",
    "LayerMemoryError": "_checks",
}
__all__ = list(_EXPORTS)
__getattr__, __dir__ = lazy_names(__name__, _EXPORTS, globals())
