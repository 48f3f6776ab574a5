"""Record the environment a commit's benchmarks ran in: CPU, BLAS libraries and their
kernels (threadpoolctl), thread counts, the OpenBLAS/MKL overrides in force, and the
torch/numpy/scipy versions. One JSON per (machine, commit)::

    python tools/record_environment.py --machine NAME --commit REV [--print]

writes ``<results_dir>/../environments/<machine>/<full hash>.json`` (``.asv/environments``
beside asv's ``.asv/results``: asv reads every .json under results/, so never there).
The figures are taken where the benchmarks run: this script re-runs itself with the asv
environment's python and the variables of asv.conf.json's ``matrix.env_nobuild``, so
threadpoolctl sees the BLAS the benchmarks see. The reports read the file (schema
version 1, below); tools/compare_commits.py reuses results only when it still matches.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

import asv_config
from help_text import description  # (tools/, this script's folder)

ROOT = Path(__file__).resolve().parent.parent
SCHEMA_VERSION = 1
THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
OVERRIDE_VARS = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "MKL_DEBUG_CPU_TYPE", "MKL_ENABLE_INSTRUCTIONS")
# Fields that say when and for which commit, not what the environment was.
NOT_ENVIRONMENT = ("recorded_at", "commit")


class RecordError(Exception):
    """A problem the user can fix; main() prints it on one line and exits with status 2."""


def _library_key(library: dict) -> tuple:
    """threadpoolctl lists libraries in the order they were loaded, which varies: sort them."""
    return tuple(str(library.get(k)) for k in ("user_api", "internal_api", "prefix", "version", "filepath"))


def collect() -> dict:
    """What this interpreter, in this process environment, gives the benchmarks.

    Imports what the suite imports first, so that threadpoolctl lists every BLAS and
    OpenMP library the benchmarks load (each package loads its own)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import asv_machine
    import numpy
    import scipy
    import scipy.fft  # noqa: F401
    import scipy.linalg  # noqa: F401
    import scipy.signal  # noqa: F401
    import threadpoolctl
    import torch
    try:
        import scipy_layers  # noqa: F401  (whatever else the layers load)
    except ImportError:
        pass
    cpu = asv_machine.read_cpuinfo()
    return {
        "cpu": {"model_name": cpu["model_name"], "family": cpu["family"], "model": cpu["model"],
                "flags": cpu["flags"], "num_cpu": len(os.sched_getaffinity(0))},
        "blas": sorted(threadpoolctl.threadpool_info(), key=_library_key),
        "threads": {"torch": torch.get_num_threads(), **{v: os.environ.get(v) for v in THREAD_VARS}},
        "overrides": {v: os.environ.get(v) for v in OVERRIDE_VARS},
        "versions": {"torch": torch.__version__, "numpy": numpy.__version__, "scipy": scipy.__version__},
    }


def make_record(machine: str, commit: str, description: dict, now: datetime.datetime | None = None) -> dict:
    now = now or datetime.datetime.now(datetime.timezone.utc)
    # (the description first: one that named a version, machine, commit or time of its
    # own wrote them, over another commit's record; hostile pass 146)
    return {**description, "version": SCHEMA_VERSION, "machine": machine, "commit": commit,
            "recorded_at": now.isoformat(timespec="seconds")}


def validate(record: dict) -> list[str]:
    """The ways ``record`` departs from schema version 1 (empty when it conforms)."""
    problems = []
    expected = {"version": int, "machine": str, "commit": str, "recorded_at": str, "cpu": dict,
                "blas": list, "threads": dict, "overrides": dict, "versions": dict}
    for key, kind in expected.items():
        if not isinstance(record.get(key), kind):
            problems.append(f"{key}: expected {kind.__name__}, got {type(record.get(key)).__name__}")
    if problems:
        return problems
    if record["version"] != SCHEMA_VERSION:
        problems.append(f"version: expected {SCHEMA_VERSION}, got {record['version']}")
    if not re.fullmatch(r"[0-9a-f]{40}", record["commit"]):
        problems.append(f"commit: expected a full 40-hex hash, got {record['commit']!r}")
    try:
        datetime.datetime.fromisoformat(record["recorded_at"])
    except ValueError:
        problems.append(f"recorded_at: not an ISO time: {record['recorded_at']!r}")
    problems += [f"blas[{i}]: expected dict" for i, library in enumerate(record["blas"])
                 if not isinstance(library, dict)]
    cpu_keys = {"model_name": str, "family": str, "model": str, "flags": list, "num_cpu": int}
    problems += [f"cpu.{k}: expected {t.__name__}" for k, t in cpu_keys.items()
                 if not isinstance(record["cpu"].get(k), t)]
    if not isinstance(record["threads"].get("torch"), int):
        problems.append("threads.torch: expected int")
    for group, names in (("threads", THREAD_VARS), ("overrides", OVERRIDE_VARS)):
        problems += [f"{group}.{n}: expected str or null" for n in names
                     if n not in record[group] or not isinstance(record[group][n], (str, type(None)))]
    problems += [f"versions.{p}: expected str" for p in ("torch", "numpy", "scipy")
                 if not isinstance(record["versions"].get(p), str)]
    return problems


def _essence(record: dict) -> dict:
    """A record's environment: time and commit aside, and where a library file lies (a
    moved checkout loads the same library from elsewhere)."""
    kept = {k: v for k, v in record.items() if k not in NOT_ENVIRONMENT}
    kept["blas"] = sorted(({k: v for k, v in lib.items() if k != "filepath"}
                           for lib in record.get("blas") or []), key=_library_key)
    return kept


def same_environment(a: dict, b: dict) -> bool:
    """True when two records describe the same environment (_essence)."""
    return _essence(a) == _essence(b)


def differing_fields(old: dict, new: dict) -> list[str]:
    """The top-level fields whose environment (_essence) differs between two records,
    sorted (a field missing on one side reads as None there)."""
    old, new = _essence(old), _essence(new)
    return sorted(field for field in set(old) | set(new) if old.get(field) != new.get(field))


def changes(old: dict, new: dict) -> str:
    """What differs between two records' environments, for a warning (empty when
    nothing): each override and thread limit as ``NAME: 'old' -> 'new'`` (unset where
    None), any other field by name (differing_fields)."""
    fields = differing_fields(old, new)
    old, new = _essence(old), _essence(new)
    parts = []
    for field in ("overrides", "threads"):
        a, b = old.get(field) or {}, new.get(field) or {}
        parts += [f"{name}: {'unset' if a.get(name) is None else repr(a[name])} -> "
                  f"{'unset' if b.get(name) is None else repr(b[name])}"
                  for name in sorted(set(a) | set(b)) if a.get(name) != b.get(name)]
    parts += [field for field in fields if field not in ("overrides", "threads")]
    if not parts and old != new:  # (a field or name with None on one side only)
        parts.append("fields the record no longer has")
    return "; ".join(parts)


def store(record: dict, environments: Path, results: Path) -> Path:
    """write_record of ``record`` at its record_path, after a warning on stderr where the
    commit's record there describes another environment: asv merges each run's results
    into one file per commit, so results timed then and not now stay in it, under this
    record. Returns the path."""
    machine, commit = record["machine"], record["commit"]
    path = record_path(environments, machine, commit)
    previous = read_record(path)
    if previous is not None and not same_environment(previous, record):
        pattern = shlex.quote(str(results / machine)) + f"/{commit[:8]}-*.json"
        print(f"record_environment: warning: {commit[:8]} on {machine!r} ran in another "
              f"environment before ({changes(previous, record)}); results timed then and "
              f"not now stay in {pattern} and now carry this record: to time them all in "
              f"one environment, delete that file and run again", file=sys.stderr)
    write_record(path, record)
    return path


class AsvEnvironment(NamedTuple):
    name: str            # asv's environment name (results files carry it as env_name)
    python: Path         # the environment's interpreter
    env_vars: dict       # matrix.env_nobuild: what asv adds to the benchmarks' environment
    results: Path        # asv's results directory
    environments: Path   # where the records go: beside results/


def asv_environment(config: Path) -> AsvEnvironment:
    """The project's one asv environment, as asv itself derives it from the config."""
    try:
        conf, envs = asv_config.environments(config)
    except asv_config.ConfigError as exc:
        raise RecordError(str(exc)) from None
    if len(envs) != 1:
        raise RecordError(f"{config}: expected one asv environment in the matrix, found {len(envs)}")
    base = config.resolve().parent
    results = base / conf.results_dir
    return AsvEnvironment(envs[0].name, base / conf.env_dir / envs[0].dir_name / "bin" / "python",
                          dict(envs[0].env_vars), results, results.parent / "environments")


def run_child(python: Path, arguments: list, env_vars: dict, timeout: float, doing: str,
              what: str, accepts) -> object:
    """The JSON value that ``python arguments`` prints on its stdout's last line, run with
    ``env_vars`` added to this process's environment, the way asv starts the benchmarks.
    A start-up banner may come before that line; a value ``accepts`` refuses is one
    RecordError ("{doing} with PYTHON printed no {what}"), before the caller writes anything.
    (collect() here and calibrate.py's measurements run this way.)"""
    if not python.exists():
        raise RecordError(f"asv environment python {python} not found: run asv first "
                          "(make bench or make compare create it)")
    # (errors="replace": a banner in another encoding must not end it in a traceback)
    proc = subprocess.run([str(python), *arguments], capture_output=True, text=True,
                          errors="replace", env={**os.environ, **env_vars}, timeout=timeout)
    if proc.returncode != 0:
        tail = proc.stderr.strip().splitlines()[-1:] or ["no output"]
        raise RecordError(f"{doing} with {python} failed: {tail[0]}")
    last = (proc.stdout.strip().splitlines() or [""])[-1]
    try:
        value = json.loads(last)
    except (ValueError, RecursionError):  # (RecursionError: nested past Python's limit)
        value = None
    if value is None or not accepts(value):
        seen = f"last line: {last!r:.80}" if last else "no output"
        raise RecordError(f"{doing} with {python} printed no {what} ({seen})")
    return value


def describe_in(python: Path, env_vars: dict) -> dict:
    """collect() run by ``python`` with ``env_vars`` added (run_child), checked as a
    record's description (description_problems) before any caller writes it."""
    description = run_child(python, [__file__, "--collect"], env_vars, 300,
                            "collecting the environment", "description",
                            lambda value: isinstance(value, dict))
    problems = description_problems(description)
    if problems:
        raise RecordError(f"the environment {python} described is not a record: "
                          f"{'; '.join(problems)}")
    return description


def description_problems(description: dict) -> list[str]:
    """How a record made of ``description`` departs from schema version 1, or from what
    the report reads of it (scipy_layers.reports.environment: a record it refuses stops
    every report after it, and compare_commits wrote records unchecked)."""
    problems = validate(make_record("check", "0" * 40, description))
    if problems:
        return problems
    from scipy_layers.reports.environment import check_description  # (pandas: lazily)
    from scipy_layers.reports.errors import ResultsError
    try:
        check_description("the description", description)
    except ResultsError as error:
        return [error.problem]
    return []


def plain_folder_name(name: str) -> bool:
    """Whether a --machine name is one folder: no separator, NUL or newline, not . or .."""
    return bool(re.fullmatch(r"[^/\\\0\n]+", name)) and name not in (".", "..")


def record_path(environments: Path, machine: str, commit: str) -> Path:
    return environments / machine / f"{commit}.json"


def write_record(path: Path, record: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    tmp.replace(path)


def read_record(path: Path) -> dict | None:
    """The record at ``path``, or None when it is absent or does not follow the schema."""
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError, RecursionError):  # (ValueError: JSON's errors and UTF-8's)
        return None
    return record if isinstance(record, dict) and not validate(record) else None


def full_hash(rev: str, cwd: Path = ROOT) -> str:
    """The commit ``rev`` names in the git repository of ``cwd``."""
    if subprocess.run(["git", "rev-parse", "--git-dir"], capture_output=True, cwd=cwd).returncode:
        raise RecordError(f"{cwd} (--config's folder) is not in a git repository: --commit "
                          f"{rev!r} is looked up in that folder's repository")
    proc = subprocess.run(["git", "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}"],
                          capture_output=True, text=True, cwd=cwd)
    if proc.returncode != 0:
        raise RecordError(f"--commit {rev!r} is not a commit of this repository "
                                "(give a hash, branch or tag)")
    return proc.stdout.strip()


def main(argv: list[str] | None = None) -> int:
    # --help: the docstring's first paragraph (its first line alone stopped mid-sentence),
    # the "::" before its literal block read as a full stop
    parser = argparse.ArgumentParser(
        description=description(__doc__))
    parser.add_argument("--machine", help="asv machine name (tools/asv_machine.py prints it)")
    parser.add_argument("--commit", default="HEAD", help="the commit benchmarked (default HEAD)")
    parser.add_argument("--config", type=Path, default=ROOT / "asv.conf.json")
    parser.add_argument("--print", action="store_true", help="print the record, write nothing")
    parser.add_argument("--check", action="store_true",
                        help="only check that asv can make the config's environment here (its "
                             "Python found): print nothing, or one line and exit 2")
    parser.add_argument("--collect", action="store_true", help=argparse.SUPPRESS)  # the inner run
    args = parser.parse_args(argv)
    if args.collect:
        print(json.dumps(collect()))
        return 0
    if args.check:  # (make bench and make results, before anything runs)
        try:
            asv_environment(args.config)
        except RecordError as exc:
            print(f"record_environment: error: {exc}", file=sys.stderr)
            return 2
        return 0
    try:
        if not args.machine:
            raise RecordError("--machine is required (the asv machine name)")
        if not plain_folder_name(args.machine):
            raise RecordError(f"--machine {args.machine!r} is not a plain folder name "
                              "(tools/asv_machine.py prints this machine's)")
        env = asv_environment(args.config)  # first: its folder is where --commit is looked up
        commit = full_hash(args.commit, args.config.resolve().parent)
        # (describe_in checks it before anything is written over an earlier record)
        record = make_record(args.machine, commit, describe_in(env.python, env.env_vars))
        if args.print:
            print(json.dumps(record, indent=2, sort_keys=True))
        else:
            path = store(record, env.environments, env.results)
            print(f"environment of {commit[:8]} on {args.machine}: {path}")
    except (RecordError, subprocess.TimeoutExpired, OSError) as exc:
        print(f"record_environment: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
