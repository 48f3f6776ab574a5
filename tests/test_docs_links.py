"""The documentation's relative links resolve: each names a file of the repository and,
after '#', a heading of it (GitHub's anchor: lower case, punctuation dropped, spaces
as hyphens, a repeated heading numbered) or an explicit <a id="...">."""
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = sorted({ROOT / "README.md", ROOT / "reports" / "README.md", *ROOT.glob("docs/*.md"),
               *ROOT.glob("reports/*/README.md")})
LINK = re.compile(r"\]\(([^)\s]+)\)")


FENCED = re.compile(r"^```.*?^```", flags=re.S | re.M)  # (a fenced code block)


def _outside_code(text: str) -> str:
    """``text`` without its fenced code blocks and inline code spans."""
    return re.sub(r"`[^`\n]*`", "", FENCED.sub("", text))


def _slug(heading: str) -> str:
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    text = path.read_text(encoding="utf-8")
    seen: dict[str, int] = {}
    found = set(re.findall(r"<a id=\"([^\"]+)\"", text))
    for line in FENCED.sub("", text).splitlines():
        heading = re.match(r"#{1,6} (.*)", line)
        if heading:
            slug = _slug(heading.group(1))
            count = seen.get(slug, 0)
            seen[slug] = count + 1
            found.add(slug if count == 0 else f"{slug}-{count}")
    return found


def test_the_slug_is_githubs():
    assert _slug("Comparing commits: what `make compare` does, and how much it can tell") == (
        "comparing-commits-what-make-compare-does-and-how-much-it-can-tell")
    assert _slug("How much it can tell, measured here") == "how-much-it-can-tell-measured-here"


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_and_anchors_resolve(doc):
    broken = []
    for link in LINK.findall(_outside_code(doc.read_text(encoding="utf-8"))):
        if re.match(r"[a-z]+:", link):  # http(s), mailto: not checked here
            continue
        target, _, anchor = link.partition("#")
        path = (doc.parent / target).resolve() if target else doc
        if not path.exists() or ROOT not in path.parents:
            broken.append(f"{link}: no such file")
        elif anchor and path.suffix == ".md" and anchor not in anchors(path):
            broken.append(f"{link}: no such heading")
    assert broken == []
