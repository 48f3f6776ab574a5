"""Smoke test of the asv suite: every benchmark runs once, in this process, for every
implementation on its smallest runnable case; asv accepts the suite; and every
implementation in the registry has a benchmark."""
import importlib
import inspect
import itertools
import pkgutil
import platform
import subprocess
import sys
from pathlib import Path

import pytest

import benchmarks
from scipy_layers import LAYERS

ROOT = Path(__file__).resolve().parent.parent
BENCH_MODULES = [
    importlib.import_module(f"benchmarks.{info.name}")
    for info in pkgutil.iter_modules(benchmarks.__path__) if info.name.startswith("bench_")
]
BENCH_CLASSES = [
    cls for module in BENCH_MODULES for name, cls in vars(module).items()
    if inspect.isclass(cls) and not name.startswith("_") and cls.__module__ == module.__name__
]
BENCH_PREFIXES = ("time_", "track_", "peakmem_", "mem_")


def runnable_cases(cls):
    """For each implementation, the first parameter combination whose setup runs."""
    found = {}
    if hasattr(cls, "setup_cache"):
        # asv keys setup_cache by file and line: each class needs its own
        assert "setup_cache" in vars(cls), f"{cls.__name__} must define its own setup_cache"
    cache = (cls().setup_cache(),) if hasattr(cls, "setup_cache") else ()
    for params in itertools.product(*cls.params):
        implementation = params[0]
        if implementation in found:
            continue
        instance = cls()
        try:
            instance.setup(*cache, *params)
        except NotImplementedError:
            continue
        found[implementation] = (instance, (*cache, *params))
    return found


@pytest.mark.parametrize("cls", BENCH_CLASSES, ids=lambda c: f"{c.__module__}.{c.__name__}")
def test_every_benchmark_runs_once(cls):
    assert cls.param_names[0] == "implementation"
    cases = runnable_cases(cls)
    # every implementation listed, and registered at this commit, runs
    assert set(cases) == set(cls.params[0]) & set(LAYERS[cls.layer].implementations)
    methods = [m for m in dir(cls) if m.startswith(BENCH_PREFIXES)]
    assert methods
    for instance, params in cases.values():
        for method in methods:
            result = getattr(instance, method)(*params)
            if method.startswith("track_"):
                assert isinstance(result, (int, float)) and result >= 0, (method, params, result)


def test_every_registered_layer_and_implementation_has_a_benchmark():
    by_layer = {m.__name__.removeprefix("benchmarks.bench_"): m for m in BENCH_MODULES}
    assert set(by_layer) == set(LAYERS)
    for name, module in by_layer.items():
        classes = [c for c in BENCH_CLASSES if c.__module__ == module.__name__]
        timed = set().union(*(c.params[0] for c in classes if "Gradients" not in c.__name__))
        compared = set().union(*(c.params[0] for c in classes if "Gradients" in c.__name__))
        implementations = set(LAYERS[name].implementations)
        assert not implementations - timed, f"time {sorted(implementations - timed)} in bench_{name}.py"
        missing = implementations - compared - {"native"}
        assert not missing, f"track gradients of {sorted(missing)} in bench_{name}.py"


def test_asv_check_accepts_the_suite():
    asv = Path(sys.executable).with_name("asv")
    result = subprocess.run([str(asv), "check", "--python=same"], cwd=ROOT,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "No problems found" in result.stdout


def test_importing_the_suite_makes_no_cuda_call():
    """asv's forkserver imports the benchmark modules in the parent and forks a child per
    case: CUDA touched there (even torch.cuda.is_available, which initialises the driver)
    would break every CUDA case on a GPU machine. Here any such call raises."""
    code = (
        "import torch, torch.cuda\n"
        "def touched(*args, **kwargs):\n"
        "    raise SystemExit('CUDA touched at import')\n"
        "for name in ('is_available', 'device_count', 'init', '_lazy_init', 'synchronize',\n"
        "             'current_device', 'get_device_name', 'reset_peak_memory_stats'):\n"
        "    setattr(torch.cuda, name, touched)\n"
        "import benchmarks.common, benchmarks.bench_conv2d, benchmarks.bench_fft_abs, "
        "benchmarks.bench_conv2d_nchw\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr or result.stdout


SETTLE_PROBE = """
import resource, sys
import numpy as np
if sys.argv[1] == "settled":
    from benchmarks.common import settle_allocator
    settle_allocator()
def churn():  # like a layer call: a few MB of arrays made, touched and freed
    arrays = [np.ones(3 * 2**20 // 8) for _ in range(3)]
    del arrays
churn()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    churn()
print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 20)
"""


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's malloc thresholds")
def test_settled_allocator_stops_page_faults_on_repeated_calls():
    """Counts page faults, not time: at malloc's start-up thresholds every call faults
    its ~9 MB in again; settled, the freed pages are reused."""
    def faults_per_call(state):
        result = subprocess.run([sys.executable, "-c", SETTLE_PROBE, state], cwd=ROOT,
                                capture_output=True, text=True, check=True)
        return float(result.stdout)
    assert faults_per_call("start-up") > 1000  # ~2,300 pages churned per call
    assert faults_per_call("settled") < 10


def test_timings_settle_the_allocator_and_memory_cases_do_not(monkeypatch):
    from benchmarks import common
    from benchmarks.bench_fft_abs import FFTAbs, FFTAbsMemory
    calls = []
    monkeypatch.setattr(common, "settle_allocator", lambda: calls.append(1))
    FFTAbs().setup("scipy", "16x16", "float32", "cpu")
    assert calls == [1]
    FFTAbsMemory().setup("scipy", "16x16", "float32", "cpu")
    assert calls == [1]  # the memory figure is the first call's, from start-up state


def test_threads_1_pins_torch_to_one_thread_and_all_to_every_core(monkeypatch):
    """The timings compare algorithms with torch at one thread (the "1" every timing
    parameter grid passes, a string), the Threads view also with one per core."""
    from benchmarks import common
    counts = []
    monkeypatch.setattr(common.os, "sched_getaffinity", lambda pid: {0, 1, 2, 3})
    monkeypatch.setattr(common.torch, "set_num_threads", counts.append)
    monkeypatch.setattr(common.torch, "get_num_threads", lambda: counts[-1])
    assert common.pin_threads("1") == 1 and common.pin_threads("all") == 4
    assert counts == [1, 4]


def test_a_kernel_as_large_as_the_input_runs_and_a_larger_one_is_skipped():
    """A valid convolution has kernel <= input (one output per row at equality); only a
    larger kernel (dilated, against the padded input) is skipped."""
    from benchmarks.common import kernel_too_large
    assert not kernel_too_large("16x16", "16x16") and kernel_too_large("17x16", "16x16")
    assert not kernel_too_large("3x3", "1x1", (("padding", 1),))
    assert not kernel_too_large("3x3", "5x5", (("dilation", 2),))
    assert kernel_too_large("3x3", "4x4", (("dilation", 2),))


def test_the_conv2d_default_grid_is_its_listed_cases():
    """make bench runs the default grid alone: a small, a prime and a large size, each
    with two kernels (bench_conv2d.DEFAULT_CASES); the rest waits for the full grid."""
    from benchmarks.bench_conv2d import DEFAULT_CASES, in_default_grid
    assert in_default_grid("scipy", "16x16", "15x15", "float32")
    assert in_default_grid("native", "1024x1024", "7x7", "float64")
    assert not in_default_grid("scipy", "1024x1024", "15x15", "float32")
    assert not in_default_grid("scipy", "2048x2048", "3x3", "float32")
    assert sum(in_default_grid("scipy", size, kernel, "float32")
               for size in ("16x16", "64x64", "127x127", "256x256", "1024x1024", "2048x2048")
               for kernel in ("3x3", "5x5", "7x7", "15x15", "31x31")) == 6 == sum(
        map(len, DEFAULT_CASES.values()))


def test_extra_peak_memory_is_never_negative(monkeypatch):
    """The peak-RSS difference of a call that raises no peak can read a page or two below
    zero (a CI run: -8192 for a 16x16 native conv); it reports 0, and a real rise as is."""
    from benchmarks import common
    monkeypatch.setattr(common, "open", lambda *a, **k: __import__("io").StringIO(),
                        raising=False)  # (clear_refs: nothing written anywhere)
    readings = iter([(100 << 20, 100 << 20), (100 << 20, (100 << 20) - 8192),
                     (100 << 20, 100 << 20), (99 << 20, 101 << 20)])
    monkeypatch.setattr(common, "_rss_and_peak", lambda: next(readings))
    assert common.extra_peak_memory(lambda: None) == 0
    assert common.extra_peak_memory(lambda: None) == 1 << 20


def _extra_peak_memory_in_a_process(what: str) -> float:
    """extra_peak_memory of a call that touches 64 MiB and keeps or frees it, in MiB, in a
    process of its own (its peak is this test's alone)."""
    script = ("import numpy as np\n"
              "from benchmarks.common import extra_peak_memory\n"
              "kept = []\n"
              "def call():\n"
              "    array = np.ones(64 << 20, dtype=np.uint8)\n"
              f"    {'kept.append(array)' if what == 'keeps' else 'del array'}\n"
              "print(extra_peak_memory(call) / 2**20)\n")
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         cwd=ROOT, timeout=120)
    assert run.returncode == 0, run.stderr
    return float(run.stdout)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc/self/clear_refs")
@pytest.mark.parametrize("what", ["keeps", "frees"])
def test_extra_peak_memory_counts_what_a_call_keeps_and_what_it_frees(what):
    """Hostile pass 93: the peak was taken above the RSS after the call, so a call that
    kept its 64 MiB read 0."""
    assert 63 <= _extra_peak_memory_in_a_process(what) <= 66




def test_only_native_float64_on_the_cpu_is_skipped_for_its_im2col_buffer():
    """torch's float64 CPU conv builds a (kH kW) x (Ho Wo) float64 buffer: 7.1 GiB at
    1024x1024 with 31x31, skipped above 4 GiB; scipy, float32 and CUDA run."""
    from benchmarks.bench_conv2d import skip_infeasible
    for size in ("1024x1024", "2048x2048"):
        with pytest.raises(NotImplementedError, match="GiB im2col buffer"):
            skip_infeasible("native", size, "31x31", "float64")
        skip_infeasible("scipy", size, "31x31", "float64")
        skip_infeasible("native", size, "31x31", "float32")
        skip_infeasible("native", size, "31x31", "float64", "cuda")
    skip_infeasible("native", "1024x1024", "15x15", "float64")  # 1.9 GiB


def _no_case_built(monkeypatch):
    """setup_case recorded, not run: [(implementation, size, kernel, dtype, device,
    threads)] (the cases tested here would take seconds, or GBs)."""
    from benchmarks import common
    cases = []
    monkeypatch.setattr(common._LayerCase, "setup_case",
                        lambda self, *args, **kwargs: cases.append(
                            (*args[:5], kwargs.get("threads", args[5] if len(args) > 5
                                                   else "1"))))
    return cases


def test_the_methods_view_skips_native_float64_where_its_buffer_is_too_large(monkeypatch):
    from benchmarks.bench_conv2d import Conv2dMethods
    cases = _no_case_built(monkeypatch)
    with pytest.raises(NotImplementedError, match="GiB im2col buffer"):
        Conv2dMethods().setup("native", "2048x2048", "31x31", "float64")
    Conv2dMethods().setup("scipy-fft", "2048x2048", "31x31", "float64")
    assert cases == [("scipy-fft", "2048x2048", "31x31", "float64", "cpu", "1")]


@pytest.mark.parametrize("module,cls,params", [
    ("bench_conv2d", "Conv2dThreads", ("scipy", "127x127", "3x3", "float32")),
    ("bench_fft_abs", "FFTAbsThreads", ("scipy", "256x256", "float32")),
])
def test_the_threads_views_run_each_case_at_its_thread_count(module, cls, params,
                                                              monkeypatch):
    cases = _no_case_built(monkeypatch)
    bench = getattr(importlib.import_module(f"benchmarks.{module}"), cls)
    for threads in ("1", "all"):
        bench().setup(*params, threads)
    assert [case[-1] for case in cases] == ["1", "all"]


@pytest.mark.parametrize("module,cls,params", [
    ("bench_conv2d", "Conv2d", ("scipy", "16x16", "3x3", "float32")),
    ("bench_conv2d", "Conv2dMemory", ("native", "16x16", "3x3", "float32")),
    ("bench_fft_abs", "FFTAbs", ("scipy", "16x16", "float32")),
    ("bench_fft_abs", "FFTAbsMemory", ("native", "16x16", "float32")),
])
def test_the_cuda_cases_run_on_cuda(module, cls, params, monkeypatch):
    """The device parameter reaches setup_case (which skips CUDA without a GPU): a CUDA
    case never times the CPU under the CUDA name."""
    cases = _no_case_built(monkeypatch)
    bench = getattr(importlib.import_module(f"benchmarks.{module}"), cls)
    for device in ("cpu", "cuda"):
        bench().setup(*params, device)
    assert [case[4] for case in cases] == ["cpu", "cuda"]


def test_the_methods_views_default_grids_are_float32():
    """The forward+backward of every method: float32 alone without
    SCIPY_LAYERS_BENCH_FULL=1 (float64 waits for the full grid)."""
    from benchmarks.bench_conv2d import Conv2dMethods
    from benchmarks.bench_conv2d_nchw import Conv2dNCHWMethods
    for bench, size, kernel in [(Conv2dMethods(), "16x16", "3x3"),
                                (Conv2dNCHWMethods(), "8x3x32x32", "16x3x3")]:
        assert bench.in_default_grid("scipy", size, kernel, "float32")
        assert not bench.in_default_grid("scipy", size, kernel, "float64")


def test_the_matrix_method_runs_up_to_the_layers_limit(monkeypatch):
    """FFTAbsMethods skips scipy-matrix beyond _dft_axes.MATRIX_MAX_LENGTH (the suite's
    copy of it agrees at this commit), and runs it at that length."""
    from benchmarks import bench_fft_abs
    from scipy_layers import _dft_axes
    assert bench_fft_abs.MATRIX_MAX_LENGTH == _dft_axes.MATRIX_MAX_LENGTH
    cases = _no_case_built(monkeypatch)
    bench = bench_fft_abs.FFTAbsMethods()
    bench.setup("scipy-matrix", f"{_dft_axes.MATRIX_MAX_LENGTH}x{_dft_axes.MATRIX_MAX_LENGTH}",
                "float32")
    bench.setup("scipy-matrix", f"2x3x{_dft_axes.MATRIX_MAX_LENGTH}", "float32")
    with pytest.raises(NotImplementedError, match="method='matrix' takes H and W up to"):
        bench.setup("scipy-matrix", f"{_dft_axes.MATRIX_MAX_LENGTH + 1}x16", "float32")
    bench.setup("scipy-fft", "255x255", "float32")
    assert len(cases) == 3


def test_the_nchw_gradient_cases_compare_the_convs_the_timings_time():
    """Conv2dNCHWGradients' weight has the timed cases' output channels
    (OUTPUT_CHANNELS), not the one channel a bare 'kHxkW' kernel makes."""
    from benchmarks.bench_conv2d_nchw import (OUTPUT_CHANNELS, Conv2dNCHWGradients,
                                              weight_shape)
    _, sizes, kernels, *_ = Conv2dNCHWGradients.params
    for size, kernel in itertools.product(sizes, kernels):
        case = Conv2dNCHWGradients.case("scipy", size, kernel, "float32")
        assert case == ("scipy", size, weight_shape(size, kernel), "float32")
        assert case[2].split("x")[0] == str(OUTPUT_CHANNELS[size])


def _asv_samples(bench, params, method, samples=3):
    """Call ``method`` as asv_runner times it with number = 1: setup before every sample
    (the warm-up's included), teardown after it."""
    for _ in range(samples):
        bench.setup(*params)
        getattr(bench, method)(*params)
        if hasattr(bench, "teardown"):
            bench.teardown(*params)


def test_time_backward_times_backward_alone_in_every_sample(monkeypatch):
    """Hostile pass 142: FFTAbsBackward's forward was built once per process and every
    sample ran backward on it again (retain_graph), but a plain backward of fft_abs
    takes the spectrum its forward kept and writes the gradient over it: from the
    second call on (the warm-up took the first) each timed backward recomputed the
    forward transform, so scipy's "backward alone" included a forward rfft2 that
    native's did not. Every sample now backs through a forward built in its setup."""
    from benchmarks.bench_fft_abs import FFTAbsBackward
    from scipy_layers import _dft_axes
    transforms = []
    real = _dft_axes.transform
    monkeypatch.setattr(_dft_axes, "transform",
                        lambda *a, **k: transforms.append(1) or real(*a, **k))
    bench, params = FFTAbsBackward(), ("scipy", "16x16", "float64", "cpu")
    timed = []
    original = FFTAbsBackward.time_backward

    def time_backward(self, *args):
        before = len(transforms)
        original(self, *args)
        timed.append(len(transforms) - before)

    monkeypatch.setattr(FFTAbsBackward, "time_backward", time_backward)
    _asv_samples(bench, params, "time_backward", samples=4)
    assert timed == [0, 0, 0, 0]  # no forward transform inside any timed backward


@pytest.mark.parametrize("value,full", [(None, False), ("", False), ("0", False),
                                        ("1", True), ("yes", None), ("true", None),
                                        ("2", None), (" 1", None)])
def test_the_full_grid_variable_takes_0_or_1_and_refuses_anything_else(value, full):
    """Hostile pass 142: SCIPY_LAYERS_BENCH_FULL=yes (or true, 2, " 1") ran the default
    grid without a word, so a "full" run recorded the default grid's cases alone."""
    from benchmarks.common import full_grid
    if full is None:
        with pytest.raises(ValueError, match=r"SCIPY_LAYERS_BENCH_FULL must be 1 \(the full "
                                             r"grid\) or 0 or unset .*got " + repr(value)):
            full_grid(value)
    else:
        assert full_grid(value) is full


def test_importing_the_suite_with_a_bad_full_grid_variable_says_so():
    import os
    env = {**os.environ, "SCIPY_LAYERS_BENCH_FULL": "yes"}
    run = subprocess.run([sys.executable, "-c", "import benchmarks.common"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode != 0
    assert "SCIPY_LAYERS_BENCH_FULL must be 1 (the full grid) or 0 or unset" in run.stderr
