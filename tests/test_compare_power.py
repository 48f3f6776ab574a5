"""tools/compare_power.py: bad commits, round sizes and factors are one-line errors (exit
2), never a traceback or a silently wrong pick."""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fixtures.compare_variants import (COMMIT_A, COMMIT_B, RESULTS, copy_compare, each_case, edit,
                                       results_file)

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import compare_power  # noqa: E402


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
    ([COMMIT_A[:6], COMMIT_B[:6], "--round-size", "3", "--factors", "0"], "positive finite"),
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


# mutation pass 110: what is scaled, and what is counted


def test_only_b_s_timings_of_the_numpy_scipy_implementations_are_scaled():
    from scipy_layers.reports import read_results
    table = read_results(RESULTS, with_samples=True)
    scaled = compare_power.with_b_scaled(table, COMMIT_B, 2.0)
    wanted = ((table["commit"] == COMMIT_B) & (table["unit"] == "seconds")
              & (table["implementation"] != "native") & table["value"].notna())
    assert wanted.any() and (table["implementation"] == "native").any()
    assert np.allclose(scaled.loc[wanted, "value"], 2 * table.loc[wanted, "value"])
    kept = ~wanted & table["value"].notna()
    assert (scaled.loc[kept, "value"] == table.loc[kept, "value"]).all()
    for before, after, scale in zip(table["samples"], scaled["samples"], np.where(wanted, 2, 1)):
        if isinstance(before, np.ndarray):
            assert np.allclose(after, scale * before, equal_nan=True)


def test_verdict_counts_classes_and_shares():
    compare = pd.DataFrame({
        "unit": "seconds", "status_a": "ok", "status_b": "ok",
        "implementation": ["scipy"] * 4 + ["native", "scipy"],
        "value_a": [5e-5] * 4 + [5e-5, 1e-4],  # (1e-4: the next class's lower bound)
        "verdict": ["slower", "slower", "unchanged", "inconclusive", "slower", "faster"]})
    counts = compare_power.verdict_counts(compare, with_native=False).set_index("class")
    assert counts.loc["<100us", ["cases", "slower", "unchanged", "inconclusive"]].tolist() == [4, 2, 1, 1]
    assert counts.loc["<100us", "slower/decided"] == pytest.approx(2 / 3)
    assert counts.loc["<100us", "slower/all"] == pytest.approx(1 / 2)
    assert counts.loc["100us-1ms", ["cases", "faster"]].tolist() == [1, 1]
    assert counts.loc["all", "cases"] == 5
    assert compare_power.verdict_counts(compare, with_native=True).set_index("class").loc[
        "all", ["cases", "slower"]].tolist() == [6, 3]


def test_b_is_slowed_and_native_counted_under_x_1_only(capsys):
    assert compare_power.main([COMMIT_A[:6], COMMIT_B[:6], "--results", str(RESULTS),
                               "--round-size", "3", "--factors", "2"]) == 0
    blocks = {}
    for block in capsys.readouterr().out.split("\nB x ")[1:]:
        factor, *lines = block.strip().splitlines()
        header = lines[0].split()
        blocks[factor.split()[0]] = dict(zip(header, lines[-1].split()))  # the "all" row
    native = 22  # the fixture's native timings: "native control: 0 of 22"
    assert int(blocks["1"]["cases"]) - int(blocks["2"]["cases"]) == native
    assert int(blocks["2"]["slower"]) > 0 and blocks["2"]["faster"] == "0"


def test_samples_of_one_commit_in_several_counts_are_refused_as_the_report_refuses_them(tmp_path):
    """One case of A holding twice the samples (another run's, or one process's timed to
    asv's budget) is not rounds of --round-size 3, though 3 divides both counts: the
    power would be measured on fake rounds (hostile pass 150's check, shared)."""
    results = copy_compare(tmp_path / "fixture")

    def doubled(data):
        columns = data["result_columns"]
        _, row, index, _ = next(each_case(data))
        samples = row[columns.index("samples")]
        samples[index] = samples[index] * 2
    edit(results_file(results, COMMIT_A), doubled)
    run = power(COMMIT_A[:6], COMMIT_B[:6], "--results", str(results), "--round-size", "3")
    assert run.returncode == 2 and run.stdout == ""
    assert run.stderr.count("\n") == 1 and "different numbers of samples (18, 36)" in run.stderr
