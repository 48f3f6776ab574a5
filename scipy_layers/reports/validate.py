"""What asv's JSON files must hold before the reader trusts a field of them.

Every check raises ResultsError naming the file and the field, so a malformed but
parseable file is one line from the command (exit code 2), never a traceback or a
silently wrong table. The checks follow asv 0.6's results format (version 2); see the
reader for how the fields are used.
"""
from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np

from .errors import ResultsError

# asv's files are megabytes (the default grid: 0.2 MB per commit, a few MB with samples);
# a file past this is not one, and reading it whole could exhaust memory.
MAX_FILE_BYTES = 256 * 2 ** 20
# The suite's largest parameter grid has hundreds of combinations; a grid this large is
# a corrupt file, and expanding it would exhaust memory.
MAX_GRID = 1_000_000
# asv names a benchmark module.Class.method (or module.function), dotted Python names.
BENCHMARK_NAME = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+", re.ASCII)
PARAM_NAME = re.compile(r"[A-Za-z_]\w*", re.ASCII)
COMMIT_HASH = re.compile(r"[0-9a-fA-F]{7,64}")
# pandas' Timestamp covers 1677-2262: commit dates in ms since 1970 inside that.
DATE_RANGE_MS = 9.2e15
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")
_NUMBER_OR_NULL = frozenset({int, float, type(None)})


class _DuplicateKey(Exception):
    pass


def _unique_keys(pairs):
    result = dict(pairs)
    if len(result) != len(pairs):
        seen = set()
        for key, _ in pairs:
            if key in seen:
                raise _DuplicateKey(key)
            seen.add(key)
    return result


def load_json(path: Path):
    """Parsed JSON of ``path``, or a ResultsError saying why it cannot be trusted."""
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise ResultsError(path, f"is {size} bytes, larger than any asv file "
                                     f"(this reader stops at {MAX_FILE_BYTES})")
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ResultsError(path, "is missing") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ResultsError(path, f"cannot be read ({exc})") from None
    if not text.strip():
        raise ResultsError(path, "is empty")
    try:
        # Python's json reads asv's NaN (a skipped result) and Infinity.
        data = json.loads(text, object_pairs_hook=_unique_keys)
    except _DuplicateKey as exc:
        raise ResultsError(path, f"holds a duplicate key {exc.args[0]!r} (which one counts is "
                                 "up to the reader)") from None
    except RecursionError:
        raise ResultsError(path, "is nested too deep to be an asv file") from None
    except json.JSONDecodeError as exc:
        raise ResultsError(path, f"is not valid JSON ({exc.msg}, line {exc.lineno} "
                                 f"column {exc.colno})") from None
    except ValueError as exc:  # e.g. an integer past Python's digit limit
        raise ResultsError(path, f"is not valid JSON ({exc})") from None
    if _SURROGATE_ESCAPE.search(text):
        try:
            json.dumps(data, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            raise ResultsError(path, "holds a string that is not valid Unicode (an unpaired "
                                     "surrogate escape)") from None
    return data


def load_machine_file(path: Path, kind: str, version: int, machine: str) -> dict:
    """The JSON object at ``path`` that a versioned tool wrote for one machine (an
    environment record, a calibration), its 'version' and 'machine' checked: a
    ResultsError naming the file and the field otherwise."""
    data = load_json(path)
    if not isinstance(data, dict):
        raise ResultsError(path, f"is not a JSON object (a {kind})")
    if type(data.get("version")) is not int or data["version"] != version:  # (not true, 1.0)
        raise ResultsError(path, f"has {kind} version {data.get('version')!r:.40}; "
                                 f"this reader knows version {version}")
    if not isinstance(data.get("machine"), str):
        raise ResultsError(path, f"'machine' is not a string: {data.get('machine')!r:.60}")
    if data["machine"] != machine:
        raise ResultsError(path, f"'machine' {data['machine']!r:.60} is not its folder's {machine!r}")
    return data


def _is_number(value) -> bool:
    return type(value) in (int, float)


def _text(value, limit=60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def check_benchmarks(path: Path, data, reserved: set[str]) -> dict[str, dict]:
    """benchmarks.json: name -> {param_names, unit, version, ...}, every field used checked."""
    if not isinstance(data, dict):
        raise ResultsError(path, "is not a JSON object of benchmarks")
    benchmarks = {name: info for name, info in data.items() if name != "version"}
    for name, info in benchmarks.items():
        if not BENCHMARK_NAME.fullmatch(name):
            raise ResultsError(path, f"benchmark name {name!r} is not module.Class.method")
        if not isinstance(info, dict) or "version" not in info:
            raise ResultsError(path, f"entry {name!r} has no 'version'")
        if not isinstance(info["version"], (str, int)) or isinstance(info["version"], bool):
            raise ResultsError(path, f"entry {name!r}: 'version' is not a string")
        names = info.get("param_names", [])
        if not isinstance(names, list) or not all(
                isinstance(n, str) and PARAM_NAME.fullmatch(n) for n in names):
            raise ResultsError(path, f"entry {name!r}: 'param_names' is not a list of names")
        if len(set(names)) != len(names):
            raise ResultsError(path, f"entry {name!r}: 'param_names' repeats a name")
        clash = [n for n in names if n in reserved]
        if clash:
            raise ResultsError(path, f"entry {name!r}: parameter {clash[0]!r} has the name of a "
                                     "report column")
        if info.get("unit") is not None and not isinstance(info["unit"], str):
            raise ResultsError(path, f"entry {name!r}: 'unit' is not a string")
    return benchmarks


def check_results_file(path: Path, data, required: tuple[str, ...], api_version: int):
    """The header of a results file: (commit, date_ms, machine or None, env, columns,
    results), each checked."""
    if not isinstance(data, dict):
        raise ResultsError(path, "is not a JSON object (an asv results file)")
    missing = [key for key in required if key not in data]
    if missing:
        raise ResultsError(path, f"lacks key(s) {', '.join(missing)} of an asv results file")
    if data.get("version", api_version) != api_version:
        raise ResultsError(path, f"has results format version {_text(data.get('version'))}; "
                                 f"this reader knows version {api_version}")
    commit = data["commit_hash"]
    if not isinstance(commit, str) or not COMMIT_HASH.fullmatch(commit):
        raise ResultsError(path, f"'commit_hash' is not a commit hash (7-64 hex digits): {_text(commit)}")
    date = data["date"]
    if not _is_number(date) or not abs(date) < DATE_RANGE_MS:
        raise ResultsError(path, f"'date' is not a commit date in ms since 1970: {_text(date)}")
    env = data["env_name"]
    if not isinstance(env, str) or not env:
        raise ResultsError(path, f"'env_name' is not a name: {_text(env)}")
    params = data.get("params", {})
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise ResultsError(path, f"'params' is not an object of machine fields: {_text(params)}")
    machine = params.get("machine")
    if machine is not None and (not isinstance(machine, str) or not machine):
        raise ResultsError(path, f"params.machine is not a name: {_text(machine)}")
    return (commit, date, machine, env, *result_table(path, data))


def result_table(path: Path, data: dict) -> tuple[list, dict]:
    """A results file's (result_columns, results), each checked (its rows: check_row)."""
    columns = data.get("result_columns")
    if (not isinstance(columns, list) or not all(isinstance(c, str) for c in columns)
            or len(set(columns)) != len(columns)):
        raise ResultsError(path, "result_columns is not a list of distinct names")
    if "result" not in columns or "params" not in columns:
        raise ResultsError(path, "has result_columns without 'result' and 'params'")
    results = data.get("results")
    if not isinstance(results, dict):
        raise ResultsError(path, "'results' is not an object of benchmarks")
    if not results:
        raise ResultsError(path, "holds no benchmark results (asv rm leaves such a file "
                                 "when it removes every benchmark a run stored: delete it)")
    return columns, results


def check_row(path: Path, name: str, row, columns: list[str]) -> tuple[dict, int]:
    """One benchmark's row: (column -> cell, number of parameter combinations)."""
    if not BENCHMARK_NAME.fullmatch(name):
        raise ResultsError(path, f"benchmark name {name!r} is not module.Class.method")
    if not isinstance(row, list):
        raise ResultsError(path, f"benchmark {name!r}: row is not a list")
    if len(row) > len(columns):
        raise ResultsError(path, f"benchmark {name!r}: row is longer than result_columns")
    cells = dict(zip(columns, row))
    params = cells.get("params")
    if not isinstance(params, list) or not all(
            isinstance(p, list) and p and all(isinstance(v, str) for v in p) for p in params):
        raise ResultsError(path, f"benchmark {name!r}: params is not a list of non-empty lists "
                                 "of repr() strings")
    size = math.prod(len(p) for p in params)
    if size > MAX_GRID:
        raise ResultsError(path, f"benchmark {name!r}: params make {size} combinations, more "
                                 f"than any asv run ({MAX_GRID})")
    version = cells.get("version")
    if version is not None and not isinstance(version, str):
        raise ResultsError(path, f"benchmark {name!r}: version is not a string")
    return cells, size


def numbers(path: Path, name: str, key: str, values, size: int) -> np.ndarray:
    """A list of ``size`` numbers or nulls as floats (null -> NaN); null for the whole
    list means all null."""
    if values is None:
        return np.full(size, np.nan)
    if not isinstance(values, list) or len(values) != size:
        count = len(values) if isinstance(values, list) else "no"
        raise ResultsError(path, f"benchmark {name!r}: {key} holds {count} values for {size} "
                                 "parameter combinations")
    if not set(map(type, values)) <= _NUMBER_OR_NULL:
        bad = next(v for v in values if type(v) not in _NUMBER_OR_NULL)
        raise ResultsError(path, f"benchmark {name!r}: {key} holds {_text(bad)}, not a number or null")
    try:
        return np.array(values, dtype=float)
    except OverflowError:
        raise ResultsError(path, f"benchmark {name!r}: {key} holds a number too large for a "
                                 "float") from None


def check_values(path: Path, name: str, method: str, values: np.ndarray) -> None:
    """Times are finite and >= 0; gradient errors >= 0 (+inf: a non-finite mismatch).
    NaN (skipped) and null (failed) pass."""
    what = ("time" if method.startswith("time_") else
            "error" if method.startswith("track_max_") and method.endswith("_error") else None)
    if what is None:
        return
    if (values < 0).any():
        raise ResultsError(path, f"benchmark {name!r}: result holds a negative {what}")
    if what == "time" and np.isinf(values).any():
        raise ResultsError(path, f"benchmark {name!r}: result holds an infinite time")


def sample_lists(path: Path, name: str, values, size: int) -> list:
    """asv's ``samples`` column: per parameter combination a list of sample times (the
    rounds one after another) or null. Returns arrays (or None) after checking them."""
    if values is None:
        return [None] * size
    if not isinstance(values, list) or len(values) != size:
        count = len(values) if isinstance(values, list) else "no"
        raise ResultsError(path, f"benchmark {name!r}: samples holds {count} lists for {size} "
                                 "parameter combinations")
    out = []
    for entry in values:
        if entry is None:
            out.append(None)
            continue
        if not isinstance(entry, list) or not set(map(type, entry)) <= {int, float}:
            raise ResultsError(path, f"benchmark {name!r}: samples holds {_text(entry)}, not a "
                                     "list of numbers or null")
        try:
            array = np.array(entry, dtype=float)
        except OverflowError:
            raise ResultsError(path, f"benchmark {name!r}: samples holds a number too large for "
                                     "a float") from None
        if not np.isfinite(array).all() or (array < 0).any():
            raise ResultsError(path, f"benchmark {name!r}: samples holds a time that is negative "
                                     "or not finite")
        out.append(array)
    return out
