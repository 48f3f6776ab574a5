#!/usr/bin/env python
"""Do the tests catch plausible defects? Mutation testing by hand-made mutants.

Each mutant (tools/mutants_layers.py, tools/mutants_reports.py) is one small edit that
looks like a real bug (a bound off by one, a check dropped, a wrong axis) and names the
tests that should catch it. In a copy of the working tree, each is applied alone and its
tests run (pytest -x): *killed* when they fail, *survived* when they pass. A survivor is
a gap in the tests, unless the table lists it as a known survivor, with the reason
(equivalent code, or a gap still open). Before its mutants, every distinct test
selection runs once unmutated: a selection that fails there proves nothing.

    make mutants                        # every mutant (hours on 2 cores)
    make mutants MUTANTS_ARGS='--only layers:W* --workers 2'

A test that starts Python with a PYTHONPATH of its own imports the installed package
(for an editable install, the user's tree), not the copy: its mutants read as survivors.

Exit status: 0 every mutant killed (a hang past --timeout counts, said apart as timed
out) or a known survivor, 1 a mutant survived, 2 an error
(a stale mutant whose text no longer occurs exactly once or whose path leaves the
repository, a selection failing unmutated, a run that passed no test (all skipped),
bad arguments).
"""
from __future__ import annotations

import argparse
import fnmatch
import importlib.util
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import NamedTuple
from help_text import description  # (tools/, this script's folder)

ROOT = Path(__file__).resolve().parent.parent
TABLES = [ROOT / "tools" / "mutants_layers.py", ROOT / "tools" / "mutants_reports.py"]
KILLED, SURVIVED, KNOWN, TIMED_OUT, ERROR = ("killed", "survived", "known survivor",
                                             "timed out", "error")


class Mutant(NamedTuple):
    """One edit: ``old`` (text that occurs exactly once in ``path``) -> ``new``."""
    id: str
    path: str  # relative to the repository root
    old: str
    new: str
    tests: tuple  # pytest's arguments: files, -k expressions
    what: str  # the defect it stands for
    known_survivor: str | None = None  # why no test kills it (equivalent, or a gap left)


def load_table(path: Path) -> list:
    """The MUTANTS of a table file, each id prefixed with the file's name without
    'mutants_' (layers:C1); a table is plain Python so that edits keep exact text."""
    spec = importlib.util.spec_from_file_location(f"_mutants_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    prefix = path.stem.removeprefix("mutants_")
    return [mutant._replace(id=f"{prefix}:{mutant.id}") for mutant in module.MUTANTS]


def select(mutants: list, patterns: list[str] | None) -> list:
    if not patterns:
        return mutants
    chosen = [m for m in mutants if any(fnmatch.fnmatchcase(m.id, p) for p in patterns)]
    if not chosen:
        print(f"mutation_check: error: --only {' '.join(patterns)} matches no mutant "
              f"(see --list)", file=sys.stderr)
        raise SystemExit(2)
    return chosen


def copy_tree(root: Path, dest: Path) -> None:
    """A clone of ``root`` (tests that read git, its commits or HEAD's package, need the
    history) holding the working tree's files as they are: tracked ones as edited,
    untracked ones not ignored, deleted ones gone; never .venv, .asv or caches."""
    def git(*args):
        return subprocess.run(["git", "-C", str(root), *args], check=True,
                              capture_output=True).stdout.decode()
    listing, deleted = (git("ls-files", "-z", "--cached", "--others", "--exclude-standard"),
                        git("ls-files", "-z", "--deleted"))
    subprocess.run(["git", "clone", "--quiet", "--shared", str(root), str(dest)], check=True,
                   capture_output=True)
    for name in filter(None, deleted.split("\0")):
        (dest / name).unlink(missing_ok=True)
    for name in filter(None, listing.split("\0")):
        source = root / name
        if source.is_file():  # (a deleted file is still listed as cached)
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)


def stale(tree: Path, mutant) -> str | None:
    """Why ``mutant`` cannot be applied to ``tree`` as written, or None."""
    path = tree / mutant.path
    if Path(mutant.path).is_absolute() or not path.resolve().is_relative_to(tree.resolve()):
        return f"{mutant.path} is outside the repository"  # (never the user's own files)
    if not path.is_file():
        return f"{mutant.path} does not exist"
    count = path.read_text().count(mutant.old)
    if count != 1:
        return f"its text occurs {count} times in {mutant.path}, not once"
    missing = [t for t in mutant.tests if t.startswith("tests/")
               and not (tree / t.split("::")[0]).is_file()]
    return f"no test file {missing[0]}" if missing else None


def run_tests(tree: Path, tests: tuple, workers: int, timeout: float):
    """(pytest's exit status or None when it timed out, its first FAILED/ERROR line);
    a run that passed without passing a test (all skipped) is status 5, no tests ran."""
    command = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider",
               "-n", str(workers), *tests]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(tree), *filter(None, [os.environ.get("PYTHONPATH")])])}
    # (its own process group: a timeout, Ctrl-C or SIGTERM ends pytest, its xdist workers
    # and whatever the tests started, none left running against a deleted copy)
    process = subprocess.Popen(command, cwd=tree, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(process)
        return None, ""
    except BaseException:
        _kill_group(process)
        raise
    lines = (stdout + stderr).splitlines()
    first = next((line for line in lines if line.startswith(("FAILED", "ERROR"))),
                 lines[-1] if lines else "")
    summary = (stdout.strip().splitlines() or [""])[-1]  # ("3 passed, 1 skipped in 2s")
    if process.returncode == 0 and not re.search(r"\b[1-9]\d* passed\b", summary):
        return 5, f"no test passed: {first}"  # (a survivor needs tests that ran and passed)
    return process.returncode, first


def _kill_group(process: subprocess.Popen) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.communicate()


def verdict(status: int | None, known: str | None) -> str:
    if status is None:
        return TIMED_OUT  # (a hang: caught by CI's time limit, not by a test: said apart)
    if status in (1, 2):  # (a failed test, or a collection error the mutant caused)
        return KILLED
    if status == 0:
        return KNOWN if known else SURVIVED
    return ERROR  # (3-5: pytest's internal or usage error, no test collected)


def check(mutants: list, tree: Path, workers: int, timeout: float, baseline: bool) -> dict:
    """id -> (verdict, detail) for every mutant, each applied alone to ``tree``."""
    outcome = {}
    broken = {}
    for mutant in mutants:
        why = stale(tree, mutant)
        if why:
            outcome[mutant.id] = (ERROR, f"stale: {why}")
    if baseline:
        selections = list(dict.fromkeys(tuple(m.tests) for m in mutants if m.id not in outcome))
        for done, tests in enumerate(selections, 1):
            # (on stderr, as it goes: the unmutated runs of the whole table take an hour)
            print(f"unmutated run {done}/{len(selections)}: {' '.join(tests)}",
                  file=sys.stderr, flush=True)
            status, first = run_tests(tree, tests, workers, timeout)
            if status != 0:
                broken[tests] = (f"the tests time out unmutated (--timeout {timeout:g})"
                                 if status is None else
                                 f"the tests fail unmutated (status {status}): {first}")
    for mutant in mutants:
        if mutant.id in outcome:
            pass
        elif tuple(mutant.tests) in broken:
            outcome[mutant.id] = (ERROR, broken[tuple(mutant.tests)])
        else:
            path = tree / mutant.path
            original = path.read_text()
            start = time.perf_counter()
            try:
                path.write_text(original.replace(mutant.old, mutant.new))
                status, first = run_tests(tree, tuple(mutant.tests), workers, timeout)
            finally:
                path.write_text(original)
            seconds = time.perf_counter() - start
            result = verdict(status, mutant.known_survivor)
            detail = {KILLED: first, KNOWN: mutant.known_survivor,
                      SURVIVED: mutant.what}.get(result, first or f"after {timeout:.0f} s")
            outcome[mutant.id] = (result, f"{seconds:6.1f} s  {detail}")
        print(f"{outcome[mutant.id][0]:<15} {mutant.id:<16} {outcome[mutant.id][1]}", flush=True)
    return outcome


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description(__doc__))
    p.add_argument("--only", nargs="+", metavar="PATTERN",
                   help="mutant ids to run, shell patterns (layers:W*, reports:C1)")
    p.add_argument("--list", action="store_true", help="list the mutants and exit")
    p.add_argument("--workers", type=int, default=0, metavar="N",
                   help="pytest-xdist processes per test run (default 0: one process)")
    p.add_argument("--timeout", type=float, default=900, metavar="S",
                   help="seconds one test run may take (default 900)")
    p.add_argument("--no-baseline", action="store_true",
                   help="skip the unmutated run of each test selection")
    p.add_argument("--table", type=Path, nargs="+", default=TABLES, metavar="FILE",
                   help="table files of MUTANTS (default: the two tools/mutants_*.py)")
    p.add_argument("--root", type=Path, default=ROOT, help="the git working tree to copy")
    return p


def _terminated(signum, frame):
    raise SystemExit(128 + signum)  # (unwinds: the file restored, pytest's group ended)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    signal.signal(signal.SIGTERM, _terminated)
    if args.workers < 0 or not 0 < args.timeout < 1e9:
        print("mutation_check: error: --workers must be >= 0 and --timeout a finite number > 0",
              file=sys.stderr)
        return 2
    try:
        mutants = [m for table in args.table for m in load_table(table)]
    except Exception as exc:  # noqa: BLE001 -- (a table that cannot load: bad arguments, 2)
        print(f"mutation_check: error: cannot load the tables: {type(exc).__name__}: {exc}",
              file=sys.stderr)
        return 2
    duplicated = sorted(id for id, n in Counter(m.id for m in mutants).items() if n > 1)
    if duplicated:
        print(f"mutation_check: error: ids used twice: {', '.join(duplicated)}", file=sys.stderr)
        return 2
    mutants = select(mutants, args.only)
    if args.list:
        for m in mutants:
            print(f"{m.id:<16} {m.path:<40} {m.what}"
                  + (f"  [known survivor: {m.known_survivor}]" if m.known_survivor else ""))
        return 0
    with tempfile.TemporaryDirectory(prefix="mutation-check-") as temporary:
        tree = Path(temporary)
        try:
            copy_tree(args.root, tree)
        except (OSError, subprocess.CalledProcessError) as exc:
            print(f"mutation_check: error: cannot list {args.root}'s files with git "
                  f"({exc}): --root must be a git working tree", file=sys.stderr)
            return 2
        outcome = check(mutants, tree, args.workers, args.timeout, not args.no_baseline)
    counts = {name: sum(r == name for r, _ in outcome.values())
              for name in (KILLED, TIMED_OUT, KNOWN, SURVIVED, ERROR)}
    print(", ".join(f"{n} {name}" for name, n in counts.items()))
    return 2 if counts[ERROR] else 1 if counts[SURVIVED] else 0


if __name__ == "__main__":
    sys.exit(main())
