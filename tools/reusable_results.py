"""May `make compare` reuse the asv results that already exist for a commit?

Yes only when all of these hold, and otherwise it times the commit again:
  1. a results file for the commit lies under this machine's name (names tell CPUs apart)
     and carries the asv environment name asv uses now (same python, packages, variables);
  2. every benchmark in the comparison is in it at the version and with the parameters
     of the current suite (benchmarks.json, just discovered);
  3. every timing case that runs at that commit holds exactly rounds x repeat samples
     (or failed): it was timed by make compare with the same rounds and repeat, not by
     make bench (no samples), an interrupted run (fewer) or a run that did not select it
     (asv's NaN, which reads as skipped; where the cases that run at the commit are not
     known, a NaN is taken as skipped);
  4. the commit's environment record (.asv/environments) says the same BLAS, kernels,
     threads, overrides, versions and CPU as the environment now.
asv's own --skip-existing-successful checks none of 2-4.
"""
from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import record_environment


def find_result(results: Path, machine: str, commit: str, env_name: str) -> tuple[Path, dict] | None:
    """The results file (path, data) of ``commit`` in ``env_name`` on ``machine``, or None.
    A file that is no JSON object is passed over; the fields the rule below reads of the
    one found are checked as the report checks them (a ResultsError naming the file and
    the field: the report would refuse it after all the timing)."""
    for path in sorted((results / machine).glob(f"{commit[:8]}-*.json")):
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if (isinstance(data, dict) and data.get("commit_hash") == commit
                and data.get("env_name") == env_name):
            _check_rows(path, data)
            return path, data
    return None


def _check_rows(path: Path, data: dict) -> None:
    """The rows of a results file, as the report's reader checks them (ResultsError)."""
    from scipy_layers.reports.validate import check_row, numbers, result_table, sample_lists
    columns, rows = result_table(path, data)
    for name, row in rows.items():
        cells, size = check_row(path, name, row, columns)
        numbers(path, name, "result", cells.get("result"), size)
        sample_lists(path, name, cells.get("samples"), size)


def _columns(data: dict, name: str) -> dict:
    return dict(zip(data.get("result_columns", []), data["results"][name]))


def _is_value(value) -> bool:
    """A measured value: not failed (None) and not skipped (NaN)."""
    return value is not None and not (isinstance(value, float) and math.isnan(value))


def stale_benchmark(data: dict, benchmarks: dict, names) -> str | None:
    """Why the results miss or predate a benchmark of ``names`` (None when all are current)."""
    for name in names:
        if name not in benchmarks:
            continue  # not in the suite any more: nothing to compare
        if name not in data.get("results", {}):
            return f"{name} was not run"
        row = _columns(data, name)
        if str(row.get("version")) != str(benchmarks[name]["version"]):
            return f"{name} is at another benchmark version"
        if row.get("params", []) != benchmarks[name]["params"]:
            return f"{name} has other parameters"
    return None


def sample_mismatch(data: dict, benchmarks: dict, cases: dict, rounds: int, repeat: int,
                    runs_known: bool = True) -> str | None:
    """Why a timing case's samples are not rounds x repeat (None when all are).
    ``cases``: those that run at the commit (``runs_known``), so that a NaN there is a
    case the run that made these results did not select; else those that run at HEAD,
    and a NaN is taken as skipped. Cases are found by their place in benchmarks.json's
    grid: callers check stale_benchmark first, which refuses a row of other parameters
    (a reorder included), so the row's grid is that one."""
    want = rounds * repeat
    for name, combos in sorted(cases.items()):
        if name not in benchmarks or name not in data.get("results", {}):
            continue
        row = _columns(data, name)
        index = {", ".join(combo): i for i, combo in enumerate(itertools.product(*benchmarks[name]["params"]))}
        values = row.get("result") or []
        samples = row.get("samples") or []
        for combo in combos:
            i = index.get(combo, 0 if combo == "" else None)
            label = f"{name}({combo})" if combo else name
            if i is None or i >= len(values) or values[i] is None:
                continue  # failed in that commit: nothing to sample
            if not _is_value(values[i]):
                if runs_known:
                    return f"{label} has no result (NaN: not selected by the run that timed it)"
                continue  # skipped there
            got = len(samples[i]) if i < len(samples) and samples[i] is not None else 0
            if got != want:
                return (f"{label} has {got} samples, not {rounds} rounds x {repeat}"
                        + (" (no samples recorded: timed by make bench?)" if got == 0 else ""))
    return None


def environment_change(record: dict | None, now: dict) -> str | None:
    """Why the recorded environment differs from ``now`` (None when it is the same)."""
    if record is None:
        return "no environment record for it"
    if record_environment.same_environment(record, now):
        return None
    changed = record_environment.differing_fields(record, now)
    return "its environment differs from now in " + ", ".join(changed or ["its record"])


def why_not_reusable(data: dict, benchmarks: dict, cases: dict, track_names, rounds: int, repeat: int,
                     record: dict | None, now: dict, runs_known: bool = True) -> str | None:
    """The first rule a commit's results break (None: they may be reused). ``cases``:
    the timing cases compared that run at the commit (see sample_mismatch)."""
    return (stale_benchmark(data, benchmarks, [*sorted(cases), *sorted(track_names)])
            or sample_mismatch(data, benchmarks, cases, rounds, repeat, runs_known)
            or environment_change(record, now))
