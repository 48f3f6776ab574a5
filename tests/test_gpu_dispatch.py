"""The CuPy backend (scipy_layers.gpu): the dispatch rule, the warn-once CPU round trip,
clear errors, and the CuPy code path itself run on a numpy/scipy stand-in for CuPy with
a faked "cuda" decision. The last tests need a real GPU with CuPy and skip elsewhere.
"""
import importlib.util
import itertools
import subprocess
import sys
import types
import warnings
from pathlib import Path

import numpy as np
import pytest
import scipy.signal
import torch
import torch.nn.functional as F

import scipy_layers
from scipy_layers import (LAYERS, _cupy_conv, conv2d, fft_abs, gpu, incorrect_fft, native_conv2d,
                          scipy_conv2d)
from scipy_layers.conv import ACCEPTED_METHODS
from tests._fake_cupy import fake_cupy, install

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "tools" / "gpu_check.py")
gpu_check = importlib.util.module_from_spec(spec)
spec.loader.exec_module(gpu_check)

HAS_GPU_AND_CUPY = torch.cuda.is_available() and importlib.util.find_spec("cupy") is not None


@pytest.fixture(autouse=True)
def fresh_state(monkeypatch):
    """Each test sees a fresh CuPy probe and an unwarned process."""
    clear = gpu.cupy_status.cache_clear  # kept: a test may replace cupy_status
    clear()
    monkeypatch.setattr(gpu, "_round_trip_warned", False)
    monkeypatch.setattr(gpu, "_no_gpu_path_warned", set())
    yield
    clear()


@pytest.fixture
def stand_in(monkeypatch):
    modules, calls = fake_cupy()
    install(monkeypatch, modules)
    return calls


# --- the rule ------------------------------------------------------------------------

@pytest.mark.parametrize("device,method,available", list(itertools.product(
    ("cpu", "cuda", "mps", "meta"), ACCEPTED_METHODS, (False, True))))
def test_choose_backend_on_every_combination(device, method, available):
    if method == "cupy" and device != "cuda":
        with pytest.raises(ValueError, match="method='cupy' needs CUDA tensors"):
            gpu.choose_backend(device, method, available)
    elif method == "cupy" and not available:
        with pytest.raises(RuntimeError, match=r"pip install scipy-layers\[gpu\]"):
            gpu.choose_backend(device, method, available, "CuPy is not installed")
    else:
        on_cupy = device == "cuda" and available and method in ("auto", "cupy")
        assert gpu.choose_backend(device, method, available) == (gpu.CUPY if on_cupy else gpu.NUMPY)


def test_cupy_is_an_accepted_method_and_numpy_methods_stay():
    assert set(ACCEPTED_METHODS) == {"auto", "direct", "shift", "fft", "cupy"}


# --- CPU inputs never touch CuPy ----------------------------------------------------------

def test_cpu_inputs_never_probe_or_import_cupy(monkeypatch):
    def probe():
        raise AssertionError("CuPy probed for CPU tensors")
    monkeypatch.setattr(gpu, "cupy_status", probe)
    x, w, b = LAYERS["conv2d"].make_inputs((20, 17), (4, 3))
    for method in ("auto", "direct", "shift", "fft"):
        scipy_conv2d(x, w, b, method).sum().backward()
    fft_abs(x).sum().backward()
    with pytest.raises(ValueError, match="method='cupy' needs CUDA tensors, got tensors on 'cpu'"):
        scipy_conv2d(x, w, b, "cupy")


def test_package_import_and_cpu_use_leave_cupy_unimported():
    code = ("import sys, torch, scipy_layers as s; x = torch.randn(9, 9, requires_grad=True); "
            "s.scipy_conv2d(x, torch.randn(3, 3)).sum().backward(); s.fft_abs(x).sum().backward(); "
            "assert 'cupy' not in sys.modules and 'cupyx' not in sys.modules, 'cupy imported'")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


# --- probing CuPy ---------------------------------------------------------------------

@pytest.mark.parametrize("modules,available,reason", [
    (None, False, "CuPy is not installed"),
    (fake_cupy(device_count=0)[0], False, "CuPy found no CUDA device"),
    (fake_cupy(broken=True)[0], False, "CuPy is installed but not usable (ZeroDivisionError"),
    (fake_cupy()[0], True, ""),
])
def test_cupy_status(monkeypatch, modules, available, reason):
    install(monkeypatch, modules, cuda=False)
    status = gpu.cupy_status()
    assert status.available is available and status.reason.startswith(reason)


# --- CUDA without CuPy: the CPU round trip, warned once -------------------------------------

def test_round_trip_warns_once_per_process_and_computes_right(monkeypatch):
    install(monkeypatch, None)
    x, w, b = LAYERS["conv2d"].make_inputs((20, 17), (4, 3))
    with pytest.warns(gpu.CPURoundTripWarning) as record:
        out = scipy_conv2d(x, w, b)
    assert len(record) == 1
    message = str(record[0].message)
    for part in ("CuPy is not installed", "copy them to the CPU", "pip install scipy-layers[gpu]"):
        assert part in message
    torch.testing.assert_close(out, native_conv2d(x, w, b))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a second warning would raise here
        out.sum().backward()
        scipy_conv2d(x, w, b).sum().backward()
        fft_abs(x).sum().backward()


def test_fft_layer_warns_too_and_explicit_numpy_methods_do_not(monkeypatch):
    install(monkeypatch, None)
    x, w, b = LAYERS["conv2d"].make_inputs((20, 17), (4, 3))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for method in ("direct", "shift", "fft"):  # asked for by name: no surprise to warn of
            scipy_conv2d(x, w, b, method)
    with pytest.warns(gpu.CPURoundTripWarning, match="CuPy is not installed"):
        fft_abs(x)


def test_layers_without_a_gpu_path_say_so_once_each_even_with_cupy(monkeypatch):
    install(monkeypatch, fake_cupy()[0])  # CuPy usable: still no GPU path for these two
    x, w, b = LAYERS["conv2d_nchw"].make_inputs((2, 3, 9, 9), (4, 3, 3))
    with pytest.warns(gpu.CPURoundTripWarning, match=r"scipy_layers\.conv2d .* no GPU path"):
        out = conv2d(x, w, b)
    torch.testing.assert_close(out, F.conv2d(x, w, b))
    with pytest.warns(gpu.CPURoundTripWarning, match="BadFFTFunction"):
        incorrect_fft(x)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # once per layer; a method by name never warns
        conv2d(x, w, b)
        conv2d(x, w, b, method="im2col")
        incorrect_fft(x)


def test_forcing_cupy_without_it_raises_clearly(monkeypatch):
    install(monkeypatch, None)
    x, w, b = LAYERS["conv2d"].make_inputs((20, 17), (4, 3))
    with pytest.raises(RuntimeError, match=r"needs a usable CuPy: CuPy is not installed.*"
                                           r"pip install scipy-layers\[gpu\]"):
        scipy_conv2d(x, w, b, "cupy")


# --- the CuPy code path, on the numpy/scipy stand-in --------------------------------------

def test_stand_in_path_passes_gradcheck(stand_in):
    gpu_check.check_gradients(device="cpu")
    used = {(name, method) for name, *_, method in stand_in}
    assert used == {("correlate2d", None), ("convolve2d", None)}  # direct sums only


def test_stand_in_path_agrees_with_native(stand_in):
    rows = gpu_check.agreement_rows(device="cpu", conv_cases=[((40, 33), (3, 4)), ((48, 50), (16, 17))],
                                    fft_shapes=[(7, 9), (2, 8, 6)])
    assert rows and all(err <= tol for *_, err, tol in rows), rows
    assert stand_in


def test_every_conv_pass_is_a_direct_sum_on_finite_operands(stand_in):
    """FFT correlation breaks the accuracy contract (tests/test_gpu_paths.py): the
    forward and grad_input are cupyx's direct kernels with the filter as the kernel;
    grad_filter is a reduction per tap (not correlate2d with all of g as its kernel)."""
    x, w, b = LAYERS["conv2d"].make_inputs((30, 30), (17, 16))
    scipy_conv2d(x, w, b).sum().backward()
    assert sorted(stand_in) == [("convolve2d", (14, 15), (17, 16), None),
                                ("correlate2d", (30, 30), (17, 16), None)]


@pytest.mark.parametrize("where", ["input", "filter", "grad_output"])
def test_a_nonfinite_operand_keeps_its_passes_off_cupyxs_kernels(stand_in, where):
    """cupyx's direct kernels skip zero weights and its full convolution forms padding x
    weight products: a pass with NaN in either of its operands takes the loops (forward:
    input and filter; grad_input: grad_output and filter), and the other pass keeps
    cupyx's kernel. (Mutation pass 115: the stand-in's scipy kernels give NaN where the
    loops do for most of these, so only the route tells the two apart.)"""
    x, w, b = LAYERS["conv2d"].make_inputs((12, 10), (3, 4))
    g = torch.randn(10, 7, dtype=x.dtype)
    {"input": x, "filter": w, "grad_output": g}[where].data[1, 2] = float("nan")
    scipy_conv2d(x, w, b, "cupy").backward(g)
    used = [name for name, *_ in stand_in]
    assert used == ["correlate2d"] * (where == "grad_output") + ["convolve2d"] * (where == "input")


def test_only_a_pair_past_cupyxs_limit_takes_the_loops(stand_in, monkeypatch):
    """cupyx refuses a pair whose smaller operand is 2 GiB or more: a large image with a
    small filter is still its kernel's (mutation pass 115)."""
    x, w, b = LAYERS["conv2d"].make_inputs((30, 30), (3, 3))
    monkeypatch.setattr(_cupy_conv, "CUPYX_DIRECT_MAX_BYTES", w.nbytes + 1)  # the image past it
    scipy_conv2d(x, w, b, "cupy").sum().backward()
    assert sorted(name for name, *_ in stand_in) == ["convolve2d", "correlate2d"]
    stand_in.clear()
    monkeypatch.setattr(_cupy_conv, "CUPYX_DIRECT_MAX_BYTES", w.nbytes)  # the filter too
    scipy_conv2d(x, w, b, "cupy").sum().backward()
    assert stand_in == []


class _Indexed(np.ndarray):
    """An array that counts the indexing done on it: each turn of a loop indexes once."""
    count = 0

    def __getitem__(self, key):
        _Indexed.count += 1
        return self.view(np.ndarray)[key]


@pytest.mark.parametrize("image, kernel", [((40, 40), (3, 2)), ((12, 11), (10, 10))])
def test_the_loops_turn_over_the_taps_or_the_pixels_whichever_are_fewer(image, kernel):
    """One array operation a turn (~50 us on an H200 whatever its size): 6 taps over 38 x 39
    outputs take 6 turns, not 1482; 100 taps over 3 x 2 outputs take 6 (mutation pass 115)."""
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal(image), rng.standard_normal(kernel)
    out = (image[0] - kernel[0] + 1, image[1] - kernel[1] + 1)
    g = rng.standard_normal(out)
    fewer = min(kernel[0] * kernel[1], out[0] * out[1])
    _Indexed.count = 0
    y = _cupy_conv._loop_correlate(np, x.view(_Indexed), w)
    assert _Indexed.count == fewer
    np.testing.assert_allclose(y, scipy.signal.correlate2d(x, w, mode="valid"), rtol=1e-12)
    _Indexed.count = 0
    gx = _cupy_conv._loop_grad_input(np, g.view(_Indexed), w.view(_Indexed), image)
    assert _Indexed.count == fewer
    np.testing.assert_allclose(gx, scipy.signal.convolve2d(g, w, mode="full"), rtol=1e-12)


@pytest.mark.parametrize("mask", list(itertools.product([False, True], repeat=3)))
def test_stand_in_path_computes_only_requested_gradients(stand_in, mask):
    inputs = [t.detach().requires_grad_(m) for t, m in zip(LAYERS["conv2d"].make_inputs((12, 10), (3, 4)), mask)]
    out = scipy_conv2d(*inputs, method="cupy")
    assert out.requires_grad == any(mask)
    if any(mask):
        out.sum().backward()
    assert [name for name, *_ in stand_in].count("convolve2d") == mask[0]  # grad_input
    for t, m in zip(inputs, mask):
        assert (t.grad is not None) == m


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_stand_in_path_keeps_dtype_and_shapes(stand_in, dtype):
    x, w, b = LAYERS["conv2d"].make_inputs((21, 19), (16, 16), dtype=dtype)
    out = scipy_conv2d(x, w, b, "cupy")
    out.sum().backward()
    assert out.dtype == x.grad.dtype == w.grad.dtype == b.grad.dtype == dtype
    assert b.grad.shape == b.shape
    (y,) = LAYERS["fft_abs"].make_inputs((5, 7), dtype=dtype)
    out = fft_abs(y)
    out.sum().backward()
    assert out.dtype == y.grad.dtype == dtype and y.grad.shape == y.shape


def test_stand_in_fft_gradient_where_the_spectrum_vanishes(stand_in):
    x = torch.ones(4, 6, dtype=torch.float64, requires_grad=True)
    x_native = x.detach().clone().requires_grad_(True)
    g = torch.randn(4, 4, dtype=torch.float64)
    fft_abs(x).backward(g)
    torch.fft.rfft2(x_native).abs().backward(g)
    torch.testing.assert_close(x.grad, x_native.grad, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("layer", ["conv2d", "fft_abs"])
def test_stand_in_double_backward_raises_clearly(stand_in, layer):
    inputs = LAYERS[layer].make_inputs((6, 7), (3, 3)) if layer == "conv2d" else \
        LAYERS[layer].make_inputs((6, 7))
    fn = scipy_conv2d if layer == "conv2d" else fft_abs
    (grad,) = torch.autograd.grad(fn(*inputs).sum(), inputs[0], create_graph=True)
    with pytest.raises(RuntimeError, match="does not support double backward"):
        grad.sum().backward()


# --- tools/gpu_check.py where there is no GPU ---------------------------------------------

def test_gpu_check_without_a_gpu_exits_cleanly(monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert gpu_check.main(["--no-timing"]) == 0
    assert "no CUDA GPU on this machine" in capsys.readouterr().out


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU branch")
def test_gpu_check_script_runs_here():
    result = subprocess.run([sys.executable, str(ROOT / "tools" / "gpu_check.py")],
                            capture_output=True, text=True)
    assert result.returncode == 0 and "nothing was checked" in result.stdout, result


def test_gpu_check_with_a_gpu_but_no_cupy_says_how_to_fix(monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    install(monkeypatch, None, cuda=False)
    assert gpu_check.main([]) == 1
    out = capsys.readouterr().out
    assert "CuPy is not installed" in out and "pip install scipy-layers[gpu]" in out


def _gpu_check_on_a_stand_in(monkeypatch, gradients=None, memory=None, rows=()):
    """gpu_check.main as on a GPU with CuPy, its checks replaced: ``gradients`` or
    ``memory`` an exception the check raises, ``rows`` the agreement rows; the tables
    it would print are recorded (mutation pass 114)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *args: "Stand-in GPU")
    runtime = types.SimpleNamespace(runtimeGetVersion=lambda: 12000)
    cp = types.SimpleNamespace(__version__="0.0", cuda=types.SimpleNamespace(runtime=runtime))
    monkeypatch.setattr(gpu, "cupy_status", lambda: gpu.CupyStatus(True, "", cp, None))

    def raising(error, value=None):
        def check():
            if error is not None:
                raise error
            return value
        return check

    monkeypatch.setattr(gpu_check, "check_gradients", raising(gradients))
    monkeypatch.setattr(gpu_check, "check_memory_counted", raising(memory, 2 ** 20))
    monkeypatch.setattr(gpu_check, "agreement_rows", lambda: list(rows))
    tables = []
    monkeypatch.setattr(gpu_check, "_print_table", tables.append)
    return tables


@pytest.mark.parametrize("errors, status", [((1e-6, 1e-5), 0), ((1e-6, 2e-5), 1)])
def test_gpu_check_fails_on_an_agreement_past_its_tolerance(monkeypatch, capsys, errors, status):
    rows = [("conv a", "output", errors[0], 1e-5), ("conv b", "grad_input", errors[1], 1e-5)]
    _gpu_check_on_a_stand_in(monkeypatch, rows=rows)
    assert gpu_check.main(["--no-timing"]) == status
    lines = capsys.readouterr().out.splitlines()
    verdicts = [line.split()[-1] for line in lines if line.startswith("agreement")]
    assert verdicts == ["ok", "ok" if status == 0 else "FAILED"]
    assert lines[-1] == ("gpu_check: all checks passed" if status == 0 else "gpu_check: FAILED")


@pytest.mark.parametrize("which", ["gradients", "memory"])
def test_gpu_check_fails_when_gradcheck_or_the_memory_check_fails(monkeypatch, capsys, which):
    _gpu_check_on_a_stand_in(monkeypatch, **{which: AssertionError("off")},
                             rows=[("conv a", "output", 0.0, 1e-5)])
    assert gpu_check.main(["--no-timing"]) == 1
    out = capsys.readouterr().out
    said = {"gradients": "gradcheck FAILED: AssertionError: off",
            "memory": "memory check FAILED: AssertionError: off"}
    assert said[which] in out and out.splitlines()[-1] == "gpu_check: FAILED"
    assert "agreement conv a" in out  # (the other checks still ran)


@pytest.mark.parametrize("options, checked, tables", [(["--timing-only"], False, 1),
                                                       (["--no-timing"], True, 0), ([], True, 1)])
def test_gpu_check_runs_the_checks_and_the_table_asked_for(monkeypatch, capsys, options,
                                                           checked, tables):
    printed = _gpu_check_on_a_stand_in(monkeypatch, rows=[("conv a", "output", 0.0, 1e-5)])
    assert gpu_check.main([*options, "--repeats", "4"]) == 0
    out = capsys.readouterr().out
    assert ("agreement conv a" in out) == checked == ("gradcheck (float64" in out)
    assert printed == [4] * tables


class _StandInEvent:
    """torch.cuda.Event on a clock that each timed call moves forward."""
    clock = [0.0]

    def __init__(self, enable_timing=False):
        self.at = None

    def record(self):
        self.at = self.clock[0]

    def synchronize(self):
        pass

    def elapsed_time(self, end):
        return end.at - self.at


def test_gpu_check_median_ms_times_at_least_three_calls(monkeypatch):
    monkeypatch.setattr(torch.cuda, "Event", _StandInEvent)
    for costs, expected in [([1000.0, 30.0, 10.0, 20.0], 20.0),  # over the budget: 3 calls
                            ([1.0] + [2.0] * 5, 2.0)]:            # under it: the 5 asked
        calls = iter(costs)

        def call():
            _StandInEvent.clock[0] += next(calls)

        assert gpu_check.median_ms(call, 5, budget_ms=2000.0) == expected
        assert next(calls, None) is None  # (every cost spent: the warm-up and each repeat)


def test_gpu_check_a_timing_that_fails_reads_failed(monkeypatch, capsys):
    emptied = []
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: emptied.append(True))

    def out_of_memory(fn, repeats):
        raise RuntimeError("CUDA out of memory.\nTried to allocate 2 GiB")

    monkeypatch.setattr(gpu_check, "median_ms", out_of_memory)
    value = gpu_check._safe_ms(lambda: None, 3)
    assert gpu_check._format_ms(value) == "failed" and emptied == [True]
    assert capsys.readouterr().out == "# timing failed: RuntimeError: CUDA out of memory.\n"
    assert gpu_check._format_ms(1.23456) == "1.235"


@pytest.mark.parametrize("bad_call", [lambda: scipy_layers.conv2d(torch.ones(1, 2, 5, 5),
                                                                 torch.ones(1, 3, 3, 3)),
                                      lambda: scipy_layers.fft_abs(torch.ones(4))])
def test_gpu_check_a_layer_argument_error_is_no_failed_cell(monkeypatch, capsys, bad_call):
    """The layers' argument errors are RuntimeErrors too; in the table they would read as
    a failed timing (out of memory) and hide a defect of the tool's grid."""
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: None)
    monkeypatch.setattr(gpu_check, "median_ms", lambda fn, repeats: fn())
    with pytest.raises(RuntimeError) as error:
        gpu_check._safe_ms(bad_call, 3)
    assert isinstance(error.value, (scipy_layers.LayerValueError, scipy_layers.LayerTypeError))
    assert "timing failed" not in capsys.readouterr().out


@pytest.mark.parametrize("short, passes", [(0, True), (1, False)])
def test_gpu_check_memory_counts_the_output_and_its_complex_spectrum(monkeypatch, short, passes):
    # fft_abs of 8x6 float64: an 8x4 output (256 bytes) and its complex spectrum (512)
    allocated = iter([1000, 1000 + 256 + 512 - short])
    monkeypatch.setattr(torch.cuda, "synchronize", lambda *args: None)
    monkeypatch.setattr(torch.cuda, "memory_allocated", lambda *args: next(allocated))
    if passes:
        assert gpu_check.check_memory_counted(device="cpu", size=(8, 6)) == 768
    else:
        with pytest.raises(AssertionError, match="expected at least 768"):
            gpu_check.check_memory_counted(device="cpu", size=(8, 6))


# --- on a real GPU with CuPy ----------------------------------------------------------

needs_gpu = pytest.mark.skipif(not HAS_GPU_AND_CUPY, reason="needs a CUDA GPU and CuPy")


@needs_gpu
def test_gpu_gradcheck_float64():
    gpu_check.check_gradients(device="cuda")


@needs_gpu
def test_gpu_agrees_with_native_tf32_off():
    rows = gpu_check.agreement_rows(device="cuda")
    assert all(err <= tol for *_, err, tol in rows), [r for r in rows if r[2] > r[3]]


@needs_gpu
def test_gpu_auto_uses_cupy_zero_copy_and_no_warning():
    assert gpu.cupy_status().available, gpu.cupy_status().reason
    cp = gpu.cupy_status().cupy
    x, w, b = LAYERS["conv2d"].make_inputs((64, 64), (5, 5), device="cuda")
    assert gpu._to_cupy(cp, x).data.ptr == x.data_ptr()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert gpu.resolve_backend(x) == gpu.CUPY
        out = scipy_conv2d(x, w, b)
        out.sum().backward()
    assert out.device == x.grad.device == w.grad.device == b.grad.device == x.device


@needs_gpu
def test_gpu_cupy_allocations_are_counted_by_torch():
    assert gpu_check.check_memory_counted(device="cuda") > 0


def test_cupy_allocates_from_torchs_caching_allocator(monkeypatch):
    """The allocator handed to CuPy asks torch for memory on torch's current stream and
    gives it back to torch (real CUDA calls replaced by recorders)."""
    calls = []
    monkeypatch.setattr(torch.cuda, "current_stream", lambda device=None: f"stream-of-{device}")
    monkeypatch.setattr(torch.cuda, "caching_allocator_alloc",
                        lambda size, device, stream: calls.append(("alloc", size, device, stream)) or 4096)
    monkeypatch.setattr(torch.cuda, "caching_allocator_delete",
                        lambda pointer: calls.append(("delete", pointer)))

    class Allocator:  # records the functions CuPy would call
        def __init__(self, malloc, free):
            self.malloc_func, self.free_func = malloc, free

        def malloc(self, size):
            return self.malloc_func(size, 1)

    fake_cp = types.ModuleType("fake_cupy")  # hashable, like the real module
    fake_cp.cuda = types.SimpleNamespace(PythonFunctionAllocator=Allocator)
    malloc = gpu._torch_allocator(fake_cp)
    assert malloc(256) == 4096
    malloc.__self__.free_func(4096, 1)
    malloc.__self__.free_func(0, 1)  # zero-byte blocks own nothing: no call
    assert calls == [("alloc", 256, 1, "stream-of-1"), ("delete", 4096)]
