"""The Makefile's variables that carry a user's text (BASE, BENCH, ROUNDS, REPEAT, FRESH,
TEST_WORKERS, and the *_ARGS lists) reach the tools as typed: they were spliced into the
recipes' shell lines inside single quotes, so a quote in BENCH broke the recipe
("Unterminated quoted string") or silently lost itself, and BASE="x'; cmd; '" ran cmd.
FRESH=0 turned fresh timing on, and `make gate` documented an exit status 1 make cannot
give. Each recipe runs with a stub for the venv's python that records the words it got;
nothing is timed."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="needs make")

HOSTILE = [
    "\\('scipy",                                 # an unmatched quote: a shell syntax error
    "FFTAbs\\.time_forward_backward\\('scipy'",  # quotes a shell would drop
    "HEAD~1'; touch INJECTED; '",                # a command a shell would run
    'a b  "c" $HOME $(touch INJECTED) `touch INJECTED` $$x ${y}',
    "-x;*",
]


def _make(tmp_path: Path, target: str, *variables: str, status: int = 0,
          env_extra: dict | None = None):
    """`make TARGET VARIABLES...` with PY a stub that writes its arguments to argv.bin
    (NUL-separated) and exits ``status``, ``env_extra`` in make's environment; returns
    (process, its argument lists)."""
    record = tmp_path / "argv.bin"
    stub = tmp_path / "python"
    stub.write_text("#!/usr/bin/env bash\n"
                    f'[ "$1" = tools/split_words.py ] && exec "{sys.executable}" "$@"\n'
                    f'printf "%s\\0" "$@" >> "{record}"; printf "\\n" >> "{record}"\n'
                    f"exit {status}\n")
    stub.chmod(0o755)
    process = subprocess.run(
        ["make", "--no-print-directory", "-s", "-o", ".venv/.installed",
         "-o", "dashboard/node_modules/.package-lock.json", target, f"PY={stub}", *variables],
        capture_output=True, text=True, timeout=60, cwd=tmp_path / "repo",
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), **(env_extra or {})})
    calls = []
    if record.exists():
        for line in record.read_bytes().split(b"\0\n"):
            if line:
                calls.append([word.decode() for word in line.split(b"\0")])
    return process, calls


@pytest.fixture
def repo(tmp_path):
    """A copy of the Makefile and the tools its recipes run, so that an injected
    `touch INJECTED` would leave its file here."""
    (tmp_path / "repo" / "tools").mkdir(parents=True)
    shutil.copy(ROOT / "Makefile", tmp_path / "repo")
    for name in ("make_compare.sh", "split_words.py", "without_overrides.sh"):
        shutil.copy2(ROOT / "tools" / name, tmp_path / "repo" / "tools")
    return tmp_path


@pytest.mark.parametrize("value", HOSTILE)
@pytest.mark.parametrize("target", ["compare", "gate"])
def test_compare_values_reach_the_tool_as_typed(repo, target, value):
    process, calls = _make(repo, target, f"BASE={value}", f"BENCH={value}",
                           f"ROUNDS={value}", f"REPEAT={value}")
    assert process.returncode == 0, process.stderr
    assert calls == [["tools/compare_commits.py", *(["--gate"] if target == "gate" else []),
                      f"--base={value}", f"--rounds={value}", f"--repeat={value}",
                      f"--bench={value}"]]
    assert not list(repo.rglob("INJECTED"))


def test_empty_values_are_not_given(repo):
    process, calls = _make(repo, "compare", "BASE=", "BENCH=", "FRESH=")
    assert process.returncode == 0, process.stderr
    assert calls == [["tools/compare_commits.py"]]


@pytest.mark.parametrize("fresh, given", [
    ("1", True), ("yes", True), ("true", True), ("YES", True), ("True", True),
    ("0", False), ("no", False), ("false", False), ("NO", False), ("", False)])
def test_fresh_is_on_only_when_it_says_so(repo, fresh, given):
    process, calls = _make(repo, "compare", f"FRESH={fresh}")
    assert process.returncode == 0, process.stderr
    assert calls == [["tools/compare_commits.py", *(["--fresh"] if given else [])]]


@pytest.mark.parametrize("fresh", ["2", "maybe", "on", "1 ", "1; touch INJECTED"])
def test_another_fresh_is_a_usage_error(repo, fresh):
    process, calls = _make(repo, "compare", f"FRESH={fresh}")
    assert process.returncode == 2 and calls == []
    assert "FRESH=" in process.stderr and "give 1, yes or true" in process.stderr
    assert not list(repo.rglob("INJECTED"))


@pytest.mark.parametrize("status", [0, 1, 2])
def test_make_gate_exits_0_or_2_and_names_the_gates_status(repo, status):
    # GNU make exits 2 whenever a recipe fails: the gate's 1 cannot come through
    process, calls = _make(repo, "gate", status=status)
    assert calls == [["tools/compare_commits.py", "--gate"]]
    assert process.returncode == (0 if status == 0 else 2)
    if status:
        assert f"the gate's status is {status} " in process.stderr
        assert ".venv/bin/python tools/compare_commits.py --gate" in process.stderr
    else:
        assert process.stderr == ""


def test_the_readme_says_what_make_gate_exits():
    text = " ".join((ROOT / "README.md").read_text().split())
    assert "`make gate` itself exits 0 or 2" in text
    assert ".venv/bin/python tools/compare_commits.py --gate" in text
    assert "`make gate` exits 0 when" not in text


@pytest.mark.parametrize("target, variable, tool", [
    ("targets", "TARGETS_ARGS", "tools/targets.py"),
    ("method-choice", "METHOD_CHOICE_ARGS", "tools/method_choice.py"),
    ("gemm-orientation", "GEMM_ORIENTATION_ARGS", "tools/gemm_orientation.py"),
    ("mutants", "MUTANTS_ARGS", "tools/mutation_check.py")])
def test_argument_lists_are_split_as_words_and_nothing_is_expanded(repo, target, variable,
                                                                   tool):
    process, calls = _make(
        repo, target, f"{variable}=--out 'a b' \"c d\" e\\ f $HOME ; $(touch INJECTED) * $$x")
    assert process.returncode == 0, process.stderr
    assert calls == [[tool, "--out", "a b", "c d", "e f", "$HOME", ";", "$(touch", "INJECTED)",
                      "*", "$$x"]]
    assert not list(repo.rglob("INJECTED"))


def test_an_open_quote_in_an_argument_list_stops_before_the_tool(repo):
    process, calls = _make(repo, "targets", "TARGETS_ARGS=--cells 'fft:8:float64")
    assert process.returncode == 2 and calls == []
    assert "TARGETS_ARGS" in process.stderr and "No closing quotation" in process.stderr


@pytest.mark.parametrize("workers", ["0", "2; touch INJECTED", "$(touch INJECTED)", "a'b"])
def test_test_workers_is_one_word(repo, workers):
    process, calls = _make(repo, "test", f"TEST_WORKERS={workers}")
    assert process.returncode == 0, process.stderr
    assert calls == [["-m", "pytest", "-n", workers]]
    assert not list(repo.rglob("INJECTED"))


@pytest.mark.parametrize("given", [[], ["TEST_WORKERS="]], ids=["unset", "empty"])
def test_test_workers_defaults_to_two(repo, given):
    """Empty, as unset (hostile pass 98: pytest's "invalid parse_numprocesses value: ''")."""
    process, calls = _make(repo, "test", *given)
    assert calls == [["-m", "pytest", "-n", "2"]]


def test_blank_test_workers_from_the_environment_defaults_to_two(repo):
    """make strips a command line's blanks, not the environment's: they reached pytest."""
    process, calls = _make(repo, "test", env_extra={"TEST_WORKERS": "  "})
    assert calls == [["-m", "pytest", "-n", "2"]]


def test_asv_args_reaches_make_bench_verbatim(repo):
    # run_benchmarks.sh splits it (tests/test_asv_scripts.py); make passes it on as typed
    (repo / "repo" / "tools" / "run_benchmarks.sh").write_text(
        '#!/usr/bin/env bash\nprintf "%s" "$ASV_ARGS" > "$(dirname "$0")/../seen"\n')
    (repo / "repo" / "tools" / "run_benchmarks.sh").chmod(0o755)
    value = "-b 'a b' $HOME $$x ; `touch INJECTED`"
    process, _ = _make(repo, "bench", f"ASV_ARGS={value}")
    assert process.returncode == 0, process.stderr
    assert (repo / "repo" / "seen").read_text() == value
    assert not list(repo.rglob("INJECTED"))
