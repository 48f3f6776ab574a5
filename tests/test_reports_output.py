"""The report set is written all or nothing: built in a staging directory inside the
output directory, then swapped in; a failure anywhere leaves the output directory as it
was. Stale files of an earlier run go, files the tool did not write stay, file names
never collide between machines, and nothing is written outside the output directory."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fixtures.asv_variants import FIXTURE, column, copy_results, load, results_files, save
from scipy_layers.reports import ReportError, build_report
from scipy_layers.reports import output as output_module
from scipy_layers.reports.cli import main

ROOT = Path(__file__).resolve().parent.parent
MANIFEST = ".scipy-layers-report.json"


def snapshot(directory: Path) -> dict:
    """Every entry below ``directory``: its bytes (None for a folder) and mtime."""
    return {p.relative_to(directory): (None if p.is_dir() else p.read_bytes(), p.stat().st_mtime_ns)
            for p in sorted(directory.rglob("*"))}


@pytest.fixture
def earlier(tmp_path):
    """An output directory holding a first run's report, the committed README.md of the
    parent and a user's own file."""
    parent = tmp_path / "reports"
    parent.mkdir()
    (parent / "README.md").write_text("committed documentation\n")
    output = parent / "latest"
    assert main([str(FIXTURE), str(output)]) == 0
    (output / "my-notes.txt").write_text("mine\n")
    return parent, output


def zero_scipy_times(results: Path) -> Path:
    path = results_files(results)[0]
    data = load(path)
    names = load(results / "benchmarks.json")
    for name, row in data["results"].items():
        if ".time_" not in name or names[name]["param_names"][0] != "implementation":
            continue
        params = row[column(data, "params")]
        width = len(row[column(data, "result")]) // len(params[0])
        for i, impl in enumerate(params[0]):
            if impl != "'native'":
                result = row[column(data, "result")]
                result[i * width:(i + 1) * width] = [0 if v == v and v is not None else v
                                                     for v in result[i * width:(i + 1) * width]]
    save(path, data)
    return results


def test_all_scipy_times_zero_is_a_report_not_a_crash(tmp_path, capsys):
    """Issue 10: this died in the plots (Invalid vmin or vmax) after writing the CSVs."""
    results = zero_scipy_times(copy_results(tmp_path / "results"))
    assert main([str(results), str(tmp_path / "out")]) == 0, capsys.readouterr().err
    assert (tmp_path / "out" / "time_vs_size_conv2d.png").exists()


def keep_only(results: Path, keep) -> Path:
    """The results with only the benchmarks whose names ``keep`` accepts."""
    path = results_files(results)[0]
    data = load(path)
    data["results"] = {name: row for name, row in data["results"].items() if keep(name)}
    save(path, data)
    return results


def test_timings_without_gradient_results_make_a_report(tmp_path, capsys):
    """What `asv run -b time_` or a GPU session (timing slices only) leaves: the report
    died in the gradients table's verdicts (np.select on an empty table)."""
    results = keep_only(copy_results(tmp_path / "results"), lambda name: ".time_" in name)
    assert main([str(results), str(tmp_path / "out")]) == 0, capsys.readouterr().err
    assert (tmp_path / "out" / "speedup.csv").exists()


def test_a_failure_in_the_plots_leaves_the_output_as_it_was(earlier, monkeypatch):
    parent, output = earlier
    before, parent_before = snapshot(output), snapshot(parent)
    from scipy_layers.reports import plots

    def broken(*args):
        raise RuntimeError("a bug in the plots")
    monkeypatch.setattr(plots, "plots", broken)
    results = copy_results(parent.parent / "results")
    with pytest.raises(RuntimeError, match="a bug in the plots"):
        build_report(results, output, commits=None)
    assert snapshot(output) == before
    assert {p: v[0] for p, v in snapshot(parent).items()} == {p: v[0] for p, v in parent_before.items()}


@pytest.mark.parametrize("error, at, raised", [
    (OSError(28, "No space left on device"), 5, ReportError),
    (KeyboardInterrupt(), 2, KeyboardInterrupt), (KeyboardInterrupt(), 5, KeyboardInterrupt)],
    ids=["disk-full", "ctrl-c-2", "ctrl-c-5"])
def test_a_failure_while_swapping_in_rolls_back(earlier, monkeypatch, error, at, raised):
    """A failed rename between two others (a full disk; Ctrl-C) leaves the directory as it
    was. Ctrl-C (KeyboardInterrupt, no OSError) once skipped the rollback, and the staging
    folder was then removed with the earlier files moved aside into it: timings.csv
    (at=2) or speedup.csv (at=5) of the earlier run was gone, not replaced (hostile pass
    140); the interrupt itself goes on."""
    _, output = earlier
    results = zero_scipy_times(copy_results(output.parent.parent / "results"))
    before = snapshot(output)
    real_replace, calls = os.replace, []

    def failing(src, dst):
        calls.append(dst)
        if len(calls) == at:
            raise error
        return real_replace(src, dst)
    monkeypatch.setattr(output_module.os, "replace", failing)
    with pytest.raises(raised, match="No space left on device" if raised is ReportError else None):
        build_report(results, output)
    assert len(calls) > at  # the rollback renamed files back
    assert snapshot(output) == before


def test_a_missing_output_directory_is_not_left_behind_on_failure(tmp_path, monkeypatch):
    from scipy_layers.reports import plots
    monkeypatch.setattr(plots, "plots", lambda *a: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        build_report(FIXTURE, tmp_path / "new" / "deeper")
    assert list(tmp_path.iterdir()) == []


def test_stale_files_of_an_earlier_run_go_and_others_stay(earlier):
    parent, output = earlier
    results = copy_results(parent.parent / "results")
    for path in results_files(results):  # the second run has no fft_abs results
        data = load(path)
        data["results"] = {k: v for k, v in data["results"].items() if "fft_abs" not in k}
        save(path, data)
    edited = output / "speedup_fft_abs.png"
    edited.write_bytes(edited.read_bytes() + b"my annotation")
    assert main([str(results), str(output)]) == 0
    names = sorted(p.name for p in output.iterdir())
    assert "time_vs_size_fft_abs.png" not in names  # written by the first run only: removed
    assert "speedup_fft_abs.png" in names  # changed since the tool wrote it: kept
    assert "my-notes.txt" in names and (parent / "README.md").read_text() == "committed documentation\n"
    manifest = json.loads((output / MANIFEST).read_text())
    assert sorted(manifest["files"]) == sorted(
        n for n in names if n not in ("my-notes.txt", MANIFEST, "speedup_fft_abs.png"))
    assert not [n for n in names if n.startswith(".scipy-layers-report.staging")]


def test_a_tampered_manifest_removes_nothing_it_should_not(earlier):
    parent, output = earlier
    outside = parent / "outside.txt"
    outside.write_text("x")
    (output / MANIFEST).write_text(json.dumps({"version": 1, "files": {
        "../outside.txt": "0" * 64, "README.md": "0" * 64, "my-notes.txt": "0" * 64}}))
    assert main([str(FIXTURE), str(output), "--no-plots"]) == 0
    assert outside.exists() and (output / "my-notes.txt").exists()
    (output / MANIFEST).write_text("{not json")
    assert main([str(FIXTURE), str(output), "--no-plots"]) == 0
    assert json.loads((output / MANIFEST).read_text())["version"] == 1


def _report_of_machines(tmp_path, machines):
    """The fixture's first results file copied once per machine name, then reported."""
    results = copy_results(tmp_path / "results")
    original = results_files(results)[0]
    for machine in machines:
        data = load(original)
        data["params"]["machine"] = machine
        folder = results / f"m{len(list(results.iterdir()))}"
        folder.mkdir()
        save(folder / original.name, data)
    original.unlink()
    return build_report(results, tmp_path / "out")


def test_machine_names_never_share_a_file_name(tmp_path):
    report = _report_of_machines(tmp_path, ("box a", "box/a", "Box_A"))
    pngs = [p.name for p in report.files if p.suffix == ".png"]
    assert len(pngs) == len(set(pngs)) == 3 * 4
    assert all("/" not in n and " " not in n for n in pngs)


def test_a_target_name_held_by_a_folder_is_a_clear_error(tmp_path, capsys):
    output = tmp_path / "out"
    (output / "timings.csv").mkdir(parents=True)
    (output / "timings.csv" / "keep").write_text("x")
    before = snapshot(output)
    assert main([str(FIXTURE), str(output), "--no-plots"]) == 2
    assert "timings.csv" in capsys.readouterr().err
    assert snapshot(output) == before


def run_cli(args, cwd=ROOT, env=None):
    return subprocess.run([sys.executable, "-m", "scipy_layers.reports", *args], cwd=cwd,
                          capture_output=True, text=True, env=env)


def test_an_empty_output_path_is_an_error(tmp_path):
    """Issue 10: "" wrote into the current directory."""
    run = run_cli([str(FIXTURE), "", "--no-plots"], cwd=tmp_path,
                  env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert run.returncode == 2 and run.stderr.count("\n") == 1
    assert "empty" in run.stderr and list(tmp_path.iterdir()) == []
    assert main(["--results", str(FIXTURE), "--output", "", "--no-plots"]) == 2


def test_an_output_path_below_a_file_is_a_clear_error(tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    assert main([str(FIXTURE), str(tmp_path / "file" / "out"), "--no-plots"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{tmp_path / 'file'} is a file, not a directory" in err
    assert (tmp_path / "file").read_text() == "x"


def test_an_unwritable_output_directory_is_a_clear_error(tmp_path, monkeypatch, capsys):
    """mkstemp used to run outside the try: an OSError traceback. (Root ignores a
    read-only mode bit, so the refusal is simulated where the staging folder is made.)"""
    output = tmp_path / "out"
    output.mkdir()

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")
    monkeypatch.setattr(output_module.tempfile, "mkdtemp", refuse)
    monkeypatch.setattr(output_module.tempfile, "mkstemp", refuse)
    assert main([str(FIXTURE), str(output), "--no-plots"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Permission denied" in err and str(output) in err
    assert list(output.iterdir()) == []


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_output_directory_is_a_clear_error(tmp_path):
    output = tmp_path / "out"
    output.mkdir()
    output.chmod(0o555)
    try:
        run = run_cli([str(FIXTURE), str(output), "--no-plots"])
    finally:
        output.chmod(0o755)
    assert run.returncode == 2 and run.stderr.count("\n") == 1 and "Traceback" not in run.stderr


def test_nothing_is_written_outside_the_output_directory(tmp_path):
    """matplotlib's config and font cache included: the command runs with an empty HOME
    and cache folder, and both stay empty."""
    home, cache, work = tmp_path / "home", tmp_path / "cache", tmp_path / "work"
    for folder in (home, cache, work):
        folder.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MPL", "XDG_"))}
    env.update(HOME=str(home), XDG_CACHE_HOME=str(cache), XDG_CONFIG_HOME=str(home / ".config"),
               PYTHONPATH=str(ROOT), PYTHONDONTWRITEBYTECODE="1")
    run = run_cli([str(FIXTURE), str(work / "out")], cwd=work, env=env)
    assert run.returncode == 0, run.stderr
    assert list(home.iterdir()) == [] and list(cache.iterdir()) == []
    assert [p.name for p in work.iterdir()] == ["out"]
    assert (work / "out" / "speedup_conv2d.png").exists()
    assert not [p for p in (work / "out").iterdir() if p.is_dir()]


@pytest.mark.parametrize("inside", ["", "amd-epyc-2cpu", "amd-epyc-2cpu/../new/deeper"],
                         ids=["the results themselves", "a machine folder", "a new folder"])
def test_an_output_directory_inside_the_results_is_refused(tmp_path, capsys, inside):
    """asv reads every .json under results/ (the manifest too), and so would every
    later report: the output must lie outside it."""
    results = copy_results(tmp_path / "results")
    before = snapshot(results)
    assert main([str(results), str(results / inside), "--no-plots"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is inside the results directory" in err
    assert snapshot(results) == before
    # a relative spelling of the same place is the same place
    assert main([str(results), os.path.relpath(results / inside), "--no-plots"]) == 2
    assert snapshot(results) == before


@pytest.mark.parametrize("looped", ["results", "output"])
def test_a_symlink_loop_in_either_path_is_one_line(tmp_path, capsys, looped):
    """Path.resolve() raises RuntimeError on a loop (hostile pass 90: a traceback, exit 1,
    which a gate would read as a finding)."""
    results = copy_results(tmp_path / "results")
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    paths = ([tmp_path / "loop", tmp_path / "out"] if looped == "results"
             else [results, tmp_path / "loop" / "out"])
    assert main([*map(str, paths), "--no-plots"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_an_output_directory_beside_the_results_is_fine(tmp_path):
    results = copy_results(tmp_path / "results")
    assert main([str(results), str(tmp_path / "results-report"), "--no-plots"]) == 0


def test_the_reader_skips_hidden_files_in_a_machine_folder(tmp_path):
    """A report once written into a machine folder left its manifest there; every later
    run stopped on it ('lacks key(s) ...'). No asv file begins with a dot."""
    results = copy_results(tmp_path / "results")
    machine = results_files(results)[0].parent
    (machine / MANIFEST).write_text(json.dumps({"version": 1, "files": {}}))
    (machine / "._4db256e0-env.json").write_bytes(b"\x00\x05\x16\x07")  # macOS's resource fork
    assert main([str(results), str(tmp_path / "out"), "--no-plots"]) == 0


def test_every_file_a_run_removes_is_named(earlier, capsys):
    """--no-plots into a folder holding plots removes them (the manifest says the tool
    wrote them): each one is said, never silently gone."""
    _, output = earlier
    plots = sorted(p.name for p in output.glob("*.png"))
    capsys.readouterr()
    report = build_report(FIXTURE, output, with_plots=False)
    assert sorted(p.name for p in report.removed) == plots and len(plots) == 4
    assert main([str(FIXTURE), str(output)]) == 0  # the plots are back
    capsys.readouterr()
    assert main([str(FIXTURE), str(output), "--no-plots"]) == 0
    out = capsys.readouterr().out
    assert f"removed {len(plots)} file(s) an earlier run wrote" in out
    listed = out.split("file(s) an earlier run wrote")[1].splitlines()[1:len(plots) + 1]
    assert listed == [f"  {output / name}" for name in plots]
    assert main([str(FIXTURE), str(output), "--no-plots"]) == 0  # nothing to remove now
    assert "removed" not in capsys.readouterr().out


def _layers_on_machines(tmp_path, machines) -> Path:
    """The fixture's run copied onto each of ``machines``, its fft_abs renamed to a layer
    conv2d_x (any layer name is read; this one ends like a machine name begins)."""
    results = copy_results(tmp_path / "results")
    rename = lambda names: {k.replace("bench_fft_abs.", "bench_conv2d_x."): v  # noqa: E731
                            for k, v in names.items()}
    save(results / "benchmarks.json", rename(load(results / "benchmarks.json")))
    original = results_files(results)[0]
    data = load(original)
    data["results"] = rename(data["results"])
    for machine in machines:
        data["params"]["machine"] = machine
        (results / machine).mkdir()
        save(results / machine / original.name, data)
    for path in original.parent.iterdir():
        path.unlink()
    original.parent.rmdir()
    return results


def test_layer_and_machine_names_with_underscores_never_share_a_plot(tmp_path):
    """Machines m and x_m, layers conv2d and conv2d_x: 'conv2d' on x_m and 'conv2d_x' on
    m were both time_vs_size_conv2d_x_m.png, one plot lost."""
    one = build_report(_layers_on_machines(tmp_path / "one", ["m"]), tmp_path / "one" / "out")
    single = sorted(p.name for p in one.files if p.suffix == ".png")
    assert single == ["speedup_conv2d.png", "speedup_conv2d_x.png", "time_vs_size_conv2d.png",
                      "time_vs_size_conv2d_x.png"]  # one machine: the names as ever
    two = build_report(_layers_on_machines(tmp_path / "two", ["m", "x_m"]),
                       tmp_path / "two" / "out")
    pngs = sorted(p.name for p in two.files if p.suffix == ".png")
    assert len(pngs) == len(set(pngs)) == 2 * len(single)
    assert {"time_vs_size_conv2d@x_m.png", "time_vs_size_conv2d_x@m.png"} <= set(pngs)
    assert sorted(p.name for p in (tmp_path / "two" / "out").glob("*.png")) == pngs


def test_two_plots_that_would_share_a_name_stop_the_report(earlier, monkeypatch, capsys):
    """The explicit check behind the separator: a collision (here forced) is refused
    in one line, and the output directory stays as it was."""
    from scipy_layers.reports import plots
    _, output = earlier
    before = snapshot(output)
    monkeypatch.setattr(plots, "file_token", lambda name: "same")
    assert main([str(FIXTURE), str(output)]) == 2
    err = capsys.readouterr().err
    assert "two plots would be written as time_vs_size_same.png" in err and err.count("\n") == 1
    assert snapshot(output) == before


@pytest.mark.parametrize("spelling", ["new/../out", "a/b/../../out", "new/deeper/../out"])
def test_an_output_through_dot_dot_is_made_as_mkdir_p_makes_it(tmp_path, monkeypatch, spelling):
    """mkdir of "new/.." failed with "File exists" once "new" was made (hostile pass 91);
    the report now makes the path as mkdir -p does."""
    monkeypatch.chdir(tmp_path)
    assert main([str(FIXTURE), spelling, "--no-plots"]) == 0
    assert (tmp_path / spelling / "summary.md").is_file()


def test_a_dangling_symbolic_link_as_output_is_one_line(tmp_path, capsys):
    (tmp_path / "out").symlink_to(tmp_path / "gone")
    assert main([str(FIXTURE), str(tmp_path / "out"), "--no-plots"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is a symbolic link that leads nowhere" in err
    assert not (tmp_path / "gone").exists()


def test_a_dollar_in_a_machine_name_is_text_in_the_plots(tmp_path, capsys):
    """matplotlib reads $...$ as a formula: "m$\\frac$" raised a ValueError traceback
    (exit 1, no reports), and "m$x$" would have been drawn as math (hostile pass 92)."""
    results = copy_results(tmp_path / "results")
    folder = results_files(results)[0].parent
    name = "m$\\frac$"
    moved = folder.rename(results / name)
    for path in moved.glob("*.json"):
        data = load(path)
        if path.name == "machine.json":
            data["machine"] = name
        else:
            data["params"]["machine"] = name
        save(path, data)
    assert main([str(results), str(tmp_path / "out")]) == 0, capsys.readouterr().err
    assert main([str(FIXTURE), str(tmp_path / "plain")]) == 0  # (the same plots, named)
    assert (sorted(p.name for p in (tmp_path / "out").glob("*.png"))
            == sorted(p.name for p in (tmp_path / "plain").glob("*.png")) != [])


@pytest.mark.parametrize("target", ["dangling", "file"])
def test_a_path_through_a_new_folder_and_back_is_checked_where_it_leads(tmp_path, capsys,
                                                                          target):
    """"new/../x" with x a dangling link or a file: the checks looked through "new",
    which does not exist, saw nothing, and the report failed with "File exists" only at
    mkdir, after make compare's timing (hostile pass 92); they now see x."""
    if target == "dangling":
        (tmp_path / "x").symlink_to(tmp_path / "gone")
    else:
        (tmp_path / "x").write_text("mine")
    assert main([str(FIXTURE), str(tmp_path / "new" / ".." / "x"), "--no-plots"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "File exists" not in err
    assert not (tmp_path / "new").exists() and not (tmp_path / "gone").exists()


def test_a_manifest_naming_files_with_their_true_hashes_still_removes_none_it_may_not(earlier):
    """A manifest is only read, never trusted: one that lists the committed README.md or
    a file outside the output directory with their real SHA-256 (as a stale file of an
    earlier run would be listed) removes neither (the suite passed with README.md
    dropped from the protected names, as its tampered manifest's hashes matched nothing)."""
    parent, output = earlier
    readme, outside = output / "README.md", parent / "outside.txt"
    readme.write_text("committed documentation\n")
    outside.write_text("x")
    files = {"README.md": output_module._sha256(readme),
             "../outside.txt": output_module._sha256(outside)}
    (output / MANIFEST).write_text(json.dumps({"version": 1, "files": files}))
    assert main([str(FIXTURE), str(output), "--no-plots"]) == 0
    assert readme.read_text() == "committed documentation\n" and outside.read_text() == "x"


def test_a_target_name_held_by_a_symbolic_link_is_a_clear_error(tmp_path, capsys):
    """A symbolic link where the report would write a file is the user's: the report
    stops rather than replace it (the suite passed with the check looking through the
    link to the file it leads to)."""
    output = tmp_path / "out"
    output.mkdir()
    (tmp_path / "mine.csv").write_text("mine\n")
    (output / "timings.csv").symlink_to(tmp_path / "mine.csv")
    before = snapshot(output)
    assert main([str(FIXTURE), str(output), "--no-plots"]) == 2
    assert "timings.csv" in capsys.readouterr().err
    assert snapshot(output) == before and (output / "timings.csv").is_symlink()
    assert (tmp_path / "mine.csv").read_text() == "mine\n"


def test_machine_names_differing_in_case_alone_never_share_a_file_on_a_case_blind_disk(
        tmp_path):
    """'Box' and 'box' get plot names that differ in more than case (macOS and Windows
    disks are case-blind: one would overwrite the other); the suite passed with a plain
    name matched case-blind, which kept 'Box' as it is."""
    report = _report_of_machines(tmp_path, ("Box", "box"))
    pngs = [p.name for p in report.files if p.suffix == ".png"]
    assert len({n.lower() for n in pngs}) == len(pngs) == 2 * 4


def test_dot_dot_after_a_symbolic_link_is_checked_where_it_leads(tmp_path, capsys, monkeypatch):
    """"link/.." is where the link leads's parent, not the folder holding the link: a
    file there is refused by name before anything is made (mkdir -p follows the link)."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "link").symlink_to(tmp_path / "a" / "b")
    (tmp_path / "a" / "out").write_text("the user's file")
    assert main([str(FIXTURE), "link/../out", "--no-plots"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "exists and is not a directory" in err
    assert (tmp_path / "a" / "out").read_text() == "the user's file"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "link"]


def test_a_missing_date_is_an_empty_cell_not_another_rows_date(tmp_path):
    """A CSV's dates are formatted once per distinct date; a missing one (NaT) stays
    empty rather than taking the text of the last distinct date."""
    import pandas as pd
    dates = pd.to_datetime(["2026-12-01T10:00:00Z", None, "2026-12-02T11:30:00Z"], utc=True)
    frame = pd.DataFrame({"commit": ["a", "b", "c"], "commit_date": dates})
    with output_module.staged_output(tmp_path / "out") as staging:
        staging.write_csv("dates.csv", frame)
        staging.commit()
    assert (tmp_path / "out" / "dates.csv").read_text().splitlines() == [
        "commit,commit_date", "a,2026-12-01T10:00:00+0000", "b,",
        "c,2026-12-02T11:30:00+0000"]
