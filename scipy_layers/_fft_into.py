"""scipy.fft's transforms along one axis, unnormalised, written into arrays the caller
gives (workspace buffers, see :mod:`scipy_layers._workspace`) instead of fresh ones.

Why: scipy.fft's public functions take no ``out``; each call allocates its result, and
at the FFT layer's large sizes those fresh arrays page-fault on every call. Measured
(one process, one thread, the AMD EPYC VM of the README, 1024x1024 float64): the
backward's two inverse passes 14.5 ms by scipy.fft against 7.9 ms into reused arrays,
the same arithmetic.

How: pocketfft's own entry points (``scipy.fft._pocketfft.pypocketfft``: r2c, c2c, c2r
with ``out=``; scipy.fft's public functions are thin wrappers over them, which pass
``out`` themselves for ``overwrite_x``). That module is scipy's private API, so it is
used only after a probe at import checks that it exists, takes these arguments and
computes what scipy.fft's public functions do; otherwise every function here runs the
public one and copies its result into ``out`` (same values, no gain).

Also, for the FFT convolution (_fft_conv), scipy.fft's rfft / fft / ifft / irfft with
``n`` along one axis as pocketfft calls (fresh results, zero padding and normalisation
as scipy.fft's own: the same bits), without scipy.fft's per-call dispatch, ~15-18 us a
call that its small single-channel passes feel (24 calls a fwd+bwd).
"""
from __future__ import annotations

import numpy as np
import scipy.fft

from ._workspace import output, scratch


def _public_rfft_last(x, out):
    np.copyto(out, scipy.fft.rfft(x, axis=-1))
    return out


def _public_rfft2_last(x, out):
    np.copyto(out, scipy.fft.rfft2(x))
    return out


def _public_fft_axis(z, axis, forward):
    transform = scipy.fft.fft if forward else scipy.fft.ifft
    z[...] = transform(z, axis=axis, norm="backward" if forward else "forward")
    return z


def _public_irfft_last(z, width, out):
    np.copyto(out, scipy.fft.irfft(z, n=width, axis=-1, norm="forward"))
    return out


def _private_rfft_last(x, out):
    return _pocketfft.r2c(x, (x.ndim - 1,), True, 0, out, 1)


def _private_rfft2_last(x, out):
    # pocketfft's r2c over two axes: r2c along the last, then c2c along the other, in
    # out (bit for bit the two passes; one call fewer)
    return _pocketfft.r2c(x, (x.ndim - 2, x.ndim - 1), True, 0, out, 1)


def _private_fft_axis(z, axis, forward):
    return _pocketfft.c2c(z, (axis % z.ndim,), forward, 0, z, 1)


def _private_irfft_last(z, width, out):
    return _pocketfft.c2r(z, (z.ndim - 1,), width, False, 0, out, 1)


def _private_works() -> bool:
    """The private entry points exist, write into ``out`` and agree with the public
    functions on a small odd-width batch (float32 and float64)."""
    try:
        for dtype in (np.float32, np.float64):
            x = np.random.default_rng(0).standard_normal((2, 3, 5)).astype(dtype)
            spectrum = np.empty((2, 3, 3), np.result_type(dtype, np.complex64))
            inverse = np.empty_like(x)
            if (_private_rfft2_last(x, spectrum) is not spectrum
                    or not np.allclose(spectrum, scipy.fft.rfft2(x), rtol=1e-4, atol=1e-4)
                    or _private_rfft_last(x, spectrum) is not spectrum
                    or _private_fft_axis(spectrum, -2, True) is not spectrum
                    or _private_fft_axis(spectrum, -2, False) is not spectrum
                    or _private_irfft_last(spectrum, 5, inverse) is not inverse):
                return False
            # forward then its unnormalised inverse: x times 3 (H) times 5 (W)
            if not np.allclose(inverse, 15 * x, rtol=1e-4, atol=1e-4):
                return False
            if not np.allclose(_private_rfft_last(x, spectrum), scipy.fft.rfft(x, axis=-1),
                               rtol=1e-4, atol=1e-4):
                return False
    except Exception:  # noqa: BLE001 (any failure: the private API is not what we know)
        return False
    return True


try:
    from scipy.fft._pocketfft import pypocketfft as _pocketfft
except ImportError:  # (a scipy without it)
    _pocketfft = None

# The probe compares with scipy's own backend (pocketfft), not one the user registered
# (scipy.fft.set_global_backend before this import): such a backend failed the probe,
# and every transform then ran on it, where importing the layers first would have kept
# pocketfft (a backend refusing numpy arrays raised in fft_abs and the FFT convs, native
# ran; hostile pass 151). With it in force the layers run pocketfft as they do always.
with scipy.fft.set_backend("scipy", only=True):
    PRIVATE = _pocketfft is not None and _private_works()
# The entry points, bound to the private or the public versions once (no wrapper frame
# per call: a Python call costs 1-2 us inside an autograd call on the README's VM):
# rfft_last(x, out): rfft along the last axis of real x into complex out (..., W//2+1),
#   which must not overlap x; rfft2_last(x, out): the same over the last two axes;
# fft_axis(z, axis, forward): the unnormalised DFT of complex z along axis (forward:
#   e^-i, else e^+i without 1/n), in place; irfft_last(z, width, out): the unnormalised
#   inverse rfft (no 1/n) of complex z along its last axis, width real points, into out.
# Each returns its out (fft_axis: z).
rfft_last, rfft2_last, fft_axis, irfft_last = (
    (_private_rfft_last, _private_rfft2_last, _private_fft_axis, _private_irfft_last) if PRIVATE
    else (_public_rfft_last, _public_rfft2_last, _public_fft_axis, _public_irfft_last))


def _zero_padded(a: np.ndarray, n: int, axis: int) -> np.ndarray:
    """``a`` cut (a copy) or zero-padded to ``n`` along ``axis``, as scipy.fft's
    _fix_shape_1d."""
    axis %= a.ndim
    if a.shape[axis] >= n:
        return a if a.shape[axis] == n else np.take(a, np.arange(n), axis=axis)
    padded = np.zeros((*a.shape[:axis], n, *a.shape[axis + 1:]), a.dtype)
    padded[(slice(None),) * axis + (slice(0, a.shape[axis]),)] = a
    return padded


def _private_rfft_n(x, n, axis):
    return _pocketfft.r2c(_zero_padded(x, n, axis), (axis % x.ndim,), True, 0, None, 1)


def _private_fft_n(z, n, axis):
    padded = _zero_padded(z, n, axis)
    return _pocketfft.c2c(padded, (axis % z.ndim,), True, 0, padded if padded is not z else None,
                          1)


def _private_ifft(z, axis):
    return _pocketfft.c2c(z, (axis % z.ndim,), False, 2, None, 1)  # (2: the 1 / n)


def _private_irfft_n(z, n, axis):
    return _pocketfft.c2r(_zero_padded(z, n // 2 + 1, axis), (axis % z.ndim,), n, False, 2,
                          None, 1)


def _public_rfft_n(x, n, axis):
    return scipy.fft.rfft(x, n=n, axis=axis)


def _public_fft_n(z, n, axis):
    return scipy.fft.fft(z, n=n, axis=axis)


def _public_ifft(z, axis):
    return scipy.fft.ifft(z, axis=axis)


def _public_irfft_n(z, n, axis):
    return scipy.fft.irfft(z, n=n, axis=axis)


# scipy.fft.rfft(x, n=n, axis=axis), fft(z, n=n, axis=axis), ifft(z, axis=axis) and
# irfft(z, n=n, axis=axis) of real float32 / float64 x and complex64 / complex128 z in
# native byte order, n >= 1, axis one of the array's: fresh results. No checks (a hot
# path; _fft_conv's callers meet these): outside them the private calls neither raise
# as scipy.fft does nor return its values (a hostile pass: n < 1 gives garbage, ifft
# wraps an out-of-range axis, other dtypes raise RuntimeError).
rfft_n, fft_n, ifft, irfft_n = (
    (_private_rfft_n, _private_fft_n, _private_ifft, _private_irfft_n) if PRIVATE
    else (_public_rfft_n, _public_fft_n, _public_ifft, _public_irfft_n))


_COMPLEX_OF = {np.dtype(np.float32): np.dtype(np.complex64),
               np.dtype(np.float64): np.dtype(np.complex128)}


def complex_of(real_dtype: np.dtype) -> np.dtype:
    """The complex dtype of a real one's transform: a dict lookup for float32 and float64
    (0.06 us against ``np.result_type``'s 1.2 in a loop, more inside an autograd call)."""
    return _COMPLEX_OF.get(real_dtype) or np.result_type(real_dtype, np.complex64)


def rfft2(x: np.ndarray) -> np.ndarray:
    """rfft2 of real ``x`` (..., H, W) over its last two axes, in a workspace scratch
    array (..., H, W // 2 + 1) that the caller may recycle() once done with it."""
    spectrum = scratch((*x.shape[:-1], x.shape[-1] // 2 + 1), complex_of(x.dtype))
    return rfft2_last(x, spectrum)


# Up to this many bytes of spectrum, rfft2_adjoint makes one pocketfft call over both
# axes (pocketfft's c2r runs the c2c along H into a temporary array of the spectrum's
# size, then the c2r: the same arithmetic, the same bits, checked by the tests); above
# it, two calls in place, so that no temporary is made: a fresh array past malloc's
# mmap threshold (128 KiB at start-up) page-faults on every call. One call less is ~5 us
# of a 16x16 forward+backward inside autograd (Zen 3, rotated batches).
ONE_CALL_ADJOINT_MAX_BYTES = 1 << 16


def rfft2_adjoint(spectrum: np.ndarray, width: int) -> np.ndarray:
    """irfft2 of ``spectrum`` to ``width`` columns without its 1 / (H W) (scipy.fft's
    ``norm="forward"``), in a workspace output() array; may overwrite ``spectrum``."""
    result = output((*spectrum.shape[:-1], width), spectrum.real.dtype)
    if PRIVATE and spectrum.nbytes <= ONE_CALL_ADJOINT_MAX_BYTES:
        return _pocketfft.c2r(spectrum, (spectrum.ndim - 2, spectrum.ndim - 1), width, False,
                              0, result, 1)
    return irfft_last(fft_axis(spectrum, -2, False), width, result)
