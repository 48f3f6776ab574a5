"""Fuzzing the reader with mutated real results: whatever a results file or
benchmarks.json holds, reading it either works (and every table and the summary then
build) or raises a ResultsError that names the file; never any other exception.

The base is the real run in fixtures/asv_results cut to a few benchmarks (so each
example is fast) and stored under two commits (so compare.csv has something to do).
Examples are derandomized: the same ones run every time, in CI too.
"""
import copy
import json
import math
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fixtures.asv_variants import FIXTURE, load, results_files
from fixtures.compare_variants import COMMIT_B, copy_compare, environment_file, results_file
from scipy_layers.reports import ResultsError, read_results
from scipy_layers.reports.gradients import gradients_table
from scipy_layers.reports.summary import headline, summary_markdown
from scipy_layers.reports.compare import compare_table
from scipy_layers.reports.runs import latest_commits
from scipy_layers.reports.tables import resolve_commits, speedup_table

KEEP = ["bench_conv2d.Conv2d.time_forward_backward",
        "bench_conv2d.Conv2dGradients.track_max_rel_error",
        "bench_conv2d.Conv2dGradients.track_max_abs_error",
        "bench_fft_abs.FFTAbsThreads.track_threads_in_force"]
BASE = load(results_files(FIXTURE)[0])
BASE["results"] = {k: BASE["results"][k] for k in KEEP}
BENCHMARKS = {k: v for k, v in load(FIXTURE / "benchmarks.json").items() if k in KEEP + ["version"]}
SECOND_COMMIT = "e" * 40

# Leaves seen in real files, and leaves no asv file holds.
PLAUSIBLE = st.sampled_from(["'256x256'", "'scipy'", "result", "params", "version", "samples",
                             "stats_q_25", 1e-3, 0, 1, 2, None, [], ["'a'"], [["'a'"]], {}])
WILD = st.one_of(st.none(), st.booleans(), st.integers(-10 ** 400, 10 ** 400),
                 st.floats(allow_nan=True, allow_infinity=True),
                 st.text(max_size=6), st.just("../x"), st.just("a/b.C.d"))
VALUES = st.recursive(st.one_of(PLAUSIBLE, WILD),
                      lambda inner: st.one_of(st.lists(inner, max_size=3),
                                              st.dictionaries(st.text(max_size=4), inner, max_size=2)),
                      max_leaves=6)


def mutate(draw, data):
    """One change somewhere below the top of ``data`` (mostly deep down, where the
    results are): a node replaced, deleted, duplicated or added to."""
    parent, key, node = None, None, data
    for _ in range(draw(st.integers(1, 6))):
        if not isinstance(node, (dict, list)) or not node:
            break
        keys = sorted(node) if isinstance(node, dict) else range(len(node))
        parent, key = node, draw(st.sampled_from(list(keys)))
        node = node[key]
    if parent is None:
        return data
    op = draw(st.sampled_from(["replace", "delete", "duplicate", "add"]))
    if op == "replace":
        parent[key] = draw(VALUES)
    elif op == "delete":
        del parent[key]
    elif op == "duplicate" and isinstance(parent, list):
        parent.insert(key, copy.deepcopy(node))
    elif op == "add" and isinstance(node, list):
        node.append(draw(VALUES))
    elif op == "add" and isinstance(node, dict):
        node[draw(st.text(max_size=4))] = draw(VALUES)
    else:
        parent[key] = draw(VALUES)
    return data


def write_results(root: Path, first, benchmarks) -> Path:
    results = root / "results"
    machine = results / "amd-epyc-2cpu"
    machine.mkdir(parents=True)
    (machine / "first.json").write_text(json.dumps(first))
    second = copy.deepcopy(BASE)
    second.update(commit_hash=SECOND_COMMIT, date=BASE["date"] + 86_400_000)
    (machine / "second.json").write_text(json.dumps(second))
    (results / "benchmarks.json").write_text(json.dumps(benchmarks))
    return results


def read_and_build(results: Path) -> None:
    """Read, then build every table and the summary; only a ResultsError naming a file
    of ``results`` may come out."""
    try:
        timings = read_results(results, with_samples=True)
    except ResultsError as error:
        assert error.path.is_relative_to(results.parent) and str(error.path) in str(error)
        assert "\n" not in str(error)
        return
    plain = timings.drop(columns="samples")
    speedup, gradients = speedup_table(plain), gradients_table(plain)
    compare = compare_table(timings, resolve_commits(timings, None), round_size=3)
    summary_markdown(plain, speedup, gradients, compare, 0.05, None, latest_commits(plain))
    headline(speedup, gradients)


FUZZ = settings(max_examples=70, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@FUZZ
@given(st.data())
def test_a_mutated_results_file_reads_or_names_the_file(data):
    first = copy.deepcopy(BASE)
    for _ in range(data.draw(st.integers(1, 3))):
        first = mutate(data.draw, first)
    with tempfile.TemporaryDirectory() as root:
        read_and_build(write_results(Path(root), first, BENCHMARKS))


@FUZZ
@given(st.data())
def test_a_mutated_benchmarks_json_reads_or_names_the_file(data):
    benchmarks = copy.deepcopy(BENCHMARKS)
    for _ in range(data.draw(st.integers(1, 3))):
        benchmarks = mutate(data.draw, benchmarks)
    with tempfile.TemporaryDirectory() as root:
        read_and_build(write_results(Path(root), copy.deepcopy(BASE), benchmarks))


@settings(max_examples=40, deadline=None, derandomize=True)
@given(cut=st.integers(0, 10 ** 6), insert=st.text(max_size=3))
def test_edited_json_text_reads_or_names_the_file(cut, insert):
    text = json.dumps(BASE)
    at = cut % len(text)
    with tempfile.TemporaryDirectory() as root:
        results = write_results(Path(root), BASE, BENCHMARKS)
        (results / "amd-epyc-2cpu" / "first.json").write_text(text[:at] + insert + text[at + 1:])
        read_and_build(results)


@settings(max_examples=40, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.data())
def test_mutated_samples_and_environment_records_read_or_name_the_file(data):
    """The A/A run with recorded samples and environment records: one of its results
    files or records mutated; the comparison (statistics included) builds or the
    error names the file."""
    target = data.draw(st.sampled_from(["results", "environment"]))
    with tempfile.TemporaryDirectory() as root:
        results = copy_compare(Path(root) / "fixture")
        path = (results_file(results, COMMIT_B) if target == "results"
                else environment_file(results, COMMIT_B))
        content = json.loads(path.read_text())
        for _ in range(data.draw(st.integers(1, 3))):
            content = mutate(data.draw, content)
        path.write_text(json.dumps(content))
        read_and_build(results)


def test_the_base_of_the_fuzz_reads():
    with tempfile.TemporaryDirectory() as root:
        timings = read_results(write_results(Path(root), copy.deepcopy(BASE), BENCHMARKS))
    assert timings["commit"].nunique() == 2 and (timings["status"] == "ok").any()
    assert math.isfinite(timings["value"].dropna().sum())
