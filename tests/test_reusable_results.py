"""tools/reusable_results.py: when make compare may reuse a commit's asv results, on fake
results files in asv 0.6.6's format (result_columns, one row per benchmark, NaN = skipped,
None = failed, samples per parameter combination)."""
import copy
import json
import math
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import reusable_results as rr  # noqa: E402

COMMIT = "4c6756149a5339491c23d0e8fd442f91e08b00a5"
ENV = "virtualenv-py3.11-torch2.13.0"
COLUMNS = ["result", "params", "version", "started_at", "duration", "stats_ci_99_a", "stats_ci_99_b",
           "stats_q_25", "stats_q_75", "stats_number", "stats_repeat", "samples"]
TIME = "bench_fft_abs.FFTAbs.time_forward"
TRACK = "bench_fft_abs.FFTAbsGradients.track_max_abs_error"
PARAMS = [["'native'", "'scipy'"], ["'16x16'", "'2048x2048'"]]
BENCHMARKS = {TIME: {"version": "2", "params": PARAMS, "type": "time"},
              TRACK: {"version": "1", "params": PARAMS, "type": "track"}, "version": 2}
# what runs here: the small size only (the large one is outside the default grid)
CASES = {TIME: ["'native', '16x16'", "'scipy', '16x16'"]}
TRACKS = {TRACK: ["'native', '16x16'", "'native', '2048x2048'", "'scipy', '16x16'", "'scipy', '2048x2048'"]}
NAN = float("nan")


def results(samples_per_case=6, version="2"):
    """A results file as asv writes it after 2 rounds x 3 samples of the small cases."""
    samples = [[1e-5] * samples_per_case, None, [2e-5] * samples_per_case, None]
    row = [[1e-5, NAN, 2e-5, NAN], PARAMS, version, 0, 1.0, None, None, None, None, [1, None, 1, None],
           [samples_per_case, None, samples_per_case, None], samples]
    track = [[0.0, NAN, 1e-7, NAN], PARAMS, "1"]
    return {"commit_hash": COMMIT, "env_name": ENV, "result_columns": COLUMNS,
            "results": {TIME: row, TRACK: track}}


ENVIRONMENT = {"version": 1, "machine": "box", "commit": COMMIT, "recorded_at": "2026-12-01T10:00:00+00:00",
               "cpu": {"model_name": "AMD EPYC", "family": "25", "model": "1", "flags": ["avx2"], "num_cpu": 2},
               "blas": [{"internal_api": "openblas", "architecture": "Haswell", "filepath": "/a/lib.so"}],
               "threads": {"torch": 1}, "overrides": {"OPENBLAS_CORETYPE": None}, "versions": {"torch": "2.13.0"}}


def why(data=None, record=ENVIRONMENT, now=ENVIRONMENT, rounds=2, repeat=3):
    return rr.why_not_reusable(data or results(), BENCHMARKS, CASES, TRACKS, rounds, repeat, record, now)


def test_results_timed_with_the_same_rounds_and_repeat_in_the_same_environment_are_reused():
    assert why() is None
    later = {**ENVIRONMENT, "recorded_at": "2026-12-02T10:00:00+00:00", "commit": "f" * 40}
    assert why(now=later) is None  # when and for which commit aside


@pytest.mark.parametrize("samples, expected", [
    (3, "bench_fft_abs.FFTAbs.time_forward('native', '16x16') has 3 samples, not 2 rounds x 3"),
    (0, "has 0 samples, not 2 rounds x 3 (no samples recorded: timed by make bench?)"),
])
def test_other_sample_counts_are_timed_again(samples, expected):
    data = results(samples)
    if samples == 0:
        data["results"][TIME][COLUMNS.index("samples")] = None
    assert expected in why(data)
    assert why(results(6), rounds=3, repeat=2) is None  # 6 = 3 x 2 as well
    assert "not 3 rounds x 3" in why(results(6), rounds=3)


def test_skipped_and_failed_cases_need_no_samples():
    data = results()
    data["results"][TIME][0][2] = None  # scipy 16x16 failed
    data["results"][TIME][COLUMNS.index("samples")][2] = None
    assert why(data) is None


def test_an_older_benchmark_version_or_a_missing_benchmark_is_timed_again():
    assert why(results(version="1")) == f"{TIME} is at another benchmark version"
    data = results()
    del data["results"][TRACK]
    assert why(data) == f"{TRACK} was not run"
    data = results()
    data["results"][TIME][1] = [["'native'"], ["'16x16'"]]
    assert why(data) == f"{TIME} has other parameters"


def test_a_missing_or_different_environment_record_is_timed_again():
    assert why(record=None) == "no environment record for it"
    changed = copy.deepcopy(ENVIRONMENT)
    changed["overrides"]["OPENBLAS_CORETYPE"] = "SkylakeX"
    changed["blas"][0]["architecture"] = "SkylakeX"
    assert why(record=changed) == "its environment differs from now in blas, overrides"
    # a field only the record has is named too; where the library file lies is not
    moved = copy.deepcopy(ENVIRONMENT)
    moved["blas"][0]["filepath"] = "/elsewhere/libopenblas.so"
    assert why(record=moved) is None
    assert why(record={**moved, "gpu": "H100"}) == "its environment differs from now in gpu"


def test_find_result_picks_the_commit_and_environment(tmp_path):
    machine = tmp_path / "box"
    machine.mkdir()
    (machine / f"{COMMIT[:8]}-other-env.json").write_text(json.dumps({**results(), "env_name": "other"}))
    assert rr.find_result(tmp_path, "box", COMMIT, ENV) is None
    (machine / f"{COMMIT[:8]}-env-1234.json").write_text(json.dumps(results()))
    (machine / f"{COMMIT[:8]}-broken.json").write_text("{")
    path, data = rr.find_result(tmp_path, "box", COMMIT, ENV)
    assert path.name == f"{COMMIT[:8]}-env-1234.json" and data["env_name"] == ENV
    assert rr.find_result(tmp_path, "other-machine", COMMIT, ENV) is None
    assert math.isnan(data["results"][TIME][0][1])


@pytest.mark.parametrize("content", ["[1, 2]", "null", '"text"', "3"])
def test_a_file_that_is_no_json_object_is_passed_over_as_one_that_is_no_json(tmp_path, content):
    """A JSON list where a results object belongs ('[1, 2]') stopped make compare with a
    traceback, AttributeError: 'list' object has no attribute 'get' (hostile pass 140);
    it is passed over as unparseable JSON is."""
    machine = tmp_path / "box"
    machine.mkdir()
    (machine / f"{COMMIT[:8]}-edited.json").write_text(content)
    assert rr.find_result(tmp_path, "box", COMMIT, ENV) is None
    (machine / f"{COMMIT[:8]}-env-1234.json").write_text(json.dumps(results()))
    assert rr.find_result(tmp_path, "box", COMMIT, ENV)[0].name == f"{COMMIT[:8]}-env-1234.json"


def _edited(edit):
    data = results()
    row = data["results"][TIME]
    if edit == "row":
        data["results"][TIME] = 5
    elif edit == "result":
        row[0] = [1e-5, "fast", 2e-5, NAN]
    elif edit == "samples":
        row[11] = [[1e-5] * 6, None]
    elif edit == "params":
        row[1] = "'native'"
    elif edit == "results":
        data["results"] = [row]
    elif edit == "columns":
        data["result_columns"] = "result"
    return data


@pytest.mark.parametrize("edit, message", [
    ("row", "row is not a list"), ("result", "result holds 'fast'"),
    ("samples", "samples holds 2 lists for 4"), ("params", "params is not a list"),
    ("results", "'results' is not an object"), ("columns", "result_columns is not a list"),
])
def test_a_results_file_of_the_commit_that_cannot_be_read_is_named(tmp_path, edit, message):
    """A hand-edited results file of the commit: a row that is no list stopped make
    compare with a TypeError from inside the reuse rule; a result or samples of another
    shape were reused or timed again, and the report then refused the very file after
    all the timing (hostile pass 140). It is a ResultsError naming the file, the
    benchmark and the field, as the report's reader names them, before anything runs."""
    from scipy_layers.reports.errors import ResultsError
    (tmp_path / "box").mkdir()
    path = tmp_path / "box" / f"{COMMIT[:8]}-env.json"
    path.write_text(json.dumps(_edited(edit)))
    with pytest.raises(ResultsError, match=re.escape(message)) as raised:
        rr.find_result(tmp_path, "box", COMMIT, ENV)
    assert str(path) in str(raised.value)


def test_another_commit_whose_hash_begins_alike_is_not_this_ones(tmp_path):
    # (mutation pass 115: files are named by the hash's first 8 digits, which two commits
    # may share; the file's own commit_hash decides)
    other = COMMIT[:8] + "0" * 32
    (tmp_path / "box").mkdir()
    (tmp_path / "box" / f"{COMMIT[:8]}-env.json").write_text(json.dumps({**results(), "commit_hash": other}))
    assert rr.find_result(tmp_path, "box", COMMIT, ENV) is None
    assert rr.find_result(tmp_path, "box", other, ENV)[1]["commit_hash"] == other


def test_a_nan_is_a_case_not_selected_where_the_commits_cases_are_known_else_skipped():
    """runs_known: the cases are the commit's own, so a NaN there is a case the earlier run
    did not select, and the results are timed again; with B's cases in their place a NaN
    is taken as skipped (the suite passed with the two swapped)."""
    data = results()
    data["results"][TIME][0][0] = NAN  # native 16x16: no result
    assert "has no result (NaN: not selected by the run that timed it)" in rr.sample_mismatch(
        data, BENCHMARKS, CASES, 2, 3, runs_known=True)
    assert rr.sample_mismatch(data, BENCHMARKS, CASES, 2, 3, runs_known=False) is None
