"""The CI gate and the comparison's short account: what in compare.csv should stop a
pull request (a confirmed slowdown of a numpy/scipy implementation, one of its timings
that ran at A and fails or is skipped at B, or a gradient error that jumped), one line
per finding, and the counts the summary and the command print."""
from __future__ import annotations

import pandas as pd

from .compare import CHANGED, NOW_SKIPPED, TIME_UNIT, control_caveat, native_control
from .markdown import printable
from .naming import NATIVE

CASE_PARTS = ["size", "kernel", "conv", "dtype", "device", "threads", "quantity", "layout",
              "values"]


def case_label(row: pd.Series, with_env: bool = False) -> str:
    """'conv2d scipy forward+backward 256x256 3x3 float32 cpu (machine m)'; with
    ``with_env`` (the comparison holds several asv environments) '(m, env e)', so the
    same case in two environments reads as two."""
    parts = [str(row[c]) for c in CASE_PARTS if c in row and str(row[c]) not in ("", "nan")
             and not (c == "threads" and row[c] == "1")]
    label = " ".join([row["layer"], row["implementation"], row["measurement"], *parts])
    label += f" ({row['machine']}" + (f", env {row['env']})" if with_env else ")")
    return printable(label)  # (one line each, names from results files: no control chars)


def several_envs(compare: pd.DataFrame) -> bool:
    return compare["env"].nunique() > 1


def slowdowns(compare: pd.DataFrame) -> pd.DataFrame:
    """Timed cases of a non-native implementation with verdict slower. (Native cases are
    the A/A control: their calls are false alarms, reported, never gated on.)"""
    return compare[(compare["verdict"] == "slower") & (compare["implementation"] != NATIVE)]


def new_failures(compare: pd.DataFrame) -> pd.DataFrame:
    """Timings of a non-native implementation that ran at A and fail at B: the layer (or
    its benchmark) now raises, which no speed verdict can show."""
    return compare[(compare["unit"] == TIME_UNIT) & (compare["implementation"] != NATIVE)
                   & (compare["status_a"] == "ok") & (compare["status_b"] == "failed")]


def new_skips(compare: pd.DataFrame) -> pd.DataFrame:
    """Timings of a non-native implementation that ran at A and are skipped at B (asv's
    NaN): its setup now raises NotImplementedError, or the implementation is gone from
    the registry; no speed verdict can show that either. A case missing at B is not
    one: a run of part of the suite (asv run -b) leaves most cases missing."""
    return compare[(compare["unit"] == TIME_UNIT) & (compare["implementation"] != NATIVE)
                   & (compare["verdict"] == NOW_SKIPPED)]


def gradient_regressions(compare: pd.DataFrame) -> pd.DataFrame:
    return compare[compare["gradient_regression"].fillna(False).astype(bool)]


def _ok_at_both(compare: pd.DataFrame) -> pd.Series:
    return (compare["status_a"] == "ok") & (compare["status_b"] == "ok")


def measured_in_both(compare: pd.DataFrame) -> int:
    """Cases measured at both commits: 0 when the commits share no machine or asv
    environment, or B failed everywhere (a gate over nothing must not pass)."""
    return int(_ok_at_both(compare).sum())


def timings_measured_in_both(compare: pd.DataFrame) -> pd.DataFrame:
    """The rows of the timings (not memory, threads or gradient errors) measured at both
    commits: those a speed verdict can be made of."""
    return compare[(compare["unit"] == TIME_UNIT) & _ok_at_both(compare)]


def one_round_note(compare: pd.DataFrame, round_size: int | None) -> str | None:
    """The gate's note where it could judge no speed: without a round size each commit's
    samples are one round, every timing measured at both is inconclusive, and the gate
    passes on failures, skips and gradients alone (hostile pass 148: it said nothing)."""
    if round_size:
        return None
    timed = len(timings_measured_in_both(compare))
    if not timed:
        return None
    return (f"gate: note: no --round-size, so each commit's samples are one round and none of "
            f"the {timed} timing(s) measured at both could be called slower: this gate judged "
            "failures, skips and gradients only (give --round-size N, the asv -a repeat=N of "
            "the compared runs, as make compare does)")


def one_round_each_note(compare: pd.DataFrame, round_size: int | None) -> str | None:
    """The note where a round size was given but every timing measured at both commits
    holds one round a side (its samples are one round of ``round_size``, as asv run -a
    repeat=N or asv continuous leave them): no variance, no p-value, every verdict
    inconclusive, so the gate judged no speed however much slower B is (hostile pass
    150: it said only "0 finding(s)" where asv continuous said PERFORMANCE DECREASED)."""
    if not round_size:
        return None
    both = timings_measured_in_both(compare)
    if both.empty or both["p_value"].notna().any():
        return None
    return (f"gate: note: at --round-size {round_size} each commit's samples are one round "
            f"in every one of the {len(both)} timing(s) measured at both (asv run -a "
            f"repeat={round_size} once, as asv continuous runs it), so none could be called "
            "slower: this gate judged failures, skips and gradients only (time two or more "
            "rounds a side: asv run --interleave-rounds -a rounds=R, as make compare does)")


def only_changed_environments(compare: pd.DataFrame) -> bool:
    """Whether every timing measured at both commits ran in another environment at B
    (verdict "environment changed", never a speed verdict): then no speed was compared,
    and a gate over that must not pass any more than one over nothing."""
    both = timings_measured_in_both(compare)
    return not both.empty and bool((both["verdict"] == "environment changed").all())


def findings(compare: pd.DataFrame) -> list[str]:
    """One line per finding that fails the gate."""
    env = several_envs(compare)
    lines = [f"slower: {case_label(r, env)}: B/A {r['ratio']:.3g} "
             f"[{r['ci_low']:.3g}, {r['ci_high']:.3g}], q={r['q_value']:.2g}"
             for _, r in slowdowns(compare).iterrows()]
    lines += [f"failed: {case_label(r, env)}: ran at A, fails at B"
              for _, r in new_failures(compare).iterrows()]
    lines += [f"{NOW_SKIPPED}: {case_label(r, env)}: ran at A, skipped at B (asv's NaN: setup "
              "now skips it, or the implementation is gone)"
              for _, r in new_skips(compare).iterrows()]
    lines += [f"gradient regression: {case_label(r, env)}: {r['gradient_change']}"
              for _, r in gradient_regressions(compare).iterrows()]
    return lines


VERDICT_ORDER = ["slower", "faster", "unchanged", "inconclusive", "environment changed",
                 "missing", "failed", "outdated", NOW_SKIPPED, "skipped"]


def verdict_counts(compare: pd.DataFrame) -> str:
    """'2 slower, 40 inconclusive, 170 skipped' over the timed cases."""
    counts = compare.loc[compare["unit"] == "seconds", "verdict"].value_counts()
    return ", ".join(f"{counts[v]} {v}" for v in VERDICT_ORDER if counts.get(v, 0)) or "no timed cases"


def account(compare: pd.DataFrame, threshold: float) -> list[str]:
    """Verdict counts, the native control's false-alarm count and environment changes,
    as lines for the command's output."""
    lines = [f"{compare['commit_a'].iloc[0][:8]} -> {compare['commit_b'].iloc[0][:8]}, "
             f"threshold {threshold * 100:.3g}%: {verdict_counts(compare)}"]
    changed, total = native_control(compare)
    rate = f" ({changed / total:.1%})" if total else ""
    lines.append(f"native control: {changed} of {total} native timings called "
                 f"{' or '.join(CHANGED)}{rate}, the false-alarm rate of this run"
                 + control_caveat(total))
    flagged = len(gradient_regressions(compare))
    if flagged:
        lines.append(f"gradient regressions: {flagged}")
    if (compare["verdict"] == "environment changed").any():
        lines.append("environment changed between the commits: " + printable(
            compare.loc[compare["env_difference"] != "", "env_difference"].iloc[0]))
    return lines
