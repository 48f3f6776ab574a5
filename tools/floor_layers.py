"""Two floors for each layer, called as the layer is (tools/overhead_floor.py and
tools/targets.py --floors time them beside the layer and native):

- *null*: an autograd Function with the layer's arguments whose forward and backward
  only move the tensors to numpy and back, giving outputs and gradients of the right
  shapes and doing no arithmetic: what any numpy layer pays, torch's Function machinery
  included;
- *kernels only*: a plain Function that runs the layer's own numpy/scipy kernels for
  the method "auto" picks (finiteness routing included, as it is part of the kernels),
  without argument checks, backend routing, forward state or torch protocol checks: the
  floor of this layer's arithmetic. Its values and gradients equal the layer's
  (tests/test_overhead_floor.py).

A third, *hot*, is not a layer (:func:`hot_call`): the kernels-only floor's forward and
backward called as plain functions, no autograd around them: the kernels' own work and
their tensors' round trips to numpy, without torch's Function, graph and engine.

Where "kernels only" is as slow as native, no cut of the layer's fixed cost can make it
faster than native; where "null" is, no numpy layer can be.

Timing instruments, not layers: they leave out what the layer promises beyond its
values (no argument checks; numpy's warnings on non-finite values are not silenced; an
input changed in place between forward and backward is not detected).
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from scipy_layers import _dft_axes, _fft_args, conv, fft, nn  # noqa: E402
from scipy_layers._forward_state import ForwardState  # noqa: E402
from scipy_layers._nchw_args import check_conv2d_arguments, output_channels  # noqa: E402
from scipy_layers._nchw_rule import choose_nchw_method  # noqa: E402
from scipy_layers._numpy_bridge import (computes_directly, shape_only, to_numpy,  # noqa: E402
                                        to_tensor)
from scipy_layers._workspace import recycle_when_dead  # noqa: E402
from scipy_layers.conv_methods import METHODS  # noqa: E402


class _Owner:
    """Dies with the ctx that holds it: recycle_when_dead's owner for the batched
    floor's windows."""
    __slots__ = ("__weakref__",)


def _unwritten(shapes, g) -> tuple:
    """A null floor's gradients: through numpy, unwritten, of ``shapes`` (None: none)."""
    dtype = to_numpy(g).dtype
    return tuple(None if shape is None else to_tensor(np.empty(shape, dtype), like=g)
                 for shape in shapes)


class NullConv(torch.autograd.Function):
    """The numpy round trip of the single-channel conv, without the convolution: an
    output (a copy of the input's corner) and three gradients of the right shapes."""

    @staticmethod
    def forward(ctx, x, w, b=None):
        ctx.shapes = (tuple(x.shape), tuple(w.shape), None if b is None else tuple(b.shape))
        out = to_numpy(x)[: x.shape[0] - w.shape[0] + 1, : x.shape[1] - w.shape[1] + 1]
        return to_tensor(out.copy(), like=x)

    @staticmethod
    def backward(ctx, g):
        return _unwritten(ctx.shapes, g)


class NullFFT(torch.autograd.Function):
    """The numpy round trip of the FFT layer, without the transforms."""

    @staticmethod
    def forward(ctx, x):
        ctx.width = x.shape[-1]
        xn = to_numpy(x)
        return to_tensor(xn[..., : x.shape[-1] // 2 + 1].copy(), like=x)

    @staticmethod
    def backward(ctx, g):
        gn = to_numpy(g)
        out = np.zeros(gn.shape[:-1] + (ctx.width,), dtype=gn.dtype)
        return to_tensor(out, like=g)


class KernelsOnlyConv(torch.autograd.Function):
    """The single-channel layer's kernels (the method "auto" picks), nothing else."""

    @staticmethod
    def forward(ctx, x, w, b=None):
        kernels = METHODS[conv.choose_method(x.shape, w.shape, x.dtype)]
        xn, wn = to_numpy(x), to_numpy(w)
        y, state = kernels.forward(xn, wn)
        if b is not None:
            y += b.item()
        ctx.state, ctx.bias_shape = (kernels, xn, wn, state), None if b is None else b.shape
        return to_tensor(y, like=x)

    @staticmethod
    def backward(ctx, g):
        kernels, xn, wn, state = ctx.state
        gn = to_numpy(g)
        gx, gw = kernels.backward(gn, xn, wn, state, True, True)
        gb = None if ctx.bias_shape is None else to_tensor(
            np.add.reduce(gn, axis=None, keepdims=True).reshape(ctx.bias_shape), like=g)
        return to_tensor(gx, like=g), to_tensor(gw, like=g), gb


class KernelsOnlyFFT(torch.autograd.Function):
    """The FFT layer's transforms ("auto" plan, zero-bin check included), nothing else;
    its spectrum kept as the layer keeps it: in a ForwardState (back to the workspace
    when the graph node dies), which a plain backward takes atomically and writes the
    gradient spectrum over, and any other backward takes and puts back, so that two
    backwards of one graph at once never share it (a second one recomputes)."""

    @staticmethod
    def forward(ctx, x):
        spectrum, magnitude, plan = _dft_axes.transform(to_numpy(x))
        out = to_tensor(magnitude, like=x)
        ctx.forward_state = ForwardState()
        ctx.forward_state.value = ("numpy", (spectrum, plan))
        recycle_when_dead(ctx.forward_state, spectrum)
        ctx.save_for_backward(x, out)
        return out

    @staticmethod
    def backward(ctx, g):
        x, out = ctx.saved_tensors
        state = ctx.forward_state.take()
        handed_over = state is not None and computes_directly()
        try:
            return fft._fft_abs_gradient(state, g, x, out, method="auto",
                                         handed_over=handed_over)[0]
        finally:
            if state is not None and not handed_over:
                ctx.forward_state.put_back(state)


class NullNCHW(torch.autograd.Function):
    """The numpy round trip of the batched conv: an output and three gradients of the
    right shapes, unwritten."""

    @staticmethod
    def forward(ctx, x, w, b, geometry):
        xn, wn = to_numpy(x), to_numpy(w)
        ctx.shapes = (xn.shape, wn.shape, None if b is None else tuple(b.shape))
        y = np.empty((xn.shape[0], output_channels(wn.shape), *geometry.out_hw), xn.dtype)
        return to_tensor(y, like=x)

    @staticmethod
    def backward(ctx, g):
        return (*_unwritten(ctx.shapes, g), None)


class KernelsOnlyNCHW(torch.autograd.Function):
    """The batched conv's kernels for the method "auto" picks (im2col, fft, shift, with
    their finiteness routing), the window matrix kept for grad_weight and given back to
    the workspace when the graph node dies, as the layer does; nothing else."""

    @staticmethod
    def forward(ctx, x, w, b, geometry, method):
        ctx.has_bias, ctx.geometry, ctx.method = b is not None, geometry, method
        ctx.save_for_backward(x, w)
        if shape_only(x, w):  # an empty batch or channel: no kernels, as in the layer
            ctx.state = None
            return x.new_zeros(x.shape[0], output_channels(w.shape), *geometry.out_hw)
        xn, wn = to_numpy(x), to_numpy(w)
        y, state = nn._forward_kernels(xn, wn, None if b is None else to_numpy(b),
                                       geometry, method, True)
        ctx.state = (wn, state, True)
        ctx.windows_owner = _Owner()  # (dies with ctx: the windows go back then)
        recycle_when_dead(ctx.windows_owner, state[-1])
        return to_tensor(y, like=x)

    @staticmethod
    def backward(ctx, g):
        x, w = ctx.saved_tensors
        grads = nn._gradients(ctx.state, g, x, w, geometry=ctx.geometry, method=ctx.method,
                              needs=(True, True, True), has_bias=ctx.has_bias)
        return (*grads, None, None)


class _PlannedOnce:
    """A batched floor called as conv2d is, f(input, weight, bias=None, stride=1,
    padding=0, dilation=1, groups=1) on a 4-D input; the geometry (conv2d's argument
    checks) and the method "auto" picks worked out on the first call and again whenever
    the shapes, dtype or arguments change (the layer's checks are what floors leave out)."""

    def __init__(self, with_method: bool):
        self.with_method, self.key, self.plan = with_method, None, None

    def __call__(self, input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
        if input.dim() != 4:
            raise ValueError(f"the batched floors take a 4-D input (N, C_in, H, W), got "
                             f"shape {tuple(input.shape)}")
        key = (input.shape, weight.shape, None if bias is None else bias.shape, input.dtype,
               repr((stride, padding, dilation, groups)))  # (repr: lists are unhashable)
        if key != self.key:
            self.key, self.plan = key, _nchw_plan(input, weight, bias, stride, padding,
                                                  dilation, groups)
        geometry, method = self.plan
        if self.with_method:
            return KernelsOnlyNCHW.apply(input, weight, bias, geometry, method)
        return NullNCHW.apply(input, weight, bias, geometry)


def _nchw_plan(input, weight, bias, stride=1, padding=0, dilation=1, groups=1):
    """(geometry, method "auto" picks) of a batched call: conv2d's argument checks."""
    geometry = check_conv2d_arguments(input, weight, bias, stride, padding, dilation, groups)
    return geometry, choose_nchw_method(input.shape, weight.shape, geometry.stride,
                                        geometry.dilation, geometry.groups, input.dtype,
                                        geometry.padding)


class _Context:
    """Stands in for autograd's ctx where a kernels-only Function's forward and backward
    run as plain calls (the hot floor)."""

    def save_for_backward(self, *tensors):
        self.saved_tensors = tensors


def hot_call(kind: str, inputs, options: dict, grad_output):
    """The *hot* floor of a case: a callable that runs one forward and one backward of
    the kernels-only floor as plain calls, with no autograd around them (no Function,
    no graph, no engine), gradients off as inside autograd: the kernels' arithmetic and
    numpy round trips (tensors to numpy and back) alone. The kernels-only floor's excess
    over it is what calling the same kernels through torch's autograd costs: the
    Function and engine, and the two evicting each other's code from the CPU's caches on
    every call (docs/performance.md, tenth session)."""
    inputs = tuple(inputs)
    if kind not in ("conv", "fft", "cnn"):
        raise ValueError(f"no hot floor for case kind {kind!r}; expected 'conv', 'fft' or "
                         f"'cnn'")
    counts = {"conv": (2, 3), "fft": (1, 1), "cnn": (2, 3)}[kind]
    if not counts[0] <= len(inputs) <= counts[1]:
        allowed = str(counts[0]) if counts[0] == counts[1] else f"{counts[0]} or {counts[1]}"
        raise ValueError(f"the {kind} hot floor takes {allowed} input tensors, as its layer "
                         f"does, got {len(inputs)}")
    if kind != "cnn" and options:
        raise ValueError(f"the {kind} hot floor takes no options, got {sorted(options)}")
    if kind == "conv":
        x, w, *rest = inputs
        conv.check_conv_arguments(x, w, rest[0] if rest else None)
        function, arguments = KernelsOnlyConv, inputs
        output_shape = (x.shape[0] - w.shape[0] + 1, x.shape[1] - w.shape[1] + 1)
    elif kind == "fft":
        (x,) = inputs
        fft.check_fft_input(x)
        function, arguments = KernelsOnlyFFT, inputs
        output_shape = _fft_args.rfft2_shape(x)
    else:
        input, weight, *rest = inputs
        if not isinstance(input, torch.Tensor) or input.dim() != 4:
            raise ValueError(f"the batched hot floor takes a 4-D input (N, C_in, H, W), got "
                             f"{getattr(input, 'shape', type(input).__name__)}")
        bias = rest[0] if rest else None
        geometry, method = _nchw_plan(input, weight, bias, **options)
        function, arguments = KernelsOnlyNCHW, (input, weight, bias, geometry, method)
        output_shape = (input.shape[0], output_channels(weight.shape), *geometry.out_hw)
    if not (isinstance(grad_output, torch.Tensor) and grad_output.dtype == inputs[0].dtype
            and tuple(grad_output.shape) == tuple(output_shape)):
        raise ValueError(f"the {kind} hot floor's grad_output must be a {inputs[0].dtype} "
                         f"tensor of the output's shape {tuple(output_shape)}, got "
                         f"{getattr(grad_output, 'dtype', type(grad_output).__name__)} "
                         f"{tuple(getattr(grad_output, 'shape', ()))}")

    def call():
        context = _Context()  # (dies with the call: kept windows go back to the workspace)
        with torch.no_grad():
            function.forward(context, *arguments)
            return function.backward(context, grad_output)

    return call


def floor_functions(kind: str) -> dict:
    """{'null': ..., 'kernels': ...} for a tools/side_by_side.py case kind ('conv',
    'fft' or 'cnn'), each called as that layer is."""
    if kind == "conv":
        return {"null": NullConv.apply, "kernels": KernelsOnlyConv.apply}
    if kind == "fft":
        return {"null": NullFFT.apply, "kernels": KernelsOnlyFFT.apply}
    if kind == "cnn":
        return {"null": _PlannedOnce(with_method=False), "kernels": _PlannedOnce(with_method=True)}
    raise ValueError(f"no floors for case kind {kind!r}; expected 'conv', 'fft' or 'cnn'")
