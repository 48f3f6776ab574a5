"""Markdown and number formatting shared by summary.md's sections."""
from __future__ import annotations

import re

import pandas as pd

from .errors import one_line


def format_seconds(seconds: float) -> str:
    for scale, unit in ((1, "s"), (1e-3, "ms"), (1e-6, "µs")):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds * 1e9:.3g} ns"


def printable(text) -> str:
    """``text`` with every character Python calls unprintable shown escaped (\\n, \\x1b,
    \\u2028, \\u202e): a name holding a control, line-separator, format (bidi,
    zero-width) or odd space character would start a line of its own in a report, drive
    a terminal or read other than it is. (Names come from results files: machine, env,
    params.) The rule of errors.one_line, which keeps error messages on one line."""
    return one_line(str(text))


def escape(text) -> str:
    """A table cell: printable text with | escaped (it would end the cell, code spans
    included, in a GitHub table)."""
    return printable(text).replace("|", "\\|")


def code(text) -> str:
    """``text`` as an inline code span outside a table: printable, fenced by one more
    backtick than its longest run of them (CommonMark reads no backslash escape inside a
    code span, so an escaped | would show its backslash)."""
    text = printable(text)
    fence = "`" * (max((len(run) for run in re.findall("`+", text)), default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def markdown_table(frame: pd.DataFrame) -> str:
    header = "| " + " | ".join(map(escape, frame.columns)) + " |"
    rule = "| " + " | ".join("---" for _ in frame.columns) + " |"
    rows = ["| " + " | ".join(map(escape, row)) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([header, rule, *rows])
