"""Markdown and number formatting shared by summary.md's sections."""
from __future__ import annotations

import pandas as pd


def format_seconds(seconds: float) -> str:
    for scale, unit in ((1, "s"), (1e-3, "ms"), (1e-6, "µs")):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds * 1e9:.3g} ns"


def escape(text) -> str:
    """Markdown-safe text: a literal | would end a table cell (or start a table), and a
    line break (in a machine's name, say) a cell, a heading or a paragraph: control
    characters are shown escaped (\\n)."""
    text = str(text).replace("|", "\\|")
    return "".join(c if c >= " " else repr(c)[1:-1] for c in text)


def markdown_table(frame: pd.DataFrame) -> str:
    header = "| " + " | ".join(map(escape, frame.columns)) + " |"
    rule = "| " + " | ".join("---" for _ in frame.columns) + " |"
    rows = ["| " + " | ".join(map(escape, row)) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([header, rule, *rows])
