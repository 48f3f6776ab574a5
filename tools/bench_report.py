"""How long does the report take on 50 commits of the default grid?

Copies one real asv results file under 50 made-up commit hashes and dates (one day
apart) into a temporary results directory, with its benchmarks.json and machine.json,
then runs `python -m scipy_layers.reports` on it a few times and prints the median
wall time of the whole command (interpreter start, imports, tables, plots) and of
build_report() alone. Nothing is written outside the temporary directory. Time it alone on a shared machine:

    flock /tmp/scipy-layers-timing.lock .venv/bin/python tools/bench_report.py
"""
from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from scipy_layers.reports.cli import positive_int  # noqa: E402  (the report's own count type)
from scipy_layers.reports.errors import ResultsError  # noqa: E402
from scipy_layers.reports.reader import (check_results, read_benchmarks,  # noqa: E402
                                         results_files)
from help_text import description  # (tools/, this script's folder)

DEFAULT_SOURCE = ROOT / "tests" / "fixtures" / "asv_results"
DAY_MS = 24 * 3600 * 1000


def newest_results_file(source: Path) -> Path:
    """The file make_history copies: of ``source``'s asv results files (as the report lists
    them, reader.results_files), the one asv dated last (its "date", the commit's date;
    the last listed of equal dates), checked as the report reads it."""
    files = results_files(source)
    if not files:
        raise ResultsError(source, "holds no asv results files (<machine>/<commit>-<env>.json)")
    dates = [check_results(path)["date"] for path in files]
    return max(zip(dates, range(len(files)), files))[2]


def results_dir(text: str) -> Path:
    """argparse type of --source: make_history copies its benchmarks.json and a results file."""
    source = Path(text)
    if not (source / "benchmarks.json").is_file():
        raise argparse.ArgumentTypeError(f"{source} has no benchmarks.json: give an asv results "
                                         "directory (e.g. .asv/results)")
    try:
        read_benchmarks(source)  # (checked as the report checks it)
        newest_results_file(source)
    except ResultsError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return source


def make_history(source: Path, target: Path, commits: int) -> Path:
    """``commits`` copies of the newest results file of ``source`` under new hashes."""
    original = newest_results_file(source)
    data = json.loads(original.read_text())
    machine_dir = target / original.parent.name
    machine_dir.mkdir(parents=True)
    shutil.copy(source / "benchmarks.json", target / "benchmarks.json")
    if (original.parent / "machine.json").exists():
        shutil.copy(original.parent / "machine.json", machine_dir / "machine.json")
    for i in range(commits):
        data["commit_hash"] = hashlib.sha1(f"synthetic commit {i}".encode()).hexdigest()
        data["date"] = data["date"] - (commits - 1 - i) * DAY_MS
        name = f"{data['commit_hash'][:8]}-{data['env_name']}.json"
        (machine_dir / name).write_text(json.dumps(data))
        data["date"] += (commits - 1 - i) * DAY_MS
    return target


def median_seconds(run, runs: int) -> tuple[float, list[float]]:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times), times


class OneLineParser(argparse.ArgumentParser):
    """A usage error on one line, without argparse's usage text before it."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message}\n")


def main(argv: list[str] | None = None) -> None:
    parser = OneLineParser(description=description(__doc__))
    parser.add_argument("--source", type=results_dir, default=DEFAULT_SOURCE,
                        help="a real asv results directory (default: the test fixture)")
    parser.add_argument("--commits", type=positive_int, default=50,
                        help="commits of history (at least 1)")
    parser.add_argument("--runs", type=positive_int, default=3,
                        help="runs to take the median of (at least 1)")
    args = parser.parse_args(argv)
    from scipy_layers.reports import build_report

    with tempfile.TemporaryDirectory(prefix="scipy-layers-bench-report-") as temp:
        results = make_history(args.source, Path(temp) / "results", args.commits)
        output = Path(temp) / "out"
        command = [sys.executable, "-m", "scipy_layers.reports", str(results), str(output)]
        whole, whole_times = median_seconds(
            lambda: subprocess.run(command, check=True, cwd=ROOT, stdout=subprocess.DEVNULL), args.runs)
        # The same work without interpreter start-up and imports (torch alone is ~1 s).
        build, build_times = median_seconds(lambda: build_report(results, output), args.runs)
        rows = sum(1 for _ in open(output / "timings.csv")) - 1
    print(f"{args.commits} commits ({rows} result rows), median of {args.runs} runs:")
    print(f"  whole command (start-up, imports, tables, plots): {whole:.2f} s  "
          f"({', '.join(f'{t:.2f}' for t in whole_times)})")
    print(f"  build_report() alone (read, tables, files, plots): {build:.2f} s  "
          f"({', '.join(f'{t:.2f}' for t in build_times)})")


if __name__ == "__main__":
    main()
