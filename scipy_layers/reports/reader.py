"""asv results directory -> one tidy DataFrame, read straight from the JSON files.

asv's own ``asv.results`` module is not a promised API, so this follows the documented
file format instead: ``<machine>/<commit>-<env>.json`` holds ``result_columns`` and, per
benchmark, a row in that order (trailing empty columns dropped) whose lists run over the
product of the parameter values in row-major order; ``benchmarks.json`` holds each
benchmark's parameter names, unit and current version.

Speed: per file and benchmark only lists are extended; parameter grids are expanded once
per distinct grid with numpy and every per-row column is built by numpy indexing.
"""
from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .environment import ENV_COLUMNS, join_environments
from .errors import ResultsError
from .history import commit_order
from .limits import LIMIT_COLUMNS, join_limits
from .naming import (DEFAULT_THREADS, ERROR_MEASUREMENTS, PARAM_COLUMNS, RESERVED_NAMES,
                     default_unit, kinds, measurement_label, split_name)
from .params import check_distinct_values, expand_grid, generic_names, names_in_order
from .validate import (check_benchmarks, check_results_file, check_row, check_values, load_json,
                       numbers, sample_lists)

RESULTS_API_VERSION = 2
REQUIRED_KEYS = ("commit_hash", "date", "env_name", "result_columns", "results")
# asv's stats column -> our column; number and repeat are counts, the rest seconds.
STAT_COLUMNS = {"stats_q_25": "q25", "stats_q_75": "q75", "stats_ci_99_a": "ci99_a",
                "stats_ci_99_b": "ci99_b", "stats_number": "number", "stats_repeat": "repeat"}
COLUMNS = ["layer", "kind", *PARAM_COLUMNS, "measurement", "value", "unit", "status",
           *STAT_COLUMNS.values(), *LIMIT_COLUMNS, "commit", "commit_date", "commit_order",
           "machine", "env", *ENV_COLUMNS, "benchmark", "version"]
JOINED_LATER = [*ENV_COLUMNS, *LIMIT_COLUMNS, "commit_order"]  # (by read_results)
STATUSES = ["ok", "skipped", "failed", "outdated"]


def read_benchmarks(results_dir: Path) -> dict[str, dict]:
    """benchmarks.json: name -> {param_names, unit, version, ...}."""
    path = results_dir / "benchmarks.json"
    if not path.exists():
        raise ResultsError(path, "is missing (asv run writes it beside the machine "
                                 "folders; copy it along with the results)")
    return check_benchmarks(path, load_json(path), RESERVED_NAMES)


def _extensions(in_order: list[str], prefix: str):
    """The strings of sorted ``in_order`` that extend ``prefix`` (longer, starting with
    it): the run right after it, found by bisection (not a scan per commit, which made
    the report quadratic in commits)."""
    at = bisect.bisect_right(in_order, prefix)
    while at < len(in_order) and in_order[at].startswith(prefix):
        yield in_order[at]
        at += 1


@dataclass
class _Collector:
    """Everything read so far, as flat lists and per-segment (file x benchmark) arrays."""

    benchmarks: dict
    grids: dict = field(default_factory=dict)          # grid key -> (offset, size)
    # per grid: (size, {param: array}, whether its parameters' names are known)
    grid_columns: list = field(default_factory=list)
    grid_rows: int = 0
    seg_grid_offset: list = field(default_factory=list)
    seg_len: list = field(default_factory=list)
    seg_name: list = field(default_factory=list)
    seg_version: list = field(default_factory=list)
    seg_file: list = field(default_factory=list)
    values: list = field(default_factory=list)
    failed: list = field(default_factory=list)
    stats: dict = field(default_factory=lambda: {c: [] for c in STAT_COLUMNS.values()})  # arrays
    samples: list = field(default_factory=list)        # per row: array of sample times or None
    files: list = field(default_factory=list)          # (commit, date_ms, machine, env)
    run_files: dict = field(default_factory=dict)      # (machine, commit, env) -> path

    def grid(self, path: Path, name: str, params: list) -> tuple[int, int]:
        declared = self.benchmarks.get(name, {}).get("param_names") or []
        # A benchmark whose parameters changed since this file was written keeps generic
        # names (it is marked outdated anyway): asv stores no names in results files.
        names = tuple(declared) if len(declared) == len(params) else generic_names(len(params))
        if len(declared) == len(params):  # (the same number of them, maybe in another order)
            # (.get: a benchmark of no parameters gone from benchmarks.json gets here too,
            # its none matching the none declared; a KeyError before hostile pass 156)
            names = names_in_order(names, self.benchmarks.get(name, {}).get("params"), params)
        # Known names: benchmarks.json's, not stand-ins put for them. Told apart by where
        # they came from, not by how they read: asv itself names a benchmark's parameters
        # param1, ... where it sets no param_names, and that one has no threads parameter
        # (it ran at one thread; blank there before hostile pass 156).
        named = names == tuple(declared) or names != generic_names(len(params))
        key = (names, tuple(tuple(map(str, p)) for p in params), named)
        if key not in self.grids:
            check_distinct_values(path, name, *key[:2])
            size, columns = expand_grid(*key[:2])
            self.grids[key] = (self.grid_rows, size)
            self.grid_columns.append((size, columns, named))
            self.grid_rows += size
        return self.grids[key]

    def add_file(self, path: Path, machine_dir: str) -> None:
        commit, date, machine, env, columns, results = check_results_file(
            path, load_json(path), REQUIRED_KEYS, RESULTS_API_VERSION)
        machine = machine or machine_dir
        self._check_one_file_per_run(path, machine, commit, env)
        self.files.append((commit, date, machine, env))
        file_index = len(self.files) - 1
        for name, row in sorted(results.items()):
            cells, size = check_row(path, name, row, columns)
            result = cells.get("result")
            values = numbers(path, name, "result", result, size)
            check_values(path, name, split_name(name)[2], values)
            # null = failed (a list of nulls, or null for all); NaN = skipped
            failed = (np.ones(size, dtype=bool) if result is None
                      else np.fromiter((v is None for v in result), dtype=bool, count=size))
            for key, column in STAT_COLUMNS.items():
                self.stats[column].append(numbers(path, name, key, cells.get(key), size))
            self.samples.extend(sample_lists(path, name, cells.get("samples"), size))
            offset, _ = self.grid(path, name, cells["params"])
            self.values.append(values)
            self.failed.append(failed)
            self.seg_grid_offset.append(offset)
            self.seg_len.append(size)
            self.seg_name.append(name)
            self.seg_version.append(cells.get("version"))
            self.seg_file.append(file_index)

    def _check_one_file_per_run(self, path: Path, machine: str, commit: str, env: str) -> None:
        """asv keeps one file per machine, commit and environment. A second one (a copy
        beside it, a backup of the machine folder; the commit written in full in one and
        abbreviated in the other) would count every case twice: the comparison's rows
        pair up many to many, and the tables double silently."""
        commit = commit.lower()
        for (other_machine, other_commit, other_env), other in self.run_files.items():
            if (other_machine == machine and other_env == env
                    and (commit.startswith(other_commit) or other_commit.startswith(commit))):
                raise ResultsError(path, f"holds the results of machine {machine!r}, commit "
                                         f"{commit[:8]}, environment {env!r}, as {other} "
                                         "does (a copy?): delete one of the two, so that "
                                         "each case is read once")
        self.run_files[(machine, commit, env)] = path

    def full_hashes(self) -> dict[str, str]:
        """Each commit as written -> the commit it names, in lower case: a hash written
        abbreviated in one file (asv writes them in full; a copy or another tool may
        not) and in full in another (two asv environments, two machines) is the full
        one, so that one commit reads as one, not two. A prefix of two commits of the
        results names neither: an error naming its file."""
        written = {commit for commit, *_ in self.files}
        in_order = sorted({c.lower() for c in written})  # (a prefix's extensions follow it)
        full: dict[str, str] = {}
        for commit in sorted(in_order, key=len, reverse=True):
            targets = {full[other] for other in _extensions(in_order, commit)}
            if len(targets) > 1:
                path = next(p for (_, c, _), p in self.run_files.items() if c == commit)
                named = ", ".join(sorted(t[:12] for t in targets))
                raise ResultsError(path, f"commit {commit!r} abbreviates several commits of "
                                         f"the results ({named}): write it in full")
            full[commit] = targets.pop() if targets else commit
        return {c: full[c.lower()] for c in written}

    def frame(self) -> pd.DataFrame:
        seg_len = np.asarray(self.seg_len, dtype=np.int64)
        total = int(seg_len.sum())
        seg_start = np.concatenate([[0], np.cumsum(seg_len)[:-1]])
        row_seg = np.repeat(np.arange(len(seg_len)), seg_len)
        # Each row's place in the concatenated parameter grids.
        row_case = np.repeat(np.asarray(self.seg_grid_offset) - seg_start, seg_len) + np.arange(total)
        out = {}
        param_names = list(dict.fromkeys(n for _, cols, _ in self.grid_columns for n in cols))
        for name in param_names:
            grid = np.concatenate([cols.get(name, np.full(size, None, dtype=object))
                                   for size, cols, _ in self.grid_columns])
            out[name] = grid[row_case]
        named = np.concatenate([np.full(size, known)
                                for size, _, known in self.grid_columns])[row_case]
        names = np.asarray(self.seg_name, dtype=object)
        split = [split_name(n) for n in self.seg_name]
        seg_method = np.array([s[2] for s in split], dtype=object)
        kind_of = kinds(set(self.seg_name) | set(self.benchmarks))
        out["layer"] = np.array([s[0] for s in split], dtype=object)[row_seg]
        out["kind"] = np.array([kind_of[n] for n in self.seg_name], dtype=object)[row_seg]
        out["measurement"] = np.array([measurement_label(m) for m in seg_method], dtype=object)[row_seg]
        info = [self.benchmarks.get(n) for n in self.seg_name]
        out["unit"] = np.array([i.get("unit") if i else default_unit(m)
                                for i, m in zip(info, seg_method)], dtype=object)[row_seg]
        seg_outdated = np.array([i is None or str(i["version"]) != str(v)
                                 for i, v in zip(info, self.seg_version)], dtype=bool)
        value = np.concatenate(self.values)
        failed = np.concatenate(self.failed)
        out["value"] = value
        out["status"] = np.select([seg_outdated[row_seg], failed, np.isnan(value)],
                                  ["outdated", "failed", "skipped"], "ok")
        for column, arrays in self.stats.items():
            out[column] = np.concatenate(arrays)
        files = pd.DataFrame(self.files, columns=["commit", "date", "machine", "env"])
        files["commit"] = files["commit"].map(self.full_hashes())
        row_file = np.asarray(self.seg_file)[row_seg]
        out["commit"] = files["commit"].to_numpy(dtype=object)[row_file]
        out["commit_date"] = pd.to_datetime(files["date"].to_numpy()[row_file], unit="ms", utc=True)
        out["machine"] = files["machine"].to_numpy(dtype=object)[row_file]
        out["env"] = files["env"].to_numpy(dtype=object)[row_file]
        out["benchmark"] = names[row_seg]
        out["version"] = np.array(self.seg_version, dtype=object)[row_seg]
        samples = np.empty(total, dtype=object)
        samples[:] = self.samples
        out["samples"] = samples
        return _tidy(pd.DataFrame(out), named)


def method_of(table: pd.DataFrame) -> pd.Series:
    """Each row's benchmark method name (split once per distinct benchmark)."""
    return table["benchmark"].map({n: split_name(n)[2] for n in table["benchmark"].unique()})


def _tidy(table: pd.DataFrame, named: np.ndarray) -> pd.DataFrame:
    """Fixed column order (documented parameters first, any others after them),
    absent parameters as empty columns, threads defaulting to one where the row's
    parameters are ``named`` (generic param1, ... say nothing of its threads)."""
    for column in PARAM_COLUMNS:
        if column not in table:
            table[column] = None
    table["threads"] = table["threads"].where(table["threads"].notna() | ~named, DEFAULT_THREADS)
    # Gradient errors are one measurement per quantity: "max rel error of grad_input".
    has_quantity = method_of(table).isin(list(ERROR_MEASUREMENTS)) & table["quantity"].notna()
    table.loc[has_quantity, "measurement"] = (table.loc[has_quantity, "measurement"] + " of "
                                              + table.loc[has_quantity, "quantity"].astype(str))
    for column in ("number", "repeat"):
        table[column] = table[column].round().astype("Int64")
    extra = [c for c in table.columns if c not in COLUMNS and c != "samples"]
    base = [c for c in COLUMNS if c not in JOINED_LATER]
    at = base.index(PARAM_COLUMNS[-1]) + 1
    order = base[:at] + extra + base[at:] + ["samples"]
    return table[order]


def results_files(results_dir: Path) -> list[Path]:
    """The asv results files under ``results_dir`` (<machine>/<commit>-<env>.json), sorted.
    Hidden files are skipped like hidden folders: asv names its files <commit>-<env>.json,
    never with a leading dot, so a dot-file is another tool's (a report's manifest, an
    editor's lock file, macOS's ._ copies) and holds no results; reading it would stop
    every run on a file that is not asv's."""
    try:
        return sorted(path for machine in Path(results_dir).iterdir()
                      if machine.is_dir() and not machine.name.startswith(".")
                      for path in machine.glob("*.json")
                      if path.name != "machine.json" and not path.name.startswith("."))
    except OSError as exc:
        raise ResultsError(results_dir, f"cannot be listed ({exc.strerror or exc})") from None


def check_results(path: Path) -> dict:
    """The asv results file ``path``, read and checked as the report reads it (a
    ResultsError naming what is wrong)."""
    data = load_json(path)
    check_results_file(path, data, REQUIRED_KEYS, RESULTS_API_VERSION)
    return data


def read_results(results_dir: Path | str, with_samples: bool = False) -> pd.DataFrame:
    """Every machine, commit and environment under ``results_dir`` as one tidy table:
    a row per benchmark x parameter combination x commit x machine x env (see
    reports/README.md for the columns), joined with the environment records beside the
    results directory where there are any, and each timed case's lower bound from its
    machine's calibration (``limits``). ``with_samples`` adds a last column,
    ``samples``: each row's recorded sample times (an array, rounds one after another)
    or None; timings.csv never carries it. Raises ResultsError naming the bad file."""
    results_dir = Path(results_dir)
    if not results_dir.exists():
        raise ResultsError(results_dir, "results directory does not exist (run asv first)")
    if not results_dir.is_dir():
        raise ResultsError(results_dir, "is not a directory")
    files = results_files(results_dir)
    if not files:
        raise ResultsError(results_dir, "holds no asv results files (<machine>/<commit>-<env>.json)")
    collector = _Collector(read_benchmarks(results_dir))
    for path in files:
        collector.add_file(path, path.parent.name)
    table = join_limits(join_environments(collector.frame(), results_dir), results_dir)
    order = commit_order(results_dir, table.groupby("commit")["commit_date"].min())
    table.insert(table.columns.get_loc("commit_date") + 1, "commit_order",
                 table["commit"].map(order).astype("int64"))
    if not with_samples:
        table = table.drop(columns="samples")
    return table.sort_values(["machine", "commit_order", "env"], kind="stable", ignore_index=True)
