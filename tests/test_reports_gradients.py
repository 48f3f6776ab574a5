"""gradients.csv never calls a broken gradient a pass: an error figure that is NaN or
absent for a quantity the layer has, in a case that otherwise ran, is an ``error``; an
infinite one (the suite's mark for a mismatched non-finite pattern) is a ``fail``. The
suite's ``layout`` and ``values`` parameters are case columns; results without them
read with those columns blank."""
import itertools
import math

import pandas as pd
import pytest
import torch

from fixtures.asv_variants import (FIXTURE, case_index, column, copy_results, load,
                                   results_files, save)
from scipy_layers.agreement import TOLERANCE
from scipy_layers.reports import read_results
from scipy_layers.reports.gradients import gradients_table
from scipy_layers.reports.naming import PARAM_COLUMNS
from scipy_layers.reports.reader import COLUMNS

CONV_REL = "bench_conv2d.Conv2dGradients.track_max_rel_error"
CONV_ABS = "bench_conv2d.Conv2dGradients.track_max_abs_error"
FFT_REL = "bench_fft_abs.FFTAbsGradients.track_max_rel_error"
FFT_ABS = "bench_fft_abs.FFTAbsGradients.track_max_abs_error"
CONV_CASE = dict(implementation="scipy", size="16x16", kernel="3x3", dtype="float64")
CONV_KEY = ("conv2d", "scipy", "16x16", "3x3", "float64")


def with_results(tmp_path, *changes):
    """The real results with ``(benchmark, case, value)`` results set; returns the
    gradients table indexed by layer, implementation, size, kernel, dtype."""
    results = copy_results(tmp_path / "results")
    path = results_files(results)[0]
    data = load(path)
    for benchmark, case, value in changes:
        data["results"][benchmark][column(data, "result")][case_index(data, benchmark, **case)] = value
    save(path, data)
    table = gradients_table(read_results(results))
    return table.set_index(["layer", "implementation", "size", "kernel", "dtype"])


def test_the_real_run_passes_so_the_changes_below_are_what_fails(tmp_path):
    table = with_results(tmp_path)
    assert table.loc[CONV_KEY, "verdict"] == "pass"
    assert table.loc[CONV_KEY, "unmeasured"] == ""


def test_a_nan_relative_error_is_an_error_not_a_pass(tmp_path):
    """Issue 10: one scipy track_max_rel_error NaN (a gradient turned NaN) read as pass."""
    table = with_results(tmp_path, (CONV_REL, {**CONV_CASE, "quantity": "grad_filter"}, math.nan))
    row = table.loc[CONV_KEY]
    assert row["verdict"] == "error"
    assert row["unmeasured"] == "grad_filter_max_rel"
    assert row["status"] == "ok+skipped"
    # The neighbouring cases are untouched.
    assert table.loc[("conv2d", "scipy", "16x16", "3x3", "float32"), "verdict"] == "pass"


def test_a_nan_absolute_error_alone_is_an_error_too(tmp_path):
    table = with_results(tmp_path, (CONV_ABS, {**CONV_CASE, "quantity": "output"}, math.nan))
    assert table.loc[CONV_KEY, "verdict"] == "error"
    assert table.loc[CONV_KEY, "unmeasured"] == "output_max_abs"


def test_a_run_of_the_relative_errors_alone_is_judged_on_them(tmp_path):
    """make compare runs the max rel (and mismatch) tracks alone: every verdict read
    "error" for the max abs figures nobody asked for. A run without any max abs track is
    judged on the max rel ones (the verdict's figure); a NaN among those still errs."""
    results = copy_results(tmp_path / "results")
    path = results_files(results)[0]
    data = load(path)
    for name in [n for n in data["results"] if n.endswith(".track_max_abs_error")]:
        del data["results"][name]
    save(path, data)
    table = gradients_table(read_results(results)).set_index(
        ["layer", "implementation", "size", "kernel", "dtype"])
    measured = table[table["verdict"] != "skipped"]
    assert len(measured) and set(measured["verdict"]) <= {"pass", "expected failure"}
    assert (measured["unmeasured"] == "").all()
    rel = data["results"][CONV_REL][column(data, "result")]
    rel[case_index(data, CONV_REL, **CONV_CASE, quantity="grad_filter")] = math.nan
    save(path, data)
    table = gradients_table(read_results(results)).set_index(
        ["layer", "implementation", "size", "kernel", "dtype"])
    assert table.loc[CONV_KEY, "verdict"] == "error"
    assert table.loc[CONV_KEY, "unmeasured"] == "grad_filter_max_rel"


def test_every_relative_error_nan_with_the_absolute_ones_measured_is_an_error(tmp_path):
    table = with_results(tmp_path, *[(CONV_REL, {**CONV_CASE, "quantity": q}, math.nan)
                                     for q in ("output", "grad_input", "grad_filter", "grad_bias")])
    assert table.loc[CONV_KEY, "verdict"] == "error"
    assert table.loc[CONV_KEY, "unmeasured"] == (
        "output_max_rel+grad_input_max_rel+grad_filter_max_rel+grad_bias_max_rel")


def test_an_infinite_error_fails(tmp_path):
    """+inf is what the suite records when the non-finite pattern differs from native's."""
    table = with_results(tmp_path, (CONV_REL, {**CONV_CASE, "quantity": "grad_bias"}, math.inf),
                         (CONV_ABS, {**CONV_CASE, "quantity": "grad_bias"}, math.inf))
    row = table.loc[CONV_KEY]
    assert row["verdict"] == "fail"
    assert row["worst_rel_error"] == math.inf and row["worst_quantity"] == "grad_bias"
    assert row["unmeasured"] == ""


def test_an_error_of_exactly_the_tolerance_passes(tmp_path):
    """The rule the tests apply, and gradients.csv's: max_rel <= tol is a pass."""
    tolerance = TOLERANCE[torch.float64]
    table = with_results(tmp_path, (CONV_REL, {**CONV_CASE, "quantity": "grad_filter"}, tolerance))
    row = table.loc[CONV_KEY]
    assert row["worst_rel_error"] == tolerance == row["tolerance"]
    assert row["verdict"] == "pass"


def test_an_implementation_the_registry_does_not_know_is_held_to_the_tolerance(tmp_path):
    """Results of an implementation renamed or removed since: no registry entry says its
    gradient is knowingly wrong, so an error above the tolerance fails (never an
    "expected failure")."""
    results = copy_results(tmp_path / "results")
    path = results_files(results)[0]
    data = load(path)
    for name, row in data["results"].items():
        if name.startswith("bench_conv2d.Conv2dGradients."):
            params = row[column(data, "params")]
            params[0] = ["'scipy-gone'" if p == "'scipy'" else p for p in params[0]]
    rel = data["results"][CONV_REL][column(data, "result")]
    rel[case_index(data, CONV_REL, **{**CONV_CASE, "implementation": "scipy-gone"},
                   quantity="grad_input")] = 0.5
    save(path, data)
    table = gradients_table(read_results(results)).set_index(
        ["layer", "implementation", "size", "kernel", "dtype"])
    row = table.loc[("conv2d", "scipy-gone", "16x16", "3x3", "float64")]
    assert bool(row["gradient_is_exact"]) and row["worst_rel_error"] == 0.5
    assert row["verdict"] == "fail"


def test_nan_in_the_tutorials_knowingly_wrong_gradient_is_still_an_error(tmp_path):
    case = dict(implementation="numpy-tutorial", size="16x16", dtype="float32")
    table = with_results(tmp_path, (FFT_REL, {**case, "quantity": "grad_input"}, math.nan))
    assert table.loc[("fft_abs", "numpy-tutorial", "16x16", "", "float32"), "verdict"] == "error"
    # inf there is the expected failure it always was (its gradient is wrong anyway).
    table = with_results(tmp_path / "b", (FFT_REL, {**case, "quantity": "grad_input"}, math.inf))
    assert table.loc[("fft_abs", "numpy-tutorial", "16x16", "", "float32"), "verdict"] == "expected failure"


def test_a_quantity_missing_from_the_results_is_an_error(tmp_path):
    """A file whose conv2d gradient benchmarks lack grad_bias altogether."""
    results = copy_results(tmp_path / "results")
    path = results_files(results)[0]
    data = load(path)
    for name in (CONV_REL, CONV_ABS):
        row = data["results"][name]
        params = row[column(data, "params")]
        keep = [i for i, q in enumerate(params[-1]) if q != "'grad_bias'"]
        width = len(params[-1])
        for key in ("result", "stats_ci_99_a", "stats_ci_99_b", "stats_q_25", "stats_q_75",
                    "stats_number", "stats_repeat"):
            if column(data, key) < len(row) and row[column(data, key)] is not None:
                values = row[column(data, key)]
                row[column(data, key)] = [v for i, v in enumerate(values) if i % width in keep]
        params[-1] = [params[-1][i] for i in keep]
    save(path, data)
    table = gradients_table(read_results(results)).set_index(
        ["layer", "implementation", "size", "kernel", "dtype"])
    row = table.loc[CONV_KEY]
    assert row["verdict"] == "error"
    assert row["unmeasured"] == "grad_bias_max_abs+grad_bias_max_rel"
    # fft_abs has no filter or bias: nothing is missing there.
    fft = table.loc["fft_abs"]
    assert set(fft["verdict"]) == {"pass", "expected failure"}


def test_a_case_with_every_error_nan_is_skipped_as_asv_writes_a_skip(tmp_path):
    changes = [(name, {**CONV_CASE, "quantity": q}, math.nan) for name in (CONV_REL, CONV_ABS)
               for q in ("output", "grad_input", "grad_filter", "grad_bias")]
    table = with_results(tmp_path, *changes)
    assert table.loc[CONV_KEY, "verdict"] == "skipped"


def add_parameter(data, benchmarks, name, param, values):
    """Append a parameter to a benchmark: every old combination repeated once per value
    (row-major, the new parameter varies fastest)."""
    benchmarks[name]["param_names"].append(param)
    benchmarks[name]["params"].append([repr(v) for v in values])
    row = data["results"][name]
    row[column(data, "params")].append([repr(v) for v in values])
    for index, cell in enumerate(row):
        if index != column(data, "params") and isinstance(cell, list):
            row[index] = [v for v in cell for _ in values]


def test_layout_and_values_are_case_columns_after_quantity(tmp_path):
    assert PARAM_COLUMNS[PARAM_COLUMNS.index("quantity") + 1:][:2] == ["layout", "values"]
    results = copy_results(tmp_path / "results")
    path = results_files(results)[0]
    data, benchmarks = load(path), load(results / "benchmarks.json")
    for name in (FFT_REL, FFT_ABS):
        add_parameter(data, benchmarks, name, "layout", ["contiguous", "strided"])
        add_parameter(data, benchmarks, name, "values", ["finite", "nonfinite"])
    # The strided, non-finite scipy case got its non-finite pattern wrong.
    # (case_index reads the fixture's benchmarks.json, which lacks the new parameters.)
    params = data["results"][FFT_REL][column(data, "params")]
    names = benchmarks[FFT_REL]["param_names"]
    wanted = dict(implementation="scipy", size="16x16", dtype="float64", quantity="grad_input",
                  layout="strided", values="nonfinite")
    index, = [i for i, combo in enumerate(itertools.product(*params))
              if dict(zip(names, (c.strip("'") for c in combo))) == wanted]
    data["results"][FFT_REL][column(data, "result")][index] = math.inf
    save(path, data)
    save(results / "benchmarks.json", benchmarks)
    timings = read_results(results)
    assert list(timings.columns) == COLUMNS
    at = COLUMNS.index("quantity")
    assert COLUMNS[at + 1:at + 3] == ["layout", "values"]
    fft = timings[timings["benchmark"] == FFT_REL]
    assert set(fft["layout"]) == {"contiguous", "strided"} and set(fft["values"]) == {"finite", "nonfinite"}
    assert timings.loc[timings["layer"] == "conv2d", ["layout", "values"]].isna().all().all()
    gradients = gradients_table(timings)
    columns = list(gradients.columns)
    assert columns[:8] == ["layer", "implementation", "size", "kernel", "dtype", "device",
                           "layout", "values"]
    scipy = gradients[(gradients["layer"] == "fft_abs") & (gradients["implementation"] == "scipy")
                      & (gradients["size"] == "16x16") & (gradients["dtype"] == "float64")]
    verdicts = scipy.set_index(["layout", "values"])["verdict"]
    assert verdicts[("strided", "nonfinite")] == "fail"
    assert (verdicts.drop(("strided", "nonfinite")) == "pass").all()
    conv = gradients[gradients["layer"] == "conv2d"]
    assert (conv["layout"] == "").all() and (conv["values"] == "").all()


def test_results_without_layout_and_values_read_with_blank_columns():
    timings = read_results(FIXTURE)
    assert timings["layout"].isna().all() and timings["values"].isna().all()
    gradients = gradients_table(timings)
    assert {"layout", "values"} <= set(gradients.columns)
    assert (gradients["layout"] == "").all()
    assert isinstance(gradients, pd.DataFrame)


CONV_MISMATCHES = "bench_conv2d.Conv2dGradients.track_nonfinite_mismatches"


def with_mismatch_counts(tmp_path, counts: dict, *changes):
    """The real results plus the suite's newer ``track_nonfinite_mismatches`` (0 for every
    case but those in ``counts``: quantity -> entries) for the conv layer, and
    ``(benchmark, case, value)`` results set as in ``with_results``."""
    results = copy_results(tmp_path / "results")
    benchmarks = load(results / "benchmarks.json")
    benchmarks[CONV_MISMATCHES] = {**benchmarks[CONV_REL], "name": CONV_MISMATCHES,
                                   "unit": "entries"}
    save(results / "benchmarks.json", benchmarks)
    path = results_files(results)[0]
    data = load(path)
    row = list(data["results"][CONV_REL])
    row[column(data, "result")] = [0.0] * len(row[column(data, "result")])
    data["results"][CONV_MISMATCHES] = row
    for quantity, count in counts.items():
        row[column(data, "result")][case_index(data, CONV_REL, **CONV_CASE, quantity=quantity)] = count
    for benchmark, case, value in changes:
        data["results"][benchmark][column(data, "result")][case_index(data, benchmark, **case)] = value
    save(path, data)
    return gradients_table(read_results(results)).set_index(
        ["layer", "implementation", "size", "kernel", "dtype"])


def test_a_nonfinite_mismatch_count_fails_though_the_finite_errors_pass(tmp_path):
    """asv cannot store inf, so the suite counts mismatched NaN/inf entries apart."""
    clean = with_mismatch_counts(tmp_path / "a", {})
    assert clean.loc[CONV_KEY, "verdict"] == "pass"
    assert clean.loc[CONV_KEY, "grad_input_nonfinite_mismatches"] == 0
    broken = with_mismatch_counts(tmp_path / "b", {"grad_input": 3})
    row = broken.loc[CONV_KEY]
    assert row["verdict"] == "fail" and row["worst_quantity"] == "grad_input"
    assert row["worst_rel_error"] == math.inf and row["grad_input_nonfinite_mismatches"] == 3


def nothing_compared(*quantities):
    """The suite's NaN max abs and rel errors (no entry finite on both sides) of these
    quantities of the conv case."""
    return [(name, {**CONV_CASE, "quantity": q}, math.nan)
            for name in (CONV_REL, CONV_ABS) for q in quantities]


def test_a_quantity_that_compared_nothing_is_not_compared_not_an_error(tmp_path):
    """Hostile pass 93: the suite's errors read 0.0 (a pass) where no entry is finite on
    both sides (a NaN and an inf planted in the image make every grad_filter entry
    non-finite, native's too); they are NaN now, and beside a mismatch count of 0 that
    is "nothing to compare", neither a pass of that quantity nor an error."""
    table = with_mismatch_counts(tmp_path, {}, *nothing_compared("grad_filter"))
    row = table.loc[CONV_KEY]
    assert row["unmeasured"] == "" and row["not_compared"] == "grad_filter"
    assert row["verdict"] == "pass"  # over the quantities compared
    assert row["worst_quantity"] != "grad_filter"


def test_a_case_that_compared_nothing_is_n_a_never_a_pass(tmp_path):
    quantities = ("output", "grad_input", "grad_filter", "grad_bias")
    table = with_mismatch_counts(tmp_path, {}, *nothing_compared(*quantities))
    row = table.loc[CONV_KEY]
    assert row["verdict"] == "n/a"
    assert row["not_compared"] == "output+grad_input+grad_filter+grad_bias"
    assert row["unmeasured"] == "" and math.isnan(row["worst_rel_error"])
    assert table.loc[("conv2d", "scipy", "16x16", "3x3", "float32"), "verdict"] == "pass"


def test_nothing_compared_with_mismatches_fails(tmp_path):
    """All NaN where native is finite: nothing finite on both sides, every entry a
    mismatch: a broken output, so fail (infinite error), not n/a."""
    table = with_mismatch_counts(tmp_path, {"output": 9}, *nothing_compared("output"))
    row = table.loc[CONV_KEY]
    assert row["verdict"] == "fail" and row["worst_quantity"] == "output"
    assert row["worst_rel_error"] == math.inf and row["not_compared"] == ""
    # the whole case so: still fail, never n/a
    quantities = ("output", "grad_input", "grad_filter", "grad_bias")
    table = with_mismatch_counts(tmp_path / "b", {"output": 9}, *nothing_compared(*quantities))
    assert table.loc[CONV_KEY, "verdict"] == "fail"


def test_a_nan_error_without_a_mismatch_count_is_still_an_error(tmp_path):
    """Without the count (older results, or a NaN count) a NaN error cannot be told from
    a broken figure: error, as before."""
    table = with_mismatch_counts(tmp_path, {"grad_filter": math.nan},
                                 *nothing_compared("grad_filter"))
    row = table.loc[CONV_KEY]
    assert row["verdict"] == "error" and row["not_compared"] == ""
    assert row["unmeasured"] == "grad_filter_max_abs+grad_filter_max_rel"


def test_summary_shows_nothing_compared_as_n_a(tmp_path):
    from scipy_layers.reports.summary import verdict_table
    quantities = ("output", "grad_input", "grad_filter", "grad_bias")
    table = with_mismatch_counts(tmp_path, {}, *nothing_compared(*quantities)).reset_index()
    shown = verdict_table(table, "conv2d").set_index(["implementation", "size", "kernel", "dtype"])
    row = shown.loc[("scipy", "16x16", "3x3", "float64")]
    assert row["verdict"] == "n/a" and row["worst rel error"] == "n/a"
    assert row["not compared"] == "output+grad_input+grad_filter+grad_bias"
    assert shown.loc[("scipy", "16x16", "3x3", "float32"), "not compared"] == ""


def _two_commits_with_mismatch_counts(tmp_path, at_a, at_b, versions=None):
    """The real results with the suite's mismatch counts (0 where the case ran) as two
    commits, A and B a day later, with ``(benchmark, case, value)`` changes each;
    ``versions``: benchmark -> the version benchmarks.json gives it (the results keep
    theirs: outdated)."""
    import copy
    results = copy_results(tmp_path / "results")
    benchmarks = load(results / "benchmarks.json")
    benchmarks[CONV_MISMATCHES] = {**benchmarks[CONV_REL], "name": CONV_MISMATCHES,
                                   "unit": "entries"}
    for name, version in (versions or {}).items():
        benchmarks[name] = {**benchmarks[name], "version": version}
    save(results / "benchmarks.json", benchmarks)
    original = results_files(results)[0]
    data = load(original)
    original.unlink()
    row = copy.deepcopy(data["results"][CONV_REL])
    row[column(data, "result")] = [v if v is None or v != v else 0.0
                                   for v in row[column(data, "result")]]
    row[column(data, "version")] = benchmarks[CONV_MISMATCHES]["version"]
    data["results"][CONV_MISMATCHES] = row
    commits = []
    for days, changes in enumerate((at_a, at_b)):
        changed = copy.deepcopy(data)
        changed["commit_hash"] = "ab"[days] * 40
        changed["date"] += days * 24 * 3600 * 1000
        for benchmark, case, value in changes:
            index = case_index(changed, CONV_REL if benchmark == CONV_MISMATCHES else benchmark,
                               **case)
            changed["results"][benchmark][column(changed, "result")][index] = value
        save(original.parent / f"{changed['commit_hash'][:8]}-{changed['env_name']}.json", changed)
        commits.append(changed["commit_hash"])
    return results, commits


def test_the_gate_finds_a_quantity_that_compared_nothing_at_a_and_fails_at_b(tmp_path, capsys):
    """Hostile pass 99 ("n/a -> fail"): grad_filter compared nothing at A (NaN errors,
    no mismatch) and is 0.5 at B, far above float64's 1e-10. Before the suite's
    version 4 A read 0.0 and this "crossed the tolerance"; then compare.csv said
    skipped, no regression, and the gate passed."""
    from scipy_layers.reports.cli import main
    filter_ = {**CONV_CASE, "quantity": "grad_filter"}
    results, (a, b) = _two_commits_with_mismatch_counts(
        tmp_path, nothing_compared("grad_filter"), [(CONV_REL, filter_, 0.5)])
    assert main([str(results), str(tmp_path / "out"), "--commits", a, b, "--gate",
                 "--no-plots"]) == 1
    lines = capsys.readouterr().out.split("\ngate: ")[1].splitlines()[1:]
    assert lines == ["gradient regression: conv2d scipy max rel error of grad_filter 16x16 3x3 "
                     "float64 grad_filter (amd-epyc-2cpu): nan -> 0.5: no figure at A (NaN: "
                     "nothing compared, or skipped), above the tolerance 1e-10 at B"]


def test_outdated_error_figures_are_outdated_not_n_a(tmp_path):
    """Hostile pass 99: error tracks of an older version (outdated) beside current
    mismatch counts read "n/a" (compared nothing), even with 9 mismatched entries. n/a
    is only for a case whose every quantity compared nothing; here the verdict is
    outdated, and fail where a current count shows mismatches (an infinite error)."""
    from scipy_layers.reports.summary import verdict_table
    versions = {CONV_REL: "new", CONV_ABS: "new", CONV_MISMATCHES: "new"}
    results, _ = _two_commits_with_mismatch_counts(
        tmp_path, [], [(CONV_MISMATCHES, {**CONV_CASE, "quantity": "output"}, 9)], versions)
    for path in results_files(results):  # the mismatch counts current, the errors not
        data = load(path)
        data["results"][CONV_MISMATCHES][column(data, "version")] = "new"
        save(path, data)
    gradients = gradients_table(read_results(results))
    table = gradients[gradients["commit"] == "b" * 40].set_index(
        ["layer", "implementation", "size", "kernel", "dtype"])
    conv = table.loc["conv2d"]
    assert (conv["status"] == "ok+outdated").any()
    row = table.loc[CONV_KEY]
    assert row["verdict"] == "fail" and row["worst_rel_error"] == math.inf
    assert row["worst_quantity"] == "output"
    others = conv.drop(CONV_KEY[1:])
    assert set(others["verdict"]) == {"outdated"}
    shown = verdict_table(table.reset_index(), "conv2d")
    assert "n/a" not in set(shown["worst rel error"]) and "n/a" not in set(shown["verdict"])
    assert set(shown.loc[shown["verdict"] == "outdated", "worst rel error"]) == {""}
