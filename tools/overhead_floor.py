#!/usr/bin/env python3
"""The fixed cost of a numpy/scipy layer call, against native torch, at small sizes:

    python tools/overhead_floor.py [--sizes 16 64] [--kernels 3] [--dtype float32]

Times forward+backward (one process, torch at one thread, interleaved batches in a
balanced order, so that each implementation directly follows every other equally often
(tools/rotated_batches.py): what ran just before moves a small call's time; medians) of:
native torch; the *null* numpy layer and the *kernels only* floor of
tools/floor_layers.py (no arithmetic; the layer's kernels without its checks and
plumbing); and the project's layer. Where "kernels only"
is as slow as native, no cut of the layer's fixed cost can make it faster than native
at that size: that is the floor analysis of issue 13 (tools/targets.py --floors gives
it for every target cell).
"""
from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from rotated_batches import batch_times  # noqa: E402  (tools/, this script's folder)
from benchmarks.common import settle_allocator  # noqa: E402
from scipy_layers import fft_abs, native_conv2d, native_fft_abs, scipy_conv2d  # noqa: E402
from floor_layers import KernelsOnlyConv, KernelsOnlyFFT, NullConv, NullFFT  # noqa: E402
from help_text import description  # (tools/, this script's folder)


def medians(functions: dict, batches: int = 40, per_batch: int = 20) -> dict:
    return {name: statistics.median(times)
            for name, times in batch_times(functions, batches, per_batch).items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=description(__doc__))
    parser.add_argument("--sizes", type=int, nargs="+", default=[16, 64])
    parser.add_argument("--kernels", type=int, nargs="+", default=[3],
                        help="square conv kernel sizes (the FFT layer has none)")
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    parser.add_argument("--batches", type=int, default=40, help="timed batches per row")
    args = parser.parse_args()
    if args.batches < 1:
        parser.error("--batches must be at least 1")
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
            inputs = (x, w, b)
            rows[f"conv2d {k}x{k}"] = {
                name: lambda f=f, inputs=inputs, g=g: torch.autograd.grad(f(*inputs), inputs, g)
                for name, f in (("native", native_conv2d), ("null", NullConv.apply),
                                ("kernels", KernelsOnlyConv.apply), ("layer", scipy_conv2d))}
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
