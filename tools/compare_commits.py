#!/usr/bin/env python3
"""`make compare` / `make gate`: time two commits on the default grid in interleaved rounds,
write the comparison report and republish the dashboard with its compare page.

    make compare [BASE=<rev>] [FRESH=1] [ROUNDS=2] [REPEAT=5] [BENCH=<regex>]
    make gate [BASE=<rev>]     # the same, failing on a confirmed slowdown or gradient regression
                               # (this script's --gate exits 1 there; make exits 2 on any failure)
    python tools/compare_commits.py --dry-run    # the plan and the commands; runs nothing

Base: BASE, else the merge-base of HEAD with main, or HEAD~1 when HEAD is main's commit
(or behind it). Timings: `asv run --interleave-rounds -a rounds=R -a repeat=N
--record-samples` over the timing cases that run here at either commit
(tools/compared_cases.py; the report gets them as --cases): A then B in
the first round, B then A in the second, and so on; each round is a fresh process per
case taking exactly N samples, so asv's stored samples of a case are the rounds one
after another (round k = samples[(k-1)*N:k*N]). The gradient tracks give the same figure
every time and run once per commit (peak memory and threads in force are make bench's).
A commit whose results pass tools/reusable_results.py's rule is not timed again; one
timed again only for its samples (e.g. timed by make bench), or by FRESH=1, keeps its
current tracks.
"""
from __future__ import annotations

import argparse
import errno
import functools
import json
import os
import subprocess
import sys
import time
import traceback
from pathlib import Path
from help_text import description  # (tools/, this script's folder)

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
try:  # (a broken install, e.g. a module of ours that no longer imports: status 2, never
    # the 1 Python gives, which make gate reads as a confirmed regression; scipy, pandas
    # and torch load only in the steps it runs, whose failures are status 2 as well)
    import compare_options  # noqa: E402
    from compared_cases import (FULL_GRID_VAR, TRACKS, compared, list_cases,  # noqa: E402
                                restrict, union, within, write_atomically)
    from commit_pair import (CompareError, describe_commit, dirty_warning, git,  # noqa: E402
                             resolve_commits)
    from scipy_layers.reports.errors import ResultsError, complain, silence  # noqa: E402
    import offline_dashboard  # noqa: E402
    import record_environment  # noqa: E402
    import reusable_results  # noqa: E402
    import suite_cases  # noqa: E402  (imports no benchmark until asked)
except Exception:  # noqa: BLE001
    traceback.print_exc()
    print("compare: error: cannot start (the traceback above); exit status 2, not a gate "
          "finding", file=sys.stderr)
    sys.exit(2)

# Budget: at most twice `make bench`, i.e. one bench per commit. asv's fixed cost is a
# process per case per round (~0.1 s with setup and warmup), so rounds are dear: 2 rounds
# of 5 samples over the ~320 cases that run (322 on 2026-12-06, 126 of them native; not the
# ~1,170 combinations, most skipped),
# after a 50 ms warmup (repeat=3 after 10 ms left every A/A verdict inconclusive: log-ratio
# spread 0.25 below 10 ms). That fits only while a process's first backward is cheap:
# torch's first autograd.grad imports sympy (~0.7 s), which benchmarks/common.py therefore
# imports once, in asv's forkserver, for every case's process.
ROUNDS, REPEAT, WARMUP_S = 2, 5, 0.05
PY = sys.executable
ASV = str(Path(sys.executable).parent / "asv")


def shown(cmd: list[str]) -> str:
    """cmd for people: a long argument (the -b regexes of ~276 cases) shortened."""
    return " ".join(arg if len(arg) <= 100 else f"{arg[:60]}...<{len(arg)} chars>" for arg in cmd)


def run_command(cmd: list[str], *, input: str | None = None, env: dict | None = None) -> int:
    """Run cmd from the repository root, output to the terminal; return its exit status."""
    print("+", shown(cmd), flush=True)
    return subprocess.run(cmd, input=input, text=True, env=env, cwd=ROOT).returncode


def capture(cmd: list[str], *, env: dict | None = None) -> str:
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
    if proc.returncode != 0:
        raise CompareError(f"{' '.join(cmd[:3])} failed: "
                           f"{(proc.stderr.strip().splitlines() or ['no output'])[-1]}")
    return proc.stdout


def asv_run(machine: str) -> list[str]:
    """An asv run on this machine over the commits given on stdin."""
    return [ASV, "run", "--machine", machine, "HASHFILE:-"]


def timing_command(machine: str, timings: dict, rounds: int, repeat: int) -> list[str]:
    bench = [arg for regex in suite_cases.bench_regexes(timings) for arg in ("-b", regex)]
    return [*asv_run(machine), "--interleave-rounds", "--record-samples", "-a", f"rounds={rounds}",
            "-a", f"repeat={repeat}", "-a", f"warmup_time={WARMUP_S}", *bench]


def track_command(machine: str, tracks: dict | None) -> list[str]:
    """Every track benchmark (all its combinations: setup skips what does not run), or
    exactly the ``tracks`` cases where BENCH restricts the comparison."""
    regexes = suite_cases.bench_regexes(tracks) if tracks is not None else [TRACKS]
    return [*asv_run(machine), *(arg for regex in regexes for arg in ("-b", regex))]


def discover_command(machine: str, head: str) -> list[str]:
    return [ASV, "run", "--machine", machine, "-b", "just-discover", f"{head}^!"]


def branch_to_plot() -> list[str]:
    """asv publish plots only the configured branches (main): on another branch, ask for it
    too, so that HEAD shows on the graphs the compare page links to."""
    branch = git("symbolic-ref", "--quiet", "--short", "HEAD")
    configured = offline_dashboard.load_asv_conf(ROOT / "asv.conf.json").get("branches", [])
    return ["--also-branch", branch] if branch and branch not in configured else []


def newer_than_suite(path: Path) -> bool:
    """Is ``path`` (asv's benchmarks.json) newer than every file of the suite? Names,
    parameters and versions come from the suite's sources alone (never from what is
    installed), so then it is current and asv need not discover them again (~10 s)."""
    sources = [p.stat().st_mtime for p in ROOT.glob("benchmarks/**/*.py")]
    return path.is_file() and path.stat().st_mtime >= max(sources, default=0)


def plan(commits, env, machine, cases, runs_at, runs_known, rounds, repeat, fresh, discover,
         describe_now):
    """({commit: why its timings run}, {commit: why its gradient tracks run}); the other
    results are reused. ``runs_at[commit]``: the timing cases that run at the commit
    (``runs_known[commit]``: False where they are B's, A's own not known). Tracks are not timings (the same inputs give the same errors), so
    a commit timed again for want of samples (e.g. after make bench) or by ``fresh`` keeps
    its current tracks. ``discover()`` gives the current benchmarks.json, ``describe_now()`` the
    environment (or None where there is no asv environment yet); both asked only if needed."""
    try:
        found = {c: reusable_results.find_result(env.results, machine, c, env.name) for c in commits}
    except ResultsError as exc:
        raise CompareError(f"{exc} (the report reads every results file: fix or delete it)") from None
    to_time = {c: f"no results on {machine} in this asv environment" for c in commits if not found[c]}
    to_track = dict(to_time)
    if fresh:  # every timing again; current gradient tracks are kept all the same
        to_time = {c: "FRESH=1" for c in commits}
    if len(to_track) == len(commits):
        return to_time, to_track
    benchmarks, now = discover(), describe_now()
    for commit in (c for c in commits if found[c]):
        if not benchmarks or now is None:
            to_time[commit] = to_track[commit] = "cannot check its results: no " + (
                "benchmarks.json" if not benchmarks else "asv environment") + " yet"
            continue
        record = record_environment.read_record(
            record_environment.record_path(env.environments, machine, commit))
        now_record = record_environment.make_record(machine, commit, now)
        why = reusable_results.why_not_reusable(
            found[commit][1], benchmarks, within(cases["timings"], runs_at[commit]),
            cases["tracks"], rounds, repeat, record, now_record, runs_known[commit])
        if why and commit not in to_time:
            to_time[commit] = why
        why_tracks = reusable_results.why_not_reusable(
            found[commit][1], benchmarks, {}, cases["tracks"], rounds, repeat, record, now_record)
        if why_tracks:
            to_track[commit] = why_tracks
    return to_time, to_track


def main(argv: list[str] | None = None) -> int:
    # (--help: the first paragraph; its first line alone stopped mid-sentence)
    parser = argparse.ArgumentParser(description=description(__doc__))
    parser.add_argument("--base", help="the commit to compare HEAD with (default: see above)")
    parser.add_argument("--fresh", action="store_true",
                        help="time both commits even if results exist (current gradient tracks are kept)")
    parser.add_argument("--rounds", type=int, default=ROUNDS, help="interleaved rounds (default %(default)s)")
    parser.add_argument("--repeat", type=int, default=REPEAT, help="samples per round (default %(default)s)")
    parser.add_argument("--bench", metavar="REGEX", help="only benchmarks matching REGEX (as asv -b)")
    parser.add_argument("--gate", action="store_true",
                        help="exit 1 on a confirmed slowdown or gradient regression (the report's --gate)")
    parser.add_argument("--output", default="reports/latest")  # (a str: Path('') is '.')
    parser.add_argument("--dry-run", action="store_true", help="print the plan and commands, run nothing")
    args = parser.parse_args(argv)
    try:
        env = record_environment.asv_environment(ROOT / "asv.conf.json")
        if (problem := compare_options.first_problem(args, ROOT, env.results)):
            raise CompareError(problem)
        return compare(args, env)
    except (CompareError, record_environment.RecordError) as exc:
        complain(f"compare: error: {exc}")  # (a stderr that cannot take it: still 2)
        return 2
    except OSError as exc:  # (its output cannot be written: a full disk, a closed pipe or
        if exc.errno not in (errno.ENOSPC, errno.EPIPE, errno.EBADF):  # a read-only fd)
            return _internal_error()
        silence(1)
        silence(2)
        return 2  # (never 0 or 1: the gate's verdicts)
    except Exception:  # noqa: BLE001 -- a defect of ours: Python's status 1 reads as a regression
        return _internal_error()


def _internal_error() -> int:
    """The traceback of the exception being handled, and 2: never 1, the gate's "a
    confirmed slowdown or gradient regression"."""
    complain(traceback.format_exc().rstrip())
    complain("compare: internal error (the traceback above); exit status 2, not a gate finding")
    return 2


def compare(args, env) -> int:
    """``env``: the project's asv environment (record_environment.asv_environment)."""
    started = time.monotonic()

    def stage(title):
        print(f"== [{time.monotonic() - started:.0f}s] {title}", flush=True)

    base, head, how = resolve_commits(args.base)
    commits = [base, head]
    print(f"== comparing A = {describe_commit(base)}  ({how})\n"
          f"   with B = {describe_commit(head)}  (HEAD)")
    if (warning := dirty_warning()):
        print(warning, file=sys.stderr)
    if os.environ.get(FULL_GRID_VAR):
        print(f"note: {FULL_GRID_VAR} ignored: make compare times the default grid", file=sys.stderr)
    asv_env = {k: v for k, v in os.environ.items() if k != FULL_GRID_VAR}
    machine = capture([PY, str(ROOT / "tools/asv_machine.py")]).strip()
    cache = env.results.parent / "compare"
    listed = list_cases(machine, cache, commit=head)
    try:  # the cases A's own package runs: one that B now skips is then asked of B too
        listed_base = list_cases(machine, cache, commit=base)
    except CompareError as exc:
        print(f"note: the cases that run at A are not known ({exc}); A is timed on B's, so a "
              "case B's setup skips and A ran is not compared", file=sys.stderr)
        listed_base = None
    runs_at = {head: compared("timings", listed["timings"]),
               base: compared("timings", (listed_base or listed)["timings"])}
    cases = {"timings": restrict(union(runs_at[head], runs_at[base]), args.bench),
             "tracks": restrict(compared("tracks", listed["tracks"]), args.bench)}
    if not cases["timings"] and not cases["tracks"]:
        raise CompareError(f"BENCH={args.bench} selects no benchmark of the suite (asv's -b "
                           "searches each case as 'bench_<layer>.<Class>.<method>(<param>, ...)': "
                           "a $ after the method's name matches none; e.g. "
                           "BENCH=\"FFTAbs\\.time_forward\\(.*'16x16'\")" if args.bench
                           else "the suite lists no case to compare (tools/suite_cases.py)")
    runs_known = {head: True, base: listed_base is not None}

    def discover():
        path = env.results / "benchmarks.json"
        if not args.dry_run and not newer_than_suite(path):
            stage("asv: discovering the benchmarks (the suite changed since benchmarks.json)")
            if run_command(discover_command(machine, head), env=asv_env) != 0:
                raise CompareError("asv could not discover the benchmarks (see its output above)")
        return json.loads(path.read_text()) if path.is_file() else {}

    def describe_now():
        if not env.python.exists():
            return None
        return record_environment.describe_in(env.python, env.env_vars)

    # (before the timing, one description serves the plan and the check below)
    described_before = functools.cache(describe_now)
    to_time, to_track = plan(commits, env, machine, cases, runs_at, runs_known, args.rounds,
                             args.repeat, args.fresh, discover, described_before)
    for commit in commits:
        print(f"   {commit[:8]}: " + (f"to time: {to_time[commit]}" if commit in to_time
                                      else "reused: its results on this machine are comparable"))
        if commit in to_time and commit not in to_track:
            print("             its gradient tracks are current: reused")
    timed = [c for c in commits if c in to_time]
    tracked = [c for c in commits if c in to_track]
    steps = []
    if timed and cases["timings"]:
        steps.append(("timings", timed,
                      timing_command(machine, cases["timings"], args.rounds, args.repeat)))
    if tracked and cases["tracks"]:
        steps.append(("tracks", tracked,
                      track_command(machine, cases["tracks"] if args.bench else None)))
    # the report reads asv's NaN outside these cases as no result, not as a skip
    compared_file = cache / f"compared-cases-{base[:8]}-{head[:8]}.json"
    report = [PY, "-m", "scipy_layers.reports", "--results", str(env.results), "--output",
              str(args.output), "--commits", base, head, "--round-size", str(args.repeat),
              "--cases", str(compared_file), *(["--gate"] if args.gate else [])]
    publish = [PY, str(ROOT / "tools/offline_dashboard.py"), "publish", *branch_to_plot()]
    if args.dry_run:
        for title, run_on, cmd in steps:
            print(f"would run ({title}; on stdin: {' '.join(run_on)}):\n  " + shown(cmd))
        print("would record the environment of: " + (" ".join(timed) or "none"))
        print("would run:\n  " + " ".join(report) + "\n  " + " ".join(publish))
        return 0
    if timed:  # (a description no record can be made of is refused before the timing,
        described_before()  # where asv's environment exists: after it, the timing is lost)
    asv_status = 0
    for title, run_on, cmd in steps:
        stage(f"asv: {title} of {', '.join(c[:8] for c in run_on)}")
        asv_status = run_command(cmd, input="\n".join(run_on) + "\n", env=asv_env) or asv_status
    now = describe_now() if timed else None
    for commit in timed:
        record_environment.store(record_environment.make_record(machine, commit, now),
                                 env.environments, env.results)
    stage("report")
    try:
        write_atomically(compared_file, json.dumps(cases))
    except OSError as exc:
        raise CompareError(f"cannot write {compared_file} for the report ({exc})") from None
    report_status = run_command(report)
    stage("publishing the dashboard")
    publish_status = run_command(publish)
    minutes, seconds = divmod(round(time.monotonic() - started), 60)
    print(f"\nmake compare took {minutes}m{seconds:02d}s. Report: {args.output}/compare.csv; dashboard: "
          "make serve, then http://127.0.0.1:8080/compare.html")
    if asv_status:
        print(f"asv exited with status {asv_status}: some benchmarks failed (see 'failed' in the report)",
              file=sys.stderr)
    if args.gate:
        verdict = {0: "passed", 1: "FAILED: a confirmed slowdown or gradient regression"}
        print("gate: " + verdict.get(report_status, f"error (report exit status {report_status})"))
        return report_status
    return report_status or publish_status or asv_status


if __name__ == "__main__":
    sys.exit(main())
