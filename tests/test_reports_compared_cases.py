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
