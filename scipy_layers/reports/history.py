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
# The variables that point git at a repository (of those it clears to enter a submodule,
# ``git rev-parse --local-env-vars``, all but the configuration: a container's
# safe.directory may come in GIT_CONFIG_COUNT): exported by a hook, a linked worktree or
# a user's shell, they sent it to another repository than the one holding the results,
# and a relative GIT_DIR to none, so the order went by date there alone.
_REPOSITORY_VARS = frozenset("""
    GIT_DIR GIT_WORK_TREE GIT_IMPLICIT_WORK_TREE GIT_COMMON_DIR GIT_OBJECT_DIRECTORY
    GIT_ALTERNATE_OBJECT_DIRECTORIES GIT_INDEX_FILE GIT_GRAFT_FILE GIT_SHALLOW_FILE
    GIT_PREFIX GIT_INTERNAL_SUPER_PREFIX""".split())


def history_positions(results_dir: Path | str, commits) -> dict[str, int] | None:
    """Commit -> its place in the history of the git repository holding ``results_dir``,
    0 the oldest, for every commit of ``commits`` (full hashes, as asv writes them); None
    where git cannot place every one of them."""
    wanted = sorted({str(c) for c in commits})
    if not wanted or not all(_FULL_HASH.fullmatch(c) for c in wanted):
        return None
    # (the hashes go on stdin, never as arguments)
    listing = _git(results_dir, ["rev-list", "--date-order", "--stdin"], "\n".join(wanted) + "\n")
    if listing is None or listing.returncode != 0:  # (not in a repository, or a commit
        return None                                 # it does not have)
    found = set(wanted)
    newest_first = [c for c in listing.stdout.split() if c in found]
    if sorted(newest_first) != wanted:
        return None
    return {commit: len(newest_first) - 1 - i for i, commit in enumerate(newest_first)}


def is_ancestor(results_dir: Path | str, ancestor: str, descendant: str) -> bool | None:
    """Whether git history (of the repository holding ``results_dir``) has ``ancestor``
    before ``descendant`` (full hashes); None where git cannot tell (no repository, a
    commit it lacks)."""
    if not (_FULL_HASH.fullmatch(ancestor) and _FULL_HASH.fullmatch(descendant)):
        return None
    answer = _git(results_dir, ["merge-base", "--is-ancestor", ancestor, descendant])
    if answer is None or answer.returncode not in (0, 1):  # (128: a commit git lacks)
        return None
    return answer.returncode == 0


def _git(results_dir: Path | str, arguments: list[str], stdin: str = ""):
    """git ``arguments`` in the repository holding ``results_dir``: the finished process,
    or None where git is missing or hangs. git's prompts and pager are off. A partial
    clone fetched a commit it lacked from its remote, running whatever its configuration
    names to reach it (core.sshCommand: results unpacked from elsewhere may sit in
    anyone's repository): a report reads files, never the network, and a commit git lacks
    goes by date. (GIT_ALLOW_PROTOCOL, no transport at all, stops it where git is older
    than GIT_NO_LAZY_FETCH.) git's messages are not shown, nor decoded: a path in them
    need not be UTF-8."""
    env = {name: value for name, value in os.environ.items() if name not in _REPOSITORY_VARS}
    env.update(GIT_TERMINAL_PROMPT="0", GIT_PAGER="cat", LC_ALL="C", GIT_NO_LAZY_FETCH="1",
               GIT_ALLOW_PROTOCOL="")
    try:
        return subprocess.run(["git", "-C", str(Path(results_dir).absolute()), *arguments],
                              input=stdin, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                              text=True, errors="replace", timeout=GIT_TIMEOUT_S, env=env)
    except (OSError, subprocess.SubprocessError):  # (no git, or one that hangs)
        return None


def commit_order(results_dir: Path | str, dates: pd.Series) -> dict[str, int]:
    """Commit -> its place among the commits of ``dates`` (commit -> date), 0 the oldest:
    git history's order (``history_positions``) where git can place every one, else by
    date, then by hash."""
    positions = history_positions(results_dir, dates.index)
    if positions is not None:
        return positions
    by_date = dates.rename("date").rename_axis("commit").reset_index()
    return {c: i for i, c in enumerate(by_date.sort_values(["date", "commit"])["commit"])}
