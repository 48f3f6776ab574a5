"""Derived tables: implementation/native time ratios (speedup.csv) and two commits side
by side (compare.csv). Both take the tidy table from ``reader.read_results``."""
from __future__ import annotations

import numpy as np
import pandas as pd

from .errors import ReportError
from .naming import NATIVE, PARAM_COLUMNS, TIME_MEASUREMENTS

# Columns that hold a measurement rather than identify it.
MEASURED = ["value", "status", "q25", "q75", "ci99_a", "ci99_b", "number", "repeat", "version"]
RUN_KEYS = ["commit", "commit_date", "machine", "env"]


def param_columns(table: pd.DataFrame) -> list[str]:
    """The documented parameters plus any other parameter a benchmark declares."""
    known = set(PARAM_COLUMNS) | set(MEASURED) | set(RUN_KEYS) | {
        "layer", "kind", "measurement", "unit", "benchmark"}
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
            *[c for c in param_columns(times) if c != "implementation"], *RUN_KEYS]
    native = (times.loc[times["implementation"] == NATIVE, case + ["value", "q25", "q75", "status"]]
              .rename(columns={"value": "native_time", "q25": "native_q25",
                               "q75": "native_q75", "status": "native_status"}))
    others = times.loc[times["implementation"] != NATIVE,
                       case + ["implementation", "value", "q25", "q75", "status"]]
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
             "native_status", "ratio", "ratio_low", "ratio_high", *RUN_KEYS]
    return table[order].reset_index(drop=True)


def commits_by_date(timings: pd.DataFrame) -> pd.Series:
    """Commit hash -> commit date, oldest first (hash breaks ties, for a stable order)."""
    dates = timings.groupby("commit", sort=False)["commit_date"].min()
    return dates.reset_index().sort_values(["commit_date", "commit"]).set_index("commit")["commit_date"]


def resolve_commits(timings: pd.DataFrame, wanted: list[str] | None) -> tuple[str, str] | None:
    """The two commits to compare: ``wanted`` (full hashes or unique prefixes), else the
    two most recent by commit date; None when the results hold a single commit."""
    known = list(commits_by_date(timings).index)
    if not wanted:
        return (known[-2], known[-1]) if len(known) >= 2 else None
    resolved = []
    for prefix in wanted:
        matches = [c for c in known if c.startswith(prefix)]
        if len(matches) != 1:
            problem = "is not in the results" if not matches else "matches several commits"
            raise ReportError(f"commit {prefix!r} {problem} (known: "
                              f"{', '.join(c[:8] for c in known)})")
        resolved.append(matches[0])
    return resolved[0], resolved[1]


COMPARE_COLUMNS = ["value_a", "value_b", "q25_a", "q75_a", "q25_b", "q75_b", "status_a",
                   "status_b", "ratio", "iqr_overlap", "changed", "change"]


def compare_table(timings: pd.DataFrame, commits: tuple[str, str] | None,
                  factor: float) -> pd.DataFrame:
    """Commit A (older) and B side by side on each machine and env. ratio = B / A;
    changed when ratio >= factor or <= 1 / factor (both results ok). iqr_overlap says
    whether the quartile ranges overlap (noise suspect when True)."""
    table = with_blank_params(timings)
    case = ["layer", "kind", "benchmark", "measurement", "unit", *param_columns(table),
            "machine", "env"]
    if commits is None:  # a single commit: the columns, no rows
        return pd.DataFrame(columns=case + ["commit_a", "commit_b"] + COMPARE_COLUMNS)
    picked = ["value", "q25", "q75", "status"]
    a = table.loc[table["commit"] == commits[0], case + picked]
    b = table.loc[table["commit"] == commits[1], case + picked]
    merged = a.merge(b, on=case, how="outer", suffixes=("_a", "_b"))
    merged[["status_a", "status_b"]] = merged[["status_a", "status_b"]].fillna("missing")
    both_ok = (merged["status_a"] == "ok") & (merged["status_b"] == "ok")
    value_a, value_b = merged["value_a"], merged["value_b"]
    with np.errstate(divide="ignore", invalid="ignore"):
        # Equal values (two zero errors included) are a ratio of exactly 1.
        ratio = (value_b / value_a).mask(value_a == value_b, 1.0)
    merged["ratio"] = ratio.where(both_ok)
    merged["iqr_overlap"] = ((merged["q25_a"] <= merged["q75_b"]) & (merged["q25_b"] <= merged["q75_a"])
                             ).where(merged[["q25_a", "q75_a", "q25_b", "q75_b"]].notna().all(axis=1))
    increased = both_ok & (merged["ratio"] >= factor)
    decreased = both_ok & (merged["ratio"] <= 1 / factor)
    merged["changed"] = increased | decreased
    merged["change"] = np.select([~both_ok, increased, decreased],
                                 ["n/a", "increased", "decreased"], "unchanged")
    merged.insert(len(case), "commit_a", commits[0])
    merged.insert(len(case) + 1, "commit_b", commits[1])
    return merged[case + ["commit_a", "commit_b"] + COMPARE_COLUMNS].reset_index(drop=True)
