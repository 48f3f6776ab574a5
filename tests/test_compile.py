"""torch.compile of every layer function and module, on the "eager", "aot_eager" and
"inductor" backends: each call runs (a graph break at the layer is fine) and agrees with
eager, forward and backward (float64, tight tolerances), on its first (compiling) call and
its second (guarded) call.

Each backend runs in a subprocess (this file run as a script), so a crash inside Dynamo
or a compiled kernel fails one test instead of killing the test run. Inductor compiles
C++ and is slow on small machines: it gets one case per layer and module.
"""
import functools
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TIGHT = dict(rtol=1e-12, atol=1e-12)


def _cases():
    """name -> builder() -> (callable, args, tensors to differentiate with respect to)."""
    import torch

    import scipy_layers as sl

    def randn(*shape, seed=0):
        gen = torch.Generator().manual_seed(seed)
        return torch.randn(*shape, generator=gen, dtype=torch.float64).requires_grad_()

    def function(fn, *shapes):
        args = [randn(*shape, seed=i) for i, shape in enumerate(shapes)]
        return fn, args, args

    def module(mod, x_shape):
        mod = mod.double()
        x = randn(*x_shape)
        return mod, [x], [x, *mod.parameters()]

    cases = {}
    for method in ("auto", "direct", "shift", "fft"):
        cases[f"scipy_conv2d-{method}"] = functools.partial(
            function, lambda x, w, b, m=method: sl.scipy_conv2d(x * 1.5, w, b, m).sin(),
            (9, 8), (3, 4), (1, 1))
        cases[f"ScipyConv2d-{method}"] = functools.partial(
            lambda m: module(sl.ScipyConv2d(3, 2, method=m), (10, 9)), method)
    cases["ScipyConv2dFunction.apply"] = functools.partial(
        function, lambda x, w: sl.ScipyConv2dFunction.apply(x, w).exp(), (7, 7), (2, 2))
    nchw = {
        "plain": ((2, 3, 7, 6), (4, 3, 3, 3), {}),
        "stride-padding-groups": ((2, 4, 9, 8), (6, 2, 3, 2),
                                  dict(stride=(2, 1), padding=(1, 2), dilation=(1, 2), groups=2)),
        "same": ((1, 2, 6, 7), (3, 2, 4, 3), dict(padding="same")),
    }
    for method in ("auto", "im2col", "fft", "shift"):
        for name, (x_shape, w_shape, kwargs) in nchw.items():
            if method in ("fft", "shift") and name == "stride-padding-groups":
                continue  # these take stride 1, dilation 1, groups 1 only
            cases[f"conv2d-{method}-{name}"] = functools.partial(
                function, lambda x, w, b, m=method, k=kwargs: sl.conv2d(x.cos(), w, b, method=m,
                                                                        **k).tanh(),
                x_shape, w_shape, (w_shape[0],))
        groups = dict(stride=2, padding=1, groups=2) if method not in ("fft", "shift") else dict(padding=2)
        cases[f"Conv2d-{method}"] = functools.partial(
            lambda m, k: module(sl.Conv2d(4, 6, 3, method=m, **k), (2, 4, 8, 9)), method, groups)
    cases["fft_abs"] = functools.partial(function, lambda x: sl.fft_abs(x + 1).sqrt(), (3, 6, 7))
    cases["FFTAbsFunction.apply"] = functools.partial(
        function, lambda x: sl.FFTAbsFunction.apply(x).sum(-1), (6, 5))
    cases["incorrect_fft"] = functools.partial(function, lambda x: sl.incorrect_fft(x * x),
                                               (2, 6, 8))
    cases["BadFFTFunction.apply"] = functools.partial(
        function, lambda x: sl.BadFFTFunction.apply(x).square(), (5, 5))
    return cases


INDUCTOR_CASES = ["scipy_conv2d-auto", "ScipyConv2d-fft", "conv2d-im2col-stride-padding-groups",
                  "Conv2d-auto", "fft_abs", "incorrect_fft"]  # each layer and module once
SPECIAL_CASES = ["no-grad", "cuda-round-trip-warnings", "pooled-buffers"]


def _forward_backward(fn, args, wrt, grad_seed=7):
    import torch
    for tensor in wrt:
        tensor.grad = None
    out = fn(*args)
    gen = torch.Generator().manual_seed(grad_seed)
    grad_output = torch.randn(out.shape, generator=gen, dtype=out.dtype)
    return (out.detach(), *torch.autograd.grad(out, wrt, grad_output))


def _run_case(name, backend):
    import torch
    torch._dynamo.reset()
    fn, args, wrt = _cases()[name]()
    expected = _forward_backward(fn, args, wrt)
    compiled = torch.compile(fn, backend=backend)
    for _ in range(2):  # the compiling call, then the guarded one
        torch.testing.assert_close(_forward_backward(compiled, args, wrt), expected, **TIGHT)


def _run_no_grad(backend):
    """Inference: Dynamo inlines a Function's forward when nothing needs a gradient."""
    import torch

    import scipy_layers as sl
    torch._dynamo.reset()
    x = torch.randn(2, 3, 8, 8, dtype=torch.float64)
    w = torch.randn(4, 3, 3, 3, dtype=torch.float64)
    fn = lambda x: sl.conv2d(x, w, padding=1).relu() + sl.fft_abs(x).sum()  # noqa: E731
    with torch.no_grad():
        torch.testing.assert_close(torch.compile(fn, backend=backend)(x), fn(x), **TIGHT)


def _run_cuda_round_trip_warnings(backend):
    """The warn-once globals on the CUDA path (faked: every tensor reads as CUDA, CuPy
    missing) must not trip Dynamo's guards."""
    import warnings

    import torch

    import scipy_layers as sl
    from scipy_layers import gpu
    gpu._device_type = lambda tensor: "cuda"
    sys.modules["cupy"] = None
    torch._dynamo.reset()
    x = torch.randn(2, 3, 8, 8, dtype=torch.float64, requires_grad=True)
    w = torch.randn(4, 3, 3, 3, dtype=torch.float64)
    fn = lambda x: (sl.conv2d(x, w).sin().sum() + sl.incorrect_fft(x).sum()  # noqa: E731
                    + sl.fft_abs(x).sum())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        expected = _forward_backward(fn, [x], [x])
        for _ in range(2):
            torch.testing.assert_close(_forward_backward(torch.compile(fn, backend=backend),
                                                         [x], [x]), expected, **TIGHT)
    assert any(issubclass(w.category, gpu.CPURoundTripWarning) for w in caught)


def _run_pooled_buffers(backend):
    """Arrays from the workspace pool (256 KiB and up) handed out and dying inside a
    compiled region: their give-back callbacks run there, with Dynamo's frame hook on
    (before _workspace.run_callbacks_outside_compile, Dynamo tried to compile them and
    printed "Exception ignored ... InternalTorchDynamoError"; the test reads stderr),
    and every buffer still comes back."""
    import gc

    import torch

    import scipy_layers as sl
    from scipy_layers import _workspace
    torch._dynamo.reset()
    x = torch.randn(8, 16, 64, 64, dtype=torch.float64, requires_grad=True)
    w = torch.randn(32, 16, 3, 3, dtype=torch.float64, requires_grad=True)
    fn = lambda x, w: sl.conv2d(x, w, padding=1).relu().sum()  # noqa: E731
    expected = _forward_backward(fn, [x, w], [x, w])
    compiled = torch.compile(fn, backend=backend)
    for _ in range(3):
        torch.testing.assert_close(_forward_backward(compiled, [x, w], [x, w]), expected,
                                   **TIGHT)
    del expected  # (its tensors own pooled buffers too)
    gc.collect()
    assert not _workspace._pending, f"{len(_workspace._pending)} buffers never came back"


def main(backend, names):
    """Run each case, print one JSON line per case: {"case", "ok", "error"}."""
    import torch
    for name in names:
        try:
            if name == "no-grad":
                _run_no_grad(backend)
            elif name == "cuda-round-trip-warnings":
                _run_cuda_round_trip_warnings(backend)
            elif name == "pooled-buffers":
                _run_pooled_buffers(backend)
            else:
                _run_case(name, backend)
            compiled_frames = torch._dynamo.utils.counters["frames"]["ok"]
            assert compiled_frames > 0, "Dynamo compiled no frame"
            result = {"case": name, "ok": True}
        except Exception as error:  # reported to the test, one case at a time
            result = {"case": name, "ok": False, "error": f"{type(error).__name__}: {error}"}
        print(json.dumps(result), flush=True)


@pytest.mark.parametrize("backend", ["eager", "aot_eager", "inductor"])
def test_compiled_layers_agree_with_eager(backend, tmp_path):
    names = INDUCTOR_CASES if backend == "inductor" else [*_cases(), *SPECIAL_CASES]
    python_path = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    env = {**os.environ, "PYTHONPATH": python_path,  # this checkout's scipy_layers
           "TORCHINDUCTOR_CACHE_DIR": str(tmp_path / "inductor")}
    run = subprocess.run([sys.executable, __file__, backend, *names], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=1200)
    results = [json.loads(line) for line in run.stdout.splitlines() if line.startswith("{")]
    failures = [f"{r['case']}: {r['error'][:2000]}" for r in results if not r["ok"]]
    assert not failures, "\n".join(failures)
    assert [r["case"] for r in results] == names, (
        f"the subprocess stopped early (exit {run.returncode}):\n{run.stderr[-4000:]}")
    assert run.returncode == 0, run.stderr[-4000:]
    assert "Exception ignored" not in run.stderr, run.stderr[-4000:]


def test_inductor_cases_are_built_cases_covering_every_layer():
    assert set(INDUCTOR_CASES) <= set(_cases())
    layers = ("scipy_conv2d", "ScipyConv2d", "conv2d", "Conv2d", "fft_abs", "incorrect_fft")
    assert {name.split("-")[0] for name in INDUCTOR_CASES} == set(layers)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
