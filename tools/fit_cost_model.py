#!/usr/bin/env python3
"""Refit the batched conv's cost model (scipy_layers/_nchw_rule.py) from timed cells.

    python tools/method_choice.py --cells 160 --out DIR     # time both methods (~5 min)
    python tools/fit_cost_model.py DIR/method_choice.csv     # fit, and judge the fit

For each dtype, fits im2col's four constants (IM2COL_NS_PER_WINDOW_ELEMENT, ..._PER_MAC,
..._PER_WINDOW_ROW, IM2COL_FIXED_NS; on the cells where im2col runs its own layout, not
kn2row's, whose model is left as it is) and fft's four (FFT_NS_PER_TRANSFORM_WORK,
FFT_NS_PER_CONTRACTION, FFT_NS_PER_MATMUL_CONTRACTION, FFT_FIXED_NS) by non-negative least
squares on relative error. Each constant's feature is the rule's own model with that
constant at 1 and the others at 0, so the fit cannot drift from the formulas it feeds.
It fits on the cells past method_choice's default draw (its first --held-out cells) and
judges old and new constants by auto's regret (auto's time over the faster method's,
the pick made by choose_nchw_method itself) on those held-out cells, which the fit never
saw, and on the fitted ones (the draw's cells do not depend on the constants:
method_choice.DRAW_CONSTANTS). Prints markdown; changes nothing: a fit worth landing is
copied into _nchw_rule.py by hand, with the regrets in its comment.
"""
from __future__ import annotations

import argparse
import math
import os
import re
import sys
import warnings

from method_choice import (CELLS, MAX_CELLS, _shapes, constants, decided_by_model, drawn_cases,
                           label)
from targets import MAX_ARRAY_ELEMENTS, _largest_array_elements
from help_text import description  # (tools/, this script's folder)

IM2COL = ("IM2COL_NS_PER_WINDOW_ELEMENT", "IM2COL_NS_PER_MAC", "IM2COL_NS_PER_WINDOW_ROW",
          "IM2COL_FIXED_NS")
FFT = ("FFT_NS_PER_TRANSFORM_WORK", "FFT_NS_PER_CONTRACTION", "FFT_NS_PER_MATMUL_CONTRACTION",
       "FFT_FIXED_NS")
DTYPES = ("float32", "float64")
_LABEL = re.compile(r"cnn (\d+)x(\d+)x(\d+)x(\d+)->(\d+) k(\d+)(?: p(\d+))? (float32|float64)")


def case_of(cell: str):
    """method_choice's case from its label ("cnn 4x4x128x128->8 k9 p4 float32"); a
    ValueError for anything else."""
    match = _LABEL.fullmatch(cell) if isinstance(cell, str) else None
    if match is None:
        raise ValueError(f"not a method_choice cell label: {cell!r} (expected e.g. "
                         f"'cnn 4x4x128x128->8 k9 p4 float32': padding the only option)")
    n, c, h, w, c_out, k, pad, dtype = match.groups()
    options = {"padding": int(pad)} if pad and int(pad) else {}  # (p0: the default, dropped)
    return "cnn", (int(n), int(c), int(h), int(w), int(c_out)), dtype, int(k), options


def features(case, names, which: int) -> list[float]:
    """Each constant's share of the modelled time (ns per ns of the constant) on case:
    the rule's modelled_times (element ``which``: 0 fft, 2 im2col) with that constant
    at 1 and the others at 0."""
    import torch
    from scipy_layers._nchw_rule import modelled_times
    x_shape, w_shape, padding = _shapes(case)
    row = []
    for name in names:
        with constants(case[2], {other: float(other == name) for other in names}):
            row.append(modelled_times(x_shape, w_shape, padding,
                                      getattr(torch, case[2]))[which])
    return row


def runs_kn2row(case) -> bool:
    """Whether im2col runs kn2row on case (the rule's own answer: _nchw_rule.runs_kn2row)."""
    import torch
    from scipy_layers._nchw_rule import runs_kn2row as rule_runs_kn2row
    x_shape, w_shape, padding = _shapes(case)
    return rule_runs_kn2row(x_shape, w_shape, padding, getattr(torch, case[2]))


def fit(rows, times, names, current: dict) -> tuple[dict, list]:
    """(constants, the names kept at ``current``): non-negative least squares on
    relative error, times ~ rows @ constants; a constant no row exercises (its feature
    0 throughout) cannot be fitted and keeps its current value."""
    import numpy as np
    from scipy.optimize import nnls
    a, t = np.asarray(rows, float), np.asarray(times, float)
    used = [j for j in range(len(names)) if a[:, j].any()]
    solution, _ = nnls(a[:, used] / t[:, None], np.ones(len(t)))
    result = {name: current[name] for name in names}
    result.update({names[j]: float(value) for j, value in zip(used, solution)})
    return result, [name for j, name in enumerate(names) if j not in used]


def regret(cells, dtype: str, values: dict) -> tuple[float, int]:
    """(auto's total over the faster method's total, cells 1.1x or more over) with the
    rule's constants for ``dtype`` at ``values``; ``cells``: (case, {method: time})."""
    import torch
    from scipy_layers._nchw_rule import choose_nchw_method
    auto = best = over = 0
    with constants(dtype, values):
        for case, times in cells:
            x_shape, w_shape, padding = _shapes(case)
            pick = choose_nchw_method(x_shape, w_shape, (1, 1), (1, 1), 1,
                                      getattr(torch, dtype), padding)
            auto, best = auto + times[pick], best + min(times.values())
            over += times[pick] >= 1.1 * min(times.values())
    return auto / best, over


# A time's bounds, ms: no call takes less than a nanosecond (1e-320 overflowed the fit)
# and no method_choice cell a day (1e305 overflowed to inf in ns and left the fit).
MIN_MS, MAX_MS = 1e-6, 86_400_000.0


def _unrunnable(case) -> str | None:
    """Why a cell could not have been timed by tools/method_choice.py, or None: an
    empty dimension or output, or an array past its limit (targets.MAX_ARRAY_ELEMENTS)."""
    n, c_in, height, width, c_out = case[1]
    kernel, padding = case[3], case[4].get("padding", 0)
    if min(n, c_in, height, width, c_out, kernel) < 1:
        return "an empty dimension"
    if min(height, width) + 2 * padding < kernel:
        return "no output (the kernel is larger than the padded image)"
    if _largest_array_elements(case) > MAX_ARRAY_ELEMENTS:
        return f"an array past {MAX_ARRAY_ELEMENTS} elements"
    return None


def read_cells(parser, path: str) -> dict:
    """{dtype: [(case, {"fft": ns, "im2col": ns})]} from a method_choice.csv; a usage
    error naming the file, row or cell for anything else."""
    import pandas as pd
    if os.path.isdir(path):
        parser.error(f"{path}: a folder, not a method_choice.csv")
    if not os.path.isfile(path):
        parser.error(f"{path}: no such file")
    try:
        with warnings.catch_warnings():  # (a row with extra fields: pandas cuts them, warning)
            warnings.simplefilter("error", pd.errors.ParserWarning)
            table = pd.read_csv(path, index_col=False)  # (extra fields: no shifted index)
    except (pd.errors.EmptyDataError, pd.errors.ParserError, pd.errors.ParserWarning,
            UnicodeDecodeError) as error:
        parser.error(f"{path}: not a CSV file of method_choice's columns "
                     f"({type(error).__name__}: {error})")
    missing = {"cell", "dtype", "fft_ms", "im2col_ms"} - set(table.columns)
    if missing:
        parser.error(f"{path}: no column {', '.join(sorted(missing))} (not a "
                     f"method_choice.csv)")
    cells, seen = {}, set()
    for number, row in enumerate(table.itertuples(), start=1):
        where = f"{path}, row {number}"  # (the data rows, blank lines not counted)
        try:
            case = case_of(row.cell)
        except ValueError as error:
            parser.error(f"{where}: {error}")
        if label(case) != row.cell:  # (p0, leading zeros: the same cell spelt otherwise)
            parser.error(f"{where}: {row.cell!r} is not written as method_choice writes "
                         f"that cell: {label(case)!r}")
        problem = _unrunnable(case)
        if problem:
            parser.error(f"{where}: {row.cell}: {problem}; no method_choice run times it")
        if row.dtype != case[2]:
            parser.error(f"{where}: dtype {row.dtype!r}, but the cell {row.cell!r} is "
                         f"{case[2]}")
        if row.cell in seen:
            parser.error(f"{where}: {row.cell} given twice")
        seen.add(row.cell)
        if not decided_by_model(case):
            parser.error(f"{where}: {row.cell}: method='auto' does not weigh fft against "
                         f"im2col there (scipy_layers/_nchw_rule.weighs_fft), so its times "
                         f"say nothing of the model")
        times = {}
        for method in ("fft", "im2col"):
            given = getattr(row, f"{method}_ms")
            try:  # (not a bool: pandas reads "True" as one, and float(True) is 1)
                value = math.nan if isinstance(given, bool) else float(given)
            except (TypeError, ValueError, OverflowError):  # (an int of 400 digits)
                value = math.nan
            if not MIN_MS <= value <= MAX_MS:  # (NaN: False)
                parser.error(f"{where}: {row.cell}: {method}_ms is {given!r}; a time must "
                             f"be a number of ms from {MIN_MS} (1 ns) to {MAX_MS:.0f} (a "
                             f"day)")
            times[method] = value * 1e6
        cells.setdefault(case[2], []).append((case, times))
    if not cells:
        parser.error(f"{path}: no cells")
    return cells


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=description(__doc__))
    parser.add_argument("csv", help="method_choice.csv from tools/method_choice.py --cells N")
    parser.add_argument("--held-out", type=int, default=CELLS,
                        help=f"the draw's first cells left out of the fit (default {CELLS}, "
                             f"0 to {MAX_CELLS})")
    args = parser.parse_args(argv)
    if not 0 <= args.held_out <= MAX_CELLS:
        parser.error(f"--held-out must be 0 to {MAX_CELLS}, got {args.held_out}")
    from scipy_layers import _nchw_rule as rule
    cells = read_cells(parser, args.csv)
    held_out = {label(case) for case in drawn_cases(args.held_out)} if args.held_out else set()
    lines = [f"# The cost model refitted on {args.csv}", ""]
    for dtype in (dtype for dtype in DTYPES if dtype in cells):
        fitted = [(case, times) for case, times in cells[dtype] if label(case) not in held_out]
        kept_out = [(case, times) for case, times in cells[dtype] if label(case) in held_out]
        own = [(case, times) for case, times in fitted if not runs_kn2row(case)]
        if len(own) < 2 * len(IM2COL) or len(fitted) < 2 * len(FFT):
            parser.error(f"{dtype}: {len(fitted)} cells to fit on past the {args.held_out} "
                         f"held out ({len(own)} where im2col runs its own layout), need "
                         f"{2 * len(FFT)} of each: time more cells (--cells)")
        old = {name: getattr(rule, name)[dtype] for name in IM2COL + FFT}
        new, kept = fit([features(case, IM2COL, 2) for case, _ in own],
                        [times["im2col"] for _, times in own], IM2COL, old)
        fft_new, fft_kept = fit([features(case, FFT, 0) for case, _ in fitted],
                                [times["fft"] for _, times in fitted], FFT, old)
        new, kept = new | fft_new, kept + fft_kept
        lines += [f"## {dtype}: fitted on {len(fitted)} cells ({len(own)} for im2col), "
                  f"{len(kept_out)} held out", "",
                  "| constant | now | fitted |", "| --- | --- | --- |"]
        lines += [f"| {name} | {old[name]:.4g} | "
                  + ("kept: no fitted cell exercises it" if name in kept else f"{new[name]:.4g}")
                  + " |" for name in new]
        lines += ["", "| cells | regret now | regret fitted |", "| --- | --- | --- |"]
        for name, chosen in (("held out", kept_out), ("fitted", fitted)):
            if chosen:
                (r_old, o_old), (r_new, o_new) = (regret(chosen, dtype, values)
                                                  for values in (old, new))
                lines.append(f"| {name} ({len(chosen)}) | {r_old:.3f}x ({o_old} at 1.1x+) | "
                             f"{r_new:.3f}x ({o_new} at 1.1x+) |")
        lines.append("")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
