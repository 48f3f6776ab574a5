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
from scipy_layers.reports.history import history_positions, is_ancestor

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="needs git")


def git(repo: Path, *args: str, date: str = "2026-12-02T10:00:00+00:00", authored=None) -> str:
    env = {**os.environ, "GIT_AUTHOR_DATE": authored or date, "GIT_COMMITTER_DATE": date}
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True,
                          text=True, env=env).stdout.strip()


def new_repository(repo: Path, branch: str) -> Path:
    repo.mkdir()
    git(repo, "init", "-q", "-b", branch)
    git(repo, "config", "user.email", "t@example.com")
    git(repo, "config", "user.name", "t")
    return repo


@pytest.fixture
def rebased(tmp_path):
    """A repository whose main is base -> tip, tip authored a day before base (a branch
    rebased onto base), with asv results of both inside it, dated as asv dates them: by
    author date. Returns (repository, results, base, tip)."""
    repo = new_repository(tmp_path / "repo", "main")
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
    assert f"Commits follow git history, not their dates: `{tip[:8]}` come after" in summary
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
    assert main([str(results), str(tmp_path / "out"), "--no-plots"]) == 0
    summary = (tmp_path / "out" / "summary.md").read_text()
    assert "follow git history" not in summary  # (by date, nothing is out of order)


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
    repo = new_repository(tmp_path / "repo", "one")
    git(repo, "commit", "-q", "--allow-empty", "-m", "one", date="2026-12-04T10:00:00+00:00")
    later = git(repo, "rev-parse", "HEAD")
    git(repo, "checkout", "-q", "--orphan", "two")
    git(repo, "commit", "-q", "--allow-empty", "-m", "two", date="2026-12-03T10:00:00+00:00")
    earlier = git(repo, "rev-parse", "HEAD")
    assert history_positions(repo, [later, earlier]) == {earlier: 0, later: 1}


@pytest.mark.parametrize("git_dir", ["relative", "another repository"])
def test_a_git_dir_in_the_environment_does_not_move_git_to_another_repository(
        rebased, tmp_path, monkeypatch, git_dir):
    """GIT_DIR (exported by a hook in a linked worktree, by `git --git-dir`, by a user's
    shell for a bare dotfiles repository) outranked `git -C results`: git read another
    repository, or none (a relative one, from the results directory), and the order went
    by date there alone: the rebased tip read as the older, summary.md and compare.csv's
    default pair turned round."""
    repo, results, base, tip = rebased
    if git_dir == "relative":
        monkeypatch.chdir(repo)
        monkeypatch.setenv("GIT_DIR", ".git")
    else:
        other = tmp_path / "other"
        other.mkdir()
        git(other, "init", "-q")
        monkeypatch.setenv("GIT_DIR", str(other / ".git"))
        monkeypatch.setenv("GIT_WORK_TREE", str(other))
    assert history_positions(results, [tip, base]) == {base: 0, tip: 1}


@pytest.mark.skipif(os.name != "posix" or os.geteuid() != 0, reason="needs to chown")
def test_a_safe_directory_given_in_the_environment_is_kept(rebased, monkeypatch):
    """A repository of another owner (a container's mounted checkout) is one git refuses
    unless safe.directory names it, which a container may pass in GIT_CONFIG_COUNT:
    that is configuration, kept, not a variable pointing at another repository."""
    repo, results, base, tip = rebased
    subprocess.run(["chown", "-R", "12345:12345", str(repo)], check=True)
    assert history_positions(results, [tip, base]) is None  # (dubious ownership)
    monkeypatch.setenv("GIT_CONFIG_COUNT", "1")
    monkeypatch.setenv("GIT_CONFIG_KEY_0", "safe.directory")
    monkeypatch.setenv("GIT_CONFIG_VALUE_0", "*")
    assert history_positions(results, [tip, base]) == {base: 0, tip: 1}


def test_a_partial_clone_never_fetches_a_commit_it_lacks(tmp_path):
    """In a partial clone (--filter), git fetched a commit the results name and the
    clone lacks from its remote, so a report went to the network (an ssh passphrase
    asked on the terminal, a wait of GIT_TIMEOUT_S offline) and its order hung on it.
    A commit the clone lacks is one git cannot place: the date's order."""
    origin = tmp_path / "origin"
    origin.mkdir()
    git(origin, "init", "-q", "-b", "main")
    git(origin, "config", "uploadpack.allowFilter", "true")
    git(origin, "config", "uploadpack.allowAnySHA1InWant", "true")
    git(origin, "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-q",
        "--allow-empty", "-m", "base")
    base = git(origin, "rev-parse", "HEAD")
    git(tmp_path, "clone", "-q", "--filter=blob:none", origin.as_uri(), "clone")
    git(origin, "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-q",
        "--allow-empty", "-m", "later")
    later = git(origin, "rev-parse", "HEAD")
    assert history_positions(tmp_path / "clone", [base, later]) is None
    lacks = subprocess.run(["git", "-C", str(tmp_path / "clone"), "cat-file", "-e", later],
                           capture_output=True, env={**os.environ, "GIT_NO_LAZY_FETCH": "1"})
    assert lacks.returncode != 0  # (not fetched)


def test_reading_results_runs_no_command_of_their_repositorys_configuration(tmp_path):
    """Results unpacked from elsewhere may sit in a repository of someone else's making:
    one whose configuration calls itself a partial clone had git fetch the commit it
    lacks, running the core.sshCommand it names. Nothing is fetched: nothing runs."""
    repo = tmp_path / "unpacked"
    repo.mkdir()
    git(repo, "init", "-q")
    ran = tmp_path / "ran"
    for key, value in (("core.repositoryformatversion", "1"),
                       ("extensions.partialClone", "origin"),
                       ("remote.origin.url", "ssh://example.invalid/x"),
                       ("remote.origin.promisor", "true"),
                       ("core.sshCommand", f"touch '{ran}'; false")):
        git(repo, "config", key, value)
    (repo / "results").mkdir()
    assert history_positions(repo / "results", ["a" * 40]) is None
    assert not ran.exists()


@pytest.mark.parametrize("says", [b"fatal: dubious ownership in /tmp/caf\xe9\n", b""])
def test_git_output_that_is_not_utf8_is_no_traceback(rebased, tmp_path, monkeypatch, says):
    """git's messages quote paths as the file system has them: one not in UTF-8 (here
    from a stand-in git on PATH) was a UnicodeDecodeError out of read_results."""
    repo, results, base, tip = rebased
    stub = tmp_path / "bin" / "git"
    stub.parent.mkdir()
    stub.write_bytes(b"#!/bin/sh\nprintf '" + says.replace(b"\n", b"\\n") + b"' >&2\n"
                     b"printf '\\377\\n%s\\n' " + tip.encode() + b"\nexit "
                     + (b"128" if says else b"0") + b"\n")
    stub.chmod(0o755)
    monkeypatch.setenv("PATH", f"{stub.parent}{os.pathsep}{os.environ['PATH']}")
    assert history_positions(results, [tip, base]) is None
    orders = read_results(results).groupby("commit")["commit_order"].unique().map(list)
    assert orders.to_dict() == {tip: [0], base: [1]}  # by date


def test_commits_given_newest_first_are_refused_where_git_knows_their_order(rebased, tmp_path,
                                                                           capsys):
    """``--commits TIP BASE`` was taken silently: compare.csv read the base as the change
    from the tip, a slowdown as a speed-up, and --gate passed it. Where git cannot tell
    (results copied out of the repository), the pair goes as given, as before."""
    repo, results, base, tip = rebased
    assert main([str(results), str(tmp_path / "out"), "--no-plots",
                 "--commits", tip[:10], base[:10]]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and (f"{base[:8]} is an ancestor of {tip[:8]} in git history" in error[0]
                                and f"give --commits {base[:10]} {tip[:10]}" in error[0]), error
    assert not (tmp_path / "out").exists()
    assert main([str(results), str(tmp_path / "out"), "--no-plots",
                 "--commits", base[:10], tip[:10]]) == 0
    copied = Path(shutil.copytree(results, tmp_path / "elsewhere" / "results"))
    assert main([str(copied), str(tmp_path / "out2"), "--no-plots",
                 "--commits", tip[:10], base[:10]]) == 0
    compare = pd.read_csv(tmp_path / "out2" / "compare.csv")
    assert set(compare["commit_a"]) == {tip} and set(compare["commit_b"]) == {base}


def test_is_ancestor_answers_only_what_git_knows(rebased, tmp_path):
    repo, results, base, tip = rebased
    git(repo, "checkout", "-q", "-b", "side", base)
    git(repo, "commit", "-q", "--allow-empty", "-m", "side")
    side = git(repo, "rev-parse", "HEAD")
    assert is_ancestor(results, base, tip) is True and is_ancestor(results, tip, base) is False
    assert is_ancestor(results, side, tip) is False and is_ancestor(results, tip, side) is False
    assert is_ancestor(results, "e" * 40, tip) is None  # (a commit git lacks)
    assert is_ancestor(results, tip[:12], base) is None  # (full hashes only)
    assert is_ancestor(tmp_path / "elsewhere", base, tip) is None  # (no repository)
