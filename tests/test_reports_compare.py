"""compare.csv's statistics and verdicts: on the real A/A run (two commits with identical
code, 6 interleaved rounds of 3 samples, recorded on the shared 2-core machine), with a
slowdown injected into its samples, and on synthetic cases for every verdict branch."""
import math

import numpy as np
import pandas as pd
import pytest

from fixtures.compare_variants import (COMMIT_A, COMMIT_B, RESULTS, ROUND_SIZE, copy_compare,
                                       quieten, scale)
from scipy_layers.reports import read_results
from scipy_layers.reports import stats
from scipy_layers.reports.compare import RESULT_COLUMNS, compare_table, native_control

PAIR = (COMMIT_A, COMMIT_B)
CHANGED = {"faster", "slower"}


def timed(compare):
    return compare[(compare["unit"] == "seconds") & (compare["status_a"] == "ok")
                   & (compare["status_b"] == "ok")]


@pytest.fixture(scope="module")
def real():
    return read_results(RESULTS, with_samples=True)


def keep_rounds(table, count):
    """The same run cut to its first ``count`` rounds per commit."""
    return table.assign(samples=[s[:count * ROUND_SIZE] if isinstance(s, np.ndarray) else s
                                 for s in table["samples"]])


# --- A/A and power on the real run --------------------------------------------------

@pytest.mark.parametrize("rounds", [2, 4, 6])
def test_identical_code_gets_at_most_one_percent_faster_or_slower(real, rounds):
    compare = compare_table(keep_rounds(real, rounds), PAIR, round_size=ROUND_SIZE)
    cases = timed(compare)
    assert len(cases) == 54 and (cases["rounds_a"] == rounds).all()
    called = cases["verdict"].isin(CHANGED).sum()
    assert called <= 0.01 * len(cases)
    # The control counts the same thing among the native cases.
    changed, total = native_control(compare)
    assert total == (cases["implementation"] == "native").sum() == 22
    assert changed == cases.loc[cases["implementation"] == "native", "verdict"].isin(CHANGED).sum()


def test_every_figure_is_there_for_a_timed_case(real):
    compare = compare_table(real, PAIR, round_size=ROUND_SIZE)
    assert list(compare.columns[-len(RESULT_COLUMNS):]) == RESULT_COLUMNS
    cases = timed(compare)
    for column in ("ratio", "ci_low", "ci_high", "p_value", "q_value", "p_rank"):
        assert cases[column].notna().all(), column
    assert (cases["ci_low"] <= cases["ratio"]).all() and (cases["ratio"] <= cases["ci_high"]).all()
    assert (cases["q_value"] >= cases["p_value"]).all()
    row = cases.iloc[0]
    assert row["ratio"] == pytest.approx(row["value_b"] / row["value_a"])
    scipy = cases[cases["implementation"] != "native"]
    assert scipy["native_ratio_change"].notna().all()
    assert cases.loc[cases["implementation"] == "native", "native_ratio_change"].isna().all()


def with_b_scaled(tmp_path, factor, quiet=None, implementations=None):
    results = copy_compare(tmp_path / "fixture")
    if quiet is not None:
        quieten(results, quiet)
    scale(results, COMMIT_B, factor, implementations)
    return compare_table(read_results(results, with_samples=True), PAIR, round_size=ROUND_SIZE)


def test_a_20_percent_slowdown_in_the_real_samples_is_called_slower(tmp_path):
    """Power on the recorded noise: of the cases that are not inconclusive, >= 95% are
    called slower. (That machine was loaded: most cases stay inconclusive, honestly.)"""
    cases = timed(with_b_scaled(tmp_path, 1.2))
    decided = cases[cases["verdict"] != "inconclusive"]
    assert (decided["verdict"] == "slower").sum() >= 0.95 * len(decided)
    assert not cases["verdict"].isin(["faster", "unchanged"]).any()


def test_a_20_percent_slowdown_on_a_quiet_machine_is_called_slower_nearly_everywhere(tmp_path):
    """The same files with samples as quiet as a machine left alone (3% between rounds):
    the test then has power, and still calls nothing but slower."""
    cases = timed(with_b_scaled(tmp_path, 1.2, quiet=0.03))
    decided = cases[cases["verdict"] != "inconclusive"]
    assert len(decided) >= 0.8 * len(cases)
    assert (decided["verdict"] == "slower").sum() >= 0.95 * len(decided)
    control = timed(with_b_scaled(tmp_path / "aa", 1.0, quiet=0.03))
    assert control["verdict"].isin(CHANGED).sum() <= 0.01 * len(control)
    assert (control["verdict"] == "unchanged").any()  # equivalence is shown where it can be


def test_drift_cancels_in_the_ratio_to_native(tmp_path):
    """Every B timing 30% slower (the machine, not the code): each scipy case is called
    slower, but its ratio to native did not change."""
    cases = timed(with_b_scaled(tmp_path, 1.3, quiet=0.02))
    scipy = cases[cases["implementation"] != "native"]
    assert (scipy["verdict"] == "slower").mean() > 0.9
    assert scipy["native_ratio_change"].between(0.85, 1.15).all()
    covers = (scipy["native_ratio_change_low"] <= 1) & (scipy["native_ratio_change_high"] >= 1)
    assert covers.mean() > 0.9
    only_scipy = timed(with_b_scaled(tmp_path / "s", 1.3, quiet=0.02,
                                     implementations={"scipy", "numpy-tutorial"}))
    moved = only_scipy[only_scipy["implementation"] != "native"]
    assert (moved["native_ratio_change_low"] > 1).mean() > 0.9


# --- every verdict branch, on synthetic cases ----------------------------------------

def case_rows(name, a_samples, b_samples, implementation="scipy", unit="seconds",
              status=("ok", "ok"), kind="timings", measurement="forward", dtype="float32",
              env=("", "")):
    rows = []
    for commit, samples, state, cpu in zip(PAIR, (a_samples, b_samples), status, env):
        samples = None if samples is None else np.asarray(samples, dtype=float)
        value = math.nan if state == "skipped" or samples is None else float(np.median(samples))
        rows.append(dict(layer="conv2d", kind=kind, benchmark=f"bench_conv2d.C.{name}",
                         measurement=measurement, unit=unit, implementation=implementation,
                         size=name, kernel="", dtype=dtype, device="", threads="1", quantity="",
                         layout="", values="", machine="m", env="e", commit=commit,
                         value=value, status=state, samples=samples, cpu=cpu, blas="",
                         thread_limits="", overrides="", versions=""))
    return rows


def rounds_of(center, spread, rounds=4, seed=0):
    rng = np.random.default_rng(seed)
    return (center * np.exp(spread * rng.standard_normal((rounds, 1))
                            + spread / 5 * rng.standard_normal((rounds, ROUND_SIZE)))).ravel()


def verdicts(rows, threshold=0.05, round_size=ROUND_SIZE):
    compare = compare_table(pd.DataFrame(rows), PAIR, threshold=threshold, round_size=round_size)
    return compare.set_index("size")


def background(count=20):
    """Unremarkable cases that give the variance prior something to learn from."""
    return [r for i in range(count)
            for r in case_rows(f"bg{i}", rounds_of(1e-3, 0.02, seed=i), rounds_of(1e-3, 0.02, seed=100 + i))]


def test_each_verdict_branch():
    rows = background() + case_rows("slow", rounds_of(1e-3, 0.02, seed=1), rounds_of(1.3e-3, 0.02, seed=2))
    rows += case_rows("fast", rounds_of(1e-3, 0.02, seed=3), rounds_of(0.7e-3, 0.02, seed=4))
    rows += case_rows("same", rounds_of(1e-3, 0.002, seed=5), rounds_of(1e-3, 0.002, seed=6))
    rows += case_rows("noisy", rounds_of(1e-3, 0.5, seed=7), rounds_of(1.3e-3, 0.5, seed=8))
    rows += case_rows("gone", rounds_of(1e-3, 0.02), None)[:1]
    rows += case_rows("broke", rounds_of(1e-3, 0.02), None, status=("ok", "failed"))
    rows += case_rows("n/a", None, None, status=("skipped", "skipped"))
    rows += case_rows("memory", [5e6], [6e6], unit="bytes", measurement="peak memory")
    rows += case_rows("moved", rounds_of(1e-3, 0.02, seed=9), rounds_of(1.3e-3, 0.02, seed=10),
                      env=("AMD fam 25 model 1 avx2", "AMD fam 25 model 17 avx512f"))
    table = verdicts(rows)
    assert table.loc["slow", "verdict"] == "slower" and table.loc["slow", "ci_low"] > 1
    assert table.loc["fast", "verdict"] == "faster" and table.loc["fast", "ci_high"] < 1
    assert table.loc["same", "verdict"] == "unchanged"
    assert 1 / 1.05 <= table.loc["same", "ci_low"] <= table.loc["same", "ci_high"] <= 1.05
    assert table.loc["noisy", "verdict"] == "inconclusive"
    assert table.loc["gone", "verdict"] == "missing" and table.loc["gone", "status_b"] == "missing"
    assert table.loc["broke", "verdict"] == "failed"
    assert table.loc["n/a", "verdict"] == "skipped"
    assert table.loc["memory", "verdict"] == "" and table.loc["memory", "ratio"] == pytest.approx(1.2)
    assert table.loc["moved", "verdict"] == "environment changed"
    assert bool(table.loc["moved", "env_differs"]) and "cpu: AMD" in table.loc["moved", "env_difference"]
    assert pd.isna(table.loc["slow", "env_differs"])  # no records: unknown, not "same"


def test_a_time_of_zero_at_a_is_inconclusive_not_left_without_a_verdict():
    rows = background() + case_rows("zero", [0.0] * 12, rounds_of(1e-3, 0.02))
    rows += case_rows("zeros", [0.0] * 12, [0.0] * 12)
    table = verdicts(rows)
    assert (table.loc[["zero", "zeros"], "verdict"] == "inconclusive").all()


def test_the_threshold_decides_what_is_too_small_to_matter():
    rows = background() + case_rows("small", rounds_of(1e-3, 0.003, seed=1, rounds=6),
                                    rounds_of(1.03e-3, 0.003, seed=2, rounds=6))
    assert verdicts(rows, threshold=0.05).loc["small", "verdict"] == "unchanged"
    assert verdicts(rows, threshold=0.02).loc["small", "verdict"] == "slower"


def test_without_the_round_size_every_commit_is_one_round_and_nothing_is_called():
    rows = background() + case_rows("slow", rounds_of(1e-3, 0.02, seed=1), rounds_of(1.5e-3, 0.02, seed=2))
    table = verdicts(rows, round_size=None)
    assert (table["rounds_a"] == 1).all()
    assert set(table["verdict"]) == {"inconclusive"}


def test_many_identical_cases_on_two_rounds_raise_no_false_alarm():
    """276 A/A cases (the default grid's count), 2 rounds of 3, noise scales differing
    5x between cases, heavy-tailed rounds: the calibration the moderated test promises."""
    rng = np.random.default_rng(7)
    rows = []
    for i in range(276):
        spread = 0.03 * math.exp(rng.normal(0, 0.8))
        a, b = (1e-3 * np.exp(spread * rng.standard_t(3, (2, 1)) + spread / 3
                              * rng.standard_normal((2, 3))).ravel() for _ in range(2))
        rows += case_rows(f"c{i}", a, b, implementation="native" if i % 2 else "scipy")
    table = verdicts(rows)
    assert table["verdict"].isin(CHANGED).sum() <= 2  # <= 1%


# --- the pieces ----------------------------------------------------------------------

def test_benjamini_hochberg_by_hand():
    p = np.array([0.01, 0.04, 0.03, 0.005, np.nan])
    # sorted 0.005, 0.01, 0.03, 0.04 -> 0.005*4/1, 0.01*4/2, 0.03*4/3, 0.04*4/4, made monotone
    assert stats.benjamini_hochberg(p)[:4] == pytest.approx([0.02, 0.04, 0.04, 0.02])
    assert np.isnan(stats.benjamini_hochberg(p)[4])


def test_rounds_are_consecutive_blocks_of_the_round_size():
    samples = np.arange(1.0, 8.0)
    assert [list(r) for r in stats.rounds(samples, 3)] == [[1, 2, 3], [4, 5, 6], [7]]
    assert [list(r) for r in stats.rounds(samples, None)] == [list(samples)]
    assert stats.log_round_medians(samples, 3) == pytest.approx(np.log([2, 5, 7]))


def test_the_variance_prior_is_recovered():
    rng = np.random.default_rng(3)
    s0, d0, df = 0.04, 8.0, 4
    true = s0 * d0 / rng.chisquare(d0, 4000)          # scaled inverse chi-square
    observed = true * rng.chisquare(df, 4000) / df    # each case's sample variance
    fitted_s0, fitted_d0 = stats.fit_prior(observed, np.full(4000, df))
    assert fitted_s0 == pytest.approx(s0, rel=0.15) and fitted_d0 == pytest.approx(d0, rel=0.35)
    equal = 0.04 * rng.chisquare(df, 4000) / df
    assert stats.fit_prior(equal, np.full(4000, df))[1] > 50  # no spread beyond chance


def test_the_rank_test_of_round_medians_is_exact():
    a, b = np.log([1.0, 1.1, 1.2, 1.3]), np.log([2.0, 2.1, 2.2, 2.3])
    assert stats.rank_p(a, b) == pytest.approx(2 / 70)
    assert stats.rank_p(a[:2], b[:2]) == pytest.approx(1 / 3)


def gradient_rows(name, a, b, status=("ok", "ok"), dtype="float64", measurement="max rel error of grad_input"):
    return case_rows(name, [a], [b], unit="relative error", kind="gradients", status=status,
                     measurement=measurement, dtype=dtype)


def test_gradient_errors_that_jump_are_flagged_whatever_the_speed():
    rows = background()
    rows += gradient_rows("crossed", 1e-12, 1e-9)                 # float64 tolerance 1e-10
    rows += gradient_rows("grew", 1e-13, 5e-12)                   # 50x, above 1% of 1e-10
    rows += gradient_rows("rounding", 1e-16, 5e-15)               # 50x, but below the floor
    rows += gradient_rows("inf", 1e-16, math.inf)
    rows += gradient_rows("nan", 1e-16, None, status=("ok", "skipped"))
    rows += gradient_rows("raised", 1e-16, None, status=("ok", "failed"))
    rows += gradient_rows("better", 1e-9, 1e-16)
    rows += gradient_rows("steady", 3e-16, 4e-16)
    rows += gradient_rows("abs-grew", 1e-16, 1e-10, measurement="max abs error of grad_input")
    rows += gradient_rows("f32", 1e-7, 2e-4, dtype="float32")     # float32 tolerance 1e-4
    mismatches = "nonfinite mismatches of grad_input"
    rows += gradient_rows("new-mismatch", 0, 3, measurement=mismatches)
    rows += gradient_rows("more-mismatch", 3, 300, measurement=mismatches)
    rows += gradient_rows("fewer-mismatch", 300, 3, measurement=mismatches)
    table = verdicts(rows)
    flagged = table["gradient_regression"]
    expected = {"crossed", "grew", "inf", "nan", "raised", "f32", "new-mismatch", "more-mismatch"}
    assert set(flagged[flagged.fillna(False).astype(bool)].index) == expected
    assert not flagged[["rounding", "better", "steady", "abs-grew", "fewer-mismatch"]].any()
    assert "in 3 entries" in table.loc["new-mismatch", "gradient_change"]
    assert "more entries (3 -> 300)" in table.loc["more-mismatch", "gradient_change"]
    assert "crossed the tolerance 1e-10" in table.loc["crossed", "gradient_change"]
    assert table.loc["grew", "gradient_change"].endswith("grew 50x")
    assert "became non-finite" in table.loc["inf", "gradient_change"]
    assert table.loc["rounding", "gradient_change"] == ""
    assert pd.isna(table.loc["bg0", "gradient_regression"])  # not a gradient row
    assert table.loc["crossed", "verdict"] == ""  # speed verdicts are for times only


def test_a_rel_error_from_nan_at_a_to_above_the_tolerance_at_b_is_a_regression():
    """Hostile pass 99: since the suite's version 4 a quantity that compared nothing is
    NaN (asv's skipped) where it read 0.0; NaN at A and failing at B was "crossed the
    tolerance" before and passed the gate after. A NaN at B after a number at A is
    flagged as ever, its note naming "nothing compared" among the causes. The tutorial's
    knowingly wrong gradient is above the tolerance wherever it compares anything: not
    flagged (hostile pass 102: a case newly run at B failed the gate on it)."""
    rows = background()
    rows += gradient_rows("na-fail", None, 0.5, status=("skipped", "ok"))
    rows += gradient_rows("na-inf", None, math.inf, status=("skipped", "ok"))
    rows += gradient_rows("na-f32", None, 2e-4, status=("skipped", "ok"), dtype="float32")
    rows += gradient_rows("na-pass", None, 1e-16, status=("skipped", "ok"))
    rows += gradient_rows("na-abs", None, 0.5, status=("skipped", "ok"),
                          measurement="max abs error of grad_input")
    rows += gradient_rows("na-na", None, None, status=("skipped", "skipped"))
    rows += gradient_rows("num-na", 1e-16, None, status=("ok", "skipped"))
    tutorial = gradient_rows("na-tutorial", None, 0.998, status=("skipped", "ok"))
    for row in tutorial:  # (its gradient is knowingly wrong: above the tolerance, always)
        row.update(layer="fft_abs", implementation="numpy-tutorial")
    rows += tutorial
    table = verdicts(rows)
    flagged = table["gradient_regression"].fillna(False).astype(bool)
    assert set(flagged[flagged].index) == {"na-fail", "na-inf", "na-f32", "num-na"}
    assert table.loc["na-fail", "gradient_change"] == (
        "nan -> 0.5: no figure at A (NaN: nothing compared, or skipped), above the tolerance "
        "1e-10 at B")
    assert "above the tolerance 0.0001 at B" in table.loc["na-f32", "gradient_change"]
    assert table.loc["num-na", "gradient_change"] == (
        "1e-16 -> nan: no figure at B (NaN: nothing compared, a NaN error, or a skipped case)")


def _median_exactly(samples, median):
    """``samples`` (an odd count) rescaled so that their median is exactly ``median``."""
    samples = np.asarray(samples, dtype=float)
    return samples / np.median(samples) * median


def test_a_change_of_exactly_the_threshold_is_called():
    """reports/README.md: slower is ratio >= 1 + threshold, faster ratio <= 1 / (1 +
    threshold) (q <= 0.05 both): a change of exactly the threshold is no longer "under"
    it, and the faster bound is the slower one's reciprocal, not 1 - threshold."""
    rows = background()
    for name, seed, ratio in (("up", 1, 1 + 0.05), ("down", 3, 1 / (1 + 0.05)),
                              ("between", 5, 0.951)):
        a = _median_exactly(rounds_of(1e-3, 0.002, rounds=5, seed=seed), 1.0)
        b = _median_exactly(rounds_of(1e-3, 0.002, rounds=5, seed=seed + 1), ratio)
        rows += case_rows(name, a, b)
    table = verdicts(rows)
    assert table.loc["up", "ratio"] == 1.05 and table.loc["up", "q_value"] <= 0.05
    assert table.loc["up", "verdict"] == "slower"
    assert table.loc["down", "ratio"] == 1 / 1.05 and table.loc["down", "q_value"] <= 0.05
    assert table.loc["down", "verdict"] == "faster"
    # 0.951 is beyond 1 / 1.05 = 0.952...: faster (below 1 - 0.05 = 0.95 it is not)
    assert table.loc["between", "q_value"] <= 0.05
    assert table.loc["between", "verdict"] == "faster"


def test_an_error_at_the_tolerance_at_a_and_above_it_at_b_crossed_it():
    """gradients.csv passes max_rel <= tol, so an error of exactly the tolerance at A
    passed there and one above it at B fails: "crossed the tolerance", though it grew
    only 2x (under the tenfold jump)."""
    rows = background() + gradient_rows("at-tolerance", 1e-10, 2e-10)   # float64: 1e-10
    rows += gradient_rows("stays-at", 1e-10, 1e-10)
    table = verdicts(rows)
    assert bool(table.loc["at-tolerance", "gradient_regression"])
    assert "crossed the tolerance 1e-10" in table.loc["at-tolerance", "gradient_change"]
    assert not table.loc["stays-at", "gradient_regression"]


def test_only_a_timing_now_skipped_is_a_now_skipped_finding():
    """The gate's "now skipped" is for numpy/scipy timings: a peak-memory track that ran
    at A and is NaN at B gets the verdict in compare.csv but stops no pull request, and a
    gradient error that turned NaN is one finding, its gradient regression, not two."""
    from scipy_layers.reports.gate import findings, new_skips
    rows = background()
    rows += case_rows("timing", rounds_of(1e-3, 0.02), None, status=("ok", "skipped"))
    rows += case_rows("memory", [5e6], None, unit="bytes", measurement="peak memory",
                      status=("ok", "skipped"))
    rows += gradient_rows("gone-nan", 1e-16, None, status=("ok", "skipped"))
    compare = compare_table(pd.DataFrame(rows), PAIR, round_size=ROUND_SIZE)
    table = compare.set_index("size")
    assert (table.loc[["timing", "memory", "gone-nan"], "verdict"] == "now skipped").all()
    assert list(new_skips(compare)["size"]) == ["timing"]
    lines = findings(compare)
    assert len(lines) == 2
    assert lines[0].startswith("now skipped: conv2d scipy forward timing ")
    assert lines[1].startswith("gradient regression: conv2d scipy max rel error of grad_input "
                               "gone-nan float64 (m): 1e-16 -> nan: no figure at B")


def test_a_gate_with_some_timings_in_a_changed_environment_still_compares_the_rest():
    """The gate refuses only when every timing measured at both commits ran in another
    environment (nothing was compared); one machine's changed CPU among others leaves the
    rest compared, and the gate judges them."""
    from scipy_layers.reports.gate import only_changed_environments
    moved = case_rows("moved", rounds_of(1e-3, 0.02, seed=9), rounds_of(1e-3, 0.02, seed=10),
                      env=("AMD fam 25 model 1 avx2", "AMD fam 25 model 17 avx512f"))
    for row in moved:
        row["machine"] = "other"
    compare = compare_table(pd.DataFrame(background() + moved), PAIR, round_size=ROUND_SIZE)
    assert (compare["verdict"] == "environment changed").sum() == 1
    assert not only_changed_environments(compare)
    alone = compare_table(pd.DataFrame(moved), PAIR, round_size=ROUND_SIZE)
    assert only_changed_environments(alone)


def test_the_variance_prior_by_hand_on_a_few_cases():
    """limma's fitFDist on four cases: the spread of log s^2 is their sample variance
    (n - 1 in the denominator, as R's var()), less what chance alone gives (the suite
    passed with numpy's default, n, which the 4000-case check cannot tell apart)."""
    from scipy import special
    variances, dfs = np.array([0.01, 0.04, 0.09, 0.5]), np.full(4, 2.0)
    e = np.log(variances) - special.digamma(1.0) + np.log(1.0)
    excess = np.sum((e - e.mean()) ** 2) / 3 - float(special.polygamma(1, 1.0))
    d0 = 2 * stats.trigamma_inverse(excess)
    s0 = math.exp(e.mean() + special.digamma(d0 / 2) - math.log(d0 / 2))
    assert stats.fit_prior(variances, dfs) == pytest.approx((s0, d0))


def test_each_machine_borrows_its_noise_scale_from_its_own_cases_only():
    """The variance prior is fitted per machine and env (and duration group): a noisy
    machine's cases beside a quiet one's leave the quiet one's intervals and p-values
    as they are without them (the suite passed with the groups keyed on the duration
    alone, which merged machines: a hostile pass)."""
    def on(machine, rows):
        return [{**r, "machine": machine} for r in rows]

    quiet = on("quiet", background() + case_rows("change", rounds_of(1e-3, 0.02, seed=1),
                                                 rounds_of(1.04e-3, 0.02, seed=2)))
    noisy = on("noisy", [r for i in range(20) for r in case_rows(
        f"loud{i}", rounds_of(1e-3, 0.4, seed=200 + i), rounds_of(1e-3, 0.4, seed=300 + i))])
    alone = verdicts(quiet)
    beside = verdicts(quiet + noisy)
    columns = ["ci_low", "ci_high", "p_value"]
    assert beside.loc[alone.index, columns].to_numpy() == pytest.approx(alone[columns].to_numpy())
    assert beside.loc["change", "ci_high"] - beside.loc["change", "ci_low"] < 0.1


def test_a_round_size_equal_to_the_sample_count_is_one_round_a_commit_not_an_error():
    """asv -a rounds=1 -a repeat=N stores N samples a case: --round-size N is its own
    round size (the suite passed with check_round_size refusing a round size equal to
    the longest sample count: a hostile pass); one more is refused."""
    from scipy_layers.reports.rounds import check_round_size
    from scipy_layers.reports.errors import ReportError
    rows = pd.DataFrame(case_rows("one", [1e-3, 1.1e-3, 0.9e-3], [1e-3, 1.2e-3, 1e-3]))
    check_round_size(rows, PAIR, 3)
    assert (compare_table(rows, PAIR, round_size=3)["rounds_a"] == 1).all()
    with pytest.raises(ReportError, match="--round-size 4 is more than the 3 samples"):
        check_round_size(rows, PAIR, 4)


def test_summary_lists_the_largest_change_first():
    """summary.md's "Slower" table leads with the largest B/A (the suite passed with the
    ratios sorted ascending), its "Faster" table with the smallest (it led with the
    smallest gain, 0.9 before 0.5: hostile pass 106)."""
    from scipy_layers.reports.comparison import comparison_markdown
    rows = background() + case_rows("slow13", rounds_of(1e-3, 0.02, seed=1),
                                    rounds_of(1.3e-3, 0.02, seed=2))
    rows += case_rows("slow16", rounds_of(1e-3, 0.02, seed=3), rounds_of(1.6e-3, 0.02, seed=4))
    rows += case_rows("fast09", rounds_of(1e-3, 0.02, seed=5), rounds_of(0.9e-3, 0.02, seed=6))
    rows += case_rows("fast05", rounds_of(1e-3, 0.02, seed=7), rounds_of(0.5e-3, 0.02, seed=8))
    compare = compare_table(pd.DataFrame(rows), PAIR, round_size=ROUND_SIZE)
    assert set(compare.loc[compare["size"].str.startswith("slow"), "verdict"]) == {"slower"}
    assert set(compare.loc[compare["size"].str.startswith("fast"), "verdict"]) == {"faster"}
    text = "\n".join(comparison_markdown(compare, 0.05))
    slower = text[text.index("### Slower (2)"):text.index("### Faster")]
    assert slower.index("slow16") < slower.index("slow13")
    faster = text[text.index("### Faster (2)"):text.index("### Native control")]
    assert faster.index("fast05") < faster.index("fast09")


def test_the_pooled_variance_and_the_t_quantile_by_hand():
    """within_variance divides the squares about each commit's mean by R_a + R_b - 2, and
    the interval is the two-sided 95% one (the suite passed with the squares over df + 1,
    and with the one-sided 95% quantile, a 90% interval)."""
    variance, df = stats.within_variance(np.array([0.0, 0.2]), np.array([0.1, 0.3]))
    assert (variance, df) == (pytest.approx(0.02), 2)
    assert stats.quantile(math.inf) == pytest.approx(1.959964, abs=1e-6)
    assert stats.quantile(4) == pytest.approx(2.776445, abs=1e-6)


def test_no_native_timing_compared_gives_no_false_alarm_rate():
    """'0 of 0 native timings ...' has no percentage (the suite passed with '(0.0%)')."""
    from scipy_layers.reports.comparison import comparison_markdown
    compare = compare_table(pd.DataFrame(background(2)), PAIR, round_size=ROUND_SIZE)
    text = "\n".join(comparison_markdown(compare, 0.05))
    assert "0 of 0 native timings got a faster or slower verdict. " in text
