"""A tensor moved into shared memory between a conv layer's forward and its backward:
``share_memory_()``, ``Module.share_memory()`` (Hogwild training), or a
``torch.multiprocessing`` queue, whose pickler moves the storage of a tensor it sends.
torch copies the values into shared memory and frees the old buffer under the same
tensor, so the numpy views of it that forward kept for backward point at freed memory.
Before hostile pass 144 backward read them: gradients NaN, 1e297 or 900 off native, or
a segfault where the buffer was unmapped. Backward now recomputes from the tensors
autograd hands it, as it does when they are not the ones forward ran on.

Run as a script (``python tests/test_shared_memory.py CASE...``) it prints one JSON line
per case; the tests run it in a subprocess (tests/_case_scripts.py), so a crash ends that
process, not the test run."""
from __future__ import annotations

import json
import sys

import pytest

METHODS = {"conv2d": ("auto", "im2col", "fft", "shift"),
           "scipy_conv2d": ("auto", "direct", "shift", "fft")}
CASES = [f"{layer}-{method}-{moved}" for layer, methods in METHODS.items()
         for method in methods for moved in ("input", "weight")]
# the implicit moves: a module's share_memory(), what a queue's put() does; and a weight
# moved inside torch.func.grad (whose wrappers hold no storage of their own)
OTHER_CASES = ["Conv2d-auto-module", "ScipyConv2d-auto-module", "conv2d-shift-queue",
               "scipy_conv2d-direct-queue", "conv2d-im2col-func", "scipy_conv2d-direct-func"]


def _layers(layer: str, method: str):
    """(ours, native, input, our parameters, native's): float64, the input over glibc's
    mmap threshold (freed, it is unmapped: a read crashes)."""
    import torch
    import torch.nn.functional as F

    import scipy_layers as sl
    D = torch.float64
    if layer in ("conv2d", "scipy_conv2d"):
        x_shape, w_shape = {"conv2d": ((2, 32, 48, 48), (32, 32, 5, 5)),
                            "scipy_conv2d": ((400, 400), (9, 9))}[layer]
        w = torch.randn(w_shape, dtype=D, requires_grad=True)
        if layer == "conv2d":
            return (lambda x: sl.conv2d(x, w, padding=2, method=method),
                    lambda x: F.conv2d(x, w, padding=2), torch.randn(x_shape, dtype=D), [w], [w])
        return (lambda x: sl.scipy_conv2d(x, w, None, method), lambda x: sl.native_conv2d(x, w),
                torch.randn(x_shape, dtype=D), [w], [w])
    if layer == "Conv2d":
        ours = sl.Conv2d(32, 32, 5, padding=2, dtype=D, method=method)
        native = torch.nn.Conv2d(32, 32, 5, padding=2, dtype=D)
        x = torch.randn(2, 32, 48, 48, dtype=D)
    else:
        ours, native = sl.ScipyConv2d(9, 9, method=method).double(), sl.NativeConv2d(9, 9).double()
        x = torch.randn(400, 400, dtype=D)
    native.load_state_dict(ours.state_dict())
    return ours, native, x, list(ours.parameters()), list(native.parameters())


def _move(moved: str, x, parameters, module):
    import torch
    from multiprocessing.reduction import ForkingPickler

    import torch.multiprocessing  # noqa: F401 (registers its reductions with the pickler)
    if moved == "input":
        x.share_memory_()
    elif moved == "weight":
        parameters[0].share_memory_()
    elif moved == "module":
        module.share_memory()
    else:
        ForkingPickler.dumps(x)  # (what torch.multiprocessing's Queue.put runs)
    # the freed buffers taken again (where glibc kept them) and written over
    return [torch.full_like(t, 7.0) for t in (x, *parameters)]


def _report(case: str) -> dict:
    import torch
    layer, method, moved = case.split("-")
    torch.manual_seed(0)
    ours, native, x0, parameters, native_parameters = _layers(layer, method)
    if moved == "func":
        return _report_under_grad(case, ours, native, x0, parameters[0])
    x = x0.clone().requires_grad_()
    y = ours(x)
    kept = y.grad_fn.forward_state.value is not None  # (what the move leaves dangling)
    junk = _move(moved, x, parameters, ours)
    g = torch.linspace(-1, 2, y.numel(), dtype=y.dtype).reshape(y.shape)
    got = torch.autograd.grad(y, [x, *parameters], g)
    del junk
    x_native = x0.clone().requires_grad_()
    expected = torch.autograd.grad(native(x_native), [x_native, *native_parameters], g)
    errors = [((a - b).abs().max() / b.abs().max()).item() for a, b in zip(got, expected)]
    return {"case": case, "kept": kept, "moved": x.is_shared() or parameters[0].is_shared(),
            "errors": errors}


def _report_under_grad(case: str, ours, native, x0, weight) -> dict:
    import torch
    from torch.func import grad
    weight = weight.detach()
    found = {}

    def loss(x):
        y = ours(x)
        found["kept"] = y.grad_fn.forward_state.value is not None
        weight.share_memory_()
        found["junk"] = torch.full_like(weight, 7.0)
        return (y * torch.linspace(-1, 2, y.numel(), dtype=y.dtype).reshape(y.shape)).sum()

    got = grad(loss)(x0.clone())
    y = native(x0)
    g = torch.linspace(-1, 2, y.numel(), dtype=y.dtype).reshape(y.shape)
    expected = grad(lambda x: (native(x) * g).sum())(x0.clone())
    return {"case": case, "kept": found["kept"], "moved": weight.is_shared(),
            "errors": [((got - expected).abs().max() / expected.abs().max()).item()]}


@pytest.fixture(scope="module")
def reports():
    from _case_scripts import run_cases
    return run_cases(__file__, CASES + OTHER_CASES, timeout=600)


@pytest.mark.parametrize("case", CASES + OTHER_CASES)
def test_a_tensor_moved_to_shared_memory_before_backward_gets_native_gradients(reports,
                                                                               case):
    report = reports[case]
    assert report["kept"] and report["moved"], report  # (the case reaches the defect)
    assert max(report["errors"]) < 1e-10, report


# What ``tensor.data = ...`` puts under the same tensor: new data (doubled), or a view
# that begins at the same address (the others)
NEW_DATA = {"doubled": lambda data: data * 2,
            "transpose": lambda data: data.transpose(2, 3),
            "expand": lambda data: data[:, :, :1].expand(data.shape),
            "as_strided": lambda data: data.as_strided(
                data.shape, (*data.stride()[:2], 1, data.stride(2)))}


@pytest.mark.parametrize("new_data", NEW_DATA)
@pytest.mark.parametrize("moved", ["input", "weight"])
@pytest.mark.parametrize("layer, method", [("conv2d", method) for method in METHODS["conv2d"]]
                         + [("Conv2d", "auto")])
def test_data_assigned_between_forward_and_backward_gives_native_gradients(layer, method,
                                                                           moved, new_data):
    """``tensor.data = other`` (old-style updates) puts new data under the same tensor,
    which autograd does not track; F.conv2d's backward reads the new data, and so, seeing
    the data moved or laid out anew, does the batched conv's. Before hostile pass 144 it
    used forward's (doubled: 1.76 off); before pass 146 it compared the data's address
    alone, so a view beginning at the same address (transpose, expand, as_strided) got
    forward's state (5-14 off). (The single-channel conv's twin saves views made in
    forward, input[None, None], which keep the old data: no one answer to match there.)"""
    import torch
    grads = []
    for native in (False, True):
        torch.manual_seed(0)
        ours, theirs, x0, parameters, native_parameters = _layers(layer, method)
        x, w = x0.clone().requires_grad_(), (native_parameters if native else parameters)[0]
        y = (theirs if native else ours)(x)
        moving = x if moved == "input" else w
        moving.data = NEW_DATA[new_data](moving.data)
        g = torch.linspace(-1, 2, y.numel(), dtype=y.dtype).reshape(y.shape)
        grads.append(torch.autograd.grad(y, [x, w], g))
    for got, expected in zip(*grads):
        torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-10)


def _fft_abs_data_assigned(method: str, path: str, native: bool):
    """fft_abs (or its twin) of x, x given new data (x.data = ...) after forward, and the
    gradient through a backward that must recompute forward's spectrum: under saved-tensor
    hooks (forward kept none), or a retained graph's second backward (the first took it)."""
    import torch

    import scipy_layers as sl
    x = torch.randn(2, 12, 10, dtype=torch.float64, requires_grad=True)
    layer = sl.native_fft_abs if native else (lambda t: sl.fft_abs(t, method))
    if path == "hooks":
        with torch.autograd.graph.saved_tensors_hooks(lambda t: t, lambda t: t):
            y = layer(x)
    else:
        y = layer(x)
    g = torch.linspace(-1, 2, y.numel(), dtype=y.dtype).reshape(y.shape)
    if path == "retained":
        torch.autograd.grad(y, x, g, retain_graph=True)
    new = torch.randn(x.shape, dtype=x.dtype, generator=torch.Generator().manual_seed(1))
    x.data = new
    return torch.autograd.grad(y, x, g)[0], new, g


@pytest.mark.parametrize("path", ["hooks", "retained"])
@pytest.mark.parametrize("method", ["auto", "fft", "matrix"])
def test_fft_abs_recomputing_after_new_data_gives_the_new_datas_gradient(method, path):
    """fft_abs saves its input and output, and a backward that has no spectrum of
    forward's recomputes it from the input autograd hands back, which ``x.data = ...``
    may have replaced. Native's abs saves the spectrum and keeps forward's gradient; no
    numpy layer holds that spectrum there (hooks, by design; a retained graph's first
    backward wrote over it). Before hostile pass 153 backward took the new data's
    spectrum with forward's |Z|, the gradient of neither (26-196 off here); now the
    gradient at the new data, as the batched conv gives under F.conv2d's rule."""
    import torch

    import scipy_layers as sl
    got, new, g = _fft_abs_data_assigned(method, path, native=False)
    at_new = new.clone().requires_grad_()
    expected = torch.autograd.grad(sl.native_fft_abs(at_new), at_new, g)[0]
    torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-10)
    old_gradient = _fft_abs_data_assigned(method, path, native=True)[0]
    assert (old_gradient - expected).abs().max() > 1  # (the case tells the two apart)


if __name__ == "__main__":
    for name in sys.argv[1:]:
        print(json.dumps(_report(name)), flush=True)
