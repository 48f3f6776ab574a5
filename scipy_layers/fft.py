"""The tutorial's FFT layer ``|rfft2(x)|``: its knowingly wrong version (from
:mod:`scipy_layers._fft_tutorial`), a correct one, and the native torch twin.

All three take a real tensor of shape (..., H, W) and return |rfft2(x)| of shape
(..., H, W // 2 + 1), transformed over the last two dims.
"""
from __future__ import annotations

import functools

import torch
from torch.autograd import Function

from . import _dft_adjoint, _dft_axes, gpu
from ._autocast import check_twins_arguments
# (check_fft_input_fully stays importable from here, as before it moved)
from ._fft_args import (_plainly_valid, check_fft_input, check_fft_input_fully,  # noqa: F401
                        check_fft_method, rfft2_shape)
from ._fft_tutorial import BadFFTFunction, incorrect_fft  # noqa: F401 (this module's API)
from ._forward_state import as_forward_saved, check_forward_state, holders, new_forward_state
from ._func_rules import check_not_legacy_batched, vmap_of_images, vmap_rule
from ._numpy_bridge import (NumpyStep, apply_positional, computes_directly, numpy_gradients,
                            shape_only, to_numpy, to_tensor)
from ._numpy_quiet import numpy_quiet
from ._torch_protocols import (graph_break_here, opaque_to_compile, refuse_onnx,
                               torch_function_layer)
from ._fft_gradient import gradient_spectrum, phase
from ._workspace import is_large, recycle, recycle_when_dead

_has_torch_function_unary = torch._C._has_torch_function_unary


# methods every CPU call accepts as they are ("matrix" checks the lengths) and runs on numpy
_NUMPY_ONLY_METHODS = ("auto", "fft")


class FFTAbsFunction(Function):
    """``|rfft2(x)|`` over the last two dims with its true gradient, on ``scipy.fft``.

    With Z = rfft2(x) (shape (..., H, W//2+1)), y = |Z| and g = dL/dy:

        dL/dx = irfft2(c * g * Z/|Z|, s=(H, W), norm="forward")

    where c_j = 1/2 for the columns 1 <= j <= (W-1)//2, which irfft2 counts twice (as
    +j and its Hermitian mirror), and c_j = 1 for column 0 and, for even W, column W/2.
    ``norm="forward"`` undoes irfft2's 1/(H*W). Z/|Z| is taken as 0 where |Z| = 0, as
    torch's ``sgn(0) = 0``, so the gradient is defined everywhere.
    scipy.fft keeps float32 in single precision (numpy.fft did so only from numpy 2.0:
    before, it computed in float64 whatever the input).
    ``method``: per axis, scipy.fft or a DFT matrix product (:mod:`scipy_layers._dft_axes`):
    "auto" (matrices on lengths up to 128 with a prime factor above 11, where a cost
    model says they are cheaper; such calls are redone on scipy.fft where matrices could
    not match it, see ``_dft_axes.transform``), "fft" (scipy.fft on both) or "matrix"
    (matrices on both; H, W <= 128). CUDA tensors run on CuPy where usable
    (:mod:`scipy_layers.gpu`), with the same formula, whatever the method.
    Backward reuses forward's spectrum; forward's output is saved too (its magnitude), so
    changing it in place before backward raises instead of giving a wrong gradient.
    """

    # apply_positional: the leading arguments that may be tensors; those a
    # __torch_function__ handler gets (all but the ForwardState)
    TENSOR_ARGUMENTS, PUBLIC_ARGUMENTS = 1, 2
    # (for errors that send the user to the layer's native twin)
    LAYER, NATIVE_TWIN = "fft_abs", "native_fft_abs"
    NAME_IN_ERRORS = f"FFTAbsFunction ({LAYER})"  # (its gradient step's errors)
    TRACEABLE = True  # (torch.jit.trace: _numpy_bridge.traced_arguments)
    symbolic = refuse_onnx(LAYER, NATIVE_TWIN)  # (torch.onnx.export: refused)

    @classmethod
    @opaque_to_compile
    def apply(cls, input, method="auto", saved=None):
        # ``saved``: internal; torch.func passes the one made by the outermost call down.
        if saved is None:
            saved = new_forward_state()
        else:
            check_forward_state(cls, saved)
        return apply_positional(cls, input, method, saved)

    @staticmethod
    @opaque_to_compile
    @numpy_quiet
    def forward(input, method="auto", saved=None):
        # The common call (what the checks below accept, on numpy, with elements) is told
        # apart in two frames: the checks one by one cost 2-4 us of a 64x64 or 127x127
        # call. (The device through gpu's one test of it, which tests fake.)
        if (_plainly_valid(input) and input.numel() != 0 and type(method) is str
                and method in _NUMPY_ONLY_METHODS and gpu._device_type(input) == "cpu"):
            backend = gpu.NUMPY
        else:
            check_fft_input(input)
            check_fft_method(method, input)
            if shape_only(input):  # meta tensors, or an empty batch
                return input.new_zeros(rfft2_shape(input))
            backend = gpu.resolve_backend(input)
        if backend == gpu.CUPY:
            result, spectrum = gpu.fft_abs_forward(input)
        else:
            spectrum, magnitude, plan = _dft_axes.transform(to_numpy(input), method)
            result = to_tensor(magnitude, like=input)
            if saved is not None and is_large(spectrum):
                # back to the workspace when autograd frees the saved tensors (after a
                # backward without retain_graph, or with the graph; ForwardState.holder),
                # as native's saved spectrum goes: owned by the state itself, it stayed
                # until the graph died, so a loss kept without .item() held each step's
                # (hostile pass 155). (Small ones go with the graph: a holder costs.)
                recycle_when_dead(saved.new_keeper(), spectrum)
            spectrum = (spectrum, plan)  # backward's adjoint must follow forward's plan
        if saved is not None:
            saved.value = (backend, spectrum)
        return result

    @staticmethod
    @opaque_to_compile
    def setup_context(ctx, inputs, output):
        input, method, saved = inputs
        ctx.save_for_backward(input, output, *holders(saved))
        ctx.save_for_forward(input, output)
        ctx.method, ctx.forward_state = method, saved

    @staticmethod
    @opaque_to_compile
    def backward(ctx, grad_output):
        input, output = ctx.saved_tensors[:2]  # raises if either was modified in place
        # A plain backward keeps forward's spectrum and writes the gradient spectrum over
        # it (one array fewer through the cache: 3-10% of the call at 256x256 and up).
        # Every backward takes the state while it runs, so that another one of the same
        # graph (retain_graph; another thread) recomputes instead of reading it; the
        # others (create_graph, torch.func: they may run it again) put it back.
        forward_state = ctx.forward_state
        if forward_state is None:  # (forward ran under saved-tensor hooks)
            input, output = as_forward_saved(grad_output, input, output)
        # Held until this returns, taken before the state: another thread's backward of
        # this graph may free the holder meanwhile, and the spectrum must not go back to
        # the pool (to be handed out again) while this one reads or writes it.
        keeper = None if forward_state is None else forward_state.keeper
        state = None if forward_state is None else forward_state.take()
        handed_over = state is not None and state[0] != gpu.CUPY and computes_directly()
        compute = functools.partial(_fft_abs_gradient, method=ctx.method,
                                    handed_over=handed_over)
        try:
            (grad_input,) = numpy_gradients(FFTAbsFunction.NAME_IN_ERRORS, compute, state,
                                            grad_output, input, output)
        finally:
            if state is not None and not handed_over:
                forward_state.put_back(state)
        del keeper
        return grad_input, None, None

    @staticmethod
    @opaque_to_compile
    def jvp(ctx, input_tangent, *_):
        check_not_legacy_batched(FFTAbsFunction.NAME_IN_ERRORS, input_tangent)
        input, output = ctx.saved_tensors[:2]
        if input_tangent is None:
            return torch.zeros_like(output)
        state = None if ctx.forward_state is None else ctx.forward_state.value
        compute = functools.partial(_fft_abs_tangent, method=ctx.method)
        (tangent,) = NumpyStep.apply(FFTAbsFunction.NAME_IN_ERRORS, compute, state,
                                     input_tangent, input, output)
        return tangent

    @staticmethod
    @opaque_to_compile
    @vmap_rule
    def vmap(info, in_dims, input, method, saved):
        return vmap_of_images(FFTAbsFunction, in_dims, input, method)


def _spectrum_and_magnitude(forward, input, magnitude, method):
    """(spectrum, plan, |spectrum|): forward's spectrum with the output it saved, or,
    where forward kept none, both recomputed from ``input``. Never a recomputed spectrum
    with forward's magnitude: the input autograd hands back may hold other data than
    forward's (``x.data = ...`` between forward and backward, under saved-tensor hooks or
    in a retained graph's second backward), and g Z_new / |Z_old| is the gradient of
    neither (hostile pass 153: 26-196 off it, tests/test_shared_memory.py)."""
    if forward is not None:
        return (*forward, to_numpy(magnitude))
    spectrum, recomputed, plan = _dft_axes.transform(to_numpy(input), method)
    return spectrum, plan, recomputed


def _fft_abs_tangent(state, input_tangent, input, magnitude, *, method):
    """d|Z| = Re(conj(Z) rfft2(dx)) / |Z| (0 where |Z| = 0), Z = rfft2(x)."""
    if shape_only(input):
        return (torch.zeros_like(magnitude),)
    backend, forward = state if state is not None else (gpu.NUMPY, None)
    # (forward mode is rare: one numpy path, also for CUDA tensors)
    spectrum, plan, magnitude = _spectrum_and_magnitude(
        forward if backend != gpu.CUPY else None, input, magnitude, method)
    tangent = (phase(spectrum, magnitude).conj()
               * _dft_axes.rfft2(to_numpy(input_tangent), plan)).real
    return (to_tensor(tangent, like=input),)


def _fft_abs_gradient(state, grad_output, input, magnitude, *, method, handed_over=False):
    """dL/dx from forward's (backend, spectrum) (None: recomputed) and |spectrum|;
    ``handed_over``: forward's spectrum is this call's to overwrite."""
    if shape_only(input):
        return (torch.zeros_like(input),)
    backend, forward = state if state is not None else (gpu.resolve_backend(input), None)
    if backend == gpu.CUPY:
        return (gpu.fft_abs_backward(forward, grad_output, input),)
    spectrum, plan, magnitude = _spectrum_and_magnitude(forward, input, magnitude, method)
    width = input.shape[-1]
    # the weights c (see the class docstring) and the columns where they are 1, where the
    # W axis runs as irfft; none where it runs as a matrix, whose adjoint sums each
    # column once
    weights, ones = _dft_adjoint.adjoint_columns(plan, spectrum.shape[-1], width, magnitude.dtype)
    # in place where the spectrum is this call's own: handed over or recomputed here
    in_place = (handed_over or forward is None) and spectrum.flags.c_contiguous
    grad_spectrum = gradient_spectrum(spectrum, to_numpy(grad_output), weights, magnitude,
                                      out=spectrum if in_place else None, ones=ones)
    # The inverse is the adjoint of forward's transform, axis by axis (_dft_adjoint).
    grad_input = _dft_adjoint.adjoint(grad_spectrum, width, plan)  # (never a view of its input)
    if not (handed_over and grad_spectrum is spectrum):  # (forward's goes back when its
        recycle(grad_spectrum)                          # owner dies: recycle_when_dead)
    return (to_tensor(grad_input, like=grad_output),)


@graph_break_here
def fft_abs(input: torch.Tensor, method: str = "auto") -> torch.Tensor:
    """``|rfft2(input)|`` over the last two dims, with the true gradient; ``method``:
    "auto", "fft" or "matrix" (see :class:`FFTAbsFunction`)."""
    if _has_torch_function_unary(input):  # (a subclass, a mode: torch_function_layer)
        return torch_function_layer(fft_abs, (input,), input, method)
    return FFTAbsFunction.apply(input, method)


def native_fft_abs(input: torch.Tensor) -> torch.Tensor:
    """The native twin: ``torch.fft.rfft2(input).abs()``, differentiated by autograd.
    Under ``torch.autocast`` it takes a float16 / bfloat16 input, which torch's autocast
    runs in float32, as :func:`fft_abs` does."""
    if not _plainly_valid(input):
        check_twins_arguments("native_fft_abs", "fft_abs", check_fft_input_fully, input=input)
    return torch.fft.rfft2(input).abs()
