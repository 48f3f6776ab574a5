"""tools/mutation_check.py: every mutant of its tables still applies to the code as it is
(text found exactly once, test files that exist), and the runner tells killed, survived,
known survivors, stale mutants and selections that fail unmutated apart."""
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import mutation_check  # noqa: E402

MUTANTS = [m for table in mutation_check.TABLES for m in mutation_check.load_table(table)]


def test_mutant_ids_are_unique_and_each_edit_changes_something():
    ids = [m.id for m in MUTANTS]
    assert len(ids) == len(set(ids)) and len(ids) > 100
    assert all(m.old != m.new and m.tests and m.what for m in MUTANTS)


def test_the_readme_counts_the_mutants_the_tables_hold():
    import re
    said = re.findall(r"`make mutants` applies (\d+) hand-made mutants",
                      (ROOT / "README.md").read_text())
    assert said == [str(len(MUTANTS))]


@pytest.mark.parametrize("mutant", MUTANTS, ids=[m.id for m in MUTANTS])
def test_every_mutant_still_applies_to_the_code(mutant):
    """A code change that moves a mutant's text makes it stale: edit the table with it
    (the mutant's defect can usually be written against the new text)."""
    assert mutation_check.stale(ROOT, mutant) is None


def _project(tmp_path: Path) -> Path:
    """A git repository with one function, one test of half of it, and a table."""
    repo = tmp_path / "repo"
    (repo / "pkg").mkdir(parents=True)
    (repo / "tests").mkdir()
    (repo / "pkg" / "__init__.py").write_text("")
    (repo / "pkg" / "m.py").write_text(textwrap.dedent("""\
        def double(x):
            return 2 * x


        def untested(x):
            return x + 1
        """))
    (repo / "tests" / "test_m.py").write_text(textwrap.dedent("""\
        from pkg.m import double


        def test_double():
            assert double(3) == 6
        """))
    (repo / "tests" / "test_broken.py").write_text("def test_fails():\n    assert False\n")
    (repo / "pkg" / "hang.py").write_text("HANG = False\n")
    (repo / "tests" / "test_hang.py").write_text(textwrap.dedent("""\
        import os, subprocess, time
        from pkg.hang import HANG


        def test_hang():  # (mutated: a child process, then a hang)
            if HANG:
                child = subprocess.Popen(["sleep", "300"])
                with open(os.environ["PID_FILE"], "w") as f:
                    f.write(str(child.pid))
                time.sleep(300)
        """))
    (repo / "mutants_demo.py").write_text(textwrap.dedent("""\
        from mutation_check import Mutant

        MUTANTS = [
            Mutant("killed", "pkg/m.py", "2 * x", "3 * x", ("tests/test_m.py",), "x3"),
            Mutant("survived", "pkg/m.py", "x + 1", "x + 2", ("tests/test_m.py",), "+2"),
            Mutant("known", "pkg/m.py", "x + 1", "x - 1", ("tests/test_m.py",), "-1",
                   known_survivor="untested on purpose"),
            Mutant("stale", "pkg/m.py", "4 * x", "5 * x", ("tests/test_m.py",), "gone"),
            Mutant("baseline", "pkg/m.py", "2 * x", "0 * x", ("tests/test_broken.py",),
                   "its tests fail anyway"),
        ]
        """))
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    return repo


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    return _project(tmp_path_factory.mktemp("mutation"))


def _run(repo: Path, *only: str):
    return subprocess.run(
        [sys.executable, str(ROOT / "tools" / "mutation_check.py"), "--root", str(repo),
         "--table", str(repo / "mutants_demo.py"), "--timeout", "120",
         *(["--only", *only] if only else [])],
        capture_output=True, text=True, timeout=600)


def test_each_verdict_and_the_exit_status(demo):
    run = _run(demo)
    lines = run.stdout.splitlines()[:-1]  # (the last: the counts)
    verdict = {line[16:].split()[0]: line[:15].strip() for line in lines}
    assert verdict == {"demo:killed": "killed", "demo:survived": "survived",
                       "demo:known": "known survivor", "demo:stale": "error",
                       "demo:baseline": "error"}, run.stdout
    assert "stale: its text occurs 0 times in pkg/m.py" in run.stdout
    assert "the tests fail unmutated (status 1)" in run.stdout
    assert "untested on purpose" in run.stdout
    assert run.stdout.rstrip().endswith(
        "1 killed, 0 timed out, 1 known survivor, 1 survived, 2 error")
    assert run.returncode == 2
    # each selection's unmutated run is said on stderr as it starts (stale mutants: none)
    assert run.stderr.splitlines() == ["unmutated run 1/2: tests/test_m.py",
                                       "unmutated run 2/2: tests/test_broken.py"], run.stderr
    # the copy is restored after each mutant, and the user's tree is never touched
    assert (demo / "pkg" / "m.py").read_text().count("2 * x") == 1


@pytest.mark.parametrize("only, status", [(("demo:killed", "demo:known"), 0),
                                          (("demo:k*", "demo:survived"), 1)])
def test_a_survivor_is_status_1_known_survivors_are_not(demo, only, status):
    assert _run(demo, *only).returncode == status


def test_an_unknown_pattern_is_an_error(demo):
    run = _run(demo, "demo:nothing*")
    assert run.returncode == 2 and "matches no mutant" in run.stderr


def _run_table(repo: Path, table: str, *options: str):
    (repo.parent / "mutants_extra.py").write_text(
        "from mutation_check import Mutant\n\nMUTANTS = [\n" + table + "]\n")
    return subprocess.run(
        [sys.executable, str(ROOT / "tools" / "mutation_check.py"), "--root", str(repo),
         "--table", str(repo.parent / "mutants_extra.py"), "--timeout", "120", *options],
        capture_output=True, text=True, timeout=600)


def test_a_path_outside_the_copy_is_refused_never_edited(demo, tmp_path):
    """An absolute path (or ../) edited the user's own file while the tests ran (hostile
    pass 107): the test below saw '3 * x' in the repository it was copied from."""
    (demo / "tests" / "test_spy.py").write_text(
        f"def test_spy():\n    assert '3 * x' not in open({str(demo / 'pkg' / 'm.py')!r}).read()\n")
    outside = tmp_path / "outside.py"
    outside.write_text("2 * x\n")
    try:
        run = _run_table(demo, f'Mutant("abs", {str(demo / "pkg" / "m.py")!r}, "2 * x", "3 * x", '
                               '("tests/test_spy.py",), "absolute"),\n'
                               f'Mutant("up", {"../" * 20 + str(outside).lstrip("/")!r}, "2 * x", '
                               '"3 * x", ("tests/test_spy.py",), "up"),\n')
    finally:
        (demo / "tests" / "test_spy.py").unlink()
    assert run.returncode == 2, run.stdout + run.stderr
    assert run.stdout.count("is outside the repository") == 2, run.stdout
    assert outside.read_text() == "2 * x\n"


def test_tests_that_all_skip_are_no_survivor(demo):
    """A run whose tests all skip passed no test: an error, never a survivor or a known
    survivor (pytest's status 0 said 'survived' with zero tests run)."""
    (demo / "tests" / "test_skipping.py").write_text(
        "import pytest\nfrom pkg.m import double\n\n\n"
        "@pytest.mark.skipif(double(1) != 2, reason='off')\n"
        "def test_double():\n    assert double(3) == 6\n")
    try:
        run = _run_table(demo, 'Mutant("skip", "pkg/m.py", "2 * x", "3 * x", '
                               '("tests/test_skipping.py",), "all skip", known_survivor="x"),\n',
                         "--no-baseline")
    finally:
        (demo / "tests" / "test_skipping.py").unlink()
    assert run.returncode == 2 and "no test passed" in run.stdout, run.stdout


def test_a_mutant_that_breaks_collection_is_killed(demo):
    """A mutant that makes its module fail to import (pytest's status 2, a collection
    error) is caught by its tests: killed, not an error (mutation pass 114)."""
    run = _run_table(demo, 'Mutant("syntax", "pkg/m.py", "2 * x", "2 * * x", '
                           '("tests/test_m.py",), "a syntax error"),\n', "--no-baseline")
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.startswith("killed          extra:syntax"), run.stdout


def test_a_mutant_whose_text_occurs_twice_is_stale(demo):
    """(mutation pass 114) Its text would be replaced at both places, a mutant other than
    the one its table describes: stale, never applied."""
    run = _run_table(demo, 'Mutant("twice", "pkg/m.py", "    return ", "    return 0 + ", '
                           '("tests/test_m.py",), "both returns"),\n', "--no-baseline")
    assert run.returncode == 2, run.stdout + run.stderr
    assert "stale: its text occurs 2 times in pkg/m.py, not once" in run.stdout, run.stdout


def test_an_id_used_twice_is_refused(demo):
    """Two mutants of one id: one verdict would hide the other (mutation pass 114)."""
    mutant = 'Mutant("same", "pkg/m.py", "2 * x", "3 * x", ("tests/test_m.py",), "x3"),\n'
    run = _run_table(demo, mutant * 2)
    assert run.returncode == 2 and "ids used twice: extra:same" in run.stderr, run.stderr
    assert run.stdout == ""


@pytest.mark.parametrize("table, root", [("MUTANTS = [", None), ("X = 1", None),
                                         ("MUTANTS = []", "not-a-repo")])
def test_a_bad_table_or_root_is_status_2_not_1(demo, tmp_path, table, root):
    """Status 1 means 'a mutant survived': a table that cannot load, or a --root that is
    no git working tree, ended in a traceback and Python's 1."""
    (tmp_path / "mutants_bad.py").write_text(table + "\n")
    (tmp_path / "not-a-repo").mkdir()
    run = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "mutation_check.py"), "--table",
         str(tmp_path / "mutants_bad.py"), "--root", str(tmp_path / root if root else demo)],
        capture_output=True, text=True, timeout=120)
    assert run.returncode == 2 and "mutation_check: error:" in run.stderr, run.stderr


@pytest.mark.parametrize("timeout", ["nan", "inf", "0", "-1"])  # (0, -1: pass 114)
def test_a_timeout_that_is_no_number_of_seconds_is_refused(demo, timeout):
    run = _run(demo, "demo:killed", "--timeout", timeout)
    assert run.returncode == 2 and "--timeout" in run.stderr, run.stderr


def _gone(pid: int) -> bool:
    """No such process, or a zombie (ended, not yet reaped)."""
    try:
        return Path(f"/proc/{pid}/status").read_text().split("State:")[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def _hang_run(demo, tmp_path, timeout):
    table = tmp_path / "mutants_hang.py"
    table.write_text('from mutation_check import Mutant\n\nMUTANTS = [Mutant("hang", '
                     '"pkg/hang.py", "HANG = False", "HANG = True", ("tests/test_hang.py",), '
                     '"hangs")]\n')
    (tmp_path / "tmp").mkdir()
    env = {**os.environ, "PID_FILE": str(tmp_path / "pid"), "TMPDIR": str(tmp_path / "tmp")}
    return subprocess.Popen(
        [sys.executable, str(ROOT / "tools" / "mutation_check.py"), "--root", str(demo),
         "--table", str(table), "--timeout", str(timeout)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def test_a_hang_is_timed_out_and_ends_what_its_tests_started(demo, tmp_path):
    """Only pytest's own process was killed at the timeout: a process its test started
    outlived the verdict (hostile pass 107)."""
    out, _ = _hang_run(demo, tmp_path, 8).communicate(timeout=300)
    assert "timed out       hang:hang" in out and "1 timed out" in out, out
    pid = int((tmp_path / "pid").read_text())
    assert _gone(pid)
    assert not list((tmp_path / "tmp").iterdir())  # (the copy is removed)


def test_sigterm_restores_and_cleans_up(demo, tmp_path):
    """SIGTERM (CI's or timeout's) left the copy, and pytest running against it."""
    tool = _hang_run(demo, tmp_path, 300)
    for _ in range(600):
        if (tmp_path / "pid").exists() and (tmp_path / "pid").read_text():
            break
        time.sleep(0.1)
    tool.send_signal(signal.SIGTERM)
    tool.communicate(timeout=60)
    assert tool.returncode == 128 + signal.SIGTERM
    assert _gone(int((tmp_path / "pid").read_text()))
    assert not list((tmp_path / "tmp").iterdir())
    assert (demo / "pkg" / "hang.py").read_text() == "HANG = False\n"


def test_the_copy_keeps_the_history_and_the_working_tree_as_it_is(tmp_path):
    """Tests that read git (HEAD's package, a commit's info) failed in a copy without it,
    so their selections failed unmutated; the copy holds edited, untracked and deleted
    files as the working tree does."""
    repo = _project(tmp_path)
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t"]
    (repo / "gone.py").write_text("x = 1\n")
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-qm", "one"], check=True)
    (repo / "gone.py").unlink()
    (repo / "pkg" / "m.py").write_text((repo / "pkg" / "m.py").read_text() + "# edited\n")
    (repo / "new.txt").write_text("untracked\n")
    copy = tmp_path / "copy"
    copy.mkdir()
    mutation_check.copy_tree(repo, copy)
    log = subprocess.run(["git", "-C", str(copy), "log", "--format=%s"], capture_output=True,
                         text=True, check=True)
    assert log.stdout.strip() == "one"
    assert (copy / "pkg" / "m.py").read_text().endswith("# edited\n")
    assert (copy / "new.txt").exists() and not (copy / "gone.py").exists()
