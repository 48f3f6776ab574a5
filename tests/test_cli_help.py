"""Every command line of the project answers --help: argparse formats each help text
only then, so a stray '%' in one (a percentage default) crashed the report command's
--help with a ValueError from deep inside argparse, while every real run worked."""
import contextlib
import io
import runpy
import sys
from pathlib import Path

import pytest

from scipy_layers.reports.cli import main as report_main

ROOT = Path(__file__).resolve().parent.parent
# The tools run as commands (a __main__ block); the others are libraries of tools/.
# (Not "uses argparse": asv_machine took none, and its --help wrote ~/.asv-machine.json.)
TOOLS = sorted(path.name for path in (ROOT / "tools").glob("*.py")
               if 'if __name__ == "__main__":' in path.read_text())


def _help_of(run) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit) as exit_:
        run()
    assert exit_.value.code in (0, None), f"--help exited {exit_.value.code!r}"
    return out.getvalue()


def test_the_report_command_prints_its_help():
    text = _help_of(lambda: report_main(["--help"]))
    assert "--threshold" in text and "default 5%" in text


def test_the_tool_list_is_not_empty():
    assert {"side_by_side.py", "targets.py", "compare_power.py", "asv_machine.py",
            "bench_report.py"} <= set(TOOLS)


def _tool_help(tool: str, monkeypatch) -> str:
    """What ``tools/<tool> --help`` prints, run as its own script would be."""
    path = ROOT / "tools" / tool
    monkeypatch.setattr(sys, "argv", [str(path), "--help"])
    monkeypatch.setattr(sys, "path", [str(path.parent), *sys.path])
    return _help_of(lambda: runpy.run_path(str(path), run_name="__main__"))


@pytest.mark.parametrize("tool", TOOLS)
def test_every_tool_prints_its_help(tool, monkeypatch):
    text = _tool_help(tool, monkeypatch)
    assert text.startswith("usage:") and "--help" in text


def _description(help_text: str) -> str:
    """The description argparse printed: the paragraph after the usage block."""
    paragraphs = [" ".join(p.split()) for p in help_text.split("\n\n")]
    return paragraphs[1]


def _first_paragraph(tool: str) -> str:
    """The tool's docstring's first paragraph, a ':' or '::' before an example read as '.'."""
    import ast
    doc = ast.get_docstring(ast.parse((ROOT / "tools" / tool).read_text()), clean=False)
    paragraph = " ".join(doc.split("\n\n")[0].split())
    return paragraph.rstrip(":") + "." if paragraph.endswith(":") else paragraph


@pytest.mark.parametrize("tool", TOOLS)
def test_every_tools_help_says_its_docstrings_first_paragraph_whole(tool, monkeypatch):
    """--help's description is the docstring's whole first paragraph: compare_commits,
    compare_power, calibrate and record_environment printed its first line alone, which
    stopped mid-sentence ("... peak GEMM and FFT rates, the"; pass 154); five ended in the
    colon that led to the docstring's example ("... side by side in one process:")."""
    text = _tool_help(tool, monkeypatch)
    assert _description(text) == _first_paragraph(tool)
    assert not _description(text).endswith(":")


def test_every_tool_prints_its_help_without_docstrings():
    """Under ``python -OO`` (or PYTHONOPTIMIZE=2) there are no docstrings: every tool's
    --help failed with "'NoneType' object has no attribute 'split'". One process runs
    them all (each --help exits through SystemExit)."""
    script = (
        "import runpy, sys\n"
        f"tools = {TOOLS!r}\n"
        "failed = []\n"
        "for tool in tools:\n"
        f"    path = {str(ROOT / 'tools')!r} + '/' + tool\n"
        "    sys.argv = [path, '--help']\n"
        f"    sys.path.insert(0, {str(ROOT / 'tools')!r})\n"
        "    try:\n"
        "        runpy.run_path(path, run_name='__main__')\n"
        "        failed.append((tool, 'no exit'))\n"
        "    except SystemExit as exit_:\n"
        "        if exit_.code not in (0, None):\n"
        "            failed.append((tool, exit_.code))\n"
        "    except Exception as error:\n"
        "        failed.append((tool, repr(error)))\n"
        "print('FAILED', failed)\n")
    import subprocess
    run = subprocess.run([sys.executable, "-OO", "-c", script], capture_output=True, text=True,
                         cwd=ROOT, timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "FAILED []" in run.stdout, run.stdout[-2000:]


def test_side_by_side_shows_its_default_cases_as_they_are_typed(monkeypatch):
    """--cases' default was shown parsed ("[('fft', (16, 16), 'float32', 0, {}), ...]"),
    a form --cases does not take; it shows the case strings, each one --cases parses
    (pass 154)."""
    text = " ".join(_tool_help("side_by_side.py", monkeypatch).split())
    shown = text.split("(default: ", 1)[1].split(")", 1)[0].split()
    import side_by_side
    assert shown == list(side_by_side.DEFAULT_CASES)
    assert [side_by_side.label(side_by_side.parse_case(c)) for c in shown] == [
        "fft 16x16 float32", "fft 64x64 float64", "conv 64x64 k3 float32"]
