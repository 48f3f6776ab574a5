"""Errors a user can fix: the CLI prints them in one line (exit code 2), no traceback."""
from __future__ import annotations

from pathlib import Path


def one_line(text: str) -> str:
    """``text`` with control characters (a newline in a folder name) escaped, so an
    error message stays one line."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii")
                   for c in text)


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
