"""Inputs whose working arrays cannot fit in memory get a MemoryError naming the layer
and its tensors, and get it at once: an expanded input (stride 0) of 2**48 elements
holds one number, and before hostile pass 112 the layers summed or scanned all of them
(hours) before failing to allocate, or failed with numpy's words for an internal array.

Run as a script (``python tests/test_out_of_memory.py CASE...``) it prints one JSON line
per case; the tests run it in a subprocess (tests/_case_scripts.py), so an allocation
that the machine's overcommit lets through ends that process, not the test run."""
from __future__ import annotations

import json
import sys
import time

import numpy as np
import pytest

SIDE = 2 ** 24  # an image of SIDE x SIDE: 1 PiB in float32, beyond any address space
CASES = [f"{layer}-{method}" for layer, methods in (
    ("scipy_conv2d", ("auto", "direct", "shift", "fft")),
    ("conv2d", ("auto", "im2col", "shift", "fft")),
    ("Conv2d", ("auto",)),
    ("fft_abs", ("auto", "fft")),
) for method in methods]
# under torch.func, which runs the layer's vmap or forward-mode rule inside its outer call,
# each calling the layer again: named once, numpy's error its cause (hostile pass 113)
TRANSFORM_CASES = ["vmap-fft_abs", "vmap-incorrect_fft", "vmap-scipy_conv2d", "vmap-conv2d",
                   "grad-fft_abs", "jvp-scipy_conv2d", "jvp-conv2d", "jvp-fft_abs"]
LAYER_NAMES = {"scipy_conv2d": "scipy_conv2d / ScipyConv2d",
               "conv2d": "scipy_layers.conv2d / Conv2d", "Conv2d": "scipy_layers.conv2d / Conv2d",
               "fft_abs": "fft_abs", "incorrect_fft": "incorrect_fft"}


def _call(case: str):
    import torch

    import scipy_layers as sl
    layer, method = case.split("-")
    image = torch.zeros(1).expand(SIDE, SIDE)
    if case in TRANSFORM_CASES:
        return _transformed(layer, method, image)
    if layer == "scipy_conv2d":
        return sl.scipy_conv2d(image, torch.ones(3, 3), method=method)
    if layer == "conv2d":
        return sl.conv2d(image[None, None], torch.ones(1, 1, 3, 3), method=method)
    if layer == "Conv2d":
        return sl.Conv2d(1, 1, 3)(image[None, None])
    return sl.fft_abs(image, method=method)


def _transformed(transform: str, layer: str, image):
    import torch
    from torch import func

    import scipy_layers as sl
    call = {"fft_abs": sl.fft_abs, "incorrect_fft": sl.incorrect_fft,
            "scipy_conv2d": lambda x: sl.scipy_conv2d(x, torch.ones(3, 3)),
            "conv2d": lambda x: sl.conv2d(x[None, None], torch.ones(1, 1, 3, 3))}[layer]
    if transform == "vmap":
        return func.vmap(call)(image[None].expand(2, SIDE, SIDE))
    if transform == "grad":
        return func.grad(lambda x: call(x).sum())(image)
    return func.jvp(call, (image,), (image,))


def _report(case: str) -> dict:
    start = time.perf_counter()
    try:
        _call(case)
        error = None
    except Exception as caught:  # noqa: BLE001 (whatever it is, the test reads it)
        error = caught
    return {"case": case, "seconds": time.perf_counter() - start,
            "type": type(error).__name__, "message": str(error),
            "runtime_error": isinstance(error, RuntimeError),
            "cause": type(error.__cause__).__name__ if error is not None else None,
            "cause_message": str(error.__cause__) if error is not None else None,
            "notes": getattr(error, "__notes__", [])}


@pytest.fixture(scope="module")
def reports():
    from _case_scripts import run_cases
    return run_cases(__file__, CASES + TRANSFORM_CASES, timeout=600)


@pytest.mark.parametrize("case", CASES)
def test_an_input_too_large_for_memory_is_a_memory_error_naming_the_layer(reports, case):
    report = reports[case]
    layer = case.split("-")[0]
    assert report["type"] == "LayerMemoryError", report  # (a MemoryError)
    # (and a RuntimeError, as torch's allocator raises for memory it cannot get)
    assert report["runtime_error"], report
    assert report["cause"] == "MemoryError", report  # (numpy's own, kept as the cause)
    assert report["message"].startswith(f"{LAYER_NAMES[layer]} ran out of memory on tensors "
                                        f"of shape "), report
    shape = f"({SIDE}, {SIDE})" if layer in ("scipy_conv2d", "fft_abs") else f"(1, 1, {SIDE}, {SIDE})"
    assert f"{shape} float32" in report["message"], report
    # (at once: before the fix each case scanned 2**48 elements, hours; here ~1 s)
    assert report["seconds"] < 60, report


@pytest.mark.parametrize("case", TRANSFORM_CASES)
def test_under_a_transform_the_layer_is_named_once(reports, case):
    report = reports[case]
    assert report["type"] == "LayerMemoryError", report  # (a MemoryError)
    assert report["message"].startswith(f"{LAYER_NAMES[case.split('-')[1]]} ran out of memory "
                                        f"on tensors of shape "), report
    assert report["message"].count("ran out of memory") == 1, report
    assert report["cause"] == "MemoryError", report
    assert report["cause_message"].startswith("Unable to allocate"), report  # (numpy's)
    assert report["seconds"] < 60, report



@pytest.mark.parametrize("case", [case for case in TRANSFORM_CASES if case.startswith("vmap-")])
def test_under_vmap_a_folded_shape_is_said_to_be_folded(reports, case):
    """The FFT layers and the batched conv fold vmap's dim into their batch, so the shape
    named is (2, ...), not the entry's the user passed: a note says so. The single-channel
    conv runs one call per entry and names the entry's own shape, without a note."""
    report = reports[case]
    if case == "vmap-scipy_conv2d":
        assert f"shape ({SIDE}, {SIDE}) float32" in report["message"], report
        assert report["notes"] == [], report
        return
    folded = f"(2, {SIDE}, {SIDE})" if "fft" in case else f"(2, 1, {SIDE}, {SIDE})"
    assert f"shape {folded} float32" in report["message"], report
    assert report["notes"] == ["(under torch.func.vmap: the first dim of those shapes is the "
                               "vmapped dim of 2 entries, folded into the layer's batch)"], report


def test_a_backward_that_runs_out_of_memory_names_its_layer():
    from scipy_layers._checks import LayerMemoryError
    from scipy_layers._numpy_bridge import numpy_gradients

    def compute(state, gradient):
        return (np.empty(2 ** 60, np.float32),)  # (numpy's real MemoryError)

    import torch
    gradient = torch.ones(2, 3)
    with pytest.raises(LayerMemoryError, match=r"^the backward of FFTAbsFunction \(fft_abs\) ran out "
                                          r"of memory on tensors of shape \(2, 3\) float32: "
                                          r"Unable to allocate") as error:
        numpy_gradients("FFTAbsFunction (fft_abs)", compute, None, gradient)
    assert isinstance(error.value.__cause__, MemoryError)


class _CupyOutOfMemory(MemoryError):
    """As CuPy's ``cupy.cuda.memory.OutOfMemoryError``: a MemoryError subclass of its own."""


@pytest.mark.parametrize("step", ["forward", "backward"])
@pytest.mark.parametrize("layer", ["scipy_conv2d", "fft_abs"])
def test_cupys_own_out_of_memory_error_passes_through_unchanged(monkeypatch, layer, step):
    """On the CuPy path (here the stand-in for CuPy) a layer runs out of GPU memory with
    CuPy's OutOfMemoryError, which callers catch by its type (to free CuPy's pool and
    retry): the layer raises it as it came, as native raises torch's own. It became a
    plain MemoryError about "numpy working arrays" (hostile pass 113)."""
    import torch

    from scipy_layers import fft_abs, gpu, scipy_conv2d
    from tests._fake_cupy import fake_cupy, install

    gpu.cupy_status.cache_clear()
    monkeypatch.setattr(gpu, "_no_gpu_path_warned", set())
    modules, _ = fake_cupy()
    install(monkeypatch, modules)
    raised = _CupyOutOfMemory("Out of memory allocating 1,099,511,627,776 bytes")

    def out_of_memory(*args, **kwargs):
        raise raised

    def run_out_of_memory():
        signal, cp = modules["cupyx.scipy.signal"], modules["cupy"]
        for name in ("correlate2d", "convolve2d", "correlate", "convolve"):
            monkeypatch.setattr(signal, name, out_of_memory)
        monkeypatch.setattr(cp, "fft", type(cp.fft)(rfft2=out_of_memory, irfft2=out_of_memory))

    x = torch.randn(8, 8, requires_grad=True)
    call = ((lambda: scipy_conv2d(x, torch.randn(3, 3), method="cupy")) if layer == "scipy_conv2d"
            else (lambda: fft_abs(x)))
    try:
        if step == "forward":
            run_out_of_memory()
            with pytest.raises(_CupyOutOfMemory) as error:
                call()
        else:
            out = call()
            run_out_of_memory()
            with pytest.raises(_CupyOutOfMemory) as error:
                out.sum().backward()
        assert error.value is raised
    finally:
        gpu.cupy_status.cache_clear()


if __name__ == "__main__":
    for name in sys.argv[1:]:
        print(json.dumps(_report(name)), flush=True)


@pytest.mark.parametrize("layer", ["scipy_conv2d", "conv2d", "fft_abs"])
def test_a_users_hook_that_raises_memory_error_is_not_the_layers(layer):
    """A saved_tensors_hooks pack hook runs inside the layer's call, as forward saves its
    tensors: a plain MemoryError it raises is the user's, and passes as they raised it
    (it read "ran out of memory ... give smaller or fewer images"). numpy's own
    allocation failures are still the layer's, named as before (the tests above)."""
    import torch
    from torch.autograd.graph import saved_tensors_hooks

    import scipy_layers as sl
    raised = MemoryError("the hook's own words")

    def pack(tensor):
        raise raised

    call = {"scipy_conv2d": lambda x: sl.scipy_conv2d(x, torch.ones(3, 3)),
            "conv2d": lambda x: sl.conv2d(x[None, None], torch.ones(1, 1, 3, 3)),
            "fft_abs": sl.fft_abs}[layer]
    with saved_tensors_hooks(pack, lambda packed: packed), pytest.raises(MemoryError) as error:
        call(torch.randn(8, 8, requires_grad=True))
    assert error.value is raised


def test_a_plain_memory_error_in_library_code_is_the_layers():
    """The rule behind the test above: a plain MemoryError whose innermost frame is in
    scipy_layers, numpy or scipy (pocketfft's, Python's own) is the layer's, one raised
    anywhere else is not."""
    import os

    import scipy
    import scipy_layers
    from scipy_layers._checks import LayerMemoryError, raise_out_of_memory

    def raised_in(filename):
        try:
            exec(compile("raise MemoryError('no room')", filename, "exec"), {})
        except MemoryError as error:
            return error

    for package in (scipy_layers, np, scipy):
        inside = raised_in(os.path.join(os.path.dirname(package.__file__), "anything.py"))
        with pytest.raises(LayerMemoryError, match="ran out of memory") as named:
            raise_out_of_memory("a layer", [], inside)
        assert named.value.__cause__ is inside
    outside = raised_in(os.path.join(os.path.dirname(scipy_layers.__file__) + "_hooks", "x.py"))
    with pytest.raises(MemoryError) as passed:
        raise_out_of_memory("a layer", [], outside)
    assert passed.value is outside
