"""The environment each result ran in: CPU, BLAS libraries and kernels, thread limits,
OpenBLAS/MKL overrides and package versions, from the records ``make compare`` and
``make bench`` write beside asv's results directory (asv reads every .json under
results/, so never there)::

    <results_dir>/../environments/<machine>/<full commit hash>.json

Schema version 1 (tools/record_environment.py writes it)::

    {"version": 1, "machine": str, "commit": str, "recorded_at": str,
     "cpu": {"model_name": str, "family": str, "model": str, "flags": [str], "num_cpu": int},
     "blas": [threadpoolctl.threadpool_info() entries],
     "threads": {"torch": int, "OMP_NUM_THREADS": str|null, ...},
     "overrides": {"OPENBLAS_CORETYPE": str|null, ...},
     "versions": {"torch": str, "numpy": str, "scipy": str}}

A result without a record gets blank environment columns; a malformed record is a
ResultsError naming the file and the field.
"""
from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from .errors import ResultsError
from .validate import load_machine_file

ENV_COLUMNS = ["cpu", "blas", "thread_limits", "overrides", "versions"]
RECORD_VERSION = 1
FOLDER = "environments"
_PLAIN_FOLDER = re.compile(r"[^/\\\0]+")
_PACKAGE = re.compile(r"site-packages[/\\]([^/\\]+?)(?:\.libs)?[/\\]")


def environments_dir(results_dir: Path) -> Path:
    return Path(results_dir).absolute().parent / FOLDER


def _require(path, record, key, kinds, where=""):
    value = record.get(key) if isinstance(record, dict) else None
    ok = isinstance(value, kinds) and not (isinstance(value, bool) and bool not in _tuple(kinds))
    if not ok:
        names = "/".join(k.__name__ if k is not type(None) else "null" for k in _tuple(kinds))
        raise ResultsError(path, f"'{where}{key}' is not {names}: {value!r:.60}")
    return value


def _tuple(kinds):
    return kinds if isinstance(kinds, tuple) else (kinds,)


def read_record(path: Path, machine: str, commit: str) -> dict:
    """The record at ``path``, every field the reports use checked."""
    record = load_machine_file(path, "environment record", RECORD_VERSION, machine)
    if _require(path, record, "commit", str) != commit:
        raise ResultsError(path, f"'commit' {record['commit']!r:.60} is not its file name's {commit!r}")
    _require(path, record, "recorded_at", str)
    check_description(path, record)
    return record


def check_description(path: Path, record: dict, prefix: str = "") -> None:
    """Check what a record says of the environment (cpu, blas, threads, overrides,
    versions); ``prefix`` names where it sits in the file, for the error message (the
    calibration file holds one under 'environment.')."""
    cpu = _require(path, record, "cpu", dict, prefix)
    for key in ("model_name", "family", "model"):
        _require(path, cpu, key, (str, int), f"{prefix}cpu.")
    flags = _require(path, cpu, "flags", list, f"{prefix}cpu.")
    if not all(isinstance(f, str) for f in flags):
        raise ResultsError(path, f"'{prefix}cpu.flags' is not a list of strings")
    _require(path, cpu, "num_cpu", int, f"{prefix}cpu.")
    for i, library in enumerate(_require(path, record, "blas", list, prefix)):
        where = f"{prefix}blas[{i}]."
        if not isinstance(library, dict):
            raise ResultsError(path, f"'{prefix}blas[{i}]' is not an object")
        for key in ("user_api", "internal_api"):
            _require(path, library, key, str, where)
        for key in ("version", "architecture"):
            if library.get(key) is not None:
                _require(path, library, key, str, where)
        _require(path, library, "num_threads", int, where)
    threads = _require(path, record, "threads", dict, prefix)
    _require(path, threads, "torch", int, f"{prefix}threads.")
    for key, value in threads.items():
        if key != "torch" and value is not None and not isinstance(value, str):
            raise ResultsError(path, f"'{prefix}threads.{key}' is not str/null: {value!r:.60}")
    for section in ("overrides", "versions"):
        entries = _require(path, record, section, dict, prefix)
        for key, value in entries.items():
            if not (isinstance(value, str) or (value is None and section == "overrides")):
                raise ResultsError(path, f"'{prefix}{section}.{key}' is not a string: {value!r:.60}")


def compact(record: dict) -> dict[str, str]:
    """The record as the report's short columns (see reports/README.md)."""
    cpu = record["cpu"]
    libraries = []
    for library in record["blas"]:
        if library["user_api"] != "blas":
            continue
        package = _PACKAGE.search(str(library.get("filepath", "")))
        text = " ".join(str(p) for p in (library["internal_api"], library.get("version"),
                                         library.get("architecture")) if p)
        text = f"{package.group(1)}: {text}" if package else text
        libraries.append(f"{text} ({library['num_threads']} thr)")
    limits = [f"torch={record['threads']['torch']}"] + [
        f"{k}={v}" for k, v in sorted(record["threads"].items()) if k != "torch" and v is not None]
    return {
        "cpu": " ".join([str(cpu["model_name"]), f"fam {cpu['family']} model {cpu['model']}",
                         *cpu["flags"]]) + f", {cpu['num_cpu']} cpus",
        "blas": "; ".join(dict.fromkeys(libraries)),
        "thread_limits": " ".join(limits),
        "overrides": " ".join(f"{k}={v}" for k, v in sorted(record["overrides"].items()) if v is not None),
        "versions": ", ".join(f"{k} {v}" for k, v in sorted(record["versions"].items())),
    }


def join_environments(table: pd.DataFrame, results_dir: Path) -> pd.DataFrame:
    """``table`` with the ENV_COLUMNS inserted after ``env``: each (machine, commit)'s
    record, compacted; blank where there is none."""
    folder = environments_dir(results_dir)
    found = {}
    for machine, commit in table[["machine", "commit"]].drop_duplicates().itertuples(index=False):
        # The path is built from names the results hold: only plain folder names count.
        if not _PLAIN_FOLDER.fullmatch(machine) or machine in (".", ".."):
            continue
        path = folder / machine / f"{commit}.json"
        if path.is_file():
            found[(machine, commit)] = compact(read_record(path, machine, commit))
    at = list(table.columns).index("env") + 1
    keys = list(zip(table["machine"], table["commit"]))
    for offset, column in enumerate(ENV_COLUMNS):
        values = [found[k][column] if k in found else "" for k in keys]
        table.insert(at + offset, column, values)
    return table


def differences(a: pd.Series, b: pd.Series) -> str:
    """'blas: X -> Y; overrides:  -> OPENBLAS_CORETYPE=Haswell' for the environment
    columns that differ between two rows; '' when equal."""
    return "; ".join(f"{c}: {a[c]} -> {b[c]}" for c in ENV_COLUMNS if a[c] != b[c])
