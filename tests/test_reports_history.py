"""The commits' order (reports/history.py): git history's where the results' repository
knows every commit, so that a rebased branch's tip, dated before the commit it now sits
on, is still the latest; the date, then the hash, for all where it does not."""
import os
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from fixtures.asv_variants import FIXTURE, add_commit, results_files
from scipy_layers.reports import read_results
from scipy_layers.reports.cli import main
from scipy_layers.reports.history import history_positions

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="needs git")


def git(repo: Path, *args: str, date: str = "2026-12-02T10:00:00+00:00", authored=None) -> str:
    env = {**os.environ, "GIT_AUTHOR_DATE": authored or date, "GIT_COMMITTER_DATE": date}
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True,
                          text=True, env=env).stdout.strip()


@pytest.fixture
def rebased(tmp_path):
    """A repository whose main is base -> tip, tip authored a day before base (a branch
    rebased onto base), with asv results of both inside it, dated as asv dates them: by
    author date. Returns (repository, results, base, tip)."""
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    git(repo, "config", "user.email", "t@example.com")
    git(repo, "config", "user.name", "t")
    git(repo, "commit", "-q", "--allow-empty", "-m", "base", date="2026-12-02T10:00:00+00:00")
    base = git(repo, "rev-parse", "HEAD")
    # authored on the 1st, committed (rebased) on the 3rd: its author date is the older
    git(repo, "commit", "-q", "--allow-empty", "-m", "tip", date="2026-12-03T10:00:00+00:00",
        authored="2026-12-01T10:00:00+00:00")
    tip = git(repo, "rev-parse", "HEAD")
    results = repo / ".asv" / "results"
    shutil.copytree(FIXTURE, results)
    for path in results_files(results):
        path.unlink()
    add_commit(results, base, days_later=2)
    add_commit(results, tip, days_later=1)
    return repo, results, base, tip


def test_a_rebased_tip_is_the_latest_commit_though_authored_earlier(rebased, tmp_path, capsys):
    repo, results, base, tip = rebased
    table = read_results(results)
    dates = table.groupby("commit")["commit_date"].min()
    assert dates[tip] < dates[base]  # what the date alone would get wrong
    assert table.groupby("commit")["commit_order"].unique().map(list).to_dict() == {
        base: [0], tip: [1]}
    assert main([str(results), str(tmp_path / "out"), "--no-plots"]) == 0
    summary = (tmp_path / "out" / "summary.md").read_text()
    assert f"commit `{tip[:8]}`" in summary and f"commit `{base[:8]}`" not in summary
    compare = pd.read_csv(tmp_path / "out" / "compare.csv")
    assert set(compare["commit_a"]) == {base} and set(compare["commit_b"]) == {tip}
    for name in ("timings.csv", "speedup.csv", "gradients.csv"):
        written = pd.read_csv(tmp_path / "out" / name)
        assert (written["commit_order"] == written["commit"].map({base: 0, tip: 1})).all(), name


@pytest.mark.parametrize("how", ["copied out of the repository", "a commit git lacks",
                                 "no git on PATH"])
def test_where_git_cannot_order_every_commit_all_go_by_date(rebased, tmp_path, monkeypatch, how):
    repo, results, base, tip = rebased
    if how == "copied out of the repository":
        results = Path(shutil.copytree(results, tmp_path / "elsewhere" / "results"))
    elif how == "a commit git lacks":
        add_commit(results, "e" * 40, days_later=3)
    else:
        monkeypatch.setenv("PATH", str(tmp_path / "no-such-folder"))
    table = read_results(results)
    orders = table.groupby("commit")["commit_order"].unique().map(list).to_dict()
    assert orders[tip] == [0] and orders[base] == [1]  # by author date: tip is the older
    if how == "a commit git lacks":
        assert orders["e" * 40] == [2]


def test_positions_need_every_commit_in_full(rebased):
    repo, results, base, tip = rebased
    assert history_positions(results, [tip, base]) == {base: 0, tip: 1}
    assert history_positions(repo, [base]) == {base: 0}
    for commits in ([tip[:12], base], [tip.upper(), base], ["--all"], [], [tip, "0" * 40]):
        assert history_positions(results, commits) is None, commits
    assert history_positions(repo.parent, [tip, base]) is None  # (not a repository)


def test_unrelated_commits_go_by_committer_date(tmp_path):
    """Two histories with no common ancestor (two branches of one repository): git's
    date order, the committer date, which a rebase renews."""
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "one")
    git(repo, "config", "user.email", "t@example.com")
    git(repo, "config", "user.name", "t")
    git(repo, "commit", "-q", "--allow-empty", "-m", "one", date="2026-12-04T10:00:00+00:00")
    later = git(repo, "rev-parse", "HEAD")
    git(repo, "checkout", "-q", "--orphan", "two")
    git(repo, "commit", "-q", "--allow-empty", "-m", "two", date="2026-12-03T10:00:00+00:00")
    earlier = git(repo, "rev-parse", "HEAD")
    assert history_positions(repo, [later, earlier]) == {earlier: 0, later: 1}
