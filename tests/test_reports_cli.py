"""The command: every output file and its columns, atomic writes inside the output
directory only, and one clear line (exit code 2) for every bad results directory."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from fixtures.asv_variants import FIXTURE, add_commit, copy_results, load, results_files, save
from scipy_layers.reports import ResultsError, build_report, read_results
from scipy_layers.reports.cli import main
from scipy_layers.reports.compare import RESULT_COLUMNS
from scipy_layers.reports.environment import ENV_COLUMNS
from scipy_layers.reports.reader import COLUMNS

ROOT = Path(__file__).resolve().parent.parent
CSV_COLUMNS = {
    "speedup.csv": ["layer", "kind", "benchmark", "measurement", "implementation", "size",
                    "kernel", "dtype", "device", "threads", "quantity", "layout", "values", "unit",
                    "time", "q25",
                    "q75", "status", "native_time", "native_q25", "native_q75", "native_status",
                    "ratio", "ratio_low", "ratio_high", "bound_time", "limit_fraction",
                    "native_limit_fraction", "commit", "commit_date", "commit_order", "machine", "env",
                    *ENV_COLUMNS],
    "gradients.csv": ["layer", "implementation", "size", "kernel", "dtype", "device",
                      "layout", "values",
                      "output_max_abs", "output_max_rel", "grad_input_max_abs", "grad_input_max_rel",
                      "grad_filter_max_abs", "grad_filter_max_rel", "grad_bias_max_abs",
                      "grad_bias_max_rel", "worst_rel_error", "worst_quantity", "unmeasured", "not_compared",
                      "tolerance",
                      "gradient_is_exact", "verdict", "status", "commit", "commit_date", "commit_order",
                      "machine", "env"],
    "compare.csv": ["layer", "kind", "benchmark", "measurement", "unit", "implementation", "size",
                    "kernel", "dtype", "device", "threads", "quantity", "layout", "values",
                    "machine", "env", *RESULT_COLUMNS],
    "timings.csv": COLUMNS,
}
PLOTS = ["time_vs_size_conv2d.png", "speedup_conv2d.png", "time_vs_size_fft_abs.png",
         "speedup_fft_abs.png"]


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    """The command run once on two commits of the real results, into an output directory
    that already holds a README.md (which must survive)."""
    base = tmp_path_factory.mktemp("report")
    results = copy_results(base / "results")
    add_commit(results, "d" * 40, days_later=2)
    output = base / "out" / "nested"
    output.mkdir(parents=True)
    (output / "README.md").write_text("committed documentation\n")
    before = {p: p.read_bytes() for p in results.rglob("*") if p.is_file()}
    assert main([str(results), str(output), "--threshold", "10%"]) == 0
    return base, results, output, before


def test_every_file_is_written_with_its_columns(written, capsys):
    _, _, output, _ = written
    for name, columns in CSV_COLUMNS.items():
        assert list(pd.read_csv(output / name, nrows=1).columns) == columns, name
    timings = pd.read_csv(output / "timings.csv")
    assert set(timings["status"]) == {"ok", "skipped"}
    assert len(timings) == 2 * len(read_results(FIXTURE))
    summary = (output / "summary.md").read_text()
    for text in ("## conv2d", "## fft_abs", "scipy/native", "expected failure", "| size |",
                 "changes under 10% unchanged", "### Native control"):
        assert text in summary
    for name in PLOTS:
        assert (output / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_readme_survives_and_nothing_else_is_touched(written):
    base, results, output, before = written
    assert (output / "README.md").read_text() == "committed documentation\n"
    assert {p: p.read_bytes() for p in results.rglob("*") if p.is_file()} == before
    assert sorted(p.name for p in output.iterdir()) == sorted(
        ["README.md", ".scipy-layers-report.json", "summary.md", *CSV_COLUMNS, *PLOTS])
    # (no staging folder or temporary file left; the manifest lists what the tool wrote)
    assert sorted(p.name for p in base.iterdir()) == ["out", "results"]


def test_headline_and_paths_are_printed(tmp_path, capsys):
    assert main([str(FIXTURE), str(tmp_path / "out"), "--no-plots"]) == 0
    out = capsys.readouterr().out
    assert str(tmp_path / "out" / "timings.csv") in out
    assert "geomean_ratio" in out and "numpy-tutorial" in out and "expected failure" in out
    assert not list((tmp_path / "out").glob("*.png"))


def test_options_spelling_of_the_directories(tmp_path):
    out = tmp_path / "out"
    assert main(["--results", str(FIXTURE), "--output", str(out), "--no-plots"]) == 0
    assert (out / "summary.md").exists()


def bad(tmp_path, break_it):
    results = copy_results(tmp_path / "results")
    return results, break_it(results)


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def mutate(path: Path, change) -> Path:
    data = load(path)
    change(data)
    save(path, data)
    return path


BROKEN = {
    "missing directory": (lambda r: (shutil.rmtree(r), r)[1], "does not exist"),
    "empty directory": (lambda r: (shutil.rmtree(r), r.mkdir(), r)[2], "holds no asv results files"),
    "no results files": (lambda r: (results_files(r)[0].unlink(), r)[1], "holds no asv results files"),
    "missing benchmarks.json": (lambda r: (r.joinpath("benchmarks.json").unlink(),
                                           r / "benchmarks.json")[1], "is missing"),
    "corrupt benchmarks.json": (lambda r: write(r / "benchmarks.json", '{"a": '), "is not valid JSON"),
    "corrupt results file": (lambda r: write(results_files(r)[0], "{not json"), "is not valid JSON"),
    "empty results file": (lambda r: write(results_files(r)[0], ""), "is empty"),
    "results file with missing keys": (
        lambda r: mutate(results_files(r)[0], lambda d: d.pop("result_columns")),
        "lacks key(s) result_columns"),
    "results file with no results": (
        lambda r: mutate(results_files(r)[0], lambda d: d.update(results={})), "holds no benchmark results"),
    "truncated result list": (
        lambda r: mutate(results_files(r)[0], lambda d: d["results"][
            "bench_conv2d.Conv2d.time_forward"][0].pop()), "239 values for 240"),
    "non-numeric result": (
        lambda r: mutate(results_files(r)[0], lambda d: d["results"][
            "bench_conv2d.Conv2d.time_forward"][0].__setitem__(0, "fast")), "not a number"),
    "results file that is a list": (lambda r: write(results_files(r)[0], "[]"), "is not a JSON object"),
}


@pytest.mark.parametrize("case", list(BROKEN))
def test_bad_results_directories_name_the_file(tmp_path, case, capsys):
    break_it, problem = BROKEN[case]
    results, culprit = bad(tmp_path, break_it)
    with pytest.raises(ResultsError) as error:
        read_results(results)
    assert error.value.path == culprit and problem in error.value.problem
    output = tmp_path / "out"
    assert main([str(results), str(output)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(culprit) in err and problem in err
    assert "Traceback" not in err
    assert not output.exists()  # nothing written for bad results


def test_unknown_commit_is_a_one_line_error(capsys, tmp_path):
    assert main([str(FIXTURE), str(tmp_path / "o"), "--commits", "abc", "def"]) == 2
    assert "commit 'abc' is not in the results" in capsys.readouterr().err


def test_the_module_entry_point_exits_2_without_a_traceback(tmp_path):
    run = subprocess.run([sys.executable, "-m", "scipy_layers.reports", str(tmp_path / "none")],
                         cwd=ROOT, capture_output=True, text=True)
    assert run.returncode == 2
    assert run.stderr.startswith("scipy-layers-report: error: ") and run.stderr.count("\n") == 1
    assert "Traceback" not in run.stderr and run.stdout == ""


def _declared_entry_point() -> str:
    """pyproject.toml's target of the console script, e.g. 'package.module:function'."""
    import tomllib
    with open(ROOT / "pyproject.toml", "rb") as f:
        return tomllib.load(f)["project"]["scripts"]["scipy-layers-report"]


@pytest.mark.parametrize("entry", ["console script", "python -m"])
def test_a_broken_install_is_status_2_never_the_gate_s_1(tmp_path, entry):
    """pandas that no longer imports (an upgrade gone wrong) ended in Python's status 1
    before the command's own handler ran, which --gate means as a confirmed regression."""
    (tmp_path / "pandas").mkdir()
    (tmp_path / "pandas" / "__init__.py").write_text('raise ImportError("a broken pandas")\n')
    module, function = _declared_entry_point().split(":")
    command = ([sys.executable, "-c", f"import sys, {module}; "
                f"sys.exit({module}.{function}(['--gate']))"]
               if entry == "console script" else
               [sys.executable, "-m", "scipy_layers.reports", "--gate"])
    run = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{ROOT}"})
    assert run.returncode == 2, run.stderr
    assert "ImportError: a broken pandas" in run.stderr
    assert run.stderr.rstrip().endswith("scipy-layers-report: error: cannot start (the "
                                        "traceback above); exit status 2, not a gate finding")


def test_output_path_that_is_a_file(tmp_path, capsys):
    target = write(tmp_path / "file", "x")
    assert main([str(FIXTURE), str(target), "--no-plots"]) == 2
    assert "not a directory" in capsys.readouterr().err
    assert target.read_text() == "x"


def test_build_report_returns_the_tables(tmp_path):
    report = build_report(FIXTURE, tmp_path / "out", with_plots=False)
    assert report.commits is None and report.compare.empty
    assert [p.name for p in report.files] == ["timings.csv", "speedup.csv", "gradients.csv",
                                              "compare.csv", "summary.md"]
    assert json.loads(json.dumps(report.headline.to_dict("records")))  # plain values


def test_summary_has_a_methods_table_from_the_methods_view(written):
    _, _, output, _ = written
    timings = pd.read_csv(output / "timings.csv", keep_default_na=False)
    methods = timings[(timings["kind"] == "methods") & (timings["status"] == "ok")]
    assert not methods.empty  # the fixture's real run has Conv2dMethods results
    summary = (output / "summary.md").read_text()
    section = summary.split("## conv2d")[1].split("## ")[0]
    assert "Every method (methods view)" in section
    shown = section.split("Every method (methods view)")[1]
    for size in methods["size"].unique():
        assert f"| {size} |" in shown


def test_headline_counts_methods_timed_only_in_the_methods_view():
    from scipy_layers.reports.summary import headline

    def row(kind, implementation, ratio):
        return dict(layer="conv2d", kind=kind, implementation=implementation, ratio=ratio,
                    measurement="forward+backward", threads="1", machine="m", commit="c",
                    commit_date=pd.Timestamp("2026-11-27"), commit_order=0)

    speedup = pd.DataFrame([row("timings", "scipy", 0.5), row("methods", "scipy", 0.4),
                            row("methods", "scipy-fft", 0.25), row("methods", "scipy-fft", 4.0)])
    gradients = pd.DataFrame(columns=["layer", "implementation", "verdict", "machine", "commit",
                                      "commit_date", "commit_order"])
    table = headline(speedup, gradients).set_index("implementation")
    assert table.loc["scipy", "cases"] == 1  # the plain view wins where it exists
    assert table.loc["scipy-fft", "cases"] == 2
    assert table.loc["scipy-fft", "geomean_ratio"] == pytest.approx(1.0)


def test_an_error_with_stderr_closed_does_not_go_to_stdout(tmp_path):
    """Started with stderr closed (`2>&-`), print(file=sys.stderr) wrote the error line
    to stdout (sys.stderr is None there): stdout is the report's, not the error's."""
    run = subprocess.run(["sh", "-c", f"'{sys.executable}' -m scipy_layers.reports "
                          f"'{tmp_path / 'none'}' 2>&-"], cwd=ROOT, capture_output=True, text=True)
    assert run.returncode == 2 and run.stdout == ""


def test_an_unexpected_error_is_status_2_never_the_gate_s_1(tmp_path, monkeypatch, capsys):
    """Python's status for an uncaught exception is 1, --gate's "findings" (hostile pass
    98): a defect of the report's is said as one, with its traceback, and gives 2."""
    from scipy_layers.reports import cli

    def broken(*args, **kwargs):
        raise KeyError("a defect")
    monkeypatch.setattr(cli, "build_report", broken)
    assert cli.main([str(tmp_path), str(tmp_path / "out"), "--gate"]) == 2
    err = capsys.readouterr().err
    assert "KeyError: 'a defect'" in err and "internal error" in err



def test_only_a_number_option_s_dashed_value_is_joined_to_it():
    from scipy_layers.reports.cli import joined_dashed_numbers
    assert joined_dashed_numbers(["r", "--threshold", "-1%", "--round-size", "-.5"]) == [
        "r", "--threshold=-1%", "--round-size=-.5"]
    for kept in (["--threshold", "5%"], ["--threshold"], ["--threshold", "--gate"],
                 ["--no-plots", "-1"], ["-1", "out"], ["--commits", "-a", "b"]):
        assert joined_dashed_numbers(kept) == kept


def test_an_abbreviated_number_option_s_dashed_value_is_joined_and_nothing_after_dashes(capsys):
    """Hostile pass 152: argparse takes '--thresh' for '--threshold', but its dashed value
    was not joined ('--thresh -1%': 'expected one argument', not the range check); after
    '--', which ends the options, '--threshold' '-1' (two positional words) became one."""
    from scipy_layers.reports.cli import joined_dashed_numbers, main
    options = ("--help", "--results", "--round-size", "--threshold", "--gate")
    assert joined_dashed_numbers(["--thresh", "-1%", "--ro", "-2"], options) == [
        "--thresh=-1%", "--ro=-2"]
    for kept in (["--r", "-2"], ["--re", "-2"], ["--", "--threshold", "-1"], ["-t", "-1"]):
        assert joined_dashed_numbers(kept, options) == kept
    for argv, message in ((["--thresh", "-1%"], "must be between 0 and 1"),
                          (["--round", "-5"], "must be at least 1")):
        with pytest.raises(SystemExit):
            main(argv)
        assert message in capsys.readouterr().err


def test_a_file_asv_rm_emptied_is_named_with_what_to_do(tmp_path, capsys):
    """Hostile pass 150: `asv rm -y benchmark=...` that removes every benchmark a run
    stored (a benchmark since renamed, say) leaves that run's file with no results, which
    asv's own commands read; the report refuses the directory (exit 2, one line naming
    the file, as for any unreadable file) and now says where such a file comes from and
    that deleting it is the fix."""
    results = copy_results(tmp_path / "results")
    (tmp_path / "asv.conf.json").write_text(
        '{"version": 1, "project": "x", "repo": ".", "results_dir": "results"}')
    run = subprocess.run([sys.executable, "-m", "asv", "rm", "-y", "benchmark=*"],
                         cwd=tmp_path, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    emptied = results_files(results)[0]
    assert load(emptied)["results"] == {}
    assert main([str(results), str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(emptied) in err and "holds no benchmark results" in err
    assert "asv rm leaves such a file" in err and "delete it" in err
    emptied.unlink()
    assert main([str(results), str(tmp_path / "out")]) == 2  # (no results file left)
