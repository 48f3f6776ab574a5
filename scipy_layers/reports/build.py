"""Results directory -> every report file in the output directory."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from .gradients import gradients_table
from .output import check_output_path, matplotlib_confined, staged_output
from .reader import read_results
from .summary import headline, summary_markdown
from .tables import compare_table, resolve_commits, speedup_table

DEFAULT_FACTOR = 1.3  # asv-facts: identical code moves 2-8 of 21 timings by > 20% here


@dataclass
class Report:
    timings: pd.DataFrame
    speedup: pd.DataFrame
    gradients: pd.DataFrame
    compare: pd.DataFrame
    headline: pd.DataFrame
    commits: tuple[str, str] | None
    files: list[Path] = field(default_factory=list)


def build_report(results_dir: Path | str, output_dir: Path | str, factor: float = DEFAULT_FACTOR,
                 commits: list[str] | None = None, with_plots: bool = True) -> Report:
    """Read ``results_dir`` and write timings.csv, speedup.csv, gradients.csv,
    compare.csv, summary.md and the PNG plots into ``output_dir`` (created if missing),
    all or nothing: bad results, or a failure anywhere while writing or plotting, leave
    the output directory as it was (see ``output``)."""
    check_output_path(output_dir)
    timings = read_results(results_dir)
    pair = resolve_commits(timings, commits)
    speedup = speedup_table(timings)
    gradients = gradients_table(timings)
    compare = compare_table(timings, pair, factor)
    summary = summary_markdown(timings, speedup, gradients, compare, factor)
    report = Report(timings, speedup, gradients, compare, headline(speedup, gradients), pair)
    with staged_output(output_dir) as staging:
        for name, table in (("timings.csv", timings), ("speedup.csv", speedup),
                            ("gradients.csv", gradients), ("compare.csv", compare)):
            staging.write_csv(name, table)
        staging.write_text("summary.md", summary)
        if with_plots:
            with matplotlib_confined(staging):
                from . import plots  # matplotlib is the slowest import: only when plotting
                for name, figure in plots.plots(timings, speedup).items():
                    staging.write_figure(name, figure)
        report.files = staging.commit()
    return report
