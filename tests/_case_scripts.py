"""Tests that run their own file as a script in a subprocess, one JSON line per case:
Dynamo is heavy and may crash, and a crash then fails those tests, not the run."""
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_cases(script: str, names: list[str], timeout: float = 1200) -> dict:
    """Case name -> its JSON line, from ``python script *names`` run with this checkout
    first on the path; every case must report, in order, within ``timeout`` seconds."""
    python_path = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    run = subprocess.run([sys.executable, script, *names], cwd=ROOT,
                         env={**os.environ, "PYTHONPATH": python_path},
                         capture_output=True, text=True, timeout=timeout)
    lines = [json.loads(line) for line in run.stdout.splitlines() if line.startswith("{")]
    assert [line["case"] for line in lines] == names, run.stderr[-4000:]
    return {line["case"]: line for line in lines}
