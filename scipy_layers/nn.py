"""A drop-in ``conv2d`` / ``Conv2d`` with the semantics of ``torch.nn.functional.conv2d`` /
``torch.nn.Conv2d`` (NCHW or unbatched CHW, stride, padding incl. 'same' and 'valid',
dilation, groups), computed with numpy/scipy, with gradients for input, weight and bias.
"""
from __future__ import annotations

import functools

import numpy as np
import torch
import torch.nn.functional as F
from torch.autograd import Function

from . import _nchw_kernels as kernels
from . import _kept, _nchw_fft, _nchw_shift, gpu
from ._checks import check_method_name, LayerValueError
from ._nchw_args import check_conv2d_arguments, check_padding_mode, output_channels
from ._autocast import any_autocast, autocast_devices, in_float32
from ._forward_state import (as_forward_saved, check_forward_state, holders, new_forward_state,
                             remember_inputs, state_for)
from ._func_rules import (check_not_legacy_batched, linear_tangent, vmap_by_fold, vmap_by_loop,
                          vmap_rule)
from ._numpy_bridge import apply_positional, numpy_gradients, shape_only, to_numpy, to_tensor
from ._numpy_quiet import numpy_quiet
from ._torch_protocols import (check_not_tracing, graph_break_here, never_compiled,
                               opaque_to_compile, refuse_onnx, refuse_scripting,
                               torch_function_layer)
from ._im2col_route import kept_windows_bytes
from ._memory_format import follows_channels_last, to_tensor_in_format
from ._nchw_rule import choose_nchw_method
from ._ufunc_rows import add_bias
from ._workspace import is_large, recycle, recycle_when_dead

NCHW_METHODS = ("auto", "im2col", "fft", "shift")

_has_torch_function_variadic = torch._C._has_torch_function_variadic


class Conv2dNCHWFunction(Function):
    """``F.conv2d`` on a 4-D input with already checked, normalised arguments
    (see :func:`conv2d`); ``method`` is "im2col", "fft" or "shift".

    Like F.conv2d, an empty batch gives an empty output and zero weight and bias
    gradients, and no input channels (weight (C_out, 0, kH, kW)) give an output with no
    channels (N, 0, Ho, Wo), as torch does; meta tensors give the output's shape. None
    of these touch numpy. vmap over the input alone folds the vmapped dim into the batch;
    a vmapped weight or bias runs one call per batch entry.
    """

    # apply_positional: the leading arguments that may be tensors; those a
    # __torch_function__ handler gets (all but the ForwardState)
    TENSOR_ARGUMENTS, PUBLIC_ARGUMENTS = 3, 5
    # (for errors that send the user to the layer's native twin)
    LAYER, NATIVE_TWIN = "scipy_layers.conv2d / Conv2d", "torch.nn.functional.conv2d"
    NAME_IN_ERRORS = f"Conv2dNCHWFunction ({LAYER})"  # (its gradient step's errors)
    TRACEABLE = False  # (its geometry is one input size's: _numpy_bridge.traced_arguments)
    symbolic = refuse_onnx(LAYER, NATIVE_TWIN)  # (torch.onnx.export: refused)

    @classmethod
    @opaque_to_compile
    def apply(cls, input, weight, bias, geometry, method, saved=None):
        # ``saved``: internal; torch.func passes the one made by the outermost call down.
        # Only grad_weight reads im2col's window matrix: keep it only when that is wanted
        # (a guess: backward rebuilds it if the guess was wrong).
        if saved is None:
            saved = new_forward_state(hint=torch.is_grad_enabled() and weight.requires_grad)
        else:
            check_forward_state(cls, saved)
        return apply_positional(cls, input, weight, bias, geometry, method, saved)

    @staticmethod
    @opaque_to_compile
    @numpy_quiet
    def forward(input, weight, bias, geometry, method, saved=None):
        if shape_only(input, weight):
            return input.new_zeros(input.shape[0], output_channels(weight.shape),
                                   *geometry.out_hw)
        x, w = to_numpy(input), to_numpy(weight)
        b = None if bias is None else to_numpy(bias)
        keep_windows = saved is not None and bool(saved.hint)
        count = _kept.KeptCount()  # im2col's windows, counted against _kept.KEPT_LIMIT_BYTES
        try:
            if keep_windows and method == "im2col":
                keep_windows = _kept.reserve_kept(count, kept_windows_bytes(x.shape, w.shape,
                                                                            geometry, x.itemsize))
            y, state = _forward_kernels(x, w, b, geometry, method, keep_windows)
            if saved is not None:
                saved.value = (w, state, keep_windows)
                if keep_windows and is_large(state[-1]):
                    # Counted, then back to the workspace, when autograd frees this
                    # call's saved tensors (ForwardState.holder: backward may run again
                    # under retain_graph, so not at the end of it).
                    if method == "im2col":
                        _kept.keep_until_dead(saved.new_keeper(), state[-1], count)
                    else:
                        recycle_when_dead(saved.new_keeper(), state[-1])
                if saved.keeper is None and (method == "fft" or is_large(x)):
                    # What ``value`` holds (the input's numpy view, fft's spectra) goes
                    # when autograd frees the saved tensors, as native's would: held
                    # until the graph died, a loss kept without .item() held each step's
                    # (hostile pass 155: 8x16x64x64 fft, 32 MiB a step). Not for small
                    # inputs: a holder costs a few us (ForwardState.new_keeper).
                    saved.new_keeper()
        finally:
            # what no keeper took: an error or Ctrl-C on the way, or windows below the
            # pool's floor (not counted)
            _kept.release_kept(count)
        return to_tensor_in_format(y, input, follows_channels_last(input, weight))

    @staticmethod
    @opaque_to_compile
    def setup_context(ctx, inputs, output):
        input, weight, bias, geometry, method, saved = inputs
        ctx.save_for_backward(input, weight, *holders(saved))
        ctx.save_for_forward(input, weight)
        ctx.geometry, ctx.method, ctx.has_bias = geometry, method, bias is not None
        ctx.forward_state, ctx.output_shape = saved, output.shape
        remember_inputs(ctx, input, weight)

    @staticmethod
    @opaque_to_compile
    def backward(ctx, grad_output):
        input, weight = ctx.saved_tensors[:2]  # raises if either was modified in place
        compute = functools.partial(_gradients, geometry=ctx.geometry, method=ctx.method,
                                    needs=tuple(ctx.needs_input_grad[:3]), has_bias=ctx.has_bias)
        # Held until this returns, taken before the state: another thread's backward of
        # this graph may free the holder meanwhile (ForwardState.drop), and the windows
        # must not go back to the pool (to be overwritten) while this one reads them.
        if ctx.forward_state is None:  # (forward ran under saved-tensor hooks)
            input, weight = as_forward_saved(grad_output, input, weight)
            keeper = None
        else:
            keeper = ctx.forward_state.keeper
        state = state_for(ctx, input, weight)
        grads = numpy_gradients(Conv2dNCHWFunction.NAME_IN_ERRORS, compute, state, grad_output,
                                input, weight)
        del keeper
        return (*grads, None, None, None)

    @staticmethod
    @opaque_to_compile
    def jvp(ctx, input_tangent, weight_tangent, bias_tangent, *_):
        check_not_legacy_batched(Conv2dNCHWFunction.NAME_IN_ERRORS, input_tangent, weight_tangent,
                                 bias_tangent)
        # Bilinear in (input, weight) plus bias: the tangent is the layer on the tangents.
        input, weight = ctx.saved_tensors[:2]
        conv = functools.partial(Conv2dNCHWFunction.apply, bias=None, geometry=ctx.geometry,
                                 method=ctx.method)
        has_channels = ctx.output_shape[1] != 0  # (none when C_in is 0, as in torch)
        return linear_tangent(ctx.output_shape, input, [
            (input_tangent, lambda t: conv(t, weight)),
            (weight_tangent, lambda t: conv(input, t)),
            (bias_tangent if has_channels else None, lambda t: t[:, None, None]),
        ])

    @staticmethod
    @opaque_to_compile
    @vmap_rule
    def vmap(info, in_dims, input, weight, bias, geometry, method, saved):
        x_dim, w_dim, b_dim = in_dims[:3]
        if w_dim is None and b_dim is None:  # (B, N, C, H, W) -> (B * N, C, H, W)
            x = input.movedim(x_dim, 0)
            y = vmap_by_fold(lambda folded: Conv2dNCHWFunction.apply(
                folded, weight, bias, geometry, method), x.reshape(-1, *x.shape[2:]), len(x))
            return y.reshape(*x.shape[:2], *y.shape[1:]), 0
        return vmap_by_loop(
            lambda x, w, b: Conv2dNCHWFunction.apply(x, w, b, geometry, method),
            info, in_dims[:3], (input, weight, bias))


def _forward_kernels(x, w, b, geometry, method, keep_windows):
    if method == "shift":
        return _nchw_shift.shift_forward(x, w, b, geometry)
    if method == "fft":
        y, state = _nchw_fft.fft_forward(x, w, geometry)
        if b is not None:
            add_bias(y, b)
        return y, state
    return kernels.im2col_forward(x, w, b, geometry, keep_windows)


def _gradients(state, grad_output, input, weight, *, geometry, method, needs, has_bias):
    """(grad_input, grad_weight, grad_bias), None where not needed, from forward's
    (w, kernel state, windows kept) (None: recomputed from input and weight)."""
    need_input, need_weight, need_bias = needs
    need_bias = need_bias and has_bias
    if shape_only(input, weight):  # F.conv2d's gradients: empty, or all zero
        return (torch.zeros_like(input) if need_input else None,
                torch.zeros_like(weight) if need_weight else None,
                weight.new_zeros(weight.shape[0]) if need_bias else None)
    gy = np.ascontiguousarray(to_numpy(grad_output))
    grad_x = grad_w = grad_b = None
    if need_input or need_weight:
        if state is None:
            state = (to_numpy(weight), None, False)
        w, kernel_state, kept_windows = state
        rebuilt = kernel_state is None or (method == "im2col" and need_weight and not kept_windows)
        if rebuilt and method == "shift":  # its state is the input alone: no forward to redo
            kernel_state, rebuilt = _nchw_shift.shift_state(to_numpy(input), w), False
        if rebuilt and method == "im2col":  # (the windows alone, not forward's GEMM)
            kernel_state = kernels.im2col_state(to_numpy(input), w, geometry, need_weight)
        elif rebuilt:
            _, kernel_state = _forward_kernels(to_numpy(input), w, None, geometry, method,
                                               keep_windows=need_weight)
        args = (gy, w, kernel_state, geometry, need_input, need_weight)
        if method == "im2col":  # grad_bias too where its GEMM carried the bias
            grad_x, grad_w, grad_b = kernels.im2col_backward(*args)
        else:
            backward = {"fft": _nchw_fft.fft_backward, "shift": _nchw_shift.shift_backward}
            grad_x, grad_w = backward[method](*args)
        if rebuilt and method == "im2col" and need_weight:
            recycle(kernel_state[-1])  # windows rebuilt for this call alone
    if need_bias and grad_b is None:
        grad_b = gy.sum(axis=(0, 2, 3))
    # in native's memory format, decided as native does in backward: from the tensors
    # autograd hands back (a saved-tensor hook may have changed their layout); here, on
    # plain tensors (under torch.func, NumpyStep runs this unwrapped)
    channels_last = follows_channels_last(input, weight)
    grad_input = None if grad_x is None else to_tensor_in_format(grad_x, input, channels_last)
    grad_weight = None if grad_w is None else to_tensor_in_format(grad_w, weight, channels_last)
    grad_bias = to_tensor(grad_b, like=input) if need_bias else None
    return grad_input, grad_weight, grad_bias


def _check_method_geometry(method, stride, dilation, groups, as_given=None):
    """fft and shift take stride 1, dilation 1 and groups 1 only (``as_given``: the
    caller's (stride, dilation), for the message)."""
    if method in ("fft", "shift") and (tuple(stride) != (1, 1) or tuple(dilation) != (1, 1)
                                       or groups != 1):
        stride, dilation = as_given or (stride, dilation)
        raise LayerValueError(f"method={method!r} needs stride 1, dilation 1 and groups 1; got "
                              f"stride={stride!r}, dilation={dilation!r}, groups={groups!r}")


@graph_break_here
def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, *,
           method="auto") -> torch.Tensor:
    """``torch.nn.functional.conv2d`` computed with numpy/scipy.

    Same arguments and result: input (N, C_in, H, W) or unbatched (C_in, H, W), weight
    (C_out, C_in/groups, kH, kW), bias (C_out,) or None, stride/dilation an int or pair,
    padding an int, pair, 'valid' or 'same'. ``method`` (keyword only) forces "im2col",
    "fft" or "shift"; "auto" picks by :func:`choose_nchw_method`.
    """
    if _has_torch_function_variadic(input, weight, bias):  # (see torch_function_layer)
        return torch_function_layer(conv2d, (input, weight, bias), input, weight, bias,
                                    stride, padding, dilation, groups, method=method)
    if torch.jit.is_tracing():  # (the geometry would enter the trace as constants)
        raise RuntimeError(
            "torch.jit.trace cannot record scipy_layers.conv2d / Conv2d: their output size "
            "is computed in Python and would be fixed into the trace, so an input of "
            "another height or width would give a wrong result. Use torch.compile (each "
            "call is a graph break), call the layer eagerly, or trace its native twin, "
            "torch.nn.functional.conv2d / torch.nn.Conv2d.")
    if any_autocast():  # half-precision tensors of autocast's: see in_float32
        devices = autocast_devices((input, weight, bias))
        if devices:
            return in_float32(devices, conv2d, input, weight, bias, stride, padding,
                              dilation, groups, method=method)
    check_method_name(method, NCHW_METHODS)
    geometry = check_conv2d_arguments(input, weight, bias, stride, padding, dilation, groups)
    # (the Function's forward checks too, but "auto" reads the shape first: symbolic sizes
    # of make_fx / torch.export raised "unhashable type: non-nested SymInt" in its cost
    # model, hostile pass 130)
    check_not_tracing()
    if method == "auto":  # (a method asked for by name is no surprise to warn of)
        gpu.warn_no_gpu_path_once(input, "scipy_layers.conv2d (the batched conv)")
        # (not asked where nothing runs, meta tensors or no elements: on sizes no data
        # has, the rule's scipy.fft.next_fast_len raised past ~1.45 * 2**60 and float64's
        # certificate rule made index arrays of the output's height, GiBs; helper 139)
        method = "im2col" if shape_only(input, weight) else choose_nchw_method(
            input.shape if input.dim() == 4 else (1, *input.shape),
            weight.shape, geometry.stride, geometry.dilation, groups, input.dtype,
            geometry.padding)
    else:
        _check_method_geometry(method, geometry.stride, geometry.dilation, groups,
                               (stride, dilation))
    if input.dim() == 3:
        return Conv2dNCHWFunction.apply(input[None], weight, bias, geometry, method)[0]
    return Conv2dNCHWFunction.apply(input, weight, bias, geometry, method)


class Conv2d(torch.nn.Conv2d):
    """``torch.nn.Conv2d`` (same constructor, same initialisation, same parameters)
    whose forward runs :func:`conv2d` on numpy/scipy. Only ``padding_mode='zeros'``."""

    # The default for a module whose state has no ``method``: an nn.Conv2d given this
    # class in place (``module.__class__ = scipy_layers.Conv2d``, which runs no __init__)
    method = "auto"

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0,
                 dilation=1, groups=1, bias=True, padding_mode="zeros", device=None,
                 dtype=None, *, method="auto"):
        check_padding_mode(padding_mode)
        check_method_name(method, NCHW_METHODS)
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation,
                         groups, bias, padding_mode, device, dtype)
        _check_method_geometry(method, self.stride, self.dilation, groups, (stride, dilation))
        self.method = method

    def extra_repr(self):
        return f"{super().extra_repr()}, method={self.method!r}"

    def __prepare_scriptable__(self):
        refuse_scripting(self)

    @never_compiled  # (else compiled once per weight shape: see never_compiled)
    def _conv_forward(self, input, weight, bias):
        # torch.nn.Conv2d.forward calls this, as do subclasses that convolve with a
        # changed weight (weight standardisation): both reach numpy/scipy. padding_mode
        # is checked on every call: it is a plain attribute, set after construction too.
        check_padding_mode(self.padding_mode)
        return conv2d(input, weight, bias, self.stride, self.padding, self.dilation,
                      self.groups, method=self.method)


def native_conv2d_nchw(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """The native twin: ``torch.nn.functional.conv2d`` with the same arguments."""
    return F.conv2d(input, weight, bias, stride, padding, dilation, groups)
