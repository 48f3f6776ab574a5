"""Empty tensors and meta tensors, against the native twins.

Empty: what F.conv2d / torch.fft accept (an empty batch, no input channels) gives the
same result and gradients; what they refuse raises an error naming the argument, of a
type that is both the project's ValueError and torch's RuntimeError.
Meta: every layer and method gives the native output shape and dtype from shapes alone;
no numpy kernel, scipy call or tensor-to-numpy conversion runs.
"""
import numpy as np
import pytest
import scipy.fft
import torch
import torch.nn.functional as F

import scipy_layers.nn as nn
from scipy_layers import (BadFFTFunction, Conv2d, ScipyConv2d, ScipyConv2dFunction, conv2d,
                          fft_abs, incorrect_fft, native_conv2d, native_fft_abs, scipy_conv2d)
from scipy_layers import _fft_into
from scipy_layers._checks import EmptyDimensionError
from scipy_layers.conv_methods import METHODS, ConvMethod

TIGHT = dict(rtol=1e-12, atol=1e-12)


def leaves(*shapes, device="cpu"):
    gen = torch.Generator().manual_seed(0)
    return [torch.randn(s, generator=gen, dtype=torch.float64).to(device).requires_grad_()
            for s in shapes]


def with_methods(cases):
    """(input shape, weight shape, kwargs, method) for every method that takes the case:
    method='fft' and 'shift' take stride 1, dilation 1 and groups 1 only."""
    return [(*case, method) for case in cases for method in ("auto", "im2col", "fft", "shift")
            if method not in ("fft", "shift") or all(case[2].get(key, 1) == 1
                                      for key in ("stride", "dilation", "groups"))]


def forward_and_grads(fn, inputs, **kwargs):
    out = fn(*inputs, **kwargs)
    grads = torch.autograd.grad(out, inputs, torch.ones_like(out), allow_unused=True)
    return out, grads


# --- empty tensors F.conv2d accepts ----------------------------------------------------------

EMPTY_NCHW = [  # (input shape, weight shape, keyword arguments)
    ((0, 3, 6, 5), (4, 3, 3, 3), {}),                                # empty batch
    ((0, 4, 7, 7), (6, 2, 3, 3), dict(stride=2, padding=1, groups=2)),
    ((0, 2, 6, 6), (3, 2, 5, 5), dict(padding="same")),
    ((2, 0, 6, 5), (4, 0, 3, 3), {}),                                # no input channels
    ((2, 0, 7, 7), (4, 0, 3, 3), dict(stride=2, padding=1, dilation=2, groups=2)),
    ((0, 0, 5, 5), (4, 0, 3, 3), {}),
    ((0, 6, 6), (4, 0, 3, 3), {}),                                   # unbatched, no channels
]


@pytest.mark.parametrize("x_shape,w_shape,kwargs,method", with_methods(EMPTY_NCHW))
def test_empty_conv2d_matches_f_conv2d_forward_and_gradients(x_shape, w_shape, kwargs, method):
    ours = forward_and_grads(conv2d, leaves(x_shape, w_shape, (w_shape[0],)), method=method,
                             **kwargs)
    theirs = forward_and_grads(F.conv2d, leaves(x_shape, w_shape, (w_shape[0],)), **kwargs)
    torch.testing.assert_close(ours, theirs, **TIGHT)  # shapes, dtypes, zero weight/bias grads
    assert ours[1][1].shape == w_shape and not ours[1][1].any()


def test_empty_batch_through_the_module_and_without_bias():
    module = Conv2d(3, 5, 3, stride=2, padding=1, dtype=torch.float64)
    native = torch.nn.Conv2d(3, 5, 3, stride=2, padding=1, dtype=torch.float64)
    native.load_state_dict(module.state_dict())
    x = torch.zeros(0, 3, 9, 9, dtype=torch.float64, requires_grad=True)
    out, ref = module(x), native(x)
    assert out.shape == ref.shape == (0, 5, 5, 5)
    out.sum().backward()
    ref.sum().backward()
    for mine, theirs in zip(module.parameters(), native.parameters()):
        torch.testing.assert_close(mine.grad, theirs.grad, **TIGHT)  # all zero
    shapes = ((0, 3, 6, 6), (4, 3, 3, 3))  # no bias
    torch.testing.assert_close(forward_and_grads(conv2d, leaves(*shapes)),
                               forward_and_grads(F.conv2d, leaves(*shapes)), **TIGHT)


@pytest.mark.parametrize("fn", [fft_abs, incorrect_fft])
@pytest.mark.parametrize("shape", [(0, 8, 8), (2, 0, 5, 7), (0, 0, 4, 3)])
def test_fft_layers_with_an_empty_batch_dim(fn, shape):
    (x,) = leaves(shape)
    out, (grad,) = forward_and_grads(fn, [x])
    # torch.fft.rfft2 on the CPU raises on an empty batch (an MKL error); its meta kernel
    # states the result it means.
    expected = torch.fft.rfft2(torch.empty(shape, dtype=x.dtype, device="meta")).abs()
    assert out.shape == expected.shape and out.dtype == expected.dtype
    assert grad.shape == x.shape and grad.dtype == x.dtype


# --- empty tensors torch refuses: the same refusal, naming the argument --------------------

REFUSED = [  # (our call, the native call, words the message must contain)
    (lambda: conv2d(torch.randn(2, 3, 0, 5), torch.randn(4, 3, 3, 3)),
     lambda: F.conv2d(torch.randn(2, 3, 0, 5), torch.randn(4, 3, 3, 3)),
     ["input", "empty in H", "(2, 3, 0, 5)", "N and C_in"]),
    (lambda: conv2d(torch.randn(2, 3, 6, 0), torch.randn(4, 3, 1, 1), padding=2),
     lambda: F.conv2d(torch.randn(2, 3, 6, 0), torch.randn(4, 3, 1, 1), padding=2),
     ["input", "empty in W", "(2, 3, 6, 0)"]),
    (lambda: conv2d(torch.randn(3, 0, 0), torch.randn(4, 3, 1, 1)),
     lambda: F.conv2d(torch.randn(3, 0, 0), torch.randn(4, 3, 1, 1)),
     ["input", "empty in H or W", "only C_in"]),
    (lambda: conv2d(torch.randn(2, 3, 6, 6), torch.randn(0, 3, 3, 3)),
     lambda: F.conv2d(torch.randn(2, 3, 6, 6), torch.randn(0, 3, 3, 3)),
     ["weight", "empty in C_out", "(0, 3, 3, 3)", "C_in/groups"]),
    (lambda: conv2d(torch.randn(2, 3, 6, 6), torch.randn(4, 3, 0, 3)),
     lambda: F.conv2d(torch.randn(2, 3, 6, 6), torch.randn(4, 3, 0, 3)),
     ["weight", "empty in kH", "(4, 3, 0, 3)"]),
    (lambda: fft_abs(torch.randn(3, 0, 4)), lambda: torch.fft.rfft2(torch.randn(3, 0, 4)),
     ["input", "empty in H", "(3, 0, 4)", "batch dims"]),
    (lambda: incorrect_fft(torch.randn(4, 0)), lambda: torch.fft.rfft2(torch.randn(4, 0)),
     ["input", "empty in W", "(4, 0)"]),
    (lambda: native_fft_abs(torch.randn(0, 0)), lambda: torch.fft.rfft2(torch.randn(0, 0)),
     ["input", "empty in H or W"]),
    (lambda: scipy_conv2d(torch.randn(0, 8), torch.randn(3, 3)),
     lambda: F.conv2d(torch.randn(1, 1, 0, 8), torch.randn(1, 1, 3, 3)),
     ["input", "must not be empty", "(0, 8)"]),
    (lambda: scipy_conv2d(torch.randn(5, 5), torch.randn(0, 3)),
     lambda: F.conv2d(torch.randn(1, 1, 5, 5), torch.randn(1, 1, 0, 3)),
     ["filter", "must not be empty", "(0, 3)"]),
]


@pytest.mark.parametrize("ours,native,words", REFUSED)
def test_empty_dims_torch_refuses_are_refused_clearly(ours, native, words):
    with pytest.raises(RuntimeError):
        native()
    with pytest.raises(EmptyDimensionError) as info:
        ours()
    assert isinstance(info.value, ValueError) and isinstance(info.value, RuntimeError)
    for word in words:
        assert word in str(info.value), (word, str(info.value))


# --- meta tensors ---------------------------------------------------------------------------

@pytest.fixture
def numpy_forbidden(monkeypatch):
    """Every way a layer reaches numpy/scipy raises."""
    def forbidden(*args, **kwargs):
        raise AssertionError("numpy/scipy was called for meta tensors")
    monkeypatch.setattr(torch.Tensor, "numpy", forbidden)
    for name in list(METHODS):
        monkeypatch.setitem(METHODS, name, ConvMethod(forbidden, forbidden))
    for module, name in ((nn.kernels, "im2col_forward"), (nn.kernels, "im2col_backward"),
                         (nn._nchw_fft, "fft_forward"), (nn._nchw_fft, "fft_backward")):
        monkeypatch.setattr(module, name, forbidden)
    for module, name in ((scipy.fft, "rfft2"), (scipy.fft, "irfft"), (np.fft, "rfft2"),
                         (np.fft, "irfft2"), (_fft_into, "rfft2"), (_fft_into, "rfft2_adjoint")):
        monkeypatch.setattr(module, name, forbidden)


META_NCHW = [
    ((2, 3, 9, 8), (4, 3, 3, 3), dict(padding=1)),
    ((2, 4, 9, 9), (6, 2, 3, 2), dict(stride=(2, 1), dilation=2, groups=2)),
    ((3, 9, 9), (2, 3, 5, 5), dict(padding="same")),
    ((0, 3, 9, 9), (4, 3, 3, 3), {}),
    ((2, 0, 9, 9), (4, 0, 3, 3), {}),
]


@pytest.mark.parametrize("x_shape,w_shape,kwargs,method", with_methods(META_NCHW))
def test_meta_conv2d_shape_dtype_and_gradient_shapes(x_shape, w_shape, kwargs, method,
                                                     numpy_forbidden):
    inputs = leaves(x_shape, w_shape, (w_shape[0],), device="meta")
    out, grads = forward_and_grads(conv2d, inputs, method=method, **kwargs)
    expected = F.conv2d(*inputs, **kwargs)
    assert (out.shape, out.dtype, out.device) == (expected.shape, expected.dtype, expected.device)
    assert [(g.shape, g.device.type) for g in grads] == [(t.shape, "meta") for t in inputs]


@pytest.mark.parametrize("method", ["auto", "direct", "shift", "fft"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_meta_single_channel_conv(method, dtype, numpy_forbidden):
    x, w, b = (t.to(dtype).detach().requires_grad_() for t in
               leaves((9, 7), (3, 2), (1, 1), device="meta"))
    for out in (scipy_conv2d(x, w, b, method), ScipyConv2dFunction.apply(x, w, None, method)):
        expected = native_conv2d(x, w, b)
        assert (out.shape, out.dtype, out.device) == (expected.shape, dtype, x.device)
    grads = torch.autograd.grad(scipy_conv2d(x, w, b, method).sum(), (x, w, b))
    assert [g.shape for g in grads] == [x.shape, w.shape, b.shape]


def test_meta_modules(numpy_forbidden):
    x = torch.randn(2, 3, 16, 16, device="meta")
    for method in ("auto", "im2col", "fft", "shift"):
        module = Conv2d(3, 8, 5, padding=2, device="meta", method=method)
        native = torch.nn.Conv2d(3, 8, 5, padding=2, device="meta")
        assert module(x).shape == native(x).shape == (2, 8, 16, 16)
    single = ScipyConv2d(3, 4, method="fft").to("meta")
    assert single(torch.randn(10, 12, device="meta")).shape == (8, 9)


@pytest.mark.parametrize("x_shape,w_shape,padding,device,dtype", [
    ((0, 1, 1, 1), (2, 1, 25, 1), (2 ** 61, 0), "cpu", torch.float32),  # empty batch
    ((0, 1, 1, 1), (2, 1, 25, 1), (2 ** 61, 0), "cpu", torch.float64),
    ((1, 0, 1, 1), (2, 0, 25, 1), (2 ** 61, 0), "cpu", torch.float32),  # no input channels
    ((1, 1, 3 * 2 ** 59, 1), (1, 1, 3 * 2 ** 59, 1), 0, "meta", torch.float32),
    ((1, 1, 2 ** 40, 2 ** 19), (1, 1, 4096, 4096), 0, "meta", torch.float64),
])
def test_auto_on_sizes_no_data_has_matches_f_conv2d(x_shape, w_shape, padding, device, dtype):
    """method='auto' where nothing runs, on sizes that native accepts but no data could
    have: the cost model priced them anyway (helper 139): scipy.fft.next_fast_len raised
    ValueError past ~1.45 * 2**60 (the first four), and float64's certificate rule made
    index arrays of the output's height (the last: 8 TiB, a MemoryError)."""
    x = torch.zeros(x_shape, dtype=dtype, device=device, requires_grad=True)
    w = torch.zeros(w_shape, dtype=dtype, device=device, requires_grad=True)
    out, grads = forward_and_grads(conv2d, [x, w], padding=padding)
    expected = F.conv2d(x, w, padding=padding)
    assert (out.shape, out.dtype, out.device) == (expected.shape, dtype, expected.device)
    assert [(g.shape, g.device) for g in grads] == [(t.shape, t.device) for t in (x, w)]


@pytest.mark.parametrize("fn", [fft_abs, incorrect_fft, BadFFTFunction.apply])
@pytest.mark.parametrize("shape", [(8, 7), (3, 2, 6, 9), (0, 5, 4)])
def test_meta_fft_layers(fn, shape, numpy_forbidden):
    x = torch.randn(shape, dtype=torch.float64, device="meta", requires_grad=True)
    out = fn(x)
    expected = torch.fft.rfft2(x).abs()
    assert (out.shape, out.dtype, out.device) == (expected.shape, expected.dtype, x.device)
    (grad,) = torch.autograd.grad(out.sum(), x)
    assert grad.shape == x.shape and grad.is_meta


def test_meta_and_cpu_mixed_is_still_refused():
    with pytest.raises(ValueError, match="weight is on device meta"):
        conv2d(torch.randn(1, 1, 5, 5), torch.randn(1, 1, 3, 3, device="meta"))
