"""numpy_quiet, the error state every numpy body of a layer runs under: what
np.errstate(all="ignore") gives (every error ignored inside, the caller's buffer size
and error callback kept, the caller's state back after), whichever state the caller
is in, in threads, and when numpy's internals are not what it knows."""
from __future__ import annotations

import threading
import warnings

import numpy as np
import pytest
import torch

from scipy_layers import _numpy_quiet
from scipy_layers._numpy_quiet import numpy_quiet


def _overflow():
    return np.multiply(np.array([1e308]), 10.0), np.divide(np.ones(1), np.zeros(1))


@numpy_quiet
def _state_inside(fail=False):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _overflow()  # (raises under "raise", warns as an error under "warn")
    if fail:
        raise KeyError("from inside")
    return np.geterr(), np.getbufsize(), np.geterrcall()


def test_the_private_decorator_is_in_use_here():
    """On the pinned numpy the cheaper decorator passes its probe."""
    assert numpy_quiet is _numpy_quiet._quiet


@pytest.mark.parametrize("outer", [{}, {"all": "raise"}, {"over": "warn", "divide": "call"}])
def test_inside_every_error_is_ignored_and_the_callers_state_comes_back(outer):
    def callback(kind, flag):
        raise AssertionError("the callback ran")

    previous_size, previous_call = np.getbufsize(), np.seterrcall(callback)
    try:
        for size in (8192, 4096, 8192):  # (the kept state follows the caller's each time)
            np.setbufsize(size)
            with np.errstate(**outer):
                before = np.geterr()
                errors, inside_size, inside_call = _state_inside()
                assert set(errors.values()) == {"ignore"}
                assert inside_size == size and inside_call is callback
                assert np.geterr() == before
                with pytest.raises(KeyError):
                    _state_inside(fail=True)
                assert np.geterr() == before and np.getbufsize() == size
    finally:
        np.setbufsize(previous_size)
        np.seterrcall(previous_call)


def test_threads_keep_their_own_buffer_sizes():
    seen, barrier = {}, threading.Barrier(2)

    def run(size):
        np.setbufsize(size)
        for _ in range(200):
            barrier.wait() if _ == 0 else None
            _, inside_size, _ = _state_inside()
            seen.setdefault(size, set()).add(inside_size)

    threads = [threading.Thread(target=run, args=(size,)) for size in (4096, 16384)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert seen == {4096: {4096}, 16384: {16384}}


def test_without_numpys_internals_numpys_own_decorator_runs(monkeypatch):
    """A numpy whose private error-state names differ: the probe refuses the cheaper
    decorator, and np.errstate's takes over (the layers still stay quiet)."""
    monkeypatch.setattr(_numpy_quiet, "_make_error_state",
                        lambda **kwargs: np.errstate(all="raise"))
    assert not _numpy_quiet._quiet_works()


def test_the_probe_refuses_a_state_that_loses_the_callers_buffer_size(monkeypatch):
    """Every error ignored is not enough: a made state with its own buffer size (numpy's
    private maker reading other arguments) is refused too."""
    make = _numpy_quiet._make_error_state
    monkeypatch.setattr(_numpy_quiet, "_make_error_state",
                        lambda **kwargs: make(bufsize=2 * np.getbufsize(), **kwargs))
    assert not _numpy_quiet._quiet_works()
    monkeypatch.setattr(_numpy_quiet, "_make_error_state", make)
    assert _numpy_quiet._quiet_works()


def test_a_layer_on_overflowing_inputs_warns_nothing():
    from scipy_layers import fft_abs, scipy_conv2d
    x = torch.full((6, 6), 1e308, dtype=torch.float64, requires_grad=True)
    w = torch.full((2, 2), 1e308, dtype=torch.float64, requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with np.errstate(all="raise"):
            y = scipy_conv2d(x, w)
            y.sum().backward()
            fft_abs(x).sum().backward()
            assert np.geterr()["over"] == "raise"
    assert torch.isinf(y).all()


def test_a_callers_error_callback_is_not_kept_alive():
    """Found by the hostile pass: the kept state held the caller's np.errstate(call=...)
    callback (and all it refers to) alive after the caller's block ended."""
    import gc
    import weakref

    class Callback:
        def __call__(self, kind, flag):
            pass

    callback = Callback()
    alive = weakref.ref(callback)
    with np.errstate(call=callback, all="call"):
        _state_inside()
    del callback
    gc.collect()
    assert alive() is None
