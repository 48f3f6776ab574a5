"""The description a tool's ``--help`` prints: its module docstring's first paragraph."""
from __future__ import annotations


def description(doc: str | None) -> str | None:
    """The first paragraph of ``doc``, whole (a first line alone stopped mid-sentence, pass
    154), ending in a full stop where it ends in ':' or '::' before an example; None where
    Python runs without docstrings (``python -OO``), so that argparse prints no
    description instead of the tool failing on ``None.split``."""
    if doc is None:
        return None
    paragraph = doc.split("\n\n")[0].strip()
    return paragraph.rstrip(":") + "." if paragraph.endswith(":") else paragraph
