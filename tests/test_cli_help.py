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
# The tools with a command line (argparse); the others are libraries of tools/ or take
# no arguments.
TOOLS = sorted(path.name for path in (ROOT / "tools").glob("*.py")
               if "ArgumentParser(" in path.read_text())


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
    assert {"side_by_side.py", "targets.py", "compare_power.py"} <= set(TOOLS)


@pytest.mark.parametrize("tool", TOOLS)
def test_every_tool_prints_its_help(tool, monkeypatch):
    path = ROOT / "tools" / tool
    monkeypatch.setattr(sys, "argv", [str(path), "--help"])
    monkeypatch.setattr(sys, "path", [str(path.parent), *sys.path])
    text = _help_of(lambda: runpy.run_path(str(path), run_name="__main__"))
    assert text.startswith("usage:") and "--help" in text
