"""The report's --cases (make compare writes it): asv's NaN is a skip only among the cases
the comparison ran. A results file holds NaN, too, for every case a run did not select
(asv run -b), so outside those cases a NaN is no result: hostile pass 93 saw make gate
fail on identical code ("now skipped") after make results had timed A's full grid."""
import itertools
import json

import pandas as pd
import pytest

from fixtures.compare_variants import COMMIT_A, COMMIT_B, copy_compare, edit, quieten, results_file
from test_reports_gate import GRADIENTS, _first_cases_of_each_timing, gate, gate_lines


@pytest.fixture
def quiet(tmp_path):
    results = copy_compare(tmp_path / "fixture")
    quieten(results, 0.02)
    return results


def all_cases(results) -> dict:
    """Every case of B's results file, as tools/suite_cases.py names them."""
    data = json.loads(results_file(results, COMMIT_B).read_text())
    columns = data["result_columns"]
    return {name: [", ".join(combo) for combo in itertools.product(*row[columns.index("params")])]
            for name, row in data["results"].items()}


def cases_file(tmp_path, cases: dict, drop=lambda name, combo: False):
    path = tmp_path / "compared-cases.json"
    kept = {name: [c for c in combos if not drop(name, c)] for name, combos in cases.items()}
    path.write_text(json.dumps({"timings": {n: c for n, c in kept.items() if ".time_" in n},
                                "tracks": {n: c for n, c in kept.items() if ".time_" not in n}}))
    return path


def _compare(tmp_path):
    return pd.read_csv(tmp_path / "out" / "compare.csv", keep_default_na=False)


def _nan_scipy_timings_at_b(results):
    edit(results_file(results, COMMIT_B),
         lambda data: _first_cases_of_each_timing(data, ("scipy",), float("nan")))


def test_a_nan_at_b_outside_the_cases_run_is_no_result_not_a_finding(quiet, tmp_path, capsys):
    _nan_scipy_timings_at_b(quiet)
    skipped_at_b = cases_file(tmp_path, all_cases(quiet), drop=lambda name, combo: (
        ".time_" in name and combo.startswith("'scipy'")))
    assert gate(quiet, tmp_path / "out", "--cases", str(skipped_at_b)) == 0
    assert gate_lines(capsys.readouterr().out) == []
    compare = _compare(tmp_path)
    unasked = compare[(compare["implementation"] == "scipy") & (compare["status_b"] == "missing")]
    assert len(unasked) > 0 and set(unasked["verdict"]) == {"missing"}
    assert "now skipped" not in set(compare["verdict"])


def test_a_nan_at_b_among_the_cases_run_is_still_now_skipped(quiet, tmp_path, capsys):
    _nan_scipy_timings_at_b(quiet)
    assert gate(quiet, tmp_path / "out", "--cases", str(cases_file(tmp_path, all_cases(quiet)))) == 1
    lines = gate_lines(capsys.readouterr().out)
    assert lines and all(line.startswith("now skipped: ") for line in lines)


def test_a_gradient_track_not_run_at_b_is_no_regression(quiet, tmp_path, capsys):
    def no_figure(data):
        row = data["results"][GRADIENTS]
        row[data["result_columns"].index("result")][0] = float("nan")
    edit(results_file(quiet, COMMIT_B), no_figure)
    assert gate(quiet, tmp_path / "out", "--cases", str(cases_file(tmp_path, all_cases(quiet)))) == 1
    assert gate_lines(capsys.readouterr().out)[0].startswith("gradient regression: ")
    without_tracks = cases_file(tmp_path, all_cases(quiet), drop=lambda name, combo: name == GRADIENTS)
    assert gate(quiet, tmp_path / "out", "--cases", str(without_tracks)) == 0


@pytest.mark.parametrize("content", ["[]", '{"timings": []}', '{"timings": {"x": [1]}}',
                                     '{"timings": {"x": "a"}}', "not json"])
def test_a_cases_file_of_another_shape_is_a_one_line_error(quiet, tmp_path, capsys, content):
    path = tmp_path / "cases.json"
    path.write_text(content)
    assert gate(quiet, tmp_path / "out", "--cases", str(path)) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(path) in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_a_missing_cases_file_is_a_one_line_error(quiet, tmp_path, capsys):
    assert gate(quiet, tmp_path / "out", "--cases", str(tmp_path / "none.json")) == 2
    assert "none.json: is missing" in capsys.readouterr().err


# --- a cases file that matches nothing is refused (hostile pass 99): with it every NaN
# read as "missing" and a real "now skipped" passed the gate (exit 0)

FORWARD = "bench_fft_abs.FFTAbs.time_forward"
SKIPPED = "'scipy', '16x16', 'float32', 'cpu'"


def _skip_at_b(results, benchmark=FORWARD, combo=SKIPPED) -> list[str]:
    """asv's NaN at B for one case that ran at A; the benchmark's combinations."""
    combos = []

    def change(data):
        columns = data["result_columns"]
        row = data["results"][benchmark]
        combos.extend(", ".join(c) for c in itertools.product(*row[columns.index("params")]))
        i = combos.index(combo)
        row[columns.index("result")][i] = float("nan")
        row[columns.index("samples")][i] = None
    edit(results_file(results, COMMIT_B), change)
    return combos


def _gate_with(quiet, tmp_path, cases) -> int:
    path = tmp_path / "cases.json"
    path.write_text(cases if isinstance(cases, str) else json.dumps(cases))
    return gate(quiet, tmp_path / "out", "--cases", str(path))


def test_a_cases_file_listing_the_skipped_case_finds_it(quiet, tmp_path, capsys):
    combos = _skip_at_b(quiet)
    double_quoted = [c.replace("'", '"') for c in combos]  # (the same literals)
    for listed in (combos, double_quoted):
        assert _gate_with(quiet, tmp_path, {"timings": {FORWARD: listed}}) == 1
        lines = gate_lines(capsys.readouterr().out)
        assert len(lines) == 1 and lines[0].startswith("now skipped: fft_abs scipy forward 16x16")


@pytest.mark.parametrize("content, says", [
    ("{}", "lists no case"),
    ('{"timings": {}}', "lists no case"),
    ('{"timings": {}, "tracks": {"%s": []}}' % FORWARD, "lists no case"),
    ({"timings": {FORWARD + "_": [SKIPPED]}},
     f"benchmark '{FORWARD}_' is not in benchmarks.json"),
    ({"timings": {FORWARD: ["'scipy', '16x16', 'float32'"]}},
     f"benchmark '{FORWARD}': combination \"'scipy', '16x16', 'float32'\" has 3 value(s), "
     "and benchmarks.json names 4 parameter(s) (implementation, size, dtype, device)"),
    ({"timings": {FORWARD: ["scipy, 16x16, float32, cpu"]}},
     f"benchmark '{FORWARD}': combination 'scipy, 16x16, float32, cpu' does not read as "
     "Python literals"),
    ({"timings": {FORWARD: ["'scipy'], ['16x16'"]}}, "does not read as Python literals"),
    ({"timings": {FORWARD: ["continue"]}}, "does not read as Python literals"),
    ({"timings": {FORWARD: ["[" * 100000 + "]" * 100000]}}, "does not read as Python literals"),
    ({"timings": {FORWARD: ["1" * 5000]}}, "does not read as Python literals"),
    ({"timings": {FORWARD: ["'sc\u00efpy', '16x16', 'float32', 'cpu'"]}},
     "implementation 'sc\u00efpy' is not among its values in benchmarks.json"),
])
def test_a_cases_file_that_matches_nothing_is_a_one_line_error(quiet, tmp_path, capsys,
                                                                content, says):
    _skip_at_b(quiet)
    assert _gate_with(quiet, tmp_path, content) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert f"{tmp_path / 'cases.json'}: " in err and says in err
    assert len(err) < 600  # (a long combination is cut)
    assert not (tmp_path / "out").exists()


def test_generic_parameter_names_keep_asv_s_reading(quiet, tmp_path, capsys):
    """benchmarks.json names 5 parameters where the results hold 4 (the benchmark's
    params changed since): the reader names them param1..param4, no combination of
    benchmarks.json's 5 values can be matched with them, so the NaN at B stays a skip
    and "now skipped" is found, as without --cases (it was hidden: exit 0)."""
    combos = _skip_at_b(quiet)

    def fifth_parameter(benchmarks):
        benchmarks[FORWARD]["param_names"].append("threads")
        benchmarks[FORWARD]["params"].append(["1"])
    edit(quiet / "benchmarks.json", fifth_parameter)
    assert gate(quiet, tmp_path / "out") == 1
    assert len(gate_lines(capsys.readouterr().out)) == 1
    assert _gate_with(quiet, tmp_path, {"timings": {FORWARD: [c + ", '1'" for c in combos]}}) == 1
    lines = gate_lines(capsys.readouterr().out)
    assert len(lines) == 1 and lines[0].startswith("now skipped: fft_abs")
    # combinations of the results' 4 values do not fit benchmarks.json's 5: refused
    assert _gate_with(quiet, tmp_path, {"timings": {FORWARD: combos}}) == 2
    assert "has 4 value(s), and benchmarks.json names 5" in capsys.readouterr().err
