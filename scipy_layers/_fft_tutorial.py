"""The tutorial's FFT layer as the tutorial wrote it: ``abs(rfft2(x))`` on ``numpy.fft``,
whose backward is knowingly wrong (:class:`BadFFTFunction`, :func:`incorrect_fft`).
:mod:`scipy_layers.fft` exports them beside the correct layer and the native twin.
"""
from __future__ import annotations

import numpy as np
import torch
from torch.autograd import Function

from . import gpu
from ._fft_args import check_fft_input, rfft2_shape
from ._func_rules import vmap_of_images, vmap_rule
from ._numpy_bridge import (apply_positional, forward_mode_error, numpy_gradients, shape_only,
                            to_numpy, to_tensor)
from ._numpy_quiet import numpy_quiet
from ._torch_protocols import (graph_break_here, opaque_to_compile, refuse_onnx,
                               torch_function_layer)

_has_torch_function_unary = torch._C._has_torch_function_unary


class BadFFTFunction(Function):
    """The tutorial's ``abs(rfft2(x))`` whose backward is knowingly NOT the gradient.

    Forward is correct. Backward returns ``irfft2(grad_output)`` as the tutorial does:
    it ignores the phase of rfft2(x) (the derivative of |z| is z/|z|, not 1), ignores the
    halved weight of the mirrored columns and the H*W scale of ``irfft2``. The result is
    off by about 100% of the true gradient's norm. Only the output width is fixed here
    (``s=`` the input shape) so that odd widths get a gradient of the input's shape.
    Use :func:`fft_abs` for the true gradient.
    """

    # apply_positional: the leading arguments that may be tensors; those a
    # __torch_function__ handler gets (all but the ForwardState)
    TENSOR_ARGUMENTS, PUBLIC_ARGUMENTS = 1, 1
    # (for errors that send the user to the layer's native twin)
    LAYER, NATIVE_TWIN = "incorrect_fft", "native_fft_abs"
    NAME_IN_ERRORS = f"BadFFTFunction ({LAYER})"  # (its gradient step's errors)
    TRACEABLE = True  # (torch.jit.trace: _numpy_bridge.traced_arguments)
    symbolic = refuse_onnx(LAYER, NATIVE_TWIN)  # (torch.onnx.export: refused)

    @classmethod
    @opaque_to_compile
    def apply(cls, input):
        return apply_positional(cls, input)

    @staticmethod
    @opaque_to_compile
    @numpy_quiet
    def forward(input):
        check_fft_input(input)
        if shape_only(input):  # meta tensors, or an empty batch
            return input.new_zeros(rfft2_shape(input))
        # numpy.fft, as in the tutorial: numpy < 2.0 computes in float64 whatever the
        # input, numpy >= 2.0 keeps float32 in single precision (complex64); to_tensor
        # gives the input's dtype either way.
        result = np.abs(np.fft.rfft2(to_numpy(input)))
        return to_tensor(result, like=input)

    @staticmethod
    @opaque_to_compile
    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(inputs[0])  # for its shape, and so that misuse raises clearly

    @staticmethod
    @opaque_to_compile
    def backward(ctx, grad_output):
        (input,) = ctx.saved_tensors
        return numpy_gradients(BadFFTFunction.NAME_IN_ERRORS, _tutorial_gradient, None,
                               grad_output, input)

    @staticmethod
    @opaque_to_compile
    def jvp(ctx, input_tangent):
        raise forward_mode_error(f"BadFFTFunction ({BadFFTFunction.LAYER}, the tutorial's "
                                 f"wrong gradient)")  # (the layer called, as NAME_IN_ERRORS)

    @staticmethod
    @opaque_to_compile
    @vmap_rule
    def vmap(info, in_dims, input):
        return vmap_of_images(BadFFTFunction, in_dims, input)


def _tutorial_gradient(state, grad_output, input):
    if shape_only(input):
        return (torch.zeros_like(input),)
    result = np.fft.irfft2(to_numpy(grad_output), s=tuple(input.shape[-2:]))
    return (to_tensor(result, like=grad_output),)


@graph_break_here
def incorrect_fft(input: torch.Tensor) -> torch.Tensor:
    """``|rfft2(input)|`` through :class:`BadFFTFunction` (wrong gradient, on purpose)."""
    if _has_torch_function_unary(input):  # (a subclass, a mode: torch_function_layer)
        return torch_function_layer(incorrect_fft, (input,), input)
    gpu.warn_no_gpu_path_once(input, "incorrect_fft (the tutorial's BadFFTFunction)")
    return BadFFTFunction.apply(input)
