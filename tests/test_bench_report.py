"""tools/bench_report.py's options are checked as they are parsed: a count below one or a
--source without asv results is a usage error before any history is made or timed
(nothing here times anything: making the history is refused outright)."""
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import bench_report  # noqa: E402


def refuse(*args):
    raise AssertionError("bench_report made a history (and would have timed it)")


def usage_error(monkeypatch, capsys, *argv):
    """bench_report's exit status and its one line on stderr for ``argv``."""
    monkeypatch.setattr(sys, "argv", ["bench_report.py", *argv])
    monkeypatch.setattr(bench_report, "make_history", refuse)
    with pytest.raises(SystemExit) as exit_:
        bench_report.main()
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines  # the error alone, no usage text
    return exit_.value.code, lines[0]


@pytest.mark.parametrize("option, value, message", [
    ("--runs", "0", "must be at least 1, got 0"),  # was statistics.StatisticsError
    ("--runs", "-3", "must be at least 1, got -3"),
    ("--commits", "0", "must be at least 1, got 0"),  # was subprocess.CalledProcessError
    ("--commits", "many", "'many' is not a whole number"),
])
def test_counts_below_one_are_usage_errors(monkeypatch, capsys, option, value, message):
    assert usage_error(monkeypatch, capsys, option, value) == (
        2, f"bench_report.py: error: argument {option}: {message}")


def test_a_source_without_asv_results_is_a_usage_error(monkeypatch, capsys, tmp_path):
    status, line = usage_error(monkeypatch, capsys, "--source", str(tmp_path))
    assert (status, line) == (2, f"bench_report.py: error: argument --source: {tmp_path} has no "
                                 "benchmarks.json: give an asv results directory (e.g. .asv/results)")
    (tmp_path / "benchmarks.json").write_text('{"not": "asv"}')  # (hostile pass 91)
    status, line = usage_error(monkeypatch, capsys, "--source", str(tmp_path))
    assert status == 2 and "benchmarks.json: benchmark name 'not'" in line
    (tmp_path / "benchmarks.json").write_text("{}")
    status, line = usage_error(monkeypatch, capsys, "--source", str(tmp_path))
    assert status == 2 and line.startswith("bench_report.py: error: argument --source: ")
    assert "holds no asv results files" in line
    # what the report skips (hidden folders and files) is no source either, and the file
    # copied must be asv's (hostile pass 90: tracebacks after the checks passed)
    (tmp_path / ".backup").mkdir()
    (tmp_path / ".backup" / "4db256e0-env.json").write_text("{}")
    assert "holds no asv results files" in usage_error(monkeypatch, capsys, "--source",
                                                       str(tmp_path))[1]
    (tmp_path / "box").mkdir()
    (tmp_path / "box" / "zz-notes.json").write_text("{}")
    status, line = usage_error(monkeypatch, capsys, "--source", str(tmp_path))
    assert status == 2 and "zz-notes.json" in line and "commit_hash" in line


def test_the_fixture_and_counts_of_one_pass_the_checks(monkeypatch, capsys):
    with pytest.raises(AssertionError, match="made a history"):
        usage_error(monkeypatch, capsys, "--commits", "1", "--runs", "1",
                    "--source", str(bench_report.DEFAULT_SOURCE))


def test_the_figure_is_the_median_of_the_runs(monkeypatch):
    """One slow run (a cold cache) does not move the figure (the suite passed with the mean)."""
    ticks = iter([0.0, 1.0, 1.0, 2.0, 2.0, 12.0])
    monkeypatch.setattr(bench_report.time, "perf_counter", lambda: next(ticks))
    assert bench_report.median_seconds(lambda: None, 3) == (1.0, [1.0, 1.0, 10.0])


def _history(source, target, commits):
    """{commit hash: (date, the file's name)} of make_history's files, and its folder."""
    import json

    from scipy_layers.reports.reader import check_results, results_files
    folder = bench_report.make_history(source, target, commits)
    files = results_files(folder)
    for path in files:
        check_results(path)  # (each read as the report reads it)
    data = [json.loads(path.read_text()) for path in files]
    return {d["commit_hash"]: (d["date"], path.name) for d, path in zip(data, files)}, folder


def test_the_history_is_one_commit_a_day_ending_at_the_copied_ones_date(tmp_path):
    """(mutation pass 114) make_history's commits, oldest first, are one day apart and the
    last has the copied file's date; the folder holds asv's benchmarks.json and the
    machine's machine.json beside them."""
    import hashlib
    import json
    source = bench_report.DEFAULT_SOURCE
    original = bench_report.newest_results_file(source)
    date, env = (json.loads(original.read_text())[key] for key in ("date", "env_name"))
    history, folder = _history(source, tmp_path / "results", 4)
    expected = {}
    for i in range(4):
        commit = hashlib.sha1(f"synthetic commit {i}".encode()).hexdigest()
        expected[commit] = (date - (3 - i) * bench_report.DAY_MS, f"{commit[:8]}-{env}.json")
    assert history == expected
    machine = folder / original.parent.name / "machine.json"
    assert machine.read_bytes() == (original.parent / "machine.json").read_bytes()
    assert (folder / "benchmarks.json").read_bytes() == (source / "benchmarks.json").read_bytes()


def _source_with_a_later_file(tmp_path, digit: str):
    """A copy of the fixture's results with a second results file, of commit ``digit`` *
    40, dated 5 days after the first: (the source, the new file, its data)."""
    import json
    import shutil
    source = tmp_path / "source"
    shutil.copytree(bench_report.DEFAULT_SOURCE, source)
    (first,) = source.glob("*/[0-9a-f]*-*.json")
    data = json.loads(first.read_text())
    data["commit_hash"], data["date"] = digit * 40, data["date"] + 5 * bench_report.DAY_MS
    later = first.parent / f"{digit * 8}-{data['env_name']}.json"
    later.write_text(json.dumps(data))
    return source, later, data


def test_the_history_copies_the_newest_results_file(tmp_path):
    """(mutation pass 114) Of two results files, the newer is copied."""
    source, later, data = _source_with_a_later_file(tmp_path, "f")
    assert bench_report.newest_results_file(source) == later
    history, _ = _history(source, tmp_path / "results", 2)
    assert max(date for date, _ in history.values()) == data["date"]


def test_the_newest_results_file_is_the_one_asv_dated_last_not_the_last_by_name(tmp_path):
    """A commit hash says nothing of age: of two results files, the one with the later
    "date" is copied though its name sorts first."""
    source, newer, _ = _source_with_a_later_file(tmp_path, "0")
    assert sorted(source.glob("*/[0-9a-f]*-*.json"))[0] == newer
    assert bench_report.newest_results_file(source) == newer
