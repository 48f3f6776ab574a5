"""reports/README.md documents every column the report writes, and in timings.csv every
measurement and unit: checked on a report of the real results extended with what the
suite records today (non-finite mismatch counts, the batched conv's grad_weight) and a
second commit (compare.csv)."""
import copy
import re
import sys
from pathlib import Path

import pandas as pd
import pytest

from fixtures.asv_variants import add_commit, column, copy_results, load, results_files, save
from scipy_layers.reports import build_report
from scipy_layers.reports.naming import PARAM_COLUMNS

README = Path(__file__).resolve().parent.parent / "reports" / "README.md"
CONV_REL = "bench_conv2d.Conv2dGradients.track_max_rel_error"
CONV_GRADIENTS = "bench_conv2d.Conv2dGradients."
MISMATCHES = CONV_GRADIENTS + "track_nonfinite_mismatches"


def _add_quantity(data, name, after: str, new: str) -> None:
    """Give benchmark ``name`` one more quantity (its last parameter), a copy of
    ``after``'s figures."""
    row = data["results"][name]
    quantities = row[column(data, "params")][-1]
    at, width = quantities.index(repr(after)), len(quantities)
    quantities.append(repr(new))
    for index, cell in enumerate(row):
        if index != column(data, "params") and isinstance(cell, list):
            row[index] = [v for start in range(0, len(cell), width)
                          for v in (*cell[start:start + width], cell[start + at])]


def _today(data) -> None:
    data["results"][MISMATCHES] = copy.deepcopy(data["results"][CONV_REL])
    data["results"][MISMATCHES][column(data, "result")] = [
        0.0] * len(data["results"][CONV_REL][column(data, "result")])
    for name in [n for n in data["results"] if n.startswith(CONV_GRADIENTS)]:
        _add_quantity(data, name, "grad_filter", "grad_weight")


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    base = tmp_path_factory.mktemp("docs")
    results = copy_results(base / "results")
    benchmarks = load(results / "benchmarks.json")
    benchmarks[MISMATCHES] = {**benchmarks[CONV_REL], "name": MISMATCHES, "unit": "entries"}
    save(results / "benchmarks.json", benchmarks)
    original = results_files(results)[0]
    data = load(original)
    _today(data)
    save(original, data)
    add_commit(results, "d" * 40, days_later=1, transform=_today)
    build_report(results, base / "out", with_plots=False)
    return base / "out"


def _section(name: str) -> str:
    """The text of reports/README.md's section '## <name>...' up to the next one."""
    text = README.read_text()
    start = text.index(f"\n## {name}")
    end = text.find("\n## ", start + 1)
    return text[start:end if end > 0 else None]


def _documented(section: str, header: list[str]) -> set[str]:
    """The columns a section's table names in its first column: `a`, `b`; `a` ... `b`
    (a run of the header); 'parameters' (the fixed parameter columns); `<quantity>_x`
    patterns are returned as they are."""
    names = set()
    for line in section.splitlines():
        if not line.startswith("| `"):
            continue
        cell = line.split(" | ")[0]
        ticked = re.findall(r"`([^`]+)`", cell)
        names.update(ticked)
        if "..." in cell:
            names.update(header[header.index(ticked[0]):header.index(ticked[-1]) + 1])
        if "parameters" in cell:
            names.update(PARAM_COLUMNS)
    return names


def _undocumented(columns: list[str], documented: set[str], quantities: set[str]) -> list[str]:
    patterns = [re.escape(d).replace(re.escape("<quantity>"), "(?P<q>[a-z_]+)")
                for d in documented if "<quantity>" in d]
    missing = []
    for name in columns:
        if name in documented:
            continue
        match = next((m for m in (re.fullmatch(p, name) for p in patterns) if m), None)
        if match is None or match["q"] not in quantities:
            missing.append(name)
    return missing


@pytest.mark.parametrize("name", ["timings.csv", "speedup.csv", "gradients.csv", "compare.csv"])
def test_every_column_is_documented(written, name):
    header = list(pd.read_csv(written / name, nrows=0).columns)
    section = _section(name)
    quantities = set(re.findall(r"`(output|grad_[a-z]+)`", section))
    assert _undocumented(header, _documented(section, header), quantities) == []


def test_gradients_quantities_and_statistics_are_documented(written):
    gradients = pd.read_csv(written / "gradients.csv", nrows=0).columns
    assert {"grad_weight_max_rel", "output_nonfinite_mismatches"} <= set(gradients)
    section = _section("gradients.csv")
    for quantity in ("output", "grad_input", "grad_filter", "grad_bias", "grad_weight"):
        assert f"`{quantity}`" in section


def test_every_measurement_and_unit_of_timings_is_documented(written):
    timings = pd.read_csv(written / "timings.csv", usecols=["measurement", "unit"])
    section = _section("timings.csv")
    labels = {re.sub(r" of (output|grad_\w+)$", " of <quantity>", m) for m in timings["measurement"]}
    assert "nonfinite mismatches of <quantity>" in labels
    assert [m for m in sorted(labels) if f"`{m}`" not in section] == []
    assert [u for u in sorted(set(timings["unit"])) if f"`{u}`" not in section] == []


def test_summary_verdict_table_columns_and_both_n_a_are_documented(written):
    """summary.md's verdict tables have columns of their own (`worst rel error`, ...),
    and "n/a" means no figure in a time table but compared nothing in a verdict table:
    the README documents both, and summary.md's captions say which (hostile pass 99)."""
    from scipy_layers.reports.summary import NO_TIME, NOTHING_COMPARED
    summary = (written / "summary.md").read_text().splitlines()
    headers = [summary[i + 2] for i, line in enumerate(summary)
               if line.startswith("Gradient agreement with native")]
    assert headers and all(NOTHING_COMPARED in line for line in summary
                           if line.startswith("Gradient agreement with native"))
    assert any(NO_TIME in line for line in summary if line.startswith("forward+backward time"))
    columns = {c.strip() for header in headers for c in header.strip("|").split("|")}
    columns |= {"unmeasured", "not compared"}  # (there where a case has one)
    section = _section("summary.md")
    assert sorted(c for c in columns if f"`{c}`" not in section) == []
    assert "`n/a` there means no figure" in section and "In a verdict table `n/a`" in section


ROOT = README.parent.parent
REPORT_CSVS = ("timings.csv", "speedup.csv", "gradients.csv", "compare.csv")
# reports/README.md: the earliest committed folder's compare.csv is of an earlier design
EARLIER_COMPARE = ROOT / "reports" / "amd-epyc-2cpu" / "compare.csv"
COMMITTED = sorted(p for p in (ROOT / "reports").glob("*/*.csv")
                   if p.name in (*REPORT_CSVS, "targets.csv", "method_choice.csv")
                   and p != EARLIER_COMPARE)


def _suite_parameters() -> set[str]:
    """Every parameter name of the asv suite's classes."""
    from benchmarks import bench_conv2d, bench_conv2d_nchw, bench_fft_abs
    return {name for module in (bench_conv2d, bench_conv2d_nchw, bench_fft_abs)
            for cls in vars(module).values() if isinstance(cls, type)
            for name in getattr(cls, "param_names", [])}


def test_every_parameter_of_the_suite_is_a_documented_column():
    """A parameter outside the fixed list (the layer-type view's `conv`) is a column of
    its own: timings.csv's table names it (audit 143: `conv` was only in the prose)."""
    section = _section("timings.csv")
    assert sorted(p for p in _suite_parameters() if f"`{p}`" not in section) == []


@pytest.mark.parametrize("path", COMMITTED, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_column_of_the_committed_reports_is_documented(path):
    """The committed reference folders are what a reader opens beside reports/README.md
    (audit 143); older ones may lack newer columns (the README says which), never hold
    an undocumented one."""
    header = list(pd.read_csv(path, nrows=0).columns)
    section = _section(path.name)
    quantities = set(re.findall(r"`(output|grad_[a-z]+)`", section))
    documented = _documented(section, header) | _suite_parameters()
    assert _undocumented(header, documented, quantities) == []


def test_the_readme_names_the_columns_committed_folders_lack():
    said = README.read_text().split("\n## ")[0]  # the introduction
    lacking = {name: [p.parent.name for p in COMMITTED if p.name == csv
                      and name not in pd.read_csv(p, nrows=0).columns]
               for name, csv in (("commit_order", "timings.csv"), ("not_compared", "gradients.csv"))}
    for name, folders in lacking.items():
        if folders:
            assert f"`{name}`" in said, f"{name} is absent from {folders}: say so"


def test_targets_columns_are_the_documented_ones():
    """tools/targets.py's columns, both ways: each documented, each documented one written."""
    sys.path.insert(0, str(ROOT / "tools"))
    import targets
    section = _section("targets.csv")
    documented = _documented(section, targets.COLUMNS)
    assert [c for c in targets.COLUMNS if c not in documented] == []
    assert sorted(documented - set(targets.COLUMNS)) == []


def test_method_choice_columns_documented_are_those_the_committed_files_hold():
    """The other way for method_choice.csv (tools/method_choice.py writes its rows as
    dicts, with no column list to read): each column its table names is in every
    committed file."""
    section = _section("method_choice.csv")
    for path in (p for p in COMMITTED if p.name == "method_choice.csv"):
        header = list(pd.read_csv(path, nrows=0).columns)
        assert sorted(_documented(section, header) - set(header)) == [], path


@pytest.mark.parametrize("name", REPORT_CSVS)
def test_every_documented_column_is_written(written, name):
    """The other way from test_every_column_is_documented: each column a table of
    reports/README.md names is one the report writes (a parameter the fixture's
    benchmarks lack, such as `conv`, and `<quantity>_...` patterns aside)."""
    header = list(pd.read_csv(written / name, nrows=0).columns)
    documented = _documented(_section(name), header)
    stale = {d for d in documented if "<quantity>" not in d} - set(header) - _suite_parameters()
    assert sorted(stale) == []
