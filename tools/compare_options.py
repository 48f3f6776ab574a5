"""tools/compare_commits.py's checks of its own options, made before anything runs: a
mistake in them would otherwise surface only after ~10 s of listing the suite's cases (a
bad BENCH regex, as a traceback) or after the whole timing (an --output the report cannot
write to). Each check gives one line for the tool's usage error, or None."""
from __future__ import annotations

import re
from pathlib import Path

from write_check import write_problem


def rounds_problem(rounds: int, repeat: int) -> str | None:
    """One round per commit leaves the test no round-to-round variance: every verdict
    would be inconclusive."""
    if rounds < 2 or repeat < 1:
        return f"ROUNDS must be at least 2 and REPEAT at least 1, got {rounds} and {repeat}"
    return None


def bench_problem(bench: str | None) -> str | None:
    """BENCH goes to asv's -b, which Python's re reads, as does the case listing here."""
    if not bench:
        return None
    try:
        re.compile(bench)
    except (re.error, OverflowError, RecursionError) as exc:  # a{9999999999}, deep nesting
        return f"BENCH (--bench) {bench!r} is not a regular expression: {exc}"
    return None


def output_problem(output: str, root: Path, results: Path) -> str | None:
    """The report's own checks of its output folder (an empty path, a file, a folder in
    asv's ``results``) and a real write there (write_check), which would otherwise fail
    it after all the timing; a name of blanks alone is refused as tools/targets.py's
    --out is (a folder " " in the repository is no one's intent). (It runs in ``root``,
    the repository, so a relative --output is taken from there.)"""
    from scipy_layers.reports.errors import ReportError
    from scipy_layers.reports.output import check_output
    if output and not output.strip():
        return f"--output {output!r} is blank; give a folder (default reports/latest)"
    try:
        checked = check_output(root / output if output else output, results)
    except ReportError as exc:
        return f"--output {output!r}: {exc}"
    problem = write_problem(checked)
    return f"--output {output!r}: cannot write there ({problem})" if problem else None


def first_problem(args, root: Path, results: Path) -> str | None:
    """The first of the checks above that fails on ``args`` (compare_commits' options;
    ``results``: asv's results folder)."""
    checks = (rounds_problem(args.rounds, args.repeat), bench_problem(args.bench),
              output_problem(args.output, root, results))
    return next((problem for problem in checks if problem), None)
