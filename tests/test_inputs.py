"""Inputs the layers must take: non-contiguous, partial requires_grad, no grad, CUDA."""
import itertools
import re

import numpy as np
import pytest
import torch

from scipy_layers import LAYERS, fft_abs, incorrect_fft, native_conv2d, scipy_conv2d
from scipy_layers.agreement import max_errors


def conv_inputs(requires_grad=True):
    return LAYERS["conv2d"].make_inputs((12, 10), (3, 4), dtype=torch.float64,
                                        requires_grad=requires_grad)


def test_non_contiguous_inputs_give_the_same_result():
    x, w, b = conv_inputs(requires_grad=False)
    x_t = x.t().contiguous().t()  # same values, transposed strides
    w_t = w.t().contiguous().t()
    assert not x_t.is_contiguous() and not w_t.is_contiguous()
    torch.testing.assert_close(scipy_conv2d(x_t, w_t, b), native_conv2d(x, w, b))
    strided = torch.randn(20, 18, dtype=torch.float64)[::2, ::2]
    torch.testing.assert_close(fft_abs(strided), torch.fft.rfft2(strided).abs())


@pytest.mark.parametrize("mask", list(itertools.product([False, True], repeat=3)))
def test_requires_grad_on_any_subset(mask):
    inputs = [t.detach().requires_grad_(m) for t, m in zip(conv_inputs(), mask)]
    native_inputs = [t.detach().clone().requires_grad_(m) for t, m in zip(inputs, mask)]
    out = scipy_conv2d(*inputs)
    ref = native_conv2d(*native_inputs)
    assert out.requires_grad == any(mask)
    if any(mask):
        out.sum().backward()
        ref.sum().backward()
    for t, r, m in zip(inputs, native_inputs, mask):
        if m:
            assert max_errors(t.grad, r.grad).max_rel < 1e-12
        else:
            assert t.grad is None


def test_inputs_without_grad_and_under_no_grad():
    x, w, b = conv_inputs(requires_grad=False)
    assert not scipy_conv2d(x, w, b).requires_grad
    with torch.no_grad():
        assert not scipy_conv2d(*conv_inputs()).requires_grad
        assert not fft_abs(torch.randn(4, 4, requires_grad=True)).requires_grad


@pytest.mark.parametrize("fn", [fft_abs, incorrect_fft])
def test_fft_keeps_dtype(fn):
    for dtype in (torch.float32, torch.float64):
        x = torch.randn(6, 7, dtype=dtype, requires_grad=True)
        y = fn(x)
        y.sum().backward()
        assert y.dtype == dtype and x.grad.dtype == dtype and x.grad.shape == x.shape


@pytest.mark.parametrize("fn,args", [
    (scipy_conv2d, lambda: conv_inputs()),
    (fft_abs, lambda: (torch.randn(5, 6, dtype=torch.float64, requires_grad=True),)),
    (incorrect_fft, lambda: (torch.randn(5, 6, dtype=torch.float64, requires_grad=True),)),
])
def test_double_backward_raises_clearly(fn, args):
    inputs = args()
    out = fn(*inputs)
    (grad,) = torch.autograd.grad(out.sum(), inputs[0], create_graph=True)
    with pytest.raises(RuntimeError, match="does not support double backward"):
        grad.sum().backward()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("method", ["auto", "direct"])  # CuPy when installed; CPU round trip
def test_cuda_tensors_come_back_on_their_device(method):
    x, w, b = (t.detach().cuda().requires_grad_(True) for t in conv_inputs())
    out = scipy_conv2d(x, w, b, method=method)
    assert out.device == x.device
    out.sum().backward()
    assert x.grad.device == x.device and w.grad.device == x.device
    ref = native_conv2d(*(t.detach() for t in (x, w, b)))
    assert max_errors(out, ref).max_rel < 1e-10
    y = torch.randn(6, 7, device="cuda", dtype=torch.float64, requires_grad=True)
    fft_abs(y).sum().backward()
    assert y.grad.device == y.device


@pytest.mark.parametrize("layer,args,named", [
    ("conv2d", (16, (3, 3)), "size=16"),                    # an int, not a shape
    ("conv2d", ((1, 16, 16), (3, 3)), "size=(1, 16, 16)"),  # the single-channel layer is 2-D
    ("conv2d", ((16, 16), 3), "kernel=3"),
    ("conv2d", ((16, 16.0), (3, 3)), "size=(16, 16.0)"),     # a float dim
    ("conv2d", ((16, -1), (3, 3)), "size=(16, -1)"),
    ("conv2d_nchw", (16, (3, 3)), "size=16"),
    ("conv2d_nchw", ((1, 2, 3, 8, 8), (3, 3)), "size=(1, 2, 3, 8, 8)"),
    ("conv2d_nchw", ((8, 8), (2, 1, 3, 3)), "kernel=(2, 1, 3, 3)"),
    ("conv2d_nchw", ((8, 8), (True, 3)), "kernel=(True, 3)"),  # a bool is not a size
    ("fft_abs", (16,), "size=16"),
    ("fft_abs", ((16,),), "size=(16,)"),                     # one dim: no image
    ("fft_abs", ("16x16",), "size='16x16'"),                 # the suite's string form
])
def test_the_input_makers_name_a_bad_size_or_kernel(layer, args, named):
    """The registry's input makers (which tests, the suite and users share) say which
    argument was not a shape and what is accepted, instead of "'int' object is not
    iterable" or a tensor of the wrong rank."""
    with pytest.raises(ValueError, match="must be .*a tuple of non-negative ints; got "
                                         + re.escape(named)):
        LAYERS[layer].make_inputs(*args)


@pytest.mark.parametrize("layer,args,shapes", [
    ("conv2d", ((np.int64(5), 4), (2, np.int32(3))), [(5, 4), (2, 3), (1, 1)]),
    ("conv2d_nchw", ((0, 2, 5, 4), (3, 2, 2)), [(0, 2, 5, 4), (3, 2, 2, 2), (3,)]),
    ("fft_abs", ((1, 2, 1, 3, 4),), [(1, 2, 1, 3, 4)]),
])
def test_the_input_makers_take_numpy_ints_and_empty_batches(layer, args, shapes):
    assert [tuple(t.shape) for t in LAYERS[layer].make_inputs(*args)] == shapes
