"""What a layer keeps for its backward beside autograd's saved tensors (numpy views of its
inputs, the FFT methods' spectra) goes when autograd frees those saved tensors, as
native's do: after a backward without retain_graph, not only when the graph dies.
Before hostile pass 155 it went with the graph, so a training loop that kept each
step's loss without ``.item()`` (logging it) held every step's input and spectra: per
step, 8x16x256x256 float32 inputs, 32 MiB for im2col, 420 MiB for the batched conv's
fft, 32 MiB for ``fft_abs``'s spectrum, 288 MiB for ``scipy_conv2d``'s fft (native: 0).

The input is an intermediate activation whose storage is a numpy array the test holds
a weak reference to: it dies exactly when nothing holds the input's data any more."""
from __future__ import annotations

import gc
import threading
import weakref

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import scipy_layers
from scipy_layers import _workspace
from scipy_layers._fft_conv import FFTState
from scipy_layers import fft as fft_module
from tests._two_backwards import hold_thread_a_in

REAL_POOLED_MIN_BYTES = 1 << 18  # (conftest pools every array; the holder is for large ones)


@pytest.fixture(autouse=True)
def real_threshold(monkeypatch):
    monkeypatch.setattr(_workspace, "POOLED_MIN_BYTES", REAL_POOLED_MIN_BYTES)


class _Activation(torch.autograd.Function):
    """``scale * array`` as a graph's intermediate, its storage ``array`` itself."""

    @staticmethod
    def forward(ctx, scale, array):
        out = torch.from_numpy(array)
        out.mul_(scale)
        return out

    @staticmethod
    def backward(ctx, grad):
        return grad.sum(), None


WEIGHT = torch.randn(16, 16, 3, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
FILTER = torch.randn(5, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(4))

# (name, layer, native, input shape): inputs of 512 KiB, above the pool's threshold
CASES = [
    *[(f"conv2d-{method}-{kind}",
       lambda h, m=method, w=weight: scipy_layers.conv2d(h, w, padding=1, method=m),
       lambda h, w=weight: F.conv2d(h, w, padding=1), (2, 16, 32, 64))
      for method in ("im2col", "fft", "shift")
      for kind, weight in (("frozen", WEIGHT), ("trained", WEIGHT.clone().requires_grad_()))],
    *[(f"scipy_conv2d-{method}",
       lambda h, m=method: scipy_layers.scipy_conv2d(h, FILTER, method=m),
       lambda h: scipy_layers.native_conv2d(h, FILTER), (256, 256))
      for method in ("direct", "shift", "fft")],
]


def _step(layer, shape, seed=0, **backward):
    """One step of a loop that logs its loss without .item(): (loss, a's gradient, weak
    reference to the layer input's data)."""
    array = np.random.default_rng(seed).standard_normal(shape)
    data = weakref.ref(array)
    scale = torch.ones((), dtype=torch.float64, requires_grad=True)
    loss = layer(_Activation.apply(scale, array)).square().sum()
    del array
    loss.backward(**backward)
    gc.collect()
    return loss, scale.grad, data


@pytest.mark.parametrize("name, layer, native, shape", CASES, ids=[c[0] for c in CASES])
def test_a_kept_loss_holds_no_input_after_backward(name, layer, native, shape):
    native_loss, native_grad, native_data = _step(native, shape)
    assert native_data() is None  # native keeps nothing once backward freed its saved tensors
    loss, grad, data = _step(layer, shape)
    assert data() is None, f"{name}: the loss kept holds the layer's input after backward"
    torch.testing.assert_close(loss, native_loss, rtol=1e-10, atol=0)
    torch.testing.assert_close(grad, native_grad, rtol=1e-9, atol=0)


@pytest.mark.parametrize("name, layer, native, shape", CASES, ids=[c[0] for c in CASES])
def test_retain_graph_keeps_it_until_the_last_backward(name, layer, native, shape):
    array = np.random.default_rng(1).standard_normal(shape)
    data = weakref.ref(array)
    scale = torch.ones((), dtype=torch.float64, requires_grad=True)
    loss = layer(_Activation.apply(scale, array)).square().sum()
    expected = torch.autograd.grad(native(_Activation.apply(scale, array.copy())).square().sum(),
                                   scale)
    del array
    for retain in (True, True, False):
        torch.testing.assert_close(torch.autograd.grad(loss, scale, retain_graph=retain),
                                   expected, rtol=1e-9, atol=0)
        gc.collect()
        assert (data() is None) == (not retain)


def _spectra_pending(shape):
    """Pool buffers waiting for an owner's death with fft_abs's spectrum's shape (complex:
    the magnitudes have that shape too)."""
    return [array for _, array in _workspace._pending.values()
            if array.shape == shape and array.dtype.kind == "c"]


@pytest.mark.parametrize("method", ["auto", "fft", "matrix"])
def test_fft_abs_gives_its_spectrum_back_after_backward_with_the_loss_kept(method):
    x = torch.randn(4, 128, 128, dtype=torch.float64, requires_grad=True)
    native_grad = torch.autograd.grad(scipy_layers.native_fft_abs(x).square().sum(), x)[0]
    losses = []
    for _ in range(3):
        loss = scipy_layers.fft_abs(x, method).square().sum()
        (grad,) = torch.autograd.grad(loss, x)
        losses.append(loss)  # logged without .item()
        torch.testing.assert_close(grad, native_grad, rtol=1e-9, atol=1e-9)
    del grad
    gc.collect()
    assert _spectra_pending((4, 128, 65)) == []  # (before: one spectrum a kept loss)


def test_fft_abs_keeps_its_spectrum_until_the_last_retained_backward():
    x = torch.randn(4, 128, 128, dtype=torch.float64, requires_grad=True)
    y = scipy_layers.fft_abs(x, "fft")
    expected = torch.autograd.grad(scipy_layers.native_fft_abs(x).square().sum(), x)[0]
    loss = y.square().sum()
    del y
    gc.collect()
    assert len(_spectra_pending((4, 128, 65))) == 1
    for retain in (True, False):
        torch.testing.assert_close(torch.autograd.grad(loss, x, retain_graph=retain)[0],
                                   expected, rtol=1e-9, atol=1e-9)
    gc.collect()
    assert _spectra_pending((4, 128, 65)) == []


def _take_every_pooled(shape, dtype) -> list:
    """Every array the pool holds of ``shape``, taken out and filled with NaN: a backward
    that still reads one of them (given back while in use) then returns NaN."""
    taken = []
    while _workspace._workspace.get((shape, np.dtype(dtype))):
        taken.append(_workspace.scratch(shape, dtype))
        taken[-1].fill(np.nan)
    return taken


def test_a_plain_backward_in_another_thread_leaves_the_spectrum_to_the_one_using_it(
        monkeypatch):
    """Thread A's backward is held while it forms its gradient spectrum over forward's
    spectrum (retain_graph); a plain backward of the same graph (B) runs to its end and
    autograd frees the saved tensors, which now gives forward's spectrum back to the
    pool: A holds it until it returns, so whatever the pool hands out meanwhile (here:
    every spare array of that shape, filled with NaN) is not what A works in."""
    x = torch.randn(2, 256, 128, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    g = torch.randn(2, 256, 65, dtype=torch.float64, generator=torch.Generator().manual_seed(6))
    leaf = x.clone().requires_grad_()
    alone = torch.autograd.grad(scipy_layers.fft_abs(leaf, "fft"), leaf, g)[0]
    y = scipy_layers.fft_abs(leaf, "fft")
    a_inside, resume = hold_thread_a_in(fft_module, "gradient_spectrum", monkeypatch)
    results = {}

    def thread_a():
        results["A"] = torch.autograd.grad(y, leaf, g, retain_graph=True)[0]

    thread = threading.Thread(target=thread_a, name="A")
    thread.start()
    try:
        assert a_inside.wait(30)
        results["B"] = torch.autograd.grad(y, leaf, g)[0]  # frees the saved tensors
        gc.collect()
        handed_out = _take_every_pooled((2, 256, 65), np.complex128)  # noqa: F841 (held)
    finally:
        resume.set()
        thread.join(60)
    assert torch.equal(results["B"], alone)
    assert torch.equal(results["A"], alone)


@pytest.mark.parametrize("method, filter_shape", [("fft", (5, 5)), ("auto", (200, 200))])
def test_scipy_conv2d_fft_under_the_line_frees_its_spectra_after_backward(method, filter_shape):
    """A float32 250x256 input is under 256 KiB, but fft's state holds complex128 spectra
    of it, ~2x its bytes each (auto picks fft for the 200x200 filter). Before hostile
    pass 157 the holder was judged by the input and filter alone, so a loss kept without
    .item() held ~1 MiB of spectra (and the input) a step; native none."""
    filter = torch.randn(*filter_shape, generator=torch.Generator().manual_seed(7))

    def layer(h):
        return scipy_layers.scipy_conv2d(h.float(), filter, method=method).double()

    def native(h):
        return scipy_layers.native_conv2d(h.float(), filter).double()

    array = np.random.default_rng(2).standard_normal((250, 256)).astype(np.float32)
    data = weakref.ref(array)
    scale = torch.ones((), dtype=torch.float32, requires_grad=True)
    y_in = _Activation.apply(scale, array)
    del array
    loss = layer(y_in).square().sum()
    node = loss.grad_fn
    while not hasattr(node, "forward_state"):
        node = node.next_functions[0][0]
    state = node.forward_state
    assert isinstance(state.value[1][-1], FFTState)
    del y_in, node
    (grad,) = torch.autograd.grad(loss, scale)
    gc.collect()
    assert state.value is None and data() is None, "the kept loss holds fft's spectra"
    expected = np.random.default_rng(2).standard_normal((250, 256)).astype(np.float32)
    native_scale = torch.ones((), dtype=torch.float32, requires_grad=True)
    native_loss = native(_Activation.apply(native_scale, expected)).square().sum()
    torch.testing.assert_close(loss, native_loss, rtol=1e-4, atol=0)
    torch.testing.assert_close(grad, torch.autograd.grad(native_loss, native_scale)[0],
                               rtol=1e-4, atol=0)


def test_a_state_dropped_meanwhile_is_not_put_back_for_a_third_backward(monkeypatch):
    """Three backwards of one fft_abs graph in three threads: A (create_graph, so it puts
    forward's spectrum back when done) is held inside with the state taken; C has read
    the saved tensors and is held before it reads the state; B, a plain backward, runs
    to its end and frees the saved tensors, which drops the state. A then put the
    spectrum back into the dropped state while its keeper gave it to the pool, and C
    took it from there as forward's spectrum: a pooled buffer, handed out and
    overwritten meanwhile (here NaN), gave C a NaN gradient (before hostile pass 157)."""
    x = torch.randn(2, 256, 128, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    g = torch.randn(2, 256, 65, dtype=torch.float64, generator=torch.Generator().manual_seed(6))
    leaf = x.clone().requires_grad_()
    alone = torch.autograd.grad(scipy_layers.fft_abs(leaf, "fft"), leaf, g)[0]
    y = scipy_layers.fft_abs(leaf, "fft")
    real = y.grad_fn.forward_state
    c_inside, c_resume = threading.Event(), threading.Event()

    class HoldC:  # the state, with C held as it reads the keeper
        @property
        def keeper(self):
            if threading.current_thread().name == "C":
                c_inside.set()
                c_resume.wait(30)
            return real.keeper

        def __getattr__(self, name):
            return getattr(real, name)

    y.grad_fn.forward_state = HoldC()
    a_inside, a_resume = hold_thread_a_in(fft_module, "gradient_spectrum", monkeypatch)
    results = {}

    def thread_a():
        results["A"] = torch.autograd.grad(y, leaf, g, create_graph=True)[0].detach()

    def thread_c():
        results["C"] = torch.autograd.grad(y, leaf, g, retain_graph=True)[0]

    a = threading.Thread(target=thread_a, name="A")
    c = threading.Thread(target=thread_c, name="C")
    try:
        a.start()
        assert a_inside.wait(30)
        c.start()
        assert c_inside.wait(30)
        results["B"] = torch.autograd.grad(y, leaf, g)[0]  # frees the saved tensors
        gc.collect()
        a_resume.set()
        a.join(60)
        gc.collect()
        handed_out = _take_every_pooled((2, 256, 65), np.complex128)  # noqa: F841 (held)
    finally:
        a_resume.set()
        c_resume.set()
        a.join(60)
        c.join(60)
    for name in "ABC":
        assert torch.equal(results[name], alone), name
