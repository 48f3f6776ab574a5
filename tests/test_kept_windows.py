"""im2col's window matrix, kept from forward for grad_weight, counts against
_workspace.KEPT_LIMIT_BYTES over all live graphs; beyond it forward keeps nothing and
backward builds the windows again (native's gradients either way). (A hostile pass,
2026-12-04: three (32,64,56,56) -> 64 3x3 float32 graphs held 811 MiB against native's
129 MiB, and nothing bounded it in a deeper network.) Counts are read as differences:
other tests' graphs may be alive in this process (collected first: _start)."""
from __future__ import annotations

import gc
import threading

import pytest
import torch
import torch.nn.functional as F

import scipy_layers
from scipy_layers import _nchw_kernels, _workspace
from scipy_layers._nchw_args import check_conv2d_arguments


def _start() -> int:
    gc.collect()  # (graphs of earlier tests that only wait for the collector)
    return _workspace.kept_bytes()


def _inputs(seed=0, dtype=torch.float64, weight_grad=True):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(4, 6, 12, 12, dtype=dtype, generator=gen, requires_grad=True)
    w = torch.randn(8, 6, 3, 3, dtype=dtype, generator=gen, requires_grad=weight_grad)
    b = torch.randn(8, dtype=dtype, generator=gen, requires_grad=True)
    return x, w, b


def _grads(y, leaves, seed=1, **kwargs):
    g = torch.randn(y.shape, dtype=y.dtype, generator=torch.Generator().manual_seed(seed))
    return torch.autograd.grad(y, [t for t in leaves if t.requires_grad], g, **kwargs)


def test_windows_count_while_their_graph_lives():
    x, w, b = _inputs()
    start = _start()
    y = scipy_layers.conv2d(x, w, b, padding=1)
    held = _workspace.kept_bytes() - start
    geometry = check_conv2d_arguments(x, w, b, 1, 1, 1, 1)
    assert 0 < held <= _nchw_kernels.kept_windows_bytes(x.shape, w.shape, geometry, 8)
    _grads(y, (x, w, b))
    assert _workspace.kept_bytes() - start == held  # (the node lives while y does)
    del y
    gc.collect()
    assert _workspace.kept_bytes() == start


def test_nothing_counts_without_a_weight_gradient():
    x, w, b = _inputs(weight_grad=False)
    start = _start()
    y = scipy_layers.conv2d(x, w, b, padding=1)
    assert _workspace.kept_bytes() == start
    torch.testing.assert_close(_grads(y, (x, w, b)),
                               _grads(F.conv2d(x, w, b, padding=1), (x, w, b)),
                               rtol=1e-10, atol=1e-12)


def test_beyond_the_limit_backward_builds_the_windows_again(monkeypatch):
    x, w, b = _inputs()
    start = _start()
    one = scipy_layers.conv2d(x, w, b, padding=1)
    held = _workspace.kept_bytes() - start
    monkeypatch.setattr(_workspace, "KEPT_LIMIT_BYTES", start + held + held // 2)
    beyond = [scipy_layers.conv2d(x, w, b, padding=1) for _ in range(3)]
    assert _workspace.kept_bytes() - start == held  # none of the three was kept
    native = _grads(F.conv2d(x, w, b, padding=1), (x, w, b))
    for y in (one, *beyond):
        torch.testing.assert_close(_grads(y, (x, w, b), retain_graph=True), native,
                                   rtol=1e-10, atol=1e-12)
    del one, beyond, y
    gc.collect()
    assert _workspace.kept_bytes() == start


def test_a_failed_forward_gives_its_reservation_back(monkeypatch):
    def fail(*args):
        raise RuntimeError("planted")

    monkeypatch.setattr(_nchw_kernels, "im2col_forward", fail)
    x, w, b = _inputs()
    start = _start()
    with pytest.raises(RuntimeError, match="planted"):
        scipy_layers.conv2d(x, w, b, padding=1)
    assert _workspace.kept_bytes() == start


def test_graphs_made_and_freed_in_threads_leave_no_count():
    x, w, b = _inputs()
    expected = _grads(F.conv2d(x, w, b, padding=1), (x, w, b))
    start, errors = _start(), []

    def work():
        try:
            for _ in range(20):
                grads = _grads(scipy_layers.conv2d(x, w, b, padding=1), (x, w, b))
                torch.testing.assert_close(grads, expected, rtol=1e-10, atol=1e-12)
        except Exception as error:  # noqa: BLE001 (reported below)
            errors.append(error)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    gc.collect()
    assert not errors and _workspace.kept_bytes() == start
