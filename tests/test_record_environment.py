"""tools/record_environment.py: the environment record (schema version 1) is taken in a
child process that gets asv's env_nobuild variables, so it sees what the benchmarks see.
The child here is this interpreter (it has numpy, scipy, torch and threadpoolctl, as the
asv environment does), so no asv environment is needed."""
import datetime
import json
import re
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import asv_machine  # noqa: E402
import record_environment as re_  # noqa: E402

HASH = "4c6756149a5339491c23d0e8fd442f91e08b00a5"
ASV_VARS = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}


@pytest.fixture(scope="module")
def described():
    """One real collection in a child process with asv's variables and an OpenBLAS override."""
    env = {**ASV_VARS, "OPENBLAS_CORETYPE": "Haswell", "MKL_DEBUG_CPU_TYPE": ""}
    return re_.describe_in(Path(sys.executable), env)


def test_the_child_sees_the_thread_limits_and_overrides(described):
    assert described["threads"]["OPENBLAS_NUM_THREADS"] == "1"
    assert described["threads"]["torch"] == 1  # OMP_NUM_THREADS=1 reached torch
    assert described["overrides"]["OPENBLAS_CORETYPE"] == "Haswell"
    assert described["overrides"]["MKL_DEBUG_CPU_TYPE"] == ""
    assert described["overrides"]["MKL_ENABLE_INSTRUCTIONS"] is None


def test_threadpoolctl_lists_the_blas_the_imports_load(described):
    blas = [lib for lib in described["blas"] if lib["user_api"] == "blas"]
    assert blas, described["blas"]
    assert all(lib["num_threads"] == 1 for lib in blas)  # OPENBLAS_NUM_THREADS=1 in force
    assert {"internal_api", "filepath", "version", "prefix"} <= set(blas[0])


def test_asvs_variables_win_over_the_shells(monkeypatch):
    """asv adds env_nobuild to the environment it runs the benchmarks in: the child sees
    asv's value where this shell has another, and the shell's where asv sets none
    (mutation pass 115)."""
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    monkeypatch.setenv("OPENBLAS_CORETYPE", "Zen")
    monkeypatch.setenv("MKL_ENABLE_INSTRUCTIONS", "AVX2")
    described = re_.describe_in(Path(sys.executable), {**ASV_VARS, "OPENBLAS_CORETYPE": "Haswell"})
    assert described["threads"]["OMP_NUM_THREADS"] == "1" and described["threads"]["torch"] == 1
    assert described["overrides"]["OPENBLAS_CORETYPE"] == "Haswell"
    assert described["overrides"]["MKL_ENABLE_INSTRUCTIONS"] == "AVX2"


def test_the_cpu_count_is_the_processs_affinity(monkeypatch):
    # (mutation pass 115: taskset or a container's cpuset gives the benchmarks fewer CPUs
    # than the machine has; the record says how many they get)
    monkeypatch.setattr(re_.os, "sched_getaffinity", lambda pid: {0})
    assert re_.collect()["cpu"]["num_cpu"] == 1


def test_a_full_record_follows_schema_version_1(described):
    record = re_.make_record("amd-epyc-f25m1-avx2-2cpu", HASH, described)
    assert re_.validate(record) == []
    assert set(record) == {"version", "machine", "commit", "recorded_at", "cpu", "blas", "threads",
                           "overrides", "versions"}
    assert set(record["cpu"]) == {"model_name", "family", "model", "flags", "num_cpu"}
    assert set(record["cpu"]["flags"]) <= set(asv_machine.RELEVANT_FLAGS)
    import numpy, scipy, torch
    assert record["versions"] == {"torch": torch.__version__, "numpy": numpy.__version__,
                                  "scipy": scipy.__version__}
    assert datetime.datetime.fromisoformat(record["recorded_at"]).tzinfo is not None


def test_validate_names_what_is_wrong(described):
    record = json.loads(json.dumps(re_.make_record("m", HASH[:8], described)))  # a copy to spoil
    record["threads"]["torch"] = "1"
    del record["overrides"]["OPENBLAS_L2_SIZE"]
    assert re_.validate(record) == ["commit: expected a full 40-hex hash, got '4c675614'",
                                    "threads.torch: expected int",
                                    "overrides.OPENBLAS_L2_SIZE: expected str or null"]
    assert re_.validate({"version": 1})[0] == "machine: expected str, got NoneType"


def test_same_environment_ignores_time_commit_and_library_paths(described):
    a = re_.make_record("m", HASH, described, datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc))
    b = json.loads(json.dumps(re_.make_record("m", "f" * 40, described)))
    for lib in b["blas"]:
        lib["filepath"] = "/elsewhere/" + Path(lib["filepath"]).name
    assert re_.same_environment(a, b)
    b["blas"].reverse()  # threadpoolctl's order is the order of loading, which varies
    assert re_.same_environment(a, b)
    b["overrides"]["OPENBLAS_CORETYPE"] = "SkylakeX"
    assert not re_.same_environment(a, b)
    c = json.loads(json.dumps(a))
    c["blas"][0]["architecture"] = "SkylakeX"
    assert not re_.same_environment(a, c)


def test_records_live_beside_results_never_under_them(tmp_path, described):
    conf = tmp_path / "asv.conf.json"
    conf.write_text('{"version": 1, "repo": ".", "project": "p", "pythons": ["%d.%d"],\n'
                    ' "environment_type": "virtualenv",\n'
                    ' // comment\n "env_dir": "x/env", "results_dir": "x/results",\n'
                    ' "matrix": {"env_nobuild": {"OPENBLAS_NUM_THREADS": "1"}}}'
                    % sys.version_info[:2])
    env = re_.asv_environment(conf)
    assert env.env_vars == {"OPENBLAS_NUM_THREADS": "1"}
    assert env.name == "virtualenv-py%d.%d-OPENBLAS_NUM_THREADS1" % sys.version_info[:2]
    assert env.results == tmp_path / "x" / "results"
    assert env.environments == tmp_path / "x" / "environments"
    assert env.python.parent.parent.parent == tmp_path / "x" / "env"
    path = re_.record_path(env.environments, "box", HASH)
    re_.write_record(path, re_.make_record("box", HASH, described))
    assert path == tmp_path / "x/environments/box" / f"{HASH}.json"
    assert re_.read_record(path)["commit"] == HASH
    path.write_text('{"version": 1}')
    assert re_.read_record(path) is None  # a record off the schema counts as absent
    # (nor is an earlier record that is not UTF-8, or nested past Python's recursion limit,
    # a traceback when the new one is stored over it: hostile pass 147)
    for unreadable in (b"\xff\xfe{}", b"[" * 100_000 + b"]" * 100_000):
        path.write_bytes(unreadable)
        assert re_.read_record(path) is None
        re_.store(re_.make_record("box", HASH, described), env.environments, env.results)
        assert re_.read_record(path)["commit"] == HASH


def test_missing_asv_python_says_how_to_create_it(tmp_path):
    with pytest.raises(re_.RecordError, match="not found: run asv first"):
        re_.describe_in(tmp_path / "bin" / "python", {})


def test_cli_rejects_a_bad_commit_in_one_line():
    proc = subprocess.run([sys.executable, str(ROOT / "tools/record_environment.py"),
                           "--machine", "m", "--commit", "no-such-rev"],
                          capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "record_environment: error: --commit 'no-such-rev' is not a commit of this repository "
        "(give a hash, branch or tag)"]


VALID_CONFIG = ('{"version": 1, "repo": ".", "environment_type": "virtualenv", '
                '"pythons": ["%d.%d"]' % sys.version_info[:2] + '%s}')


def run_cli(config, cwd, *more):
    """record_environment.py --config config; git looks no higher than ``cwd``'s folder."""
    return subprocess.run([sys.executable, str(ROOT / "tools/record_environment.py"),
                           "--machine", "m", "--config", str(config), "--print", *more],
                          capture_output=True, text=True, cwd=cwd,
                          env={**os.environ, "GIT_CEILING_DIRECTORIES": str(cwd.parent)})


@pytest.mark.parametrize("name, text, message", [
    ("absent/asv.conf.json", None, "asv config {config}: no such file"),
    ("README.md", "# scipy-layers\n", "asv config {config} is not JSON: <string>:1 Unexpected"),
    ("list.json", "[1, 2]", "asv config {config} is not asv's format: not a JSON object"),
    # (json5 recurses per level: a RecursionError traceback before; hostile pass 90)
    ("deep.json", "[" * 5000 + "]" * 5000, "asv config {config} is not JSON: "),
    ("norepo.json", '{"version": 1}', "asv config {config} is not asv's format: No repo specified"),
    ("matrix.json", VALID_CONFIG % ', "matrix": 5', "asv config {config} is not asv's format "
                                                    "(its matrix or pythons?): 'int' object"),
    ("dirs.json", VALID_CONFIG % ', "results_dir": null',
     "asv config {config} is not asv's format: results_dir is not a string"),
    ("asv.conf.json", VALID_CONFIG % "", "{folder} (--config's folder) is not in a git repository: "
                                         "--commit 'HEAD' is looked up in that folder's repository"),
])
def test_cli_says_in_one_line_what_is_wrong_with_the_config(tmp_path, name, text, message):
    config = tmp_path / name
    if text is not None:
        config.write_text(text)
    proc = run_cli(config, tmp_path)
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert proc.stderr.startswith("record_environment: error: " + message.format(
        config=config, folder=tmp_path)), proc.stderr


def test_cli_says_in_one_line_that_a_folder_given_as_the_config_is_no_file(tmp_path):
    # (mutation pass 110: a folder read as a file would be an IsADirectoryError traceback)
    config = tmp_path / "asv.conf.json"
    config.mkdir()
    proc = run_cli(config, tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"record_environment: error: asv config {config}: a folder, not a file"]


def test_check_says_in_one_line_that_the_pinned_python_is_missing(tmp_path):
    # asv.conf.json pins python 3.11; where asv finds none, `make bench` ended in an asv
    # ProcessError traceback and make compare in "found 0" environments
    config = tmp_path / "asv.conf.json"
    config.write_text('{"version": 1, "repo": ".", "environment_type": "virtualenv", '
                      '"pythons": ["2.1"]}')  # (no python2.1 anywhere, nor this one)
    proc = subprocess.run([sys.executable, str(ROOT / "tools/record_environment.py"), "--check",
                           "--config", str(config)], capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 2 and proc.stdout == ""
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    for needed in ("record_environment: error: asv config", "No executable found for python 2.1",
                   'its "pythons" pins Python 2.1', "put python2.1 on PATH"):
        assert needed in proc.stderr, proc.stderr
    with pytest.raises(re_.RecordError, match="put python2.1 on PATH"):  # (make compare's)
        re_.asv_environment(config)


def test_check_is_silent_where_asv_finds_the_python(tmp_path):
    config = tmp_path / "asv.conf.json"
    config.write_text(VALID_CONFIG % "")
    proc = subprocess.run([sys.executable, str(ROOT / "tools/record_environment.py"), "--check",
                           "--config", str(config)], capture_output=True, text=True, cwd=tmp_path)
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "", "")


def test_cli_with_a_config_in_a_repository_reads_the_commit_there(tmp_path):
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    (tmp_path / "asv.conf.json").write_text(VALID_CONFIG % "")
    proc = run_cli(tmp_path / "asv.conf.json", tmp_path)  # a repository without commits
    assert proc.returncode == 2
    assert proc.stderr.strip() == ("record_environment: error: --commit 'HEAD' is not a commit "
                                   "of this repository (give a hash, branch or tag)")


def test_a_tag_names_its_commit_and_a_tree_is_no_commit(tmp_path):
    # (mutation pass 115: an annotated tag's own object is no commit; records are kept by
    # the commit's hash, as asv's results are)
    def git(*args):
        return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
                              cwd=tmp_path, check=True, capture_output=True, text=True).stdout.strip()
    git("init", "-q")
    git("commit", "-q", "--allow-empty", "-m", "c1")
    git("tag", "-a", "v1", "-m", "an annotated tag")
    assert re_.full_hash("v1", tmp_path) == git("rev-parse", "HEAD") != git("rev-parse", "v1")
    with pytest.raises(re_.RecordError, match="is not a commit of this repository"):
        re_.full_hash("HEAD^{tree}", tmp_path)


def test_changes_names_what_differs(described):
    old = re_.make_record("box", HASH, described)  # OPENBLAS_CORETYPE=Haswell, MKL_... ""
    new = json.loads(json.dumps(old))
    assert re_.changes(old, new) == ""
    new["overrides"]["OPENBLAS_CORETYPE"] = None
    new["threads"]["OMP_NUM_THREADS"] = "2"
    new["blas"][0]["architecture"] = "SkylakeX-not"
    new["recorded_at"], new["commit"] = "later", "another"  # not the environment
    assert re_.changes(old, new) == ("OPENBLAS_CORETYPE: 'Haswell' -> unset; "
                                     "OMP_NUM_THREADS: '1' -> '2'; blas")
    # values as Python literals: an empty one shows, a newline cannot start a line
    assert re_.changes(new, {**new, "overrides": {**new["overrides"], "OPENBLAS_CORETYPE":
                                                  "a\nb"}}) == "OPENBLAS_CORETYPE: unset -> 'a\\nb'"
    assert re_.changes(old, new | {"overrides": old["overrides"] | {"X": None}}).startswith(
        "OMP_NUM_THREADS")
    assert re_.changes(old | {"extra": None}, old) == "fields the record no longer has"


def test_a_commit_recorded_again_in_another_environment_is_warned_of(tmp_path, monkeypatch,
                                                                     capsys, described):
    # asv merges a run's results into the commit's file, so the earlier run's stay there
    env = re_.AsvEnvironment("env", tmp_path / "python", {}, tmp_path / "results",
                             tmp_path / "environments")
    seen = [described, described, {**described, "overrides": {
        **described["overrides"], "OPENBLAS_CORETYPE": None}}]
    monkeypatch.setattr(re_, "asv_environment", lambda config: env)
    monkeypatch.setattr(re_, "full_hash", lambda rev, cwd: HASH)
    monkeypatch.setattr(re_, "describe_in", lambda python, env_vars: seen.pop(0))
    arguments = ["--machine", "box", "--commit", HASH]
    warnings = []
    for _ in range(3):
        assert re_.main(arguments) == 0
        warnings.append(capsys.readouterr().err)
    assert warnings[:2] == ["", ""]  # first record; the same environment again
    assert warnings[2].startswith(f"record_environment: warning: {HASH[:8]} on 'box' ran in "
                                  "another environment before (OPENBLAS_CORETYPE: 'Haswell' "
                                  "-> unset)")
    assert f"{tmp_path / 'results' / 'box'}/{HASH[:8]}-*.json" in warnings[2]
    path = re_.record_path(env.environments, "box", HASH)
    assert re_.read_record(path)["overrides"]["OPENBLAS_CORETYPE"] is None  # the latest run's
    seen.append(described)  # --print shows the record, and neither warns nor writes
    assert re_.main(arguments + ["--print"]) == 0
    printed = capsys.readouterr()
    assert printed.err == "" and json.loads(printed.out)["overrides"]["OPENBLAS_CORETYPE"]
    assert re_.read_record(path)["overrides"]["OPENBLAS_CORETYPE"] is None
    # a record with a malformed library entry counts as absent: replaced, no traceback
    bad = json.loads(path.read_text())
    bad["blas"].append(None)
    path.write_text(json.dumps(bad))
    assert re_.validate(bad) == [f"blas[{len(bad['blas']) - 1}]: expected dict"]
    seen.append(described)
    assert re_.main(arguments) == 0 and capsys.readouterr().err == ""
    assert re_.read_record(path)["overrides"]["OPENBLAS_CORETYPE"] == "Haswell"


def test_the_warning_quotes_a_results_folder_for_the_shell(tmp_path, capsys, described):
    results, environments = tmp_path / "my results [1]", tmp_path / "environments"
    record = re_.make_record("box", HASH, described)
    re_.store(record, environments, results)
    re_.store({**record, "threads": {**record["threads"], "torch": 2}}, environments, results)
    assert f"'{results / 'box'}'/{HASH[:8]}-*.json and now" in capsys.readouterr().err


@pytest.mark.parametrize("machine", ["../../escaped", "a/b", ".", "..", "two\nlines", ""])
def test_cli_refuses_a_machine_name_that_is_not_one_folder(machine):
    proc = subprocess.run([sys.executable, str(ROOT / "tools/record_environment.py"),
                           "--machine", machine, "--commit", "HEAD"],
                          capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1
    assert ("is not a plain folder name" if machine else "--machine is required") in proc.stderr


def _fake_python(tmp_path, output: str) -> Path:
    """An interpreter that prints ``output`` whatever it is asked to run."""
    fake = tmp_path / "bin" / "python"
    fake.parent.mkdir(parents=True)
    fake.write_text(f"#!/bin/sh\ncat <<'EOF'\n{output}\nEOF\n")
    fake.chmod(0o755)
    return fake


def test_a_banner_before_the_description_is_passed_over(tmp_path, described):
    """The child's description is its last line: a start-up banner printed first (a
    sitecustomize, a site's greeting) was a JSONDecodeError traceback."""
    fake = _fake_python(tmp_path, "Welcome to the cluster\n" + json.dumps(described))
    assert re_.describe_in(fake, {}) == described


@pytest.mark.parametrize("output", [
    "", "not json", "[1, 2]", '"text"', "null", "1e999", "NaN",
    # (nested past Python's recursion limit: json's RecursionError was a traceback, hostile
    # pass 147; run_child reads calibrate.py's inner run too)
    pytest.param("[" * 100_000 + "]" * 100_000, id="nested-deeper-than-python-reads"),
    pytest.param('{"a": ' * 100_000 + "1" + "}" * 100_000, id="objects-nested-deeper"),
])
def test_a_child_that_prints_no_description_is_one_line(tmp_path, output):
    fake = _fake_python(tmp_path, output)
    with pytest.raises(re_.RecordError, match="printed no description"):
        re_.describe_in(fake, {})


@pytest.mark.parametrize("change, problem", [
    (lambda d: {**d, "blas": [{}]}, "'blas[0].user_api' is not str"),
    (lambda d: {**d, "threads": {**d["threads"], "torch": True}}, "'threads.torch' is not int"),
    (lambda d: {**d, "cpu": {**d["cpu"], "flags": [1]}}, "'cpu.flags' is not a list of strings"),
])
def test_a_description_the_report_reads_otherwise_writes_no_record(tmp_path, described,
                                                                    change, problem):
    """validate() took a BLAS entry without its API, a bool for torch's threads and flags
    that are not strings, which the report refuses, every report after it stopping at the
    file; make compare wrote its records unchecked."""
    fake = _fake_python(tmp_path, json.dumps(change(described)))
    with pytest.raises(re_.RecordError, match=re.escape(problem)):
        re_.describe_in(fake, {})


def test_a_description_off_the_schema_writes_no_record(tmp_path, monkeypatch, capsys):
    """JSON of another shape was written as the commit's record, over an earlier one."""
    fake = _fake_python(tmp_path, json.dumps({"cpu": "not a mapping"}))
    environments = tmp_path / "environments"
    monkeypatch.setattr(re_, "asv_environment", lambda config: re_.AsvEnvironment(
        "env", fake, {}, tmp_path / "results", environments))
    monkeypatch.setattr(re_, "full_hash", lambda rev, cwd=None: HASH)
    assert re_.main(["--machine", "box"]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and "is not a record: cpu: expected dict" in error[0], error
    assert not environments.exists()


def test_a_description_names_no_other_commit_or_machine(tmp_path, monkeypatch, described):
    """The record's version, machine, commit and time are the caller's: a description (the
    child's last line) that carried them wrote its own, over another commit's record or
    under a machine name never checked as a folder ("../x": outside the records; hostile
    pass 146)."""
    other = "0" * 40
    fake = _fake_python(tmp_path, json.dumps({**described, "commit": other,
                                              "machine": "../elsewhere", "version": 1}))
    environments = tmp_path / "environments"
    monkeypatch.setattr(re_, "asv_environment", lambda config: re_.AsvEnvironment(
        "env", fake, {}, tmp_path / "results", environments))
    monkeypatch.setattr(re_, "full_hash", lambda rev, cwd=None: HASH)
    assert re_.main(["--machine", "box"]) == 0
    written = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*.json"))
    assert written == [re_.record_path(environments, "box", HASH).relative_to(tmp_path)], written
    record = json.loads(re_.record_path(environments, "box", HASH).read_text())
    assert (record["machine"], record["commit"]) == ("box", HASH)


def test_a_banner_in_another_encoding_is_passed_over(tmp_path, described):
    """A banner that is not UTF-8 (a Latin-1 greeting) was a UnicodeDecodeError traceback."""
    output = tmp_path / "output.bin"
    output.write_bytes("Bienvenue \xe0 bord\n".encode("latin-1") + json.dumps(described).encode())
    fake = tmp_path / "python"
    fake.write_text(f"#!/bin/sh\ncat '{output}'\n")
    fake.chmod(0o755)
    assert re_.describe_in(fake, {}) == described
