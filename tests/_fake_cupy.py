"""A numpy/scipy stand-in for CuPy, so that the CuPy code path of scipy_layers.gpu runs
(and is tested) on machines without a GPU: the same calls, on CPU tensors, with the
dispatch told that every tensor is on CUDA."""
import sys
import types

import numpy as np
import scipy.fft
import scipy.signal

from scipy_layers import gpu

CUPY_MODULES = ("cupy", "cupyx", "cupyx.scipy", "cupyx.scipy.signal")


def _as_cufft(transform):
    """scipy.fft's transform, refusing as cuFFT does real input that is not aligned to
    its complex type (CUFFT_INVALID_VALUE, seen on an H200 for views at an odd offset)."""
    def checked(a, *args, **kwargs):
        if np.isrealobj(a) and a.ctypes.data % (2 * a.itemsize):
            raise RuntimeError("stand-in for cuFFT: CUFFT_INVALID_VALUE (misaligned input)")
        return transform(a, *args, **kwargs)
    return checked


def fake_cupy(device_count=1, broken=False):
    """Modules named like CuPy's, backed by numpy/scipy; ``calls`` logs the signal calls.
    Anything the fake ``cupy`` does not define comes from numpy (as CuPy mirrors it)."""
    calls = []
    cp = types.ModuleType("cupy")
    cp.__getattr__ = lambda name: getattr(np, name)  # (PEP 562: the module's fallback)
    cp.from_dlpack, cp.asnumpy = np.from_dlpack, np.asarray
    cp.zeros = (lambda *args, **kwargs: 1 / 0) if broken else np.zeros
    cp.fft = types.SimpleNamespace(rfft2=_as_cufft(scipy.fft.rfft2), irfft2=scipy.fft.irfft2)
    cp.cuda = types.SimpleNamespace(runtime=types.SimpleNamespace(getDeviceCount=lambda: device_count))
    signal = types.ModuleType("cupyx.scipy.signal")
    for name in ("correlate2d", "convolve2d", "correlate", "convolve"):
        def spy(a, b, *args, _fn=getattr(scipy.signal, name), _name=name, **kwargs):
            calls.append((_name, a.shape, b.shape, kwargs.get("method")))
            return _fn(a, b, *args, **kwargs)
        setattr(signal, name, spy)
    cupyx, cupyx_scipy = types.ModuleType("cupyx"), types.ModuleType("cupyx.scipy")
    cupyx.scipy, cupyx_scipy.signal = cupyx_scipy, signal
    return dict(zip(CUPY_MODULES, (cp, cupyx, cupyx_scipy, signal))), calls


def install(monkeypatch, modules, cuda=True):
    for name in CUPY_MODULES:
        monkeypatch.setitem(sys.modules, name, modules.get(name) if modules else None)
    if cuda:  # every tensor now reads as CUDA to the dispatch (and only to it)
        monkeypatch.setattr(gpu, "_device_type", lambda tensor: "cuda")
