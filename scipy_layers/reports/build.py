"""Results directory -> every report file in the output directory."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from .compare import DEFAULT_THRESHOLD, compare_table
from .gradients import gradients_table
from .calibration import read_calibrations
from .output import check_output, matplotlib_confined, staged_output
from .reader import read_benchmarks, read_results
from .rounds import check_rounds
from .runs import latest_commits
from .summary import headline, summary_markdown
from .tables import resolve_commits, speedup_table


@dataclass
class Report:
    timings: pd.DataFrame
    speedup: pd.DataFrame
    gradients: pd.DataFrame
    compare: pd.DataFrame
    headline: pd.DataFrame
    commits: tuple[str, str] | None
    latest: pd.DataFrame  # the commit the headline shows per machine (runs.latest_commits)
    files: list[Path] = field(default_factory=list)
    removed: list[Path] = field(default_factory=list)  # an earlier run's files not written again


def build_report(results_dir: Path | str, output_dir: Path | str,
                 threshold: float = DEFAULT_THRESHOLD, commits: list[str] | None = None,
                 with_plots: bool = True, round_size: int | None = None,
                 cases: dict[str, list[str]] | None = None) -> Report:
    """Read ``results_dir`` and write timings.csv, speedup.csv, gradients.csv,
    compare.csv, summary.md and the PNG plots into ``output_dir`` (created if missing),
    all or nothing: bad results, or a failure anywhere while writing or plotting, leave
    the output directory as it was (see ``output``). ``threshold``: compare.csv's
    practical threshold; ``round_size``: samples per round of the compared runs;
    ``cases``: the cases the comparison ran (compared_cases.read_compared_cases)."""
    check_output(output_dir, results_dir)
    with_samples = read_results(results_dir, with_samples=True)
    timings = with_samples.drop(columns="samples")
    pair = resolve_commits(timings, commits, results_dir)
    benchmarks = read_benchmarks(Path(results_dir)) if cases is not None else None
    check_rounds(with_samples, pair, round_size, cases, benchmarks)
    speedup = speedup_table(timings)
    gradients = gradients_table(timings)
    compare = compare_table(with_samples, pair, threshold, round_size, cases, benchmarks)
    calibrations = read_calibrations(results_dir, timings["machine"].unique())
    latest = latest_commits(timings)  # one commit per machine: summary.md, headline, plots
    summary = summary_markdown(timings, speedup, gradients, compare, threshold, calibrations,
                               latest)
    report = Report(timings, speedup, gradients, compare,
                    headline(speedup, gradients, latest), pair, latest)
    with staged_output(output_dir) as staging:
        for name, table in (("timings.csv", timings), ("speedup.csv", speedup),
                            ("gradients.csv", gradients), ("compare.csv", compare)):
            staging.write_csv(name, table)
        staging.write_text("summary.md", summary)
        if with_plots:
            with matplotlib_confined(staging):
                from . import plots  # matplotlib is the slowest import: only when plotting
                for name, figure in plots.plots(timings, speedup, latest).items():
                    staging.write_figure(name, figure)
        report.files = staging.commit()
        report.removed = staging.removed
    return report
