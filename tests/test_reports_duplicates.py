"""One result per case: two results files for the same machine, commit and environment
(a copy beside the original, a backup of a machine folder) and a benchmark listing a
parameter value twice are refused in one line naming what to fix, never read twice."""
import shutil

import pytest

from fixtures.asv_variants import FIXTURE, copy_results, load, results_files, save
from fixtures.compare_variants import (COMMIT_A, COMMIT_B, MACHINE, ROUND_SIZE, copy_compare,
                                       results_file)
from scipy_layers.reports import ResultsError, read_results
from scipy_layers.reports.cli import main

CONV = "bench_conv2d.Conv2d.time_forward_backward"


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    return err


def test_a_copied_results_file_names_both_files(tmp_path, capsys):
    """With samples and a round size this was a numpy broadcast traceback."""
    results = copy_compare(tmp_path / "fixture")
    original = results_file(results, COMMIT_B)
    copy = original.with_name(original.stem + " (copy).json")
    shutil.copyfile(original, copy)
    assert main([str(results), str(tmp_path / "out"), "--no-plots", "--round-size",
                 str(ROUND_SIZE), "--commits", COMMIT_A[:8], COMMIT_B[:8]]) == 2
    err = _one_line_error(capsys)
    assert str(original) in err and str(copy) in err
    assert f"commit {COMMIT_B[:8]}" in err and "delete one" in err
    assert not (tmp_path / "out").exists()


def test_a_backup_of_a_machine_folder_is_refused_not_counted_twice(tmp_path, capsys):
    """params.machine names the same machine in both folders: without samples every
    row was counted twice, silently."""
    results = copy_compare(tmp_path / "fixture")
    shutil.copytree(results / MACHINE, results / f"{MACHINE}-backup")
    with pytest.raises(ResultsError, match="delete one of the two") as error:
        read_results(results)
    assert f"{MACHINE}-backup" in str(error.value) and f"machine '{MACHINE}'" in str(error.value)
    assert main([str(results), str(tmp_path / "out"), "--no-plots"]) == 2
    _one_line_error(capsys)


def test_a_copy_naming_its_commit_abbreviated_is_refused(tmp_path, capsys):
    """A hand-made copy whose commit_hash is the full hash's first 12 digits (in either
    case) was read as a third commit: --commits with the 8-digit prefix matched two."""
    results = copy_compare(tmp_path / "fixture")
    original = results_file(results, COMMIT_B)
    data = load(original)
    data["commit_hash"] = COMMIT_B[:12].upper()
    copy = original.with_name("copy.json")
    save(copy, data)
    with pytest.raises(ResultsError, match="delete one of the two") as error:
        read_results(results)
    assert str(original) in str(error.value) and str(copy) in str(error.value)
    assert main([str(results), str(tmp_path / "out"), "--no-plots"]) == 2
    _one_line_error(capsys)


def test_commits_sharing_a_prefix_are_still_two_commits(tmp_path):
    """Only a hash that another one starts with is the same commit: two full hashes
    that share their first 12 digits are read as two."""
    results = copy_compare(tmp_path / "fixture")
    original = results_file(results, COMMIT_B)
    data = load(original)
    data["commit_hash"] = COMMIT_B[:12] + "0" * 28
    save(original.with_name("other.json"), data)
    commits = set(read_results(results)["commit"])
    assert {COMMIT_B, COMMIT_B[:12] + "0" * 28} <= commits


def test_the_same_commit_in_another_environment_or_machine_is_read(tmp_path):
    results = copy_results(tmp_path / "results")
    original = results_files(results)[0]
    data = load(original)
    data["env_name"] = "virtualenv-py3.12"
    save(original.with_name(original.name.replace("virtualenv-py3.11", "virtualenv-py3.12")), data)
    other = load(original)
    other["params"]["machine"] = "another-box"
    (results / "another-box").mkdir()
    save(results / "another-box" / original.name, other)
    table = read_results(results)
    assert len(table) == 3 * len(read_results(FIXTURE))


@pytest.mark.parametrize("values", [["'scipy'", "'scipy'"], ["'1'", "1"]],
                         ids=["same repr", "same value"])
def test_a_parameter_value_listed_twice_names_the_benchmark(tmp_path, capsys, values):
    results = copy_results(tmp_path / "results")
    path = results_files(results)[0]
    data = load(path)
    columns = data["result_columns"]
    row = data["results"][CONV]
    params = row[columns.index("params")]
    params[0] = params[0] + values  # implementation: two more, equal to each other
    size = 1
    for choices in params:
        size *= len(choices)
    for index, key in enumerate(columns[:len(row)]):  # every per-combination list
        if key not in ("params", "version"):
            row[index] = None if key == "samples" else [1.0] * size
    save(path, data)
    with pytest.raises(ResultsError, match=f"benchmark '{CONV}': parameter 'implementation' "
                                           "lists .* twice") as error:
        read_results(results)
    assert str(path) in str(error.value)
    assert main([str(results), str(tmp_path / "out"), "--no-plots"]) == 2
    _one_line_error(capsys)


def test_a_commit_abbreviated_in_another_environment_is_the_same_commit(tmp_path):
    """Written in full in one environment's file and abbreviated (in upper case) in
    another's, one commit read as two: two latest commits, --commits by prefix
    ambiguous. It is now the full hash in both."""
    results = copy_compare(tmp_path / "fixture")
    original = results_file(results, COMMIT_B)
    data = load(original)
    data["commit_hash"] = COMMIT_B[:10].upper()
    data["env_name"] = data["env_name"] + "-other"
    save(original.with_name("other-env.json"), data)
    table = read_results(results)
    assert set(table["commit"]) == {COMMIT_A, COMMIT_B}
    assert set(table.loc[table["commit"] == COMMIT_B, "env"]) == {
        load(original)["env_name"], data["env_name"]}
    assert main([str(results), str(tmp_path / "out"), "--no-plots", "--commits",
                 COMMIT_A[:8], COMMIT_B[:8]]) == 0


def test_an_abbreviation_of_two_commits_is_refused_naming_its_file(tmp_path, capsys):
    results = copy_compare(tmp_path / "fixture")
    original = results_file(results, COMMIT_B)
    data = load(original)
    data["commit_hash"] = COMMIT_B[:12] + "0" * 28  # a second commit sharing 12 digits
    save(original.with_name("other.json"), data)
    data["commit_hash"] = COMMIT_B[:9]
    data["env_name"] = data["env_name"] + "-other"
    save(original.with_name("short.json"), data)
    with pytest.raises(ResultsError, match="abbreviates several commits") as error:
        read_results(results)
    assert str(original.with_name("short.json")) in str(error.value)
    assert main([str(results), str(tmp_path / "out"), "--no-plots"]) == 2
    assert "write it in full" in _one_line_error(capsys)
