#!/usr/bin/env python
"""How well a real `make compare` run tells change from noise: its A/A verdicts, then
the same run with commit B's recorded timing samples multiplied by each factor (an
injected slowdown of the numpy/scipy implementations; nothing is re-timed), per duration
class of the cases.

    python tools/compare_power.py A B [--results .asv/results] [--round-size 5]
        [--factors 1.1 1.2 1.3 1.5 2]

Prints, per factor and class (commit A's median time: <100 us, 100 us-1 ms, 1-10 ms,
>=10 ms): cases, slower, faster, unchanged, inconclusive, and slower as a share of the
cases that got a verdict (the power the README and docs/comparing.md quote) and of all
cases. Native cases are counted under x 1 only (they are never scaled).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from scipy_layers.reports import read_results  # noqa: E402
from scipy_layers.reports.cli import positive_int  # noqa: E402
from scipy_layers.reports.compare import TIME_UNIT, compare_table, native_control  # noqa: E402
from scipy_layers.reports.naming import NATIVE  # noqa: E402
from scipy_layers.reports.rounds import check_rounds  # noqa: E402
from scipy_layers.reports.errors import ReportError, one_line  # noqa: E402
from scipy_layers.reports.gate import timings_measured_in_both  # noqa: E402
from scipy_layers.reports.tables import resolve_commits  # noqa: E402
from help_text import description  # (tools/, this script's folder)

CLASSES = [(0, 1e-4, "<100us"), (1e-4, 1e-3, "100us-1ms"), (1e-3, 1e-2, "1-10ms"),
           (1e-2, np.inf, ">=10ms")]
VERDICTS = ["slower", "faster", "unchanged", "inconclusive"]


def with_b_scaled(table: pd.DataFrame, commit_b: str, factor: float) -> pd.DataFrame:
    """commit B's timing samples and values of the numpy/scipy implementations times
    ``factor`` (as a code change would: native stays the run's A/A control)."""
    table = table.copy()
    rows = ((table["commit"] == commit_b) & (table["unit"] == TIME_UNIT)
            & (table["implementation"] != NATIVE))
    table.loc[rows, "value"] = table.loc[rows, "value"] * factor
    table.loc[rows, "samples"] = pd.Series(
        [s * factor if isinstance(s, np.ndarray) else s for s in table.loc[rows, "samples"]],
        index=table.index[rows], dtype=object)
    return table


def verdict_counts(compare: pd.DataFrame, with_native: bool) -> pd.DataFrame:
    timed = timings_measured_in_both(compare)
    if not with_native:
        timed = timed[timed["implementation"] != NATIVE]
    rows = []
    for low, high, name in CLASSES + [(0, np.inf, "all")]:
        cases = timed[(timed["value_a"] >= low) & (timed["value_a"] < high)]
        counts = cases["verdict"].value_counts()
        row = {"class": name, "cases": len(cases), **{v: int(counts.get(v, 0)) for v in VERDICTS}}
        decided = len(cases) - row["inconclusive"]
        row["slower/decided"] = row["slower"] / decided if decided else np.nan
        row["slower/all"] = row["slower"] / len(cases) if len(cases) else np.nan
        rows.append(row)
    return pd.DataFrame(rows)


def _factor(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not (0 < value < float("inf")):
        raise argparse.ArgumentTypeError(f"must be a positive finite factor, got {text}")
    return value


def main(argv=None) -> int:
    # (--help: the first paragraph; its first line alone stopped mid-sentence)
    parser = argparse.ArgumentParser(description=description(__doc__))
    parser.add_argument("commits", nargs=2, metavar="COMMIT")
    parser.add_argument("--results", default=".asv/results")
    parser.add_argument("--round-size", type=positive_int, default=5)
    parser.add_argument("--factors", type=_factor, nargs="+", default=[1.1, 1.2, 1.3, 1.5, 2.0])
    args = parser.parse_args(argv)
    try:
        table = read_results(args.results, with_samples=True)
        pair = resolve_commits(table, args.commits)
        check_rounds(table, pair, args.round_size)  # (as the report: no fake rounds)
    except ReportError as exc:
        parser.exit(2, f"{parser.prog}: error: {one_line(str(exc))}\n")
    pd.set_option("display.width", 200)
    for factor in [1.0, *args.factors]:
        compare = compare_table(with_b_scaled(table, pair[1], factor), pair,
                                round_size=args.round_size)
        changed, total = native_control(compare)
        print(f"\nB x {factor:g}  (native control: {changed} of {total} native cases "
              f"called faster or slower)")
        print(verdict_counts(compare, with_native=factor == 1.0).to_string(index=False, float_format="{:.2f}".format))
    return 0


if __name__ == "__main__":
    sys.exit(main())
