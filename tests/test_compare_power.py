"""tools/compare_power.py: bad commits, round sizes and factors are one-line errors (exit
2), never a traceback or a silently wrong pick."""
import subprocess
import sys
from pathlib import Path

import pytest

from fixtures.compare_variants import COMMIT_A, COMMIT_B, RESULTS

ROOT = Path(__file__).resolve().parent.parent


def power(*args):
    return subprocess.run([sys.executable, str(ROOT / "tools/compare_power.py"), *args],
                          cwd=ROOT, capture_output=True, text=True)


@pytest.mark.parametrize("args, words", [
    ([COMMIT_A[:6], COMMIT_B[:6], "--round-size", "-1"], "must be at least 1"),
    ([COMMIT_A[:6], COMMIT_B[:6], "--round-size", "0"], "must be at least 1"),
    ([COMMIT_A[:6], COMMIT_B[:6], "--round-size", "19"], "more than the 18 samples"),
    # (18 samples, rounds of 3: a size that fills none exactly splits rounds across runs)
    ([COMMIT_A[:6], COMMIT_B[:6], "--round-size", "4"], "does not divide the sample counts"),
    ([COMMIT_A[:6], COMMIT_B[:6], "--round-size", "7"], "counts 18 "),
    ([COMMIT_A[:6], COMMIT_A[:8], "--round-size", "3"], "the same commit"),
    (["", COMMIT_B[:6], "--round-size", "3"], "matches several commits"),
    (["zz", COMMIT_B[:6], "--round-size", "3"], "is not in the results"),
    ([COMMIT_A[:6], COMMIT_B[:6], "--round-size", "3", "--factors", "-2"], "positive finite"),
    ([COMMIT_A[:6], COMMIT_B[:6], "--round-size", "3", "--factors", "nan"], "positive finite"),
])
def test_bad_input_is_one_line_and_exit_2(args, words):
    run = power(*args, "--results", str(RESULTS))
    assert run.returncode == 2 and words in run.stderr and "Traceback" not in run.stderr


def test_a_missing_results_directory_is_one_line(tmp_path):
    run = power(COMMIT_A[:6], COMMIT_B[:6], "--results", str(tmp_path / "none"))
    assert run.returncode == 2 and run.stderr.count("\n") == 1 and "does not exist" in run.stderr


def test_it_runs_on_the_real_run():
    run = power(COMMIT_A[:6], COMMIT_B[:6], "--results", str(RESULTS), "--round-size", "3",
                "--factors", "1.5")
    assert run.returncode == 0 and "B x 1.5" in run.stdout
