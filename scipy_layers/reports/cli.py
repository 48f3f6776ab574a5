"""``scipy-layers-report`` / ``python -m scipy_layers.reports``: write the reports and
print where they are, the comparison's account and a short headline table. A problem
with the results or the arguments is one line on stderr and exit code 2, never a
traceback. With ``--gate`` the exit code is 1 when the comparison holds a confirmed
slowdown, a numpy/scipy timing that ran at A and fails or is skipped at B, or a gradient
regression (one line each on stdout), else 0."""
from __future__ import annotations

import argparse
import re
import sys
import traceback
from pathlib import Path

import pandas as pd

from .build import build_report
from .compare import DEFAULT_THRESHOLD
from .compared_cases import read_compared_cases
from .errors import ReportError, complain, one_line, silence
from .gate import (account, findings, measured_in_both, one_round_each_note, one_round_note,
                   only_changed_environments)
from .markdown import printable
from .runs import RUN_COLUMNS
from .start import PROG

DEFAULT_RESULTS = Path(".asv/results")
DEFAULT_OUTPUT = Path("reports") / "latest"


def _threshold(text: str) -> float:
    """'0.05' or '5%' -> 0.05; a fraction between 0 and 1."""
    try:
        value = float(text[:-1]) / 100 if text.endswith("%") else float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number or a percentage: {text!r}") from None
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1 (or 0% and 100%), got {text}")
    return value


def positive_int(text: str) -> int:
    """argparse type of a count (--round-size here; tools' --runs, --commits)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
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
    p.add_argument("--commits", nargs=2, metavar=("A", "B"),
                   help="commits (hashes or unique prefixes) for compare.csv, A before B (the "
                        "base, then the change: refused where git history has B before A); "
                        "default the two most recent that ran on one machine and asv "
                        "environment: in git history where git knows them all, else by "
                        "the date asv stores (the author date, git %%at; one date: the "
                        "larger hash)")
    p.add_argument("--threshold", type=_threshold, default=DEFAULT_THRESHOLD, metavar="T",
                   help="compare.csv: changes smaller than this are 'unchanged' (a fraction "
                        f"or a percentage; default {DEFAULT_THRESHOLD * 100:g}%%)")
    p.add_argument("--round-size", type=positive_int, metavar="N",
                   help="samples per round in the compared runs (asv -a repeat=N with "
                        "--interleave-rounds --record-samples, as make compare runs it); "
                        "without it each commit's samples count as one round and every "
                        "timing verdict is inconclusive")
    p.add_argument("--cases", metavar="FILE",
                   help="the cases the comparison ran (JSON, as tools/suite_cases.py lists "
                        "them; make compare writes it): asv's NaN outside them is no result "
                        "(missing), not a skip; a file that can match nothing (no "
                        "combination, an unknown benchmark, a combination that is not "
                        "the benchmark's parameters) is an error")
    p.add_argument("--gate", action="store_true",
                   help="exit 1 on a confirmed slowdown (verdict slower, non-native), a "
                        "non-native timing that ran at A and fails or is skipped at B, "
                        "or a gradient regression between the two commits, 0 otherwise")
    p.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    return p


# The options that take a number. argparse reads a value after them that starts with a
# dash as an option unless it is a plain negative number ('-0.05' is read, '-1%' and
# '-5e-2' are not) and then says the value is missing; joined as '--threshold=-1%', the
# value reaches its check, which says what is accepted.
NUMBER_OPTIONS = ("--threshold", "--round-size")
_DASHED_NUMBER = re.compile(r"-[0-9.]")


def joined_dashed_numbers(argv: list[str], options: tuple[str, ...] = NUMBER_OPTIONS) -> list[str]:
    """``argv`` with each number option followed by a dashed number ('-1%') as one
    '--option=value' word; nothing else changed. A number option is named in full or by
    a prefix argparse takes for it (``--thresh``: one of ``options``, the parser's
    long options, alone begins so); after '--', which ends the options, nothing is
    joined (hostile pass 152: '--thresh -1%' read 'expected one argument', and '--' then
    '--threshold' '-1', two positional words, became one)."""
    joined, words = [], iter(argv)
    for word in words:
        if word == "--":
            joined.append(word)
            joined.extend(words)
            break
        if _number_option(word, options):
            value = next(words, None)
            if value is not None and _DASHED_NUMBER.match(value):
                joined.append(f"{word}={value}")
                continue
            joined.append(word)
            if value is not None:
                joined.append(value)
        else:
            joined.append(word)
    return joined


def _number_option(word: str, options: tuple[str, ...]) -> bool:
    if word in NUMBER_OPTIONS:
        return True
    if not word.startswith("--") or len(word) < 3 or word in options:
        return False
    named = [option for option in options if option.startswith(word)]
    return len(named) == 1 and named[0] in NUMBER_OPTIONS


def _pick(p, positional, option, default, what):
    if positional is not None and option is not None and positional != option:
        p.error(f"two {what} directories given: {positional} and {option}")
    return next((v for v in (option, positional) if v is not None), default)


def _print_headline(table) -> None:
    """The headline table; one per machine or asv environment where it has several
    (``machine``/``env`` columns), each under a line naming its run."""
    if table.empty:
        print("  (no case ran for both an implementation and native)")
        return
    runs = [c for c in RUN_COLUMNS if c in table]
    groups = table.groupby(runs, sort=True) if runs else [((), table)]
    for values, rows in groups:
        if runs:
            print(printable(", ".join(f"{c} {v}" for c, v in zip(runs, values))) + ":")
        rows = rows.drop(columns=runs)  # (names from results files, one row a line)
        text = {c: rows[c].map(printable) for c in rows
                if not pd.api.types.is_numeric_dtype(rows[c])}
        print(rows.assign(**text).to_string(index=False, float_format="{:.3g}".format))


def main(argv: list[str] | None = None) -> int:
    """The command: 0, 1 (``--gate`` findings) or 2 (an error); an unexpected exception
    is printed with its traceback and gives 2 too, never Python's 1, which a gate would
    read as a confirmed regression."""
    try:
        return _main(argv)
    except Exception:  # noqa: BLE001 -- (a defect of ours: said as one, status 2)
        complain("".join(traceback.format_exc()).rstrip())
        complain(f"{PROG}: internal error (the traceback above); exit status 2, not a gate finding")
        return 2


def _main(argv: list[str] | None) -> int:
    p = parser()
    long_options = tuple(option for action in p._actions for option in action.option_strings
                         if option.startswith("--"))
    args = p.parse_args(joined_dashed_numbers(sys.argv[1:] if argv is None else argv,
                                              long_options))
    results = _pick(p, args.results, args.results_option, DEFAULT_RESULTS, "results")
    output = _pick(p, args.output, args.output_option, DEFAULT_OUTPUT, "output")
    try:
        if results == "":
            raise ReportError("the results directory is an empty path; name asv's results "
                              f"directory (default {DEFAULT_RESULTS})")
        cases = read_compared_cases(args.cases) if args.cases is not None else None
        report = build_report(results, output, threshold=args.threshold, commits=args.commits,
                              with_plots=not args.no_plots, round_size=args.round_size,
                              cases=cases)
        if args.gate and report.commits is None:
            raise ReportError("--gate needs two commits in the results (one was found); "
                              "the reports were written")
        if args.gate and not measured_in_both(report.compare):
            raise ReportError(f"--gate: no case was measured at both {report.commits[0][:8]} and "
                              f"{report.commits[1][:8]} (other machines or asv environments, or "
                              "all failed): nothing to gate on; the reports were written")
        if args.gate and only_changed_environments(report.compare):
            raise ReportError(f"--gate: every timing measured at both {report.commits[0][:8]} "
                              f"and {report.commits[1][:8]} ran in another environment at each "
                              "(CPU, BLAS kernel, threads or overrides: see compare.csv's "
                              "env_differs), so no speed was compared; time both in one "
                              "(make gate does); the reports were written")
    except ReportError as exc:
        complain(f"{PROG}: error: {one_line(str(exc))}")
        return 2
    found = findings(report.compare) if args.gate else None
    note = (one_round_note(report.compare, args.round_size)
            or one_round_each_note(report.compare, args.round_size)) if args.gate else None
    try:
        _print_account(report, results, output, args.threshold, found, note)
    except BrokenPipeError:  # (stdout's reader stopped, as `| head` does: the reports are
        silence(1)           # written and the status stands)
    except OSError as exc:  # (stdout cannot take it: a full disk, /dev/full): an error
        silence(1)
        complain(f"{PROG}: error: cannot write to stdout ({exc.strerror or exc}); the "
                  f"reports were written to {output}/")
        return 2
    return 1 if found else 0


def _print_account(report, results, output, threshold, found, note=None) -> None:
    """What a run read and wrote, the headline and (``found`` not None) the gate's findings."""
    print(f"Read {len(report.timings)} results ({(report.timings['status'] == 'ok').sum()} ok) "
          f"from {results}; wrote to {output}/:")
    for path in report.files:
        print(f"  {path}")
    if report.removed:  # a committed folder's plots, after --no-plots: never silently
        print(f"and removed {len(report.removed)} file(s) an earlier run wrote that this run "
              "does not write (they were unchanged since):")
        for path in report.removed:
            print(f"  {path}")
    if report.commits:
        print("\ncompare.csv: " + "\n  ".join(account(report.compare, threshold)))
    latest = report.latest
    named = ", ".join(printable(f"{c[:8]}" + (f" on {m}" if len(latest) > 1 else ""))
                      for m, c in zip(latest["machine"], latest["commit"]))
    print(f"\nforward+backward time / native at the latest commit ({named or 'none'}; "
          "gradients: verdicts):")
    _print_headline(report.headline)
    if found is not None:
        print(f"\ngate: {len(found)} finding(s)" + "".join(f"\n{line}" for line in found))
    if note:
        print(note)
