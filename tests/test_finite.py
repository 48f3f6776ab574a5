"""all_finite, the check that routes non-finite operands to the tap kernels: exact on
every layout and value range (its fast path only decides how fast the answer comes)."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

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


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("planted", ["none", "nan", "inf", "-inf", *VALUES])
def test_all_finite_is_exact(dtype, layout, planted):
    rng = np.random.default_rng(0)
    for position in itertools.product((0, 3, 7), (0, 4, 10)):
        base = rng.standard_normal((8, 11)).astype(dtype)
        if planted in VALUES:
            base[position] = _value(planted, dtype)
        elif planted != "none":
            base[position] = float(planted)
        array = LAYOUTS[layout](base)
        expected = bool(np.isfinite(array).all())
        assert all_finite(array) is expected
        assert all_finite(None, np.ones(3, dtype), array) is expected
        assert all_finite(array, np.empty((0, 4), dtype)) is expected


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_all_finite_when_every_square_overflows(dtype):
    """Every element finite and huge, of both signs: the fast path overflows, the exact
    check answers True; one inf among them is still found."""
    array = np.full((50, 50), np.finfo(dtype).max, dtype)
    array[::2] *= -1
    assert all_finite(array) and all_finite(array.T) and all_finite(array[::3])
    array[7, 9] = np.inf
    assert not all_finite(array) and not all_finite(array.T)


def test_all_finite_of_nothing():
    assert all_finite() and all_finite(None) and all_finite(np.empty((0,)))
