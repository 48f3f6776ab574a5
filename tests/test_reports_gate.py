"""The CI gate: `scipy-layers-report --gate --commits A B --round-size N` exits 1 on a
confirmed slowdown of a numpy/scipy implementation or a gradient regression (one line
per finding), 0 otherwise, 2 on bad input. Built on the real A/A run, quietened where
the test needs power."""
import itertools
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from fixtures.compare_variants import (COMMIT_A, COMMIT_B, ROUND_SIZE, copy_compare, edit,
                                       environment_file, quieten, results_file, scale)
from scipy_layers.reports.cli import main

ROOT = Path(__file__).resolve().parent.parent
GRADIENTS = "bench_fft_abs.FFTAbsGradients.track_max_rel_error"


def gate(results, output, *extra):
    return main([str(results), str(output), "--no-plots", "--gate", "--commits", COMMIT_A[:8],
                 COMMIT_B[:8], "--round-size", str(ROUND_SIZE), *extra])


@pytest.fixture
def quiet(tmp_path):
    results = copy_compare(tmp_path / "fixture")
    quieten(results, 0.02)
    return results


def gate_lines(out: str) -> list[str]:
    return out.split("\ngate: ")[1].splitlines()[1:]


def test_identical_code_passes(quiet, tmp_path, capsys):
    assert gate(quiet, tmp_path / "out") == 0
    out = capsys.readouterr().out
    assert "gate: 0 finding(s)" in out and gate_lines(out) == []
    assert "native control: 0 of 22 native timings called faster or slower (0.0%)" in out


def test_a_slowdown_fails_with_one_line_per_slower_case(quiet, tmp_path, capsys):
    scale(quiet, COMMIT_B, 1.5, implementations={"scipy"})
    assert gate(quiet, tmp_path / "out") == 1
    lines = gate_lines(capsys.readouterr().out)
    compare = pd.read_csv(tmp_path / "out" / "compare.csv", keep_default_na=False)
    slower = compare[compare["verdict"] == "slower"]
    assert len(lines) == len(slower) > 0 and set(slower["implementation"]) == {"scipy"}
    assert all(line.startswith("slower: ") and " scipy forward " in line and "q=" in line
               for line in lines)
    summary = (tmp_path / "out" / "summary.md").read_text()
    assert summary.index("### Slower") < summary.index("### Native control") < summary.index("## conv2d")


def test_a_native_slowdown_is_the_control_not_a_finding(quiet, tmp_path, capsys):
    scale(quiet, COMMIT_B, 1.5, implementations={"native"})
    assert gate(quiet, tmp_path / "out") == 0
    out = capsys.readouterr().out
    assert "native control: 22 of 22 native timings called faster or slower" in out


def test_a_gradient_error_that_jumps_fails_whatever_the_speed(quiet, tmp_path, capsys):
    def break_gradient(data):
        columns = data["result_columns"]
        row = data["results"][GRADIENTS]
        row[columns.index("result")][0] = float("inf")
    edit(results_file(quiet, COMMIT_B), break_gradient)
    assert gate(quiet, tmp_path / "out") == 1
    lines = gate_lines(capsys.readouterr().out)
    assert len(lines) == 1 and lines[0].startswith("gradient regression: fft_abs ")
    assert "became non-finite" in lines[0]
    compare = pd.read_csv(tmp_path / "out" / "compare.csv", keep_default_na=False)
    assert (compare["gradient_regression"] == "True").sum() == 1


def _first_cases_of_each_timing(data, implementations, value, first_benchmark_only=False):
    """Set the first case of each implementation in every timing benchmark (or only the
    first such benchmark) to ``value``, without samples."""
    columns = data["result_columns"]
    for name, row in data["results"].items():
        if ".time_" in name:
            params = row[columns.index("params")]
            names = [p.strip("'") for p in params[0]]
            width = len(row[columns.index("result")]) // len(names)
            for impl in implementations:
                index = names.index(impl) * width
                row[columns.index("result")][index] = value
                row[columns.index("samples")][index] = None
            if first_benchmark_only:
                return


def test_a_numpy_timing_that_ran_at_a_and_fails_at_b_fails_the_gate(quiet, tmp_path, capsys):
    """A layer that now raises has no speed to compare: its failed timing is a finding;
    a native timing that fails is not (the control)."""
    edit(results_file(quiet, COMMIT_B), lambda data: _first_cases_of_each_timing(
        data, ("scipy", "native"), None, first_benchmark_only=True))  # (None: asv's "failed")
    assert gate(quiet, tmp_path / "out") == 1
    lines = gate_lines(capsys.readouterr().out)
    assert len(lines) == 1 and lines[0].startswith("failed: ") and " scipy " in lines[0]
    assert lines[0].endswith("ran at A, fails at B")


def test_a_numpy_timing_that_ran_at_a_and_is_skipped_at_b_fails_the_gate(quiet, tmp_path, capsys):
    """A layer whose setup now raises NotImplementedError, or an implementation gone
    from the registry: asv records NaN (skipped), which has no speed either. Native
    turning skipped is the control's business, never a finding."""
    edit(results_file(quiet, COMMIT_B),
         lambda data: _first_cases_of_each_timing(data, ("scipy", "native"), float("nan")))
    assert gate(quiet, tmp_path / "out") == 1
    out = capsys.readouterr().out
    lines = gate_lines(out)
    compare = pd.read_csv(tmp_path / "out" / "compare.csv", keep_default_na=False)
    now_skipped = compare[compare["verdict"] == "now skipped"]
    assert set(now_skipped["implementation"]) == {"scipy", "native"}
    assert (now_skipped["status_a"] == "ok").all() and (now_skipped["status_b"] == "skipped").all()
    scipy = now_skipped[now_skipped["implementation"] == "scipy"]
    assert len(lines) == len(scipy) > 0
    assert all(line.startswith("now skipped: ") and " scipy " in line
               and line.endswith("ran at A, skipped at B (asv's NaN: setup now skips it, or "
                                 "the implementation is gone)") for line in lines)
    assert f"{len(now_skipped)} now skipped" in out  # the verdict counts say it too
    summary = (tmp_path / "out" / "summary.md").read_text()  # and summary.md lists them
    section = summary.split(f"### Ran at A, failed or skipped at B ({len(scipy)})\n")[1]
    assert section.split("###")[0].count("| skipped |") == len(scipy)


def test_a_case_skipped_at_both_commits_is_no_finding(quiet, tmp_path, capsys):
    for commit in (COMMIT_A, COMMIT_B):
        edit(results_file(quiet, commit),
             lambda data: _first_cases_of_each_timing(data, ("scipy",), float("nan")))
    assert gate(quiet, tmp_path / "out") == 0
    compare = pd.read_csv(tmp_path / "out" / "compare.csv", keep_default_na=False)
    assert "now skipped" not in set(compare["verdict"])


def test_a_case_that_fails_at_both_commits_is_no_finding(quiet, tmp_path, capsys):
    """A timing that fails at A already did not newly fail at B: "ran at A, fails at B"
    is for a layer that now raises, not for one that always did."""
    for commit in (COMMIT_A, COMMIT_B):
        edit(results_file(quiet, commit), lambda data: _first_cases_of_each_timing(
            data, ("scipy",), None, first_benchmark_only=True))  # (None: asv's "failed")
    assert gate(quiet, tmp_path / "out") == 0
    assert gate_lines(capsys.readouterr().out) == []
    compare = pd.read_csv(tmp_path / "out" / "compare.csv", keep_default_na=False)
    failed = compare[(compare["status_a"] == "failed") & (compare["status_b"] == "failed")]
    assert len(failed) > 0 and set(failed["verdict"]) == {"failed"}


def test_a_gate_where_every_environment_changed_compared_nothing(quiet, tmp_path, capsys):
    """B 1.5x slower, but timed on another CPU: no speed verdict anywhere, so the gate
    has nothing to stand on (exit 2), as over commits that share no case; the reports
    are written and say what changed (hostile pass 86: it exited 0)."""
    scale(quiet, COMMIT_B, 1.5, implementations={"scipy"})
    # (the record's text is printed: a control character in it shows escaped)
    edit(environment_file(quiet, COMMIT_B), lambda d: d["cpu"].__setitem__("model", "17\x1b[2J"))
    assert gate(quiet, tmp_path / "out") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "ran in another environment at each" in err
    summary = (tmp_path / "out" / "summary.md").read_text()
    assert "environment changed" in summary
    assert main([str(quiet), str(tmp_path / "out"), "--no-plots", "--commits", COMMIT_A[:8],
                 COMMIT_B[:8], "--round-size", "3"]) == 0  # without --gate: a report
    out = capsys.readouterr().out
    assert "environment changed between the commits: cpu: AMD EPYC fam 25 model 1" in out
    assert "\x1b" not in out and "\\x1b[2J" in out
    assert "\x1b" not in (tmp_path / "out" / "summary.md").read_text()


@pytest.mark.parametrize("args, words", [
    (["--threshold", "2"], "must be between 0 and 1"),
    (["--threshold", "five"], "not a number"),
    (["--round-size", "0"], "must be at least 1"),
    # a value with a dash reaches the check (argparse alone: 'expected one argument')
    (["--threshold", "-1%"], "must be between 0 and 1 (or 0% and 100%), got -1%"),
    (["--threshold", "-5e-2"], "must be between 0 and 1 (or 0% and 100%), got -5e-2"),
    (["--round-size", "-3"], "must be at least 1, got -3"),
])
def test_bad_options_are_one_line_and_exit_2(quiet, tmp_path, capsys, args, words):
    with pytest.raises(SystemExit) as exit_:
        gate(quiet, tmp_path / "out", *args)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and words in err


def test_a_round_size_no_compared_timing_can_fill_is_refused_before_anything_is_written(
        quiet, tmp_path, capsys):
    """Each commit would be one round and every verdict inconclusive: a gate that passes
    whatever changed (mutation pass 115: build_report checks it before it writes)."""
    out = tmp_path / "out"
    assert gate(quiet, out, "--round-size", "1000") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--round-size 1000 is more than the" in err
    assert not out.exists()


def test_the_gate_needs_two_commits(tmp_path, capsys):
    from fixtures.asv_variants import FIXTURE
    assert main([str(FIXTURE), str(tmp_path / "out"), "--no-plots", "--gate"]) == 2
    assert "--gate needs two commits" in capsys.readouterr().err


def test_the_gate_command_exits_1_in_a_subprocess(quiet, tmp_path):
    scale(quiet, COMMIT_B, 1.5, implementations={"scipy"})
    run = subprocess.run([sys.executable, "-m", "scipy_layers.reports", "--results", str(quiet),
                          "--output", str(tmp_path / "out"), "--commits", COMMIT_A, COMMIT_B,
                          "--round-size", "3", "--gate", "--no-plots"],
                         cwd=ROOT, capture_output=True, text=True)
    assert run.returncode == 1 and run.stderr == ""
    assert gate_lines(run.stdout)
    bad = subprocess.run([sys.executable, "-m", "scipy_layers.reports", "--results", str(quiet),
                          "--output", str(tmp_path / "out"), "--commits", "abc", COMMIT_B, "--gate"],
                         cwd=ROOT, capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1


def test_the_same_commit_twice_is_an_error_not_a_passing_gate(quiet, tmp_path, capsys):
    out = tmp_path / "out"
    assert main([str(quiet), str(out), "--no-plots", "--gate", "--commits", COMMIT_A[:8],
                 COMMIT_A[:12], "--round-size", str(ROUND_SIZE)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "the same commit" in err and not out.exists()


def test_commits_with_no_case_in_common_are_an_error_not_a_passing_gate(quiet, tmp_path, capsys):
    """B timed on another machine: every case is 'missing', so nothing was compared."""
    other = quiet / "other-machine"
    other.mkdir()
    moved = results_file(quiet, COMMIT_B)
    edit(moved, lambda data: data["params"].update(machine="other-machine"))
    moved.rename(other / moved.name)
    assert gate(quiet, tmp_path / "out") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no case was measured at both" in err


@pytest.mark.parametrize("size, words", [("19", "more than the 18 samples"),
                                         ("1000", "more than the 18 samples")])
def test_a_round_size_no_timing_can_fill_is_an_error(quiet, tmp_path, capsys, size, words):
    """18 samples per case (6 rounds of 3): a round size above that makes each commit one
    round and every verdict inconclusive, silently, unless it is refused."""
    out = tmp_path / "out"
    assert main([str(quiet), str(out), "--no-plots", "--gate", "--commits", COMMIT_A[:8],
                 COMMIT_B[:8], "--round-size", size]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and words in err and not out.exists()


def test_a_round_size_that_straddles_one_commits_rounds_is_an_error(quiet, tmp_path, capsys):
    """A took 6 rounds of 3 samples, B 4: a round size of 4 fills B's 12 samples exactly
    but cuts A's 18 into rounds that straddle asv's (hostile pass 90); 3 divides both."""
    def four_rounds(data):
        index = data["result_columns"].index("samples")
        for row in data["results"].values():
            if len(row) > index and row[index]:
                row[index] = [s[:4 * ROUND_SIZE] if s else s for s in row[index]]
    edit(results_file(quiet, COMMIT_B), four_rounds)
    out = tmp_path / "out"
    assert main([str(quiet), str(out), "--no-plots", "--gate", "--commits", COMMIT_A[:8],
                 COMMIT_B[:8], "--round-size", "4"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "does not divide the sample counts 18 " in err
    assert gate(quiet, out) == 0


def test_a_case_only_one_commit_holds_does_not_judge_the_round_size(quiet, tmp_path):
    """A benchmark gone at B stays in A's file (asv keeps it), timed then with another
    repeat (10 samples): it is compared with nothing, so its count says nothing of the
    compared rounds (hostile pass 91: the report refused after make compare's timing)."""
    import json
    name, old = "bench_conv2d.OldConv2d.time_forward", "bench_conv2d.Conv2d.time_forward"
    benchmarks = quiet / "benchmarks.json"
    listed = json.loads(benchmarks.read_text())
    listed[name] = dict(listed[old], name=name)
    benchmarks.write_text(json.dumps(listed))

    def keep_an_old_benchmark(data):
        row = list(data["results"][old])
        samples = data["result_columns"].index("samples")
        row[samples] = [s[:10] if s else s for s in row[samples]]
        data["results"][name] = row
    edit(results_file(quiet, COMMIT_A), keep_an_old_benchmark)
    assert gate(quiet, tmp_path / "out") == 0


def test_a_round_size_over_results_without_samples_is_an_error(quiet, tmp_path, capsys):
    def drop_samples(data):
        index = data["result_columns"].index("samples")
        for row in data["results"].values():
            if len(row) > index:
                row[index] = None
    for commit in (COMMIT_A, COMMIT_B):
        edit(results_file(quiet, commit), drop_samples)
    assert gate(quiet, tmp_path / "out") == 2
    assert "hold no samples" in capsys.readouterr().err


def test_a_small_threshold_is_printed_as_given_not_rounded_to_0_percent(quiet, tmp_path, capsys):
    assert gate(quiet, tmp_path / "out", "--threshold", "0.5%") == 0
    assert "threshold 0.5%:" in capsys.readouterr().out
    assert "changes under 0.5% unchanged" in (tmp_path / "out" / "summary.md").read_text()


@pytest.mark.parametrize("slower", [False, True])
def test_a_reader_that_stops_early_keeps_the_gates_status(quiet, tmp_path, slower):
    """`... --gate | head -1`: the pipe closes before the findings are printed; the
    reports are written and the exit status is still the gate's, with no traceback."""
    if slower:
        scale(quiet, COMMIT_B, 1.5, implementations={"scipy"})
    run = subprocess.Popen([sys.executable, "-m", "scipy_layers.reports", "--results", str(quiet),
                            "--output", str(tmp_path / "out"), "--commits", COMMIT_A, COMMIT_B,
                            "--round-size", "3", "--gate", "--no-plots"],
                           cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert run.stdout.read(1) == b"R"  # ("Read ..."), then the reader goes away
    run.stdout.close()
    stderr = run.stderr.read().decode()
    assert run.wait(timeout=120) == (1 if slower else 0), stderr
    assert "Traceback" not in stderr and "BrokenPipe" not in stderr, stderr
    assert (tmp_path / "out" / "compare.csv").is_file()


def test_a_stdout_that_cannot_be_written_is_an_error_not_a_traceback(quiet, tmp_path):
    """/dev/full (a full disk): exit 2 and one line, never a traceback or the gate's 0."""
    with open("/dev/full", "w") as full:
        run = subprocess.run([sys.executable, "-m", "scipy_layers.reports", "--results",
                              str(quiet), "--output", str(tmp_path / "out"), "--commits",
                              COMMIT_A, COMMIT_B, "--round-size", "3", "--gate", "--no-plots"],
                             cwd=ROOT, stdout=full, stderr=subprocess.PIPE, text=True)
    assert run.returncode == 2, run.stderr
    assert run.stderr.startswith("scipy-layers-report: error: cannot write to stdout")
    assert run.stderr.count("\n") == 1 and (tmp_path / "out" / "compare.csv").is_file()


def test_stdout_and_stderr_on_a_full_disk_still_exit_2(quiet, tmp_path):
    """`... --gate >/dev/full 2>&1`: the error line cannot be written either; the status
    must still say "error" (2), not the traceback's 1, which reads as a finding."""
    with open("/dev/full", "w") as full:
        run = subprocess.run([sys.executable, "-m", "scipy_layers.reports", "--results",
                              str(quiet), "--output", str(tmp_path / "out"), "--commits",
                              COMMIT_A, COMMIT_B, "--round-size", "3", "--gate", "--no-plots"],
                             cwd=ROOT, stdout=full, stderr=full)
        bad = subprocess.run([sys.executable, "-m", "scipy_layers.reports", "--results",
                              str(tmp_path / "none")], cwd=ROOT, stdout=full, stderr=full)
    assert run.returncode == 2 and bad.returncode == 2


def test_a_gate_without_a_round_size_says_it_judged_no_speed(quiet, tmp_path, capsys):
    """Hostile pass 148: without --round-size each commit's samples are one round and every
    timing is inconclusive, so a 1.5x slowdown passed the gate (exit 0) with nothing said
    but "gate: 0 finding(s)". The gate now says so in a note; with the round size it says
    nothing and finds the slowdown."""
    scale(quiet, COMMIT_B, 1.5, implementations={"scipy"})
    out = tmp_path / "out"
    assert main([str(quiet), str(out), "--no-plots", "--gate", "--commits", COMMIT_A[:8],
                 COMMIT_B[:8]]) == 0
    printed = capsys.readouterr().out
    assert "gate: 0 finding(s)" in printed
    note = [line for line in printed.splitlines() if line.startswith("gate: note: ")]
    assert len(note) == 1 and "no --round-size" in note[0] and "could be called slower" in note[0]
    assert gate(quiet, tmp_path / "out2") == 1
    assert "gate: note: " not in capsys.readouterr().out


def test_a_control_of_few_native_timings_says_it_shows_no_rate(quiet, tmp_path):
    """A make compare with a small BENCH= has 2 or 4 native timings: "0 of 2" read as a
    clean run beside a false "slower" (hostile pass 148). Under 20 the line says so."""
    from scipy_layers.reports.build import build_report
    from scipy_layers.reports.compare import DECIDED
    from scipy_layers.reports.comparison import comparison_markdown
    from scipy_layers.reports.gate import account
    compare = build_report(quiet, tmp_path / "out", commits=[COMMIT_A[:8], COMMIT_B[:8]],
                           with_plots=False, round_size=ROUND_SIZE).compare
    native = compare.index[(compare["implementation"] == "native")
                           & compare["verdict"].isin(DECIDED)]
    few = compare.drop(native[2:])
    line = next(x for x in account(few, 0.05) if x.startswith("native control"))
    assert line.endswith("; 2 are too few to show a false-alarm rate (fewer than 20): confirm "
                         "a verdict by timing both commits again (make compare FRESH=1)"), line
    assert any("2 are too few to show a false-alarm rate" in x
               for x in comparison_markdown(few, 0.05))
    line = next(x for x in account(compare.drop(native), 0.05) if x.startswith("native control"))
    assert "0 of 0 native timings" in line and line.endswith(
        "; with none, it shows no false-alarm rate: confirm a verdict by timing both commits "
        "again (make compare FRESH=1)"), line
    line = next(x for x in account(compare, 0.05) if x.startswith("native control"))
    assert line.endswith("the false-alarm rate of this run"), line  # (22 of them)
    assert not any("too few" in x for x in comparison_markdown(compare, 0.05))


def test_a_gate_over_one_round_a_side_says_it_judged_no_speed(quiet, tmp_path, capsys):
    """Hostile pass 150: `asv continuous -a repeat=3 A B` (or asv run -a repeat=N once)
    stores one round of N samples a case; `--gate --round-size N` over it passed a 1.5x
    slowdown (exit 0) saying only "gate: 0 finding(s)", as a gate without a round size
    did before pass 148, while asv continuous itself said PERFORMANCE DECREASED. The
    fixture's 18 samples a case read at --round-size 18 are one round a side: the gate
    now says it judged no speed; at the runs' own round size it finds the slowdown and
    says nothing."""
    scale(quiet, COMMIT_B, 1.5, implementations={"scipy"})
    assert gate(quiet, tmp_path / "out", "--round-size", "18") == 0
    printed = capsys.readouterr().out
    assert "gate: 0 finding(s)" in printed
    note = [line for line in printed.splitlines() if line.startswith("gate: note: ")]
    assert len(note) == 1, printed
    assert "--round-size 18" in note[0] and "one round" in note[0]
    assert "could be called slower" in note[0] and "no --round-size" not in note[0]
    compare = pd.read_csv(tmp_path / "out" / "compare.csv")
    timed = compare[(compare["unit"] == "seconds") & (compare["status_a"] == "ok")
                    & (compare["status_b"] == "ok")]
    assert f"every one of the {len(timed)} timing(s)" in note[0]
    assert (timed["rounds_a"] == 1).all() and timed["p_value"].isna().all()
    assert gate(quiet, tmp_path / "out2") == 1
    assert "gate: note: " not in capsys.readouterr().out


def test_parameters_reordered_since_a_commit_was_timed_are_named_by_their_values(
        quiet, tmp_path):
    """Hostile pass 150: a benchmark's parameters reordered between two commits (its
    version kept, as the suite's fixed `version` keeps it) leave A's results file in the
    old order and benchmarks.json in the new one; the reader named A's values by position,
    so A's sizes read as dtypes (size 'float32'), every case of the benchmark was missing
    at one side and the slowdown at B went unseen. Each position is now named by the
    values benchmarks.json lists under each name: the comparison is the one of results
    that were never reordered."""
    import math
    import shutil

    import numpy as np
    bench = "bench_fft_abs.FFTAbs.time_forward"
    order = [0, 2, 1, 3]  # implementation, dtype, size, device

    def reorder_row(data):
        columns, row = data["result_columns"], data["results"][bench]
        params = row[columns.index("params")]
        shape = [len(p) for p in params]
        for i, cell in enumerate(row):
            if columns[i] != "params" and isinstance(cell, list) and len(cell) == math.prod(shape):
                cases = np.empty(len(cell), dtype=object)
                for k, value in enumerate(cell):
                    cases[k] = value
                row[i] = cases.reshape(shape).transpose(order).ravel().tolist()
        row[columns.index("params")] = [params[j] for j in order]

    def reorder_names(benchmarks):
        for key in ("param_names", "params"):
            benchmarks[bench][key] = [benchmarks[bench][key][j] for j in order]

    scale(quiet, COMMIT_B, 1.5, implementations={"scipy"})
    plain = tmp_path / "plain" / "results"  # (the same slowdown, never reordered)
    shutil.copytree(quiet.parent, plain.parent)
    edit(results_file(quiet, COMMIT_B), reorder_row)
    edit(quiet / "benchmarks.json", reorder_names)
    assert gate(plain, tmp_path / "plain_out") == 1
    assert gate(quiet, tmp_path / "out") == 1
    case = ["implementation", "size", "dtype", "device"]
    columns = [*case, "status_a", "status_b", "value_a", "value_b", "verdict"]
    got, want = (pd.read_csv(tmp_path / out / "compare.csv", keep_default_na=False)
                 for out in ("out", "plain_out"))
    got, want = ((t[t["benchmark"] == bench][columns].sort_values(case).reset_index(drop=True))
                 for t in (got, want))
    assert set(got["dtype"]) == {"float32", "float64"} and "float32" not in set(got["size"])
    assert (got["verdict"] == "slower").any()
    pd.testing.assert_frame_equal(got, want)


def test_one_process_s_samples_cut_into_rounds_are_refused(quiet, tmp_path, capsys):
    """Hostile pass 150: `asv run --interleave-rounds -a rounds=2 --record-samples` without
    -a repeat (docs/comparing.md's raw command) times each round to asv's time budget: a
    fast case stored 60 samples (30 a process), a slow one 4. --round-size 2 divides both,
    so the fast case's one-process samples became 30 "rounds" with one process's small
    spread, and unchanged code was called faster at q ~ 1e-9. Here one scipy case holds
    60 samples of one process at each commit, B 8% slower: it was a gate finding (exit 1);
    now the differing sample counts are refused (exit 2, one line). Given the cases the
    comparison ran (--cases, as make compare passes them) only those are held to one
    count (others may be of an earlier run with another -a rounds=R)."""
    import json

    import numpy as np
    bench, case = "bench_fft_abs.FFTAbs.time_forward", "'scipy', '16x16', 'float32', 'cpu'"
    combos = []

    def one_process(factor, seed):
        def change(data):
            columns = data["result_columns"]
            row = data["results"][bench]
            if not combos:
                combos.extend(", ".join(c) for c in
                              itertools.product(*row[columns.index("params")]))
            index = combos.index(case)
            assert len(row[columns.index("samples")][index]) == 18
            base = 1e-3 * factor
            noise = np.exp(np.random.default_rng(seed).normal(0, 0.005, 60))
            row[columns.index("samples")][index] = list(base * noise)
            row[columns.index("result")][index] = float(np.median(base * noise))
        return change
    edit(results_file(quiet, COMMIT_A), one_process(1.0, 1))
    edit(results_file(quiet, COMMIT_B), one_process(1.08, 2))
    assert gate(quiet, tmp_path / "out", "--round-size", "3") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("scipy-layers-report: error: --round-size 3: the compared timings "
                          f"of {COMMIT_A[:8]} hold different numbers of samples (18, 60)")
    others = [c for c in combos if c != case]
    cases = tmp_path / "cases.json"
    cases.write_text(json.dumps({"timings": {bench: others}}))
    assert gate(quiet, tmp_path / "out2", "--cases", str(cases)) in (0, 1)  # (not refused)
    assert capsys.readouterr().err == ""
    cases.write_text(json.dumps({"timings": {bench: combos}}))
    assert gate(quiet, tmp_path / "out3", "--cases", str(cases)) == 2
    assert "different numbers of samples (18, 60)" in capsys.readouterr().err
