"""``scipy-layers-report`` / ``python -m scipy_layers.reports``: write the reports and
print where they are with a short headline table. A problem with the results or the
arguments is one line on stderr and exit code 2, never a traceback."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .build import DEFAULT_FACTOR, build_report
from .errors import ReportError, one_line

DEFAULT_RESULTS = Path(".asv/results")
DEFAULT_OUTPUT = Path("reports") / "latest"
PROG = "scipy-layers-report"


def _factor(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 1:
        raise argparse.ArgumentTypeError(f"must be greater than 1, got {text}")
    return value


class _OneLineParser(argparse.ArgumentParser):
    """argparse with its errors as one line (no usage block), like every other error."""

    def error(self, message):
        self.exit(2, f"{PROG}: error: {one_line(message)} (see {PROG} --help)\n")


def parser() -> argparse.ArgumentParser:
    p = _OneLineParser(
        prog=PROG, description="Tables, a summary and plots from an asv results directory "
                               "(reports/README.md describes every file).")
    p.add_argument("results", nargs="?", help=f"asv results directory (default {DEFAULT_RESULTS})")
    # Text, not Path: Path("") is ".", and an empty output path must be an error.
    p.add_argument("output", nargs="?", help=f"output directory (default {DEFAULT_OUTPUT}/)")
    p.add_argument("--results", dest="results_option", metavar="DIR",
                   help="the results directory, as an option")
    p.add_argument("--output", dest="output_option", metavar="DIR",
                   help="the output directory, as an option")
    p.add_argument("--factor", type=_factor, default=DEFAULT_FACTOR,
                   help=f"compare.csv flags a ratio >= F or <= 1/F as changed (default {DEFAULT_FACTOR})")
    p.add_argument("--commits", nargs=2, metavar=("A", "B"),
                   help="commits (hashes or unique prefixes) for compare.csv; default the "
                        "two most recent by commit date")
    p.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    return p


def _pick(p, positional, option, default, what):
    if positional is not None and option is not None and positional != option:
        p.error(f"two {what} directories given: {positional} and {option}")
    return next((v for v in (option, positional) if v is not None), default)


def main(argv: list[str] | None = None) -> int:
    p = parser()
    args = p.parse_args(argv)
    results = _pick(p, args.results, args.results_option, DEFAULT_RESULTS, "results")
    output = _pick(p, args.output, args.output_option, DEFAULT_OUTPUT, "output")
    try:
        if results == "":
            raise ReportError("the results directory is an empty path; name asv's results "
                              f"directory (default {DEFAULT_RESULTS})")
        report = build_report(results, output, factor=args.factor, commits=args.commits,
                              with_plots=not args.no_plots)
    except ReportError as exc:
        print(f"{PROG}: error: {one_line(str(exc))}", file=sys.stderr)
        return 2
    print(f"Read {len(report.timings)} results ({(report.timings['status'] == 'ok').sum()} ok) "
          f"from {results}; wrote to {output}/:")
    for path in report.files:
        print(f"  {path}")
    if report.commits:
        changed = int(report.compare["changed"].sum())
        print(f"compare.csv: {report.commits[0][:8]} -> {report.commits[1][:8]}, "
              f"{changed} changed at factor {args.factor}")
    print("\nforward+backward time / native at the latest commit (gradients: verdicts):")
    if report.headline.empty:
        print("  (no case ran for both an implementation and native)")
    else:
        print(report.headline.to_string(index=False, float_format="{:.3g}".format))
    return 0
