"""tools/compare_commits.py's checks of its own options, made before anything runs: a
mistake in them would otherwise surface only after ~10 s of listing the suite's cases (a
bad BENCH regex, as a traceback) or after the whole timing (an --output the report cannot
write to). Each check gives one line for the tool's usage error, or None."""
from __future__ import annotations

import re
from pathlib import Path


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


def output_problem(output: Path, root: Path) -> str | None:
    """The report writes a folder: a file there would fail it after all the timing. (It
    runs in ``root``, the repository, so a relative --output is taken from there.)"""
    if (root / output).exists() and not (root / output).is_dir():
        return f"--output {output} exists and is not a folder (the report writes a folder there)"
    return None


def first_problem(args, root: Path) -> str | None:
    """The first of the checks above that fails on ``args`` (compare_commits' options)."""
    checks = (rounds_problem(args.rounds, args.repeat), bench_problem(args.bench),
              output_problem(args.output, root))
    return next((problem for problem in checks if problem), None)
