"""Numerical gradient checks (float64) with every input checked."""
import pytest
import torch
from torch.autograd import gradcheck

from scipy_layers import LAYERS, ScipyConv2d, fft_abs, scipy_conv2d

CONV_SHAPES = [  # (input, filter): odd, prime, 1xN, Nx1, 1x1 kernel, kernel == input, non-square
    ((10, 10), (3, 3)),
    ((7, 13), (3, 5)),
    ((11, 17), (2, 7)),
    ((1, 9), (1, 4)),
    ((9, 1), (4, 1)),
    ((6, 5), (1, 1)),
    ((5, 4), (5, 4)),
    ((13, 8), (6, 3)),
]
FFT_SHAPES = [(8, 8), (7, 9), (5, 6), (1, 1), (1, 7), (7, 1), (2, 2), (13, 11), (3, 4, 5), (2, 3, 6, 7)]


@pytest.mark.parametrize("size,kernel", CONV_SHAPES)
def test_conv_gradcheck_input_filter_and_bias(size, kernel):
    inputs = LAYERS["conv2d"].make_inputs(size, kernel, dtype=torch.float64)
    assert all(t.requires_grad for t in inputs)
    assert gradcheck(scipy_conv2d, inputs, eps=1e-6, atol=1e-8, rtol=1e-6)


def test_conv_gradcheck_without_bias():
    x, w, _ = LAYERS["conv2d"].make_inputs((9, 8), (3, 2), dtype=torch.float64)
    assert gradcheck(lambda a, b: scipy_conv2d(a, b), (x, w))


def test_tutorial_module_gradcheck_on_all_three():
    module = ScipyConv2d(3, 3).double()
    x = torch.randn(20, 20, dtype=torch.float64, requires_grad=True)
    assert gradcheck(lambda inp, f, b: torch.func.functional_call(
        module, {"filter": f, "bias": b}, (inp,)), (x, module.filter, module.bias))


@pytest.mark.parametrize("method", ["auto", "fft", "matrix"])
@pytest.mark.parametrize("shape", FFT_SHAPES)
def test_fft_abs_gradcheck(shape, method):
    (x,) = LAYERS["fft_abs"].make_inputs(shape, dtype=torch.float64)
    assert gradcheck(lambda t: fft_abs(t, method), (x,), eps=1e-6, atol=1e-8, rtol=1e-6)


@pytest.mark.parametrize("method", ["auto", "fft"])  # "matrix": tests/test_fft_methods.py
def test_fft_abs_gradient_defined_where_spectrum_vanishes(method):
    # A constant image has |rfft2| = 0 at every bin but DC: the gradient must be finite
    # and equal torch's (sgn(0) = 0).
    x = torch.ones(4, 6, dtype=torch.float64, requires_grad=True)
    x_native = x.detach().clone().requires_grad_(True)
    g = torch.randn(4, 4, dtype=torch.float64)
    fft_abs(x, method).backward(g)
    torch.fft.rfft2(x_native).abs().backward(g)
    assert torch.isfinite(x.grad).all()
    torch.testing.assert_close(x.grad, x_native.grad, rtol=1e-12, atol=1e-12)
