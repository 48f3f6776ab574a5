"""The machine's calibration, as the limit (``limits``) reads it: one file per machine,
beside the per-commit environment records, ``<results>/../environments/<machine>/
calibration.json`` (schema version 1: see tools/calibrate.py). A machine without one
gets blank limit columns; a malformed one is a ResultsError naming the file and the
field; a run whose environment record differs from it in what its rates depend on gets
no bound (``environment_differences``).
"""
from __future__ import annotations

import datetime
import math
import re
from dataclasses import dataclass
from pathlib import Path

from .environment import check_description, compact, environments_dir
from .errors import ResultsError
from .validate import load_machine_file

CALIBRATION_FILE = "calibration.json"
CALIBRATION_VERSION = 1
ITEMSIZE = {"float32": 4, "float64": 8}
FIGURE_UNITS = {"memory_bandwidth": "bytes/s",
                **{f"{family}_{dtype}": "flop/s" for family in ("gemm", "fft") for dtype in ITEMSIZE}}
_PLAIN_FOLDER = re.compile(r"[^/\\\0]+")


def _blank(value) -> bool:
    return value is None or value == "" or (isinstance(value, float) and math.isnan(value))


@dataclass(frozen=True)
class Calibration:
    """One machine's calibration file, checked."""
    path: Path
    machine: str
    recorded_at: str
    environment: dict[str, str]   # compacted, as timings.csv's environment columns
    figures: dict[str, dict]

    def rate(self, name: str) -> float:
        return self.figures[name]["median"]

    def bound(self, item, dtype: str) -> float:
        """Seconds: the lower bound on doing ``item`` (a limits.Work) in ``dtype``
        on this machine."""
        memory = item.elements * ITEMSIZE[dtype] / self.rate("memory_bandwidth")
        direct = item.direct_flops / self.rate(f"gemm_{dtype}")
        spectral = item.fft_flops / self.rate(f"fft_{dtype}")
        return max(memory, min(direct, spectral))


def _field(path, mapping, key, where, check, expected):
    value = mapping.get(key) if isinstance(mapping, dict) else None
    if not check(value):
        raise ResultsError(path, f"'{where}{key}' is not {expected}: {value!r:.60}")
    return value


def _positive(value) -> bool:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return False
    try:
        return math.isfinite(value) and value > 0
    except OverflowError:  # an integer no float holds
        return False


# What one core can do, per second, with room to spare both ways: a rate outside is a
# broken file (5e-324 made every bound inf, 1e300 made them 0), not a machine.
ONE_CORE_RATES = (1e6, 1e14)


def _check_rates(path, entry, where: str, unit: str) -> None:
    low, high = ONE_CORE_RATES
    for key in ("q25", "median", "q75"):
        value = _field(path, entry, key, where, _positive, "a positive number")
        if not low <= value <= high:
            raise ResultsError(path, f"'{where}{key}' is not a one-core rate ({low:.0e} to "
                                     f"{high:.0e} {unit}): {value!r:.60}")
    if not entry["q25"] <= entry["median"] <= entry["q75"]:
        raise ResultsError(path, f"'{where[:-1]}': q25, median, q75 are not in order: "
                                 f"{entry['q25']!r:.30}, {entry['median']!r:.30}, {entry['q75']!r:.30}")


# What the calibrated rates depend on: the hardware, the BLAS libraries and their kernel,
# the kernel overrides (one machine name covers runs with and without overrides: make
# bench keeps the caller's, make results drops them, and the file is the latest's).
CALIBRATED_ENVIRONMENT = ("cpu", "blas", "overrides")


def environment_differences(calibration: Calibration, run) -> str:
    """'overrides: (none) -> OPENBLAS_CORETYPE=SkylakeX; ...' where a run's recorded
    environment (a row's environment columns) differs from the calibration's in what its
    rates depend on; '' where it matches, or where the run has no record to compare."""
    if _blank(run.get("cpu")):  # (no record: the run is bounded, as reports/README.md says)
        return ""
    shown = lambda value: value or "(none)"  # noqa: E731
    return "; ".join(f"{c}: {shown(calibration.environment[c])} -> {shown(run[c])}"
                     for c in CALIBRATED_ENVIRONMENT if calibration.environment[c] != run[c])


def read_calibration(path: Path, machine: str) -> Calibration:
    """The calibration at ``path`` (of ``machine``'s folder), every field the report
    uses checked: a ResultsError naming the file and the field otherwise."""
    data = load_machine_file(path, "calibration", CALIBRATION_VERSION, machine)
    recorded_at = _field(path, data, "recorded_at", "", lambda v: isinstance(v, str), "a string")
    try:
        datetime.datetime.fromisoformat(recorded_at)
    except ValueError:
        raise ResultsError(path, f"'recorded_at' is not an ISO time: {recorded_at!r:.60}") from None
    environment = _field(path, data, "environment", "", lambda v: isinstance(v, dict), "an object")
    check_description(path, environment, "environment.")
    figures = _field(path, data, "figures", "", lambda v: isinstance(v, dict), "an object")
    for name, unit in FIGURE_UNITS.items():
        entry = _field(path, figures, name, "figures.", lambda v: isinstance(v, dict), "an object")
        where = f"figures.{name}."
        _field(path, entry, "unit", where, lambda v: v == unit, repr(unit))
        _check_rates(path, entry, where, unit)
        _field(path, entry, "work", where, _positive, "a positive number")
        _field(path, entry, "repeats", where,
               lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 1, "an integer >= 1")
        _field(path, entry, "timed", where, lambda v: isinstance(v, str), "a string")
    return Calibration(path, machine, recorded_at, compact(environment), figures)


def read_calibrations(results_dir: Path, machines) -> dict[str, Calibration]:
    """machine -> its calibration, for those of ``machines`` that have one."""
    folder = environments_dir(results_dir)
    found = {}
    for machine in machines:
        # The path is built from names the results hold: only plain folder names count.
        if not isinstance(machine, str) or not _PLAIN_FOLDER.fullmatch(machine) or machine in (".", ".."):
            continue
        path = folder / machine / CALIBRATION_FILE
        if path.is_file():
            found[machine] = read_calibration(path, machine)
    return found
