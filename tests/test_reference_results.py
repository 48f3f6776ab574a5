"""tools/reference_results.sh (`make results`): a failed benchmark must not cost the
reports of every other one. Run on a copy of the script beside stub programs that log
their calls (no asv run, nothing timed)."""
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _stub(path: Path, body: str) -> None:
    path.write_text("#!/usr/bin/env bash\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


def _run(tmp_path: Path, asv_status: int, report_status: int = 0):
    """The script in a scratch tree whose .venv/bin/asv exits ``asv_status`` and whose
    tools/commit_report.sh exits ``report_status``; returns (process, logged calls)."""
    (tmp_path / "tools").mkdir()
    (tmp_path / ".venv" / "bin").mkdir(parents=True)
    shutil.copy(ROOT / "tools" / "reference_results.sh", tmp_path / "tools")
    log = tmp_path / "calls.log"
    _stub(tmp_path / ".venv" / "bin" / "asv",
          f'echo "asv $*" >> "{log}"\nexit {asv_status}\n')
    _stub(tmp_path / ".venv" / "bin" / "python",
          f'echo "python $*" >> "{log}"\n'
          '[ "$1" = tools/asv_machine.py ] && echo stub-machine\nexit 0\n')
    _stub(tmp_path / "tools" / "commit_report.sh",
          f'echo "commit_report $*" >> "{log}"\nexit {report_status}\n')
    process = subprocess.run(["bash", str(tmp_path / "tools" / "reference_results.sh")],
                             capture_output=True, text=True, timeout=60)
    return process, log.read_text().splitlines()


@pytest.mark.parametrize("asv_status", [0, 2])
def test_every_step_runs_and_asvs_status_is_the_result(tmp_path, asv_status):
    process, calls = _run(tmp_path, asv_status)
    steps = [call.split()[1] if call.startswith("python") else call.split()[0]
             for call in calls]
    assert steps == ["tools/asv_machine.py", "asv", "asv", "tools/record_environment.py",
                     "tools/calibrate.py", "commit_report"], calls
    assert "--machine stub-machine" in calls[1] and "HEAD^!" in calls[1]
    assert "time_forward_backward" in calls[2]  # the full grid's run
    assert calls[-1] == "commit_report .venv/bin/python stub-machine"
    assert process.returncode == asv_status, process.stderr
    assert ("some benchmarks failed" in process.stderr) == bool(asv_status)


def test_a_failed_report_is_the_result(tmp_path):
    process, calls = _run(tmp_path, asv_status=2, report_status=3)
    assert calls[-1].startswith("commit_report")
    assert process.returncode == 3
