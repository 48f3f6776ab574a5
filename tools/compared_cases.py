"""Which cases `make compare` compares: the timing cases that run at either commit (each
commit's own package asked, tools/suite_cases.py) and the gradient tracks, as BENCH
restricts them. A case that runs at A and that B's setup now skips is timed at both, so
that B's result is asv's skip (the gate's "now skipped"), not a case never asked for."""
from __future__ import annotations

import hashlib
import io
import json
import os
import re
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from commit_pair import CompareError
from suite_cases import FULL_GRID_VAR  # (imports no benchmark)

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
PACKAGE = "scipy_layers"
# Compared: timings (but the secondary all-threads view, which compares core counts, not
# code) and the gradient figures the regression rule reads (max rel error, non-finite
# mismatches; each track benchmark is a process per parameter combination, ~45 s a
# commit). Peak memory, threads in force and max abs error are figures make bench records.
TIMINGS_LEFT_OUT = r"Threads\."
TRACKS = r"Gradients\.track_(max_rel_error|nonfinite_mismatches)"
CACHE_FILES_KEPT = 4  # HEAD's and a base's listing, twice over
KINDS = ("timings", "tracks")


def _suite_digest(machine: str) -> "hashlib._Hash":
    digest = hashlib.sha256(machine.encode())
    for path in sorted(ROOT.glob("benchmarks/**/*.py")):
        digest.update(path.relative_to(ROOT).as_posix().encode() + b"\0" + path.read_bytes())
    return digest


def _is_listing(data) -> bool:
    return (isinstance(data, dict) and all(isinstance(data.get(kind), dict) for kind in KINDS)
            and all(isinstance(combos, list) and all(isinstance(c, str) for c in combos)
                    for kind in KINDS for combos in data[kind].values()))


def _ask_suite(package_dir: Path) -> dict:
    """The listing of the suite over ``package_dir``'s scipy_layers, written to a file in
    that folder: stdout is the suite's own (a print in the package, at import or at exit,
    made it unreadable: hostile passes 98 and 102)."""
    env = {k: v for k, v in os.environ.items() if k != FULL_GRID_VAR}
    answer = package_dir / "suite-cases.json"
    cmd = [PY, str(ROOT / "tools/suite_cases.py"), "--package-dir", str(package_dir),
           "--output", str(answer)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
    if proc.returncode != 0:
        raise CompareError("tools/suite_cases.py failed: "
                           f"{(proc.stderr.strip().splitlines() or ['no output'])[-1]}")
    try:
        cases = json.loads(answer.read_text())
    except (OSError, ValueError) as exc:
        raise CompareError(f"tools/suite_cases.py wrote no list of cases ({exc})") from None
    if not _is_listing(cases):
        raise CompareError("tools/suite_cases.py wrote something else than a list of cases")
    return cases


def _package_at(commit: str, into: Path) -> None:
    """``commit``'s scipy_layers/ under ``into``, as git holds it."""
    proc = subprocess.run(["git", "archive", "--format=tar", commit, PACKAGE],
                          capture_output=True, cwd=ROOT)
    if proc.returncode != 0:
        raise CompareError(f"git archive {commit[:8]} {PACKAGE} failed: "
                           f"{proc.stderr.decode(errors='replace').strip() or 'no output'}")
    try:
        with tarfile.open(fileobj=io.BytesIO(proc.stdout)) as archive:
            archive.extractall(into, filter="data")
    except tarfile.TarError as exc:  # (e.g. a link in the package that leads out of it)
        raise CompareError(f"{commit[:8]}'s {PACKAGE}/ cannot be extracted: {exc}") from None


def _read_cached(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):  # (gone meanwhile, cut short, not JSON: asked again)
        return None
    return data if _is_listing(data) else None


def write_atomically(path: Path, text: str) -> None:
    """``path`` holds ``text`` whole or is as it was: a run beside this one reads either."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, prefix=f".{path.name}.",
                                     delete=False) as handle:
        handle.write(text)
    os.replace(handle.name, path)


def list_cases(machine: str, cache_dir: Path, commit: str) -> dict:
    """tools/suite_cases.py's answer ({"timings": ..., "tracks": ...}) for ``commit``'s
    package (its scipy_layers/ from git, as asv installs it) under the working tree's
    suite (as asv runs it), cached by the suite's sources, the commit and the machine
    (asking takes ~10 s: each runnable case's setup makes its inputs)."""
    digest = _suite_digest(machine)
    digest.update(b"commit\0" + commit.encode())
    cached = cache_dir / f"suite-cases-{digest.hexdigest()[:16]}.json"
    if (cases := _read_cached(cached)) is not None:
        return cases
    with tempfile.TemporaryDirectory(prefix="suite-cases-") as tree:
        _package_at(commit, Path(tree))
        cases = _ask_suite(Path(tree))
    try:
        write_atomically(cached, json.dumps(cases))
        older = sorted(cache_dir.glob("suite-cases-*.json"), key=_modified)
        for old in older[:-CACHE_FILES_KEPT]:
            old.unlink(missing_ok=True)
    except OSError as exc:  # (the cache is a convenience: a run goes on without it)
        print(f"note: the case listing is not cached ({exc})", file=sys.stderr)
    return cases


def _modified(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:  # (removed by a run beside this one)
        return 0.0


def compared(kind: str, cases: dict[str, list[str]]) -> dict[str, list[str]]:
    """The cases make compare runs: see TIMINGS_LEFT_OUT and TRACKS."""
    if kind == "timings":
        return {name: combos for name, combos in cases.items()
                if not re.search(TIMINGS_LEFT_OUT, name)}
    return {name: combos for name, combos in cases.items() if re.search(TRACKS, name)}


def restrict(cases: dict[str, list[str]], regex: str | None) -> dict[str, list[str]]:
    """The cases asv's -b REGEX would select (it searches 'name(params)')."""
    if not regex:
        return cases
    chosen = {name: [c for c in combos if re.search(regex, f"{name}({c})" if c else name)]
              for name, combos in cases.items()}
    return {name: combos for name, combos in chosen.items() if combos}


def union(first: dict[str, list[str]], second: dict[str, list[str]]) -> dict[str, list[str]]:
    """Each benchmark's cases in either: ``first``'s, then those only ``second`` has."""
    merged = {name: list(combos) for name, combos in first.items()}
    for name, combos in second.items():
        have = set(merged.setdefault(name, []))
        merged[name] += [c for c in combos if c not in have]
    return {name: combos for name, combos in merged.items() if combos}


def within(cases: dict[str, list[str]], runs: dict[str, list[str]]) -> dict[str, list[str]]:
    """``cases`` (every benchmark kept) cut to the combinations ``runs`` lists."""
    kept = {name: set(combos) for name, combos in runs.items()}
    return {name: [c for c in combos if c in kept.get(name, ())]
            for name, combos in cases.items()}
