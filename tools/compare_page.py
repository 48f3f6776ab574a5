"""The dashboard's compare page: a static page beside asv's own, linked from its navigation bar.

``install(html_dir, compare_csv)`` copies dashboard/compare.{html,js,css} into the published
site, writes compare.json (the rows of the report's compare.csv, read by column name,
plus the two commits, links to asv's graph of each case, the gradient changes of each
case beside its speed, and the native control's count) and adds "Compare commits" to
the navigation bar of index.html. Standard library only, like offline_dashboard.py.
"""
from __future__ import annotations

import csv
import json
import re
import shutil
import subprocess
import urllib.parse
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PAGE_FILES = ("compare.html", "compare.js", "compare.css")
SOURCE_DIR = ROOT / "dashboard"
DATA_FILE = "compare.json"

# Role -> compare.csv column: the one place to adapt when the report renames a column.
COLUMNS = {
    "layer": "layer", "kind": "kind", "benchmark": "benchmark", "measurement": "measurement",
    "implementation": "implementation", "unit": "unit", "machine": "machine",
    "commit_a": "commit_a", "commit_b": "commit_b", "value_a": "value_a", "value_b": "value_b",
    "ratio": "ratio", "ci_low": "ci_low", "ci_high": "ci_high", "p_value": "p_value",
    "q_value": "q_value", "verdict": "verdict", "gradient_regression": "gradient_regression",
    "env_differs": "env_differs",
}
REQUIRED = ("layer", "implementation", "measurement", "verdict", "benchmark", "commit_a", "commit_b")
# Parameter columns shown as the case; named as asv names the parameters, so they also
# select the case on asv's graph page.
CASE_COLUMNS = ("size", "kernel", "conv", "dtype", "device", "threads", "quantity", "layout",
                "values")
# A case's gradients: the gradient tracks lack the timing-only parameters (device, threads,
# ...), so a note reaches every timing of its case, but only those timed on its own machine
# in its own asv environment: another machine's numbers are another case. (A compare.csv
# without machine or env reads them as blank on every row.)
GRADIENT_KEY = ("layer", "implementation", "size", "kernel", "dtype", "machine", "env")
NATIVE = "native"
CHANGED = {"faster", "slower"}
DECIDED = CHANGED | {"unchanged", "inconclusive"}
TIME_UNIT = "seconds"
NAV_ITEM = '<li id="nav-li-compare"><a href="compare.html">Compare commits</a></li>'
NAV_ANCHOR = re.compile(r'(<li id="nav-li-regressions">.*?</li>)', re.S)


class ComparePageError(Exception):
    """A problem with the comparison data; offline_dashboard prints it and exits 1."""


def truthy(text: str | None) -> bool:
    return str(text).strip().lower() in {"true", "1", "yes"}


def read_rows(path: Path) -> list[dict]:
    """compare.csv's rows as dicts keyed by column name; a ComparePageError names missing
    columns, a row of another length, or what csv or the UTF-8 decoding could not read."""
    try:
        return _read_rows(path)
    except csv.Error as exc:  # (a stray quote: the rest of the file one field, past its limit)
        raise ComparePageError(f"{path}: not a CSV file the report wrote ({exc})") from None
    except UnicodeDecodeError as exc:
        raise ComparePageError(f"{path}: not UTF-8 ({exc.reason} at byte {exc.start}); the "
                               "report writes UTF-8") from None


def _read_rows(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        header = next(reader, [])
        missing = [COLUMNS[role] for role in REQUIRED if COLUMNS[role] not in header]
        if missing:
            raise ComparePageError(f"{path} lacks column(s) {', '.join(missing)}; it has: "
                                   f"{', '.join(header) or 'no header'}")
        rows = []
        for fields in reader:
            if not fields:  # (a blank line: no row, as csv.DictReader reads it)
                continue
            if len(fields) != len(header):  # (a row cut short or run on)
                raise ComparePageError(f"{path}: line {reader.line_num} has {len(fields)} "
                                       f"fields; the header names {len(header)}")
            rows.append(dict(zip(header, fields)))
        return rows


def commit_info(commit: str, cwd: Path = ROOT) -> dict:
    """hash, short hash, ISO date and subject of a commit (hash only where git cannot say).
    Only a hash is asked of git: compare.csv is a file users copy and edit, and a commit
    read '--output=FILE' was git log's option (it overwrote FILE)."""
    if not re.fullmatch(r"[0-9a-fA-F]{4,64}", commit or ""):
        return {"hash": commit, "short": str(commit)[:8], "date": "",
                "subject": "(not in this repository)"}
    proc = subprocess.run(["git", "log", "-1", "--format=%H%x1f%h%x1f%cI%x1f%s", commit],
                          capture_output=True, text=True, cwd=cwd)
    parts = proc.stdout.strip().split("\x1f") if proc.returncode == 0 else []
    if len(parts) == 4:
        return dict(zip(("hash", "short", "date", "subject"), parts))
    return {"hash": commit, "short": commit[:8], "date": "", "subject": "(not in this repository)"}


def graph_link(row: dict, index: dict) -> str | None:
    """index.html#<benchmark>?machine=M&p-<param>=<repr> for the row's case (asv 0.6.6's
    graph URL: asv.js parse_hash_string; graphdisplay.js reads 'p-'+param_name), or None
    when the published site lacks the benchmark."""
    name = row.get(COLUMNS["benchmark"], "")
    bench = index.get("benchmarks", {}).get(name)
    if bench is None:
        return None
    query = []
    machine = row.get(COLUMNS["machine"])
    if machine in index.get("params", {}).get("machine", []):
        query.append(("machine", machine))
    branches = index.get("params", {}).get("branch", [])
    if len(branches) > 1:  # asv shows the first branch alone unless told
        query += [("branch", b) for b in branches]
    for param, values in zip(bench.get("param_names", []), bench.get("params", [])):
        value = row.get(param)
        chosen = next((v for v in (repr(value), value) if value not in (None, "") and v in values), None)
        if chosen is not None:
            query.append((f"p-{param}", chosen))
    return "index.html#%s?%s" % (name, urllib.parse.urlencode(query, quote_via=urllib.parse.quote))


def case_label(row: dict) -> str:
    """'127x127 3x3 float32 cpu, 1 thread' (threads spelled out: a bare '1' says nothing)."""
    label = " ".join(row[c] for c in CASE_COLUMNS if row.get(c) and c != "threads")
    threads = row.get("threads")
    if threads:
        label += f", {threads} thread" + ("" if threads == "1" else "s")
    return label


def gradient_key(row: dict) -> tuple:
    """The case (GRADIENT_KEY) whose gradient notes a row shows or gives."""
    return tuple(row.get(COLUMNS.get(c, c), "") for c in GRADIENT_KEY)


def gradient_notes(rows: list[dict]) -> dict[tuple, list[str]]:
    """Case -> what a flagged gradient row says ('max rel error of input: 1e-07 -> 0.03')."""
    notes: dict[tuple, list[str]] = {}
    for row in rows:
        if truthy(row.get(COLUMNS["gradient_regression"])):
            key = gradient_key(row)
            what = row.get(COLUMNS["measurement"], "")
            if row.get("quantity") and row["quantity"] not in what:
                what += f" of {row['quantity']}"
            notes.setdefault(key, []).append(
                f"{what}: {row.get(COLUMNS['value_a']) or '?'} -> {row.get(COLUMNS['value_b']) or '?'}")
    return notes


def native_control(rows: list[dict]) -> dict:
    """How many native timings the test called faster or slower: native torch code is the
    same in both commits, so each is a false alarm of this very run."""
    native = [r for r in rows if r.get(COLUMNS["implementation"]) == NATIVE
              and r.get(COLUMNS["unit"], TIME_UNIT) == TIME_UNIT
              and r.get(COLUMNS["verdict"]) in DECIDED]
    return {"changed": sum(r[COLUMNS["verdict"]] in CHANGED for r in native), "total": len(native)}


def build_data(rows: list[dict], index: dict, source: str, info=commit_info) -> dict:
    """compare.json: every CSV column of every row (by name), plus derived '_' fields."""
    notes = gradient_notes(rows)
    pairs = sorted({(r[COLUMNS["commit_a"]], r[COLUMNS["commit_b"]]) for r in rows})
    commits = [{"a": info(a), "b": info(b)} for a, b in pairs]
    out = []
    for row in rows:
        key = gradient_key(row)
        is_time = row.get(COLUMNS["unit"], TIME_UNIT) == TIME_UNIT
        extra = {"_graph": graph_link(row, index),
                 "_case": case_label(row),
                 "_gradients": "; ".join(notes.get(key, [])) if is_time else "",
                 "_flagged": truthy(row.get(COLUMNS["gradient_regression"])) or (is_time and key in notes)}
        out.append({**row, **extra})
    return {"columns": COLUMNS, "source": source, "commits": commits, "rows": out,
            "control": native_control(rows),
            "env_differs": any(truthy(r.get(COLUMNS["env_differs"])) for r in rows)}


def add_nav_link(html: str) -> str:
    """index.html with "Compare commits" after asv's Regressions item (idempotent)."""
    if 'id="nav-li-compare"' in html:
        return html
    patched, count = NAV_ANCHOR.subn(lambda m: m.group(1) + "\n\t" + NAV_ITEM, html, count=1)
    if not count:
        raise ComparePageError("index.html has no Regressions item to put the compare link after "
                               "(asv's page layout changed?)")
    return patched


def install(html_dir: Path, compare_csv: Path | None, source_dir: Path = SOURCE_DIR,
            info=commit_info) -> dict:
    """Copy the page into the published site, write its data, link it; return the data
    (its "error" says why a compare.csv that exists could not be shown)."""
    html_dir = Path(html_dir)
    for name in PAGE_FILES:
        shutil.copy2(source_dir / name, html_dir / name)
    index = json.loads((html_dir / "index.json").read_text(encoding="utf-8"))
    have_csv = compare_csv is not None and Path(compare_csv).is_file()
    try:
        rows = read_rows(Path(compare_csv)) if have_csv else []
        error = ""
    except ComparePageError as exc:  # the page says so; asv's own pages are still good
        rows, error = [], str(exc)
    data = build_data(rows, index, str(compare_csv) if have_csv else "", info)
    data["error"] = error
    (html_dir / DATA_FILE).write_text(json.dumps(data), encoding="utf-8")
    page = html_dir / "index.html"
    page.write_text(add_nav_link(page.read_text(encoding="utf-8")), encoding="utf-8")
    return data
