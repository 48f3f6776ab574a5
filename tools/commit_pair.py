"""Which two commits `make compare` compares, and how they are named: git, run in the
repository (``ROOT``)."""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MAIN = "main"


class CompareError(Exception):
    """A problem the user can fix: one line on stderr, exit status 2."""


def git(*args: str) -> str | None:
    proc = subprocess.run(["git", *args], capture_output=True, text=True, cwd=ROOT)
    return proc.stdout.strip() if proc.returncode == 0 else None


def resolve_commits(base_rev: str | None) -> tuple[str, str, str]:
    """(base, head, how base was chosen), full hashes."""
    head = git("rev-parse", "--verify", "HEAD^{commit}")
    if head is None:
        raise CompareError("HEAD is not a commit: commit something first")
    if base_rev:
        base = git("rev-parse", "--verify", "--quiet", f"{base_rev}^{{commit}}")
        if base is not None and not re.fullmatch(r"[0-9a-f]{40}|[0-9a-f]{64}", base):
            base = None  # (e.g. "^HEAD~1": git answers "^<hash>", an exclusion, no commit)
        if base is None:
            raise CompareError(f"BASE={base_rev} is not a commit of this repository "
                               "(give a hash, branch, tag or HEAD~N)")
        how = f"BASE={base_rev}"
    else:
        main = git("rev-parse", "--verify", "--quiet", f"{MAIN}^{{commit}}")
        if main is None:
            raise CompareError(f"no branch {MAIN!r} to compare with: pass BASE=<rev>")
        base = git("merge-base", "HEAD", main)
        how = f"merge-base of HEAD and {MAIN}"
        if base in (None, head):  # HEAD is main, or behind it
            base = git("rev-parse", "--verify", "--quiet", "HEAD~1^{commit}")
            how = "HEAD~1 (HEAD is on main)"
            if base is None:
                raise CompareError("HEAD has no parent to compare with: pass BASE=<rev>")
    if base == head:
        raise CompareError(f"BASE={base_rev} is HEAD ({head[:8]}): nothing to compare; "
                           "pass an older commit")
    # (before anything is timed: the report refuses the pair too, after the timing)
    if git("merge-base", "--is-ancestor", head, base) is not None:
        raise CompareError(f"BASE={base_rev} ({base[:8]}) comes after HEAD ({head[:8]}) in git "
                           f"history: the comparison reads HEAD as the change from BASE, so a "
                           f"slowdown since HEAD would read as a speed-up; check out the newer "
                           f"commit and pass the older as BASE")
    return base, head, how


def dirty_warning() -> str | None:
    changed = (git("diff", "--name-only", "HEAD") or "").splitlines()
    if not changed:
        return None
    files = ", ".join(changed[:5]) + (" ..." if len(changed) > 5 else "")
    return (f"warning: uncommitted changes ({files}): asv measures committed code, so they are "
            "in neither result (the benchmark files, though, come from the working tree)")


def describe_commit(commit: str) -> str:
    return git("log", "-1", "--format=%h %cs %s", commit) or commit[:8]
