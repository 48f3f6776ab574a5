"""The tutorial's FFT layer ``|rfft2(x)|``: its knowingly wrong version, a correct one,
and the native torch twin.

All three take a real tensor of shape (..., H, W) and return |rfft2(x)| of shape
(..., H, W // 2 + 1), transformed over the last two dims.
"""
from __future__ import annotations

import numpy as np
import scipy.fft
import torch
from torch.autograd import Function

from . import gpu
from ._checks import check_float_tensor
from ._numpy_bridge import numpy_backward, to_numpy, to_tensor
from ._spectral import mirror_weights


class BadFFTFunction(Function):
    """The tutorial's ``abs(rfft2(x))`` whose backward is knowingly NOT the gradient.

    Forward is correct. Backward returns ``irfft2(grad_output)`` as the tutorial does:
    it ignores the phase of rfft2(x) (the derivative of |z| is z/|z|, not 1), ignores the
    halved weight of the mirrored columns and the H*W scale of ``irfft2``. The result is
    off by about 100% of the true gradient's norm. Only the output width is fixed here
    (``s=`` the input shape) so that odd widths get a gradient of the input's shape.
    Use :func:`fft_abs` for the true gradient.
    """

    @staticmethod
    def forward(ctx, input):
        check_float_tensor("input", input, min_ndim=2)
        ctx.spatial_shape = tuple(input.shape[-2:])
        ctx.save_for_backward(input)  # only so that double backward can raise clearly
        # numpy.fft, as in the tutorial (it computes in float64 whatever the input).
        result = np.abs(np.fft.rfft2(to_numpy(input)))
        return to_tensor(result, like=input)

    @staticmethod
    @numpy_backward
    def backward(ctx, grad_output):
        result = np.fft.irfft2(to_numpy(grad_output), s=ctx.spatial_shape)
        return to_tensor(result, like=grad_output)


def incorrect_fft(input: torch.Tensor) -> torch.Tensor:
    """``|rfft2(input)|`` through :class:`BadFFTFunction` (wrong gradient, on purpose)."""
    gpu.warn_no_gpu_path_once(input, "incorrect_fft (the tutorial's BadFFTFunction)")
    return BadFFTFunction.apply(input)


class FFTAbsFunction(Function):
    """``|rfft2(x)|`` over the last two dims with its true gradient, on ``scipy.fft``.

    With Z = rfft2(x) (shape (..., H, W//2+1)), y = |Z| and g = dL/dy:

        dL/dx = irfft2(c * g * Z/|Z|, s=(H, W), norm="forward")

    where c_j = 1/2 for the columns 1 <= j <= (W-1)//2, which irfft2 counts twice (as
    +j and its Hermitian mirror), and c_j = 1 for column 0 and, for even W, column W/2.
    ``norm="forward"`` undoes irfft2's 1/(H*W). Z/|Z| is taken as 0 where |Z| = 0, as
    torch's ``sgn(0) = 0``, so the gradient is defined everywhere.
    scipy.fft keeps float32 in single precision (numpy.fft would compute in float64).
    CUDA tensors run on CuPy where usable (:mod:`scipy_layers.gpu`), with the same formula.
    """

    @staticmethod
    def forward(ctx, input):
        check_float_tensor("input", input, min_ndim=2)
        ctx.backend = gpu.resolve_backend(input)
        if ctx.backend == gpu.CUPY:
            return gpu.fft_abs_forward(ctx, input)
        spectrum = scipy.fft.rfft2(to_numpy(input))
        magnitude = np.abs(spectrum)
        ctx.spectrum = spectrum
        ctx.magnitude = magnitude
        ctx.spatial_shape = tuple(input.shape[-2:])
        ctx.save_for_backward(input)  # only so that double backward can raise clearly
        return to_tensor(magnitude, like=input)

    @staticmethod
    @numpy_backward
    def backward(ctx, grad_output):
        if ctx.backend == gpu.CUPY:
            return gpu.fft_abs_backward(ctx, grad_output)
        spectrum, magnitude = ctx.spectrum, ctx.magnitude
        height, width = ctx.spatial_shape
        weights = mirror_weights(np, spectrum.shape[-1], width, magnitude.dtype)
        # c * g / |Z| as a real array (0 where |Z| = 0), then one complex-by-real product:
        # cheaper than dividing the complex spectrum by |Z|. The inverse is done as an
        # inverse FFT along H, then a real one along W (the same transform as irfft2).
        scale = np.divide(to_numpy(grad_output) * weights, magnitude,
                          out=np.zeros_like(magnitude), where=magnitude != 0)
        grad_spectrum = scipy.fft.ifft(spectrum * scale, axis=-2, norm="forward", overwrite_x=True)
        grad_input = scipy.fft.irfft(grad_spectrum, n=width, axis=-1, norm="forward",
                                     overwrite_x=True)
        return to_tensor(grad_input, like=grad_output)


def fft_abs(input: torch.Tensor) -> torch.Tensor:
    """``|rfft2(input)|`` over the last two dims, with the true gradient."""
    return FFTAbsFunction.apply(input)


def native_fft_abs(input: torch.Tensor) -> torch.Tensor:
    """The native twin: ``torch.fft.rfft2(input).abs()``, differentiated by autograd."""
    check_float_tensor("input", input, min_ndim=2)
    return torch.fft.rfft2(input).abs()
