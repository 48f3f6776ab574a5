"""Inputs whose working arrays cannot fit in memory get a MemoryError naming the layer
and its tensors, and get it at once: an expanded input (stride 0) of 2**48 elements
holds one number, and before hostile pass 112 the layers summed or scanned all of them
(hours) before failing to allocate, or failed with numpy's words for an internal array.

Run as a script (``python tests/test_out_of_memory.py CASE...``) it prints one JSON line
per case; the tests run it in a subprocess (tests/_case_scripts.py), so an allocation
that the machine's overcommit lets through ends that process, not the test run."""
from __future__ import annotations

import functools
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
    # a layer call inside another's (its vmap rule calls the Function again): named once
    ("vmap.scipy_conv2d", ("auto",)), ("vmap.conv2d", ("auto",)), ("vmap.fft_abs", ("auto",)),
) for method in methods]
LAYER_NAMES = {"scipy_conv2d": "scipy_conv2d / ScipyConv2d",
               "conv2d": "scipy_layers.conv2d / Conv2d", "Conv2d": "scipy_layers.conv2d / Conv2d",
               "fft_abs": "fft_abs"}


def _call(case: str, image=None):
    import torch

    import scipy_layers as sl
    layer, method = case.split("-")
    if image is None:
        image = torch.zeros(1).expand(SIDE, SIDE)
    if layer.startswith("vmap."):
        call = functools.partial(_call, f"{layer.removeprefix('vmap.')}-{method}")
        return torch.func.vmap(lambda image: call(image=image))(image.expand(2, SIDE, SIDE))
    if layer == "scipy_conv2d":
        return sl.scipy_conv2d(image, torch.ones(3, 3), method=method)
    if layer == "conv2d":
        return sl.conv2d(image[None, None], torch.ones(1, 1, 3, 3), method=method)
    if layer == "Conv2d":
        return sl.Conv2d(1, 1, 3)(image[None, None])
    return sl.fft_abs(image, method=method)


def _report(case: str) -> dict:
    start = time.perf_counter()
    try:
        _call(case)
        error = None
    except Exception as caught:  # noqa: BLE001 (whatever it is, the test reads it)
        error = caught
    return {"case": case, "seconds": time.perf_counter() - start,
            "type": type(error).__name__, "message": str(error),
            "cause": type(error.__cause__).__name__ if error is not None else None}


@pytest.fixture(scope="module")
def reports():
    from _case_scripts import run_cases
    return run_cases(__file__, CASES, timeout=600)


@pytest.mark.parametrize("case", CASES)
def test_an_input_too_large_for_memory_is_a_memory_error_naming_the_layer(reports, case):
    report = reports[case]
    layer = case.split("-")[0].removeprefix("vmap.")
    assert report["type"] == "LayerMemoryError", report  # (a MemoryError)
    assert report["cause"] == "MemoryError", report  # (numpy's own, kept as the cause)
    assert report["message"].startswith(f"{LAYER_NAMES[layer]} ran out of memory on tensors "
                                        f"of shape "), report
    shape = f"({SIDE}, {SIDE})" if layer in ("scipy_conv2d", "fft_abs") else f"(1, 1, {SIDE}, {SIDE})"
    if case.startswith("vmap."):  # (what the layer got: conv2d and fft_abs fold the 2
        # entries into their batch; the single-channel conv runs once per entry)
        shape = {"conv2d": f"(2, 1, {SIDE}, {SIDE})", "fft_abs": f"(2, {SIDE}, {SIDE})"}.get(
            layer, shape)
    assert f"{shape} float32" in report["message"], report
    assert report["message"].count("ran out of memory") == 1, report
    # (at once: before the fix each case scanned 2**48 elements, hours; here ~1 s)
    assert report["seconds"] < 60, report


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


if __name__ == "__main__":
    for name in sys.argv[1:]:
        print(json.dumps(_report(name)), flush=True)
