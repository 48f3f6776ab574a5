"""The FFT certificate's bound of M by the output itself (_fft_certify.certify,
OUTPUT_BOUND_DTYPES): M >= |exact output| >= |result| - E. On float32 passes of real data
it certifies every output, so M's own transforms (_fft_conv._m_lower) never run; where
outputs are near zero (cancelling weights, zero regions) M and the fix-ups still decide,
and every result keeps the accuracy contract against a long-double direct sum."""
import numpy as np
import pytest
import torch

from scipy_layers import _fft_certificate, _fft_certify, _fft_conv, conv2d, scipy_conv2d
from scipy_layers.agreement import contract_ratio, conv_reference


@pytest.fixture
def m_passes(monkeypatch):
    """How many times M's transforms ran, by the shape of the pass's result."""
    calls = []
    m_lower = _fft_conv._m_lower

    def counting(*args):
        result = m_lower(*args)
        calls.append(result.shape)
        return result

    monkeypatch.setattr(_fft_conv, "_m_lower", counting)
    return calls


def _layer_and_reference(x, w, padding, generator):
    x = x.requires_grad_()
    w = w.requires_grad_()
    y = conv2d(x, w, padding=padding, method="fft")
    g = torch.randn(y.shape, dtype=y.dtype, generator=generator)
    grads = torch.autograd.grad(y, (x, w), g)
    refs = conv_reference(x, w, None, g, padding=padding)
    return dict(zip(("output", "grad_input", "grad_weight"), (y, *grads))), refs


@pytest.mark.parametrize("x_shape,w_shape,padding", [
    ((8, 3, 32, 32), (16, 3, 15, 15), 0),
    ((4, 8, 24, 24), (16, 8, 7, 7), 3),
    ((2, 1, 40, 33), (3, 1, 9, 5), (4, 2)),
])
def test_float32_passes_of_random_data_need_no_m(m_passes, x_shape, w_shape, padding):
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(x_shape, generator=gen)
    w = torch.randn(w_shape, generator=gen)
    got, refs = _layer_and_reference(x, w, padding, gen)
    assert m_passes == []
    for name, value in got.items():
        assert contract_ratio(value, refs[name], torch.float32) <= 1, name


def test_float64_passes_still_compute_m(m_passes):
    """float64's contract sits at its transforms' own precision: no output bound."""
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(8, 3, 32, 32, dtype=torch.float64, generator=gen)
    w = torch.randn(16, 3, 15, 15, dtype=torch.float64, generator=gen)
    got, refs = _layer_and_reference(x, w, 0, gen)
    assert len(m_passes) >= 2  # grad_input and grad_weight have no tile bound
    for name, value in got.items():
        assert contract_ratio(value, refs[name], torch.float64) <= 1, name


@pytest.mark.parametrize("case", ["cancelling weights", "zero region", "tiny patch"])
def test_float32_near_zero_outputs_fall_back_to_m_and_keep_the_contract(m_passes, case):
    """Outputs whose exact value is 0 or nearly so, with a large M (weights that sum to
    zero on a constant image) or a zero M (a zero region), or far below the rest (a
    1e-20 patch): the output bound cannot certify them, M or the fix-ups do."""
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(4, 4, 28, 28, generator=gen)
    w = torch.randn(8, 4, 5, 5, generator=gen)
    if case == "cancelling weights":
        x[:, :, :14, :14] = 1.0  # constant windows meet zero-sum weights: exact 0 out
        w -= w.mean(dim=(2, 3), keepdim=True)
    elif case == "zero region":
        x[1, :, 6:20, 6:20] = 0.0
    else:
        x[2, :, 4:16, 4:16] *= 1e-20
    got, refs = _layer_and_reference(x, w, 1, gen)
    assert m_passes, "the output bound certified outputs it cannot"
    for name, value in got.items():
        assert contract_ratio(value, refs[name], torch.float32) <= 1, name


def test_certify_uses_the_output_bound_only_where_asked():
    """certify itself: an output far above E / tolerance is certified without M with
    output_bound, and M decides without it; an output within E of zero needs M."""
    bound = np.array([[1e-9]])
    result = np.array([[[[1.0, 1e-12]]]])
    never = lambda *args: pytest.fail("M computed")  # noqa: E731
    tolerance = 1e-4
    certified = _fft_certify.certify(result.copy(), bound, tolerance, None, None,
                                     lambda: np.array([[[[1.0, 1.0]]]]), never, 1, 0,
                                     output_bound=True)
    np.testing.assert_array_equal(certified, result)  # 1e-12 < need: M (1.0) decides
    calls = []
    result = np.array([[[[1.0, 0.5]]]])

    def m():
        calls.append(1)
        return np.array([[[[1.0, 1.0]]]])

    _fft_certify.certify(result.copy(), bound, tolerance, None, None, m, never, 1, 0,
                         output_bound=True)
    assert calls == []
    _fft_certify.certify(result.copy(), bound, tolerance, None, None, m, never, 1, 0)
    assert calls == [1]


def test_single_channel_fft_float32_keeps_the_contract(m_passes):
    gen = torch.Generator().manual_seed(4)
    x = torch.randn(127, 127, generator=gen, requires_grad=True)
    w = torch.randn(31, 31, generator=gen, requires_grad=True)
    y = scipy_conv2d(x, w, method="fft")
    g = torch.randn(y.shape, generator=gen)
    grads = torch.autograd.grad(y, (x, w), g)
    refs = conv_reference(x[None, None], w[None, None], None, g[None, None])
    assert m_passes == []
    for name, value in zip(("output", "grad_input", "grad_weight"), (y, *grads)):
        assert contract_ratio(value[None, None], refs[name], torch.float32) <= 1, name


@pytest.mark.parametrize("channels", [1, 2, 16, 512, 4096])
def test_the_error_bound_covers_the_channel_sums_real_arithmetic(channels):
    """Each bin's channel sum runs in real arithmetic (BLAS's complex products, einsum):
    real and imaginary parts are sums of 2K real products, which err by up to
    sqrt(2) gamma_2K times sum_k |A_k| |B_k|. On the smallest transform (T = 2, one stage)
    that term is most of E: E must still cover it."""
    u = _fft_certificate.U64
    ones = np.ones((1, channels))
    norms = (ones, ones)  # unit 2- and 1-norms: sum_k |A_k| |B_k| <= K by Cauchy-Schwarz
    bound = _fft_certificate.error_bound(norms, norms, "nc,oc->no", channels, 2,
                                         np.float32, None)
    gamma = 2 * channels * u / (1 - 2 * channels * u)
    assert bound[0, 0] >= np.sqrt(2) * gamma * channels
