"""all_finite, the check that routes non-finite operands to the tap kernels: exact on
every layout and value range (its fast path only decides how fast the answer comes)."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

from scipy_layers import _finite
from scipy_layers._finite import all_finite


@pytest.fixture(autouse=True)
def _quiet_numpy():
    """As its callers, the layers' numpy bodies, run it (an overflowing fast path warns)."""
    with np.errstate(all="ignore"):
        yield

LAYOUTS = {
    "C": lambda a: a,
    "Fortran": lambda a: a.T,
    "step-sliced": lambda a: a[::2, 1::3],
    "cropped": lambda a: a[1:-1, 2:],
    "zero-stride": lambda a: np.broadcast_to(a[:1], a.shape),
    "zero-stride columns": lambda a: np.broadcast_to(a[:, 4:5], a.shape),
    "zero-stride both": lambda a: np.broadcast_to(a[3:4, 4:5], a.shape),
    "zero-stride stepped": lambda a: np.broadcast_to(a[None, ::2, 1::3], (3, 4, 4)),
    "reversed": lambda a: a[::-1, ::-1],
    "1-D": lambda a: a.reshape(-1),
    "0-D": lambda a: a[3, 4, ...],
}
VALUES = {
    "normal": 1.0,
    "huge": None,  # the dtype's largest finite value: squares overflow, still finite
    "above sqrt(max)": None,
    "subnormal": None,
    "negative zero": -0.0,
}


def _value(name, dtype):
    info = np.finfo(dtype)
    return {"huge": info.max, "above sqrt(max)": np.sqrt(info.max) * 4,
            "subnormal": info.smallest_subnormal}.get(name, VALUES[name])


@pytest.mark.parametrize("stored_min_size", ["default", 0])
@pytest.mark.parametrize("blas", [True, False])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("planted", ["none", "nan", "inf", "-inf", *VALUES])
def test_all_finite_is_exact(dtype, layout, planted, blas, stored_min_size, monkeypatch):
    if stored_min_size != "default":  # (an expanded view's repeats skipped at any size)
        monkeypatch.setattr(_finite, "STORED_MIN_SIZE", stored_min_size)
    rng = np.random.default_rng(0)
    for position in itertools.product((0, 3, 7), (0, 4, 10)):
        base = rng.standard_normal((8, 11)).astype(dtype)
        if planted in VALUES:
            base[position] = _value(planted, dtype)
        elif planted != "none":
            base[position] = float(planted)
        array = LAYOUTS[layout](base)
        expected = bool(np.isfinite(array).all())
        assert all_finite(array, blas=blas) is expected
        assert all_finite(None, np.ones(3, dtype), array, blas=blas) is expected
        assert all_finite(array, np.empty((0, 4), dtype), blas=blas) is expected


@pytest.mark.parametrize("blas", [True, False])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_all_finite_when_every_square_overflows(dtype, blas):
    """Every element finite and huge, of both signs (rows alternate, so a plain sum
    overflows too, in either order): the fast path overflows, the exact check answers
    True; one inf among them is still found."""
    array = np.full((50, 50), np.finfo(dtype).max, dtype)
    array[::2] *= -1
    array[:, :26] = np.finfo(dtype).max  # (a block of one sign: the sums overflow)
    for view in (array, array.T, array[::3]):
        assert all_finite(view, blas=blas)
    array[7, 9] = np.inf
    assert not all_finite(array, blas=blas) and not all_finite(array.T, blas=blas)


def test_all_finite_of_nothing():
    assert all_finite() and all_finite(None) and all_finite(np.empty((0,)))


@pytest.mark.parametrize("method, size, blas_calls", [("direct", 16, False),
                                                      ("shift", 64, True)])
def test_checks_use_blas_only_where_the_kernels_do(monkeypatch, method, size, blas_calls):
    """The single-channel layer's "direct" method (scipy.signal's loops) checks its
    operands without BLAS (all_finite(blas=False)): a 16x16 call that touches BLAS only
    there runs ~4 us slower (docs/performance.md); "shift" multiplies on BLAS anyway and
    keeps the dot."""
    import torch

    from scipy_layers import scipy_conv2d
    calls = []
    dot = np.dot
    monkeypatch.setattr(np, "dot", lambda *args, **kwargs: calls.append(1) or dot(*args, **kwargs))
    x = torch.randn(size, size, dtype=torch.float64, requires_grad=True)
    w = torch.randn(3, 3, dtype=torch.float64, requires_grad=True)
    y = scipy_conv2d(x, w, method=method)
    y.backward(torch.ones_like(y))
    assert bool(calls) is blas_calls
    x.grad = None
    with torch.no_grad():
        x[2, 3] = float("nan")  # the plain sum still finds it: the tap kernels run
    y = scipy_conv2d(x, w, method=method)
    y.backward(torch.ones_like(y))
    expected = torch.nn.functional.conv2d(x[None, None], w[None, None])[0, 0]
    torch.testing.assert_close(y, expected, equal_nan=True)
    assert torch.isnan(x.grad).sum() == 0  # grad_input of an all-ones gradient: finite


@pytest.mark.parametrize("stride", [(2, 1), (1, 3), (3, 2)], ids=str)
def test_non_finite_operands_with_unequal_strides_land_where_native_puts_them(stride):
    """The tap kernels (non-finite operands) step each axis by its own stride: output
    and gradients against native F.conv2d, NaN and inf where native has them."""
    import torch
    import torch.nn.functional as F
    from scipy_layers import conv2d
    gen = torch.Generator().manual_seed(5)
    x = torch.randn(2, 3, 11, 13, dtype=torch.float64, generator=gen)
    x[0, 1, 4, 7] = float("inf")
    x[1, 2, 9, 2] = float("nan")
    x.requires_grad_()
    w = torch.randn(4, 3, 3, 2, dtype=torch.float64, generator=gen, requires_grad=True)
    kwargs = dict(stride=stride, padding=(1, 2))
    y, expected = conv2d(x, w, **kwargs), F.conv2d(x, w, **kwargs)
    torch.testing.assert_close(y, expected, equal_nan=True)
    g = torch.randn(y.shape, dtype=torch.float64, generator=gen)
    for got, want in zip(torch.autograd.grad(y, (x, w), g),
                         torch.autograd.grad(expected, (x, w), g)):
        torch.testing.assert_close(got, want, equal_nan=True)
