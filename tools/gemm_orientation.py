#!/usr/bin/env python3
"""Does im2col's grad_weight GEMM run in the faster orientation on this machine?

    python tools/gemm_orientation.py [--dtypes float32 float64] [--batches 8]
                                     [--cases 8x16x32x32:32:3 1x64x56x56:64:15 ...]

im2col computes grad_weight as gy @ cols^T or as (cols @ gy^T)^T, the same sums, and
grad_weight_cols_first (scipy_layers/_im2col_layout.py) picks one by the dtype and the
window matrix's row count K. Which is faster is the BLAS's and the CPU's business: the
rule's bounds were measured on one VM and disagree with another's at some K
(docs/performance.md). This times the kernels' own _grad_weight with each orientation
forced, on seeded arrays of the shapes the layer multiplies: for each case (N x C_in x
H x W input, C_out, k x k filter, stride 1, no padding, one group, a bias), the
windows (N, 1, K, L) with K = C_in k k + 1 (the bias's row of ones) and L = Ho Wo
(the narrow layout; the wide one adds up to 5% columns, and large images run the
same GEMM in bands of rows), and grad_output (N, 1, C_out, L). The two orientations
alternate in balanced batches (tools/rotated_batches.py) of ~20 ms, torch and the BLAS
libraries at one thread. Per case: each orientation's median time, cols-first /
gy-first per batch pair (median [quartiles]), the rule's pick and its *regret* (the
picked orientation's median over the faster one's). Prints markdown; writes nothing.
Default cases: the suite's CNN shapes at 3x3, 7x7 and 15x15 (benchmarks/
bench_conv2d_nchw.py). Unset OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE for reference
figures; the header names any override left set. About 30 seconds on a 2-core VM.
"""
from __future__ import annotations

import argparse
import re
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import threadpoolctl
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.bench_conv2d_nchw import KERNELS, OUTPUT_CHANNELS  # noqa: E402
from benchmarks.common import settle_allocator  # noqa: E402
from rotated_batches import batch_times  # noqa: E402  (this folder: the script's own)
from report_files import code_commit, environment_header, utc_now  # noqa: E402
from scipy_layers._im2col_grads import _grad_weight  # noqa: E402
from scipy_layers._im2col_layout import grad_weight_cols_first  # noqa: E402
from help_text import description  # (tools/, this script's folder)

BATCH_SECONDS = 0.02
MAX_BATCHES = 1000
# a case's three arrays (windows, grad_output and the GEMM's per-image products),
# refused above this together
MAX_CASE_BYTES = 1 << 30
_CASE = re.compile(r"(\d{1,9})x(\d{1,9})x(\d{1,9})x(\d{1,9}):(\d{1,9}):(\d{1,9})", re.ASCII)


def default_cases() -> list[str]:
    """The suite's CNN shapes at each of its kernels whose output is not empty."""
    return [f"{size}:{channels}:{kernel.partition('x')[0]}"
            for size, channels in OUTPUT_CHANNELS.items() for kernel in KERNELS
            if min(int(side) for side in size.split("x")[2:]) >= int(kernel.partition("x")[0])]


def _named(text: str) -> str:
    """A case as error messages quote it (at most 60 characters of it)."""
    return repr(text if len(text) <= 60 else text[:57] + "...")


def parse_case(text: str) -> tuple[tuple[int, int, int, int], int, int]:
    """'8x16x32x32:32:3' -> ((8, 16, 32, 32), 32, 3); a ValueError naming what is wrong."""
    match = _CASE.fullmatch(text)
    if match is None:
        raise ValueError(f"case {_named(text)}: expected NxCxHxW:C_out:k, six whole numbers "
                         f"of at most 9 digits (0-9) and nothing else, e.g. 8x16x32x32:32:3")
    n, c_in, h, w, c_out, k = (int(number) for number in match.groups())
    if min(n, c_in, h, w, c_out, k) < 1:
        raise ValueError(f"case {_named(text)}: every number must be at least 1")
    if k > min(h, w):
        raise ValueError(f"case {_named(text)}: a {k}x{k} filter has no output on a "
                         f"{h}x{w} input (no padding)")
    return (n, c_in, h, w), c_out, k


def checked(case: str, dtype: np.dtype) -> tuple:
    """(N, K, L, the weight's shape) of ``case`` in ``dtype``; a ValueError where it is
    malformed or its arrays (windows N K L, grad_output N C_out L, the GEMM's per-image
    products N C_out K) would take more than MAX_CASE_BYTES together."""
    (n, c_in, h, w), c_out, k = parse_case(case)
    rows, length = c_in * k * k + 1, (h - k + 1) * (w - k + 1)
    total = n * (rows * length + c_out * length + c_out * rows) * dtype.itemsize
    if total > MAX_CASE_BYTES:
        raise ValueError(f"case {_named(case)}: its {dtype} windows, grad_output and GEMM "
                         f"products would take {total / 2**20:.0f} MiB, over the "
                         f"{MAX_CASE_BYTES >> 20} MiB this tool allows")
    return n, rows, length, (c_out, c_in, k, k)


def operands(case: str, dtype: np.dtype):
    """(gy (N, 1, C_out, L), windows (N, 1, K, L), the weight's shape) of ``case``, seeded,
    drawn in ``dtype`` itself (no float64 copy on the way)."""
    n, rows, length, w_shape = checked(case, dtype)
    rng = np.random.default_rng(0)
    gy = rng.standard_normal((n, 1, w_shape[0], length), dtype=dtype)
    windows = rng.standard_normal((n, 1, rows, length), dtype=dtype)
    windows[:, :, -1] = 1  # the bias's row, as forward fills it
    return gy, windows, w_shape


def measure(case: str, dtype: np.dtype, batches: int) -> dict:
    """One row: both orientations timed in ``batches`` balanced batches."""
    gy, windows, w_shape = operands(case, dtype)
    calls = {orientation: (lambda cols_first=cols_first:
                           _grad_weight(gy, windows, w_shape, cols_first=cols_first))
             for orientation, cols_first in (("cols", True), ("gy", False))}
    start = time.perf_counter()
    calls["cols"]()
    per_batch = max(1, round(BATCH_SECONDS / max(time.perf_counter() - start, 1e-6)))
    times = batch_times(calls, batches, per_batch)
    ratios = [c / g for c, g in zip(times["cols"], times["gy"])]
    median = {name: statistics.median(seconds) for name, seconds in times.items()}
    picked = "cols" if grad_weight_cols_first(dtype, windows.shape[-2]) else "gy"
    return {"case": case, "rows": windows.shape[-2], "columns": windows.shape[-1],
            "cols_us": median["cols"] * 1e6, "gy_us": median["gy"] * 1e6,
            "ratio": statistics.median(ratios),
            "ratio_q1": float(np.percentile(ratios, 25)),
            "ratio_q3": float(np.percentile(ratios, 75)),
            "picked": picked, "regret": median[picked] / min(median.values())}


COSTLY_REGRET = 1.05  # a pick this much over the faster is marked


def _costly(row: dict) -> bool:
    """Whether a row's regret, as printed (three places), reaches COSTLY_REGRET."""
    return round(row["regret"], 3) >= COSTLY_REGRET


def table(dtype: np.dtype, rows: list[dict]) -> list[str]:
    """The markdown of one dtype's rows, under a line of its totals."""
    picked = sum(row[f"{row['picked']}_us"] for row in rows)
    faster = sum(min(row["cols_us"], row["gy_us"]) for row in rows)
    lost = sum(_costly(row) for row in rows)
    lines = [f"## {dtype}: the rule's picks {picked / 1e3:.2f} ms in all, the faster "
             f"orientation's {faster / 1e3:.2f} ms ({picked / faster:.3f}x); {lost} of "
             f"{len(rows)} cases {COSTLY_REGRET}x or more over the faster", "",
             "| case | K | L | cols-first (us) | gy-first (us) | cols / gy | rule | regret |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for row in rows:
        regret = f"{row['regret']:.3f}"
        lines.append(f"| {row['case']} | {row['rows']} | {row['columns']} | "
                     f"{row['cols_us']:.0f} | {row['gy_us']:.0f} | {row['ratio']:.3f} "
                     f"[{row['ratio_q1']:.3f}-{row['ratio_q3']:.3f}] | {row['picked']} | "
                     f"{f'**{regret}**' if _costly(row) else regret} |")
    return lines + [""]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=description(__doc__))
    parser.add_argument("--cases", nargs="+", metavar="NxCxHxW:C_out:k",
                        help="cases to time (default: the suite's CNN shapes at 3x3, 7x7 "
                             "and 15x15)")
    parser.add_argument("--dtypes", nargs="+", choices=["float32", "float64"],
                        default=["float32", "float64"])
    parser.add_argument("--batches", type=int, default=8,
                        help="balanced batches per case (even: whole designs of two; "
                             "default 8)")
    argv = sys.argv[1:] if argv is None else list(argv)
    for word in argv:  # (argparse takes "-1x8x8x8:1:3" for an unknown option and says only
        if re.fullmatch(r"-\d+x\S*", word):  # "expected at least one argument")
            try:
                checked(word, np.dtype(np.float32))
            except ValueError as error:
                parser.error(str(error))
    args = parser.parse_args(argv)
    if args.batches < 2 or args.batches % 2 or args.batches > MAX_BATCHES:
        parser.error(f"--batches must be an even number from 2 to {MAX_BATCHES} (each "
                     f"orientation first in half of them); got {args.batches}")
    cases = list(dict.fromkeys(args.cases or default_cases()))  # (each once, in order)
    dtypes = list(dict.fromkeys(args.dtypes))
    try:  # every case checked before any is timed
        for case in cases:
            for name in dtypes:
                checked(case, np.dtype(name))
    except ValueError as error:
        parser.error(str(error))
    torch.set_num_threads(1)
    settle_allocator()  # malloc as the suite's timing processes have it
    started, commit = utc_now(), code_commit()
    with threadpoolctl.threadpool_limits(1):
        sections = []
        for name in dtypes:
            dtype = np.dtype(name)
            rows = []
            for case in cases:
                rows.append(measure(case, dtype, args.batches))
                print(f"{case} {name}: cols / gy {rows[-1]['ratio']:.3f}", file=sys.stderr)
            sections += table(dtype, rows)
        header = environment_header("im2col's grad_weight GEMM orientation", started, commit)
    print("\n".join([*header, "- method: _grad_weight with each orientation forced, "
                     "median of balanced batches in one process "
                     "(tools/gemm_orientation.py); regret = the rule's pick over the "
                     "faster", "", *sections]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
