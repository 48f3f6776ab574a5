"""The commits' order: in git history where the repository holding the results knows it,
else by date.

asv dates a commit by its author date (``git log --format=%at``), which a rebase or a
cherry-pick keeps: a branch authored on Monday and rebased on Wednesday onto a commit of
Tuesday has its tip "older" than the commit below it, and by date alone the report would
show that commit's figures as the latest. So where git knows every commit of the results,
the report orders them as git does: ``git rev-list --date-order`` puts no commit before
its ancestors, and otherwise goes by committer date, which a rebase renews. Where it
cannot (results copied out of their repository, git missing, a commit git lacks or an
abbreviated hash), every commit goes by its date, then its hash (the larger the later):
one rule for all, never two mixed in one report.
"""
from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pandas as pd

_FULL_HASH = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")  # (SHA-1, SHA-256)
GIT_TIMEOUT_S = 60


def history_positions(results_dir: Path | str, commits) -> dict[str, int] | None:
    """Commit -> its place in the history of the git repository holding ``results_dir``,
    0 the oldest, for every commit of ``commits`` (full hashes, as asv writes them); None
    where git cannot place every one of them."""
    wanted = sorted({str(c) for c in commits})
    if not wanted or not all(_FULL_HASH.fullmatch(c) for c in wanted):
        return None
    # The hashes go on stdin, never as arguments; git's prompts and pager are off.
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_PAGER": "cat", "LC_ALL": "C"}
    try:
        listing = subprocess.run(
            ["git", "-C", str(Path(results_dir).absolute()), "rev-list", "--date-order",
             "--stdin"], input="\n".join(wanted) + "\n", capture_output=True, text=True,
            timeout=GIT_TIMEOUT_S, env=env)
    except (OSError, subprocess.SubprocessError):  # (no git, or one that hangs)
        return None
    if listing.returncode != 0:  # (not in a repository, or a commit it does not have)
        return None
    found = set(wanted)
    newest_first = [c for c in listing.stdout.split() if c in found]
    if sorted(newest_first) != wanted:
        return None
    return {commit: len(newest_first) - 1 - i for i, commit in enumerate(newest_first)}


def commit_order(results_dir: Path | str, dates: pd.Series) -> dict[str, int]:
    """Commit -> its place among the commits of ``dates`` (commit -> date), 0 the oldest:
    git history's order (``history_positions``) where git can place every one, else by
    date, then by hash."""
    positions = history_positions(results_dir, dates.index)
    if positions is not None:
        return positions
    by_date = dates.rename("date").rename_axis("commit").reset_index()
    return {c: i for i, c in enumerate(by_date.sort_values(["date", "commit"])["commit"])}
