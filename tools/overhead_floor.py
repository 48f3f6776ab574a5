#!/usr/bin/env python3
"""The fixed cost of a numpy/scipy layer call, against native torch, at small sizes:

    python tools/overhead_floor.py [--sizes 16 64] [--kernels 3] [--dtype float32]

Times forward+backward (one process, torch at one thread, interleaved batches whose
order rotates, so that each implementation follows every other equally often: what ran
just before moves a small call's time; medians) of: native torch; a *null* numpy layer
(an autograd.Function with the same arguments as the layer, whose forward and backward
only move the tensors to numpy and back, doing no arithmetic: the floor any numpy layer
pays, torch's Function machinery included); *kernels only* (a plain Function that runs
the layer's own numpy/scipy kernels for the method "auto" picks, finiteness routing
included, without argument checks, backend routing or the state plumbing: the floor of
this layer's arithmetic); and the project's layer. Where "kernels only" is as slow as
native, no cut of the layer's fixed cost can make it faster than native at that size:
that is the floor analysis of issue 13.
"""
from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from rotated_batches import batch_times  # noqa: E402  (tools/, this script's folder)
from benchmarks.common import settle_allocator  # noqa: E402
from scipy_layers import fft_abs, native_conv2d, native_fft_abs, scipy_conv2d  # noqa: E402
from scipy_layers import _dft_axes, conv, fft  # noqa: E402
from scipy_layers._numpy_bridge import to_numpy, to_tensor  # noqa: E402
from scipy_layers.conv_methods import METHODS  # noqa: E402


class NullConv(torch.autograd.Function):
    """The numpy round trip of the single-channel conv, without the convolution."""

    @staticmethod
    def forward(ctx, x, w, b):
        out = to_numpy(x)[: x.shape[0] - w.shape[0] + 1, : x.shape[1] - w.shape[1] + 1]
        return to_tensor(out.copy(), like=x)

    @staticmethod
    def backward(ctx, g):
        return None, None, to_tensor(np.array(to_numpy(g).sum()).reshape(1, 1), like=g)


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


def medians(functions: dict, batches: int = 40, per_batch: int = 20) -> dict:
    return {name: statistics.median(times)
            for name, times in batch_times(functions, batches, per_batch).items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[16, 64])
    parser.add_argument("--kernels", type=int, nargs="+", default=[3],
                        help="square conv kernel sizes (the FFT layer has none)")
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    parser.add_argument("--batches", type=int, default=40, help="timed batches per row")
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)  # the same inputs every run ("auto" may look at the values)
    settle_allocator()  # malloc as the suite's timing processes have it
    dtype = getattr(torch, args.dtype)
    print(f"{args.dtype}, torch {torch.__version__} at 1 thread; forward+backward medians (us)\n")
    print("| layer | N | native | null numpy layer | kernels only | layer | null / native | "
          "kernels only / native | layer / native |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for n in args.sizes:
        x = torch.randn(n, n, dtype=dtype, requires_grad=True)
        gf = torch.randn(n, n // 2 + 1, dtype=dtype)
        rows = {}
        for k in (k for k in args.kernels if k <= n):
            w = torch.randn(k, k, dtype=dtype, requires_grad=True)
            b = torch.randn(1, 1, dtype=dtype, requires_grad=True)
            g = torch.randn(n - k + 1, n - k + 1, dtype=dtype)
            rows[f"conv2d {k}x{k}"] = {
                "native": lambda w=w, b=b, g=g: torch.autograd.grad(native_conv2d(x, w, b), (x, w, b), g),
                "null": lambda w=w, b=b, g=g: torch.autograd.grad(NullConv.apply(x, w, b), (b,), g),
                "kernels": lambda w=w, b=b, g=g: torch.autograd.grad(KernelsOnlyConv.apply(x, w, b),
                                                                     (x, w, b), g),
                "layer": lambda w=w, b=b, g=g: torch.autograd.grad(scipy_conv2d(x, w, b), (x, w, b), g)}
        rows["fft_abs"] = {
            "native": lambda: torch.autograd.grad(native_fft_abs(x), x, gf),
            "null": lambda: torch.autograd.grad(NullFFT.apply(x), x, gf),
            "kernels": lambda: torch.autograd.grad(KernelsOnlyFFT.apply(x), x, gf),
            "layer": lambda: torch.autograd.grad(fft_abs(x), x, gf)}
        for layer, functions in rows.items():
            t = medians(functions, batches=args.batches)
            print(f"| {layer} | {n} | {t['native'] * 1e6:.1f} | {t['null'] * 1e6:.1f} | "
                  f"{t['kernels'] * 1e6:.1f} | {t['layer'] * 1e6:.1f} | "
                  f"{t['null'] / t['native']:.2f} | {t['kernels'] / t['native']:.2f} | "
                  f"{t['layer'] / t['native']:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
