"""tools/report_files.py: the two report files are replaced together or not at all, and
nothing is left beside them."""
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import report_files  # noqa: E402

NAMES = ("a.csv", "a.md")
TABLE = pd.DataFrame({"cell": ["x"], "ratio": [0.5]})


def _contents(folder: Path) -> dict:
    return {path.name: path.read_text() for path in folder.iterdir()}


@pytest.mark.parametrize("before", [{}, {"a.csv": "old csv"}, {"a.md": "old md"},
                                    {"a.csv": "old csv", "a.md": "old md"}])
def test_both_files_are_written(tmp_path, before):
    for name, text in before.items():
        (tmp_path / name).write_text(text)
    report_files.write(tmp_path, TABLE, "new md", NAMES)
    assert _contents(tmp_path) == {"a.csv": TABLE.to_csv(index=False), "a.md": "new md"}


@pytest.mark.parametrize("before", [{}, {"a.csv": "old csv"}, {"a.md": "old md"},
                                    {"a.csv": "old csv", "a.md": "old md"}])
@pytest.mark.parametrize("failing", [1, 2, 3, 4])  # the first to fourth move fails
def test_a_failed_move_leaves_the_folder_as_it_was(tmp_path, monkeypatch, before, failing):
    for name, text in before.items():
        (tmp_path / name).write_text(text)
    moves, real_replace = [], os.replace

    def replace(source, target):
        moves.append((source, target))
        if len(moves) == failing:
            raise PermissionError(13, "refused", str(target))
        real_replace(source, target)

    monkeypatch.setattr(report_files.os, "replace", replace)
    moved = len(before) + 2  # the files there set aside, then the two new ones
    if failing > moved:
        report_files.write(tmp_path, TABLE, "new md", NAMES)
        assert set(_contents(tmp_path)) == set(NAMES)
        return
    with pytest.raises(PermissionError):
        report_files.write(tmp_path, TABLE, "new md", NAMES)
    assert _contents(tmp_path) == before  # and no temporary or set-aside file left


def test_a_target_that_became_a_folder_is_refused_and_nothing_replaced(tmp_path):
    (tmp_path / "a.csv").write_text("old csv")
    (tmp_path / "a.md").mkdir()
    with pytest.raises(IsADirectoryError, match="a.md exists and is not a plain file"):
        report_files.write(tmp_path, TABLE, "new md", NAMES)
    assert (tmp_path / "a.csv").read_text() == "old csv"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.csv", "a.md"]


def test_publish_prints_the_figures_and_names_what_it_could_not_write(tmp_path, capsys):
    (tmp_path / "a.md").mkdir()
    assert report_files.publish("tool", tmp_path, TABLE, "figures\n", NAMES) == 1
    out, err = capsys.readouterr()
    assert out == "figures\n"
    assert err.startswith(f"tool: could not write into {tmp_path}: ")
    assert "the files there are as they were" in err and not (tmp_path / "a.csv").exists()
    (tmp_path / "a.md").rmdir()
    assert report_files.publish("tool", tmp_path, TABLE, "figures", NAMES) == 0
    assert capsys.readouterr().out == "figures\n" and (tmp_path / "a.md").read_text() == "figures"


def test_the_code_stamp_names_only_this_checkout(monkeypatch, tmp_path):
    monkeypatch.setattr(report_files, "ROOT", tmp_path)  # not a git checkout
    assert report_files.code_commit() == "unknown (not a git checkout)"
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    (tmp_path / "copy").mkdir()
    monkeypatch.setattr(report_files, "ROOT", tmp_path / "copy")  # inside another repository
    assert report_files.code_commit() == "unknown (not a git checkout)"
    monkeypatch.setattr(report_files, "ROOT", ROOT)
    assert report_files.code_commit().split()[0] == subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
        check=True).stdout.strip()


def test_a_link_named_like_a_report_file_is_refused_and_kept(tmp_path):
    # (mutation pass 110: os.replace would replace the user's link itself)
    (tmp_path / "mine.md").write_text("mine")
    out = tmp_path / "out"
    out.mkdir()
    (out / "a.md").symlink_to(tmp_path / "mine.md")
    with pytest.raises(IsADirectoryError, match="a.md exists and is not a plain file"):
        report_files.write(out, TABLE, "new md", NAMES)
    assert (out / "a.md").is_symlink() and (out / "a.md").read_text() == "mine"
    assert [p.name for p in out.iterdir()] == ["a.md"]


def test_the_code_stamp_names_uncommitted_changes_to_the_code_only(monkeypatch, tmp_path):
    def git(*args):
        subprocess.run(["git", "-C", str(tmp_path), "-c", "user.name=t", "-c", "user.email=t@t",
                        *args], check=True, capture_output=True)
    git("init", "-q")
    folders = ("scipy_layers", "benchmarks", "tools", "reports")
    for folder in folders:
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "f.py").write_text("1")
    git("add", ".")
    git("commit", "-qm", "c")
    monkeypatch.setattr(report_files, "ROOT", tmp_path)
    clean = report_files.code_commit()
    assert len(clean.split()) == 1
    (tmp_path / "reports" / "f.py").write_text("2")  # a report is not the code that ran
    assert report_files.code_commit() == clean
    for folder in folders[:3]:
        (tmp_path / folder / "f.py").write_text("2")
        assert report_files.code_commit() == (
            f"{clean} with uncommitted changes in scipy_layers/, benchmarks/ or tools/"), folder
        (tmp_path / folder / "f.py").write_text("1")
