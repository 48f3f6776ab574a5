"""The runs behind the latest-commit views (summary.md's tables, the printed headline,
the plots): the most recent commit on each machine (in git history where the results'
repository knows every commit, else by asv's results date: ``newest_first``), and within
it each asv environment.
The commit is picked once, over every result of the machine (``latest_commits``), and
every view takes that one (``latest_runs(table, commits)``): picked per table, a commit
that ran the timings alone headed summary.md while its gradient verdicts came, unnamed,
from an older commit that ran them.

Figures of two machines, or of two environments of one commit (asv's matrix: two
pythons, two numpy versions), must never meet in one table cell, mean or plot: a pivot
would show one of them unnamed and a geometric mean would belong to neither. So each
view is split by the run columns that vary, and carries them (a heading, a column, a
file name); in the common case, one machine and one environment, none varies and the
views look as they always did.
"""
from __future__ import annotations

import pandas as pd

from .markdown import code

RUN_COLUMNS = ["machine", "env"]


def latest_commits(*tables: pd.DataFrame) -> pd.DataFrame:
    """``machine``, ``commit``, ``commit_date``, ``commit_order``: the most recent commit
    on each machine over the rows of all ``tables`` (``newest_first``)."""
    rows = pd.concat([t[["machine", "commit", "commit_date", "commit_order"]] for t in tables],
                     ignore_index=True)
    if rows.empty:
        return rows
    return (newest_first(rows).drop_duplicates("machine")
            .sort_values("machine", kind="stable").reset_index(drop=True))


def newest_first(rows: pd.DataFrame) -> pd.DataFrame:
    """``rows`` the most recent commit first, by the reader's ``commit_order``: git
    history's order where the results' repository knows every commit, else asv's results
    date (the author date, which a rebase keeps), then the hash (``history``)."""
    return rows.sort_values("commit_order", ascending=False, kind="stable")


def commits_oldest_first(table: pd.DataFrame) -> list[str]:
    """The distinct commits of ``table``, oldest first (``newest_first``'s order)."""
    return list(newest_first(table).drop_duplicates("commit")["commit"])[::-1]


def dated_out_of_order(table: pd.DataFrame) -> pd.DataFrame:
    """The commits of ``table`` (one row each, oldest first) that git history's order puts
    after a commit of a later date: a rebase or cherry-pick kept their older author date.
    Empty where the order is the dates' (always where it went by date)."""
    commits = table.drop_duplicates("commit").sort_values("commit_order", kind="stable")
    return commits[commits["commit_date"] < commits["commit_date"].cummax().shift()]


def latest_runs(table: pd.DataFrame, commits: pd.DataFrame | None = None) -> pd.DataFrame:
    """Rows of ``commits`` (machine and commit; default: ``latest_commits(table)``, the
    most recent commit on each machine): pass the commits picked over every result, so
    that a table holding part of them (speedup, gradients) shows the same commit as the
    others, or nothing where that commit did not run its part."""
    if commits is None:
        commits = latest_commits(table)
    return table.merge(commits[["machine", "commit"]], on=["machine", "commit"])


def varying(latest: pd.DataFrame) -> list[str]:
    """The run columns with more than one value in ``latest``: those that must key every
    figure shown (empty for one machine and one environment)."""
    return [c for c in RUN_COLUMNS if c in latest and latest[c].nunique() > 1]


def split_runs(latest: pd.DataFrame) -> list[tuple[dict, pd.DataFrame]]:
    """({machine, env}, its rows) per run in ``latest``, sorted by machine and env."""
    return [(dict(zip(RUN_COLUMNS, key)), rows)
            for key, rows in latest.groupby(RUN_COLUMNS, sort=True)]


def of_run(table: pd.DataFrame, run: dict) -> pd.DataFrame:
    """The rows of ``table`` that belong to ``run``."""
    return table[(table["machine"] == run["machine"]) & (table["env"] == run["env"])]


def run_label(run: dict, keys: list[str]) -> str:
    """"machine `m`, env `e`" for the run columns in ``keys``; "" for none."""
    return ", ".join(f"{key} {code(run[key])}" for key in keys)
