"""tools/mutation_check.py: every mutant of its tables still applies to the code as it is
(text found exactly once, test files that exist), and the runner tells killed, survived,
known survivors, stale mutants and selections that fail unmutated apart."""
import subprocess
import sys
import textwrap
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
    # the copy is restored after each mutant, and the user's tree is never touched
    assert (demo / "pkg" / "m.py").read_text().count("2 * x") == 1


@pytest.mark.parametrize("only, status", [(("demo:killed", "demo:known"), 0),
                                          (("demo:k*", "demo:survived"), 1)])
def test_a_survivor_is_status_1_known_survivors_are_not(demo, only, status):
    assert _run(demo, *only).returncode == status


def test_an_unknown_pattern_is_an_error(demo):
    run = _run(demo, "demo:nothing*")
    assert run.returncode == 2 and "matches no mutant" in run.stderr
