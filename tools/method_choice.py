#!/usr/bin/env python3
"""Does the batched conv's ``method="auto"`` pick the faster method on this machine?

    python tools/method_choice.py [--cells 40] [--batches 4] [--out reports/<machine>]
                                  [--case cnn:8x16x32x32:32:float64:7 ...]

Where "auto" weighs fft against im2col, it does so by a cost model whose constants were
fitted on one CPU (scipy_layers/_nchw_rule.py). This times both methods, forward+backward
in one process, on a seeded draw of cells where the model decides (the same cells on
every machine and for every fit of the model: batch 1-16, 1-64 input and 1-128 output
channels, 16-128 px, 5x5-15x15, no padding or 'same', both dtypes; cells where either
method's modelled time, by the constants the draw was made with, is over
MAX_MODELLED_MS are left out), or on the cases given, each in batches of ~30 ms in
balanced order (tools/rotated_batches.py), torch and the BLAS libraries at one thread.
Per cell: each method's median time, fft / im2col measured and modelled, auto's pick
and its *regret* (auto's time over the faster method's). Writes method_choice.csv and
method_choice.md into --out (replacing those two files) and prints the markdown.
Unset OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE for reference figures; the header names any
override left set. About 3 minutes on a 2-core VM with the defaults.
"""
from __future__ import annotations

import argparse
import contextlib
import random
import statistics
import sys
import time

from side_by_side import case_calls, label, parse_case
from targets import canonical, checked_cases
from report_files import (checked_out, code_commit, environment_header, measured_rows,
                          publish, utc_now)
from rotated_batches import batch_times
from help_text import description  # (tools/, this script's folder)

OUTPUT_NAMES = ("method_choice.csv", "method_choice.md")
SEED = 13
BATCHES, CELLS = 4, 40
MAX_CELLS = 500  # (a draw of this many takes about half an hour on a 2-core VM)
MAX_MODELLED_MS = 150.0
BATCH_SECONDS = 0.03
REGRET_SHOWN = 1.1  # the summary counts cells where auto ran this much over the faster
# the draw: each cell's parameters, uniformly from these
DRAW = {"batch": (1, 2, 4, 8, 16), "in_channels": (1, 2, 3, 4, 8, 16, 32, 64),
        "out_channels": (1, 2, 4, 8, 16, 32, 64, 128), "size": (16, 24, 32, 48, 64, 96, 128),
        "kernel": (5, 7, 9, 11, 13, 15), "same": (False, True)}


def _shapes(case):
    batch, channels, height, width, out_channels = case[1]
    kernel, padding = case[3], case[4].get("padding", 0)
    return ((batch, channels, height, width), (out_channels, channels, kernel, kernel),
            (padding,) * 4)


def decided_by_model(case) -> bool:
    """Whether "auto" weighs fft against im2col by the cost model on this cnn case."""
    import torch
    from scipy_layers._nchw_rule import weighs_fft
    x_shape, w_shape, padding = _shapes(case)
    return weighs_fft(x_shape, w_shape, (1, 1), (1, 1), 1, getattr(torch, case[2]), padding)


def modelled(case) -> tuple[float, float]:
    """(fft's, im2col's) modelled time, ms, by the rule's constants."""
    import torch
    from scipy_layers._nchw_rule import modelled_times
    x_shape, w_shape, padding = _shapes(case)
    fft_ns, _, im2col_ns = modelled_times(x_shape, w_shape, padding, getattr(torch, case[2]))
    return fft_ns / 1e6, im2col_ns / 1e6


# The draw keeps cells whose modelled times are at most MAX_MODELLED_MS by these
# constants, those of the cost model when the draw was made (fitted on the Zen 4 VM), not
# by the rule's own: a refit of the constants must not change the cells (a hostile pass:
# with the refitted ones 18 of the first 160 cells changed, one of them from the fitted
# cells into the first 40, which tools/fit_cost_model.py holds out). kn2row's are here
# too (im2col's model where it runs kn2row). A change of the model's formulas would
# still move the draw: tests/test_fit_cost_model.py pins its first cells.
DRAW_CONSTANTS = {
    "float32": {"IM2COL_NS_PER_WINDOW_ELEMENT": 0.97, "IM2COL_NS_PER_MAC": 0.080,
                "IM2COL_NS_PER_WINDOW_ROW": 27.4, "IM2COL_FIXED_NS": 248e3,
                "FFT_NS_PER_TRANSFORM_WORK": 1.49, "FFT_NS_PER_CONTRACTION": 8.6,
                "FFT_NS_PER_MATMUL_CONTRACTION": 5.35, "FFT_FIXED_NS": 443e3,
                "KN2ROW_NS_PER_MAC": 0.069, "KN2ROW_NS_PER_ROW_ELEMENT": 1.8,
                "KN2ROW_NS_PER_INPUT": 1.8, "KN2ROW_FIXED_NS": 158e3},
    "float64": {"IM2COL_NS_PER_WINDOW_ELEMENT": 2.54, "IM2COL_NS_PER_MAC": 0.152,
                "IM2COL_NS_PER_WINDOW_ROW": 34.4, "IM2COL_FIXED_NS": 75e3,
                "FFT_NS_PER_TRANSFORM_WORK": 1.77, "FFT_NS_PER_CONTRACTION": 10.2,
                "FFT_NS_PER_MATMUL_CONTRACTION": 6.05, "FFT_FIXED_NS": 695e3,
                "KN2ROW_NS_PER_MAC": 0.147, "KN2ROW_NS_PER_ROW_ELEMENT": 3.6,
                "KN2ROW_NS_PER_INPUT": 2.4, "KN2ROW_FIXED_NS": 73e3}}


@contextlib.contextmanager
def constants(dtype: str, values: dict):
    """The cost model's constants for ``dtype`` (name -> ns) set to ``values`` meanwhile,
    put back whatever happens inside. Module-wide: another thread's conv2d would pick its
    method by them meanwhile (for the tools; never beside a running layer)."""
    from scipy_layers import _nchw_rule as rule
    before = {name: getattr(rule, name)[dtype] for name in values}
    try:
        for name, value in values.items():
            getattr(rule, name)[dtype] = float(value)
        yield
    finally:
        for name, value in before.items():
            getattr(rule, name)[dtype] = value


def within_draw_limit(case) -> bool:
    """Both methods modelled at most MAX_MODELLED_MS by DRAW_CONSTANTS."""
    with constants(case[2], DRAW_CONSTANTS[case[2]]):
        return max(modelled(case)) <= MAX_MODELLED_MS


def _auto(case) -> str:
    import torch
    from scipy_layers._nchw_rule import choose_nchw_method
    x_shape, w_shape, padding = _shapes(case)
    return choose_nchw_method(x_shape, w_shape, (1, 1), (1, 1), 1, getattr(torch, case[2]),
                              padding)


def drawn_cases(count: int) -> list:
    """``count`` different cells (each in both dtypes) where the model decides and both
    methods' modelled times are at most MAX_MODELLED_MS in both dtypes (by
    DRAW_CONSTANTS, whatever the rule's are now), from a generator
    seeded with SEED: the same list on every machine (a longer draw starts with a
    shorter one)."""
    rng, cases = random.Random(SEED), []
    for _ in range(10_000 * count):  # (about one draw in six is kept)
        if len(cases) == 2 * count:
            break
        pick = {name: rng.choice(values) for name, values in DRAW.items()}
        kernel, size = pick["kernel"], pick["size"]
        if kernel > size:
            continue
        options = {"padding": kernel // 2} if pick["same"] else {}
        shape = (pick["batch"], pick["in_channels"], size, size, pick["out_channels"])
        pair = [("cnn", shape, dtype, kernel, options) for dtype in ("float32", "float64")]
        if pair[0] not in cases and all(decided_by_model(case) and within_draw_limit(case)
                                        for case in pair):
            cases += pair
    return cases


def measure(case, batches: int) -> dict:
    import scipy_layers
    from scipy_layers import nn
    calls = case_calls(case, scipy_layers, {
        method: (lambda *a, m=method, **k: nn.conv2d(*a, method=m, **k))
        for method in ("fft", "im2col")})
    start = time.perf_counter()
    calls["im2col"]()
    per_batch = max(1, int(BATCH_SECONDS / max(time.perf_counter() - start, 1e-6)))
    times = {name: statistics.median(values) * 1e3
             for name, values in batch_times(calls, batches, per_batch).items()}
    auto = _auto(case)
    fft_model, im2col_model = modelled(case)
    return {"cell": label(case), "dtype": case[2], "auto": auto,
            "fft_ms": times["fft"], "im2col_ms": times["im2col"],
            "fft_over_im2col": times["fft"] / times["im2col"],
            "modelled_fft_over_im2col": fft_model / im2col_model,
            "regret": times[auto] / min(times.values())}


def markdown(rows, batches: int, started: str, commit: str) -> str:
    lines = environment_header('method="auto" against the faster of fft and im2col',
                               started, commit) + [
             f"- method: forward+backward of each method, median of {batches} batches in one "
             f"process, balanced order (tools/method_choice.py); regret = auto's time / the "
             f"faster method's", ""]
    for dtype in dict.fromkeys(row["dtype"] for row in rows):
        mine = [row for row in rows if row["dtype"] == dtype]
        auto = sum(row[f"{row['auto']}_ms"] for row in mine)
        best = sum(min(row["fft_ms"], row["im2col_ms"]) for row in mine)
        over = sum(row["regret"] >= REGRET_SHOWN for row in mine)
        lines += [f"## {dtype}: auto {auto:.1f} ms in all, the faster method {best:.1f} ms "
                  f"({auto / best:.3f}x); {over} of {len(mine)} cells {REGRET_SHOWN}x or "
                  f"more over the faster", "",
                  "| cell | auto | fft (ms) | im2col (ms) | fft / im2col | modelled | regret |",
                  "| --- | --- | --- | --- | --- | --- | --- |"]
        lines += [f"| {r['cell']} | {r['auto']} | {r['fft_ms']:.2f} | {r['im2col_ms']:.2f} | "
                  f"{r['fft_over_im2col']:.2f} | {r['modelled_fft_over_im2col']:.2f} | "
                  f"{'**' if r['regret'] >= REGRET_SHOWN else ''}{r['regret']:.2f}"
                  f"{'**' if r['regret'] >= REGRET_SHOWN else ''} |" for r in mine]
        lines.append("")
    return "\n".join(lines)


def _model_case(text: str):
    case = canonical(parse_case(text))  # (options at their defaults dropped: s1, g1, d1)
    if case[0] != "cnn" or set(case[4]) - {"padding"}:
        raise argparse.ArgumentTypeError(
            f"case {text!r}: a cnn case with no options but padding (fft runs only at "
            f"stride 1, no dilation, one group)")
    if not decided_by_model(case):
        raise argparse.ArgumentTypeError(
            f"case {text!r}: method='auto' does not weigh fft against im2col there (see "
            f"scipy_layers/_nchw_rule.weighs_fft); it takes "
            f"{_auto(case)!r} by a fixed rule")
    return case


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=description(__doc__))
    parser.add_argument("--cells", type=int,
                        help=f"cells drawn, each in both dtypes (default {CELLS}, at most "
                             f"{MAX_CELLS})")
    parser.add_argument("--case", nargs="+", action="extend", type=_model_case,
                        metavar="CASE", help="time these cnn cases instead of a draw "
                        "(tools/side_by_side.py's strings, padding the only option)")
    parser.add_argument("--batches", type=int, default=BATCHES,
                        help=f"batches per cell (default {BATCHES}: two whole balanced "
                             f"designs)")
    parser.add_argument("--out", help="folder for method_choice.csv and method_choice.md "
                                      "(default: reports/<this machine's name>)")
    args = parser.parse_args(argv)
    if args.case and args.cells is not None:
        parser.error("--cells draws the cells, --case names them: give one of the two")
    if args.cells is not None and not 1 <= args.cells <= MAX_CELLS:
        parser.error(f"--cells must be 1 to {MAX_CELLS}, got {args.cells}")
    if args.batches < 1:
        parser.error(f"--batches must be at least 1, got {args.batches}")
    out = checked_out(parser, args.out, OUTPUT_NAMES)
    # given cases: each once, and no array past targets' limit (checked before timing)
    cases = (checked_cases(parser, args.case, "--case") if args.case
             else drawn_cases(CELLS if args.cells is None else args.cells))
    import pandas as pd
    import threadpoolctl
    import torch
    from benchmarks.common import settle_allocator
    torch.set_num_threads(1)
    settle_allocator()
    started, commit = utc_now(), code_commit()
    with threadpoolctl.threadpool_limits(limits=1):
        rows, stopped = measured_rows(
            "method_choice", cases, lambda case: measure(case, args.batches), label,
            lambda row: f"{row['cell']}: auto {row['auto']}, fft / im2col "
                        f"{row['fft_over_im2col']:.2f} (modelled "
                        f"{row['modelled_fft_over_im2col']:.2f})")
        if stopped:
            return stopped
        text = markdown(rows, args.batches, started, commit)  # (names the threads it ran at)
    return publish("method_choice", out, pd.DataFrame(rows), text, OUTPUT_NAMES)


if __name__ == "__main__":
    sys.exit(main())
