"""Malformed but parseable results: every one is a ResultsError naming the file and the
field (the command: one line on stderr, exit code 2), never another exception. Each
case below crashed, or was silently accepted, before the reader checked it."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fixtures.asv_variants import FIXTURE, column, copy_results, load, results_files, save
from scipy_layers.reports import ResultsError, read_results
from scipy_layers.reports import validate

ROOT = Path(__file__).resolve().parent.parent
FB = "bench_conv2d.Conv2d.time_forward_backward"
REL = "bench_fft_abs.FFTAbsGradients.track_max_rel_error"


def row(data, name=FB):
    return data["results"][name]


def cell(data, key, name=FB):
    return row(data, name)[column(data, key)]


def set_first(key, value, name=FB):
    def change(data):
        cell(data, key, name)[0] = value
    return change


def rename_benchmark(new):
    def change(data):
        data["results"][new] = data["results"].pop(FB)
    return change


def set_key(key, value):
    return lambda data: data.__setitem__(key, value)


def set_row_cell(key, value, name=FB):
    def change(data):
        row(data, name)[column(data, key)] = value
    return change


# name -> (change to the results file's data, words the message must hold)
RESULTS_FILE = {
    "top-level params a list": (set_key("params", ["x"]), "'params'"),
    "machine not a string": (lambda d: d["params"].__setitem__("machine", 3), "params.machine"),
    "date null": (set_key("date", None), "'date'"),
    "date a string": (set_key("date", "yesterday"), "'date'"),
    "date out of range": (set_key("date", 10 ** 20), "'date'"),
    "date out of range before 1970": (set_key("date", -10 ** 20), "'date'"),  # (hostile pass 106)
    "date a bool": (set_key("date", True), "'date'"),
    "commit_hash not a string": (set_key("commit_hash", 1234567), "'commit_hash'"),
    "commit_hash a path": (set_key("commit_hash", "../../etc/passwd"), "'commit_hash'"),
    "env_name not a string": (set_key("env_name", ["x"]), "'env_name'"),
    "result_columns not strings": (set_key("result_columns", ["result", "params", 3]), "result_columns"),
    "result_columns repeated": (lambda d: d["result_columns"].append("result"), "result_columns"),
    "results not an object": (set_key("results", [1]), "'results'"),
    "a 401-digit integer result": (set_first("result", 10 ** 400), "result"),
    "a bool result": (set_first("result", True), "result"),
    "a string result": (set_first("result", "0.1"), "result"),
    "a list result": (set_first("result", [0.1]), "result"),
    "a negative time": (set_first("result", -1e-3), "negative"),
    "an infinite time": (set_first("result", float("inf")), "infinite"),
    "a negative gradient error": (set_first("result", -1.0, REL), "negative"),
    "stats of strings": (lambda d: cell(d, "stats_q_25").__setitem__(0, "1e-3"), "stats_q_25"),
    "stats a 401-digit integer": (lambda d: cell(d, "stats_ci_99_a").__setitem__(0, 10 ** 400),
                                  "stats_ci_99_a"),
    "stats number a bool": (lambda d: cell(d, "stats_number").__setitem__(0, False), "stats_number"),
    "benchmark named bench_a/b": (rename_benchmark("bench_a/b.Conv2d.time_forward_backward"),
                                  "benchmark name"),
    "benchmark name with a newline": (rename_benchmark("bench_a\nb.C.time_x"), "benchmark name"),
    "params of numbers": (set_row_cell("params", [[1, 2]]), "params"),
    "params with an empty value list": (set_row_cell("params", [["'a'"], []]), "params"),
    "params a string": (set_row_cell("params", "x"), "params"),
    "a row longer than result_columns": (lambda d: row(d).extend([None] * 20), "longer"),
    "version not a string": (set_row_cell("version", {"a": 1}), "version"),
    "a grid of 2**200 combinations": (set_row_cell("params", [["'a'", "'b'"]] * 200), "combinations"),
    "a null result over a huge grid": (
        lambda d: (set_row_cell("params", [["'a'", "'b'"]] * 60)(d), set_row_cell("result", None)(d)),
        "combinations"),
}


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    return copy_results(tmp_path_factory.mktemp("pristine") / "results")


def variant(tmp_path, change=None, text=None):
    results = copy_results(tmp_path / "results")
    path = results_files(results)[0]
    if text is not None:
        path.write_text(text)
    else:
        data = load(path)
        change(data)
        path.write_text(json.dumps(data))
    return results, path


def assert_names(error, path, *words):
    message = str(error.value)
    assert error.value.path == path, message
    assert str(path) in message and "\n" not in message, message
    for word in words:
        assert word in message, message


@pytest.mark.parametrize("case", list(RESULTS_FILE))
def test_a_malformed_results_file_names_the_file_and_the_field(tmp_path, case):
    change, word = RESULTS_FILE[case]
    results, path = variant(tmp_path, change)
    with pytest.raises(ResultsError) as error:
        read_results(results)
    assert_names(error, path, word)


TEXT = {
    "nested 200,000 deep": ("[" * 200_000 + "]" * 200_000, "nested"),
    "an integer of 5,000 digits": ('{"a": ' + "9" * 5000 + "}", "not valid JSON"),
    "a duplicate key": ('{"version": 2, "version": 2}', "duplicate key 'version'"),
    "a lone surrogate": ('{"commit_hash": "\\ud800"}', "Unicode"),
    "not UTF-8": (None, "cannot be read"),
}


@pytest.mark.parametrize("case", list(TEXT))
def test_malformed_json_text_names_the_file(tmp_path, case):
    text, word = TEXT[case]
    results, path = variant(tmp_path, text="")
    if text is None:
        path.write_bytes(b'{"a": "\xff"}')
    else:
        path.write_text(text)
    with pytest.raises(ResultsError) as error:
        read_results(results)
    assert_names(error, path, word)


def test_a_duplicate_key_in_a_real_file(tmp_path):
    results, path = variant(tmp_path, text="")
    text = (FIXTURE / path.relative_to(results)).read_text()
    path.write_text(text.replace('"date":', '"date": 1, "date":', 1))
    with pytest.raises(ResultsError) as error:
        read_results(results)
    assert_names(error, path, "duplicate key 'date'")


def test_a_file_larger_than_any_results_file(tmp_path, monkeypatch):
    results, path = variant(tmp_path, text="")
    path.write_text((FIXTURE / path.relative_to(results)).read_text())
    monkeypatch.setattr(validate, "MAX_FILE_BYTES", 1000)
    with pytest.raises(ResultsError) as error:
        read_results(results)
    assert_names(error, results / "benchmarks.json", "larger than")


BENCHMARKS = {
    "param_names not strings": (lambda b: b[FB].__setitem__("param_names", [1, 2]), "param_names"),
    "param_names repeated": (lambda b: b[FB].__setitem__(
        "param_names", ["implementation", "size", "kernel", "dtype", "size"]), "param_names"),
    "a parameter named like a report column": (lambda b: b[FB].__setitem__(
        "param_names", ["implementation", "size", "kernel", "dtype", "value"]), "'value'"),
    "unit not a string": (lambda b: b[FB].__setitem__("unit", 3), "unit"),
    "version a list": (lambda b: b[FB].__setitem__("version", [1]), "version"),
    "an entry that is a list": (lambda b: b.__setitem__(FB, [1]), FB),
    "a benchmark named bench_a/b": (lambda b: b.__setitem__("bench_a/b.C.time_x", b[FB]),
                                    "benchmark name"),
}


@pytest.mark.parametrize("case", list(BENCHMARKS))
def test_a_malformed_benchmarks_json_names_the_file_and_the_field(tmp_path, case):
    change, word = BENCHMARKS[case]
    results = copy_results(tmp_path / "results")
    benchmarks = load(results / "benchmarks.json")
    change(benchmarks)
    save(results / "benchmarks.json", benchmarks)
    with pytest.raises(ResultsError) as error:
        read_results(results)
    assert_names(error, results / "benchmarks.json", word)


def test_well_formed_oddities_read(tmp_path):
    """Zero times, infinite gradient errors, odd machine names: valid, read as such."""
    def change(data):
        cell(data, "result")[0] = 0
        cell(data, "result", REL)[0] = float("inf")
        data["params"]["machine"] = "box a/é"
    results, _ = variant(tmp_path, change)
    table = read_results(results)
    assert set(table["machine"]) == {"box a/é"}
    assert (table.loc[table["benchmark"] == FB, "value"] == 0).any()


def run_cli(results, output, env=None):
    return subprocess.run([sys.executable, "-m", "scipy_layers.reports", str(results), str(output),
                           "--no-plots"], cwd=ROOT, capture_output=True, text=True, env=env)


CLI_CASES = ["top-level params a list", "date null", "a 401-digit integer result",
             "benchmark named bench_a/b"]


@pytest.mark.parametrize("case", CLI_CASES + ["nested 200,000 deep"])
def test_the_command_prints_one_line_and_exits_2(tmp_path, case):
    if case in RESULTS_FILE:
        results, path = variant(tmp_path, RESULTS_FILE[case][0])
    else:
        results, path = variant(tmp_path, text=TEXT[case][0])
    run = run_cli(results, tmp_path / "out")
    assert run.returncode == 2, run.stderr
    assert run.stderr.count("\n") == 1 and run.stderr.startswith("scipy-layers-report: error: ")
    assert str(path) in run.stderr and "Traceback" not in run.stderr
    assert run.stdout == "" and not (tmp_path / "out").exists()


def test_a_machine_folder_with_a_newline_still_gives_one_line(tmp_path):
    results = copy_results(tmp_path / "results")
    path = results_files(results)[0]
    odd = results / "box\nb"
    odd.mkdir()
    path.rename(odd / path.name)
    (odd / path.name).write_text("{not json")
    run = run_cli(results, tmp_path / "out")
    assert run.returncode == 2
    assert run.stderr.count("\n") == 1 and "box\\nb" in run.stderr, run.stderr


def test_every_column_a_table_writes_is_a_reserved_name(tmp_path):
    """A parameter may not take a column's name (RESERVED_NAMES); the set must hold every
    column the tables write besides the parameters and the per-quantity error figures."""
    from fixtures.asv_variants import add_commit
    from scipy_layers.reports.gradients import gradients_table
    from scipy_layers.reports.naming import PARAM_COLUMNS, RESERVED_NAMES
    from scipy_layers.reports.compare import compare_table
    from scipy_layers.reports.tables import resolve_commits, speedup_table

    results = copy_results(tmp_path / "results")
    add_commit(results, "c" * 40, days_later=1)
    timings = read_results(results)
    tables = [timings, speedup_table(timings), gradients_table(timings),
              compare_table(timings, resolve_commits(timings, None))]
    columns = {c for t in tables for c in t.columns}
    written = {c for c in columns - set(PARAM_COLUMNS) if not c.endswith(("_max_abs", "_max_rel"))}
    assert written <= RESERVED_NAMES, written - RESERVED_NAMES


def test_a_sha256_commit_hash_is_read_as_it_is(tmp_path):
    """A repository in git's SHA-256 object format names commits with 64 hex digits: the
    reader takes them (the suite passed with the check stopping at SHA-1's 40)."""
    def longer(data):
        data["commit_hash"] = data["commit_hash"] + "0123456789abcdef01234567"
    results, _ = variant(tmp_path, longer)
    commits = set(read_results(results)["commit"])
    assert len(commits) == 1 and len(commits.pop()) == 64


def test_a_row_as_long_as_result_columns_is_read(tmp_path):
    """asv may write every column of a row; only a longer one is malformed (the suite passed
    with a row of exactly len(result_columns) refused)."""
    def full_length(data):
        row(data).extend([None] * (len(data["result_columns"]) - len(row(data))))
    results, _ = variant(tmp_path, full_length)
    assert len(read_results(results)) > 0
