"""The reader on results a real `asv run` wrote (tests/fixtures/asv_results) and on
variants of them: one tidy row per benchmark x parameters x commit x machine x env."""
import math

import numpy as np
import pandas as pd
import pytest

from fixtures.asv_variants import (FIXTURE, MACHINE, add_commit, case_index, column,
                                   copy_results, load, raw_value, results_files, save)
from scipy_layers.reports import read_results
from scipy_layers.reports.reader import COLUMNS

RAW = load(results_files(FIXTURE)[0])
FB = "bench_conv2d.Conv2d.time_forward_backward"


@pytest.fixture(scope="module")
def table():
    return read_results(FIXTURE)


def test_columns_and_one_row_per_case(table):
    assert list(table.columns) == COLUMNS
    expected_rows = sum(math.prod(len(p) for p in row[column(RAW, "params")])
                        for row in RAW["results"].values())
    assert len(table) == expected_rows
    assert not table.duplicated(["benchmark", "implementation", "size", "kernel", "dtype",
                                 "device", "threads", "quantity", "commit", "machine", "env"]).any()


def test_values_stats_and_run_columns_come_from_the_file(table):
    row = table[(table["benchmark"] == FB) & (table["implementation"] == "scipy")
                & (table["size"] == "127x127") & (table["kernel"] == "3x3")
                & (table["dtype"] == "float64") & (table["device"] == "cpu")].squeeze()
    case = dict(implementation="scipy", size="127x127", kernel="3x3", dtype="float64", device="cpu")
    assert row["value"] == raw_value(RAW, FB, **case)
    assert row["q25"] == raw_value(RAW, FB, "stats_q_25", **case)
    assert row["q75"] == raw_value(RAW, FB, "stats_q_75", **case)
    assert row["ci99_a"] == raw_value(RAW, FB, "stats_ci_99_a", **case)
    assert row["ci99_b"] == raw_value(RAW, FB, "stats_ci_99_b", **case)
    assert row["number"] == raw_value(RAW, FB, "stats_number", **case)
    assert row["repeat"] == raw_value(RAW, FB, "stats_repeat", **case)
    assert (row["status"], row["unit"], row["layer"], row["kind"]) == ("ok", "seconds", "conv2d", "timings")
    assert row["measurement"] == "forward+backward"
    assert row["commit"] == RAW["commit_hash"] and row["env"] == RAW["env_name"]
    assert row["machine"] == MACHINE
    assert row["commit_date"] == pd.Timestamp(RAW["date"], unit="ms", tz="UTC")
    assert row["version"] == RAW["results"][FB][column(RAW, "version")]


def test_parameters_are_plain_strings_and_absent_ones_blank(table):
    assert set(table.loc[table["layer"] == "conv2d", "kernel"]) >= {"3x3", "15x15"}
    assert table.loc[table["layer"] == "fft_abs", "kernel"].isna().all()
    threads = table[table["kind"] == "threads"]
    assert set(threads["threads"]) == {"1", "all"}
    assert (table.loc[table["kind"] != "threads", "threads"] == "1").all()
    assert not table["size"].str.contains("'").any()


def test_measurements_and_units_follow_the_naming_contract(table):
    by_method = table.assign(method=table["benchmark"].str.rsplit(".", n=1).str[-1])
    labels = by_method.groupby("method")["measurement"].unique()
    assert set(labels["time_forward"]) == {"forward"}
    assert set(labels["time_backward"]) == {"backward"}
    assert set(labels["track_peak_memory_forward_backward"]) == {"peak memory"}
    assert set(labels["track_threads_in_force"]) == {"threads in force"}
    assert set(labels["track_max_rel_error"]) == {
        f"max rel error of {q}" for q in ("output", "grad_input", "grad_filter", "grad_bias")}
    units = by_method.groupby("method")["unit"].first()
    assert units["track_peak_memory_forward_backward"] == "bytes"
    assert units["track_max_abs_error"] == "absolute error"


def test_skipped_results_are_kept_and_marked(table):
    assert set(table["status"]) == {"ok", "skipped"}  # the real run had no failures
    skipped = table[table["status"] == "skipped"]
    assert skipped["value"].isna().all()
    assert set(skipped.loc[skipped["benchmark"] == FB, "device"]) >= {"cuda"}


@pytest.fixture
def variant(tmp_path):
    return copy_results(tmp_path / "results")


def test_failed_results_are_kept_and_marked(variant):
    path = results_files(variant)[0]
    data = load(path)
    index = case_index(data, FB, implementation="scipy", size="16x16", kernel="3x3",
                       dtype="float64", device="cpu")
    data["results"][FB][column(data, "result")][index] = None
    save(path, data)
    failed = read_results(variant).query("status == 'failed'")
    assert len(failed) == 1 and failed["value"].isna().all()
    assert failed.squeeze()[["benchmark", "implementation", "size"]].tolist() == [FB, "scipy", "16x16"]


def test_a_benchmark_whose_version_changed_is_outdated(variant):
    benchmarks = load(variant / "benchmarks.json")
    benchmarks[FB]["version"] = "a-newer-version"
    save(variant / "benchmarks.json", benchmarks)
    table = read_results(variant)
    assert (table.loc[table["benchmark"] == FB, "status"] == "outdated").all()
    assert (table.loc[table["benchmark"] != FB, "status"] != "outdated").all()


def test_every_commit_and_machine_is_read(variant):
    add_commit(variant, "b" * 40, days_later=1)
    other = variant / "other-machine"
    other.mkdir()
    data = load(results_files(FIXTURE)[0])
    data["params"]["machine"] = "other-machine"
    save(other / results_files(FIXTURE)[0].name, data)
    table = read_results(variant)
    runs = table.groupby(["machine", "commit"]).size()
    assert len(runs) == 3 and runs.nunique() == 1
    # Oldest first on each machine.
    own = table[table["machine"] == MACHINE]
    assert own["commit_date"].is_monotonic_increasing
    assert own["commit"].iloc[-1] == "b" * 40


def test_a_new_one_valued_parameter_gets_its_column(variant):
    """A Threads class that gains a one-valued device parameter lines up; its other
    benchmark, still without it, keeps the column empty."""
    name = "bench_fft_abs.FFTAbsThreads.time_forward_backward"
    benchmarks = load(variant / "benchmarks.json")
    benchmarks[name]["param_names"] += ["device"]
    save(variant / "benchmarks.json", benchmarks)
    path = results_files(variant)[0]
    data = load(path)
    data["results"][name][column(data, "params")] += [["'cpu'"]]
    save(path, data)
    table = read_results(variant)
    assert set(table.loc[table["benchmark"] == name, "device"]) == {"cpu"}
    in_force = table[table["benchmark"] == "bench_fft_abs.FFTAbsThreads.track_threads_in_force"]
    assert in_force["device"].isna().all() and set(in_force["dtype"]) == {"float32"}


def test_class_suffixes_give_the_kind(table):
    kinds = table.groupby("benchmark")["kind"].first()
    assert kinds["bench_conv2d.Conv2d.time_forward"] == "timings"
    assert kinds["bench_conv2d.Conv2dBackward.time_backward"] == "backward"
    assert kinds["bench_conv2d.Conv2dThreads.time_forward_backward"] == "threads"
    assert kinds["bench_conv2d.Conv2dGradients.track_max_rel_error"] == "gradients"
    # A suffix outside the contract becomes its own kind, never mixed with the timings.
    assert kinds["bench_conv2d.Conv2dMethods.time_forward_backward"] == "methods"


def test_a_name_outside_the_contract_keeps_what_can_be_read_from_it():
    # (mutation pass 110: a module not named bench_<layer> is no layer, as split_name says)
    from scipy_layers.reports.naming import split_name
    assert split_name("bench_conv2d.Conv2dThreads.time_forward_backward") == (
        "conv2d", "Conv2dThreads", "time_forward_backward")
    assert split_name("helpers.Helper.time_it") == ("", "Helper", "time_it")
    assert split_name("bench_fft_abs.time_plain") == ("fft_abs", "", "time_plain")


def test_a_benchmark_gone_from_benchmarks_json_is_a_timing_only_if_its_method_is_time_(variant):
    """Results of a benchmark removed or renamed since stay (outdated): a time_ method's
    unit is seconds, a track's is unknown, never read as a timing (mutation pass 115)."""
    benchmarks = load(variant / "benchmarks.json")
    track = "bench_conv2d.Conv2dGradients.track_max_rel_error"
    for name in (FB, track):
        del benchmarks[name]
    save(variant / "benchmarks.json", benchmarks)
    table = read_results(variant)
    gone = table[table["benchmark"].isin([FB, track])]
    assert set(gone["status"]) == {"outdated"}
    assert set(gone.loc[gone["benchmark"] == FB, "unit"]) == {"seconds"}
    assert gone.loc[gone["benchmark"] == track, "unit"].isna().all()
    assert set(gone.loc[gone["benchmark"] == track, "kind"]) == {"gradients"}


def test_rows_under_generic_names_say_nothing_of_their_threads(variant):
    """Rows whose parameters are named param1, ... (a benchmark renamed or removed
    since) leave threads blank: the one-thread default is only for benchmarks known to
    have no threads parameter, and a renamed Threads class ran at several (pass 150)."""
    threads_bench = "bench_fft_abs.FFTAbsThreads.time_forward_backward"
    benchmarks = load(variant / "benchmarks.json")
    for name in (FB, threads_bench):
        del benchmarks[name]
    save(variant / "benchmarks.json", benchmarks)
    table = read_results(variant)
    gone = table[table["benchmark"].isin([FB, threads_bench])]
    assert len(gone) and gone["threads"].isna().all() and gone["param1"].notna().all()
    kept = table[~table["benchmark"].isin([FB, threads_bench])]
    assert kept["threads"].notna().all() and "1" in set(kept["threads"])
    in_force = kept[kept["benchmark"] == "bench_fft_abs.FFTAbsThreads.track_threads_in_force"]
    assert set(in_force["threads"]) == set(read_results(FIXTURE).query(
        "benchmark == @threads_bench")["threads"]) and len(set(in_force["threads"])) > 1


def test_parameters_asv_itself_named_param1_keep_the_one_thread_default(variant):
    """asv names a benchmark's parameters param1, param2, ... where it sets no
    param_names: those names are real (in benchmarks.json, the row's own), the benchmark
    has no threads parameter, and it ran at one thread. Before hostile pass 156 such rows
    read as a renamed benchmark's, threads blank (out of the summary, plots and bounds)."""
    benchmarks = load(variant / "benchmarks.json")
    count = len(benchmarks[FB]["param_names"])
    benchmarks[FB]["param_names"] = [f"param{i + 1}" for i in range(count)]
    save(variant / "benchmarks.json", benchmarks)
    table = read_results(variant)
    rows = table[table["benchmark"] == FB]
    assert len(rows) and set(rows["threads"]) == {"1"} and rows["param1"].notna().all()
    # the same parameter grid read for a benchmark gone from benchmarks.json (stand-in
    # names, threads unknown) in the same table keeps its own blank threads
    data = load(results_files(variant)[0])
    data["results"]["bench_conv2d.Gone.time_forward_backward"] = data["results"][FB]
    save(results_files(variant)[0], data)
    table = read_results(variant)
    assert set(table.loc[table["benchmark"] == FB, "threads"]) == {"1"}
    assert table.loc[table["benchmark"] == "bench_conv2d.Gone.time_forward_backward",
                     "threads"].isna().all()


def test_a_benchmark_of_no_parameters_gone_from_benchmarks_json_reads(variant):
    """A benchmark without parameters (asv stores params [] and one result), renamed or
    removed since: its none match benchmarks.json's none (no entry), and the reader
    raised KeyError on the missing entry (hostile pass 156); now its one row reads."""
    path = results_files(variant)[0]
    data = load(path)
    row = [[] if c == "params" else v[:1] if isinstance(v, list) else v
           for c, v in zip(data["result_columns"], data["results"][FB])]
    data["results"]["bench_conv2d.Gone.time_forward_backward"] = row
    save(path, data)
    table = read_results(variant)
    gone = table[table["benchmark"] == "bench_conv2d.Gone.time_forward_backward"]
    assert len(gone) == 1 and list(gone["threads"]) == ["1"]
    assert gone["value"].iloc[0] == data["results"][FB][column(data, "result")][0]


def test_a_module_without_its_plain_class_still_reads_each_suffix():
    """No class begins every other (the plain Conv2d gone, its views left): each class's
    kind comes from its own suffix, and a class with none is the plain timings (mutation
    pass 115)."""
    from scipy_layers.reports.naming import kinds
    names = ["bench_conv2d.Conv2dThreads.time_forward_backward",
             "bench_conv2d.Conv2dBackward.time_backward",
             "bench_conv2d.Conv2dGradients.track_max_rel_error", "bench_conv2d.Other.time_forward"]
    assert kinds(names) == dict(zip(names, ["threads", "backward", "gradients", "timings"]))


def test_many_commits_stack_up(variant):
    for i in range(20):
        add_commit(variant, f"{i + 1:08x}" + "0" * 32, days_later=i + 1)
    table = read_results(variant)
    assert len(table) == 21 * len(read_results(FIXTURE))
    assert np.isfinite(table.loc[table["status"] == "ok", "value"]).all()


def test_parameter_names_follow_the_values_where_the_order_changed():
    """Hostile pass 150: asv stores no parameter names in results files; a file written
    before its benchmark's parameters were reordered is named by the one order in which
    each position's values meet benchmarks.json's values for the name. Names stand where
    the order fits, or where no order fits (a parameter's values all replaced); where
    several orders fit, generic names, which nothing is matched by."""
    from scipy_layers.reports.params import names_in_order
    names = ("implementation", "dtype", "size")
    listed = [["'scipy'", "'native'"], ["'float32'"], ["'16x16'", "'32x32'"]]
    old_order = [["'native'", "'scipy'"], ["'16x16'", "'127x127'"], ["'float32'"]]
    assert names_in_order(names, listed, old_order) == ("implementation", "size", "dtype")
    assert names_in_order(names, listed, [listed[0], listed[1], ["'64x64'"]]) == names
    assert names_in_order(names, listed, [listed[0], listed[1], listed[2]]) == names
    assert names_in_order(names, listed, [["'native'"], ["'8x8'"], ["'float32'"]]) == names
    assert names_in_order(names, None, old_order) == names  # (no params listed)
    twins = ("a", "b", "c")
    both = [["'x'"], ["'1'", "'2'"], ["'1'", "'2'"]]
    assert names_in_order(twins, both, [["'1'"], ["'x'"], ["'2'"]]) == ("param1", "param2",
                                                                        "param3")


def test_parameter_names_stand_where_a_value_replaced_overlaps_another_parameter():
    """Hostile pass 152: a file never reordered, one parameter's values replaced since
    (channels 4, 16, now 2, 8), where they overlap another's (batch 1, 2, 4): only the
    swapped order met every position, so the two were read swapped and A's (batch 2,
    channels 4) was compared with B's (batch 4, channels 2). The names' own order meets
    more of the row's values: they stand; a real reorder still names them by value."""
    from scipy_layers.reports.params import names_in_order
    names = ("batch", "channels")
    listed = [["1", "2", "4"], ["2", "8"]]
    assert names_in_order(names, listed, [["1", "2", "4"], ["4", "16"]]) == names
    assert names_in_order(names, listed, [["2", "8"], ["1", "4"]]) == ("channels", "batch")
    assert names_in_order(names, listed, [["8"], ["4"]]) == ("channels", "batch")
