"""summary.md's comparison of two commits: the slower and faster cases first, then the
native control's false-alarm count, then gradient regressions and numpy/scipy timings
that ran at A and not at B, then the rest in counts (every case is in compare.csv)."""
from __future__ import annotations

import pandas as pd

from .compare import control_caveat, native_control
from .gate import (case_label, gradient_regressions, new_failures, new_skips, several_envs,
                   verdict_counts)
from .markdown import format_seconds, markdown_table, printable

CHANGED_COLUMNS = ["case", "A", "B", "B/A", "95% CI", "q", "vs native"]


def _changed_table(rows: pd.DataFrame, with_env: bool) -> str:
    table = pd.DataFrame({
        "case": [case_label(r, with_env) for _, r in rows.iterrows()],
        "A": rows["value_a"].map(format_seconds), "B": rows["value_b"].map(format_seconds),
        "B/A": rows["ratio"].map("{:.3g}".format),
        "95% CI": [f"{lo:.3g}-{hi:.3g}" for lo, hi in zip(rows["ci_low"], rows["ci_high"])],
        "q": rows["q_value"].map("{:.2g}".format),
        "vs native": [f"{c:.3g} ({lo:.3g}-{hi:.3g})" if c == c else "" for c, lo, hi in zip(
            rows["native_ratio_change"], rows["native_ratio_change_low"],
            rows["native_ratio_change_high"])],
    }, columns=CHANGED_COLUMNS)
    return markdown_table(table)


def comparison_markdown(compare: pd.DataFrame, threshold: float) -> list[str]:
    lines = ["## Compared commits", ""]
    if compare.empty:
        return lines + ["Only one commit in the results: nothing to compare.", ""]
    a, b = compare["commit_a"].iloc[0][:8], compare["commit_b"].iloc[0][:8]
    lines += [f"`{a}` (A) -> `{b}` (B). Verdicts per timed case from the rounds' medians "
              f"(95% confidence interval of B/A, Benjamini-Hochberg q <= 0.05 to call a "
              f"change, changes under {threshold * 100:.3g}% unchanged; reports/README.md).", ""]
    env = several_envs(compare)  # the case labels name it, else two rows read the same
    for verdict in ("slower", "faster"):  # (each with its largest change first)
        rows = compare[compare["verdict"] == verdict].sort_values(
            "ratio", ascending=verdict == "faster", kind="stable")
        lines += [f"### {verdict.capitalize()} ({len(rows)})", ""]
        lines += [_changed_table(rows, env), ""] if len(rows) else ["None.", ""]
    changed, total = native_control(compare)
    rate = f" ({changed / total:.1%})" if total else ""
    caveat = control_caveat(total).removeprefix("; ")
    lines += ["### Native control", "",
              f"{changed} of {total} native timings got a faster or slower verdict{rate}. "
              "Native torch code is the same in both commits, so each is a false alarm: "
              "this run's observed false-alarm rate." + (f" {caveat[0].upper()}{caveat[1:]}."
                                                        if caveat else ""), ""]
    flagged = gradient_regressions(compare)
    lines += [f"### Gradient regressions ({len(flagged)})", ""]
    if len(flagged):
        table = pd.DataFrame({"case": [case_label(r, env) for _, r in flagged.iterrows()],
                              "change": flagged["gradient_change"].to_list()})
        lines += [markdown_table(table), ""]
    else:
        lines += ["None: no gradient error crossed its tolerance, became non-finite or "
                  "grew tenfold.", ""]
    stopped = pd.concat([new_failures(compare), new_skips(compare)])
    lines += [f"### Ran at A, failed or skipped at B ({len(stopped)})", ""]
    if len(stopped):  # (gate findings too: a layer that now raises has no speed to compare)
        table = pd.DataFrame({"case": [case_label(r, env) for _, r in stopped.iterrows()],
                              "at B": stopped["status_b"].to_list()})
        lines += [markdown_table(table), ""]
    else:
        lines += ["None: every numpy/scipy timing that ran at A ran at B.", ""]
    lines += ["### The rest", "", f"Timed cases: {verdict_counts(compare)}. Every case, "
              "with its figures, is in compare.csv.", ""]
    differs = compare.loc[compare["env_differs"].fillna(False).astype(bool),
                          "env_difference"].map(printable)
    if len(differs):
        lines += ["The commits ran in different environments (their timings are not called "
                  f"faster or slower): {differs.iloc[0]}.", ""]
    return lines
