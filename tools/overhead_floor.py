#!/usr/bin/env python3
"""The fixed cost of a numpy/scipy layer call, against native torch, at small sizes:

    python tools/overhead_floor.py [--sizes 16 64] [--kernels 3] [--dtype float32]

Times forward+backward (one process, torch at one thread, interleaved batches, medians)
of: native torch; a *null* numpy layer (an autograd.Function with the same arguments as
the layer, whose forward and backward only move the tensors to numpy and back, doing no
arithmetic: the floor any numpy layer pays, torch's Function machinery included); and
the project's layer. Where the null layer alone is as slow as native, no kernel can make
the layer faster than native at that size: that is the floor analysis of issue 13.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from scipy_layers import fft_abs, native_conv2d, native_fft_abs, scipy_conv2d  # noqa: E402
from scipy_layers._numpy_bridge import to_numpy, to_tensor  # noqa: E402


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


def medians(functions: dict, batches: int = 40, per_batch: int = 20) -> dict:
    for f in functions.values():
        f()
        f()
    times = {name: [] for name in functions}
    for _ in range(batches):
        for name, f in functions.items():  # interleaved: drift hits all alike
            start = time.perf_counter()
            for _ in range(per_batch):
                f()
            times[name].append((time.perf_counter() - start) / per_batch)
    return {name: statistics.median(v) for name, v in times.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[16, 64])
    parser.add_argument("--kernels", type=int, nargs="+", default=[3],
                        help="square conv kernel sizes (the FFT layer has none)")
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    args = parser.parse_args()
    torch.set_num_threads(1)
    np.empty(24 * 2**20, dtype=np.uint8)  # settle malloc as the suite does
    dtype = getattr(torch, args.dtype)
    print(f"{args.dtype}, torch {torch.__version__} at 1 thread; forward+backward medians (us)\n")
    print("| layer | N | native | null numpy layer | layer | null / native | layer / native |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
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
                "layer": lambda w=w, b=b, g=g: torch.autograd.grad(scipy_conv2d(x, w, b), (x, w, b), g)}
        rows["fft_abs"] = {
            "native": lambda: torch.autograd.grad(native_fft_abs(x), x, gf),
            "null": lambda: torch.autograd.grad(NullFFT.apply(x), x, gf),
            "layer": lambda: torch.autograd.grad(fft_abs(x), x, gf)}
        for layer, functions in rows.items():
            t = medians(functions)
            print(f"| {layer} | {n} | {t['native'] * 1e6:.1f} | {t['null'] * 1e6:.1f} | "
                  f"{t['layer'] * 1e6:.1f} | {t['null'] / t['native']:.2f} | "
                  f"{t['layer'] / t['native']:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
