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


def _run(tmp_path: Path, asv_status: int, report_status: int = 0, full_status=None):
    """The script in a scratch tree whose .venv/bin/asv exits ``asv_status`` and whose
    tools/commit_report.sh exits ``report_status``; returns (process, logged calls)."""
    (tmp_path / "tools").mkdir()
    (tmp_path / ".venv" / "bin").mkdir(parents=True)
    shutil.copy(ROOT / "tools" / "reference_results.sh", tmp_path / "tools")
    log = tmp_path / "calls.log"
    full_status = asv_status if full_status is None else full_status
    _stub(tmp_path / ".venv" / "bin" / "asv",
          f'echo "asv full=${{SCIPY_LAYERS_BENCH_FULL:-0}} $*" >> "{log}"\n'
          f'[ "${{SCIPY_LAYERS_BENCH_FULL:-0}}" = 1 ] && exit {full_status}\nexit {asv_status}\n')
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
    assert "full=0" in calls[1] and "full=1" in calls[2]  # the default grid, then the full
    assert "time_forward_backward" in calls[2]
    assert calls[-1] == "commit_report .venv/bin/python stub-machine"
    assert process.returncode == asv_status, process.stderr
    assert ("some benchmarks failed" in process.stderr) == bool(asv_status)


@pytest.mark.parametrize("default_status, full_status", [(2, 0), (0, 2)])
def test_failed_benchmarks_in_either_run_are_the_result(tmp_path, default_status, full_status):
    process, calls = _run(tmp_path, default_status, full_status=full_status)
    assert calls[-1].startswith("commit_report")
    assert process.returncode == 2 and "some benchmarks failed" in process.stderr


@pytest.mark.parametrize("default_status, full_status", [(1, 0), (0, 1), (130, 0)])
def test_asvs_own_failure_stops_before_the_reports(tmp_path, default_status, full_status):
    # asv exits 1 on its own errors and on Ctrl-C: results may be partial or stale
    process, calls = _run(tmp_path, default_status, full_status=full_status)
    assert not any(call.startswith("commit_report") for call in calls), calls
    assert not any("calibrate" in call for call in calls)
    assert process.returncode == (default_status or full_status)
    assert "no reports written" in process.stderr


def test_a_failed_report_is_the_result(tmp_path):
    process, calls = _run(tmp_path, asv_status=2, report_status=3)
    assert calls[-1].startswith("commit_report")
    assert process.returncode == 3
    assert "some benchmarks failed" in process.stderr and "status 3" in process.stderr
