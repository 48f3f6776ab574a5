"""The scratch pool's own bookkeeping over a long run (hostile pass 155): its byte count
is what its lists hold, whatever lands in between (a KeyboardInterrupt from a signal
handler), it keeps no entry per shape it once saw, and a limit that is no number of
bytes (NaN) keeps nothing rather than everything."""
from __future__ import annotations

import gc

import numpy as np
import pytest
import torch

import scipy_layers
from scipy_layers import _kept, _workspace
from tests._interrupts import SignalPoints

MIB = 1 << 20


@pytest.fixture(autouse=True)
def empty_pool():
    _workspace.clear_workspace()
    yield
    _workspace.clear_workspace()


def _held() -> int:
    return sum(array.nbytes for free in _workspace._workspace.values() for array in free)


def test_an_interrupt_anywhere_in_scratch_or_recycle_leaves_the_count_right():
    """KeyboardInterrupt at every signal point of scratch() and recycle(), each on a
    fresh pool: afterwards the count is what the pool holds, and no key holds an empty
    list. (Before: one after recycle's append() and before its count left an array in
    the pool uncounted, and the pool then held that much more than WORKSPACE_LIMIT_BYTES,
    for good; one after scratch's pop() of a key's last array left the key behind.)"""
    interrupts = SignalPoints({"scratch": _workspace.scratch, "recycle": _workspace.recycle})

    def work():
        arrays = [_workspace.scratch((64, 1024), np.float64) for _ in range(3)]
        _workspace.recycle(*arrays)
        again = _workspace.scratch((64, 1024), np.float64)
        _workspace.recycle(again)
        arrays = [_workspace.scratch((64, 1024), np.float64) for _ in range(3)]  # (empties
        _workspace.recycle(*arrays)                                              # the key)

    def run(target):
        _workspace.clear_workspace()
        return interrupts.run(work, target)

    run(0)
    total = interrupts.passed
    assert total > 20 and _held() == _workspace._workspace_bytes == 3 * 64 * 1024 * 8
    wrong = []
    for target in range(1, total + 1):
        assert run(target) is not None
        assert not _workspace._workspace_lock._is_owned()
        if _held() != _workspace._workspace_bytes:
            wrong.append((target, _held() - _workspace._workspace_bytes))
        if not all(_workspace._workspace.values()):  # (an empty key left behind)
            wrong.append((target, "empty key"))
    assert not wrong


def test_shapes_that_change_every_call_leave_no_entries_behind():
    """One key per shape the pool holds an array of, none for shapes taken back out or
    refused: before, 2,000 conv2d calls of random shapes left ~2,900 empty lists (~220
    bytes each, growing without bound)."""
    for n in range(1, 200):
        array = _workspace.scratch((n, 64, 64), np.float32)
        _workspace.recycle(array)
        assert _workspace.scratch((n, 64, 64), np.float32) is array  # (taken again)
    assert _workspace._workspace == {}
    previous = _workspace.WORKSPACE_LIMIT_BYTES
    try:
        _workspace.WORKSPACE_LIMIT_BYTES = 0  # every array refused
        for n in range(1, 50):
            _workspace.recycle(_workspace.scratch((n, 64, 64), np.float32))
    finally:
        _workspace.WORKSPACE_LIMIT_BYTES = previous
    assert _workspace._workspace == {}


def test_layers_of_ever_changing_shapes_leave_only_what_the_pool_holds():
    gen = torch.Generator().manual_seed(0)
    for size in range(40, 70):
        x = torch.randn(2, 4, size, size + 1, dtype=torch.float64, generator=gen,
                        requires_grad=True)
        w = torch.randn(8, 4, 3, 3, dtype=torch.float64, generator=gen, requires_grad=True)
        for method in ("im2col", "fft", "shift"):
            y = scipy_layers.conv2d(x, w, padding=1, method=method)
            torch.autograd.grad(y, (x, w), torch.ones_like(y))
        y = scipy_layers.fft_abs(x)
        torch.autograd.grad(y, x, torch.ones_like(y))
    del x, w, y
    gc.collect()
    assert all(_workspace._workspace.values())  # (no empty lists)
    assert _held() == _workspace._workspace_bytes <= _workspace.WORKSPACE_LIMIT_BYTES


def test_a_nan_limit_keeps_nothing(monkeypatch):
    """A limit compared as "over it" let a NaN pass every array and every window
    matrix: no limit at all. Now nothing is kept beyond it, as with a limit of 0."""
    monkeypatch.setattr(_workspace, "WORKSPACE_LIMIT_BYTES", float("nan"))
    arrays = [_workspace.scratch((64, 1024), np.float64) for _ in range(3)]
    _workspace.recycle(*arrays)
    assert _workspace._workspace_bytes == _held() == 0
    monkeypatch.setattr(_kept, "KEPT_LIMIT_BYTES", float("nan"))
    count = _kept.KeptCount()
    assert not _kept.reserve_kept(count, 4 * MIB)
    x = torch.randn(4, 16, 32, 32, dtype=torch.float64, requires_grad=True)
    w = torch.randn(16, 16, 3, 3, dtype=torch.float64, requires_grad=True)
    gc.collect()
    start = _kept.kept_bytes()
    y = scipy_layers.conv2d(x, w, padding=1, method="im2col")
    assert _kept.kept_bytes() == start  # nothing kept: backward builds its windows again
    expected = torch.autograd.grad(torch.nn.functional.conv2d(x, w, padding=1), (x, w),
                                   torch.ones_like(y))
    torch.testing.assert_close(torch.autograd.grad(y, (x, w), torch.ones_like(y)), expected,
                               rtol=1e-10, atol=1e-10)
