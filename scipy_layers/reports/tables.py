"""Derived tables: implementation/native time ratios (speedup.csv), and the commits a
comparison takes (compare.csv itself is built in ``compare``). Both take the tidy table
from ``reader.read_results``."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .environment import ENV_COLUMNS
from .errors import ReportError
from .history import is_ancestor
from .limits import LIMIT_COLUMNS
from .naming import NATIVE, PARAM_COLUMNS, TIME_MEASUREMENTS
from .runs import commits_oldest_first

# Columns that hold a measurement rather than identify it.
MEASURED = ["value", "status", "q25", "q75", "ci99_a", "ci99_b", "number", "repeat", "version",
            *LIMIT_COLUMNS]
RUN_KEYS = ["commit", "commit_date", "commit_order", "machine", "env"]


def param_columns(table: pd.DataFrame) -> list[str]:
    """The documented parameters plus any other parameter a benchmark declares."""
    known = set(PARAM_COLUMNS) | set(MEASURED) | set(RUN_KEYS) | set(ENV_COLUMNS) | {
        "layer", "kind", "measurement", "unit", "benchmark", "samples"}
    return PARAM_COLUMNS + [c for c in table.columns if c not in known]


def with_blank_params(table: pd.DataFrame) -> pd.DataFrame:
    """Absent parameters (fft_abs has no kernel) as "" so they join and group like any
    other value; in a CSV file both are an empty field."""
    columns = [c for c in param_columns(table) if c in table]
    return table.assign(**{c: table[c].fillna("") for c in columns})


def speedup_table(timings: pd.DataFrame) -> pd.DataFrame:
    """Every non-native implementation's time beside the native twin's, per case, commit,
    machine and env. ratio = time / native time (> 1: slower than native); ratio_low and
    ratio_high pair opposite quartiles, so they bound the ratio of typical samples."""
    times = with_blank_params(timings[timings["measurement"].isin(TIME_MEASUREMENTS)])
    case = ["layer", "kind", "benchmark", "measurement", "unit",
            *[c for c in param_columns(times) if c != "implementation"], *RUN_KEYS, *ENV_COLUMNS]
    native = (times.loc[times["implementation"] == NATIVE,
                        case + ["value", "q25", "q75", "status", "limit_fraction"]]
              .rename(columns={"value": "native_time", "q25": "native_q25", "q75": "native_q75",
                               "status": "native_status", "limit_fraction": "native_limit_fraction"}))
    others = times.loc[times["implementation"] != NATIVE,
                       case + ["implementation", "value", "q25", "q75", "status", *LIMIT_COLUMNS]]
    table = others.rename(columns={"value": "time"}).merge(native, on=case, how="left")
    table["native_status"] = table["native_status"].fillna("missing")
    # A ratio to a native time of 0 (asv's timer resolution, or a hand-made file) means
    # nothing: left empty rather than inf.
    both_ok = ((table["status"] == "ok") & (table["native_status"] == "ok")
               & (table["native_time"] > 0))
    with np.errstate(divide="ignore", invalid="ignore"):
        table["ratio"] = (table["time"] / table["native_time"]).where(both_ok)
        table["ratio_low"] = (table["q25"] / table["native_q75"]).where(both_ok & (table["native_q75"] > 0))
        table["ratio_high"] = (table["q75"] / table["native_q25"]).where(both_ok & (table["native_q25"] > 0))
    order = ["layer", "kind", "benchmark", "measurement", "implementation",
             *[c for c in param_columns(times) if c != "implementation"], "unit",
             "time", "q25", "q75", "status", "native_time", "native_q25", "native_q75",
             "native_status", "ratio", "ratio_low", "ratio_high", "bound_time", "limit_fraction",
             "native_limit_fraction", *RUN_KEYS, *ENV_COLUMNS]
    return table[order].reset_index(drop=True)


def resolve_commits(timings: pd.DataFrame, wanted: list[str] | None,
                    results_dir: Path | str | None = None) -> tuple[str, str] | None:
    """The two commits to compare: ``wanted`` (full hashes or unique prefixes, in either
    case, as git reads them), else the most recent pair (``runs.commits_oldest_first``)
    that ran on a common machine and asv environment (two commits on two machines share
    no case), or failing that the two most recent; None when the results hold a single
    commit. ``wanted`` is (base, change): refused where the git repository holding
    ``results_dir`` has the change before the base (a slowdown would read as a speed-up,
    and --gate pass it); two branches apart, or commits git cannot place, go as given."""
    known = commits_oldest_first(timings)
    if not wanted:
        return _latest_comparable_pair(timings, known) if len(known) >= 2 else None
    resolved = []
    for prefix in wanted:
        matches = [c for c in known if c.lower().startswith(prefix.lower())]
        if len(matches) != 1:
            problem = "is not in the results" if not matches else "matches several commits"
            raise ReportError(f"commit {prefix!r} {problem} (known: "
                              f"{', '.join(c[:8] for c in known)})")
        resolved.append(matches[0])
    if resolved[0] == resolved[1]:
        raise ReportError(f"commits {wanted[0]!r} and {wanted[1]!r} are the same commit "
                          f"({resolved[0][:8]}): nothing to compare; name two different ones")
    if results_dir is not None and is_ancestor(results_dir, resolved[1], resolved[0]):
        raise ReportError(f"--commits {wanted[0]} {wanted[1]}: the first is the base and the "
                          f"second the change, but {resolved[1][:8]} is an ancestor of "
                          f"{resolved[0][:8]} in git history, so a slowdown since then would "
                          f"read as a speed-up: give --commits {wanted[1]} {wanted[0]}")
    return resolved[0], resolved[1]


def _latest_comparable_pair(timings: pd.DataFrame, known: list[str]) -> tuple[str, str]:
    """(A, B) of ``known`` (oldest first), B the latest commit that has an earlier one
    timed on one of its (machine, env) runs, A the latest such; else the last two."""
    runs = {commit: set(map(tuple, rows.to_numpy()))
            for commit, rows in timings[["commit", "machine", "env"]].drop_duplicates()
            .groupby("commit")[["machine", "env"]]}
    for b in range(len(known) - 1, 0, -1):
        for a in range(b - 1, -1, -1):
            if runs[known[a]] & runs[known[b]]:
                return known[a], known[b]
    return known[-2], known[-1]
