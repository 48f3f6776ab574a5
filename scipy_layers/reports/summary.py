"""summary.md and the headline table printed by the command: the latest commit on each
machine, per layer, forward+backward time by size and implementation with the ratio to
native, the fraction of the machine's limit each reaches, then the gradient verdicts.
Every table of a machine comes from the one commit its header names (``runs``); where
that commit did not run a layer's timings or gradients, a line says so and names the
most recent commit that did (its figures stay in timings.csv / gradients.csv)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from .comparison import comparison_markdown
from .gradients import layer_spec
from .calibration import CALIBRATION_FILE, Calibration, environment_differences
from .markdown import code, escape, format_seconds, markdown_table
from .naming import DEFAULT_THREADS, NATIVE, PLAIN_KIND
from .runs import (RUN_COLUMNS, dated_out_of_order, latest_commits, latest_runs, newest_first,
                   of_run, run_label, split_runs, varying)
from .tables import with_blank_params

SUMMARY_MEASUREMENT = "forward+backward"
METHODS_KIND = "methods"  # bench_<layer>.<Name>Methods: every numpy/scipy method side by side
LAYER_TYPES_KIND = "layertypes"  # bench_conv2d_nchw.Conv2dNCHWLayerTypes: a conv column
CASE_COLUMNS = ("size", "kernel", "conv", "dtype", "device")  # what a case is, in a table
# "n/a" in a time table (no figure) and in a verdict table (compared nothing) differ:
NO_TIME = "n/a: no figure (not run at this commit, or a ratio with a side skipped or failed)."
NOTHING_COMPARED = "`n/a`: the case compared nothing, no entry finite on both sides"


def size_key(text: str) -> int:
    """'8x256x256' -> 524288 elements; blank or unreadable sizes sort first."""
    try:
        return int(np.prod([int(part) for part in str(text).split("x")]))
    except ValueError:
        return -1


def _row_columns(frame: pd.DataFrame) -> list[str]:
    """The case columns worth a column here: those with more than a blank in them."""
    return [c for c in (*CASE_COLUMNS, "layout", "values")
            if c in frame and (frame[c] != "").any()]


def time_table(timings: pd.DataFrame, speedup: pd.DataFrame, layer: str,
               kind: str = PLAIN_KIND) -> pd.DataFrame:
    """Sizes (and kernel, dtype, device) as rows, implementations as columns, then the
    ratio of each non-native implementation to native. Rows and implementations where
    nothing ran or failed (skipped outside the default grid, no CUDA, not in this
    commit's registry) are left to timings.csv; the caller names them."""
    picked = timings[(timings["layer"] == layer) & (timings["kind"] == kind)
                     & (timings["measurement"] == SUMMARY_MEASUREMENT)
                     & (timings["threads"] == DEFAULT_THREADS)]
    shown = picked["status"].isin(["ok", "failed"])
    picked = picked[picked.groupby([c for c in CASE_COLUMNS if c in picked])["status"].transform(
        lambda s: s.isin(["ok", "failed"]).any())
        & picked["implementation"].isin(picked.loc[shown, "implementation"])]
    if picked.empty:
        return pd.DataFrame()
    rows = _row_columns(picked)
    cells = picked["value"].map(format_seconds).where(picked["status"] == "ok", picked["status"])
    wide = picked.assign(cell=cells).pivot_table(index=rows, columns="implementation",
                                                 values="cell", aggfunc="first")
    others = [i for i in picked["implementation"].unique() if i != NATIVE]
    wide = wide.reindex(columns=[i for i in [NATIVE, *others] if i in wide.columns])
    ratios = speedup[(speedup["layer"] == layer) & (speedup["kind"] == kind)
                     & (speedup["measurement"] == SUMMARY_MEASUREMENT)
                     & (speedup["threads"] == DEFAULT_THREADS)
                     & speedup["implementation"].isin(others)]
    if not ratios.empty:
        cells = ratios["ratio"].map("{:.2f}".format).where(ratios["ratio"].notna(), "n/a")
        ratio_wide = ratios.assign(cell=cells, column=ratios["implementation"] + "/native").pivot_table(
            index=rows, columns="column", values="cell", aggfunc="first")
        wide = wide.join(ratio_wide[[f"{i}/native" for i in others if f"{i}/native" in ratio_wide]],
                         how="left")
    wide = wide.fillna("n/a").reset_index()
    return wide.sort_values(rows, key=lambda col: col.map(size_key) if col.name in ("size", "kernel") else col)


def constant_columns(table: pd.DataFrame, columns=("dtype", "device", "kernel")) -> dict:
    """Case columns with one value in ``table`` (said once in the caption instead)."""
    return {c: table[c].iloc[0] for c in columns if c in table and table[c].nunique() == 1}


def verdict_table(gradients: pd.DataFrame, layer: str) -> pd.DataFrame:
    picked = gradients[(gradients["layer"] == layer) & (gradients["verdict"] != "skipped")]
    if picked.empty:
        return pd.DataFrame()
    columns = ["implementation", *[c for c in _row_columns(picked)], "worst_quantity"]
    table = picked[columns].copy()
    # NaN: "n/a" where the case compared nothing (every quantity non-finite on both
    # sides: verdict n/a), blank where no current figure is there to judge (outdated,
    # error); a time table's "n/a" is a case not run (reports/README.md, summary.md)
    table["worst rel error"] = picked["worst_rel_error"].map("{:.2g}".format).where(
        picked["worst_rel_error"].notna(), picked["verdict"].where(
            picked["verdict"] == "n/a", ""))
    table["tolerance"] = picked["tolerance"].map("{:.0e}".format)
    table["verdict"] = picked["verdict"]
    if (picked["unmeasured"] != "").any():  # NaN or absent figures: why a case is "error"
        table["unmeasured"] = picked["unmeasured"]
    if "not_compared" in picked and (picked["not_compared"] != "").any():
        # quantities with no entry finite on both sides (native's non-finite there too):
        # the verdict is over the others, n/a where there are none
        table["not compared"] = picked["not_compared"]
    return table.fillna("")


def _captioned(table: pd.DataFrame, title: str, note: str) -> list[str]:
    """A titled markdown table; columns with one value move into the caption."""
    if table.empty:
        return []
    fixed = constant_columns(table)
    caption = "".join(f", {k} {v}" for k, v in fixed.items())
    return [f"{title}{caption}; {note}", "", markdown_table(table.drop(columns=list(fixed))), ""]


def limit_table(timings: pd.DataFrame, layer: str, kind: str = PLAIN_KIND) -> pd.DataFrame:
    """Cases with a bound as rows: the bound, then bound / time per implementation
    (native first), forward+backward at one thread (the calibration's)."""
    picked = timings[(timings["layer"] == layer) & (timings["kind"] == kind)
                     & (timings["measurement"] == SUMMARY_MEASUREMENT)
                     & (timings["threads"] == DEFAULT_THREADS) & (timings["status"] == "ok")
                     & timings["limit_fraction"].notna()]
    if picked.empty:
        return pd.DataFrame()
    rows = _row_columns(picked)
    fractions = picked.assign(cell=picked["limit_fraction"].map("{:.2g}".format)).pivot_table(
        index=rows, columns="implementation", values="cell", aggfunc="first")
    others = [i for i in picked["implementation"].unique() if i != NATIVE]
    fractions = fractions.reindex(columns=[i for i in [NATIVE, *others] if i in fractions.columns])
    bounds = picked.groupby(rows)["bound_time"].first().map(format_seconds).rename("bound")
    wide = pd.concat([bounds, fractions], axis=1).fillna("n/a").reset_index()
    return wide.sort_values(rows, key=lambda col: col.map(size_key) if col.name in ("size", "kernel") else col)


def calibration_line(machine: str, calibration: Calibration | None, run: pd.DataFrame) -> str:
    """Which calibration the bounds of ``machine`` come from, or that there is none; and
    whether ``run`` (its rows at one commit) ran elsewhere, so has none of them."""
    if calibration is None:
        return (f"No calibration for machine {code(machine)} "
                f"({code(f'environments/{machine}/{CALIBRATION_FILE}')} beside the results; "
                "`make bench` writes it): the "
                "limit columns are blank.")
    rate = calibration.rate
    env = calibration.environment
    return (f"Limits of machine {code(machine)} from its calibration of "
            f"{escape(calibration.recorded_at)} (one thread; BLAS {escape(env['blas'])}"
            + (f"; {escape(env['overrides'])}" if env["overrides"] else "")
            + f"): copy {rate('memory_bandwidth') / 1e9:.3g} GB/s, GEMM "
            f"{rate('gemm_float32') / 1e9:.3g} (float32) / {rate('gemm_float64') / 1e9:.3g} "
            f"(float64) GFLOP/s, FFT {rate('fft_float32') / 1e9:.3g} / "
            f"{rate('fft_float64') / 1e9:.3g} GFLOP/s (medians; reports/README.md, "
            "\"The machine's limit\")." + _elsewhere(calibration, run))


def _elsewhere(calibration: Calibration, run: pd.DataFrame) -> str:
    differs = environment_differences(calibration, run.iloc[0])  # (one record a commit)
    return (f" Commit `{run['commit'].iloc[0][:8]}` ran in another environment than the "
            f"calibration ({escape(differs)}): its limit columns are blank." if differs else "")


def summary_markdown(timings, speedup, gradients, compare, threshold: float,
                     calibrations: dict[str, Calibration] | None,
                     commits: pd.DataFrame) -> str:
    """The header (with the calibration behind each machine's bounds), then the
    comparison (slower and faster cases first, the native control's false alarms,
    gradient regressions, the rest in counts), then per layer the latest commit's times,
    ratios, fractions of the machine's limit and gradient verdicts: per machine and asv
    environment where there are several (``runs``), each section headed by its own.
    ``commits``: one commit per machine for every table (``runs.latest_commits(timings)``,
    as build_report computes it for the headline and plots too)."""
    lines = ["# scipy-layers benchmark summary", ""]
    latest_t, latest_s, latest_g = (latest_runs(t, commits) for t in (timings, speedup, gradients))
    keys = varying(latest_t)
    for (machine, commit), run in latest_t.groupby(["machine", "commit"]):
        date = run["commit_date"].iloc[0].strftime("%Y-%m-%d %H:%M UTC")
        envs = run["env"].unique()
        lines += [f"Machine {code(machine)}, commit `{commit[:8]}` ({date}); env(s): "
                  + ", ".join(code(e) for e in envs)
                  + (" (each with its own sections below)" if len(envs) > 1 else ""), ""]
        if calibrations is not None:
            lines += [calibration_line(machine, calibrations.get(machine), run), ""]
    moved = dated_out_of_order(timings)["commit"]
    if len(moved):  # (else "latest" would read as "newest by date" without a word)
        named = ", ".join(f"`{c[:8]}`" for c in moved)
        lines += [f"Commits follow git history, not their dates: {named} "
                  "come after commits dated later (a rebase or a cherry-pick keeps the author "
                  "date; the order is timings.csv's `commit_order`).", ""]
    counts = timings["status"].value_counts()
    lines += ["Results read: " + ", ".join(f"{n} {s}" for s, n in counts.items())
              + " (every row is in timings.csv).", ""]
    lines += comparison_markdown(compare, threshold)
    for run, run_t in split_runs(latest_t):
        label = run_label(run, keys)
        for layer in run_t["layer"].unique():
            lines += _layer_section(layer, run_t, of_run(latest_s, run), of_run(latest_g, run),
                                    f" ({label})" if label else "")
            lines += _ran_elsewhere(layer, run_t, of_run(timings, run), of_run(gradients, run))
    return "\n".join(lines)


def _ran_elsewhere(layer: str, latest_t: pd.DataFrame, run_t: pd.DataFrame,
                   run_g: pd.DataFrame) -> list[str]:
    """Lines for a layer whose timings or gradients did not run at the run's commit
    (``latest_t``'s) but did at an older one of the same run (``run_t``, ``run_g``: all
    its commits): which, so that no one reads the missing table as nothing to report."""
    commit = latest_t["commit"].iloc[0]
    timed = run_t[(run_t["layer"] == layer) & (run_t["kind"] != "gradients")
                  & (run_t["measurement"] == SUMMARY_MEASUREMENT) & (run_t["status"] == "ok")]
    compared = run_g[(run_g["layer"] == layer) & (run_g["verdict"] != "skipped")]
    lines = []
    for what, rows, where in (("forward+backward timings", timed, "timings.csv"),
                              ("gradient results", compared, "gradients.csv")):
        if rows.empty or (rows["commit"] == commit).any():
            continue
        newest = newest_first(rows).iloc[0]
        date = newest["commit_date"].strftime("%Y-%m-%d %H:%M UTC")
        lines += [f"No {what} of {layer} at commit `{commit[:8]}`; the most recent commit "
                  f"with them is `{newest['commit'][:8]}` ({date}): see {where}.", ""]
    return lines


def _layer_section(layer: str, latest_t: pd.DataFrame, latest_s: pd.DataFrame,
                   latest_g: pd.DataFrame, run: str) -> list[str]:
    """One layer's tables from one run's rows (one machine and environment: a pivot of
    two would show one of them unnamed); ``run`` names it in the heading, or is ''."""
    spec = layer_spec(layer)
    lines = [f"## {layer}{run}", "",
             escape(spec.description) if spec else "(not in the registry)", ""]
    by_case = with_blank_params(latest_t)
    times = time_table(by_case, latest_s, layer)
    methods = time_table(by_case, latest_s, layer, METHODS_KIND)
    layer_types = time_table(by_case, latest_s, layer, LAYER_TYPES_KIND)
    lines += _captioned(times, f"{SUMMARY_MEASUREMENT} time (torch at one thread on the "
                        "CPU; every CUDA call synchronised)",
                        "ratio = implementation / native (> 1: slower than native); " + NO_TIME)
    lines += _captioned(methods, f"Every method ({METHODS_KIND} view): {SUMMARY_MEASUREMENT} "
                        "time", "`scipy` is the method the layer's rule picks; " + NO_TIME)
    lines += _captioned(limit_table(by_case, layer), "Fraction of the machine's limit, "
                        f"{SUMMARY_MEASUREMENT} (bound / time; `bound`: the lower bound "
                        "on the time)", "1 = at the limit, the larger the closer.")
    lines += _captioned(layer_types,
                        f"Each kind of conv layer ({LAYER_TYPES_KIND} view; conv: input, "
                        "C_out x kH x kW, then gG groups, sS stride, pP padding, dD "
                        f"dilation): {SUMMARY_MEASUREMENT} time",
                        "ratio = implementation / native (> 1: slower than native); " + NO_TIME)
    lines += _captioned(limit_table(by_case, layer, LAYER_TYPES_KIND),
                        f"Fraction of the machine's limit, {LAYER_TYPES_KIND} view",
                        "bound / time, as above.")
    # implementations with no result but skipped at this commit, in any view or figure
    statuses = latest_t.loc[latest_t["layer"] == layer, ["implementation", "status"]]
    skipped = (statuses["status"] == "skipped").groupby(statuses["implementation"]).all()
    not_run = sorted(skipped.index[skipped])
    if not_run:
        lines += ["Not run at this commit (all skipped): " + ", ".join(not_run) + ".", ""]
    verdicts = verdict_table(latest_g, layer)
    if not verdicts.empty:
        lines += ["Gradient agreement with native (max rel error vs the tolerance; "
                  f"{NOTHING_COMPARED}):", "",
                  markdown_table(verdicts), ""]
    return lines


def _geomean(values: pd.Series) -> float:
    with np.errstate(divide="ignore"):  # a ratio of 0 (a zero time) makes the mean 0
        return float(np.exp(np.log(values.to_numpy(dtype=float)).mean()))


def headline(speedup: pd.DataFrame, gradients: pd.DataFrame,
             commits: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per layer and non-native implementation, at the latest commit: how many
    forward+backward cases ran (plain view; methods view for methods only timed there),
    the geometric mean, min and max of time / native, and the gradient verdicts, both
    of one commit per machine: ``commits`` (``runs.latest_commits`` of every result, as
    summary.md's header names them; default: over these two tables), so a commit that
    ran only the timings has no verdicts here rather than an older commit's. Where
    several machines or asv environments ran, ``machine`` and/or ``env`` lead the
    columns and key the rows: a mean over two environments belongs to neither."""
    if commits is None:
        commits = latest_commits(speedup, gradients)
    latest, verdicts = latest_runs(speedup, commits), latest_runs(gradients, commits)
    runs = [c for c in RUN_COLUMNS if c in varying(latest) or c in varying(verdicts)]
    key = [*runs, "layer", "implementation"]
    ratios = latest[latest["kind"].isin([PLAIN_KIND, METHODS_KIND])
                    & (latest["measurement"] == SUMMARY_MEASUREMENT)
                    & (latest["threads"] == DEFAULT_THREADS) & latest["ratio"].notna()]
    # The plain view where an implementation has one; the methods view for methods
    # timed only there (scipy-direct, ...), so no row of the headline reads 0 cases.
    in_plain = ratios[ratios["kind"] == PLAIN_KIND].groupby(key).size()
    plain_key = pd.MultiIndex.from_frame(ratios[key]).isin(in_plain.index)
    ratios = ratios[(ratios["kind"] == PLAIN_KIND) | ~plain_key]
    stats = ratios.groupby(key).agg(
        cases=("ratio", "size"),
        geomean_ratio=("ratio", _geomean),
        min_ratio=("ratio", "min"), max_ratio=("ratio", "max"))
    verdicts = verdicts[verdicts["verdict"] != "skipped"].groupby(key)["verdict"].agg(
        lambda v: ", ".join(f"{n} {k}" for k, n in v.value_counts().items()))
    table = stats.join(verdicts.rename("gradients"), how="outer").reset_index()
    return table.fillna({"gradients": "", "cases": 0})
