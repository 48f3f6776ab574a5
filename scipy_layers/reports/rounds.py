"""The checks that a comparison's timings can be cut into rounds of ``--round-size``
(asv's ``-a repeat=N``: each commit's samples are R rounds of N), made before anything
is written: a size that is not the runs' own makes rounds that straddle asv's, and the
statistics then call unchanged code faster or slower (hostile passes)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from .compare import TIME_UNIT, case_columns
from .compared_cases import check_compared_cases, in_cases
from .errors import ReportError
from .tables import with_blank_params


def _compared_samples(timings: pd.DataFrame, commits: tuple[str, str],
                      cases: dict[str, list[str]] | None = None,
                      benchmarks: dict | None = None) -> pd.DataFrame:
    """The samples (``samples_a``, ``samples_b``) of the timings compared: ok at both
    commits on one machine and env, as compare_table pairs them; with ``cases`` (and
    ``benchmarks``) only the cases the comparison ran."""
    table = with_blank_params(timings)
    ok = (table["unit"] == TIME_UNIT) & (table["status"] == "ok")
    if cases is not None and benchmarks is not None:
        check_compared_cases(cases, benchmarks)
        ok &= in_cases(table, cases, benchmarks)
    case = case_columns(table)
    a, b = (table.loc[ok & (table["commit"] == commit), [*case, "samples"]] for commit in commits)
    return a.merge(b, on=case, suffixes=("_a", "_b"))


def check_rounds(timings: pd.DataFrame, commits: tuple[str, str] | None, round_size: int | None,
                 cases: dict[str, list[str]] | None = None, benchmarks: dict | None = None) -> None:
    """Whether the compared timings can be cut into rounds of ``round_size``: both checks
    below, the one entry for every caller that cuts them (tools/compare_power once ran
    one of the two and measured power on fake rounds)."""
    check_round_size(timings, commits, round_size)
    check_one_sample_count(timings, commits, round_size, cases, benchmarks)


def check_round_size(timings: pd.DataFrame, commits: tuple[str, str] | None,
                     round_size: int | None) -> None:
    """A round size no compared timing can fill is a wrong --round-size (or results
    without samples): every commit would be one round, every verdict inconclusive.
    Compared: timed ok at both commits on one machine and env, as compare_table pairs
    them (a case only one commit holds, or another machine's, gets no statistics and
    may have been timed with another repeat: a hostile pass)."""
    if not round_size or commits is None or "samples" not in timings:
        return
    rows = _compared_samples(timings, commits)
    if rows.empty:
        return
    counts = {len(s) for side in ("samples_a", "samples_b") for s in rows[side]
              if isinstance(s, np.ndarray)}
    longest = max(counts, default=0)
    if longest == 0:
        raise ReportError(f"--round-size {round_size}: the compared timings hold no samples "
                          "(timed without --record-samples, e.g. by make bench): no rounds to split")
    if longest < round_size:
        raise ReportError(f"--round-size {round_size} is more than the {longest} samples any "
                          "compared timing holds: each commit would be one round (give the "
                          "samples per round, asv's -a repeat=N)")
    undivided = sorted(count for count in counts if count % round_size)
    if undivided:  # (an ok timing holds R rounds of asv's repeat=N samples: a size that
        # does not divide its count is not the runs' own, and rounds that straddle asv's
        # make false alarms: hostile passes)
        raise ReportError(f"--round-size {round_size} does not divide the sample counts "
                          f"{', '.join(map(str, undivided[:5]))} of compared timings: it is "
                          "not their samples per round (give asv's -a repeat=N)")


def check_one_sample_count(timings: pd.DataFrame, commits: tuple[str, str] | None,
                           round_size: int | None, cases: dict[str, list[str]] | None = None,
                           benchmarks: dict | None = None) -> None:
    """One asv run with -a rounds=R -a repeat=N stores R x N samples for every case, so
    one commit's compared timings (ok at both, as check_round_size pairs them) hold one
    sample count; several mean that they are not all rounds of ``round_size`` (hostile
    pass 150: asv's default repeat, timed to a time budget, stored 60 samples of one
    process for a fast case; --round-size 2 cut them into 30 "rounds" with one process's
    spread, and cases of unchanged code were called faster at q ~ 1e-9). With ``cases``
    (and ``benchmarks``, as compare_table takes them) only the cases the comparison
    ran, which make compare times in one run, are held to one count: others may be of
    an earlier run with another -a rounds=R, of as many samples a round."""
    if not round_size or commits is None or "samples" not in timings:
        return
    rows = _compared_samples(timings, commits, cases, benchmarks)
    for side, commit in zip(("samples_a", "samples_b"), commits):
        held = sorted({len(s) for s in rows[side] if isinstance(s, np.ndarray) and len(s)})
        if len(held) > 1:
            raise ReportError(
                f"--round-size {round_size}: the compared timings of {commit[:8]} hold "
                f"different numbers of samples ({', '.join(map(str, held[:5]))}), where one "
                "asv run with -a rounds=R -a repeat=N stores R x N for every case: they are "
                "not all rounds of N (asv's default repeat times each round to a time budget, "
                "or runs with other settings were mixed); time both commits again with "
                "-a repeat=N, as make compare does")
