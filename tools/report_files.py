"""The two files a timing tool writes into reports/<machine>/ (tools/targets.py,
tools/method_choice.py): the folder checked before any timing, the cells measured with
every way of stopping turned into one line and nothing written, and both files replaced
together or not at all."""
from __future__ import annotations

import datetime
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import asv_machine  # (tools/, this module's folder)
from write_check import write_problem
from side_by_side import environment_line

ROOT = Path(__file__).resolve().parent.parent


def utc_now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def code_commit() -> str:
    """HEAD's short hash, and whether the code that runs here differs from it."""
    def git(*args):
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True,
                              check=False).stdout.strip()
    try:
        top = git("rev-parse", "--show-toplevel")
    except OSError:
        return "unknown (no git)"
    if not top or Path(top).resolve() != ROOT.resolve():
        return "unknown (not a git checkout)"
    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    changed = git("status", "--porcelain", "--", "scipy_layers", "benchmarks", "tools")
    return commit + (" with uncommitted changes in scipy_layers/, benchmarks/ or tools/"
                     if changed else "")


def environment_header(title: str, started: str, commit: str) -> list[str]:
    """A report's title, then where, when and on what its figures were taken (CPU,
    torch's and the BLAS libraries' threads and kernel, any kernel override left set):
    every figure names its environment."""
    from record_environment import OVERRIDE_VARS
    described = asv_machine.describe()
    overrides = [f"{name}={os.environ[name]}" for name in OVERRIDE_VARS if name in os.environ]
    return [f"# {title} on {described['machine']}", "",
            f"- when: {started} to {utc_now()}; code: `{commit}`",
            f"- CPU: {described['cpu']}; {described['num_cpu']} CPUs",
            f"- {environment_line()}",
            f"- kernel overrides: {', '.join(overrides) or 'none'}"]


def checked_out(parser, given: str | None, names) -> Path:
    """The folder to write into, checked before any cell is timed: the report's own
    checks of an output folder (scipy_layers.reports.output.check_output_path: a link to
    nothing, a file, a path under a file), then a real write there (write_check.write_problem:
    asking os.access is not enough), and the files ``names`` in it, if there, plain files
    (a user's folder or link of that name is refused, not replaced)."""
    from scipy_layers.reports.errors import ReportError
    from scipy_layers.reports.output import check_output_path
    if given is None:
        out = ROOT / "reports" / asv_machine.describe()["machine"]
    elif not given.strip():  # (Path("") would be the current folder)
        parser.error("--out is empty; give a folder (default: reports/<this machine>)")
    else:
        out = Path(given)
    try:
        check_output_path(out)
    except ReportError as exc:
        parser.error(f"--out: {exc}")
    problem = write_problem(out)
    if problem:
        parser.error(f"--out {out}: cannot write there ({problem})")
    for name in names:
        problem = _not_plain(out / name)
        if problem:
            parser.error(f"{problem}; move it, or give another --out")
    return out


def _not_plain(path: Path) -> str:
    """Why ``path`` may not be replaced ("" if absent or a plain file)."""
    if path.is_symlink() or (path.exists() and not path.is_file()):
        return f"{path} exists and is not a plain file"
    return ""


def measured_rows(tool: str, cases, measure_one, label, progress) -> tuple[list, int]:
    """([measure_one(case) for case in cases], 0), printing ``progress(row)`` to stderr
    after each; ([], exit code) with one line on stderr naming why, where the run
    stopped: 130 on Ctrl-C, 1 on any error of a cell (torch's out of memory, say)."""
    rows = []
    try:
        for case in cases:
            rows.append(measure_one(case))
            print(progress(rows[-1]), file=sys.stderr, flush=True)
    except KeyboardInterrupt:
        print(f"{tool}: interrupted after {len(rows)} of {len(cases)} cells; nothing "
              f"written", file=sys.stderr)
        return [], 130
    except Exception as error:  # (torch's own, e.g. out of memory; a floor's; any)
        message = " ".join(str(error).split()) or "(no message)"  # (on one line)
        print(f"{tool}: {label(cases[len(rows)])}: {type(error).__name__}: {message}; "
              f"nothing written", file=sys.stderr)
        return [], 1
    return rows, 0


def publish(tool: str, out: Path, table, text: str, names) -> int:
    """Print the markdown, then write both files (:func:`write`); the exit code: 1, with
    one line on stderr, where they could not be written (the figures are printed)."""
    print(text, end="" if text.endswith("\n") else "\n")
    try:
        write(out, table, text, names)
    except OSError as error:
        print(f"{tool}: could not write into {out}: {error}; the files there are as they "
              f"were (the figures are above)", file=sys.stderr)
        return 1
    print(f"wrote {out / names[0]} and {out / names[1]}", file=sys.stderr)
    return 0


def write(out: Path, table, text: str, names) -> None:
    """The table as CSV and the text, into the two files ``names`` in ``out``: each
    written whole beside its target, with the mode a file opened here would get (a
    temporary file is private: 0600); then the files there now set aside and the new
    ones moved into place. An OSError on the way (a file made read-only or turned into a
    folder while the cells were timed) puts back what was there and removes what was
    not, then propagates: both files replaced, or neither."""
    out.mkdir(parents=True, exist_ok=True)
    umask = os.umask(0)
    os.umask(umask)
    staged, set_aside, placed, done = [], [], [], False
    try:
        for name, write_to in zip(names, (
                lambda f: table.to_csv(f, index=False, float_format="%.6g"),
                lambda f: f.write(text))):
            with tempfile.NamedTemporaryFile("w", dir=out, prefix=f".{name}.", delete=False,
                                             newline="") as handle:
                staged.append((handle.name, out / name))
                write_to(handle)
            os.chmod(handle.name, 0o666 & ~umask)
        for _, final in staged:
            problem = _not_plain(final)
            if problem:
                raise IsADirectoryError(problem)
            if final.exists():
                with tempfile.NamedTemporaryFile(dir=out, prefix=f".{final.name}.old.",
                                                 delete=False) as holder:
                    pass  # (a free name beside it, to move it to)
                try:
                    os.replace(final, holder.name)
                except OSError:
                    Path(holder.name).unlink(missing_ok=True)
                    raise
                set_aside.append((holder.name, final))
        for temporary, final in staged:
            os.replace(temporary, final)
            placed.append(final)
        done = True
    finally:
        if not done:
            kept = {final for _, final in set_aside}
            for final in placed:
                if final not in kept:
                    final.unlink(missing_ok=True)
            for holder, final in set_aside:
                os.replace(holder, final)
        for temporary, _ in staged:
            Path(temporary).unlink(missing_ok=True)
        for holder, _ in set_aside if done else ():
            Path(holder).unlink(missing_ok=True)
