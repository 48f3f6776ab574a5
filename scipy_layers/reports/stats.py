"""Statistics of a two-commit comparison, with rounds as the unit of replication.

asv's ``--interleave-rounds -a rounds=R -a repeat=N --record-samples`` stores a case's
samples as its rounds one after another (round k is samples[(k-1)N:kN]; every round a
fresh process). Most of the noise lies between processes, not between the samples of
one: on the 2-core machine one case's rounds differed by 2.5x while each round's three
samples agreed within 5%. So a round's median is one observation, and a case has R of
them per commit.

Why not the textbook tools, with R = 2-6 rounds per commit:
- a bootstrap over rounds sees at most a handful of distinct resamples; with 2 rounds its
  95% interval is the span of the two round medians, which leaves out the truth about a
  third of the time;
- a rank test over the samples (asv compare's Mann-Whitney U) treats samples as
  independent and calls process-to-process noise a change (the issue's A/A run: 9.5% of
  cases at factor 1.2);
- a rank test over round medians is exact and honest, but cannot reach p < 0.05 below 4
  rounds per commit (2 rounds: p >= 1/3). It is reported (``p_rank``), not relied on.

What is used: log(round median) = commit mean + round noise; the difference of the two
commits' log medians over its standard error, with the round-to-round variance
moderated across the comparison's cases of similar duration (Smyth 2004, limma's
empirical Bayes: each case's own variance, from 2R-2 degrees of freedom, is pulled
towards the variance comparable cases show, which adds the prior's degrees of freedom).
This is what makes 2 rounds usable: a case borrows the scale of its noise from ~50
others, not from its own 2 rounds alone. p-values are two-sided t tests on those
degrees of freedom; the confidence interval of the ratio is the matching t interval,
exponentiated; Benjamini-Hochberg turns the p-values of all timing cases into q-values.
"""
from __future__ import annotations

import functools
import math

import numpy as np
from scipy import special

CONFIDENCE = 0.95
# Cases grouped by duration for the variance prior (seconds): sub-100 us cases are the
# noisiest. A group with fewer cases than MIN_GROUP borrows from all cases instead.
DURATION_EDGES = (1e-4, 1e-3, 1e-2)
MIN_GROUP = 10
_TINY = 1e-12  # floor for a variance of identical round medians (log of 0)


def rounds(samples, round_size: int | None) -> list[np.ndarray]:
    """A case's samples split into its rounds (a trailing short round is its own round).
    Without a round size every sample of the commit counts as one round."""
    if samples is None or len(samples) == 0:
        return []
    samples = np.asarray(samples, dtype=float)
    if not round_size:
        return [samples]
    return [samples[i:i + round_size] for i in range(0, len(samples), round_size)]


def log_round_medians(samples, round_size: int | None) -> np.ndarray:
    medians = np.array([np.median(r) for r in rounds(samples, round_size)])
    with np.errstate(divide="ignore"):
        return np.log(medians)


def within_variance(log_a: np.ndarray, log_b: np.ndarray) -> tuple[float, int]:
    """Pooled variance of the log round medians about each commit's mean, and its
    degrees of freedom (R_a + R_b - 2; 0 when neither commit has two rounds)."""
    df = max(len(log_a) - 1, 0) + max(len(log_b) - 1, 0)
    if df == 0 or not (np.isfinite(log_a).all() and np.isfinite(log_b).all()):
        return math.nan, 0
    squares = sum(float(((x - x.mean()) ** 2).sum()) for x in (log_a, log_b) if len(x) > 1)
    return max(squares / df, _TINY), df


def trigamma_inverse(x: float) -> float:
    """y with trigamma(y) = x, by Newton's method (limma's trigammaInverse)."""
    if x > 1e7:
        return 1 / math.sqrt(x)
    if x < 1e-6:
        return 1 / x
    y = 0.5 + 1 / x
    for _ in range(50):
        tri = float(special.polygamma(1, y))
        step = tri * (1 - tri / x) / float(special.polygamma(2, y))
        y += step
        if -step / y < 1e-8:
            break
    return y


def fit_prior(variances: np.ndarray, dfs: np.ndarray) -> tuple[float, float]:
    """(s0^2, d0): the scaled inverse chi-square prior of the cases' variances that
    their sample variances imply (limma's fitFDist, by moments of log s^2). d0 = inf
    when the variances differ no more than chance alone makes them; (nan, 0) without data."""
    keep = (dfs > 0) & np.isfinite(variances)
    variances, dfs = variances[keep], dfs[keep].astype(float)
    if len(variances) < 2:
        return (float(variances[0]), 0.0) if len(variances) else (math.nan, 0.0)
    e = np.log(variances) - special.digamma(dfs / 2) + np.log(dfs / 2)
    mean = float(e.mean())
    excess = float(e.var(ddof=1) - special.polygamma(1, dfs / 2).mean())
    if excess <= 0:
        return math.exp(mean), math.inf
    d0 = 2 * trigamma_inverse(excess)
    return math.exp(mean + special.digamma(d0 / 2) - math.log(d0 / 2)), d0


def duration_group(median_seconds: float) -> int:
    return int(np.searchsorted(DURATION_EDGES, median_seconds))


def moderated(variance: float, df: int, prior: tuple[float, float]) -> tuple[float, float]:
    """(posterior variance, degrees of freedom) of one case."""
    s0, d0 = prior
    if math.isnan(s0) or d0 == 0:
        return (variance, df) if df > 0 else (math.nan, 0.0)
    if math.isinf(d0):
        return s0, math.inf
    if df == 0:
        return s0, d0
    return (d0 * s0 + df * variance) / (d0 + df), d0 + df


@functools.lru_cache(maxsize=1)
def _scipy_stats():
    """scipy.stats, imported on first use (~1 s): a report that stops at a bad results
    directory, or compares nothing, never needs it."""
    from scipy import stats
    return stats


def quantile(df: float) -> float:
    """The two-sided CONFIDENCE quantile of t with ``df`` degrees of freedom (normal at inf)."""
    stats = _scipy_stats()
    dist = stats.norm if math.isinf(df) else stats.t(df)
    return float(dist.ppf(0.5 + CONFIDENCE / 2))


def t_interval(log_ratio: float, variance: float, df: float, n_a: int, n_b: int):
    """(p, low, high) of the ratio exp(log_ratio): two-sided t test and the CONFIDENCE
    t interval; NaNs where the variance is unknown."""
    if not (df > 0 and np.isfinite(variance) and np.isfinite(log_ratio)):
        return math.nan, math.nan, math.nan
    se = math.sqrt(variance * (1 / n_a + 1 / n_b))
    stats = _scipy_stats()
    dist = stats.norm if math.isinf(df) else stats.t(df)
    p = float(2 * dist.sf(abs(log_ratio) / se)) if se > 0 else (0.0 if log_ratio else 1.0)
    half = quantile(df) * se
    return p, math.exp(log_ratio - half), math.exp(log_ratio + half)


def rank_p(log_a: np.ndarray, log_b: np.ndarray) -> float:
    """Two-sided Mann-Whitney U p-value of the round medians (exact for small counts)."""
    if len(log_a) == 0 or len(log_b) == 0:
        return math.nan
    if len(log_a) + len(log_b) <= 2:
        return 1.0
    return float(_scipy_stats().mannwhitneyu(log_b, log_a, alternative="two-sided").pvalue)


def benjamini_hochberg(p: np.ndarray) -> np.ndarray:
    """q-values of the finite p-values (NaN stays NaN)."""
    q = np.full(len(p), np.nan)
    finite = np.isfinite(p)
    if finite.any():
        q[finite] = _scipy_stats().false_discovery_control(p[finite], method="bh")
    return q
