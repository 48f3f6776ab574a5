"""compare.csv: two commits side by side, per case (benchmark x parameters x machine x
env), with a statistical verdict for every time, the native twins as an A/A control,
gradient-error jumps flagged beside the speed, and a note where the two commits ran in
different environments. The statistics are in ``stats`` (why they are what they are)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from . import stats
from .environment import ENV_COLUMNS, differences
from .compared_cases import check_compared_cases, in_cases
from .gradients import gradient_is_exact, tolerance_by_name
from .naming import NATIVE
from .tables import param_columns, with_blank_params

DEFAULT_THRESHOLD = 0.05  # changes under 5% are "unchanged": below what matters here
ALPHA = 0.05              # false discovery rate of the faster/slower calls
JUMP_FACTOR = 10          # a gradient error growing 10x (above a floor) is a regression
JUMP_FLOOR = 0.01         # ... of the tolerance: 1e-16 -> 1e-15 is rounding, not a jump
TIME_UNIT = "seconds"
CHANGED = ("faster", "slower")
NOW_SKIPPED = "now skipped"  # ok at A, skipped (asv's NaN) at B
DECIDED = (*CHANGED, "unchanged", "inconclusive")
RESULT_COLUMNS = [
    "commit_a", "commit_b", "status_a", "status_b", "value_a", "value_b", "rounds_a",
    "rounds_b", "ratio", "ci_low", "ci_high", "p_value", "q_value", "p_rank",
    "native_ratio_change", "native_ratio_change_low", "native_ratio_change_high", "verdict",
    "gradient_regression", "gradient_change", "env_differs", "env_difference"]


def case_columns(table: pd.DataFrame) -> list[str]:
    return ["layer", "kind", "benchmark", "measurement", "unit", *param_columns(table),
            "machine", "env"]


def compare_table(timings: pd.DataFrame, commits: tuple[str, str] | None,
                  threshold: float = DEFAULT_THRESHOLD, round_size: int | None = None,
                  cases: dict[str, list[str]] | None = None,
                  benchmarks: dict | None = None) -> pd.DataFrame:
    """Commit A (before) and B (after) side by side; ``timings`` from read_results
    (with_samples=True for the statistics; without samples each commit is one round).
    ``round_size``: the samples per round the runs used (asv's -a repeat=N). ``cases``
    (compared_cases.read_compared_cases; with ``benchmarks``, benchmarks.json, which they
    must match: check_compared_cases): the cases the comparison ran. asv's NaN is a skip only among
    them: a result file holds NaN, too, for every case a run did not select, so outside
    them it is no result ("missing")."""
    table = with_blank_params(timings)
    if cases is not None:
        if benchmarks is None:
            raise TypeError("compare_table: cases need benchmarks (benchmarks.json)")
        check_compared_cases(cases, benchmarks)
        unasked = ~in_cases(table, cases, benchmarks) & (table["status"] == "skipped")
        table.loc[unasked, "status"] = "missing"
    case = case_columns(table)
    if commits is None:  # a single commit: the columns, no rows
        return pd.DataFrame(columns=case + RESULT_COLUMNS)
    picked = ["value", "status", *ENV_COLUMNS, *(["samples"] if "samples" in table else [])]
    a = table.loc[table["commit"] == commits[0], case + picked]
    b = table.loc[table["commit"] == commits[1], case + picked]
    merged = a.merge(b, on=case, how="outer", suffixes=("_a", "_b"), sort=False)
    merged.insert(len(case), "commit_a", commits[0])
    merged.insert(len(case) + 1, "commit_b", commits[1])
    merged[["status_a", "status_b"]] = merged[["status_a", "status_b"]].fillna("missing")
    both_ok = (merged["status_a"] == "ok") & (merged["status_b"] == "ok")
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = (merged["value_b"] / merged["value_a"]).mask(merged["value_a"] == merged["value_b"], 1.0)
    merged["ratio"] = ratio.where(both_ok)
    timed = both_ok & (merged["unit"] == TIME_UNIT) & (merged["value_a"] > 0)
    _timing_statistics(merged, timed, round_size)
    _native_ratio_change(merged, case)
    _environments(merged)
    merged["verdict"] = _verdicts(merged, threshold)
    _gradient_regressions(merged)
    return merged[case + RESULT_COLUMNS].reset_index(drop=True)


def _timing_statistics(merged: pd.DataFrame, timed: pd.Series, round_size: int | None) -> None:
    """rounds, ci, p (moderated t on log round medians), q (BH over every timed case),
    p_rank (Mann-Whitney U on round medians); ``_se``/``_df`` kept for the native ratio."""
    n = len(merged)
    cols = {c: np.full(n, np.nan) for c in ("rounds_a", "rounds_b", "ci_low", "ci_high",
                                            "p_value", "p_rank", "_se", "_df")}
    index = np.flatnonzero(timed.to_numpy())
    logs, variances, dfs, groups = {}, np.full(n, np.nan), np.zeros(n), {}
    for i in index:
        row = merged.iloc[i]
        sides = [stats.log_round_medians(_samples(row, s), round_size) for s in ("a", "b")]
        logs[i] = sides
        variances[i], dfs[i] = stats.within_variance(*sides)
        key = (row["machine"], row["env"], stats.duration_group(row["value_a"]))
        groups.setdefault(key, []).append(i)
    everything = stats.fit_prior(variances[index], dfs[index])
    for members in groups.values():
        members = np.asarray(members)
        enough = (dfs[members] > 0).sum() >= stats.MIN_GROUP
        prior = stats.fit_prior(variances[members], dfs[members]) if enough else everything
        for i in members:
            log_a, log_b = logs[i]
            variance, df = stats.moderated(variances[i], int(dfs[i]), prior)
            with np.errstate(divide="ignore"):  # a time of 0 at B: no test (inconclusive)
                log_ratio = float(np.log(merged["ratio"].iat[i]))
            p, low, high = stats.t_interval(log_ratio, variance, df, len(log_a), len(log_b))
            se = np.sqrt(variance * (1 / len(log_a) + 1 / len(log_b)))
            values = dict(rounds_a=len(log_a), rounds_b=len(log_b), ci_low=low, ci_high=high,
                          p_value=p, p_rank=stats.rank_p(log_a, log_b), _se=se, _df=df)
            for column, value in values.items():
                cols[column][i] = value
    for column, values in cols.items():
        merged[column] = values
    merged["q_value"] = stats.benjamini_hochberg(merged["p_value"].to_numpy())
    for column in ("rounds_a", "rounds_b"):
        merged[column] = merged[column].astype("Int64")


def _samples(row: pd.Series, side: str):
    """The side's samples, or its one value (asv's median) when none were recorded."""
    samples = row.get(f"samples_{side}")
    return samples if isinstance(samples, np.ndarray) and len(samples) else np.array([row[f"value_{side}"]])


def _native_ratio_change(merged: pd.DataFrame, case: list[str]) -> None:
    """(B / native B) / (A / native A) per non-native timed case, with its t interval:
    machine-speed drift between the commits' runs moves both and cancels."""
    twin = [c for c in case if c != "implementation"]
    native = merged.loc[(merged["implementation"] == NATIVE) & merged["_se"].notna(),
                        twin + ["ratio", "_se", "_df"]]
    joined = merged[twin].merge(native, on=twin, how="left", suffixes=("", "_native"))
    own = merged["_se"].notna() & (merged["implementation"] != NATIVE)
    with np.errstate(divide="ignore", invalid="ignore"):
        log_change = np.log(merged["ratio"].to_numpy() / joined["ratio"].to_numpy())
    se = np.hypot(merged["_se"].to_numpy(), joined["_se"].to_numpy())
    df = np.fmin(merged["_df"].to_numpy(), joined["_df"].to_numpy())
    change, low, high = (np.full(len(merged), np.nan) for _ in range(3))
    for i in np.flatnonzero(own.to_numpy() & np.isfinite(log_change) & np.isfinite(se)):
        quantile = stats.quantile(df[i])
        change[i] = np.exp(log_change[i])
        low[i], high[i] = np.exp(log_change[i] - quantile * se[i]), np.exp(log_change[i] + quantile * se[i])
    merged["native_ratio_change"] = change
    merged["native_ratio_change_low"] = low
    merged["native_ratio_change_high"] = high


def _environments(merged: pd.DataFrame) -> None:
    """env_differs (True/False; empty where a commit has no record) and what differs."""
    differs, text = [], []
    for _, row in merged.iterrows():
        a = pd.Series({c: row.get(f"{c}_a") for c in ENV_COLUMNS})
        b = pd.Series({c: row.get(f"{c}_b") for c in ENV_COLUMNS})
        if not (isinstance(a["cpu"], str) and a["cpu"] and isinstance(b["cpu"], str) and b["cpu"]):
            differs.append(pd.NA)
            text.append("")
            continue
        what = differences(a, b)
        differs.append(bool(what))
        text.append(what)
    merged["env_differs"] = pd.array(differs, dtype="boolean")
    merged["env_difference"] = text


def _verdicts(merged: pd.DataFrame, threshold: float) -> np.ndarray:
    """A time measured at both commits always gets a verdict (a zero time at A, which has
    no ratio to test, is inconclusive); other measurements get none. A result that was
    ok at A and is skipped at B is "now skipped", not merely "skipped": asv's NaN there
    is a setup that now raises NotImplementedError or an implementation gone, a
    change the gate must see (a case skipped on both sides changed nothing)."""
    sa, sb = merged["status_a"], merged["status_b"]

    def either(status):
        return (sa == status) | (sb == status)

    ratio, low, high, q = (merged[c] for c in ("ratio", "ci_low", "ci_high", "q_value"))
    significant = q <= ALPHA
    up, down = 1 + threshold, 1 / (1 + threshold)
    env_changed = merged["env_differs"].fillna(False).astype(bool)
    return np.select(
        [either("missing"), either("failed"), either("outdated"),
         (sa == "ok") & (sb == "skipped"), either("skipped"),
         merged["unit"] != TIME_UNIT, env_changed, significant & (ratio >= up),
         significant & (ratio <= down), significant | ((low >= down) & (high <= up))],
        ["missing", "failed", "outdated", NOW_SKIPPED, "skipped",
         "", "environment changed", "slower", "faster", "unchanged"],
        "inconclusive")


def _gradient_regressions(merged: pd.DataFrame) -> None:
    """For gradient errors: did the error jump between A and B, whatever the speed?"""
    flags, notes = [], []
    for _, row in merged.iterrows():
        why = _gradient_jump(row) if row["kind"] == "gradients" else None
        flags.append(pd.NA if row["kind"] != "gradients" else why is not None)
        notes.append("" if why is None else f"{row['value_a']:.3g} -> {row['value_b']:.3g}: {why}")
    merged["gradient_regression"] = pd.array(flags, dtype="boolean")
    merged["gradient_change"] = notes


def _gradient_jump(row: pd.Series) -> str | None:
    """Why a gradient row's error jumped between A and B, or None. asv's NaN (status
    skipped) is a skipped case, a NaN error, or, for the max abs/rel errors, a quantity
    where nothing was compared (no entry finite on both sides; the suite's version 4):
    a figure that goes from a number to NaN is flagged, and one of an exact
    implementation that goes from NaN to above the tolerance too (read as 0 before
    version 4, it crossed the tolerance; the tutorial's knowingly wrong gradient is above
    it wherever it compares anything: hostile pass 102)."""
    if row["status_a"] == "skipped" and row["status_b"] == "ok":
        tolerance = _rel_tolerance(row)
        if (tolerance is not None and float(row["value_b"]) > tolerance
                and gradient_is_exact(row["layer"], row["implementation"])):
            return (f"no figure at A (NaN: nothing compared, or skipped), above the "
                    f"tolerance {tolerance:g} at B")
        return None
    if row["status_a"] != "ok":
        return None
    if row["status_b"] == "failed":
        return "the benchmark failed at B"
    if row["status_b"] == "skipped":
        return "no figure at B (NaN: nothing compared, a NaN error, or a skipped case)"
    if row["status_b"] != "ok":
        return None
    a, b = float(row["value_a"]), float(row["value_b"])
    if np.isinf(b) and np.isfinite(a):
        return "became non-finite (a non-finite pattern unlike native's)"
    if "nonfinite mismatches" in row["measurement"]:
        if b > a:  # any more entries unlike native's is a broken gradient spreading
            return (f"NaN/inf now differ from native's in {b:.0f} entries" if a == 0
                    else f"NaN/inf differ from native's in more entries ({a:.0f} -> {b:.0f})")
        return None
    tolerance = _rel_tolerance(row)
    if tolerance is None:
        return None
    if a <= tolerance < b:
        return f"crossed the tolerance {tolerance:g}"
    if b > JUMP_FACTOR * a and b > JUMP_FLOOR * tolerance:
        return f"grew {b / a:.3g}x" if a > 0 else "grew from 0"
    return None


def _rel_tolerance(row: pd.Series) -> float | None:
    """The dtype's tolerance for a max rel error row; None for other rows and dtypes."""
    if "rel error" not in row["measurement"]:
        return None
    return tolerance_by_name().get(row["dtype"])


# Below this many native verdicts the control shows no false-alarm rate: at 5% a run of
# 20 has 0.36 odds of calling none (a make compare with a small BENCH= has 2 or 4).
FEW_CONTROLS = 20


def control_caveat(total: int) -> str:
    """What the native control's line adds where it has too few verdicts to show this
    run's false-alarm rate (0 of 2 reads as a clean run, and says next to nothing)."""
    if total >= FEW_CONTROLS:
        return ""
    few = (f"{total} are too few to show a false-alarm rate (fewer than {FEW_CONTROLS})"
           if total else "with none, it shows no false-alarm rate")
    return f"; {few}: confirm a verdict by timing both commits again (make compare FRESH=1)"


def native_control(compare: pd.DataFrame) -> tuple[int, int]:
    """(native timed cases called faster or slower, native timed cases with a verdict):
    native torch code is the same in both commits, so each call is a false alarm."""
    native = compare[(compare["implementation"] == NATIVE) & compare["verdict"].isin(DECIDED)]
    return int(native["verdict"].isin(CHANGED).sum()), len(native)
