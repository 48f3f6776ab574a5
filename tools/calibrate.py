"""Calibrate this machine, one thread: memory bandwidth and peak GEMM and FFT rates, the
figures the reports divide each case's bytes and flops by to bound its time from below
(scipy_layers/reports/limits.py; reports/README.md "The machine's limit")::

    python tools/calibrate.py --machine NAME [--print]

writes ``<results_dir>/../environments/<machine>/calibration.json`` (``.asv/environments``,
beside the per-commit environment records; asv reads every .json under results/, so never
there). One file per machine, replaced by each run; the per-commit records are never
touched (tools/compare_commits.py compares those to decide reuse, and these timings are
too noisy to take part in that). The figures are taken where the benchmarks run: this
script re-runs itself with the asv environment's python and asv.conf.json's
``matrix.env_nobuild`` variables (as tools/record_environment.py does), settles malloc as
the suite's timing processes do (benchmarks/common.settle_allocator), pins torch and
every threadpoolctl library to one thread, and times, each as the median of ``--repeats``
calls after one warm-up call:

- ``memory_bandwidth`` (bytes/s): ``np.copyto`` of a 256 MiB float64 array into another;
  bytes = read + write = 2 x 256 MiB;
- ``gemm_float32``, ``gemm_float64`` (flop/s): ``np.matmul(a, b, out=c)`` of 1024 x 1024
  matrices; flops = 2 n^3;
- ``fft_float32``, ``fft_float64`` (flop/s): ``scipy.fft.rfft2`` of a 1024 x 1024 array;
  flops = 2.5 N log2 N for a real transform of N points (FFTW's convention: half the
  5 N log2 N of a complex one).

A few seconds in all. Schema version 1 (the report's reader checks it)::

    {"version": 1, "machine": str, "recorded_at": ISO time,
     "environment": {"cpu", "blas", "threads", "overrides", "versions"},   # as in the
                                        # per-commit records (tools/record_environment.py)
     "figures": {name: {"unit": "bytes/s" | "flop/s", "median": float, "q25": float,
                        "q75": float, "repeats": int, "work": float, "seconds": [float],
                        "timed": str}}}

``median``, ``q25`` and ``q75`` are rates (work / seconds of each call); ``work`` is the
bytes or flops of one call, ``seconds`` each timed call.
"""
from __future__ import annotations

import argparse
import datetime
import json
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import record_environment  # noqa: E402
from help_text import description  # (tools/, this script's folder)

SCHEMA_VERSION = 1
FILE_NAME = "calibration.json"
DTYPES = ("float32", "float64")
FIGURES = ("memory_bandwidth", *(f"gemm_{d}" for d in DTYPES), *(f"fft_{d}" for d in DTYPES))
DEFAULTS = {"copy_mib": 256.0, "gemm_n": 1024, "fft_n": 1024, "repeats": 7}
SEED = 1234


class CalibrationError(Exception):
    """A problem the user can fix; main() prints it on one line and exits with status 2."""


def real_transform_flops(points: int) -> float:
    """2.5 N log2 N: FFTW's flop count for a real transform of N points."""
    return 2.5 * points * math.log2(points) if points > 1 else 0.0


def time_calls(call, repeats: int) -> list[float]:
    """Seconds of each of ``repeats`` calls of ``call``, after one untimed warm-up call
    (which faults in fresh pages and builds any FFT plan)."""
    call()
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        seconds.append(time.perf_counter() - start)
    return seconds


def figure(unit: str, work: float, seconds: list[float], timed: str) -> dict:
    """A figure: the rate work / seconds of each call, its median and quartiles."""
    import numpy as np
    rates = work / np.maximum(np.asarray(seconds), 1e-12)  # a timer tick is not 0 s
    q25, median, q75 = np.percentile(rates, [25, 50, 75])
    return {"unit": unit, "median": float(median), "q25": float(q25), "q75": float(q75),
            "repeats": len(seconds), "work": float(work), "seconds": [float(s) for s in seconds],
            "timed": timed}


def measure(copy_mib: float, gemm_n: int, fft_n: int, repeats: int) -> dict:
    """Every figure, in this process (torch and BLAS pinned to one thread by the caller)."""
    import numpy as np
    import scipy.fft
    rng = np.random.default_rng(SEED)
    figures = {}
    elements = max(1, int(copy_mib * 2**20) // 8)
    source, target = np.ones(elements), np.empty(elements)
    figures["memory_bandwidth"] = figure(
        "bytes/s", 2 * source.nbytes, time_calls(lambda: np.copyto(target, source), repeats),
        f"np.copyto(dst, src) of two float64 arrays of {source.nbytes} bytes; "
        f"bytes = 2 x {source.nbytes} (read + write)")
    del source, target
    for dtype in DTYPES:
        a, b = (rng.standard_normal((gemm_n, gemm_n)).astype(dtype) for _ in range(2))
        out = np.empty_like(a)
        figures[f"gemm_{dtype}"] = figure(
            "flop/s", 2.0 * gemm_n**3, time_calls(lambda: np.matmul(a, b, out=out), repeats),
            f"np.matmul(a, b, out=c) of {gemm_n}x{gemm_n} {dtype} matrices; flops = 2 n^3")
    for dtype in DTYPES:
        x = rng.standard_normal((fft_n, fft_n)).astype(dtype)
        figures[f"fft_{dtype}"] = figure(
            "flop/s", real_transform_flops(fft_n * fft_n),
            time_calls(lambda: scipy.fft.rfft2(x, workers=1), repeats),
            f"scipy.fft.rfft2(x, workers=1) of a {fft_n}x{fft_n} {dtype} array; "
            f"flops = 2.5 N log2 N, N = {fft_n * fft_n} (a real transform, FFTW's convention)")
    return figures


def calibrate_here(sizes: dict) -> dict:
    """The environment (as a per-commit record describes it) and the figures, measured in
    this interpreter with torch and every threadpoolctl library at one thread."""
    import threadpoolctl
    import torch
    environment = record_environment.collect()
    # malloc as the suite's timing processes have it: at glibc's start-up thresholds a
    # timed call may fault its result's pages in again (the first timed 512x512 float64
    # rfft2 faulted ~500); appended, so the packages installed here still come first
    sys.path.append(str(record_environment.ROOT))
    from benchmarks.common import settle_allocator
    settle_allocator()
    torch.set_num_threads(1)
    with threadpoolctl.threadpool_limits(limits=1):
        figures = measure(**sizes)
    environment["threads"]["torch"] = torch.get_num_threads()
    return {"environment": environment, "figures": figures}


def is_calibration(measured) -> bool:
    """Whether an inner run's output holds what this script reads of it."""
    return (isinstance(measured, dict) and isinstance(measured.get("environment"), dict)
            and isinstance(measured.get("figures"), dict)
            and all(isinstance(measured["figures"].get(name), dict)
                    and isinstance(measured["figures"][name].get("median"), (int, float))
                    for name in FIGURES))


def calibrate_in(python: Path, env_vars: dict, sizes: dict) -> dict:
    """calibrate_here() run by ``python`` with ``env_vars`` added, as asv starts the
    benchmarks (record_environment.run_child: its last line, checked before it replaces
    the file)."""
    arguments = [f"--{k.replace('_', '-')}={v}" for k, v in sizes.items()]
    return record_environment.run_child(python, [__file__, "--measure", *arguments], env_vars,
                                        600, "calibrating", "calibration", is_calibration)


def make_calibration(machine: str, measured: dict, now: datetime.datetime | None = None) -> dict:
    """The file: the caller's version, machine and time, and of the inner run's output only
    its environment and figures (one that named a machine or version of its own wrote it
    into the file, which the report then refused or misread)."""
    now = now or datetime.datetime.now(datetime.timezone.utc)
    return {"version": SCHEMA_VERSION, "machine": machine,
            "recorded_at": now.isoformat(timespec="seconds"),
            "environment": measured["environment"], "figures": measured["figures"]}


def report_refusal(calibration: dict, machine: str) -> str | None:
    """What the report's reader (scipy_layers.reports.calibration) would refuse in
    ``calibration``, or None: checked before it is printed or replaces the file. The
    inner run's output passes :func:`is_calibration` with a median of NaN, 1e999 or true,
    a quartile missing or an empty environment, and a file the report refuses stops
    every report after it (hostile pass 147)."""
    from scipy_layers.reports.calibration import read_calibration
    from scipy_layers.reports.errors import ResultsError
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / FILE_NAME
        path.write_text(json.dumps(calibration))  # (as write_record writes it)
        try:
            read_calibration(path, machine)
        except ResultsError as error:
            return error.problem
    return None


def calibration_path(environments: Path, machine: str) -> Path:
    return environments / machine / FILE_NAME


def one_line_summary(calibration: dict) -> str:
    figures = calibration["figures"]
    parts = [f"copy {figures['memory_bandwidth']['median'] / 1e9:.3g} GB/s"]
    parts += [f"{name.replace('_', ' ')} {figures[name]['median'] / 1e9:.3g} GFLOP/s"
              for name in FIGURES[1:]]
    return ", ".join(parts)


def positive(kind, smallest=None, why=""):
    """An argument's parser: a finite number > 0 (>= ``smallest``, for ``why``)."""
    def parse(text: str):
        value = kind(text)
        if not (math.isfinite(value) and value > 0):
            raise argparse.ArgumentTypeError(f"must be {'a finite number ' * (kind is float)}"
                                             f"> 0, got {text!r}")
        if smallest is not None and value < smallest:
            raise argparse.ArgumentTypeError(f"must be >= {smallest} ({why}), got {text!r}")
        return value
    return parse


def main(argv: list[str] | None = None) -> int:
    # --help: the docstring's first paragraph (its first line alone stopped mid-sentence),
    # the "::" before its literal block read as a full stop
    parser = argparse.ArgumentParser(
        description=description(__doc__))
    parser.add_argument("--machine", help="asv machine name (tools/asv_machine.py prints it)")
    parser.add_argument("--config", type=Path, default=record_environment.ROOT / "asv.conf.json")
    parser.add_argument("--python", type=Path,
                        help="interpreter to measure in (default: the asv environment's)")
    parser.add_argument("--print", action="store_true", help="print the calibration, write nothing")
    parser.add_argument("--copy-mib", type=positive(float), default=DEFAULTS["copy_mib"],
                        help="size of the copied array, MiB (default %(default)s)")
    parser.add_argument("--gemm-n", type=positive(int), default=DEFAULTS["gemm_n"],
                        help="GEMM matrix order (default %(default)s)")
    parser.add_argument("--fft-n", type=positive(int, 2, "a transform of one point does no "
                                                "arithmetic"), default=DEFAULTS["fft_n"],
                        help="FFT array side (default %(default)s)")
    parser.add_argument("--repeats", type=positive(int), default=DEFAULTS["repeats"],
                        help="timed calls per figure (default %(default)s)")
    parser.add_argument("--measure", action="store_true", help=argparse.SUPPRESS)  # the inner run
    args = parser.parse_args(argv)
    sizes = {k: getattr(args, k) for k in DEFAULTS}
    if args.measure:
        print(json.dumps(calibrate_here(sizes)))
        return 0
    try:
        if not args.machine:
            raise CalibrationError("--machine is required (the asv machine name)")
        if not record_environment.plain_folder_name(args.machine):
            raise CalibrationError(f"--machine {args.machine!r} is not a plain folder name "
                                   "(tools/asv_machine.py prints the name to give)")
        env = record_environment.asv_environment(args.config)
        python = args.python or env.python
        calibration = make_calibration(args.machine, calibrate_in(python, env.env_vars, sizes))
        refused = report_refusal(calibration, args.machine)
        if refused is not None:  # (before anything is written over the last calibration)
            raise CalibrationError(f"the calibration measured with {python} is not one the "
                                   f"report reads: {refused}")
        if args.print:
            print(json.dumps(calibration, indent=2, sort_keys=True))
        else:
            path = calibration_path(env.environments, args.machine)
            record_environment.write_record(path, calibration)
            print(f"calibration of {args.machine} ({one_line_summary(calibration)}): {path}")
    except (CalibrationError, record_environment.RecordError, subprocess.TimeoutExpired,
            OSError) as exc:
        print(f"calibrate: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
