"""The reader's recorded samples and environment records: samples exactly as asv stored
them (rounds one after another), kept out of timings.csv; environment records joined on
(machine, commit) as short columns, blank where absent, one clear error where malformed."""
import json

import pytest

from fixtures.compare_variants import (COMMIT_A, COMMIT_B, MACHINE, RESULTS, copy_compare, edit,
                                       environment_file, results_file)
from scipy_layers.reports import ResultsError, read_results
from scipy_layers.reports.environment import ENV_COLUMNS
from scipy_layers.reports.reader import COLUMNS

FORWARD = "bench_fft_abs.FFTAbs.time_forward"


def test_samples_are_read_as_recorded():
    table = read_results(RESULTS, with_samples=True)
    data = json.loads(results_file(RESULTS, COMMIT_A).read_text())
    columns = data["result_columns"]
    row = data["results"][FORWARD]
    recorded = row[columns.index("samples")]
    first = next(i for i, s in enumerate(recorded) if s is not None)
    ours = table[(table["benchmark"] == FORWARD) & (table["commit"] == COMMIT_A)]["samples"].iloc[first]
    assert list(ours) == recorded[first]
    assert len(ours) == 18 == row[columns.index("stats_repeat")][first]  # 6 rounds x 3
    skipped = table[(table["status"] == "skipped")]["samples"]
    assert skipped.map(lambda s: s is None).all()
    assert "samples" not in read_results(RESULTS).columns and "samples" not in COLUMNS


def test_environment_columns_from_the_records():
    table = read_results(RESULTS)
    at = list(table.columns).index("env")
    assert list(table.columns[at + 1:at + 1 + len(ENV_COLUMNS)]) == ENV_COLUMNS
    row = table.iloc[0]
    assert row["cpu"] == "AMD EPYC fam 25 model 1 avx avx2 fma, 2 cpus"
    assert row["blas"] == ("scipy: openblas 0.3.30 Haswell (1 thr); "
                           "numpy: openblas 0.3.31.188.0 Haswell (1 thr)")
    assert row["thread_limits"] == "torch=1 MKL_NUM_THREADS=1 OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1"
    assert row["overrides"] == ""
    assert row["versions"] == "numpy 2.4.6, scipy 1.17.1, torch 2.13.0+cpu"


def test_results_without_records_get_blank_environment_columns(tmp_path):
    results = copy_compare(tmp_path / "f")
    environment_file(results, COMMIT_B).unlink()
    table = read_results(results)
    assert (table.loc[table["commit"] == COMMIT_B, ENV_COLUMNS] == "").all().all()
    assert (table.loc[table["commit"] == COMMIT_A, "cpu"] != "").all()


def test_an_override_shows_and_a_changed_environment_is_named(tmp_path):
    results = copy_compare(tmp_path / "f")
    edit(environment_file(results, COMMIT_B),
         lambda d: d["overrides"].__setitem__("OPENBLAS_CORETYPE", "SkylakeX"))
    table = read_results(results, with_samples=True)
    assert set(table.loc[table["commit"] == COMMIT_B, "overrides"]) == {"OPENBLAS_CORETYPE=SkylakeX"}
    from scipy_layers.reports.compare import compare_table
    compare = compare_table(table, (COMMIT_A, COMMIT_B), round_size=3)
    ran = compare[(compare["status_a"] == "ok") & (compare["unit"] == "seconds")]
    assert set(ran["verdict"]) == {"environment changed"}
    assert set(ran["env_difference"]) == {"overrides:  -> OPENBLAS_CORETYPE=SkylakeX"}
    assert ran["env_differs"].all()


MALFORMED = {
    "not JSON": (None, "is not valid JSON"),
    "version 2": (lambda d: d.__setitem__("version", 2), "version 2"),
    "machine of another folder": (lambda d: d.__setitem__("machine", "other"), "'machine'"),
    "commit of another file": (lambda d: d.__setitem__("commit", COMMIT_A), "'commit'"),
    "num_cpu a string": (lambda d: d["cpu"].__setitem__("num_cpu", "2"), "cpu.num_cpu"),
    "flags not strings": (lambda d: d["cpu"].__setitem__("flags", [1]), "cpu.flags"),
    "blas not a list": (lambda d: d.__setitem__("blas", {}), "'blas'"),
    "blas entry without threads": (lambda d: d["blas"][0].pop("num_threads"), "blas[0].num_threads"),
    "torch threads a bool": (lambda d: d["threads"].__setitem__("torch", True), "threads.torch"),
    "override a number": (lambda d: d["overrides"].__setitem__("OPENBLAS_CORETYPE", 3),
                          "overrides.OPENBLAS_CORETYPE"),
    "versions missing": (lambda d: d.pop("versions"), "'versions'"),
    # (null is "unset" for an override only: the suite passed with null taken for a version)
    "a version null": (lambda d: d["versions"].__setitem__("torch", None), "versions.torch"),
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_a_malformed_record_is_an_error_naming_the_file_and_field(tmp_path, case):
    change, words = MALFORMED[case]
    results = copy_compare(tmp_path / "f")
    path = environment_file(results, COMMIT_B)
    if change is None:
        path.write_text("{")
    else:
        edit(path, change)
    with pytest.raises(ResultsError) as error:
        read_results(results)
    assert error.value.path == path and words in str(error.value) and "\n" not in str(error.value)


def test_records_of_commits_not_in_the_results_are_not_read(tmp_path):
    results = copy_compare(tmp_path / "f")
    folder = results.parent / "environments" / MACHINE
    (folder / ("f" * 40 + ".json")).write_text("{")
    (folder / "notes.txt").write_text("x")
    assert len(read_results(results)) > 0


def test_a_machine_name_that_is_a_path_reads_no_record(tmp_path):
    results = copy_compare(tmp_path / "f")
    edit(results_file(results, COMMIT_B), lambda d: d["params"].__setitem__("machine", "../" + MACHINE))
    table = read_results(results)
    assert (table.loc[table["commit"] == COMMIT_B, "cpu"] == "").all()


@pytest.mark.parametrize("name", [".", ".."])
def test_a_machine_named_dot_or_dot_dot_reads_no_record(tmp_path, name):
    """environments/./<commit>.json and environments/../<commit>.json are real paths: a
    record placed there is not this machine's, so it is not read."""
    results = copy_compare(tmp_path / "f")
    record = environment_file(results, COMMIT_B)
    edit(results_file(results, COMMIT_B), lambda d: d["params"].__setitem__("machine", name))
    (record.parent.parent / name / record.name).write_bytes(record.read_bytes())
    table = read_results(results)
    assert (table.loc[table["commit"] == COMMIT_B, "machine"] == name).all()
    assert (table.loc[table["commit"] == COMMIT_B, "cpu"] == "").all()
    assert (table.loc[table["commit"] == COMMIT_A, "cpu"] != "").all()

MALFORMED_SAMPLES = {
    "strings": (["1e-3"], "not a list of numbers"),
    "a negative time": ([-1.0, 1.0], "negative"),
    "infinity": ([float("inf")], "not finite"),
    "a number": (3, "not a list of numbers"),
}


@pytest.mark.parametrize("case", list(MALFORMED_SAMPLES))
def test_malformed_samples_name_the_file(tmp_path, case):
    value, words = MALFORMED_SAMPLES[case]
    results = copy_compare(tmp_path / "f")
    path = results_file(results, COMMIT_A)

    def change(data):
        samples = data["results"][FORWARD][data["result_columns"].index("samples")]
        samples[next(i for i, s in enumerate(samples) if s is not None)] = value
    edit(path, change)
    with pytest.raises(ResultsError) as error:
        read_results(results)
    assert error.value.path == path and words in str(error.value)


def test_summary_says_the_commits_ran_in_different_environments_only_where_known(tmp_path):
    """Without environment records whether the environments differ is unknown, and
    summary.md says nothing of it (the suite passed with the unknown read as 'differs',
    which printed 'ran in different environments ...: nan'); records that differ are named."""
    import shutil

    from fixtures.compare_variants import environment_file
    from scipy_layers.reports import build_report
    results = copy_compare(tmp_path / "f")
    edit(environment_file(results, COMMIT_B),
         lambda d: d["overrides"].__setitem__("OPENBLAS_CORETYPE", "Haswell"))
    build_report(results, tmp_path / "out", with_plots=False)
    summary = (tmp_path / "out" / "summary.md").read_text()
    line = next(l for l in summary.splitlines() if "ran in different environments" in l)
    assert "overrides: " in line and "OPENBLAS_CORETYPE=Haswell" in line
    shutil.rmtree(results.parent / "environments")
    build_report(results, tmp_path / "out", with_plots=False)
    assert "different environments" not in (tmp_path / "out" / "summary.md").read_text()


def test_commits_that_differ_in_package_versions_alone_ran_in_different_environments(tmp_path):
    """Every environment column counts, the last (versions) too (the suite passed with
    differences() leaving it out: a torch upgrade read as the same environment)."""
    from scipy_layers.reports.compare import compare_table
    from fixtures.compare_variants import environment_file
    results = copy_compare(tmp_path / "f")
    edit(environment_file(results, COMMIT_B),
         lambda d: d["versions"].__setitem__("torch", "9.9.9"))
    compare = compare_table(read_results(results, with_samples=True), (COMMIT_A, COMMIT_B),
                            round_size=3)
    assert compare["env_differs"].astype(bool).all()
    assert compare["env_difference"].str.startswith("versions: ").all()
    assert compare["env_difference"].str.contains("torch 9.9.9").all()


def test_thread_limits_leave_out_the_unset_ones():
    """A thread variable recorded as null (unset) is left out of thread_limits, not shown as
    'NAME=None' (the suite passed with it shown)."""
    from scipy_layers.reports.environment import compact
    record = json.loads(environment_file(RESULTS, COMMIT_B).read_text())
    record["threads"] = {"torch": 1, "OMP_NUM_THREADS": None, "MKL_NUM_THREADS": "1"}
    assert compact(record)["thread_limits"] == "torch=1 MKL_NUM_THREADS=1"
