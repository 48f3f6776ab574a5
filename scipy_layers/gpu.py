"""CuPy backend for the single-channel conv layer and the FFT layer, and the rule that
picks it.

CUDA tensors reach CuPy through DLPack (zero copy for contiguous tensors) and the results
come back the same way, so the computation stays on the GPU. Without a usable CuPy, CUDA
tensors take the numpy/scipy path (copy to the CPU, compute, copy back) and one
:class:`CPURoundTripWarning` per process says so. CuPy is imported lazily, on the first
CUDA input, never at package import; CPU inputs never touch it. CuPy's intermediates are
allocated from torch's caching allocator on torch's stream, so one pool serves both
libraries and torch.cuda.max_memory_allocated counts everything the layer uses.

tools/gpu_check.py and tests/test_gpu_paths.py check it on a GPU (tools/gpu_session.sh runs
both); the tests also run it here on a numpy/scipy stand-in for CuPy.
"""
from __future__ import annotations

import contextlib
import functools
import warnings
from typing import Any, NamedTuple

import torch

from ._checks import LayerValueError
from ._spectral import mirror_weights

AUTO = "auto"
CUPY = "cupy"    # backend: CuPy on the tensor's GPU
NUMPY = "numpy"  # backend: numpy/scipy (a CPU round trip for CUDA tensors)
INSTALL_HINT = "pip install scipy-layers[gpu]"

class CPURoundTripWarning(UserWarning):
    """CUDA tensors are computed on the CPU because CuPy is missing or unusable."""


def choose_backend(device_type: str, method: str, cupy_available: bool, reason: str = "") -> str:
    """The backend (``CUPY`` or ``NUMPY``) for inputs on ``device_type`` run by ``method``.

    CuPy runs CUDA inputs under "auto" when available, and whenever "cupy" is asked for;
    everything else runs on numpy/scipy. Asking for "cupy" off CUDA, or without a usable
    CuPy, raises. Pure: ``reason`` only words the error.
    """
    if method == CUPY:
        if device_type != "cuda":
            raise LayerValueError(f"method='cupy' needs CUDA tensors, got tensors on "
                                  f"{device_type!r}; use method='auto' (or a numpy method) "
                                  f"for them")
        if not cupy_available:
            raise RuntimeError(f"method='cupy' needs a usable CuPy"
                               f"{': ' + reason if reason else ''}; `{INSTALL_HINT}` installs it")
        return CUPY
    if device_type == "cuda" and method == AUTO and cupy_available:
        return CUPY
    return NUMPY


class CupyStatus(NamedTuple):
    available: bool
    reason: str                # why not, when not available
    cupy: Any = None           # the cupy module
    signal: Any = None         # cupyx.scipy.signal


@functools.lru_cache(maxsize=None)
def cupy_status() -> CupyStatus:
    """Whether CuPy imports and runs a kernel on a CUDA device (checked once per process)."""
    try:
        import cupy
        import cupyx.scipy.signal
    except ImportError as error:
        return CupyStatus(False, f"CuPy is not installed ({error})")
    except Exception as error:  # e.g. a CUDA library mismatch raised at import
        return CupyStatus(False, f"CuPy failed to import ({type(error).__name__}: {error})")
    try:
        if cupy.cuda.runtime.getDeviceCount() < 1:
            return CupyStatus(False, "CuPy found no CUDA device")
        cupy.asnumpy(cupy.zeros(1) + 1)  # compiles and runs a kernel: catches broken CUDA libs
    except Exception as error:
        return CupyStatus(False, f"CuPy is installed but not usable ({type(error).__name__}: {error})")
    return CupyStatus(True, "", cupy, cupyx.scipy.signal)


_round_trip_warned = False


def warn_cpu_round_trip_once(reason: str) -> None:
    global _round_trip_warned
    if _round_trip_warned:
        return
    _round_trip_warned = True
    warnings.warn(
        f"scipy_layers: {reason}, so layers given CUDA tensors copy them to the CPU, compute "
        f"with numpy/scipy and copy the results back (the CPU round trip; much slower). "
        f"`{INSTALL_HINT}` installs CuPy and keeps the work on the GPU. "
        f"(Shown once per process.)",
        CPURoundTripWarning, stacklevel=3)


_no_gpu_path_warned: set[str] = set()


def warn_no_gpu_path_once(tensor: torch.Tensor, layer: str) -> None:
    """For layers that have no CuPy path: say once per layer and process that CUDA
    tensors make the CPU round trip whatever is installed."""
    if (not isinstance(tensor, torch.Tensor) or _device_type(tensor) != "cuda"
            or layer in _no_gpu_path_warned):  # (not a tensor: the layer's checks say so)
        return
    _no_gpu_path_warned.add(layer)
    warnings.warn(
        f"scipy_layers: {layer} has no GPU path, so CUDA tensors given to it are copied to "
        f"the CPU, computed with numpy/scipy and copied back (much slower than its native "
        f"twin on the GPU). (Shown once per process.)", CPURoundTripWarning, stacklevel=3)


def _device_type(tensor: torch.Tensor) -> str:
    # one place, so tests can fake a "cuda" decision; is_cpu / is_cuda answer without
    # making a torch.device (~1 us of a 16x16 call)
    if tensor.is_cpu:
        return "cpu"
    return "cuda" if tensor.is_cuda else tensor.device.type


def resolve_backend(tensor: torch.Tensor, method: str = AUTO) -> str:
    """:func:`choose_backend` for ``tensor``; checks CuPy only for CUDA tensors, and warns
    once when "auto" falls back to the CPU round trip."""
    device_type = _device_type(tensor)
    if device_type != "cuda" and method != CUPY:
        return NUMPY  # choose_backend's answer, without its arguments (~2% of a 16x16 call)
    probe = device_type == "cuda" and method in (AUTO, CUPY)  # numpy methods need no CuPy
    status = cupy_status() if probe else CupyStatus(False, "")
    backend = choose_backend(device_type, method, status.available, status.reason)
    if device_type == "cuda" and method == AUTO and backend == NUMPY:
        warn_cpu_round_trip_once(status.reason)
    return backend


# --- torch <-> cupy -------------------------------------------------------------------

def _modules():
    status = cupy_status()
    if not status.available:
        raise RuntimeError(status.reason)
    return status.cupy, status.signal


def _plain(tensor: torch.Tensor) -> torch.Tensor:
    """``tensor`` contiguous, its lazy negation (torch._neg_view) applied: DLPack carries
    no negative bit, so CuPy would read the memory unnegated. No copy where neither
    applies."""
    return tensor.detach().resolve_neg().contiguous()


def _to_cupy(cp, tensor: torch.Tensor):
    """A CuPy view of ``tensor`` (see :func:`_plain`)."""
    return cp.from_dlpack(_plain(tensor))


# cuFFT refuses (CUFFT_INVALID_VALUE) real input not aligned to its complex type, as a view
# at an odd storage offset is: such input is copied to a fresh (aligned) block first.
FFT_ALIGNMENT = 16


def _to_cupy_for_fft(cp, tensor: torch.Tensor):
    tensor = _plain(tensor)
    if tensor.data_ptr() % FFT_ALIGNMENT:
        tensor = tensor.clone()
    return cp.from_dlpack(tensor)


def _to_torch(array, dtype) -> torch.Tensor:
    return torch.from_dlpack(array.astype(dtype, copy=False))


def _torch_malloc(size: int, device_id: int) -> int:
    # CuPy's current stream is torch's here (see _on_torch_stream): the block is
    # stream-ordered with the kernels that use it.
    return torch.cuda.caching_allocator_alloc(size, device_id, torch.cuda.current_stream(device_id))


def _torch_free(pointer: int, device_id: int) -> None:
    if pointer:  # a zero-byte allocation has no block to give back
        torch.cuda.caching_allocator_delete(pointer)


@functools.lru_cache(maxsize=None)
def _torch_allocator(cp):
    """CuPy's allocator interface over torch's caching allocator. Without it CuPy keeps
    its own pool: memory torch cannot reuse, and that max_memory_allocated never sees."""
    return cp.cuda.PythonFunctionAllocator(_torch_malloc, _torch_free).malloc


@contextlib.contextmanager
def _on_torch_stream(cp, tensor: torch.Tensor):
    """Run CuPy on the tensor's device and torch's current stream there (no
    synchronisation is needed between the two libraries), allocating from torch's pool."""
    with contextlib.ExitStack() as stack:
        if tensor.is_cuda:  # (only the tests' numpy-backed stand-in sees CPU tensors)
            stack.enter_context(cp.cuda.Device(tensor.device.index))
            stream = torch.cuda.current_stream(tensor.device).cuda_stream
            if stream:  # 0 is the legacy default stream, which is CuPy's default too
                stack.enter_context(cp.cuda.ExternalStream(stream))
            stack.enter_context(cp.cuda.using_allocator(_torch_allocator(cp)))
        yield


# --- the FFT layer (FFTAbsFunction): same true gradient as scipy_layers.fft ------------

def fft_abs_forward(input):
    """(|rfft2(input)|, the spectrum rfft2(input) for backward)."""
    cp, _ = _modules()
    with _on_torch_stream(cp, input):
        spectrum = cp.fft.rfft2(_to_cupy_for_fft(cp, input))
        magnitude = cp.abs(spectrum)
        result = _to_torch(magnitude, magnitude.dtype)
    return result, spectrum


def fft_abs_backward(spectrum, grad_output, input):
    """dL/dx = irfft2(c * g * Z/|Z|, s=(H, W), norm="forward"), c and Z/|Z| as in fft.py;
    ``spectrum`` from :func:`fft_abs_forward` on this input, or None."""
    cp, _ = _modules()
    height, width = input.shape[-2:]
    with _on_torch_stream(cp, grad_output):
        if spectrum is None:
            spectrum = cp.fft.rfft2(_to_cupy_for_fft(cp, input))
        magnitude = cp.abs(spectrum)  # recomputed: the forward output may have been changed
        # Z/|Z| (0 where |Z| = 0), parts divided as real arrays: complex division
        # overflows for subnormal |Z| (as numpy's does).
        denominator = magnitude + (magnitude == 0)
        phase = spectrum.real / denominator + 1j * (spectrum.imag / denominator)
        weights = mirror_weights(cp, spectrum.shape[-1], width, magnitude.dtype)
        grad_spectrum = _to_cupy(cp, grad_output) * weights * phase
        grad = cp.fft.irfft2(grad_spectrum, s=(height, width), norm="forward")
        return _to_torch(grad, magnitude.dtype)
