"""Which cases make compare compares (tools/compared_cases.py): the timing cases that run
at either commit, each commit's own package asked; and what the report makes of asv's
NaN outside the cases a comparison ran (--cases)."""
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import compared_cases  # noqa: E402

METHODS = "bench_fft_abs.FFTAbsMethods.time_forward_backward"


def _head_is_committed_package() -> bool:
    return subprocess.run(["git", "diff", "--quiet", "HEAD", "--", "scipy_layers"],
                          cwd=ROOT).returncode == 0


def test_a_commit_whose_package_lacks_an_implementation_lists_none_of_its_cases(
        tmp_path, monkeypatch):
    """The hostile pass's case: at a commit without "scipy-matrix" its FFT cases are not
    among the cases that run there. That package also prints on import and at exit
    (hostile passes 98 and 102: a debug print made the listing's JSON unreadable)."""
    def package_without_matrix(commit, into):
        subprocess.run(f"git archive --format=tar HEAD scipy_layers | tar -x -C {into}",
                       shell=True, check=True, cwd=ROOT)
        registry = into / "scipy_layers" / "registry.py"
        text, count = re.subn(r'\n *"scipy-matrix": Implementation\(.*?\),\n(?= *")', "\n",
                              registry.read_text(), flags=re.S)
        assert count == 1
        registry.write_text(text)
        init = into / "scipy_layers" / "__init__.py"
        init.write_text('import atexit\nprint("debug")\natexit.register(print, "bye")\n'
                        + init.read_text())

    monkeypatch.setattr(compared_cases, "_package_at", package_without_matrix)
    at_commit = compared_cases.list_cases("box", tmp_path, commit="0" * 40)
    combos = at_commit["timings"][METHODS]
    assert combos and not any("'scipy-matrix'" in c for c in combos)
    assert any("'scipy-fft'" in c for c in combos)
    # cached by the commit: asked again, the suite is not run again
    monkeypatch.setattr(compared_cases, "_ask_suite", lambda package_dir: pytest.fail("asked"))
    assert compared_cases.list_cases("box", tmp_path, commit="0" * 40) == at_commit


@pytest.mark.skipif(not _head_is_committed_package(), reason="HEAD's package is not the tree's")
def test_the_package_at_a_commit_is_the_one_git_holds(tmp_path):
    compared_cases._package_at("HEAD", tmp_path)
    for path in (ROOT / "scipy_layers").rglob("*.py"):
        assert (tmp_path / path.relative_to(ROOT)).read_bytes() == path.read_bytes()


def test_a_commit_git_does_not_have_is_a_one_line_error(tmp_path):
    with pytest.raises(compared_cases.CompareError, match="git archive 00000000 scipy_layers failed"):
        compared_cases._package_at("0" * 40, tmp_path)


def test_union_keeps_the_first_order_and_adds_what_only_the_second_runs():
    head = {"a": ["1", "2"], "b": []}
    base = {"a": ["2", "3"], "b": ["4"], "c": []}
    assert compared_cases.union(head, base) == {"a": ["1", "2", "3"], "b": ["4"]}
    assert compared_cases.within({"a": ["1", "2", "3"], "b": ["4"]}, base) == {
        "a": ["2", "3"], "b": ["4"]}


def test_within_keeps_a_benchmark_the_commit_does_not_list_with_no_case():
    """A benchmark new at B (A's package lists none of it): none of its cases run at A,
    so A's results are judged without them, not on every combination B runs."""
    assert compared_cases.within({"a": ["1", "2"], "new": ["5", "6"]}, {"a": ["2"]}) == {
        "a": ["2"], "new": []}


def test_the_cache_keeps_a_few_listings_and_drops_the_oldest(tmp_path, monkeypatch):
    monkeypatch.setattr(compared_cases, "_ask_suite", lambda package_dir: {"timings": {}})
    monkeypatch.setattr(compared_cases, "_package_at", lambda commit, into: None)
    for n in range(6):
        compared_cases.list_cases("box", tmp_path, commit=f"{n:040d}")
    assert len(list(tmp_path.glob("suite-cases-*.json"))) == compared_cases.CACHE_FILES_KEPT


# --- make compare's use of them (tools/compare_commits.py, on test_compare_commits' fakes)

from test_compare_commits import BASE, CASES, HEAD, TIME, fake  # noqa: E402,F401
import compare_commits as cc  # noqa: E402

NATIVE, SCIPY = "'native', '16x16'", "'scipy', '16x16'"


def _listing(at_head, at_base):
    """list_cases giving B's package ``at_head`` and A's ``at_base`` timing cases of TIME
    (an exception instance: raised)."""
    def list_cases(machine, cache, commit=None):
        combos = at_head if commit == HEAD else at_base
        if isinstance(combos, Exception):
            raise combos
        return {"timings": {TIME: combos}, "tracks": CASES["tracks"]}
    return list_cases


def compared_cases_regex(combos):
    import suite_cases
    return suite_cases.bench_regexes({TIME: combos})[0]


def _selected(command):
    return [command[i + 1] for i, arg in enumerate(command) if arg == "-b"]


def _results(fake, commit):
    path = fake.results / "box" / f"{commit[:8]}-env.json"
    return path, json.loads(path.read_text())


def test_a_case_only_a_runs_is_timed_at_both_and_compared(fake, monkeypatch):
    """B's setup skips "scipy" (an implementation gone): it is timed at both, so that B's
    NaN there is a skip asv saw, which the gate calls "now skipped"."""
    monkeypatch.setattr(cc, "list_cases", _listing([NATIVE], [NATIVE, SCIPY]))
    assert cc.main([]) == 0
    timings = fake.calls[0][0]
    assert _selected(timings)[0] == compared_cases_regex([NATIVE, SCIPY])
    assert json.loads(Path(fake.calls[2][0][-1]).read_text())["timings"] == {TIME: [NATIVE, SCIPY]}


def test_a_nan_where_the_commit_runs_the_case_is_not_reused(fake, monkeypatch, capsys):
    """A results file holds NaN for a case its run did not select (asv's -b): where the
    commit runs that case, those results cannot stand for it (they read as a skip)."""
    monkeypatch.setattr(cc, "list_cases", _listing([NATIVE, SCIPY], [NATIVE, SCIPY]))
    assert cc.main([]) == 0
    path, data = _results(fake, BASE)
    data["results"][TIME][0][1] = float("nan")  # "scipy" at A: not selected then
    path.write_text(json.dumps(data))
    fake.calls.clear()
    capsys.readouterr()
    assert cc.main([]) == 0
    out = capsys.readouterr().out
    assert f"{BASE[:8]}: to time: {TIME}({SCIPY}) has no result (NaN: not selected" in out
    assert f"{HEAD[:8]}: reused" in out


def test_a_nan_where_the_commit_skips_the_case_is_reused(fake, monkeypatch, capsys):
    monkeypatch.setattr(cc, "list_cases", _listing([NATIVE], [NATIVE, SCIPY]))
    assert cc.main([]) == 0
    path, data = _results(fake, HEAD)
    data["results"][TIME][0][1] = float("nan")  # "scipy" at B: its setup skips it
    path.write_text(json.dumps(data))
    fake.calls.clear()
    capsys.readouterr()
    assert cc.main([]) == 0
    assert capsys.readouterr().out.count("reused: its results on this machine are comparable") == 2


def test_where_a_cannot_be_listed_b_s_cases_are_used_and_a_nan_at_a_is_a_skip(
        fake, monkeypatch, capsys):
    monkeypatch.setattr(cc, "list_cases", _listing(
        [NATIVE, SCIPY], cc.CompareError("tools/suite_cases.py failed: ImportError: x")))
    assert cc.main([]) == 0
    err = capsys.readouterr().err
    assert "note: the cases that run at A are not known (tools/suite_cases.py failed: " \
           "ImportError: x); A is timed on B's" in err
    assert _selected(fake.calls[0][0])[0] == compared_cases_regex([NATIVE, SCIPY])
    path, data = _results(fake, BASE)
    data["results"][TIME][0][1] = float("nan")
    path.write_text(json.dumps(data))
    fake.calls.clear()
    capsys.readouterr()
    assert cc.main([]) == 0
    assert capsys.readouterr().out.count("reused: its results on this machine are comparable") == 2


def test_a_package_dir_without_the_package_is_refused(tmp_path):
    run = subprocess.run([sys.executable, str(ROOT / "tools/suite_cases.py"), "--package-dir",
                          str(tmp_path)], capture_output=True, text=True, cwd=ROOT)
    assert run.returncode == 2 and "no scipy_layers/__init__.py in it" in run.stderr


def test_an_unreadable_cache_is_asked_again_and_an_unwritable_one_is_done_without(
        tmp_path, monkeypatch, capsys):
    answer = {"timings": {"b": ["'x'"]}, "tracks": {}}
    asked = []
    monkeypatch.setattr(compared_cases, "_ask_suite",
                        lambda package_dir: asked.append(1) or answer)
    monkeypatch.setattr(compared_cases, "_package_at", lambda commit, into: None)
    assert compared_cases.list_cases("box", tmp_path, commit="1" * 40) == answer
    (cached,) = tmp_path.glob("suite-cases-*.json")
    for broken in ('{"timings": ', "{}", '{"timings": {"b": "x"}, "tracks": {}}'):
        cached.write_text(broken)  # (cut short by a crash; another tool's file)
        assert compared_cases.list_cases("box", tmp_path, commit="1" * 40) == answer
    assert len(asked) == 4
    folder_is_a_file = tmp_path / "file"
    folder_is_a_file.write_text("")
    assert compared_cases.list_cases("box", folder_is_a_file, commit="1" * 40) == answer
    assert "note: the case listing is not cached" in capsys.readouterr().err


def test_a_package_that_cannot_be_extracted_is_a_compare_error(tmp_path, monkeypatch):
    """A link in the package that leads out of it (hostile pass 98: tarfile's error, a
    traceback, status 1); the caller falls back to B's cases."""
    import io
    import tarfile
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w") as archive:
        link = tarfile.TarInfo("scipy_layers/README.md")
        link.type, link.linkname = tarfile.SYMTYPE, "../../README.md"
        archive.addfile(link)

    def archived(cmd, **kwargs):
        return subprocess.CompletedProcess(cmd, 0, data.getvalue(), b"")
    monkeypatch.setattr(compared_cases.subprocess, "run", archived)
    with pytest.raises(compared_cases.CompareError, match="cannot be extracted"):
        compared_cases._package_at("2" * 40, tmp_path)


def test_an_unexpected_error_is_status_2_never_the_gate_s_1(fake, monkeypatch, capsys):
    """Python's own status for an uncaught exception is 1, which make gate read as "a
    confirmed slowdown or gradient regression" (hostile pass 98)."""
    def broken(machine, cache, commit=None):
        raise KeyError("timings")
    monkeypatch.setattr(cc, "list_cases", broken)
    assert cc.main(["--gate"]) == 2
    err = capsys.readouterr().err
    assert "KeyError: 'timings'" in err and "compare: internal error" in err


def test_a_blank_output_is_refused(fake, capsys):
    assert cc.main(["--output", " "]) == 2
    assert "--output ' ' is blank" in capsys.readouterr().err


@pytest.mark.parametrize("package, when", [("scipy_layers", "cannot start"),
                                           ("scipy", "tools/suite_cases.py failed")])
def test_a_broken_install_is_status_2_never_the_gate_s_1(tmp_path, package, when):
    """An import that fails (a package broken by an upgrade, say) ended in Python's
    status 1, which make gate read as a confirmed regression (hostile pass 102): where
    the tool starts (its own package), or in the suite's listing (scipy, which the
    tool itself does not import)."""
    (tmp_path / package).mkdir()
    (tmp_path / package / "__init__.py").write_text(f'raise ImportError("a broken {package}")\n')
    run = subprocess.run([sys.executable, str(ROOT / "tools/compare_commits.py"), "--gate",
                          "--dry-run"], capture_output=True, text=True, cwd=ROOT,
                         env={**os.environ, "PYTHONPATH": str(tmp_path)})
    assert run.returncode == 2, run.stderr
    assert f"ImportError: a broken {package}" in run.stderr and when in run.stderr
