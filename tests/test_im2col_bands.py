"""im2col in bands of output rows (scipy_layers/_im2col_bands.py): where the rule runs it,
that it gives native's results at the sizes it runs at (the sample-driven tests run it
on small inputs through tests/_im2col_variants.py), that forward keeps no windows, and
the band fill and adds against their definitions (_windows.fill_wide_band,
add_wide_band), out of bounds included (every input layout, in a subprocess: see
tests/test_windows.py)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from scipy_layers import _im2col_bands, _im2col_layout, _windows, conv2d
from scipy_layers._kept import kept_bytes
from scipy_layers.agreement import TOLERANCE, max_errors
from tests._call_counts import count_calls
from tests._im2col_variants import im2col_variant


@pytest.fixture
def band_calls(monkeypatch):
    """[forwards, backwards] run in bands."""
    return count_calls(monkeypatch, _im2col_bands, ("forward", "backward"))


def _agree(x, w, b, kwargs, grad_output=None):
    """The layer's output and gradients (x, w, b) within TOLERANCE of native's."""
    ours = conv2d(x, w, b, method="im2col", **kwargs)
    theirs = F.conv2d(x, w, b, **kwargs)
    g = torch.randn_like(theirs) if grad_output is None else grad_output
    inputs = [t for t in (x, w, b) if t is not None]
    pairs = [(ours, theirs), *zip(torch.autograd.grad(ours, inputs, g),
                                  torch.autograd.grad(theirs, inputs, g))]
    for index, (a, b_) in enumerate(pairs):
        errors = max_errors(a, b_)
        assert errors.max_rel <= TOLERANCE[x.dtype], (index, errors)


# (the window matrix an image: (C_in kH kW + 1) x Ho Wp; a band's columns: its rows x Wp)
@pytest.mark.parametrize("x_shape,c_out,kernel,kwargs,dtype,runs", [
    ((1, 3, 224, 224), 64, 7, {}, torch.float32, True),     # 28 MB an image, 1568 columns
    ((1, 3, 224, 224), 64, 7, {}, torch.float64, True),
    ((1, 64, 56, 56), 64, 3, {}, torch.float32, False),     # 7 MB: below float32's 8 MB
    ((1, 64, 56, 56), 64, 3, {}, torch.float64, True),      # 224 columns a band
    ((1, 128, 64, 64), 128, 3, {}, torch.float64, False),   # 64 columns: too few
    ((4, 3, 48, 48), 8, 3, {}, torch.float64, True),        # 494 KB an image
    ((4, 2, 20, 44), 4, 3, {}, torch.float64, False),       # 120 KB: below 128 KB
    ((1, 3, 224, 224), 64, 7, dict(groups=1, stride=2), torch.float32, False),  # narrow
    ((1, 4, 224, 224), 64, 7, dict(groups=2), torch.float32, False),
    ((1, 3, 224, 224), 148, 7, {}, torch.float64, False),   # more outputs than window rows
    ((1, 3, 64, 64), 8, 3, dict(padding=1), torch.float64, True),
])
def test_runs_where_the_rule_says(x_shape, c_out, kernel, kwargs, dtype, runs, band_calls):
    torch.manual_seed(0)
    x = torch.randn(x_shape, dtype=dtype, requires_grad=True)
    groups = kwargs.get("groups", 1)
    w = torch.randn(c_out, x_shape[1] // groups, kernel, kernel, dtype=dtype,
                    requires_grad=True)
    b = torch.randn(c_out, dtype=dtype, requires_grad=True)
    _agree(x, w, b, kwargs)
    assert band_calls == ([1, 1] if runs else [0, 0])


def test_forward_keeps_no_windows_and_backward_gives_each_gradient_alone(band_calls):
    torch.manual_seed(1)
    x = torch.randn(1, 3, 224, 224, requires_grad=True)
    w = torch.randn(64, 3, 7, 7, requires_grad=True)
    y = conv2d(x, w, method="im2col")
    assert kept_bytes() == 0  # (whole-image im2col would keep 28 MB of windows here)
    g = torch.randn_like(y)
    grad_x, = torch.autograd.grad(y, x, g, retain_graph=True)
    grad_w, = torch.autograd.grad(y, w, g)
    theirs = F.conv2d(x, w)
    for ours, native in zip((grad_x, grad_w), torch.autograd.grad(theirs, (x, w), g)):
        assert max_errors(ours, native).max_rel <= TOLERANCE[torch.float32]
    assert band_calls == [1, 2]


def test_grad_bias_of_a_long_image_in_float32():
    # One GEMM's float32 sum along a whole 8192^2 image erred 1.6e-4 (_im2col_layout.
    # BIAS_GRAD_MAX_LENGTH); bands sum each band in BLAS and the bands in float64.
    x = torch.randn(1, 1, 2048, 2048, requires_grad=True)
    w = torch.randn(4, 1, 3, 3, requires_grad=True)
    b = torch.zeros(4, requires_grad=True)
    y = conv2d(x, w, b, method="im2col")
    g = torch.ones_like(y) + 1e-3 * torch.rand_like(y)
    grad_b, = torch.autograd.grad(y, b, g)
    exact = g.double().sum(dim=(0, 2, 3))
    assert ((grad_b.double() - exact).abs() / exact).max() <= 1e-6


@pytest.mark.parametrize("limit", [10 ** 6, 5699, 5700])
def test_grad_bias_past_the_gemm_length_limit_is_the_sum_of_grad_output(limit, monkeypatch):
    # An image of more than BIAS_GRAD_MAX_LENGTH window columns (here 38 rows of 150) gets
    # no grad_bias from the bands' GEMMs, as whole-image im2col decides: the layer sums
    # grad_output as numpy does (hostile passes: a 1x1x1x33M input erred 7e-4 from the
    # GEMM's float32 sum along one row, 1x2x3x2^20 1.3e-5 in one-row bands).
    monkeypatch.setattr(_im2col_layout, "BIAS_GRAD_MAX_LENGTH", limit)
    x = torch.randn(2, 3, 40, 150, requires_grad=True)
    w = torch.randn(4, 3, 3, 3, requires_grad=True)
    b = torch.randn(4, requires_grad=True)
    g = torch.randn(2, 4, 38, 148) * torch.logspace(0, 6, 148)
    with im2col_variant("im2col-bands-two-rows") as method:
        y = conv2d(x, w, b, method=method)
        grad_w, grad_b = torch.autograd.grad(y, (w, b), g)
    summed = torch.from_numpy(g.numpy().sum(axis=(0, 2, 3)))
    assert torch.equal(grad_b, summed) == (limit < 5700)
    assert max_errors(grad_b, g.double().sum(dim=(0, 2, 3))).max_rel <= 1e-6


@pytest.mark.parametrize("variant", ["im2col-bands-one-row", "im2col-bands-two-rows"])
@pytest.mark.parametrize("where", ["input", "grad_output"])
def test_non_finite_operands_land_where_native_puts_them(variant, where):
    torch.manual_seed(2)
    x = torch.randn(2, 3, 17, 46, dtype=torch.float64, requires_grad=True)
    w = torch.randn(4, 3, 3, 3, dtype=torch.float64, requires_grad=True)
    g = torch.randn(2, 4, 15, 44, dtype=torch.float64)
    with torch.no_grad():
        (x if where == "input" else g)[1, 0, 5, 7] = float("inf")
        (x if where == "input" else g)[0, 2, 9, 40] = float("nan")
    with im2col_variant(variant):
        ours = conv2d(x, w, method="im2col")
        grads = torch.autograd.grad(ours, (x, w), g)
    theirs = F.conv2d(x, w)
    for a, b in [(ours, theirs), *zip(grads, torch.autograd.grad(theirs, (x, w), g))]:
        assert torch.equal(a.isnan(), b.isnan()) and torch.equal(a.isinf(), b.isinf())
        finite = b.isfinite()
        assert torch.allclose(a[finite], b[finite], rtol=1e-10, atol=1e-10)


def _band_positions(kernel, dilation, wp, offset, length):
    starts = np.array([[offset + i * dilation[0] * wp + j * dilation[1]
                        for j in range(kernel[1])] for i in range(kernel[0])])
    return starts[..., None] + np.arange(length)  # (kH, kW, L) positions in an image


@pytest.mark.parametrize("kernel", [(1, 1), (3, 1), (1, 3), (3, 3), (2, 7)])
@pytest.mark.parametrize("dilation", [(1, 1), (2, 3)])
@pytest.mark.parametrize("band", [(0, 2), (3, 1), (4, 3)])  # (first output row, rows)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_band_fill_and_adds_are_their_definitions(kernel, dilation, band, dtype):
    c, hp, wp = 3, 13, 15
    reach_h, reach_w = (d * (k - 1) + 1 for d, k in zip(dilation, kernel))
    out_h = hp - reach_h + 1
    start, rows = band[0], min(band[1], out_h - band[0])
    length, offset = rows * wp, band[0] * wp
    flat = np.random.default_rng(3).standard_normal((1, c, hp * wp + reach_w - 1)).astype(dtype)
    cols = np.full((c * kernel[0] * kernel[1] + 1, length), np.nan, dtype)  # (+ a row left)
    _windows.fill_wide_band(cols[:-1], flat, kernel, dilation, wp, offset)
    index = _band_positions(kernel, dilation, wp, offset, length)
    assert np.array_equal(cols[:-1].reshape(c, *kernel, length), flat[0][:, index])
    assert np.isnan(cols[-1]).all()
    # the adds: each window row's gradient into its stretch, cut at the image's end
    taps = np.random.default_rng(4).standard_normal((c, *kernel, length)).astype(dtype)
    grad = np.zeros((c, hp * wp), dtype)
    _windows.add_wide_band(grad, taps, wp, dilation, offset)
    expected = np.zeros((c, hp * wp + reach_w - 1), np.float64)
    for i in range(kernel[0]):
        for j in range(kernel[1]):
            np.add.at(expected, (slice(None), index[i, j]), taps[:, i, j])
    assert (expected[:, hp * wp:] == 0).all() or start + rows == out_h
    np.testing.assert_allclose(grad, expected[:, :hp * wp], rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("kernel", [(1, 3), (3, 3)])  # per-tap copies, one view
def test_a_band_past_the_image_raises(kernel):
    flat = np.zeros((1, 2, 10 * 12 + 2))
    cols = np.empty((2 * kernel[0] * kernel[1], 2 * 12))
    last_row = 10 - kernel[0]  # (of the 11 - kH output rows)
    with pytest.raises(AssertionError, match="run past the"):  # two rows from the last
        _windows.fill_wide_band(cols, flat, kernel, (1, 1), 12, last_row * 12)
    _windows.fill_wide_band(cols[:, :12], flat, kernel, (1, 1), 12, last_row * 12)  # one
    with pytest.raises(AssertionError, match="offset >= 0"):
        _windows._wide_windows(flat, (3, 3), (1, 1), 12, 12, -1)
