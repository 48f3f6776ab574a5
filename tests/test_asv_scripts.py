"""tools/reference_results.sh (`make results`) and tools/run_benchmarks.sh (`make bench`):
a failed benchmark must not cost the reports of every other one, and asv's own failure
(or Ctrl-C) must stop before the reports are rewritten from partial results. Each script
runs on a copy beside stub programs that log their calls (no asv run, nothing timed)."""
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _stub(path: Path, body: str) -> None:
    path.write_text("#!/usr/bin/env bash\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


def _run(tmp_path: Path, script: str, asv_status: int, report_status: int = 0,
         full_status=None, env=None, check_status: int = 0):
    """``script`` in a scratch tree whose .venv/bin/asv exits ``asv_status`` (with
    SCIPY_LAYERS_BENCH_FULL=1: ``full_status``), whose report step exits
    ``report_status`` and whose check of asv's Python (record_environment.py --check)
    exits ``check_status``; returns (process, logged calls)."""
    (tmp_path / "tools").mkdir()
    (tmp_path / ".venv" / "bin").mkdir(parents=True)
    (tmp_path / "stub-path").mkdir()
    for name in (script, "_asv_status.sh", "without_overrides.sh", "split_words.py"):
        shutil.copy(ROOT / "tools" / name, tmp_path / "tools")
    log = tmp_path / "calls.log"
    # every stub call also logs the OpenBLAS kernel overrides it sees to env.log
    env_log = tmp_path / "env.log"
    env_line = (f'echo "${{0##*/}} coretype=${{OPENBLAS_CORETYPE-unset}} '
                f'l2=${{OPENBLAS_L2_SIZE-unset}}" >> "{env_log}"\n')
    full_status = asv_status if full_status is None else full_status
    _stub(tmp_path / ".venv" / "bin" / "asv",  # (its arguments, NUL-separated, to argv.bin)
          env_line + f'echo "asv full=${{SCIPY_LAYERS_BENCH_FULL:-0}} $*" >> "{log}"\n'
          f'printf "%s\\0" "$@" > "{tmp_path / "argv.bin"}"\n'
          f'[ "${{SCIPY_LAYERS_BENCH_FULL:-0}}" = 1 ] && exit {full_status}\nexit {asv_status}\n')
    # `make bench` writes its reports with `python -m scipy_layers.reports`
    _stub(tmp_path / ".venv" / "bin" / "python",  # (ASV_ARGS' words: split as they are)
          f'[ "$1" = tools/split_words.py ] && exec "{sys.executable}" "$@"\n'
          + env_line + f'echo "python $*" >> "{log}"\n'
          '[ "$1" = tools/asv_machine.py ] && echo stub-machine\n'
          f'[ "$2" = scipy_layers.reports ] && exit {report_status}\n'
          f'[ "$2" = --check ] && exit {check_status}\nexit 0\n')
    _stub(tmp_path / "tools" / "commit_report.sh",
          env_line + f'echo "commit_report $*" >> "{log}"\nexit {report_status}\n')
    _stub(tmp_path / "stub-path" / "git", 'echo 0123abc\n')  # the scratch tree is no repo
    process = subprocess.run(
        ["bash", str(tmp_path / "tools" / script)], capture_output=True, text=True,
        timeout=60, cwd="/",  # the scripts find their files from their own path
        env={"PATH": f"{tmp_path / 'stub-path'}:/usr/bin:/bin", **(env or {})})
    return process, log.read_text().splitlines() if log.exists() else []


def _steps(calls):
    """The program each logged call ran: asv, a python script or module, commit_report;
    "check" for the check of asv's Python."""
    steps = []
    for call in calls:
        words = call.split()
        if words[1:3] == ["tools/record_environment.py", "--check"]:
            steps.append("check")
        elif words[0] != "python":
            steps.append(words[0])
        else:
            steps.append(words[2] if words[1] == "-m" else words[1])
    return steps


# reference_results.sh (`make results`)

@pytest.mark.parametrize("asv_status", [0, 2])
def test_results_runs_every_step_and_asvs_status_is_the_result(tmp_path, asv_status):
    process, calls = _run(tmp_path, "reference_results.sh", asv_status)
    assert _steps(calls) == ["check", "tools/asv_machine.py", "asv", "asv",
                             "tools/record_environment.py", "tools/calibrate.py",
                             "commit_report"], calls
    assert "--machine stub-machine" in calls[2] and "HEAD^!" in calls[2]
    assert "full=0" in calls[2] and "full=1" in calls[3]  # the default grid, then the full
    assert "time_forward_backward" in calls[3]
    assert calls[-1] == "commit_report .venv/bin/python stub-machine"
    assert process.returncode == asv_status, process.stderr
    assert ("some benchmarks failed" in process.stderr) == bool(asv_status)


@pytest.mark.parametrize("default_status, full_status", [(2, 0), (0, 2)])
def test_results_failed_benchmarks_in_either_run_are_the_result(
        tmp_path, default_status, full_status):
    process, calls = _run(tmp_path, "reference_results.sh", default_status,
                          full_status=full_status)
    assert calls[-1].startswith("commit_report")
    assert process.returncode == 2 and "some benchmarks failed" in process.stderr


@pytest.mark.parametrize("default_status, full_status", [(1, 0), (0, 1), (130, 0)])
def test_results_stop_at_asvs_own_failure(tmp_path, default_status, full_status):
    # asv exits 1 on its own errors and on Ctrl-C: results may be partial or stale
    process, calls = _run(tmp_path, "reference_results.sh", default_status,
                          full_status=full_status)
    assert not any(call.startswith("commit_report") for call in calls), calls
    assert not any("calibrate" in call for call in calls)
    assert process.returncode == (default_status or full_status)
    assert "stopped before the reports were written" in process.stderr


def test_results_failed_report_is_the_result(tmp_path):
    process, calls = _run(tmp_path, "reference_results.sh", asv_status=2, report_status=3)
    assert calls[-1].startswith("commit_report")
    assert process.returncode == 3
    assert "some benchmarks failed" in process.stderr and "status 3" in process.stderr


def test_results_time_the_kernel_openblas_picks_itself(tmp_path):
    # the workplace's kernel overrides are dropped for every step of the reference run
    process, calls = _run(tmp_path, "reference_results.sh", 0,
                          env={"OPENBLAS_CORETYPE": "Haswell", "OPENBLAS_L2_SIZE": "512",
                               "OPENBLAS_NUM_THREADS": "1"})
    assert process.returncode == 0, process.stderr
    seen = (tmp_path / "env.log").read_text().splitlines()
    assert len(seen) == len(calls) == 7
    assert all(line.endswith(" coretype=unset l2=unset") for line in seen), seen
    # not silently: each override dropped is named, with where it is still used
    for dropped in ("OPENBLAS_CORETYPE=Haswell not used", "OPENBLAS_L2_SIZE=512 not used"):
        assert dropped in process.stderr, process.stderr
    assert "OPENBLAS_NUM_THREADS" not in process.stderr
    (tmp_path / "quiet").mkdir()
    quiet, _ = _run(tmp_path / "quiet", "reference_results.sh", 0)
    assert "not used" not in quiet.stderr, quiet.stderr


def test_bench_keeps_the_callers_kernel_overrides(tmp_path):
    # `make bench` times what the caller set (and its reports record it)
    process, calls = _run(tmp_path, "run_benchmarks.sh", 0,
                          env={"OPENBLAS_CORETYPE": "Haswell", "OPENBLAS_L2_SIZE": "512"})
    assert process.returncode == 0, process.stderr
    seen = (tmp_path / "env.log").read_text().splitlines()
    assert len(seen) == len(calls)
    assert all(line.endswith(" coretype=Haswell l2=512") for line in seen), seen
    assert "not used" not in process.stderr


# without_overrides.sh (`make targets`, `make method-choice`, `make gemm-orientation`)

WRAPPER = ["bash", str(ROOT / "tools" / "without_overrides.sh")]
SHOW = ["bash", "-c", 'echo "${OPENBLAS_CORETYPE-unset} ${OPENBLAS_L2_SIZE-unset} '
        '${MKL_DEBUG_CPU_TYPE-unset} ${MKL_ENABLE_INSTRUCTIONS-unset} $OPENBLAS_NUM_THREADS '
        '$1"; exit 7', "-", "one argument"]


@pytest.mark.parametrize("overrides", [
    {"OPENBLAS_CORETYPE": "Haswell", "OPENBLAS_L2_SIZE": "512"},
    {"OPENBLAS_CORETYPE": "", "MKL_DEBUG_CPU_TYPE": "5", "MKL_ENABLE_INSTRUCTIONS": "AVX2"},
    {"OPENBLAS_L2_SIZE": "512\nERROR: not one"},
])
def test_without_overrides_runs_its_arguments_without_them(overrides):
    process = subprocess.run(WRAPPER + SHOW, capture_output=True, text=True, timeout=30,
                             env={"PATH": "/usr/bin:/bin", "OPENBLAS_NUM_THREADS": "1",
                                  **overrides})
    assert process.returncode == 7  # the command's own status
    assert process.stdout == "unset unset unset unset 1 one argument\n"
    notes = process.stderr.splitlines()  # one line for each override dropped, by name
    assert [note.split("=")[0] for note in notes] == [f"note: {name}" for name in overrides]
    assert all("not used" in note for note in notes), notes


def test_without_overrides_drops_exactly_the_overrides_the_environment_record_names():
    # the shell list is a twin of record_environment.OVERRIDE_VARS: they must not drift
    sys.path.insert(0, str(ROOT / "tools"))
    import record_environment
    loop = re.search(r"^\s*for name in ([A-Z0-9_ ]+); do$",
                     (ROOT / "tools" / "without_overrides.sh").read_text(), re.MULTILINE)
    assert loop and tuple(loop.group(1).split()) == record_environment.OVERRIDE_VARS


def test_without_overrides_says_nothing_where_none_is_set_and_needs_a_command():
    env = {"PATH": "/usr/bin:/bin", "OPENBLAS_NUM_THREADS": "1"}
    quiet = subprocess.run(WRAPPER + SHOW, capture_output=True, text=True, timeout=30, env=env)
    assert (quiet.returncode, quiet.stdout, quiet.stderr) == (
        7, "unset unset unset unset 1 one argument\n", "")
    dashed = subprocess.run(WRAPPER + ["-c", "true"], capture_output=True, text=True,
                            timeout=30, env=env)
    assert dashed.returncode == 127  # a command named "-c", not an option of exec's
    separated = subprocess.run(WRAPPER + ["--"] + SHOW, capture_output=True, text=True,
                               timeout=30, env=env)
    assert (separated.returncode, separated.stdout) == (7, quiet.stdout)
    for bare in (WRAPPER, WRAPPER + ["--"]):
        bare = subprocess.run(bare, capture_output=True, text=True, timeout=30, env=env)
        assert bare.returncode == 2 and bare.stderr.startswith("usage: without_overrides.sh")


def test_without_overrides_sourced_drops_them_and_leaves_the_callers_own_names():
    script = ('name=mine; note=kept; f() { local name=inner; . "$1"; echo "$name"; }; f "$1"; '
              'echo "$name $note ${OPENBLAS_CORETYPE-unset} $?"')
    process = subprocess.run(
        ["bash", "-euc", script, "-", str(ROOT / "tools" / "without_overrides.sh")],
        capture_output=True, text=True, timeout=30,
        env={"PATH": "/usr/bin:/bin", "OPENBLAS_CORETYPE": "Haswell"})
    assert process.returncode == 0, process.stderr
    assert process.stdout == "inner\nmine kept unset 0\n"
    assert process.stderr.startswith("note: OPENBLAS_CORETYPE=Haswell not used")


@pytest.mark.skipif(shutil.which("dash") is None, reason="needs a POSIX sh that is not bash")
def test_without_overrides_under_sh_runs_under_bash_or_says_it_needs_it():
    """`sh tools/without_overrides.sh ...` stopped with dash's "Bad substitution" (status
    2, the command not run): run so, it now runs itself under bash; sourced by sh, which
    it cannot be, it says so and returns 2, leaving the caller's variables as they were."""
    env = {"PATH": "/usr/bin:/bin", "OPENBLAS_NUM_THREADS": "1", "OPENBLAS_CORETYPE": "Haswell"}
    ran = subprocess.run(["dash", str(ROOT / "tools" / "without_overrides.sh")] + SHOW,
                         capture_output=True, text=True, timeout=30, env=env)
    assert (ran.returncode, ran.stdout) == (7, "unset unset unset unset 1 one argument\n")
    assert ran.stderr.startswith("note: OPENBLAS_CORETYPE=Haswell not used")
    sourced = subprocess.run(
        ["dash", "-c", '. "$1"; echo "$? ${OPENBLAS_CORETYPE-unset}"', "-",
         str(ROOT / "tools" / "without_overrides.sh")],
        capture_output=True, text=True, timeout=30, env=env)
    assert sourced.stdout == "2 Haswell\n"
    assert sourced.stderr.count("\n") == 1 and "source it from bash" in sourced.stderr


@pytest.mark.skipif(shutil.which("zsh") is None, reason="needs zsh")
def test_without_overrides_sourced_by_zsh_leaves_the_shell_running():
    """zsh sets $0 to the file it sources, which read as "executed": the script exec'd
    bash in place of the sourcing shell (an interactive zsh closed, a zsh script ended
    there with the usage error). Sourced by zsh it now says it needs bash and returns 2."""
    env = {"PATH": "/usr/bin:/bin", "OPENBLAS_CORETYPE": "Haswell"}
    sourced = subprocess.run(
        ["zsh", "-fc", 'source "$1"; echo "$? ${OPENBLAS_CORETYPE-unset}"', "-",
         str(ROOT / "tools" / "without_overrides.sh")],
        capture_output=True, text=True, timeout=30, env=env)
    assert (sourced.returncode, sourced.stdout) == (0, "2 Haswell\n")
    assert sourced.stderr.count("\n") == 1 and "source it from bash" in sourced.stderr
    ran = subprocess.run(["zsh", "-f", str(ROOT / "tools" / "without_overrides.sh")] + SHOW,
                         capture_output=True, text=True, timeout=30,
                         env={**env, "OPENBLAS_NUM_THREADS": "1"})
    assert (ran.returncode, ran.stdout) == (7, "unset unset unset unset 1 one argument\n")


@pytest.mark.skipif(shutil.which("dash") is None, reason="needs a POSIX sh that is not bash")
def test_without_overrides_run_by_sh_through_a_link_of_another_name_runs(tmp_path):
    """`sh ~/bin/no-overrides make results`, a link to the script: $0's name is not the
    script's, and it said "sourced from a shell other than bash" and ran nothing."""
    link = tmp_path / "no-overrides"
    link.symlink_to(ROOT / "tools" / "without_overrides.sh")
    ran = subprocess.run(["dash", str(link)] + SHOW, capture_output=True, text=True,
                         timeout=30, env={"PATH": "/usr/bin:/bin", "OPENBLAS_NUM_THREADS": "1",
                                          "OPENBLAS_CORETYPE": "Haswell"})
    assert (ran.returncode, ran.stdout) == (7, "unset unset unset unset 1 one argument\n")
    assert ran.stderr.startswith("note: OPENBLAS_CORETYPE=Haswell not used")


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
@pytest.mark.parametrize("target, tool, arguments", [
    ("targets", "tools/targets.py", "TARGETS_ARGS"),
    ("method-choice", "tools/method_choice.py", "METHOD_CHOICE_ARGS"),
    ("gemm-orientation", "tools/gemm_orientation.py", "GEMM_ORIENTATION_ARGS")])
def test_reference_timing_targets_drop_overrides_and_pin_threads(tmp_path, target, tool,
                                                                 arguments):
    # the Makefile's recipe, run with a stub for the venv's python that prints what it got
    stub = tmp_path / "python"
    _stub(stub, f'[ "$1" = tools/split_words.py ] && exec "{sys.executable}" "$@"\n'  # (the words)
                'echo "${OPENBLAS_CORETYPE-unset} ${OPENBLAS_L2_SIZE-unset} '
                '$OPENBLAS_NUM_THREADS $OMP_NUM_THREADS $MKL_NUM_THREADS $*"\nexit 3\n')
    process = subprocess.run(
        ["make", "--no-print-directory", "-s", "-o", ".venv/.installed", target, f"PY={stub}",
         f"{arguments}=--batches 2"],
        capture_output=True, text=True, timeout=60, cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", "OPENBLAS_CORETYPE": "Haswell",
             "OPENBLAS_L2_SIZE": "512", "OMP_NUM_THREADS": "2"})
    assert process.returncode != 0  # the tool's failure is make's
    assert process.stdout == f"unset unset 1 1 1 {tool} --batches 2\n"
    assert "OPENBLAS_CORETYPE=Haswell not used" in process.stderr


# run_benchmarks.sh (`make bench`)

@pytest.mark.parametrize("asv_status", [0, 2])
def test_bench_reports_publishes_and_asvs_status_is_the_result(tmp_path, asv_status):
    process, calls = _run(tmp_path, "run_benchmarks.sh", asv_status,
                          env={"ASV_ARGS": "--quick --show-stderr"})
    assert _steps(calls) == ["check", "tools/asv_machine.py", "asv", "tools/record_environment.py",
                             "tools/calibrate.py", "scipy_layers.reports",
                             "tools/offline_dashboard.py"], calls
    # ASV_ARGS is split into words, before the commit range
    assert calls[2].endswith("--machine stub-machine --quick --show-stderr HEAD^!"), calls[2]
    assert "publish" in calls[-1]
    assert process.returncode == asv_status, process.stderr
    assert ("some benchmarks failed" in process.stderr) == bool(asv_status)


@pytest.mark.parametrize("asv_args, words", [
    ("", []),
    ("--quick", ["--quick"]),
    ("  --quick\t-e  ", ["--quick", "-e"]),
    ("-b 'FFTAbs.*time_forward_backward\\(.scipy.'", ["-b", "FFTAbs.*time_forward_backward\\(.scipy."]),
    ("-b \"a b\" -b c\\ d", ["-b", "a b", "-b", "c d"]),
    ("-b 'x$' $HOME * ; $(touch INJECTED) `touch INJECTED`",
     ["-b", "x$", "$HOME", "*", ";", "$(touch", "INJECTED)", "`touch", "INJECTED`"]),
])
def test_bench_asv_args_are_split_as_a_shell_splits_words_and_nothing_is_expanded(
        tmp_path, asv_args, words):
    # quotes group a word (a regex with spaces or quotes passes whole); no glob, no $, no
    # command: ASV_ARGS was once used unquoted, split on spaces and glob-expanded
    process, calls = _run(tmp_path, "run_benchmarks.sh", 0, env={"ASV_ARGS": asv_args})
    assert process.returncode == 0, process.stderr
    argv = (tmp_path / "argv.bin").read_bytes().split(b"\0")[:-1]
    assert [word.decode() for word in argv] == ["run", "--machine", "stub-machine", *words,
                                                "HEAD^!"]
    assert not list(tmp_path.rglob("INJECTED"))


def test_bench_asv_args_with_an_open_quote_stop_before_anything_runs(tmp_path):
    process, calls = _run(tmp_path, "run_benchmarks.sh", 0, env={"ASV_ARGS": "-b 'a b"})
    assert process.returncode == 2 and calls == []
    assert "ASV_ARGS" in process.stderr and "No closing quotation" in process.stderr


@pytest.mark.parametrize("asv_status", [1, 130])
def test_bench_stops_at_asvs_own_failure(tmp_path, asv_status):
    process, calls = _run(tmp_path, "run_benchmarks.sh", asv_status)
    assert _steps(calls) == ["check", "tools/asv_machine.py", "asv"], calls
    assert process.returncode == asv_status
    assert "stopped before the reports were written" in process.stderr


def test_bench_failed_report_is_the_result_and_the_dashboard_still_publishes(tmp_path):
    process, calls = _run(tmp_path, "run_benchmarks.sh", asv_status=2, report_status=4)
    assert _steps(calls)[-2:] == ["scipy_layers.reports", "tools/offline_dashboard.py"]
    assert process.returncode == 4
    assert "some benchmarks failed" in process.stderr and "status 4" in process.stderr


@pytest.mark.parametrize("script", ["run_benchmarks.sh", "reference_results.sh"])
def test_without_asvs_python_the_run_stops_before_anything_else(tmp_path, script):
    # asv.conf.json pins python 3.11: without it asv ended in a ProcessError traceback
    # after the suite's set-up; the check (record_environment.py --check) says so first
    process, calls = _run(tmp_path, script, 0, check_status=2)
    assert _steps(calls) == ["check"], calls
    assert process.returncode == 2


def _older_python():
    """A Python older than 3.11 that runs on this machine, or None."""
    pyenv = Path.home() / ".pyenv" / "versions"
    candidates = [shutil.which(name) for name in ("python3.10", "python3.9")]
    candidates += sorted(str(path) for path in pyenv.glob("3.*/bin/python3"))
    for candidate in filter(None, candidates):
        try:
            older = subprocess.run([candidate, "-c", "import sys; print(sys.version_info < (3, 11))"],
                                   capture_output=True, text=True, timeout=30).stdout.strip()
        except (OSError, subprocess.TimeoutExpired):
            continue
        if older == "True":
            return candidate
    return None


@pytest.mark.skipif(shutil.which("make") is None or _older_python() is None,
                    reason="needs make and a Python older than 3.11")
def test_the_venv_refuses_a_python_older_than_the_constraints_need(tmp_path):
    # constraints.txt pins numpy/scipy/pandas releases that need 3.11: say so at once
    for name in ("Makefile", "pyproject.toml", "constraints.txt"):
        shutil.copy(ROOT / name, tmp_path)
    older = _older_python()
    process = subprocess.run(["make", "--no-print-directory", "-s", ".venv/.installed",
                              f"PYTHON={older}"], capture_output=True, text=True, timeout=60,
                             cwd=tmp_path, env={"PATH": "/usr/bin:/bin"})
    assert process.returncode == 2
    assert "constraints.txt pins releases that need 3.11 or newer" in process.stderr
    assert not (tmp_path / ".venv").exists()


def test_split_words_takes_only_a_variable_name(capsys, monkeypatch):
    """A name that starts with a digit is no shell variable: a usage error, exit 2 (the
    suite passed with any run of word characters taken)."""
    sys.path.insert(0, str(ROOT / "tools"))
    import split_words
    monkeypatch.setenv("ASV_ARGS", "-b 'a b'")
    assert split_words.main(["ASV_ARGS"]) == 0
    assert capsys.readouterr().out == "-b 'a b'\n"
    with pytest.raises(SystemExit) as exit_:
        split_words.main(["9ASV_ARGS"])
    assert exit_.value.code == 2 and "is not a variable name" in capsys.readouterr().err


def test_commit_report_finds_heads_results_where_its_short_hash_is_longer(tmp_path):
    """asv names a results file by the commit's first 8 digits; `git rev-parse --short=8`
    gives more digits where another object shares those 8, and the copy then found no
    file (tools/commit_report.sh, `make results`). A stub git answers as git does then.
    A file of another commit beginning alike stays out of HEAD's report."""
    head = "89abcdef0123456789abcdef0123456789abcdef"
    (tmp_path / "tools").mkdir()
    shutil.copy(ROOT / "tools" / "commit_report.sh", tmp_path / "tools")
    machine = tmp_path / ".asv" / "results" / "box"
    machine.mkdir(parents=True)
    (machine / "machine.json").write_text("{}")
    (machine / f"{head[:8]}-env.json").write_text(f'{{"commit_hash": "{head}"}}')
    # another commit whose hash begins alike: not HEAD's, left out
    (machine / f"{head[:8]}-other.json").write_text(f'{{"commit_hash": "{head[:8]}{"0" * 32}"}}')
    (tmp_path / ".asv" / "results" / "benchmarks.json").write_text("{}")
    (tmp_path / "stub-path").mkdir()
    _stub(tmp_path / "stub-path" / "git",  # (an ambiguous prefix: git adds digits)
          f'[ "$2" = --short=8 ] && echo {head[:10]} && exit 0\necho {head}\n')
    listing = tmp_path / "copied.txt"
    _stub(tmp_path / "python", f'ls "$4/box" > "{listing}"\n')  # (-m MODULE --results DIR)
    process = subprocess.run(
        ["bash", str(tmp_path / "tools" / "commit_report.sh"), str(tmp_path / "python"), "box"],
        capture_output=True, text=True, timeout=60,
        env={"PATH": f"{tmp_path / 'stub-path'}:/usr/bin:/bin"})
    assert process.returncode == 0, process.stderr
    assert listing.read_text().split() == [f"{head[:8]}-env.json", "machine.json"]
