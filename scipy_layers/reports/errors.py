"""Errors a user can fix: the CLI prints them in one line (exit code 2), no traceback."""
from __future__ import annotations

import os
import sys
from pathlib import Path


def one_line(text: str) -> str:
    """``text`` with control characters (a newline in a folder name) escaped, so an
    error message stays one line."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii")
                   for c in text)


def silence(fd: int) -> None:
    """Point file descriptor ``fd`` (1: stdout, 2: stderr) at /dev/null, after a write to
    it failed: what is still buffered then flushes there at exit, instead of failing
    again (Python then prints an error and changes the exit status)."""
    with open(os.devnull, "w") as devnull:
        os.dup2(devnull.fileno(), fd)


def complain(line: str) -> None:
    """``line`` on stderr, where it can go: a stderr that cannot take it (a full disk)
    must not turn an exit status of 2 into a traceback's 1, a gate's "found"."""
    if sys.stderr is None:  # (started with stderr closed: print would write to stdout)
        return
    try:
        print(line, file=sys.stderr)
    except (OSError, ValueError):  # (ValueError: a closed stream)
        silence(2)


class ReportError(Exception):
    """Anything that stops a report: bad arguments, unknown commits, bad results."""


class ResultsError(ReportError):
    """The results directory, or one file in it, is missing, empty, partial or corrupt.

    ``path`` names the file (or directory) and ``problem`` says what is wrong with it.
    """

    def __init__(self, path: Path | str, problem: str):
        self.path = Path(path)
        self.problem = problem
        super().__init__(one_line(f"{path}: {problem}"))
