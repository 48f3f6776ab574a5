"""tools/compare_commits.py (make compare / make gate) without benchmarking: the base commit
rule and its errors in a scratch git repository; the commands, reuse and gate status with
asv, the report and the environment replaced by stand-ins; the case listing and asv -b
regexes of tools/suite_cases.py on a scratch benchmark package."""
import itertools
import json
import re
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import commit_pair  # noqa: E402
import compare_commits as cc  # noqa: E402
import record_environment  # noqa: E402
import suite_cases  # noqa: E402


def sh(repo, *args):
    return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture
def repo(tmp_path, monkeypatch):
    """A repository with main = c1 -> c2 and a branch feature = c2 -> c3; HEAD on main."""
    sh(tmp_path, "init", "-q", "-b", "main")
    sh(tmp_path, "config", "user.email", "t@example.com")
    sh(tmp_path, "config", "user.name", "t")
    for n in (1, 2):
        (tmp_path / "f.txt").write_text(str(n))
        sh(tmp_path, "add", "f.txt")
        sh(tmp_path, "commit", "-qm", f"c{n}")
    sh(tmp_path, "checkout", "-qb", "feature")
    (tmp_path / "f.txt").write_text("3")
    sh(tmp_path, "commit", "-qam", "c3")
    sh(tmp_path, "checkout", "-q", "main")
    monkeypatch.setattr(cc, "ROOT", tmp_path)
    monkeypatch.setattr(commit_pair, "ROOT", tmp_path)  # (git runs there)
    return tmp_path


def test_on_main_the_base_is_head_1(repo):
    base, head, how = cc.resolve_commits(None)
    assert (base, head) == (sh(repo, "rev-parse", "HEAD~1"), sh(repo, "rev-parse", "HEAD"))
    assert how == "HEAD~1 (HEAD is on main)"


def test_on_a_branch_the_base_is_the_merge_base_with_main(repo):
    sh(repo, "checkout", "-q", "feature")
    base, head, how = cc.resolve_commits(None)
    assert base == sh(repo, "rev-parse", "main") and head == sh(repo, "rev-parse", "feature")
    assert how == "merge-base of HEAD and main"


def test_a_branch_behind_a_moved_main_is_compared_where_it_left_main(repo):
    # (mutation pass 115: main's tip holds changes the branch never had)
    (repo / "g.txt").write_text("main moves on")
    sh(repo, "add", "g.txt")
    sh(repo, "commit", "-qm", "c4")
    sh(repo, "checkout", "-q", "feature")
    base, head, how = cc.resolve_commits(None)
    assert base == sh(repo, "rev-parse", "main~1") != sh(repo, "rev-parse", "main")
    assert head == sh(repo, "rev-parse", "feature") and how == "merge-base of HEAD and main"


def test_base_given_by_name(repo):
    sh(repo, "checkout", "-q", "feature")
    assert cc.resolve_commits("HEAD~2")[0] == sh(repo, "rev-parse", "HEAD~2")


@pytest.mark.parametrize("base, message", [
    ("no-such-rev", "BASE=no-such-rev is not a commit of this repository"),
    ("HEAD", "BASE=HEAD is HEAD"),
    ("main", "BASE=main is HEAD"),
    ("^HEAD~1", "BASE=^HEAD~1 is not a commit"),  # (git answers "^<hash>": hostile pass 98)
])
def test_bad_bases_say_what_is_wrong(repo, base, message):
    with pytest.raises(cc.CompareError, match=re.escape(message)):
        cc.resolve_commits(base)


def test_a_base_after_head_is_refused_before_anything_is_timed(repo):
    """BASE=feature with HEAD on main: the pair went to asv and the report as given,
    feature read as the base and main's older tip as the change, so a slowdown in
    feature read as a speed-up (and --gate passed it)."""
    with pytest.raises(cc.CompareError, match=r"BASE=feature \(\w{8}\) comes after HEAD "
                                              r"\(\w{8}\) in git history"):
        cc.resolve_commits("feature")
    sh(repo, "checkout", "-q", "feature")  # (the same pair the right way round is taken)
    assert cc.resolve_commits("main")[0] == sh(repo, "rev-parse", "main")
    sh(repo, "checkout", "-q", "-b", "side", "main~1")  # (branches apart: either way)
    (repo / "h.txt").write_text("side")
    sh(repo, "add", "h.txt")
    sh(repo, "commit", "-qm", "c5")
    assert cc.resolve_commits("feature")[0] == sh(repo, "rev-parse", "feature")


def test_without_main_or_a_parent_the_base_must_be_given(repo):
    sh(repo, "checkout", "-q", "--orphan", "lonely")
    sh(repo, "commit", "-qm", "root")
    with pytest.raises(cc.CompareError, match="HEAD has no parent to compare with: pass BASE=<rev>"):
        sh(repo, "branch", "-f", "main", "HEAD")  # main is this root commit, HEAD is main
        cc.resolve_commits(None)
    sh(repo, "branch", "-m", "main", "trunk")
    with pytest.raises(cc.CompareError, match="no branch 'main' to compare with: pass BASE=<rev>"):
        cc.resolve_commits(None)


def test_a_dirty_tree_is_named_in_the_warning(repo):
    assert cc.dirty_warning() is None
    (repo / "f.txt").write_text("changed")
    assert cc.dirty_warning().startswith("warning: uncommitted changes (f.txt): asv measures committed code")


def test_a_staged_change_is_named_in_the_warning_too(repo):
    # (mutation pass 110: `git diff` without HEAD lists the unstaged changes only)
    (repo / "g.txt").write_text("new")
    sh(repo, "add", "g.txt")
    assert cc.dirty_warning().startswith("warning: uncommitted changes (g.txt): ")


# -- the flow, with stand-ins for asv, the report and the environment --------------------

BASE = "021b87553d963bcbd4a1e39e4cec9a911590016c"  # two commits of this repository
HEAD = "4c6756149a5339491c23d0e8fd442f91e08b00a5"
TIME = "bench_fft_abs.FFTAbs.time_forward"
TRACK = "bench_fft_abs.FFTAbsGradients.track_max_rel_error"
PARAMS = [["'native'", "'scipy'"], ["'16x16'"]]
CASES = {"timings": {TIME: ["'native', '16x16'", "'scipy', '16x16'"]},
         "tracks": {TRACK: ["'native', '16x16'", "'scipy', '16x16'"]}}
DESCRIPTION = {"cpu": {"model_name": "AMD EPYC", "family": "25", "model": "1", "flags": ["avx2"], "num_cpu": 2},
               "blas": [], "threads": {"torch": 1, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
                                       "OPENBLAS_NUM_THREADS": "1"},
               "overrides": {v: None for v in record_environment.OVERRIDE_VARS},
               "versions": {"torch": "2.13.0", "numpy": "2.4.6", "scipy": "1.17.1"}}


class FakeAsv:
    """Records every command; an asv run writes results for the commits on its stdin, with
    rounds x repeat samples per timing case, as asv does."""

    def __init__(self, results, report_status=0):
        self.results, self.report_status, self.calls = results, report_status, []

    def __call__(self, cmd, *, input=None, env=None):
        self.calls.append((cmd, input))
        if cmd[1:3] == ["run", "--machine"]:
            self.env.python.parent.mkdir(parents=True, exist_ok=True)
            self.env.python.write_text("")  # asv creates its environment when there is none
            attrs = dict(a.split("=") for a in cmd if re.fullmatch(r"\w+=[\d.]+", a))
            n = int(attrs.get("rounds", 1)) * int(attrs.get("repeat", 1))
            for commit in input.split():
                self.write(commit, n if "--record-samples" in cmd else 0, "--record-samples" in cmd)
            return 0
        return self.report_status if "scipy_layers.reports" in cmd else 0

    def write(self, commit, n, timings):
        path = self.results / "box" / f"{commit[:8]}-env.json"
        data = json.loads(path.read_text()) if path.exists() else {
            "commit_hash": commit, "env_name": "env-name", "result_columns": ["result", "params", "version",
                                                                             "samples"], "results": {}}
        if timings:
            data["results"][TIME] = [[1e-5, 2e-5], PARAMS, "2", [[1e-5] * n, [2e-5] * n]]
        else:
            data["results"][TRACK] = [[0.0, 1e-7], PARAMS, "1"]
        path.write_text(json.dumps(data))

    def kinds(self):
        """What each call was: timings, tracks, report, publish."""
        names = []
        for cmd, _ in self.calls:
            names.append("timings" if "--interleave-rounds" in cmd else "tracks" if cmd[1] == "run"
                         else "report" if "scipy_layers.reports" in cmd else "publish")
        return names


@pytest.fixture
def fake(tmp_path, monkeypatch):
    results = tmp_path / "results"
    (results / "box").mkdir(parents=True)
    (results / "benchmarks.json").write_text(json.dumps({
        TIME: {"version": "2", "params": PARAMS, "type": "time"},
        TRACK: {"version": "1", "params": PARAMS, "type": "track"}, "version": 2}))
    python = tmp_path / "env" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text("")
    env = record_environment.AsvEnvironment("env-name", python, {}, results, tmp_path / "environments")
    asv = FakeAsv(results)
    monkeypatch.setattr(cc, "resolve_commits", lambda base: (base or BASE, HEAD, "test"))
    monkeypatch.setattr(cc, "capture", lambda cmd, env=None: "box\n")
    monkeypatch.setattr(cc, "list_cases", lambda machine, cache, commit=None: CASES)
    monkeypatch.setattr(cc, "newer_than_suite", lambda path: True)
    monkeypatch.setattr(cc, "run_command", asv)
    monkeypatch.setattr(record_environment, "asv_environment", lambda config: env)
    monkeypatch.setattr(record_environment, "describe_in", lambda python, env_vars: DESCRIPTION)
    asv.env = env
    return asv


def test_both_commits_are_timed_in_interleaved_rounds_then_reported_and_published(fake):
    assert cc.main([]) == 0
    assert fake.kinds() == ["timings", "tracks", "report", "publish"]
    timings, stdin = fake.calls[0]
    assert cc.ASV == timings[0] and timings[1:5] == ["run", "--machine", "box", "HASHFILE:-"]
    assert stdin.split() == [BASE, HEAD]  # A first in round 1, then asv alternates
    assert ["-a", "rounds=2", "-a", "repeat=5", "-a", "warmup_time=0.05"] == timings[7:13]
    selected = [timings[i + 1] for i, arg in enumerate(timings) if arg == "-b"]
    assert selected == suite_cases.bench_regexes(CASES["timings"])
    assert fake.calls[1][0][-2:] == ["-b", cc.TRACKS]  # memory, abs error: make bench's
    # the report splits each case's samples into rounds of `repeat` samples
    assert fake.calls[2][0][-7:-1] == ["--commits", BASE, HEAD, "--round-size", "5", "--cases"]
    assert json.loads(Path(fake.calls[2][0][-1]).read_text()) == {  # the cases it ran
        "timings": CASES["timings"], "tracks": CASES["tracks"]}
    for commit in (BASE, HEAD):
        record = json.loads((fake.env.environments / "box" / f"{commit}.json").read_text())
        assert record_environment.validate(record) == [] and record["commit"] == commit


def test_comparable_results_are_reused_and_others_timed_again(fake, capsys):
    assert cc.main([]) == 0
    fake.calls.clear()
    assert cc.main([]) == 0
    assert fake.kinds() == ["report", "publish"]
    assert capsys.readouterr().out.count("reused: its results on this machine are comparable") == 2
    fake.calls.clear()
    assert cc.main(["--rounds", "3"]) == 0  # other settings: 10 samples are not 3 x 5
    assert fake.kinds() == ["timings", "report", "publish"]  # the tracks stay current
    assert "has 10 samples, not 3 rounds x 5" in capsys.readouterr().out


def test_a_commit_timed_again_in_another_environment_is_warned_of(fake, monkeypatch, capsys):
    # asv merges the new run into the commit's results file: what it does not time stays
    assert cc.main([]) == 0
    assert "another environment" not in capsys.readouterr().err
    overridden = {**DESCRIPTION, "overrides": {**DESCRIPTION["overrides"],
                                               "OPENBLAS_CORETYPE": "Haswell"}}
    monkeypatch.setattr(record_environment, "describe_in", lambda python, env_vars: overridden)
    assert cc.main([]) == 0
    err = capsys.readouterr().err
    for commit in (BASE, HEAD):
        assert (f"warning: {commit[:8]} on 'box' ran in another environment before "
                "(OPENBLAS_CORETYPE: unset -> 'Haswell')") in err


def test_a_new_head_is_timed_alone_against_the_reused_base(fake, monkeypatch):
    assert cc.main([]) == 0
    fake.calls.clear()
    new_head = "8308eab" + "0" * 33
    monkeypatch.setattr(cc, "resolve_commits", lambda base: (BASE, new_head, "test"))
    assert cc.main([]) == 0
    assert fake.calls[0][1].split() == [new_head]


def test_a_new_head_does_not_spare_the_base_its_reusability_check(fake, monkeypatch, capsys):
    """B without results is timed; A's results are still checked, not taken as they are:
    A timed since by make bench (no samples) is timed again beside the new head."""
    assert cc.main([]) == 0
    fake.write(BASE, 0, True)  # make bench timed the base since: no samples recorded
    fake.calls.clear()
    capsys.readouterr()
    new_head = "8308eab" + "0" * 33
    monkeypatch.setattr(cc, "resolve_commits", lambda base: (BASE, new_head, "test"))
    assert cc.main([]) == 0
    assert fake.kinds() == ["timings", "tracks", "report", "publish"]
    assert fake.calls[0][1].split() == [BASE, new_head] and fake.calls[1][1].split() == [new_head]
    assert "no samples recorded" in capsys.readouterr().out


def test_a_commit_timed_again_for_want_of_samples_keeps_its_current_gradient_tracks(fake, capsys):
    assert cc.main([]) == 0
    fake.write(BASE, 0, True)  # make bench timed the base since: no samples recorded
    fake.calls.clear()
    assert cc.main([]) == 0
    assert fake.kinds() == ["timings", "report", "publish"]
    assert fake.calls[0][1].split() == [BASE]
    out = capsys.readouterr().out
    assert "no samples recorded" in out and "its gradient tracks are current: reused" in out
    fake.calls.clear()  # a track at an older version is run again, with the timings
    data = json.loads(next((fake.results / "box").glob(f"{BASE[:8]}-*.json")).read_text())
    data["results"][TRACK][2] = "0"
    next((fake.results / "box").glob(f"{BASE[:8]}-*.json")).write_text(json.dumps(data))
    assert cc.main([]) == 0
    assert fake.kinds() == ["timings", "tracks", "report", "publish"]
    assert fake.calls[1][1].split() == [BASE]


def test_without_an_asv_environment_results_cannot_be_checked_and_are_timed_again(fake, capsys):
    assert cc.main([]) == 0
    fake.env.python.unlink()  # the environment was deleted since
    fake.calls.clear()
    assert cc.main([]) == 0
    assert fake.kinds() == ["timings", "tracks", "report", "publish"]
    assert capsys.readouterr().out.count("cannot check its results: no asv environment yet") == 2


def test_fresh_times_both_again_and_keeps_current_tracks(fake):
    assert cc.main([]) == 0
    fake.calls.clear()
    assert cc.main(["--fresh"]) == 0
    assert fake.kinds() == ["timings", "report", "publish"]
    assert fake.calls[0][1].split() == [BASE, HEAD]



def test_fresh_is_the_reason_given_even_where_the_results_could_not_be_reused_anyway(fake, capsys):
    """FRESH=1 names itself as why both commits are timed, not a reuse check's finding
    (the suite passed with plan() overwriting the reason whenever a check failed)."""
    assert cc.main([]) == 0
    fake.write(BASE, 0, True)  # make bench timed the base since: no samples recorded
    capsys.readouterr()
    assert cc.main(["--fresh"]) == 0
    out = capsys.readouterr().out
    for commit in (BASE, HEAD):
        assert f"   {commit[:8]}: to time: FRESH=1" in out
    assert "no samples recorded" not in out

@pytest.mark.parametrize("report_status, expected", [(0, 0), (1, 1), (2, 2)])
def test_the_gate_exits_with_the_reports_gate_status(fake, report_status, expected, capsys):
    fake.report_status = report_status
    assert cc.main(["--gate"]) == expected
    assert "--gate" in fake.calls[2][0]
    assert {0: "gate: passed", 1: "gate: FAILED", 2: "gate: error"}[report_status] in capsys.readouterr().out


def test_a_results_file_that_cannot_be_read_is_one_line_before_anything_runs(fake, capsys):
    """(hostile pass 140) HEAD's results file hand-edited into a list stopped make compare
    with AttributeError's traceback; one whose row is no list, with a TypeError."""
    path = fake.results / "box" / f"{HEAD[:8]}-env.json"
    path.write_text("[1, 2]")  # (passed over, as a file that is no JSON is)
    assert cc.main(["--dry-run"]) == 0
    assert "Traceback" not in capsys.readouterr().err
    path.write_text(json.dumps({"commit_hash": HEAD, "env_name": "env-name",
                                "result_columns": ["result", "params"], "results": {TIME: 5}}))
    assert cc.main([]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1:] == [
        f"compare: error: {path}: benchmark {TIME!r}: row is not a list (the report reads "
        "every results file: fix or delete it)"]
    assert fake.calls == []


def test_dry_run_runs_nothing(fake, capsys):
    assert cc.main(["--dry-run"]) == 0
    assert fake.calls == []
    out = capsys.readouterr().out
    assert "would run (timings" in out and "--commits " + BASE + " " + HEAD in out
    assert not (fake.env.environments / "box").exists()


def test_bench_restricts_timings_and_tracks_to_the_matching_cases(fake):
    assert cc.main(["--bench", r"FFTAbs\.time_forward\('scipy'"]) == 0
    assert fake.kinds() == ["timings", "report", "publish"]  # no track matches
    regexes = [a for i, a in enumerate(fake.calls[0][0]) if fake.calls[0][0][i - 1] == "-b"]
    assert regexes == suite_cases.bench_regexes({TIME: ["'scipy', '16x16'"]})


def test_bad_settings_are_one_line_errors(fake, capsys):
    assert cc.main(["--rounds", "0"]) == 2
    assert capsys.readouterr().err.strip() == ("compare: error: ROUNDS must be at least 2 and "
                                               "REPEAT at least 1, got 0 and 5")
    # One round per commit leaves the test no round-to-round variance: all inconclusive.
    assert cc.main(["--rounds", "1"]) == 2
    assert "ROUNDS must be at least 2" in capsys.readouterr().err
    assert cc.main(["--bench", "NoSuchBenchmark"]) == 2
    assert "BENCH=NoSuchBenchmark selects no benchmark of the suite" in capsys.readouterr().err
    # Hostile pass 148: a regex that names a benchmark but ends in $ matches no case (asv
    # searches 'name(params)'); the line says what is searched, with an example.
    assert cc.main(["--bench", r"bench_fft_abs.FFTAbs.time_forward$"]) == 2
    err = capsys.readouterr().err.splitlines()[-1]  # (a dirty tree's warning may come first)
    assert err.startswith("compare: error: ") and "searches each case as 'bench_<layer>.<Class>.<method>(" in err
    assert "FFTAbs\\.time_forward\\(" in err


@pytest.fixture
def cases_listed(monkeypatch):
    """Whether the suite's cases were listed (~10 s on the real suite)."""
    listed = []
    monkeypatch.setattr(cc, "list_cases", lambda machine, cache, commit=None: listed.append(machine) or CASES)
    return listed


def test_a_bench_that_is_no_regex_is_a_one_line_error_before_the_cases_are_listed(
        fake, cases_listed, capsys):
    assert cc.main(["--dry-run", "--bench", "("]) == 2
    assert capsys.readouterr().err.strip() == (
        "compare: error: BENCH (--bench) '(' is not a regular expression: "
        "missing ), unterminated subpattern at position 0")
    assert cases_listed == [] and fake.calls == []
    assert cc.main(["--bench", "a{9999999999}"]) == 2  # re raises OverflowError there
    assert "'a{9999999999}' is not a regular expression: the repetition number is too large" \
        in capsys.readouterr().err
    assert cc.main(["--dry-run", "--bench", r"FFTAbs\.time_forward\("]) == 0  # escaped: fine
    assert cases_listed == ["box", "box"]  # B's package, then A's


@pytest.mark.parametrize("output, words", [
    ("notes.txt", "output path exists and is not a directory"),
    ("notes.txt/sub", "notes.txt is a file, not a directory"),  # (was mkdir's "File exists")
    ("", "the output directory is an empty path"),  # (was Path(''): the repository itself)
    ("RESULTS/cmp", "is inside the results directory"),
    # (hostile pass 93: os.access says yes to root there; the report failed after the timing)
    pytest.param("/proc/scipy-layers/cmp", "cannot write there (", marks=pytest.mark.skipif(
        not Path("/proc/self").is_dir(), reason="no /proc")),
])
def test_an_output_the_report_would_refuse_is_refused_before_anything_runs(
        fake, cases_listed, tmp_path, monkeypatch, capsys, output, words):
    """The report's own checks of its output, made before the timing (hostile pass 90:
    these failed only after it)."""
    (tmp_path / "notes.txt").write_text("")
    output = output.replace("RESULTS", str(fake.env.results))
    monkeypatch.setattr(cc, "ROOT", tmp_path)  # the report runs there: --output is taken from there
    assert cc.main(["--output", output]) == 2
    monkeypatch.setattr(cc, "ROOT", ROOT)
    err = capsys.readouterr().err
    assert err.startswith(f"compare: error: --output {output!r}: ") and err.count("\n") == 1
    assert words in err
    assert cases_listed == [] and fake.calls == []
    assert (tmp_path / "notes.txt").read_text() == ""


def test_a_new_output_folder_is_fine(fake, tmp_path):
    assert cc.main(["--dry-run", "--output", str(tmp_path / "new")]) == 0  # the report makes it


def test_long_arguments_are_shortened_for_people():
    assert cc.shown(["asv", "-b", "x" * 300]) == "asv -b " + "x" * 60 + "...<300 chars>"


# -- tools/suite_cases.py on a scratch suite -----------------------------------------------

SUITE = '''
class Sizes:
    params = [["a", "b"], ["1x1", "9x9"]]
    param_names = ["impl", "size"]

    def setup(self, impl, size):
        if size == "9x9":
            raise NotImplementedError("outside the default grid")
        if impl == "b":
            raise RuntimeError("broken: asv must run it and record the failure")

    def time_it(self, impl, size):
        pass

    def track_it(self, impl, size):
        return 1


class Plain:
    def time_plain(self):
        pass


class _Private:
    def time_hidden(self):
        pass
'''


def _suite_package(tmp_path, name: str, **modules: str):
    """A benchmark package ``name`` in tmp_path holding ``modules`` (module name -> source,
    dedented), as asv's benchmark_dir."""
    package = tmp_path / name
    package.mkdir()
    (package / "__init__.py").write_text("")
    for module, source in modules.items():
        (package / f"{module}.py").write_text(textwrap.dedent(source))
    return package


def test_suite_cases_asks_each_setup_and_regexes_select_exactly_those(tmp_path):
    package = _suite_package(tmp_path, "scratch_suite", bench_one=SUITE)
    cases = suite_cases.suite_cases(package)
    assert cases == {"timings": {"bench_one.Plain.time_plain": [""],
                                 "bench_one.Sizes.time_it": ["'a', '1x1'", "'b', '1x1'"]},
                     "tracks": {"bench_one.Sizes.track_it": ["'a', '1x1'", "'a', '9x9'", "'b', '1x1'",
                                                             "'b', '9x9'"]}}
    regexes = suite_cases.bench_regexes(cases["timings"])
    # asv selects a combination when any regex searches 'name(p1, p2)' (Benchmarks.__init__)
    names = [f"bench_one.Sizes.time_it({', '.join(map(repr, c))})"
             for c in itertools.product(["a", "b"], ["1x1", "9x9"])] + ["bench_one.Plain.time_plain"]
    chosen = [n for n in names if any(re.search(r, n) for r in regexes)]
    assert chosen == ["bench_one.Sizes.time_it('a', '1x1')", "bench_one.Sizes.time_it('b', '1x1')",
                      "bench_one.Plain.time_plain"]


def test_suite_cases_reads_asvs_shorthand_for_a_single_parameter(tmp_path):
    # (mutation pass 110: params = ["a", "bc"] is one parameter of two values, not a grid)
    package = _suite_package(tmp_path, "shorthand_suite", bench_two='''
        class One:
            params = ["a", "bc"]

            def time_it(self, value):
                pass
        ''')
    assert suite_cases.suite_cases(package)["timings"] == {"bench_two.One.time_it": ["'a'", "'bc'"]}


def test_suite_cases_finds_the_classes_asv_finds(tmp_path):
    """asv_runner's discovery takes every public class a module holds, imported ones too
    (under the importing module's name), and skips abstract ones: the cases listed must be
    the ones asv runs, or make compare never times some (mutation pass 115: the listing
    kept a class to the module that defines it)."""
    from asv_runner.discovery import disc_benchmarks
    package = _suite_package(tmp_path, "import_suite", bench_base='''
        import abc

        class Shared:
            def time_it(self):
                pass

        class Abstract(abc.ABC):
            @abc.abstractmethod
            def time_abstract(self):
                pass
        ''', bench_user="from .bench_base import Shared\n\n"
                      "class Own:\n    def time_own(self):\n        pass\n")
    listed = suite_cases.suite_cases(package)["timings"]
    assert listed == {"bench_base.Shared.time_it": [""], "bench_user.Own.time_own": [""],
                      "bench_user.Shared.time_it": [""]}
    assert sorted(listed) == sorted(b.name for b in disc_benchmarks(str(package)))


def test_suite_cases_lists_the_default_grid_whatever_the_environment_says(
        tmp_path, monkeypatch, capsys):
    # (mutation pass 115: the variable said to be ignored must be out of the suite's sight)
    package = _suite_package(tmp_path, "grid_suite", bench_grid='''
        import os

        class Grid:
            params = ["small", "large"]

            def setup(self, size):
                if size == "large" and not os.environ.get("SCIPY_LAYERS_BENCH_FULL"):
                    raise NotImplementedError("outside the default grid")

            def time_it(self, size):
                pass
        ''')
    monkeypatch.setenv("SCIPY_LAYERS_BENCH_FULL", "1")
    answer = tmp_path / "cases.json"
    assert suite_cases.main(["--benchmark-dir", str(package), "--output", str(answer)]) == 0
    assert json.loads(answer.read_text())["timings"] == {"bench_grid.Grid.time_it": ["'small'"]}
    assert "SCIPY_LAYERS_BENCH_FULL ignored" in capsys.readouterr().err


def test_compare_tracks_exactly_the_gradient_figures_the_regression_rule_reads():
    listed = {f"bench_x.XGradients.{m}": ["'a'"] for m in (
        "track_max_abs_error", "track_max_rel_error", "track_nonfinite_mismatches")}
    listed["bench_x.XMemory.track_peak_memory_forward_backward"] = ["'a'"]
    assert sorted(cc.compared("tracks", listed)) == [
        "bench_x.XGradients.track_max_rel_error", "bench_x.XGradients.track_nonfinite_mismatches"]


def test_an_output_that_cannot_be_written_exits_2_not_1(tmp_path):
    """stdout on a full disk (/dev/full), a dry run (nothing timed; the case listing and
    machine stubbed): an OSError traceback exited 1, which make gate's callers read as a
    finding (hostile pass 91)."""
    script = tmp_path / "dry_run.py"
    script.write_text(
        "import sys\n"
        f"sys.path.insert(0, {str(ROOT / 'tools')!r})\n"
        "import compare_commits\n"
        "compare_commits.list_cases = lambda machine, cache, commit=None: {'timings': {}, 'tracks': {}}\n"
        "compare_commits.capture = lambda cmd, env=None: 'box\\n'\n"
        "sys.exit(compare_commits.main(['--gate', '--dry-run', '--base', 'HEAD~1']))\n")
    with open("/dev/full", "w") as full, open(os.devnull) as read_only:
        run = subprocess.run([sys.executable, str(script)], cwd=ROOT, stdout=full,
                             stderr=subprocess.PIPE, text=True, timeout=300)
        assert run.returncode == 2 and "Traceback" not in run.stderr, run.stderr
        # an error line on a full stderr too, and a stdout open for reading only (EBADF)
        script.write_text(script.read_text().replace("'--base'", "'--rounds', '1', '--base'"))
        assert subprocess.run([sys.executable, str(script)], cwd=ROOT, stdout=full,
                              stderr=full, timeout=300).returncode == 2
        script.write_text(script.read_text().replace("'--rounds', '1', ", ""))
        run = subprocess.run([sys.executable, str(script)], cwd=ROOT, stdout=read_only,
                             stderr=subprocess.PIPE, text=True, timeout=300)
        assert run.returncode == 2 and "Traceback" not in run.stderr, run.stderr


def test_an_environment_no_record_can_be_made_of_is_refused_before_the_timing(
        fake, monkeypatch, capsys):
    """describe_in refuses a description the report would refuse; make compare asked for
    it only after timing both commits, so the refusal came after the timing, every
    minute of it lost."""
    def refuse(python, env_vars):
        raise record_environment.RecordError("the environment described is not a record: x")
    monkeypatch.setattr(record_environment, "describe_in", refuse)
    assert cc.main([]) == 2
    assert fake.kinds() == []
    assert "is not a record" in capsys.readouterr().err


def test_the_environment_is_described_once_before_the_timing_and_once_after(fake, monkeypatch):
    """The plan (reusing results) and the check before the timing share one description
    (a child that imports torch: ~3 s); the records take one made after the timing."""
    assert cc.main([]) == 0
    calls = []
    monkeypatch.setattr(record_environment, "describe_in",
                        lambda python, env_vars: calls.append(1) or DESCRIPTION)
    fake.calls.clear()
    assert cc.main(["--rounds", "3"]) == 0  # the plan reads the records, then times again
    assert fake.kinds() == ["timings", "report", "publish"] and len(calls) == 2
