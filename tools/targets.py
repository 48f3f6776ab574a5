#!/usr/bin/env python3
"""Issue 13's speed targets, every cell measured side by side in one process:

    python tools/targets.py [--batches N] [--cells conv:16:float64:7 fft:256:float32 ...]
                            [--floors] [--out reports/<machine>]

The targets (forward+backward time / native's, torch at one thread):
- single-channel conv <= 1.0 at every N x k of the suite's grid (bench_conv2d: SIZES x
  KERNELS, k <= N), but 2048x2048 and 1024x1024 from 15x15, where native's im2col takes
  seconds a call;
- FFT layer <= 1.0 at every size of bench_fft_abs, and <= 0.5 where the images are at
  least 256x256;
- batched conv <= 1.0 on the suite's CNN shapes (bench_conv2d_nchw: every shape x kernel).
Both dtypes each. Each cell runs the layer as users call it ('scipy', its rule picking
the method) and native on the same seeded inputs, in alternating batches of ~20 ms of
native calls (tools/side_by_side.py's timing; with --floors five implementations in a
balanced order, tools/rotated_batches.py); a cell's ratio is the median of the per-batch
ratios, with their quartiles, and it is met when that median is at most the target.
With --floors each cell also times, in the same batches, the floors of
tools/floor_layers.py: a *null* numpy layer (the tensors to numpy and back, no
arithmetic) and the layer's *kernels only* (its numpy/scipy kernels for the method it
picks, without its checks and plumbing), both called as the layer is, and *hot*, those
kernels' forward and backward called as plain functions with no autograd around them.
Their ratios to native say, for a cell that misses, what misses: the kernels' own work
(both above the target: no numpy layer running them can meet it), calling them through
autograd (hot within the target, kernels only above), or the layer's checks and
plumbing around them.
Threads: torch and the BLAS libraries (threadpoolctl) pinned to one here; malloc settled
as in the suite's timing processes. Unset OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE for
reference figures (`make targets` does): the header names any override left set.

Writes targets.csv (one row per cell, pandas) and targets.md (the environment, then per
target how many cells are met and every cell's figures) into --out, replacing those two
files (each written whole, then moved into place; --out and the cells are checked before
any timing, and an interrupted or failed run writes nothing), and prints the markdown.
A full run takes ~11 minutes on a 2-core VM (~19 with --floors).
"""
from __future__ import annotations

import argparse
import math
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from side_by_side import (LAYER_OF, case_calls, label, parse_case,  # noqa: E402
                          ratio_quartiles, timed)
from scipy_layers.conv_spec import ConvCase  # noqa: E402
from report_files import (checked_out, code_commit, environment_header,  # noqa: E402
                          measured_rows, publish, utc_now)
from help_text import description  # (tools/, this script's folder)

DTYPES = ("float32", "float64")
CONV_SKIPPED_SIZE, CONV_LARGE_SIZE, CONV_LARGE_MAX_KERNEL = 2048, 1024, 7
FFT_HALF_FROM = 256  # images at least this many pixels a side: the 0.5 target
# Largest array a cell may need (elements: its input, zero-padded input, weight, output,
# or the im2col window matrix that native's conv and the layer's im2col may build): the
# suite's grid needs at most 50 million; this refuses sizes that could not be allocated
# before any cell is timed, not mid-run.
MAX_ARRAY_ELEMENTS = 1 << 28
OUTPUT_NAMES = ("targets.csv", "targets.md")
# Default batches a cell: whole balanced designs (tools/rotated_batches.balanced_orders)
# of the 2 implementations timed (native, the layer: 2 orders) and, with --floors, of 5
# (and the null, kernels-only and hot floors: 10 orders)
BATCHES, FLOOR_BATCHES = 16, 20
COLUMNS = ["cell", "layer", "dtype", "target", "native_us", "scipy_us", "ratio",
           "ratio_q1", "ratio_q3", "met", "batches", "null_ratio", "kernels_ratio",
           "misses_on", "hot_ratio"]
# misses_on: what a missed cell misses on, from its floors (--floors; empty otherwise,
# see verdict()): its kernels' own work (both floors above the target), calling them
# through autograd (the hot floor within it, the kernels-only floor above), or the
# layer's guards and routing around them (the kernels-only floor within it)
KERNELS_MISS, AUTOGRAD_MISS, PLUMBING_MISS = "kernels", "autograd", "plumbing"


def _sides(text: str) -> list[int]:
    return [int(part) for part in text.split("x")]


def grid() -> list[str]:
    """Every cell of the targets, as tools/side_by_side.py case strings."""
    from benchmarks import bench_conv2d, bench_conv2d_nchw, bench_fft_abs
    cells = []
    for dtype in DTYPES:
        for size in bench_conv2d.SIZES:
            n = _sides(size)[0]
            for kernel in bench_conv2d.KERNELS:
                k = _sides(kernel)[0]
                if k <= n < CONV_SKIPPED_SIZE and not (
                        n >= CONV_LARGE_SIZE and k > CONV_LARGE_MAX_KERNEL):
                    cells.append(f"conv:{n}:{dtype}:{k}")
        cells += [f"fft:{size}:{dtype}" for size in bench_fft_abs.SIZES]
        for shape, out_channels in bench_conv2d_nchw.OUTPUT_CHANNELS.items():
            cells += [f"cnn:{shape}:{out_channels}:{dtype}:{_sides(kernel)[0]}"
                      for kernel in bench_conv2d_nchw.KERNELS]
    return cells


def target(case) -> float:
    """The issue's bound on forward+backward / native for a parsed case."""
    kind, size = case[0], case[1]
    if kind == "fft" and min(size[-2:]) >= FFT_HALF_FROM:
        return 0.5
    return 1.0


LAYER_NAMES = {"conv": "single-channel conv", "fft": "FFT layer", "cnn": "batched conv"}


def measure(case, batches: int, floors: bool = False) -> dict:
    """One row of targets.csv for a parsed case (with its floors' ratios to native,
    from the same batches, where ``floors``)."""
    import scipy_layers
    kind = case[0]
    registry_name, function_name = LAYER_OF[kind]
    functions = {"native": scipy_layers.LAYERS[registry_name].native.fn,
                 "scipy": getattr(scipy_layers, function_name)}
    plain = {}
    if floors:
        from floor_layers import floor_functions, hot_call
        functions.update(floor_functions(kind))
        plain["hot"] = lambda inputs, options, g: hot_call(kind, inputs, options, g)
    times = timed(case_calls(case, scipy_layers, functions, plain), batches)

    def to_native(name):
        return [t / n for t, n in zip(times[name], times["native"])]

    q1, median, q3 = ratio_quartiles(to_native("scipy"))
    bound = target(case)
    row = {"cell": label(case), "layer": LAYER_NAMES[kind], "dtype": case[2],
           "target": bound, "native_us": statistics.median(times["native"]) * 1e6,
           "scipy_us": statistics.median(times["scipy"]) * 1e6, "ratio": median,
           "ratio_q1": q1, "ratio_q3": q3, "met": bool(median <= bound),
           "batches": batches, "null_ratio": math.nan, "kernels_ratio": math.nan,
           "misses_on": "", "hot_ratio": math.nan}
    if floors:
        row["null_ratio"] = statistics.median(to_native("null"))
        row["kernels_ratio"] = statistics.median(to_native("kernels"))
        row["hot_ratio"] = statistics.median(to_native("hot"))
        if not row["met"]:
            row["misses_on"] = verdict(row["hot_ratio"], row["kernels_ratio"], bound)
    return row


def verdict(hot_ratio: float, kernels_ratio: float, bound: float) -> str:
    """What a missed cell misses on, from its floors: the layer's plumbing where the
    kernels-only floor meets the bound (whatever hot reads: within the noise of it), its
    kernels where the hot floor is above the bound too, else autograd; "" where a floor
    gave no figure (NaN)."""
    if math.isnan(hot_ratio) or math.isnan(kernels_ratio):
        return ""
    if kernels_ratio <= bound:
        return PLUMBING_MISS
    return KERNELS_MISS if hot_ratio > bound else AUTOGRAD_MISS


def header(batches: int, started: str, commit: str, floors: bool = False) -> list[str]:
    """Where, when and how the figures were taken: every figure names its environment."""
    return environment_header("Issue 13's targets", started, commit) + [
            f"- method: forward+backward / native, median [quartiles] of {batches} batches "
            f"in one process, in balanced order (tools/targets.py)"] + ([
            "- floors, timed in the same batches (tools/floor_layers.py): *null* is a numpy "
            "layer doing no arithmetic, *kernels* the layer's own numpy/scipy kernels without "
            "its checks and plumbing, *hot* the same kernels called as plain functions with "
            "no autograd around them (kernels - hot: what calling them through torch's "
            "autograd adds, docs/performance.md). A missed cell misses on its *kernels* where "
            "both are above the target, on *autograd* where hot is within it and kernels "
            "above, else on the *plumbing* around them"] if floors else [])


def _ratio(value) -> str:
    """A floor's ratio, or "-" where the row has none (a row from before the hot floor)."""
    return "-" if value is None or math.isnan(value) else f"{value:.3f}"


def _has_floors(row) -> bool:
    return not math.isnan(row.get("kernels_ratio", math.nan))


def markdown(rows, batches: int, started: str, commit: str) -> str:
    floors = any(_has_floors(row) for row in rows)
    lines = header(batches, started, commit, floors)
    for layer in dict.fromkeys(row["layer"] for row in rows):
        mine = [row for row in rows if row["layer"] == layer]
        met = sum(row["met"] for row in mine)
        bounds = " / ".join(f"<= {bound:g}" for bound in sorted({r["target"] for r in mine},
                                                                 reverse=True))
        lines += ["", f"## {layer} ({bounds}): {met} of {len(mine)} met", ""]
        if floors:
            lines += ["| cell | native (us) | scipy / native | hot / native | null / native "
                      "| kernels / native | target | met | misses on |",
                      "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
        else:
            lines += ["| cell | native (us) | scipy / native | target | met |",
                      "| --- | --- | --- | --- | --- |"]
        for r in mine:
            floor_cells = (f"{_ratio(r.get('hot_ratio'))} | {r['null_ratio']:.3f} | "
                           f"{r['kernels_ratio']:.3f} | "
                           if _has_floors(r) else "- | - | - | ") if floors else ""
            misses_on = f" {r['misses_on'] or '-'} |" if floors else ""
            lines.append(f"| {r['cell']} | {r['native_us']:.0f} | {r['ratio']:.3f} "
                         f"[{r['ratio_q1']:.3f}-{r['ratio_q3']:.3f}] | {floor_cells}"
                         f"{r['target']:g} | {'yes' if r['met'] else '**no**'} |{misses_on}")
    return "\n".join(lines) + "\n"


def _largest_array_elements(case) -> int:
    """The elements of the largest array the case's call may hold: its input; for the
    convs the im2col window matrix (every tap of every output pixel: native builds it,
    and so may the layer), and for the batched conv its zero-padded input, weight and
    output too."""
    kind, size, kernel, options = case[0], case[1], case[3], case[4]
    if kind == "fft":
        return math.prod(size)
    if kind == "conv":
        return max(size * size, kernel * kernel * (size - kernel + 1) ** 2)
    batch, channels, height, width, out_channels = size
    padding, groups = options.get("padding", 0), options.get("groups", 1)
    out_h, out_w = _conv_case(case).output_hw
    return max(batch * channels * (height + 2 * padding) * (width + 2 * padding),
               out_channels * (channels // groups) * kernel * kernel,
               batch * out_channels * out_h * out_w,
               batch * channels * kernel * kernel * out_h * out_w)


def _conv_case(case) -> ConvCase:
    """A parsed cnn case as the ConvCase it names."""
    size, kernel = case[1], case[3]
    return ConvCase(size[:4], (size[4], kernel, kernel), **case[4])


def canonical(case):
    """The case with cnn options given at their defaults (g1, s1, p0, d1) dropped: the
    same cell as without them, labelled as the grid labels it."""
    return (*case[:4], _conv_case(case).options) if case[0] == "cnn" else case


def checked_cases(parser, cells, option: str = "--cells") -> list:
    """The cells given with ``option`` (default: the grid), options at their defaults
    dropped; a usage error for a cell given twice or one whose arrays pass
    MAX_ARRAY_ELEMENTS."""
    cases = [canonical(case) for case in cells] if cells else [
        parse_case(cell) for cell in grid()]
    seen = set()
    for case in cases:
        name = label(case)
        if name in seen:
            parser.error(f"{option} names {name} twice")
        seen.add(name)
        elements = _largest_array_elements(case)
        if elements > MAX_ARRAY_ELEMENTS:
            parser.error(f"{option} {name}: an array of {elements} elements (input, padded "
                         f"input, weight, output or im2col windows); at most "
                         f"{MAX_ARRAY_ELEMENTS}")
    return cases


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=description(__doc__))
    parser.add_argument("--cells", nargs="+", action="extend", type=parse_case,
                        metavar="CASE",
                        help="measure only these (tools/side_by_side.py's case strings); "
                             "default: every cell of the targets")
    parser.add_argument("--batches", type=int,
                        help=f"batches of calls per cell (default {BATCHES}, with --floors "
                             f"{FLOOR_BATCHES}: whole balanced designs of 2 and 5 "
                             f"implementations; tools/rotated_batches.py)")
    parser.add_argument("--floors", action="store_true",
                        help="also time each cell's null, kernels-only and hot floors "
                             "(tools/floor_layers.py) in the same batches: about 1.7 "
                             "times as long")
    parser.add_argument("--out",
                        help="folder for targets.csv and targets.md (default: "
                             "reports/<this machine's name>)")
    args = parser.parse_args(argv)
    if args.batches is None:
        args.batches = FLOOR_BATCHES if args.floors else BATCHES
    if args.batches < 2:
        parser.error("--batches must be at least 2 (quartiles need two ratios)")
    out = checked_out(parser, args.out, OUTPUT_NAMES)
    cases = checked_cases(parser, args.cells)
    import pandas as pd
    import threadpoolctl
    import torch
    from benchmarks.common import settle_allocator
    torch.set_num_threads(1)
    settle_allocator()
    started, commit = utc_now(), code_commit()
    with threadpoolctl.threadpool_limits(limits=1):
        rows, stopped = measured_rows(
            "targets", cases, lambda case: measure(case, args.batches, args.floors), label,
            lambda row: f"{row['cell']}: {row['ratio']:.3f} (target {row['target']:g})")
        if stopped:
            return stopped
        text = markdown(rows, args.batches, started, commit)
    return publish("targets", out, pd.DataFrame(rows, columns=COLUMNS), text, OUTPUT_NAMES)


if __name__ == "__main__":
    raise SystemExit(main())
