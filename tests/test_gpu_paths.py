"""The GPU paths against the oracles of the CPU harness (tests/test_harness.py): every
sample of scipy_layers.samples in every layout, NaN and inf planted in each argument, the
accuracy contract on the inputs that break FFT convolutions, and empty batches.

Each test runs twice: on the numpy/scipy stand-in for CuPy (tests/_fake_cupy.py), here
and in CI, which checks the CuPy code path's logic; and on a real CUDA GPU with CuPy,
which checks CuPy itself (skipped without one; tools/gpu_session.sh runs it there). On
the GPU, the layers without a CuPy path (the batched conv, the tutorial's FFT) are
checked too: they copy CUDA tensors to the CPU and back.
"""
import dataclasses
import importlib.util
import warnings

import pytest
import torch

from scipy_layers import LAYERS, NATIVE, Implementation, _cupy_conv, fft_abs, gpu, scipy_conv2d
from scipy_layers.agreement import (TOLERANCE, compare_with_native, conv_reference, contract_ratio,
                                    max_errors, tf32_off)
from scipy_layers.samples import LAYOUTS, SAMPLES, make_case
from tests._fake_cupy import fake_cupy, install
from tests.test_accuracy import FAMILIES, family
from tests.test_harness import _nonfinite_classes, _plant

HAS_GPU_AND_CUPY = torch.cuda.is_available() and importlib.util.find_spec("cupy") is not None
DTYPES = [torch.float32, torch.float64]


@pytest.fixture(params=["stand-in", "cuda"])
def device(request, monkeypatch):
    """The device the tensors live on: "cpu" under the stand-in, "cuda" on a real GPU."""
    gpu.cupy_status.cache_clear()
    monkeypatch.setattr(gpu, "_round_trip_warned", False)
    monkeypatch.setattr(gpu, "_no_gpu_path_warned", set())
    if request.param == "stand-in":
        modules, _ = fake_cupy()
        install(monkeypatch, modules)
        yield "cpu"
    else:
        if not HAS_GPU_AND_CUPY:
            pytest.skip("needs a CUDA GPU and CuPy")
        assert gpu.cupy_status().available, gpu.cupy_status().reason
        with tf32_off():
            yield "cuda"
    gpu.cupy_status.cache_clear()


def _cupy_conv2d(input, filter, bias=None):
    return scipy_conv2d(input, filter, bias, method="cupy")


# The layers with a CuPy path, as the agreement helpers take them: "cupy" beside native.
CUPY_LAYERS = {
    "conv2d": (_cupy_conv2d, LAYERS["conv2d"]),
    "fft_abs": (fft_abs, LAYERS["fft_abs"]),  # "auto" takes CuPy on CUDA tensors
}
CUPY_CASES = [pytest.param(layer, sample, id=f"{layer}-{sample.name}")
              for layer in CUPY_LAYERS for sample in SAMPLES[layer] if sample.accepts("scipy")]


def _layer(name):
    fn, layer = CUPY_LAYERS[name]
    return dataclasses.replace(layer, implementations={
        "cupy": Implementation(fn, backend="cupy"), NATIVE: layer.native})


def _on(device, tensors):
    return [None if t is None else t.detach().to(device).requires_grad_(True) for t in tensors]


def _no_round_trip():
    """The CuPy path must run: a CPU round trip would warn."""
    return warnings.catch_warnings(action="error", category=gpu.CPURoundTripWarning)


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("layer_name,sample", CUPY_CASES)
def test_cupy_path_agrees_with_native_in_every_layout(device, layer_name, sample, dtype, layout):
    leaves, prepare = make_case(sample, layout, dtype, seed=11)
    with _no_round_trip():
        errors = compare_with_native(_layer(layer_name), "cupy", _on(device, leaves),
                                     prepare=prepare, kwargs=sample.kwargs)
    for what, err in errors.items():
        assert err.max_rel <= TOLERANCE[dtype], (what, err)


CONV_CASES = [case for case in CUPY_CASES if case.values[0] == "conv2d"]


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("layer_name,sample", CONV_CASES)
def test_cupy_conv_loops_agree_with_native_in_every_layout(device, layer_name, sample, dtype,
                                                           layout, monkeypatch):
    """The loops that NaN/inf, operands of 2 GiB and grad_filter take, forced on every pass
    (over the filter's taps, or over the output's pixels where those are fewer)."""
    monkeypatch.setattr(_cupy_conv, "CUPYX_DIRECT_MAX_BYTES", 0)
    test_cupy_path_agrees_with_native_in_every_layout(device, layer_name, sample, dtype, layout)


def test_negated_views_are_read_by_value(device):
    """torch._neg_view tensors (lazily negated): DLPack has no negative bit, so CuPy
    would read them unnegated; native reads them by value."""
    x, w = (torch.randn(shape, dtype=torch.float64, device=device) for shape in ((10, 9), (3, 2)))
    g = torch.randn(8, 8, dtype=torch.float64, device=device)
    for args in ((torch._neg_view(x), w), (x, torch._neg_view(w))):
        leaves = [a.detach().clone().requires_grad_(True) for a in (x, w)]
        native = [a.detach().clone().requires_grad_(True) for a in (x, w)]
        flip = [a.is_neg() for a in args]
        view = [torch._neg_view(t) if f else t for t, f in zip(leaves, flip)]
        torch.autograd.backward(_cupy_conv2d(*view), torch._neg_view(g))
        torch.autograd.backward(LAYERS["conv2d"].native.fn(*[-t if f else t for t, f in zip(native, flip)]), -g)
        for ours, theirs in zip(leaves, native):
            torch.testing.assert_close(ours.grad, theirs.grad)
    y = torch._neg_view(x.detach().clone()).requires_grad_(False)
    leaf = x.detach().clone().requires_grad_(True)
    reference = (-x).detach().clone().requires_grad_(True)
    g = torch.randn(10, 5, dtype=torch.float64, device=device)
    torch.autograd.backward(fft_abs(torch._neg_view(leaf)), torch._neg_view(g))
    torch.autograd.backward(torch.fft.rfft2(reference).abs(), -g)
    torch.testing.assert_close(leaf.grad, -reference.grad)
    torch.testing.assert_close(fft_abs(y), torch.fft.rfft2(-x).abs())


@pytest.mark.parametrize("layout", ["contiguous", "transposed"])
@pytest.mark.parametrize("layer_name,sample", CUPY_CASES)
def test_cupy_path_gradcheck(device, layer_name, sample, layout):
    leaves, prepare = make_case(sample, layout, torch.float64, seed=3)
    leaves = _on(device, leaves)
    fn = CUPY_LAYERS[layer_name][0]
    present = [t for t in leaves if t is not None]

    def call(*tensors):
        it = iter(tensors)
        return fn(*prepare([None if t is None else next(it) for t in leaves]))

    eps = 1e-6 if layer_name == "fft_abs" else 1e-3  # conv is linear: a large step is exact
    assert torch.autograd.gradcheck(call, present, eps=eps, atol=1e-8, rtol=1e-6, fast_mode=True)


# --- NaN and inf: the conv follows the direct sum over real pixels, fft_abs native ---------

NONFINITE_CASES = [pytest.param(layer, sample, where, value, id=f"{layer}-{sample.name}-{where}-{value}")
                   for layer, sample in (case.values for case in CUPY_CASES)
                   for where in ("input", "filter", "bias", "grad_output")
                   for value in ("nan", "inf", "-inf")
                   if where == "grad_output" or ["input", "filter", "bias"].index(where)
                   < sum(shape is not None for shape in sample.shapes)
                   if value == "nan" or where != "bias"]


def _outputs_and_grads(fn, leaves, grad_output):
    args = [None if t is None else t.detach().clone().requires_grad_(True) for t in leaves]
    output = fn(*args)
    present = [t for t in args if t is not None]
    return [output, *torch.autograd.grad(output, present, grad_output)]


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("layer_name,sample,where,value", NONFINITE_CASES)
def test_cupy_path_puts_nan_and_inf_where_the_oracle_does(device, layer_name, sample, where,
                                                          value, dtype):
    leaves, _ = make_case(sample, "contiguous", dtype, seed=5)
    if layer_name == "conv2d" and sample.shapes[1] is not None:
        leaves[1].data.view(-1)[::3] = 0  # zero weights: a kernel that skips them fails here
    if where != "grad_output":
        _plant(leaves[["input", "filter", "bias"].index(where)], float(value), 1)
    leaves = _on(device, leaves)
    fn = CUPY_LAYERS[layer_name][0]
    output_shape = fn(*leaves).shape
    grad_output = torch.randn(output_shape, generator=torch.Generator().manual_seed(1), dtype=dtype)
    if where == "grad_output":
        _plant(grad_output, float(value), 3)
    grad_output = grad_output.to(device)
    with _no_round_trip():
        ours = _outputs_and_grads(fn, leaves, grad_output)
    if layer_name == "conv2d":
        refs = conv_reference(*[None if t is None else t.detach().cpu() for t in leaves],
                              grad_output.cpu())
        names = ["output", "grad_input", "grad_weight", "grad_bias"]
        theirs = [torch.from_numpy(refs[name].value.astype("float64")) for name in names[:len(ours)]]
    else:
        theirs = _outputs_and_grads(LAYERS[layer_name].native.fn, leaves, grad_output)
    for index, (mine, reference) in enumerate(zip(ours, theirs)):
        mine, reference = mine.cpu(), reference.cpu()
        err = max_errors(mine, reference)
        assert err.nonfinite_mismatches == 0, (index, err)
        if layer_name == "conv2d":  # NaN, inf and -inf exactly as the direct sum has them
            assert torch.equal(_nonfinite_classes(mine), _nonfinite_classes(reference)), index
        assert err.max_rel <= TOLERANCE[dtype], (index, err)


# --- the accuracy contract (tests/test_accuracy.py's families) -----------------------------

@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("name", FAMILIES)
@pytest.mark.parametrize("size,kernel", [((48, 40), (9, 7)), ((72, 72), (17, 16))])
def test_cupy_conv_keeps_the_contract(device, name, dtype, size, kernel):
    x = family(name, size, dtype).to(device).requires_grad_(True)
    w = family(name, kernel, dtype, seed=1).to(device).requires_grad_(True)
    y = _cupy_conv2d(x, w)
    grad_output = family(name, tuple(y.shape), dtype, seed=2).to(device)
    grad_x, grad_w = torch.autograd.grad(y, (x, w), grad_output)
    refs = conv_reference(x.detach().cpu(), w.detach().cpu(), None, grad_output.cpu())
    for what, got in (("output", y), ("grad_input", grad_x), ("grad_weight", grad_w)):
        ratio = contract_ratio(got.detach().cpu(), refs[what], dtype)
        assert ratio <= 1, (what, ratio)


# --- empty batches, as torch.fft takes them ------------------------------------------------

@pytest.mark.parametrize("shape", [(0, 5, 6), (2, 0, 4, 4)])
def test_fft_abs_on_an_empty_batch(device, shape):
    x = torch.zeros(shape, dtype=torch.float64, device=device, requires_grad=True)
    out = fft_abs(x)
    assert out.shape == (*shape[:-1], shape[-1] // 2 + 1) and out.device == x.device
    out.sum().backward()
    assert x.grad.shape == x.shape and x.grad.device == x.device


@pytest.mark.skipif(not HAS_GPU_AND_CUPY, reason="needs a CUDA GPU and CuPy")
def test_cupy_paths_on_a_side_stream():
    """CuPy runs on torch's current stream: on a side stream, with no synchronisation
    beyond the stream's own, the results are native's."""
    x, w, b = LAYERS["conv2d"].make_inputs((300, 280), (9, 7), device="cuda")
    (z,) = LAYERS["fft_abs"].make_inputs((3, 128, 96), device="cuda")
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with tf32_off(), torch.cuda.stream(side):
        for layer, fn, inputs in (("conv2d", _cupy_conv2d, (x, w, b)), ("fft_abs", fft_abs, (z,))):
            errors = compare_with_native(_layer(layer), "cupy", inputs)
            assert all(err.max_rel <= TOLERANCE[torch.float64] for err in errors.values()), errors
    torch.cuda.synchronize()


# --- the layers without a CuPy path: a CPU round trip, on a real GPU only -------------------

ROUND_TRIP_CASES = [pytest.param(layer, impl, sample, id=f"{layer}-{impl}-{sample.name}")
                    for layer, impl in (("conv2d_nchw", "scipy"), ("fft_abs", "numpy-tutorial"))
                    for sample in SAMPLES[layer] if sample.accepts(impl)]


@pytest.mark.skipif(not HAS_GPU_AND_CUPY, reason="needs a CUDA GPU and CuPy")
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("layer_name,implementation,sample", ROUND_TRIP_CASES)
def test_round_trip_layers_on_cuda_tensors(layer_name, implementation, sample, dtype, layout):
    leaves, prepare = make_case(sample, layout, dtype, seed=11)
    leaves = _on("cuda", leaves)
    layer = LAYERS[layer_name]
    with tf32_off(), warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # (the once-per-process round-trip note)
        errors = compare_with_native(layer, implementation, leaves, prepare=prepare,
                                     kwargs=sample.kwargs)
        out = layer.implementations[implementation].fn(*prepare(leaves), **sample.kwargs)
    assert out.device == leaves[0].device
    for what, err in errors.items():
        if what == "output" or layer.implementations[implementation].gradient_is_exact:
            assert err.max_rel <= TOLERANCE[dtype], (what, err)
