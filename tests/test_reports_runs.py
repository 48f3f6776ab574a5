"""Figures of two asv environments (or two machines) at the latest commit never meet:
the headline has a row per environment, summary.md a section per environment, and
neither shows one environment's figures as if they were the only ones."""
import re
import shutil

import numpy as np
import pytest

from fixtures.asv_variants import (DAY_MS, FIXTURE, add_commit, case_index, column, copy_results,
                                   load, results_files, save)
from scipy_layers.reports import build_report
from scipy_layers.reports.cli import main

OTHER_ENV = "virtualenv-py3.12"
SLOWER = 10.0  # every numpy/scipy time in the other environment, x10


def _scale_non_native_times(data, factor):
    columns = data["result_columns"]
    names = load(FIXTURE / "benchmarks.json")
    for name, row in data["results"].items():
        if ".time_" not in name or names[name]["param_names"][0] != "implementation":
            continue
        implementations = row[columns.index("params")][0]
        result = row[columns.index("result")]
        width = len(result) // len(implementations)
        for i, impl in enumerate(implementations):
            if impl != "'native'":
                result[i * width:(i + 1) * width] = [
                    v * factor if isinstance(v, float) and v == v else v
                    for v in result[i * width:(i + 1) * width]]


@pytest.fixture(scope="module")
def two_envs(tmp_path_factory):
    """(results with the fixture's commit timed again in a second environment, numpy/
    scipy 10x slower there; the fixture alone; a folder for outputs)."""
    base = tmp_path_factory.mktemp("two_envs")
    results = copy_results(base / "results")
    original = results_files(results)[0]
    data = load(original)
    data["env_name"] = OTHER_ENV
    _scale_non_native_times(data, SLOWER)
    save(original.with_name(f"{data['commit_hash'][:8]}-{OTHER_ENV}.json"), data)
    return results, copy_results(base / "single"), base


def test_the_headline_has_a_row_per_environment(two_envs):
    results, single, base = two_envs
    alone = build_report(single, base / "alone", with_plots=False).headline
    both = build_report(results, base / "both", with_plots=False).headline
    original_env = load(results_files(single)[0])["env_name"]
    assert "env" not in alone.columns  # one environment: the headline as it was
    assert list(both.columns[:1]) == ["env"] and set(both["env"]) == {original_env, OTHER_ENV}
    key = ["layer", "implementation"]
    first = both[both["env"] == original_env].drop(columns="env").set_index(key)
    other = both[both["env"] == OTHER_ENV].drop(columns="env").set_index(key)
    expected = alone.set_index(key)
    assert first["cases"].tolist() == expected["cases"].tolist()  # not counted twice
    assert np.allclose(first["geomean_ratio"], expected["geomean_ratio"])
    ran = expected["cases"] > 0
    assert np.allclose(other.loc[ran, "geomean_ratio"], SLOWER * expected.loc[ran, "geomean_ratio"])


def test_the_printed_headline_names_each_environment(two_envs, capsys):
    results, _, base = two_envs
    assert main([str(results), str(base / "printed"), "--no-plots"]) == 0
    out = capsys.readouterr().out.split("forward+backward time / native")[1]
    assert out.count(f"env {OTHER_ENV}:") == 1 and out.count("env virtualenv-py3.11") == 1


def test_summary_has_each_environments_tables_under_its_name(two_envs):
    results, single, base = two_envs
    alone = (base / "alone_md").joinpath("summary.md")
    build_report(single, base / "alone_md", with_plots=False)
    build_report(results, base / "both_md", with_plots=False)
    summary = (base / "both_md" / "summary.md").read_text()
    original_env = load(results_files(single)[0])["env_name"]
    for env in (original_env, OTHER_ENV):
        assert summary.count(f"## conv2d (env `{env}`)") == 1
    assert "## conv2d\n" not in summary  # no section without its environment
    sections = re.split(r"(?m)^## ", summary)
    mine = next(s for s in sections if s.startswith(f"conv2d (env `{original_env}`)"))
    theirs = next(s for s in sections if s.startswith(f"conv2d (env `{OTHER_ENV}`)"))
    expected = next(s for s in re.split(r"(?m)^## ", alone.read_text()) if s.startswith("conv2d\n"))
    assert mine.split("\n", 1)[1] == expected.split("\n", 1)[1]  # the same figures
    assert theirs.split("\n", 1)[1] != expected.split("\n", 1)[1]


def test_plots_are_per_environment(two_envs):
    results, _, base = two_envs
    report = build_report(results, base / "plots")
    pngs = sorted(p.name for p in report.files if p.suffix == ".png")
    assert len(pngs) == 8 and all(n.count("@") == 1 for n in pngs)
    assert "time_vs_size_conv2d@virtualenv-py3.12.png" in pngs


def test_gate_lines_name_the_environment_when_there_are_several(two_envs, tmp_path, capsys):
    """The same case failing at B in both environments is two findings that read apart."""
    results = tmp_path / "results"
    shutil.copytree(two_envs[0], results)
    case = dict(implementation="scipy", size="127x127", kernel="3x3", dtype="float64", device="cpu")
    fb = "bench_conv2d.Conv2d.time_forward_backward"
    for path in results_files(results):
        data = load(path)
        data["commit_hash"], data["date"] = "d" * 40, data["date"] + DAY_MS
        data["results"][fb][column(data, "result")][case_index(data, fb, **case)] = None
        save(path.with_name("dddddddd" + path.name[8:]), data)
    assert main([str(results), str(tmp_path / "out"), "--no-plots", "--gate"]) == 1
    lines = capsys.readouterr().out.split("\ngate: ")[1].splitlines()[1:]
    assert len(lines) == len(set(lines)) == 2 and all(line.startswith("failed: ") for line in lines)
    assert sum(f"env {OTHER_ENV})" in line for line in lines) == 1


def test_a_line_break_in_an_environment_name_stays_in_its_heading(tmp_path):
    """summary.md's headings carry the run's names: a line break in one (hostile pass
    90, via params) would start a heading or paragraph of its own; it is shown escaped."""
    results = copy_results(tmp_path / "results")
    original = results_files(results)[0]
    data = load(original)
    data["env_name"] = "evil\n## injected"
    save(original.with_name(f"{data['commit_hash'][:8]}-evil.json"), data)
    build_report(results, tmp_path / "out", with_plots=False)
    summary = (tmp_path / "out" / "summary.md").read_text()
    assert "\n## injected" not in summary
    assert "## conv2d (env `evil\\n## injected`)" in summary


def test_names_read_as_they_are_in_code_spans_and_print_as_one_line(tmp_path, capsys):
    """Outside tables a name is a code span: a | shows as is (CommonMark reads no escape
    in a code span), a backtick gets a longer fence, and control characters (an escape
    sequence, a C1 next line, a line separator) show escaped, in summary.md and on
    stdout alike (hostile pass 91)."""
    from scipy_layers.reports.markdown import code, printable
    assert code("a|b") == "`a|b`" and code("a`b") == "``a`b``" and code("`a") == "`` `a ``"
    assert printable("m\x1b[31m\x85\u2028") == "m\\x1b[31m\\x85\\u2028"
    assert printable("\u202eevil\u200b") == "\\u202eevil\\u200b"  # (bidi, zero-width)
    results = copy_results(tmp_path / "results")
    original = results_files(results)[0]
    data = load(original)
    data["env_name"] = "red\x1b[31m|\x85\u202e"
    save(original.with_name(f"{data['commit_hash'][:8]}-red.json"), data)
    assert main([str(results), str(tmp_path / "out"), "--no-plots"]) == 0
    out = capsys.readouterr().out
    summary = (tmp_path / "out" / "summary.md").read_text()
    for text in (out, summary):
        assert "\x1b" not in text and "\x85" not in text and "\u202e" not in text
    assert "env `red\\x1b[31m|\\x85\\u202e`" in summary and "red\\x1b[31m|\\x85\\u202e:" in out


def test_every_table_comes_from_the_commit_the_header_names(tmp_path):
    """Hostile pass 93: with a latest commit that ran the timings alone and an older one
    whose gradient benchmarks failed, the header named the latest commit while the
    gradient tables and the headline's "N failed" came, unnamed, from the older one
    (latest_runs applied to each table apart). One commit per machine now, for every
    table; a line names the most recent commit that has what this one lacks."""
    results = copy_results(tmp_path / "results")
    older = results_files(results)[0]
    data = load(older)
    for name in [n for n in data["results"] if "Gradients." in n]:
        data["results"][name][column(data, "result")] = None  # failed, every case
    save(older, data)
    old_commit = data["commit_hash"]

    def timings_only(data):
        for name in [n for n in data["results"] if "Gradients." in n]:
            del data["results"][name]

    new_commit = "abcdef12" + old_commit[8:]
    add_commit(results, new_commit, 1, timings_only)
    report = build_report(results, tmp_path / "out", with_plots=False)
    assert not report.headline["gradients"].str.contains("failed").any()
    assert (report.headline["gradients"] == "").all()
    assert (report.headline["cases"] > 0).any()
    summary = (tmp_path / "out" / "summary.md").read_text()
    assert f"commit `{new_commit[:8]}`" in summary
    assert "Gradient agreement with native" not in summary
    for layer in ("conv2d", "fft_abs"):
        assert (f"No gradient results of {layer} at commit `{new_commit[:8]}`; the most "
                f"recent commit with them is `{old_commit[:8]}`") in summary
    # the older commit's figures are all still in gradients.csv
    assert set(report.gradients["commit"]) == {old_commit}
    assert (report.gradients.loc[report.gradients["layer"] == "conv2d", "verdict"]
            .isin(["failed", "skipped"]).all())


def test_a_latest_commit_that_ran_the_gradients_alone_shows_no_older_times(tmp_path):
    results = copy_results(tmp_path / "results")
    old_commit = load(results_files(results)[0])["commit_hash"]

    def gradients_only(data):
        for name in [n for n in data["results"] if "Gradients." not in n]:
            del data["results"][name]

    new_commit = "abcdef12" + old_commit[8:]
    add_commit(results, new_commit, 1, gradients_only)
    report = build_report(results, tmp_path / "out", with_plots=False)
    assert (report.headline["cases"] == 0).all() and report.headline["gradients"].ne("").any()
    summary = (tmp_path / "out" / "summary.md").read_text()
    assert "forward+backward time (torch at one thread" not in summary
    assert "Gradient agreement with native" in summary
    assert (f"No forward+backward timings of conv2d at commit `{new_commit[:8]}`; the most "
            f"recent commit with them is `{old_commit[:8]}`") in summary


def test_the_printed_headline_names_the_commit_it_shows(tmp_path, capsys):
    """Hostile pass 93 / fix helper: it said "at the latest commit" and named none."""
    from fixtures.asv_variants import FIXTURE
    from scipy_layers.reports import read_results
    from scipy_layers.reports.cli import main
    assert main([str(FIXTURE), str(tmp_path / "out"), "--no-plots"]) == 0
    newest = read_results(FIXTURE).sort_values("commit_date")["commit"].iloc[-1]
    assert f"native at the latest commit ({newest[:8]}; gradients: verdicts):" \
        in capsys.readouterr().out


def test_commits_of_one_date_go_by_hash_whatever_the_order_read(tmp_path):
    """asv's date is the commit's author date (whole seconds): two commits can share one.
    Where git cannot order them (here: results outside any repository), the later is the
    larger hash, wherever the rows come from, in compare.csv's default pair (its B) as in
    the latest commit; idxmax took whichever row came first (hostile pass 99)."""
    import pandas as pd

    from scipy_layers.reports.history import commit_order
    from scipy_layers.reports.runs import dated_out_of_order, latest_commits
    from scipy_layers.reports.tables import resolve_commits
    date = pd.Timestamp("2026-12-06 09:00", tz="UTC")
    rows = pd.DataFrame({"machine": ["m", "m", "m", "n"], "env": "e",
                         "commit": ["f" * 40, "0" * 40, "1" * 40, "2" * 40],
                         "commit_date": [date, date, date - pd.Timedelta("1s"), date]})
    dates = rows.groupby("commit")["commit_date"].min()
    order = commit_order(tmp_path, dates)
    assert order == {"1" * 40: 0, "0" * 40: 1, "2" * 40: 2, "f" * 40: 3}
    assert commit_order(tmp_path, dates.iloc[::-1]) == order  # (whatever order given)
    rows["commit_order"] = rows["commit"].map(order)
    for read in (rows, rows.iloc[::-1], rows.iloc[[1, 0, 2, 3]]):
        latest = latest_commits(read)
        assert latest["machine"].tolist() == ["m", "n"]
        assert latest["commit"].tolist() == ["f" * 40, "2" * 40]
        assert resolve_commits(read[read["machine"] == "m"], None) == ("0" * 40, "f" * 40)
        assert dated_out_of_order(read).empty  # (one date is no disorder)


def test_each_machine_shows_its_own_latest_commit_only():
    """A commit that is one machine's latest and another's older one: the other machine's
    views show its own latest alone, never both commits' figures side by side."""
    import pandas as pd

    from scipy_layers.reports.runs import latest_runs
    date = pd.Timestamp("2026-12-06 09:00", tz="UTC")
    rows = pd.DataFrame({"machine": ["m", "m", "n"], "env": "e",
                         "commit": ["1" * 40, "2" * 40, "2" * 40],
                         "commit_date": [date, date - pd.Timedelta("1D"), date - pd.Timedelta("1D")],
                         "commit_order": [1, 0, 0], "value": [1.0, 2.0, 3.0]})
    shown = latest_runs(rows)
    assert sorted(zip(shown["machine"], shown["commit"])) == [("m", "1" * 40), ("n", "2" * 40)]
    assert sorted(shown["value"]) == [1.0, 3.0]


def test_a_gate_line_names_torch_at_every_core_and_leaves_one_thread_unsaid():
    """Threads "1" is every timing's default and goes unsaid in a case's label; "all"
    (the Threads view) must be said, or its line reads as the one-thread case's."""
    import pandas as pd

    from scipy_layers.reports.gate import case_label
    row = dict(layer="conv2d", implementation="scipy", measurement="forward+backward",
               size="127x127", kernel="3x3", dtype="float32", device="cpu", machine="m",
               env="e")
    one, every = (case_label(pd.Series({**row, "threads": t})) for t in ("1", "all"))
    assert one == "conv2d scipy forward+backward 127x127 3x3 float32 cpu (m)"
    assert every == "conv2d scipy forward+backward 127x127 3x3 float32 cpu all (m)"


def test_a_time_on_a_unit_boundary_reads_in_that_unit():
    """1 s is "1 s", not "1e+03 ms" (the suite passed with each unit taken only above its
    scale); each unit down to ns."""
    from scipy_layers.reports.markdown import format_seconds
    assert [format_seconds(t) for t in (1.0, 1e-3, 1e-6, 2.5, 5e-10)] == [
        "1 s", "1 ms", "1 µs", "2.5 s", "0.5 ns"]


def test_a_latest_commit_that_ran_everything_names_no_older_commit_and_leads_with_native(
        tmp_path):
    """Where the latest commit ran a layer's timings and gradients, as an older one did
    too, summary.md sends no one to an older commit (the suite passed with the check
    asking whether every row, not any, was the latest commit's); and each time table
    gives native's column first, the implementations after it (it passed with native
    last)."""
    results = copy_results(tmp_path / "results")
    old_commit = load(results_files(results)[0])["commit_hash"]
    add_commit(results, "abcdef12" + old_commit[8:], 1, lambda data: None)
    build_report(results, tmp_path / "out", with_plots=False)
    summary = (tmp_path / "out" / "summary.md").read_text()
    assert "No forward+backward timings" not in summary and "No gradient results" not in summary
    case = {"size", "kernel", "conv", "dtype", "device", "layout", "values"}
    headers = [[c.strip() for c in line.strip("|").split("|")] for line in summary.splitlines()
               if line.startswith("| ") and line.endswith("/native |")]
    assert headers
    for cells in headers:
        assert [c for c in cells if c not in case][0] == "native", cells


def test_the_header_says_each_env_has_its_own_sections_only_where_there_are_several(two_envs):
    """summary.md's header line of a machine run in one environment names it plainly; in
    two it adds that each has its own sections (the suite passed with the note added for
    one environment too)."""
    results, single, base = two_envs
    build_report(single, base / "one_env", with_plots=False)
    build_report(results, base / "two_envs", with_plots=False)
    note = " (each with its own sections below)"
    assert note not in (base / "one_env" / "summary.md").read_text()
    assert note in (base / "two_envs" / "summary.md").read_text()
