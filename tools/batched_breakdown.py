#!/usr/bin/env python3
"""Where the batched conv's forward+backward time goes, against native's whole call, in one
process, torch pinned to one thread (numpy's BLAS is too, through threadpoolctl):

    python tools/batched_breakdown.py [--dtype float32] [--repeats 30]

For each CNN shape of the suite (benchmarks/bench_conv2d_nchw.py), the median time of
native F.conv2d forward+backward, of scipy_layers.conv2d (method im2col) forward+backward,
and of the three GEMMs alone that im2col runs (forward W @ cols, grad_weight gy @ cols^T
or its transpose, grad_cols W^T @ gy, on arrays of the same shapes), so that "the GEMMs
alone take longer than native's whole forward+backward" can be checked instead of
assumed. Prints a markdown table and the BLAS library and kernel in force.
"""
from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import numpy as np
import threadpoolctl
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.bench_conv2d_nchw import OUTPUT_CHANNELS  # noqa: E402
from benchmarks.common import settle_allocator  # noqa: E402
from calibrate import time_calls  # noqa: E402  (this folder: the script's own)
from scipy_layers import conv2d  # noqa: E402
from scipy_layers._im2col_grads import _grad_weight  # noqa: E402
from help_text import description  # (tools/, this script's folder)

CASES = [("8x3x32x32", 3), ("8x3x32x32", 7), ("8x16x32x32", 3), ("1x64x56x56", 3),
         ("1x3x224x224", 7), ("8x16x32x32", 7), ("1x64x56x56", 7)]


def median_time(fn, repeats: int) -> float:
    """Median seconds of ``repeats`` calls, after two warm-up calls."""
    fn()
    return statistics.median(time_calls(fn, repeats))  # which warms up once more


def gemms(n, c_in, c_out, k, out_h, out_w, dtype):
    """The three matmuls of im2col at stride 1 (L = Ho * Wo columns per image; grad_input's
    may run on Ho * Wp, see GRAD_INPUT_WIDE_MAX_EXTRA), grad_weight's by the kernels' own
    _grad_weight (its GEMM in the orientation they take for the dtype, the sum over
    images)."""
    rng = np.random.default_rng(0)
    w = rng.standard_normal((c_out, c_in * k * k)).astype(dtype)
    cols = rng.standard_normal((n, 1, c_in * k * k, out_h * out_w)).astype(dtype)
    gy = rng.standard_normal((n, 1, c_out, out_h * out_w)).astype(dtype)

    def run():
        np.matmul(w, cols)
        _grad_weight(gy, cols, (c_out, c_in, k, k))
        np.matmul(w.T, gy)
    return run


def main() -> int:
    parser = argparse.ArgumentParser(description=description(__doc__))
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()
    torch.set_num_threads(1)
    settle_allocator()  # malloc as the suite's timing processes have it
    dtype = getattr(torch, args.dtype)
    with threadpoolctl.threadpool_limits(1):
        blas = [f"{i['internal_api']} {i.get('version')} {i.get('architecture')}"
                for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas"]
        print(f"{args.dtype}, torch {torch.__version__} 1 thread, BLAS: {', '.join(blas)}\n")
        print("| input | kernel | native fwd+bwd (ms) | im2col fwd+bwd (ms) | ratio | "
              "its 3 GEMMs (ms) | GEMMs / native |")
        print("| --- | --- | --- | --- | --- | --- | --- |")
        for size, k in CASES:
            n, c_in, h, w = (int(v) for v in size.split("x"))
            c_out = OUTPUT_CHANNELS[size]
            x = torch.randn(n, c_in, h, w, dtype=dtype, requires_grad=True)
            weight = torch.randn(c_out, c_in, k, k, dtype=dtype, requires_grad=True)
            bias = torch.randn(c_out, dtype=dtype, requires_grad=True)
            out = F.conv2d(x, weight, bias)
            grad = torch.randn_like(out)

            def fwd_bwd(fn):
                return lambda: torch.autograd.grad(fn(x, weight, bias), (x, weight, bias), grad)

            native = median_time(fwd_bwd(F.conv2d), args.repeats)
            ours = median_time(fwd_bwd(lambda *a: conv2d(*a, method="im2col")), args.repeats)
            blas_only = median_time(gemms(n, c_in, c_out, k, out.shape[2], out.shape[3],
                                          np.dtype(args.dtype)), args.repeats)
            print(f"| {size} | {k}x{k} | {native * 1e3:.2f} | {ours * 1e3:.2f} | "
                  f"{ours / native:.2f} | {blas_only * 1e3:.2f} | {blas_only / native:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
