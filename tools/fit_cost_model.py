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
saw, and on the fitted ones. Prints markdown; changes nothing.
"""
from __future__ import annotations

import argparse
import contextlib
import re
import sys

from method_choice import CELLS, _shapes, drawn_cases, label

IM2COL = ("IM2COL_NS_PER_WINDOW_ELEMENT", "IM2COL_NS_PER_MAC", "IM2COL_NS_PER_WINDOW_ROW",
          "IM2COL_FIXED_NS")
FFT = ("FFT_NS_PER_TRANSFORM_WORK", "FFT_NS_PER_CONTRACTION", "FFT_NS_PER_MATMUL_CONTRACTION",
       "FFT_FIXED_NS")
_LABEL = re.compile(r"cnn (\d+)x(\d+)x(\d+)x(\d+)->(\d+) k(\d+)(?: p(\d+))? (float32|float64)$")


def case_of(cell: str):
    """method_choice's case from its label ("cnn 4x4x128x128->8 k9 p4 float32")."""
    match = _LABEL.match(cell)
    if match is None:
        raise ValueError(f"not a method_choice cell label: {cell!r}")
    n, c, h, w, c_out, k, pad, dtype = match.groups()
    options = {"padding": int(pad)} if pad else {}
    return "cnn", (int(n), int(c), int(h), int(w), int(c_out)), dtype, int(k), options


@contextlib.contextmanager
def constants(rule, dtype: str, values: dict):
    """The rule's constants for ``dtype`` set to ``values`` (name -> ns) meanwhile."""
    before = {name: getattr(rule, name)[dtype] for name in values}
    try:
        for name, value in values.items():
            getattr(rule, name)[dtype] = float(value)
        yield
    finally:
        for name, value in before.items():
            getattr(rule, name)[dtype] = value


def features(rule, case, names, which: int) -> list[float]:
    """Each constant's share of the modelled time (ns per ns of the constant) on case."""
    import torch
    x_shape, w_shape, padding = _shapes(case)
    row = []
    for name in names:
        with constants(rule, case[2], {other: float(other == name) for other in names}):
            row.append(rule.modelled_times(x_shape, w_shape, padding,
                                           getattr(torch, case[2]))[which])
    return row


def runs_kn2row(rule, case) -> bool:
    import torch
    x_shape, w_shape, padding = _shapes(case)
    return rule._kn2row.runs(x_shape, w_shape, rule._stride_one(x_shape, w_shape, padding),
                             getattr(torch, case[2]))


def fit(rows, times, names):
    """Non-negative least squares on relative error: times ~ rows @ constants."""
    import numpy as np
    from scipy.optimize import nnls
    a, t = np.asarray(rows, float), np.asarray(times, float)
    solution, _ = nnls(a / t[:, None], np.ones(len(t)))
    return dict(zip(names, solution))


def regret(rule, cells, dtype: str, values: dict) -> tuple[float, int]:
    """(auto's total over the faster method's total, cells 1.1x or more over) with the
    rule's constants for ``dtype`` at ``values``."""
    import torch
    auto = best = over = 0
    with constants(rule, dtype, values):
        for case, times in cells:
            x_shape, w_shape, padding = _shapes(case)
            pick = rule.choose_nchw_method(x_shape, w_shape, (1, 1), (1, 1), 1,
                                           getattr(torch, dtype), padding)
            auto, best = auto + times[pick], best + min(times.values())
            over += times[pick] >= 1.1 * min(times.values())
    return auto / best, over


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("csv", help="method_choice.csv from tools/method_choice.py --cells N")
    parser.add_argument("--held-out", type=int, default=CELLS,
                        help=f"the draw's first cells left out of the fit (default {CELLS})")
    args = parser.parse_args(argv)
    import pandas as pd
    from scipy_layers import _nchw_rule as rule
    table = pd.read_csv(args.csv)
    missing = {"cell", "dtype", "fft_ms", "im2col_ms"} - set(table.columns)
    if missing:
        parser.error(f"{args.csv}: no column {', '.join(sorted(missing))} (not a "
                     f"method_choice.csv)")
    held_out = {label(case) for case in drawn_cases(args.held_out)} if args.held_out else set()
    lines = [f"# The cost model refitted on {args.csv}", ""]
    for dtype in ("float32", "float64"):
        mine = table[table.dtype == dtype]
        cells = [(case_of(r.cell), {"fft": r.fft_ms * 1e6, "im2col": r.im2col_ms * 1e6},
                  r.cell in held_out) for r in mine.itertuples()]
        fitted = [cell for cell in cells if not cell[2]]
        own = [cell for cell in fitted if not runs_kn2row(rule, cell[0])]
        if len(own) < 2 * len(IM2COL) or len(fitted) < 2 * len(FFT):
            parser.error(f"{dtype}: {len(fitted)} cells to fit on ({len(own)} im2col), "
                         f"need {2 * len(FFT)}: time more cells (--cells)")
        new = fit([features(rule, case, IM2COL, 2) for case, _, _ in own],
                  [times["im2col"] for _, times, _ in own], IM2COL)
        new |= fit([features(rule, case, FFT, 0) for case, _, _ in fitted],
                   [times["fft"] for _, times, _ in fitted], FFT)
        old = {name: getattr(rule, name)[dtype] for name in new}
        lines += [f"## {dtype}: fitted on {len(fitted)} cells ({len(own)} for im2col), "
                  f"{len(cells) - len(fitted)} held out", "",
                  "| constant | now | fitted |", "| --- | --- | --- |"]
        lines += [f"| {name} | {old[name]:.4g} | {new[name]:.4g} |" for name in new]
        lines += ["", "| cells | regret now | regret fitted |", "| --- | --- | --- |"]
        for name, chosen in (("held out", [c for c in cells if c[2]]), ("fitted", fitted)):
            if chosen:
                pairs = [(case, times) for case, times, _ in chosen]
                (r_old, o_old), (r_new, o_new) = (regret(rule, pairs, dtype, values)
                                                  for values in (old, new))
                lines.append(f"| {name} ({len(chosen)}) | {r_old:.3f}x ({o_old} at 1.1x+) | "
                             f"{r_new:.3f}x ({o_new} at 1.1x+) |")
        lines.append("")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
