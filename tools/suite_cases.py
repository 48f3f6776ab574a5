"""The timing cases of the asv suite that run on this machine, and asv ``-b`` regexes for them.

    python tools/suite_cases.py            # JSON: {"timings": {benchmark: ["'native', '16x16', ...", ...]},
                                           #        "tracks": {benchmark: [every combination]}}
    python tools/suite_cases.py --regexes  # one asv -b regex per timing benchmark
    python tools/suite_cases.py --package-dir DIR  # the same with DIR/scipy_layers (another
                                           # commit's package, as asv installs it there)
    python tools/suite_cases.py --output FILE      # the answer in FILE, stdout left to the suite

Each benchmark class's own ``setup`` decides, called here in-process the way asv_runner
calls it: ``NotImplementedError`` means skipped (outside the default grid, no GPU, kernel
larger than the input, ...); anything else, including another error, means asv runs it.
tools/compare_commits.py times only these cases in its rounds: asv launches a process
for every parameter combination, ~25 ms even for one that setup skips, and ~900 of the
suite's combinations are skipped on the default grid. SCIPY_LAYERS_BENCH_FULL is cleared
here, so the cases are always the default grid's.
"""
from __future__ import annotations

import argparse
import importlib
import inspect
import itertools
import json
import os
import pkgutil
import re
import sys
from pathlib import Path
from help_text import description  # (tools/, this script's folder)

ROOT = Path(__file__).resolve().parent.parent
FULL_GRID_VAR = "SCIPY_LAYERS_BENCH_FULL"


def _classes(package):
    """(module short name, class) for every public, non-abstract class in the package's
    modules, as asv_runner's discovery finds them: one a module imports is its benchmark
    too (asv runs it under both names)."""
    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda i: i.name):
        module = importlib.import_module(f"{package.__name__}.{info.name}")
        for name, cls in sorted(vars(module).items()):
            if inspect.isclass(cls) and not name.startswith("_") and not inspect.isabstract(cls):
                yield info.name, cls


def _runs(cls, combo) -> bool:
    try:
        setup = getattr(cls(), "setup", None)
        if setup is not None:
            setup(*combo)
    except NotImplementedError:
        return False
    except Exception:  # noqa: BLE001  asv runs it and records the failure
        return True
    return True


def suite_cases(benchmark_dir: Path = ROOT / "benchmarks",
                package_dir: Path | None = None) -> dict[str, dict[str, list[str]]]:
    """{"timings": {asv benchmark name: [the parameter combinations that run, as asv names
    them]}, "tracks": {name: [every combination]}}; an unparameterised benchmark has [""].
    Setup is called for timings only (track setups may compute for minutes). Needs
    FULL_GRID_VAR unset before the suite is imported (main() sees to it). ``package_dir``:
    the folder whose scipy_layers the suite imports (default: the one beside the suite)."""
    sys.path.insert(0, str(benchmark_dir.parent))
    if package_dir is not None:  # (first: the suite's folder holds this commit's package)
        sys.path.insert(0, str(package_dir))
    package = importlib.import_module(benchmark_dir.name)
    cases = {"timings": {}, "tracks": {}}
    for module_name, cls in _classes(package):
        params = getattr(cls, "params", [])
        if params and not isinstance(params[0], (list, tuple)):
            params = [params]  # asv's shorthand for a single parameter
        combos = list(itertools.product(*params)) if params else [()]
        for kind, prefix, keep in (("timings", "time_", lambda c: _runs(cls, c)),
                                   ("tracks", "track_", lambda c: True)):
            methods = sorted(m for m in dir(cls) if m.startswith(prefix))
            names = [", ".join(map(repr, c)) for c in combos if keep(c)] if methods else []
            for method in methods:
                cases[kind][f"{module_name}.{cls.__name__}.{method}"] = names
    return cases


def bench_regexes(cases: dict[str, list[str]]) -> list[str]:
    """asv -b regexes selecting exactly these cases (asv matches 'name(p1, p2)' per case)."""
    regexes = []
    for name, combos in sorted(cases.items()):
        if combos == [""]:
            regexes.append(f"^{re.escape(name)}$")
        elif combos:
            alternatives = "|".join(re.escape(combo) for combo in combos)
            regexes.append(f"^{re.escape(name)}\\((?:{alternatives})\\)$")
    return regexes


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=description(__doc__))
    parser.add_argument("--regexes", action="store_true", help="print asv -b regexes, one a line")
    parser.add_argument("--benchmark-dir", type=Path, default=ROOT / "benchmarks")
    parser.add_argument("--output", type=Path, metavar="FILE",
                        help="write the answer to FILE instead of stdout")
    parser.add_argument("--package-dir", type=Path,
                        help="import scipy_layers from DIR (default: beside the suite)")
    args = parser.parse_args(argv)
    if args.package_dir is not None and not (args.package_dir / "scipy_layers" / "__init__.py").is_file():
        parser.error(f"--package-dir {args.package_dir}: no scipy_layers/__init__.py in it "
                     "(give the folder that holds the package)")
    if os.environ.pop(FULL_GRID_VAR, None):
        print(f"suite_cases: {FULL_GRID_VAR} ignored: listing the default grid", file=sys.stderr)
    cases = suite_cases(args.benchmark_dir, args.package_dir)
    answer = "\n".join(bench_regexes(cases["timings"])) if args.regexes else json.dumps(cases, indent=1)
    if args.output is None:
        print(answer)
    else:  # (what the package or a setup prints, at exit too, stays out of the answer)
        args.output.write_text(answer + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
