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

Where "kernels only" is as slow as native, no cut of the layer's fixed cost can make it
faster than native; where "null" is, no numpy layer can be.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from scipy_layers import _dft_axes, conv, fft, nn  # noqa: E402
from scipy_layers._nchw_args import check_conv2d_arguments  # noqa: E402
from scipy_layers._nchw_rule import choose_nchw_method  # noqa: E402
from scipy_layers._numpy_bridge import to_numpy, to_tensor  # noqa: E402
from scipy_layers._workspace import recycle_when_dead  # noqa: E402
from scipy_layers.conv_methods import METHODS  # noqa: E402


class NullConv(torch.autograd.Function):
    """The numpy round trip of the single-channel conv, without the convolution: an
    output (a copy of the input's corner) and three gradients of the right shapes."""

    @staticmethod
    def forward(ctx, x, w, b):
        ctx.shapes = (tuple(x.shape), tuple(w.shape), tuple(b.shape))
        out = to_numpy(x)[: x.shape[0] - w.shape[0] + 1, : x.shape[1] - w.shape[1] + 1]
        return to_tensor(out.copy(), like=x)

    @staticmethod
    def backward(ctx, g):
        gn = to_numpy(g)
        return tuple(to_tensor(np.empty(shape, gn.dtype), like=g) for shape in ctx.shapes)


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
    def forward(ctx, x, w, b):
        kernels = METHODS[conv.choose_method(x.shape, w.shape, x.dtype)]
        xn, wn = to_numpy(x), to_numpy(w)
        y, state = kernels.forward(xn, wn)
        y += b.item()
        ctx.state = (kernels, xn, wn, state)
        return to_tensor(y, like=x)

    @staticmethod
    def backward(ctx, g):
        kernels, xn, wn, state = ctx.state
        gn = to_numpy(g)
        gx, gw = kernels.backward(gn, xn, wn, state, True, True)
        return (to_tensor(gx, like=g), to_tensor(gw, like=g),
                to_tensor(gn.sum(keepdims=True), like=g))


class KernelsOnlyFFT(torch.autograd.Function):
    """The FFT layer's transforms ("auto" plan, zero-bin check included), nothing else."""

    @staticmethod
    def forward(ctx, x):
        spectrum, magnitude, plan = _dft_axes.transform(to_numpy(x))
        out = to_tensor(magnitude, like=x)
        ctx.state = (spectrum, plan)
        ctx.save_for_backward(x, out)
        return out

    @staticmethod
    def backward(ctx, g):
        x, out = ctx.saved_tensors
        return fft._fft_abs_gradient(("numpy", ctx.state), g, x, out, method="auto")[0]


class NullNCHW(torch.autograd.Function):
    """The numpy round trip of the batched conv: an output and three gradients of the
    right shapes, unwritten."""

    @staticmethod
    def forward(ctx, x, w, b, geometry):
        xn, wn = to_numpy(x), to_numpy(w)
        ctx.shapes = (xn.shape, wn.shape, None if b is None else tuple(b.shape))
        y = np.empty((xn.shape[0], wn.shape[0], *geometry.out_hw), xn.dtype)
        return to_tensor(y, like=x)

    @staticmethod
    def backward(ctx, g):
        gn = to_numpy(g)
        return (*(None if shape is None else to_tensor(np.empty(shape, gn.dtype), like=g)
                  for shape in ctx.shapes), None)


class KernelsOnlyNCHW(torch.autograd.Function):
    """The batched conv's kernels for the method "auto" picks (im2col, fft, shift, with
    their finiteness routing), the window matrix kept for grad_weight and given back to
    the workspace when the graph node dies, as the layer does; nothing else."""

    @staticmethod
    def forward(ctx, x, w, b, geometry, method):
        xn, wn = to_numpy(x), to_numpy(w)
        y, state = nn._forward_kernels(xn, wn, None if b is None else to_numpy(b),
                                       geometry, method, True)
        ctx.state, ctx.geometry, ctx.method = (wn, state, True), geometry, method
        ctx.windows_owner = _Owner()  # (dies with ctx: the windows go back then)
        recycle_when_dead(ctx.windows_owner, state[-1])
        ctx.has_bias = b is not None
        ctx.save_for_backward(x, w)
        return to_tensor(y, like=x)

    @staticmethod
    def backward(ctx, g):
        x, w = ctx.saved_tensors
        grads = nn._gradients(ctx.state, g, x, w, geometry=ctx.geometry, method=ctx.method,
                              needs=(True, True, True), has_bias=ctx.has_bias)
        return (*grads, None, None)


class _Owner:
    __slots__ = ("__weakref__",)


def _nchw_plan(x, w, b, options):
    """(geometry, method) of conv2d(x, w, b, **options), as the layer works them out."""
    geometry = check_conv2d_arguments(x, w, b, options.get("stride", 1),
                                      options.get("padding", 0), options.get("dilation", 1),
                                      options.get("groups", 1))
    method = choose_nchw_method(x.shape, w.shape, geometry.stride, geometry.dilation,
                                geometry.groups, x.dtype, geometry.padding)
    return geometry, method


class _PlannedOnce:
    """A batched floor as conv2d is called, f(x, w, b, **options) on a 4-D input; the
    geometry and method worked out on the first call and reused while the shapes,
    dtype and options stay (the layer's checks are what the floors leave out)."""

    def __init__(self, with_method: bool):
        self.with_method, self.key, self.plan = with_method, None, None

    def __call__(self, x, w, b=None, **options):
        key = (x.shape, w.shape, None if b is None else b.shape, x.dtype,
               tuple(sorted(options.items())))
        if key != self.key:
            self.key, self.plan = key, _nchw_plan(x, w, b, options)
        geometry, method = self.plan
        if self.with_method:
            return KernelsOnlyNCHW.apply(x, w, b, geometry, method)
        return NullNCHW.apply(x, w, b, geometry)


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
