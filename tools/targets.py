#!/usr/bin/env python3
"""Issue 13's speed targets, every cell measured side by side in one process:

    python tools/targets.py [--batches 15] [--cells conv:16:float64:7 fft:256:float32 ...]
                            [--out reports/<machine>]

The targets (forward+backward time / native's, torch at one thread):
- single-channel conv <= 1.0 at every N x k of the suite's grid (bench_conv2d: SIZES x
  KERNELS, k <= N), but 2048x2048 and 1024x1024 from 15x15, where native's im2col takes
  seconds a call;
- FFT layer <= 1.0 at every size of bench_fft_abs, and <= 0.5 where the images are at
  least 256x256;
- batched conv <= 1.0 on the suite's CNN shapes (bench_conv2d_nchw: every shape x kernel).
Both dtypes each. Each cell runs the layer as users call it ('scipy', its rule picking
the method) and native on the same seeded inputs, in rotated batches of ~20 ms of native
calls (tools/side_by_side.py's timing); a cell's ratio is the median of the per-batch
ratios, with their quartiles, and it is met when that median is at most the target.
Threads: torch and the BLAS libraries (threadpoolctl) pinned to one here; malloc settled
as in the suite's timing processes. Unset OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE for
reference figures (`make targets` does): the header names any override left set.

Writes targets.csv (one row per cell, pandas) and targets.md (the environment, then per
target how many cells are met and every cell's figures) into --out, replacing those two
files, and prints the markdown. A full run takes ~10 minutes on a 2-core VM.
"""
from __future__ import annotations

import argparse
import datetime
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from side_by_side import case_calls, environment_line, label, parse_case, timed  # noqa: E402
import asv_machine  # noqa: E402  (tools/, this script's folder)

DTYPES = ("float32", "float64")
CONV_SKIPPED_SIZE, CONV_LARGE_SIZE, CONV_LARGE_MAX_KERNEL = 2048, 1024, 7
FFT_HALF_FROM = 256  # images at least this many pixels a side: the 0.5 target
COLUMNS = ["cell", "layer", "dtype", "target", "native_us", "scipy_us", "ratio",
           "ratio_q1", "ratio_q3", "met", "batches"]


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


def measure(case, batches: int) -> dict:
    """One row of targets.csv for a parsed case."""
    import scipy_layers
    from side_by_side import LAYER_OF
    kind = case[0]
    registry_name, function_name = LAYER_OF[kind]
    times = timed(case_calls(case, scipy_layers, {
        "native": scipy_layers.LAYERS[registry_name].native.fn,
        "scipy": getattr(scipy_layers, function_name)}), batches)
    ratios = [s / n for s, n in zip(times["scipy"], times["native"])]
    q1, median, q3 = (statistics.quantiles(ratios, n=4) if len(ratios) > 1
                      else (ratios[0],) * 3)
    median = statistics.median(ratios)
    bound = target(case)
    return {"cell": label(case), "layer": LAYER_NAMES[kind], "dtype": case[2],
            "target": bound, "native_us": statistics.median(times["native"]) * 1e6,
            "scipy_us": statistics.median(times["scipy"]) * 1e6, "ratio": median,
            "ratio_q1": q1, "ratio_q3": q3, "met": bool(median <= bound),
            "batches": batches}


def _commit() -> str:
    def git(*args):
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True,
                              check=False).stdout.strip()
    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    dirty = git("status", "--porcelain", "--untracked-files=no", "--", "scipy_layers")
    return commit + (" with uncommitted changes to scipy_layers/" if dirty else "")


def _utc_now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def header(batches: int, started: str) -> list[str]:
    """Where, when and how the figures were taken: every figure names its environment."""
    from record_environment import OVERRIDE_VARS
    described = asv_machine.describe()
    overrides = [f"{name}={os.environ[name]}" for name in OVERRIDE_VARS if name in os.environ]
    return [f"# Issue 13's targets on {described['machine']}", "",
            f"- when: {started} to {_utc_now()}; code: `{_commit()}`",
            f"- CPU: {described['cpu']}; {described['num_cpu']} CPUs",
            f"- {environment_line()}",
            f"- kernel overrides: {', '.join(overrides) or 'none'}",
            f"- method: forward+backward / native, median [quartiles] of {batches} rotated "
            f"batches in one process (tools/targets.py)"]


def markdown(rows, batches: int, started: str) -> str:
    lines = header(batches, started)
    for layer in dict.fromkeys(row["layer"] for row in rows):
        mine = [row for row in rows if row["layer"] == layer]
        met = sum(row["met"] for row in mine)
        bounds = " / ".join(f"<= {bound:g}" for bound in sorted({r["target"] for r in mine},
                                                                 reverse=True))
        lines += ["", f"## {layer} ({bounds}): {met} of {len(mine)} met", "",
                  "| cell | native (us) | scipy / native | target | met |",
                  "| --- | --- | --- | --- | --- |"]
        lines += [f"| {r['cell']} | {r['native_us']:.0f} | {r['ratio']:.3f} "
                  f"[{r['ratio_q1']:.3f}-{r['ratio_q3']:.3f}] | {r['target']:g} | "
                  f"{'yes' if r['met'] else '**no**'} |" for r in mine]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cells", nargs="+", type=parse_case, metavar="CASE",
                        help="measure only these (tools/side_by_side.py's case strings); "
                             "default: every cell of the targets")
    parser.add_argument("--batches", type=int, default=15)
    parser.add_argument("--out", type=Path,
                        help="folder for targets.csv and targets.md (default: "
                             "reports/<this machine's name>)")
    args = parser.parse_args(argv)
    if args.batches < 2:
        parser.error("--batches must be at least 2 (quartiles need two ratios)")
    out = args.out or ROOT / "reports" / asv_machine.describe()["machine"]
    if out.exists() and not out.is_dir():
        parser.error(f"--out {out} exists and is not a folder")
    cases = args.cells or [parse_case(cell) for cell in grid()]
    import pandas as pd
    import threadpoolctl
    import torch
    from benchmarks.common import settle_allocator
    torch.set_num_threads(1)
    settle_allocator()
    started = _utc_now()
    with threadpoolctl.threadpool_limits(limits=1):
        rows = []
        for case in cases:
            rows.append(measure(case, args.batches))
            row = rows[-1]
            print(f"{row['cell']}: {row['ratio']:.3f} (target {row['target']:g})",
                  file=sys.stderr, flush=True)
        text = markdown(rows, args.batches, started)
    out.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows, columns=COLUMNS).to_csv(out / "targets.csv", index=False,
                                               float_format="%.6g")
    (out / "targets.md").write_text(text)
    print(text, end="")
    print(f"wrote {out / 'targets.csv'} and {out / 'targets.md'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
