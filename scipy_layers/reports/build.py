"""Results directory -> every report file in the output directory."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from .gradients import gradients_table
from .output import prepare_output_dir, write_csv, write_figure, write_text
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
    compare.csv, summary.md and the PNG plots into ``output_dir`` (created if missing).
    Everything is computed before the first file is written, so bad results leave the
    output directory as it was."""
    timings = read_results(results_dir)
    pair = resolve_commits(timings, commits)
    speedup = speedup_table(timings)
    gradients = gradients_table(timings)
    compare = compare_table(timings, pair, factor)
    summary = summary_markdown(timings, speedup, gradients, compare, factor)
    report = Report(timings, speedup, gradients, compare, headline(speedup, gradients), pair)
    output_dir = prepare_output_dir(Path(output_dir))
    for name, table in (("timings.csv", timings), ("speedup.csv", speedup),
                        ("gradients.csv", gradients), ("compare.csv", compare)):
        report.files.append(write_csv(output_dir, name, table))
    report.files.append(write_text(output_dir, "summary.md", summary))
    if with_plots:
        from .plots import plots  # matplotlib is the slowest import: only when plotting
        for name, figure in plots(timings, speedup).items():
            report.files.append(write_figure(output_dir, name, figure))
    return report
