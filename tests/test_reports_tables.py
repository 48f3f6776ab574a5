"""speedup.csv, gradients.csv and compare.csv, checked against numbers taken straight
from the real asv results file (and variants of it)."""
import pytest
import torch

from fixtures.asv_variants import (FIXTURE, MACHINE, add_commit, case_index, column,
                                   copy_results, load, raw_value, results_files, save)
from scipy_layers.agreement import TOLERANCE
from scipy_layers.reports import ReportError, read_results
from scipy_layers.reports.cli import main
from scipy_layers.reports.gradients import gradients_table
from scipy_layers.reports.compare import compare_table
from scipy_layers.reports.tables import resolve_commits, speedup_table

RAW = load(results_files(FIXTURE)[0])
FB = "bench_conv2d.Conv2d.time_forward_backward"
FFT_ERRORS = "bench_fft_abs.FFTAbsGradients.track_max_rel_error"
CONV_ERRORS = "bench_conv2d.Conv2dGradients.track_max_rel_error"


@pytest.fixture(scope="module")
def table():
    return read_results(FIXTURE)


def test_speedup_ratio_and_bounds_match_the_file(table):
    speedup = speedup_table(table)
    case = dict(size="1024x1024", kernel="15x15", dtype="float64", device="cpu")
    row = speedup[(speedup["benchmark"] == FB) & (speedup["implementation"] == "scipy")
                  & (speedup["size"] == case["size"]) & (speedup["kernel"] == case["kernel"])
                  & (speedup["dtype"] == case["dtype"]) & (speedup["device"] == "cpu")].squeeze()
    scipy = {k: raw_value(RAW, FB, k, implementation="scipy", **case)
             for k in ("result", "stats_q_25", "stats_q_75")}
    native = {k: raw_value(RAW, FB, k, implementation="native", **case)
              for k in ("result", "stats_q_25", "stats_q_75")}
    assert row["time"] == scipy["result"] and row["native_time"] == native["result"]
    assert row["ratio"] == pytest.approx(scipy["result"] / native["result"])
    assert row["ratio_low"] == pytest.approx(scipy["stats_q_25"] / native["stats_q_75"])
    assert row["ratio_high"] == pytest.approx(scipy["stats_q_75"] / native["stats_q_25"])
    assert row["ratio_low"] <= row["ratio"] <= row["ratio_high"]


def test_a_native_time_of_zero_leaves_the_ratio_empty_not_infinite(table):
    """reports/README.md: ratio is empty unless both are ok and native_time > 0 (asv's
    timer resolution, or a hand-made file, can give a native time of 0)."""
    case = ((table["benchmark"] == FB) & (table["size"] == "1024x1024")
            & (table["kernel"] == "15x15") & (table["dtype"] == "float64")
            & (table["device"] == "cpu"))
    zeroed = table.copy()
    zeroed.loc[case & (zeroed["implementation"] == "native"), "value"] = 0.0
    speedup = speedup_table(zeroed)
    row = speedup[(speedup["benchmark"] == FB) & (speedup["implementation"] == "scipy")
                  & (speedup["size"] == "1024x1024") & (speedup["kernel"] == "15x15")
                  & (speedup["dtype"] == "float64") & (speedup["device"] == "cpu")].squeeze()
    assert row["native_time"] == 0 and row["status"] == row["native_status"] == "ok"
    assert row["time"] > 0 and row["ratio"] != row["ratio"]  # NaN, never inf


def test_speedup_has_every_non_native_case_with_skips_marked(table):
    speedup = speedup_table(table)
    assert "native" not in set(speedup["implementation"])
    assert set(speedup["measurement"]) == {"forward", "backward", "forward+backward"}
    times = table[table["measurement"].isin(["forward", "backward", "forward+backward"])]
    assert len(speedup) == (times["implementation"] != "native").sum()
    fft = speedup[speedup["layer"] == "fft_abs"]
    assert set(fft["implementation"]) == {"scipy", "numpy-tutorial"} and (fft["kernel"] == "").all()
    skipped = speedup[(speedup["status"] != "ok") | (speedup["native_status"] != "ok")]
    assert len(skipped) > 0 and skipped["ratio"].isna().all()
    assert speedup.loc[(speedup["status"] == "ok") & (speedup["native_status"] == "ok"), "ratio"].notna().all()
    # Threads rows compare like with like: "all" threads against native at "all" threads.
    threads = speedup[(speedup["kind"] == "threads") & speedup["ratio"].notna()]
    assert set(threads["threads"]) == {"1", "all"}


def test_gradient_verdicts_against_the_tolerance(table):
    gradients = gradients_table(table)
    ran = gradients[gradients["verdict"] != "skipped"]
    assert set(ran.loc[ran["implementation"] == "scipy", "verdict"]) == {"pass"}
    # The tutorial's BadFFTFunction: its gradient is knowingly wrong.
    tutorial = ran[ran["implementation"] == "numpy-tutorial"]
    assert len(tutorial) == 6 and set(tutorial["verdict"]) == {"expected failure"}
    assert not tutorial["gradient_is_exact"].any()
    row = ran[(ran["layer"] == "fft_abs") & (ran["implementation"] == "numpy-tutorial")
              & (ran["size"] == "127x127") & (ran["dtype"] == "float32")].squeeze()
    expected = raw_value(RAW, FFT_ERRORS, implementation="numpy-tutorial", size="127x127",
                         dtype="float32", quantity="grad_input")
    assert row["grad_input_max_rel"] == expected == row["worst_rel_error"]
    assert row["worst_quantity"] == "grad_input"
    assert row["tolerance"] == TOLERANCE[torch.float32]
    # Cases that did not run (methods absent from this commit's registry) are kept, marked.
    skipped = gradients[gradients["verdict"] == "skipped"]
    assert len(skipped) > 0 and skipped["worst_rel_error"].isna().all()
    assert set(skipped["status"]) == {"skipped"}


def test_gradients_columns_per_quantity(table):
    gradients = gradients_table(table)
    for quantity in ("output", "grad_input", "grad_filter", "grad_bias"):
        assert {f"{quantity}_max_abs", f"{quantity}_max_rel"} <= set(gradients.columns)
    fft = gradients[gradients["layer"] == "fft_abs"]
    assert fft["grad_filter_max_rel"].isna().all()


def test_a_wrong_gradient_fails_and_a_failed_benchmark_says_so(tmp_path):
    results = copy_results(tmp_path / "results")
    path = results_files(results)[0]
    data = load(path)
    result = data["results"][CONV_ERRORS][column(data, "result")]
    result[case_index(data, CONV_ERRORS, implementation="scipy", size="16x16", kernel="3x3",
                      dtype="float64", quantity="grad_filter")] = 1e-3
    result[case_index(data, CONV_ERRORS, implementation="scipy", size="127x127", kernel="3x3",
                      dtype="float64", quantity="grad_bias")] = None
    save(path, data)
    gradients = gradients_table(read_results(results)).set_index(
        ["layer", "implementation", "size", "kernel", "dtype"])
    assert gradients.loc[("conv2d", "scipy", "16x16", "3x3", "float64"), "verdict"] == "fail"
    assert gradients.loc[("conv2d", "scipy", "127x127", "3x3", "float64"), "verdict"] == "failed"
    assert gradients.loc[("conv2d", "scipy", "16x16", "3x3", "float32"), "verdict"] == "pass"


def two_commits(tmp_path, transform=None):
    results = copy_results(tmp_path / "results")
    add_commit(results, "c" * 40, days_later=1, transform=transform)
    return read_results(results)


def test_compare_ratios_and_statuses_without_samples(tmp_path):
    """Results without recorded samples (make bench's): every ratio is there, but each
    commit is a single observation, so no timing is called faster or slower."""
    case = dict(implementation="scipy", size="127x127", kernel="15x15", dtype="float64", device="cpu")

    def slow_down(data):
        result = data["results"][FB][column(data, "result")]
        result[case_index(data, FB, **case)] *= 2.0
        result[case_index(data, FB, **{**case, "implementation": "native"})] *= 0.5

    table = two_commits(tmp_path, slow_down)
    commits = resolve_commits(table, None)
    assert commits == (RAW["commit_hash"], "c" * 40)
    compare = compare_table(table, commits).set_index(
        ["benchmark", "implementation", "size", "kernel", "dtype", "device"])
    assert len(compare) == len(read_results(FIXTURE))
    assert compare.loc[(FB, "scipy", "127x127", "15x15", "float64", "cpu"), "ratio"] == pytest.approx(2.0)
    assert compare.loc[(FB, "native", "127x127", "15x15", "float64", "cpu"), "ratio"] == pytest.approx(0.5)
    timed = compare[(compare["unit"] == "seconds") & (compare["status_a"] == "ok")]
    assert set(timed["verdict"]) == {"inconclusive"} and (timed["rounds_a"] == 1).all()
    assert timed["p_value"].isna().all()
    others = compare[(compare["unit"] != "seconds") & (compare["status_a"] == "ok")]
    assert set(others["verdict"]) == {""}
    # Skipped on both sides: kept, said so.
    assert set(compare.loc[compare["status_a"] == "skipped", "verdict"]) == {"skipped"}


def test_compare_marks_outdated_and_missing(tmp_path):
    def drop_and_bump(data):
        del data["results"]["bench_fft_abs.FFTAbs.time_forward"]

    table = two_commits(tmp_path, drop_and_bump)
    compare = compare_table(table, resolve_commits(table, None))
    gone = compare[compare["benchmark"] == "bench_fft_abs.FFTAbs.time_forward"]
    assert set(gone["status_b"]) == {"missing"} and set(gone["verdict"]) == {"missing"}


def test_resolve_commits_by_prefix_and_errors(tmp_path):
    table = two_commits(tmp_path)
    old = RAW["commit_hash"]
    assert resolve_commits(table, ["cccc", old[:7]]) == ("c" * 40, old)
    with pytest.raises(ReportError, match="is not in the results"):
        resolve_commits(table, ["deadbeef", old])
    single = read_results(FIXTURE)
    assert resolve_commits(single, None) is None
    empty = compare_table(single, None)
    assert empty.empty and {"ratio", "verdict", "q_value", "commit_a"} <= set(empty.columns)


def test_the_default_pair_ran_on_one_machine(tmp_path):
    """The newest commit timed on another machine alone shares no case with the others:
    by default the latest pair that ran on a common machine and env is compared (hostile
    pass 86: the two newest by date gave every case 'missing'); with no such pair, the
    two newest."""
    results = copy_results(tmp_path / "results")
    original = RAW["commit_hash"]
    add_commit(results, "c" * 40, days_later=1)
    elsewhere = add_commit(results, "d" * 40, days_later=2,
                           transform=lambda data: data["params"].update(machine="other-box"))
    (results / "other-box").mkdir()
    elsewhere.rename(results / "other-box" / elsewhere.name)
    assert resolve_commits(read_results(results), None) == (original, "c" * 40)
    (results / MACHINE / f"{'c' * 8}-{RAW['env_name']}.json").unlink()
    assert resolve_commits(read_results(results), None) == (original, "d" * 40)


def test_commit_prefixes_in_upper_case_resolve_as_git_reads_them(tmp_path, capsys):
    """git and the results' own check take hex in either case; asv writes lower case."""
    table = two_commits(tmp_path)
    old = RAW["commit_hash"]
    assert resolve_commits(table, ["CCCC", old[:8].upper()]) == ("c" * 40, old)
    assert main([str(tmp_path / "results"), str(tmp_path / "out"), "--no-plots",
                 "--commits", old[:8].upper(), "CCCCCCCC"]) == 0
    assert f"{old[:8]} -> cccccccc" in capsys.readouterr().out
