"""tools/side_by_side.py: it imports the base commit's own package and prints one row per
case; bad cases and revisions get a clear error."""
import io
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import side_by_side  # noqa: E402

SCRIPT = [sys.executable, str(ROOT / "tools" / "side_by_side.py")]


BASE = "HEAD~1"  # a commit other than the checkout's


@pytest.fixture
def clean_imports(monkeypatch):
    monkeypatch.setattr(sys, "path", list(sys.path))
    yield
    for name in [name for name in sys.modules if name.startswith("scipy_layers_base")]:
        del sys.modules[name]


def test_the_base_is_the_commits_package(tmp_path, clean_imports):
    base = side_by_side.import_commit(BASE, tmp_path)
    assert Path(base.__file__).is_relative_to(tmp_path)
    shown = subprocess.run(["git", "show", f"{BASE}:scipy_layers/fft.py"],
                           cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert (tmp_path / "scipy_layers_base" / "fft.py").read_text() == shown
    x = torch.randn(8, 8, dtype=torch.float64)
    torch.testing.assert_close(base.fft_abs(x), torch.fft.rfft2(x).abs())


def test_the_script_prints_a_row_per_case():
    result = subprocess.run(SCRIPT + ["--base", "HEAD", "--batches", "2", "--cases",
                                      "fft:8:float64", "fft:2x6x9:float32",
                                      "conv:9:float32:3", "cnn:2x3x8x9:4:float64:3",
                                      "cnn:2x4x8x9:4:float32:3:g4:s2:p1"],
                            capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert "torch " in result.stdout and "BLAS" in result.stdout
    rows = [line.split("|")[1:-1] for line in result.stdout.splitlines()
            if line.startswith(("| fft", "| conv", "| cnn"))]
    assert [r[0].strip() for r in rows] == ["fft 8x8 float64", "fft 2x6x9 float32",
                                            "conv 9x9 k3 float32", "cnn 2x3x8x9->4 k3 float64",
                                            "cnn 2x4x8x9->4 k3 g4 s2 p1 float32"]
    for row in rows:
        assert float(row[1]) > 0
        assert all(float(cell.split()[0]) > 0 for cell in row[2:4])
        float(row[4])


@pytest.mark.parametrize("case", ["fft:8", "conv:8:float32", "fft:8:float16",
                                  "fft:2x3x8x8:float32", "fft:0x8:float32", "fft:8x:float32", "conv:4:float32:5",
                                  "fft:x:float32", "pool:8:float32", "cnn:2x3x8x8:4:float32",
                                  "cnn:2x3x8:4:float32:3", "cnn:2x3x8x8:4:float32:9",
                                  "cnn:2x0x8x8:4:float32:3",
                                  # conv2d keyword arguments: known letters, once each, in
                                  # range, groups dividing both channel counts, kernel fitting
                                  "cnn:2x3x8x8:4:float32:3:g2", "cnn:2x4x8x8:6:float32:3:g4",
                                  "cnn:2x3x8x8:4:float32:3:x1", "cnn:2x3x8x8:4:float32:3:s1:s2",
                                  "cnn:2x3x8x8:4:float32:3:s0", "cnn:2x3x8x8:4:float32:3:g0",
                                  "cnn:2x3x8x8:4:float32:3:p", "cnn:2x3x8x8:4:float32:5:d3",
                                  "cnn:2x3x8x8:4:float32:3:g1:s1:p0:d1:g1"])
def test_a_bad_case_is_refused_by_name(case):
    result = subprocess.run(SCRIPT + ["--base", "HEAD", "--cases", case],
                            capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert result.returncode == 2 and repr(case) in result.stderr


def test_an_unknown_revision_is_named():
    result = subprocess.run(SCRIPT + ["--base", "no-such-rev-0", "--batches", "1"],
                            capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert result.returncode != 0 and "no-such-rev-0" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_base_that_reads_as_an_option_of_git_archive_writes_nothing(tmp_path):
    """--base=--output=FILE went to `git archive` as its option: git opened FILE for the
    tar before it failed on the path, and FILE, the user's, was left empty (hostile pass
    140). The revision is never read as an option."""
    notes = tmp_path / "notes.txt"
    notes.write_text("the user's notes\n")
    result = subprocess.run(SCRIPT + [f"--base=--output={notes}", "--batches", "1"],
                            capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert result.returncode != 0 and f"--output={notes}" in result.stderr
    assert "Traceback" not in result.stderr
    assert notes.read_text() == "the user's notes\n"


def test_a_base_that_does_not_import_is_named(tmp_path, clean_imports, monkeypatch):
    """A commit whose package fails to import (here: a faked archive) is an error naming
    the commit, not a traceback from inside it."""
    broken = tmp_path / "archive"
    (broken / "scipy_layers").mkdir(parents=True)
    (broken / "scipy_layers" / "__init__.py").write_text("raise ImportError('old API')\n")
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w") as tar:
        tar.add(broken / "scipy_layers", arcname="scipy_layers")

    class Done:
        returncode, stdout, stderr = 0, data.getvalue(), b""

    monkeypatch.setattr(side_by_side.subprocess, "run", lambda *a, **k: Done)
    with pytest.raises(SystemExit, match="broken-rev's scipy_layers does not import here: "
                                         "ImportError: old API"):
        side_by_side.import_commit("broken-rev", tmp_path / "into")


def test_a_base_without_the_batched_conv_is_named():
    """A commit from before nn.conv2d cannot run the cnn cases: a clear error, not an
    AttributeError from inside a timed call."""
    import scipy_layers as head

    class OldBase:
        fft_abs, scipy_conv2d = head.fft_abs, head.scipy_conv2d

    case = side_by_side.parse_case("cnn:1x2x6x6:3:float64:3")
    with pytest.raises(SystemExit, match="no conv2d"):
        side_by_side.calls(case, OldBase, head)
    rows = side_by_side.calls(case, head, head)
    assert sorted(rows) == ["base", "head", "native"]
    grads = {name: call() for name, call in rows.items()}
    for got in (grads["base"], grads["head"]):
        for mine, theirs in zip(got, grads["native"]):
            torch.testing.assert_close(mine, theirs)


@pytest.mark.parametrize("text,kwargs", [
    ("cnn:2x4x9x9:8:float64:3:g4:s2:p1", dict(groups=4, stride=2, padding=1)),  # depthwise x2
    ("cnn:1x6x12x11:2:float64:3:d2:p2", dict(dilation=2, padding=2)),           # kn2row
    ("cnn:2x3x8x8:4:float32:3:p0", dict(padding=0)),
])
def test_cnn_options_reach_both_layers_and_native(text, kwargs, monkeypatch):
    import scipy_layers as head
    case = side_by_side.parse_case(text)
    assert case[-1] == kwargs
    seen = []
    real = head.conv2d
    monkeypatch.setattr(head, "conv2d", lambda *a, **k: seen.append(k) or real(*a, **k))
    grads = {name: call() for name, call in side_by_side.calls(case, head, head).items()}
    assert seen == [kwargs, kwargs]  # base and head (the same package here)
    for mine, theirs in zip(grads["head"], grads["native"]):
        torch.testing.assert_close(mine, theirs)
    x, w = grads["native"][:2]
    assert w.shape[1] == x.shape[1] // kwargs.get("groups", 1)


def test_the_script_settles_malloc_before_timing(monkeypatch, capsys):
    """As the suite's timing processes: at glibc's start-up thresholds native's depthwise
    conv faults its pages in on every call (11-14 ms against 3 ms settled)."""
    import importlib

    import benchmarks.common as common
    order = []
    monkeypatch.setattr(common, "settle_allocator", lambda: order.append("settled"))
    timed = side_by_side.timed
    monkeypatch.setattr(side_by_side, "timed",
                        lambda functions, batches: order.append("timed") or timed(functions, batches))
    monkeypatch.setattr(side_by_side, "import_commit",
                        lambda rev, into: importlib.import_module("scipy_layers"))
    assert side_by_side.main(["--base", "HEAD", "--batches", "1", "--cases", "fft:8:float64"]) == 0
    assert order == ["settled", "timed"]
    assert "| fft 8x8 float64 |" in capsys.readouterr().out


def test_a_row_is_the_medians_and_inclusive_quartiles_of_the_batches_at_one_thread(
        monkeypatch, capsys):
    """Per batch the implementation's time over the same batch's native time: the row
    gives the median [inclusive quartiles] of those ratios and the median head - base, with
    torch at one thread while timing (the suite passed with torch left at its thread
    count, with statistics' default (exclusive) quartiles, and with base - head)."""
    import importlib
    threads = []

    def timed(functions, batches):
        threads.append(torch.get_num_threads())
        return {"native": [1e-6] * 4, "base": [1e-6, 2e-6, 3e-6, 4e-6],
                "head": [2e-6, 3e-6, 4e-6, 5e-6]}

    monkeypatch.setattr(side_by_side, "timed", timed)
    monkeypatch.setattr(side_by_side, "import_commit",
                        lambda rev, into: importlib.import_module("scipy_layers"))
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        assert side_by_side.main(["--base", "HEAD", "--batches", "4", "--cases",
                                  "fft:8:float64"]) == 0
    finally:
        torch.set_num_threads(before)
    assert threads == [1]
    row = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("| fft"))
    assert row == ("| fft 8x8 float64 | 1 | 2.500 [1.750-3.250] | 3.500 [2.750-4.250] "
                   "| +1.0 |")
