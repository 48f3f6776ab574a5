"""The GPU session's plumbing, checked where there is no GPU: the asv slices of
tools/gpu_session.sh select the CUDA cases they name (a renamed parameter would
otherwise make a scarce GPU session time nothing), and the machine is named after its GPU."""
import itertools
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.test_benchmarks import BENCH_CLASSES, BENCH_PREFIXES

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import asv_machine  # noqa: E402


def benchmark_names():
    """Every benchmark and parameter combination as asv names it (and -b matches it)."""
    for cls in BENCH_CLASSES:
        methods = [m for m in dir(cls) if m.startswith(BENCH_PREFIXES)]
        for method, params in itertools.product(methods, itertools.product(*cls.params)):
            module = cls.__module__.removeprefix("benchmarks.")  # asv names from benchmark_dir
            yield f"{module}.{cls.__name__}.{method}({', '.join(map(repr, params))})"


NAMES = list(benchmark_names())
SLICES = dict(line.split("\t") for line in subprocess.run(
    ["bash", str(ROOT / "tools/gpu_session.sh"), "--list-slices"],
    capture_output=True, text=True, check=True).stdout.splitlines())


def selected(regex):
    return [name for name in NAMES if re.search(regex, name)]


def test_every_slice_times_cuda_cases_of_the_scipy_layer_or_native_only():
    assert len(SLICES) == 6
    for title, regex in SLICES.items():
        names = selected(regex)
        assert names, title
        assert all(name.endswith("'cuda')") for name in names), title
        assert all(re.search(r"\('(native|scipy)',", name) for name in names), title


def test_the_first_slice_is_the_issues_target_grid():
    title, regex = next(iter(SLICES.items()))
    names = selected(regex)
    expected = [f"bench_conv2d.Conv2d.time_forward_backward('{impl}', '{n}x{n}', '{k}x{k}', "
                f"'{dtype}', 'cuda')" for impl in ("native", "scipy") for n in (1024, 2048)
                for k in (3, 7, 15, 31) for dtype in ("float32", "float64")]
    assert sorted(names) == sorted(expected), title


def test_slices_cover_every_cuda_forward_backward_once():
    wanted = [n for n in NAMES if ".time_forward_backward(" in n and n.endswith("'cuda')")
              and re.search(r"\.(Conv2d|FFTAbs)\.", n) and re.search(r"\('(native|scipy)',", n)]
    hits = [n for regex in SLICES.values() for n in selected(regex) if n in wanted]
    assert sorted(hits) == sorted(wanted)


@pytest.mark.parametrize("gpu, expected", [("NVIDIA H100 80GB HBM3", "nvidia-h100-80gb-hbm3"),
                                           (None, None)])
def test_machine_is_named_after_its_gpu(monkeypatch, gpu, expected):
    monkeypatch.delenv("SCIPY_LAYERS_MACHINE", raising=False)
    monkeypatch.setattr(asv_machine, "_gpu_model", lambda: gpu)
    cpu = asv_machine.parse_cpuinfo("vendor_id : AuthenticAMD\ncpu family : 25\nmodel : 1\n"
                                    "model name : AMD EPYC 7B13 64-Core Processor\nflags : avx2\n")
    entry = asv_machine.describe(cpu)
    cpus = entry["num_cpu"]
    assert entry["machine"] == f"{expected or 'amd-epyc-7b13-64-core-processor-f25m1-avx2'}-{cpus}cpu"
    assert entry["cpu"].startswith("AMD EPYC 7B13 64-Core Processor (family 25, model 1")
    monkeypatch.setenv("SCIPY_LAYERS_MACHINE", "my-box")
    assert asv_machine.describe(cpu)["machine"] == "my-box"


def _session_with_a_fake_python(tmp_path, config_text):
    """tools/gpu_session.sh's asv slices (GPU_SESSION_ASV_ONLY=1) in a scratch repository,
    with an interpreter that records the environment of each ``-m asv`` call instead of
    running it: (the recorded environments, the session's output)."""
    repo = tmp_path / "repo"
    (repo / "tools").mkdir(parents=True)
    (repo / "tools/gpu_session.sh").write_text((ROOT / "tools/gpu_session.sh").read_text())
    (repo / "asv.conf.json").write_text(config_text)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-C", str(repo)]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-qm", "x"], check=True)
    records = tmp_path / "asv-calls"
    records.mkdir()
    fake = tmp_path / "python"
    fake.write_text(f"""#!/usr/bin/env bash
if [ "$1" = -m ] && [ "$2" = asv ]; then env > "{records}/$(date +%s%N).env"; exit 0; fi
if [ "$1" = tools/asv_machine.py ]; then echo fake-machine; exit 0; fi
if [ "$1" = -c ]; then exec {sys.executable} "$@"; fi
exit 0
""")
    fake.chmod(0o755)
    env = {k: v for k, v in os.environ.items()
           if not k.endswith("_NUM_THREADS")}
    env.update(PYTHON=str(fake), GPU_SESSION_ASV_ONLY="1", OUT=str(tmp_path / "out"))
    done = subprocess.run(["bash", "tools/gpu_session.sh"], cwd=repo, env=env,
                          capture_output=True, text=True, timeout=120)
    calls = [dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)
             for path in sorted(records.iterdir())]
    return calls, done.stdout + done.stderr


def test_the_asv_slices_run_with_asv_confs_thread_pins(tmp_path):
    """asv applies env_nobuild (numpy/scipy at one thread) in the environments it builds;
    --python=same runs in the session's own, so the slices set the pins themselves (before,
    the CUDA slices ran numpy and scipy at every core's thread)."""
    import json5
    config = (ROOT / "asv.conf.json").read_text()
    pins = json5.loads(config)["matrix"]["env_nobuild"]
    assert pins  # (the test means nothing without them)
    calls, output = _session_with_a_fake_python(tmp_path, config)
    assert len(calls) == len(SLICES), output
    for call in calls:
        assert {name: call.get(name) for name in pins} == pins, output
        assert call.get("SCIPY_LAYERS_BENCH_FULL") == "1"


def test_an_asv_config_without_thread_pins_runs_no_slice(tmp_path):
    import json5
    config = json5.loads((ROOT / "asv.conf.json").read_text())
    del config["matrix"]["env_nobuild"]
    calls, output = _session_with_a_fake_python(tmp_path, json.dumps(config))
    assert calls == []
    assert output.count("could not read the thread pins (env_nobuild) of asv.conf.json") == len(SLICES)


@pytest.mark.parametrize("value, expected", [(["1"], "1"), ("1", "1")])
def test_a_thread_pin_in_asvs_list_form_is_its_value(tmp_path, value, expected):
    """asv's matrix takes a value or a list of values; a one-value list is that value
    (before hostile pass 146 the slices ran with OMP_NUM_THREADS=['1'], which OpenMP and
    OpenBLAS do not read as 1: no pin)."""
    import json5
    config = json5.loads((ROOT / "asv.conf.json").read_text())
    config["matrix"]["env_nobuild"] = {"OMP_NUM_THREADS": value, "OPENBLAS_NUM_THREADS": "1"}
    calls, output = _session_with_a_fake_python(tmp_path, json.dumps(config))
    assert len(calls) == len(SLICES), output
    assert all(call.get("OMP_NUM_THREADS") == expected for call in calls), output


@pytest.mark.parametrize("value", ["1 2", "1 touch made-by-a-pin", None, ["1", "2"], [], "",
                                   "$(echo 1)", "*"])
def test_a_thread_pin_env_cannot_pass_as_one_word_runs_no_slice(tmp_path, value):
    """The pins reach asv as NAME=VALUE words of ``env``: a value with a space split into
    a command for env to run ("1 2": env: '2': No such file or directory; "1 touch x" ran
    touch), null was "None", a list of several values (asv's matrix) its repr (before
    hostile pass 146). Now such a slice is skipped, saying so."""
    import json5
    config = json5.loads((ROOT / "asv.conf.json").read_text())
    config["matrix"]["env_nobuild"] = {"OMP_NUM_THREADS": value, "OPENBLAS_NUM_THREADS": "1"}
    calls, output = _session_with_a_fake_python(tmp_path, json.dumps(config))
    assert calls == [], output
    assert output.count("could not read the thread pins (env_nobuild) of asv.conf.json") == len(SLICES)
    assert not list(tmp_path.rglob("made-by-a-pin"))
