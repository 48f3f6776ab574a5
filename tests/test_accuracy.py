"""The accuracy contract of scipy_layers.agreement (|y - exact| <= c eps M per entry) on
inputs chosen to break FFT convolutions: high dynamic range, zero regions, constants,
periodic patterns, near-overflow float64; and the issue-10 examples that used to fail."""
import math

import pytest
import numpy as np
import scipy.fft
import torch
import torch.nn.functional as F

from scipy_layers import LAYERS, conv2d, scipy_conv2d
from scipy_layers.agreement import conv_reference, contract_ratio
from tests._im2col_variants import IM2COL_VARIANTS, im2col_variant
from tests._shift_tiers import SHIFT_TIERS, shift_tier

DTYPES = [torch.float32, torch.float64]
SINGLE_METHODS = ["direct", "shift", "fft", "auto", *SHIFT_TIERS]
NCHW_METHODS = ["im2col", "fft", "shift", "auto", *SHIFT_TIERS, *IM2COL_VARIANTS]


def family(name: str, shape, dtype, seed=0):
    """An input of ``shape`` (last two dims spatial) of the named adversarial kind."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=gen, dtype=torch.float64)
    h, w = shape[-2:]
    if name == "spike-1e6":               # issue 10: 1e6 on a 1e-3 background
        x = torch.full(shape, 1e-3, dtype=torch.float64)
        x[..., h // 3, w // 2] = 1e6
    elif name == "spike-extreme":         # far beyond float32's 7 digits of range
        x = x * 1e-3
        x[..., 1, 2] = 1e30 if dtype == torch.float32 else 1e200
    elif name == "zero-region":           # windows of exact zeros must come out exact
        x[..., :, : w // 2] = 0
    elif name == "constant":
        x = torch.ones(shape, dtype=torch.float64)
    elif name == "periodic":              # all energy in two frequencies
        i = torch.arange(h, dtype=torch.float64)[:, None]
        j = torch.arange(w, dtype=torch.float64)[None, :]
        x = torch.cos(2 * math.pi * 5 * i / h) * torch.cos(2 * math.pi * 3 * j / w) + 0 * x
    elif name == "wide-range":            # columns from 1e-15 to 1e15 (1e-20..1e20 float64)
        top = 15 if dtype == torch.float32 else 20
        x = x * torch.logspace(-top, top, w, dtype=torch.float64)
    elif name != "random":
        raise ValueError(name)
    return x.to(dtype)


FAMILIES = ["random", "spike-1e6", "spike-extreme", "zero-region", "constant", "periodic",
            "wide-range"]


def check_contract(outputs, refs, dtype):
    for name, got in outputs.items():
        ratio = contract_ratio(got, refs[name], dtype)
        assert ratio <= 1, (name, ratio)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("method", SINGLE_METHODS)
@pytest.mark.parametrize("name", FAMILIES)
@pytest.mark.parametrize("size,kernel", [((48, 40), (9, 7)), ((72, 72), (15, 15))])
def test_single_channel_keeps_the_contract(name, method, dtype, size, kernel):
    x = family(name, size, dtype).requires_grad_()
    w = torch.randn(kernel, dtype=dtype, generator=torch.Generator().manual_seed(1)).requires_grad_()
    b = torch.randn(1, 1, dtype=dtype).requires_grad_()
    with shift_tier(method) as method:
        y = scipy_conv2d(x, w, b, method)
        g = family(name, y.shape, dtype, seed=2)  # grad_output of the same kind
        grads = torch.autograd.grad(y, (x, w, b), g)
    refs = conv_reference(x, w, b, g)
    check_contract(dict(zip(("output", "grad_input", "grad_weight", "grad_bias"), (y, *grads))),
                   refs, dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("method", NCHW_METHODS)
@pytest.mark.parametrize("name", FAMILIES)
def test_batched_conv_keeps_the_contract(name, method, dtype):
    x = family(name, (2, 2, 40, 36), dtype).requires_grad_()
    w = torch.randn(3, 2, 7, 7, dtype=dtype, generator=torch.Generator().manual_seed(1)).requires_grad_()
    b = torch.randn(3, dtype=dtype).requires_grad_()
    with shift_tier(method) as method, im2col_variant(method) as method:
        y = conv2d(x, w, b, padding=3, method=method)
        g = family(name, y.shape, dtype, seed=2)
        grads = torch.autograd.grad(y, (x, w, b), g)
    refs = conv_reference(x, w, b, g, padding=3)
    check_contract(dict(zip(("output", "grad_input", "grad_weight", "grad_bias"), (y, *grads))),
                   refs, dtype)


def window_relative_error(got, x, w):
    """|got - exact| / sum over each window of |x||w| (float64 direct sums), for 4-D x."""
    exact = F.conv2d(x.double(), w.double())
    magnitude = F.conv2d(x.double().abs(), w.double().abs())
    return (got.double() - exact).abs() / magnitude


@pytest.mark.parametrize("method", SINGLE_METHODS)
def test_issue_spike_example_far_outputs_are_right(method):
    """Issue 10: far from a 1e6 spike, float32 outputs were off by a relative 0.15."""
    x = family("spike-1e6", (64, 64), torch.float32)
    w = torch.randn(7, 7, generator=torch.Generator().manual_seed(3))
    with shift_tier(method) as method:
        y = scipy_conv2d(x, w, None, method)
    assert window_relative_error(y[None, None], x[None, None], w[None, None]).max() < 1e-5


@pytest.mark.parametrize("method", NCHW_METHODS)
def test_issue_batched_spike_example(method):
    """Issue 10: the batched conv on 1x2x64x64 with 7x7 filters was off by a relative 330."""
    x = family("spike-1e6", (1, 2, 64, 64), torch.float32)
    w = torch.randn(3, 2, 7, 7, generator=torch.Generator().manual_seed(3))
    with shift_tier(method) as method, im2col_variant(method) as method:
        y = conv2d(x, w, method=method)
    assert window_relative_error(y, x, w).max() < 1e-5


@pytest.mark.parametrize("method", SINGLE_METHODS)
def test_issue_nan_pixel_stays_in_its_windows(method):
    """Issue 10: one NaN pixel, 64x64 input, 9x9 filter: native has 81 NaN outputs; the
    FFT path had 3,136."""
    x = torch.randn(64, 64)
    x[30, 30] = float("nan")
    with shift_tier(method) as method:
        y = scipy_conv2d(x, torch.randn(9, 9), None, method)
    assert int(y.isnan().sum()) == 81


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("method", SINGLE_METHODS)
def test_near_overflow_float64_stays_finite_like_native(method, seed):
    """Issue 10: float64 inputs near 1e307 gave all NaN where native is finite. Held to
    the per-entry contract, not an elementwise rtol: an entry whose terms nearly cancel
    may differ from native (and from the exact sum) by far more than 1e-10 of itself
    while keeping |y - exact| <= c eps M (one draw put an entry 1.15e-10 off native)."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(64, 64, dtype=torch.float64, generator=generator) * 1e306
    w = torch.rand(9, 9, dtype=torch.float64, generator=generator) / 81  # sums of |x||w| stay below 1e307
    b = torch.zeros(1, 1, dtype=torch.float64)
    x.requires_grad_()
    w.requires_grad_()
    with shift_tier(method) as method:
        y = scipy_conv2d(x, w, b, method)
        native = LAYERS["conv2d"].native.fn(x, w, b)
        assert torch.isfinite(native).all() and torch.isfinite(y).all()
        g = torch.ones_like(y)
        gx, gw = torch.autograd.grad(y, (x, w), g)
    assert torch.isfinite(gx).all()
    refs = conv_reference(x, w, b, g)
    assert contract_ratio(y, refs["output"], torch.float64) <= 1
    assert contract_ratio(gx, refs["grad_input"], torch.float64) <= 1


@pytest.mark.parametrize("seed", [0, 1])
def test_near_overflow_float64_batched_fft(seed):
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(1, 2, 40, 40, dtype=torch.float64, generator=generator) * 1e306
    w = torch.rand(2, 2, 9, 9, dtype=torch.float64, generator=generator) / 162
    y = conv2d(x, w, method="fft")
    native = F.conv2d(x, w)
    assert torch.isfinite(native).all() and torch.isfinite(y).all()
    refs = conv_reference(x, w, None, torch.ones_like(y))
    assert contract_ratio(y, refs["output"], torch.float64) <= 1


@pytest.mark.parametrize("method", ["fft", "auto"])
def test_float64_spanning_600_decades_is_not_zeroed(method):
    """Found by the hostile tester: scaling for the FFT pushed 1e-30 entries beside 1e300
    ones to zero; the certificate could not see it. Such operands skip the FFT now."""
    x = torch.randn(1, 1, 64, 64, dtype=torch.float64) * 1e-30
    x[..., :28] = 1e300 * torch.randn(1, 1, 64, 28, dtype=torch.float64)
    w = torch.randn(1, 1, 5, 5, dtype=torch.float64)
    y = conv2d(x, w, method=method)
    refs = conv_reference(x, w, None, torch.ones_like(y))
    assert contract_ratio(y, refs["output"], torch.float64) <= 1
    single = scipy_conv2d(x[0, 0], w[0, 0], None, method)
    assert contract_ratio(single, conv_reference(x[0, 0], w[0, 0], None, torch.ones_like(single))
                          ["output"], torch.float64) <= 1


def test_float64_products_that_would_be_subnormal_scaled_skip_the_fft():
    """The FFT conv scales each operand to a maximum near 1; its scaled products must stay
    normal (_fft_operand.MIN_PRODUCT_EXPONENT). Here each unscaled product is a normal float,
    and no unscaled one can overflow, but the smallest scaled one is ~2**-1052, between
    2**-1100 and 2**-1000: a subnormal that keeps ~22 bits. Output (5, 5) is that product
    alone (x is 0 under the large tap): by the FFT and its scaled fix-ups ~9e-8 off, far
    outside the contract; the pass must run the direct sums instead."""
    x = torch.randn(1, 1, 16, 16, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    x *= 2.0 ** 500
    x[0, 0, 5, 5] = 0.0
    x[0, 0, 5, 6] = 1.3183 * 2.0 ** -50
    w = torch.tensor([[[[1.25 * 2.0 ** 500, 1.7351]]]], dtype=torch.float64)
    for method in ("fft", "auto"):
        y = conv2d(x, w, method=method)
        refs = conv_reference(x, w, None, torch.ones_like(y))
        assert contract_ratio(y, refs["output"], torch.float64) <= 1, method
        single = scipy_conv2d(x[0, 0], w[0, 0], None, method)
        single_refs = conv_reference(x[0, 0], w[0, 0], None, torch.ones_like(single))
        assert contract_ratio(single, single_refs["output"], torch.float64) <= 1, method


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("method", ["direct", "shift", "fft", *SHIFT_TIERS])
def test_subnormal_operands_keep_the_contract_with_its_underflow_term(method, dtype):
    tiny = torch.finfo(dtype).tiny
    x = torch.randn(24, 20, dtype=dtype)
    x[x.abs() < 0.5] *= tiny / 8          # subnormal entries beside normal ones
    w = torch.randn(5, 4, dtype=dtype) * tiny * 4
    x.requires_grad_()
    w.requires_grad_()
    with shift_tier(method) as method:
        y = scipy_conv2d(x, w, None, method)
        g = torch.randn_like(y)
        grads = torch.autograd.grad(y, (x, w), g)
    refs = conv_reference(x, w, None, g)
    check_contract(dict(zip(("output", "grad_input", "grad_weight"), (y, *grads))), refs, dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("method", ["im2col", *IM2COL_VARIANTS])
def test_batched_subnormal_operands_keep_the_contract(method, dtype):
    tiny = torch.finfo(dtype).tiny
    x = torch.randn(2, 3, 12, 11, dtype=dtype)
    x[x.abs() < 0.5] *= tiny / 8
    w = torch.randn(4, 3, 3, 2, dtype=dtype) * tiny * 4
    x.requires_grad_()
    w.requires_grad_()
    with im2col_variant(method) as method:
        y = conv2d(x, w, padding=1, method=method)
        g = torch.randn_like(y)
        grads = torch.autograd.grad(y, (x, w), g)
    refs = conv_reference(x, w, None, g, padding=1)
    check_contract(dict(zip(("output", "grad_input", "grad_weight"), (y, *grads))), refs, dtype)


@pytest.mark.parametrize("method", ["fft", "matrix"])
@pytest.mark.parametrize("dtype,scale", [(torch.float32, 1e-37), (torch.float32, 1e-40),
                                         (torch.float64, 1e-310)], ids=str)
def test_fft_abs_gradient_of_tiny_inputs_is_finite_and_right(dtype, scale, method):
    """Found by the hostile tester: g / |Z| overflowed before meeting Z. The oracle is
    native torch in float64 on the input times a power of two that brings it near 1:
    the scaling is exact, and the gradient of |Z| is scale-free. Native on the tiny
    input itself is no oracle: its complex sgn (abs's backward) gives inf/NaN for |z|
    below 1 / finfo.max in the elements its vector loop leaves over, so whether an 8x8
    image's 40 bins hit it depends on the CPU's vector width (NaN everywhere on an
    AVX-512 VM in float32, finite under AVX2; a 7x7 image fails under both)."""
    from scipy_layers import fft_abs
    x = (torch.randn(8, 8, dtype=torch.float64) * scale).to(dtype).requires_grad_()
    g = torch.randn(8, 5, dtype=dtype) * 100
    (ours,) = torch.autograd.grad(fft_abs(x, method), x, g)
    lifted = (x.detach().double() * 2.0 ** (600 if dtype == torch.float64 else 100))
    lifted.requires_grad_()
    (truth,) = torch.autograd.grad(torch.fft.rfft2(lifted).abs(), lifted, g.double())
    assert torch.isfinite(truth).all() and torch.isfinite(ours).all()
    torch.testing.assert_close(ours.double(), truth,
                               rtol=1e-3 if dtype == torch.float32 else 1e-9,
                               atol=1e-3 * float(truth.abs().max()))


@pytest.mark.parametrize("method", ["fft", "matrix"])
def test_fft_abs_nan_gradient_at_a_zero_bin_spreads_like_native(method):
    """Found by the hostile tester: a NaN in grad_output where |Z| = 0 was dropped."""
    from scipy_layers import fft_abs
    x = torch.ones(4, 4, dtype=torch.float64, requires_grad=True)  # |Z| = 0 but at DC
    g = torch.randn(4, 3, dtype=torch.float64)
    g[1, 1] = float("nan")
    (ours,) = torch.autograd.grad(fft_abs(x, method), x, g)
    (theirs,) = torch.autograd.grad(torch.fft.rfft2(x).abs(), x, g)
    assert torch.equal(ours.isnan(), theirs.isnan()) and ours.isnan().all()


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("pass_", ["output", "grad_input", "grad_weight"])
def test_fft_leaves_overflowing_products_to_the_direct_sums(pass_, dtype):
    """Outside the contract's domain: products beyond the dtype's largest value. Scaled
    float64 FFTs gave finite values wrong by up to M there (hostile pass: 1e30 pixels on
    +-1e10 weights, float32, exact 0: -3.4e23 where native has inf); the direct sums
    overflow where native's do on this case, so inf / NaN land in native's entries (NaN
    or inf: the order of the sums decides, as between native's own paths; fused
    multiply-adds can keep a sum finite past one overflowing product elsewhere)."""
    big = 1e30 if dtype == torch.float32 else 1e300
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(4, 3, 16, 16, dtype=dtype, generator=gen)
    w = torch.randn(8, 3, 15, 15, dtype=dtype, generator=gen)
    g = torch.randn(4, 8, 16, 16, dtype=dtype, generator=gen)
    huge = {"output": x, "grad_input": g, "grad_weight": g}[pass_]
    other = {"output": w, "grad_input": w, "grad_weight": x}[pass_]
    huge[0, 0, 8, 8:10] = big
    other.mul_(1e10)  # products near 1e40 (float32) / 1e310 (float64)
    quantities = {}
    for name, conv in [("native", F.conv2d), ("fft", lambda a, b, **k: conv2d(a, b, method="fft", **k))]:
        xr, wr = x.clone().requires_grad_(), w.clone().requires_grad_()
        y = conv(xr, wr, padding=7)
        grads = torch.autograd.grad(y, (xr, wr), g)
        quantities[name] = dict(zip(("output", "grad_input", "grad_weight"), (y, *grads)))
    ours, native = quantities["fft"][pass_], quantities["native"][pass_]
    assert (~native.isfinite()).any()  # the case is what it says
    assert torch.equal(ours.isfinite(), native.isfinite())
    if pass_ == "output":  # the single-channel layer shares the FFT pass
        single = scipy_conv2d(x[0, 0], w[0, 0], None, "fft")
        theirs = F.conv2d(x[:1, :1], w[:1, :1])[0, 0]
        assert torch.equal(single.isfinite(), theirs.isfinite())


def _certificate_bounds(monkeypatch):
    """The bound E each FFT pass's certificate is given, as its passes run."""
    from scipy_layers import _fft_certify
    bounds, certify = [], _fft_certify.certify

    def spy(result, bound, tolerance, *args, **kwargs):
        bounds.append((float(bound.max()), tolerance))
        return certify(result, bound, tolerance, *args, **kwargs)

    monkeypatch.setattr(_fft_certify, "certify", spy)
    return bounds


def _spike_at_the_threshold(place, run, bounds, which: int, w):
    """Sets the spike (``place(size)``) so that the E of certificate ``which`` (0 the
    forward's, 1 grad_input's; ``bounds`` from _certificate_bounds, ``run`` the layer's
    call) is 0.99 of what a background pixel of M = ||w||_1 allows. E grows with the
    spike, M of a background pixel does not: a few rounds settle it."""
    spike = 100.0
    for _ in range(6):
        place(spike)
        bounds.clear()
        run()
        bound, tolerance = bounds[which]
        scale = math.frexp(spike)[1] + math.frexp(float(w.abs().max()))[1]
        background_m = float(w.abs().sum()) * 2.0 ** -scale  # scaled, as E is
        spike *= 0.99 * tolerance * background_m / bound
    place(spike)


@pytest.mark.parametrize("pass_", ["output", "grad_input"])
@pytest.mark.parametrize("layer", ["conv2d", "scipy_conv2d"])
def test_float64_fft_certificate_at_its_threshold_beside_one_spike(layer, pass_, monkeypatch):
    """Found by hostile pass 116: one spike on a +-1 background of a 1024x1024 float64
    image (or output gradient), its size tuned so that the certificate's E just certifies
    every background pixel (E = 0.99 tol M). The transforms along W keep each row's
    errors in that row, so the spike's rows erred up to 1.8x the contract where the model
    spread them over all T outputs; E now weighs the largest row. At that size (k7) E's
    linear term (hostile pass 126) now rejects every pass whatever the spike, before its
    FFTs, so the threshold is sought at 256x256 k15, where passes still certify."""
    bounds = _certificate_bounds(monkeypatch)
    gen = torch.Generator().manual_seed(0)
    size, k = 256, 15
    w = torch.randn(1, 1, k, k, generator=gen, dtype=torch.float64)
    sign = torch.randint(0, 2, (1, 1, size, size), generator=gen).double() * 2 - 1
    x = sign if pass_ == "output" else torch.randn(1, 1, size, size, generator=gen,
                                                    dtype=torch.float64)
    g = sign[..., : size - k + 1, : size - k + 1].clone() if pass_ == "grad_input" else None
    spiked = x if pass_ == "output" else g
    at = (0, 0, spiked.shape[2] // 2, spiked.shape[3] // 3)

    def run():
        xr, wr = x.clone().requires_grad_(), w.clone().requires_grad_()
        if layer == "conv2d":
            y = conv2d(xr, wr, method="fft")
        else:
            y = scipy_conv2d(xr[0, 0], wr[0, 0], None, "fft")[None, None]
        if pass_ == "output":
            return y
        (grad,) = torch.autograd.grad(y, xr, g.reshape(y.shape))
        return grad

    _spike_at_the_threshold(lambda spike: spiked.__setitem__(at, spike), run, bounds,
                            0 if pass_ == "output" else 1, w)
    got = run()
    refs = conv_reference(x, w, None, g if g is not None else torch.zeros(
        1, 1, size - k + 1, size - k + 1, dtype=torch.float64))
    assert contract_ratio(got, refs[pass_], torch.float64) <= 1


@pytest.mark.parametrize("block", [None, 1])
@pytest.mark.parametrize("pass_", ["output", "grad_input"])
@pytest.mark.parametrize("channels", ["identical", "cancelling"])
def test_float64_fft_over_thousands_of_alike_channels(channels, pass_, block, monkeypatch):
    """Found by hostile passes 118 and 120: thousands of alike channels (input channels
    for the output, output channels for grad_input), a spike on a small background. Each
    bin's sum over the channels ran one channel after another, and alike terms round
    alike: it drifted by ~K u times its running sums, where the statistical model has
    noise. 4096 identical channels erred 1.6x the contract (grad_input 1.58x); 8191
    identical ones cancelled by a last one (so the sum is small, its running sums not)
    8.7x. float64's passes now sum channels in pairwise blocks (_fft_contract). (The
    cancelling grad_input held before too: its M bound sends those entries to direct
    sums.) ``block`` 1: blocks of one channel, so that their pairwise sum is all there is
    (added one after another, the blocks drift as the channels did)."""
    if block is not None:
        from scipy_layers import _fft_contract
        monkeypatch.setattr(_fft_contract, "CHANNEL_BLOCK", block)
    gen = torch.Generator().manual_seed(1)
    count, side, k = (4096, 8, 3) if channels == "identical" else (8192, 8, 3)
    background = torch.randn(1, 1, side, side, generator=gen, dtype=torch.float64)
    image = background * 1e-3 if channels == "identical" else background.sign() * 5e-5
    image[..., side // 2, side // 2] = 1.0
    kernel = torch.randn(1, 1, k, k, generator=gen, dtype=torch.float64)
    scales = torch.ones(count, dtype=torch.float64)
    if channels == "cancelling":
        scales[-1] = -(count - 1) * (1 + 1e-3)
    out = side - k + 1
    if pass_ == "output":
        x = image.expand(1, count, -1, -1) * scales[None, :, None, None]
        w, g = kernel.expand(1, count, -1, -1), torch.randn(1, 1, out, out, generator=gen,
                                                            dtype=torch.float64)
    else:
        grad = torch.randn(1, 1, out, out, generator=gen, dtype=torch.float64) * 1e-3
        grad[..., out // 2, out // 2] = 1.0
        x, w = image * 1e3, kernel.expand(count, 1, -1, -1)
        g = grad.expand(1, count, -1, -1) * scales[None, :, None, None]
    x, w, g = (t.contiguous() for t in (x, w, g))  # (as a user's own copies would be)
    xr = x.clone().requires_grad_()
    y = conv2d(xr, w, method="fft")
    got = {"output": y, "grad_input": torch.autograd.grad(y, xr, g)[0]}
    assert contract_ratio(got[pass_], conv_reference(x, w, None, g)[pass_], torch.float64) <= 1


@pytest.mark.parametrize("pass_", ["output", "grad_input"])
def test_float64_fft_certificate_at_its_threshold_over_sixteen_alike_channels_that_cancel(
        pass_, monkeypatch):
    """The drift of one block's channel sum (_fft_contract.CHANNEL_BLOCK) on a 2-point
    transform: 16 channels (input channels for the output, output channels for
    grad_input) of one random 1x2 plane, 15 alike and the last -15 (1 + ~1e-9) times it,
    against 1x1 kernels of one value, so each output cancels to ~1e-9 of its M. Each
    bin's sum runs over the 16 channels one after another, and alike terms round alike:
    it drifts by up to a few u times its terms' magnitudes, which the spread models
    (STATISTICAL_SAFETY) cover and E's linear term does not (sqrt(log2 T) = 1 here).
    The second pixel of every channel is set so that E just certifies it (tol M =
    1.01 E); 24 such planes. With a 1000x smaller safety factor (mutant E1) E is the
    linear term: 7 of 24 outputs (4 of 24 grad_inputs) erred past the contract at that
    pixel, up to 1.70x (1.65x); summed in blocks of 4 or 1, at most 0.95 (0.81). With
    it, 0.04 at most (native: up to 0.07 on such planes)."""
    bounds = _certificate_bounds(monkeypatch)
    gen = torch.Generator().manual_seed(0)
    channels, worst = 16, 0.0
    for _ in range(24):
        plane = torch.randn(1, 1, 1, 2, generator=gen, dtype=torch.float64)
        scales = torch.ones(channels, dtype=torch.float64)
        scales[-1] = -(channels - 1) * (1 + 1e-9 * torch.randn(1, generator=gen,
                                                                dtype=torch.float64))
        alike = (plane * scales[None, :, None, None]).contiguous()
        value = torch.randn(1, generator=gen, dtype=torch.float64)
        if pass_ == "output":
            x, g = alike, torch.zeros(1, 1, 1, 2, dtype=torch.float64)
            w = value.expand(1, channels, 1, 1).contiguous()
        else:
            x, g = torch.randn(1, 1, 1, 2, generator=gen, dtype=torch.float64), alike
            w = value.expand(channels, 1, 1, 1).contiguous()
        quiet = g if pass_ == "grad_input" else x
        quiet[..., 1] *= 1e-2

        def run():
            xr = x.clone().requires_grad_()
            y = conv2d(xr, w, method="fft")
            return y if pass_ == "output" else torch.autograd.grad(y, xr, g)[0]

        for _ in range(6):  # E grows a little with the pixel, its M in proportion
            bounds.clear()
            run()
            bound, tolerance = bounds[0 if pass_ == "output" else 1]
            scale = math.frexp(float(quiet.abs().max()))[1] + math.frexp(float(value.abs()))[1]
            m = float(quiet[..., 1].abs().sum() * value.abs()) * 2.0 ** -scale  # scaled, as E is
            quiet[..., 1] *= 1.01 * bound / (tolerance * m)
        worst = max(worst, contract_ratio(run(), conv_reference(x, w, None, g)[pass_],
                                          torch.float64))
    assert worst <= 1


@pytest.mark.parametrize("layer", ["conv2d", "scipy_conv2d"])
def test_float64_fft_certificate_at_its_threshold_beside_a_wide_spike_column(layer,
                                                                            monkeypatch):
    """Found by hostile pass 119: a spike column on a +-1 background of a 32x65536
    float64 image, tuned so that E just certifies every background pixel. A transform's
    errors for one large entry do not all spread: part come back as point errors at
    'ghosts' (here T_w / 2 along W, repeated down every row, which a kernel of equal
    rows sums coherently) of ~0.1-0.35 u times the spike however wide the row, while
    the spread models shrink as 1 / sqrt(T_w): 1.4x the contract there (native 0.02).
    E now has a point term (_fft_certificate.POINT_ERROR). Judged on the columns about
    the ghost (a full reference takes ~10 s)."""
    bounds = _certificate_bounds(monkeypatch)
    gen = torch.Generator().manual_seed(0)
    height, width, k = 32, 65536, 15
    w = torch.randn(k, generator=gen, dtype=torch.float64).repeat(k, 1)[None, None]
    x = (torch.randint(0, 2, (1, 1, height, width), generator=gen).double() * 2 - 1)
    column = width // 3

    def run():
        if layer == "conv2d":
            return conv2d(x, w, method="fft")
        return scipy_conv2d(x[0, 0], w[0, 0], None, "fft")[None, None]

    _spike_at_the_threshold(lambda spike: x[..., column].fill_(spike), run, bounds, 0, w)
    got = run()
    ghost = column + width // 2
    first, last = ghost - 3 * k, ghost + 2 * k  # outputs whose windows hold the ghost
    refs = conv_reference(x[..., first:last + k - 1], w, None,
                          torch.zeros(1, 1, height - k + 1, last - first, dtype=torch.float64))
    assert contract_ratio(got[..., first:last], refs["output"], torch.float64) <= 1


@pytest.mark.parametrize("layer", ["conv2d", "scipy_conv2d"])
def test_float64_fft_certificate_where_ten_spike_columns_ghosts_meet(layer):
    """Found by hostile pass 121 (a greedy search over pocketfft's rounding): 10 spike
    columns, 74x a +-1 background of 16x6000, signed so that their transforms' ghosts
    all add at output column 4000, against a kernel of one column of ones. The point
    term counted one spike (max|a|), so E stayed at one ghost's worth: 1.036x the
    contract there (native 0.000). It now counts every spike a row holds
    (_fft_certificate.peak); at any height these columns reach 0.10 of the contract.
    (Since hostile pass 132 E's linear term counts the result's norm, which holds these
    columns too: their E is the same without peak's line sums, which
    tests/test_fft_fixups.py checks by their definition.)"""
    height, width, k = 16, 6000, 15
    gen = torch.Generator().manual_seed(0)
    x = torch.randint(0, 2, (1, 1, height, width), generator=gen).double() * 2 - 1
    for column, sign in [(2800, 1), (3520, 1), (1120, 1), (1632, 1), (4016, 1), (4960, 1),
                         (496, 1), (3424, -1), (5056, 1), (3952, 1)]:
        x[..., :, column] = 74.0 * sign
    w = torch.zeros(1, 1, k, k, dtype=torch.float64)
    w[..., :, 0] = 1
    if layer == "conv2d":
        got = conv2d(x, w, method="fft")
    else:
        got = scipy_conv2d(x[0, 0], w[0, 0], None, "fft")[None, None]
    first, last = 3900, 4100  # (the outputs about column 4000: a full reference is slow)
    refs = conv_reference(x[..., first:last + k - 1], w, None,
                          torch.zeros(1, 1, height - k + 1, last - first, dtype=torch.float64))
    assert contract_ratio(got[..., first:last], refs["output"], torch.float64) <= 1


@pytest.mark.skipif(np.finfo(np.longdouble).nmant < 63, reason="needs extended long double")
@pytest.mark.parametrize("layer,pass_", [("conv2d", "output"), ("scipy_conv2d", "output"),
                                         ("conv2d", "grad_input")])
def test_float64_fft_certificate_where_the_image_matches_the_kernels_spectral_error(
        layer, pass_):
    """Found by hostile pass 126: the pass multiplies by the kernel's computed spectrum
    fl(W) = W + dW, so its result holds the image correlated with dw = IFFT(dW), linear in
    the image. A +-1 image (or grad_output) signed as dw about output p adds the whole of
    ||x||_2 ||dw||_2 into p, where the spread models spread it over ~sqrt(T) outputs; p's
    window holds +-1/16, just enough that p was certified: 512x512 and a 15x15 normal
    kernel, ~1.8x the contract there (1000x1000 +-1 kernel 4.7x; native 0.01). E now has
    _fft_certificate.LINEAR_ERROR's term, which sends p to a direct sum."""
    from scipy_layers._fft_operand import _spectrum
    size, k, beta = 512, 15, 1 / 16
    w = np.random.default_rng(0).standard_normal((k, k))
    half = np.zeros((size, size), np.longdouble)  # the library's scaled kernel, padded
    half[:k, :k] = np.ldexp(w, -math.frexp(float(np.abs(w).max()))[1])
    computed = _spectrum(half.astype(np.float64)[None, None], (size, size))[0, 0]
    dw = scipy.fft.irfft2(computed.astype(np.clongdouble) - scipy.fft.rfft2(half),
                          s=(size, size)).astype(np.float64)
    out = size - k + 1
    p = out // 3
    if pass_ == "output":  # y(p) = sum_j x(j) w(j - p): x(j) = sign dw(j - p)
        index = (np.arange(size) - p) % size
        quiet = (slice(p, p + k),) * 2
    else:  # grad_input(p) = sum_j g(j) w(p - j): g(j) = sign dw(p - j)
        index = (p - np.arange(out)) % size
        quiet = (slice(p - k + 1, p + 1),) * 2
    signs = np.where(dw[index[:, None], index[None, :]] >= 0, 1.0, -1.0)
    signs[quiet] *= beta
    weight = torch.from_numpy(w)[None, None]
    if pass_ == "output":
        x = torch.from_numpy(signs)[None, None]
        got = (conv2d(x, weight, method="fft") if layer == "conv2d" else
               scipy_conv2d(x[0, 0], weight[0, 0], None, "fft")[None, None])
        rows = x[..., p - 8:p + k + 8, p - 8:p + k + 8]
        ref = conv_reference(rows, weight, None, torch.zeros(1, 1, 17, 17,
                                                             dtype=torch.float64))["output"]
        got = got[..., p - 8:p + 9, p - 8:p + 9]
    else:
        g = torch.from_numpy(signs)[None, None]
        x = torch.zeros(1, 1, size, size, dtype=torch.float64, requires_grad=True)
        (got,) = torch.autograd.grad(conv2d(x, weight, method="fft"), x, g)
        padded = torch.nn.functional.pad(g, (k - 1,) * 4)  # grad_input = full conv of g
        window = padded[..., p - 8:p + k + 8, p - 8:p + k + 8]
        ref = conv_reference(window, weight.flip(2, 3), None, torch.zeros(
            1, 1, 17, 17, dtype=torch.float64))["output"]
        got = got[..., p - 8:p + 9, p - 8:p + 9]
    assert contract_ratio(got, ref, torch.float64) <= 1


@pytest.mark.skipif(np.finfo(np.longdouble).nmant < 63, reason="needs extended long double")
def test_float64_fft_certificate_where_every_channel_matches_its_kernels_spectral_error():
    """Hostile pass 129: pass 126's matched image, one per input channel. Sixteen 15x15
    integer kernels, each channel of a 256x256 +-1 image signed as its own kernel's
    spectral error dw_c about output p, so that all sixteen channels' errors add at p
    (coherently: ~0.30 of E at any channel count, 1 to 64). E's linear term sums
    ||x_c|| ||w_c|| over the channels, which covers it; summed as if the channels' errors
    were independent (sqrt(K) smaller, mutant), p's window at +-23 2^-13 is certified and
    errs 1.16x the contract (64 channels: 1.72x). The real E sends p to a direct sum.
    (Since hostile pass 132 the linear term also counts the result's norm, which alone
    covers these coherent channels: mutant cr8 is a known survivor.)"""
    from scipy_layers._fft_operand import _spectrum
    channels, size, k, p = 16, 256, 15, 80
    rng = np.random.default_rng(16271)
    w = np.stack([rng.integers(-255, 256, (k, k)).astype(np.float64) for _ in range(channels)])
    half = np.zeros((channels, size, size), np.longdouble)  # the scaled kernels, padded
    half[:, :k, :k] = np.ldexp(w, -math.frexp(float(np.abs(w).max()))[1])
    computed = _spectrum(half.astype(np.float64)[None], (size, size))[0]
    dw = scipy.fft.irfft2(computed.astype(np.clongdouble) - scipy.fft.rfft2(half),
                          s=(size, size)).astype(np.float64)
    index = (np.arange(size) - p) % size  # y(p) = sum_j x(j) w(j - p): x(j) = sign dw(j - p)
    x = np.where(dw[:, index[:, None], index[None, :]] >= 0, 1.0, -1.0)
    x[:, p:p + k, p:p + k] *= 23 * 2.0 ** -13
    xt, wt = torch.from_numpy(x)[None], torch.from_numpy(w)[None]
    got = conv2d(xt, wt, method="fft")[..., p - 4:p + 5, p - 4:p + 5]
    ref = conv_reference(xt[..., p - 4:p + k + 4, p - 4:p + k + 4], wt, None,
                         torch.zeros(1, 1, 9, 9, dtype=torch.float64))["output"]
    assert contract_ratio(got, ref, torch.float64) <= 1


@pytest.mark.skipif(np.finfo(np.longdouble).nmant < 63, reason="needs extended long double")
@pytest.mark.parametrize("layer", ["conv2d", "scipy_conv2d"])
def test_float64_fft_certificate_where_the_kernel_matches_a_spikes_spectral_error(layer):
    """Found by hostile pass 127: the other side of pass 126's mechanism. One spike on a
    quiet line (1 on a constant beta, 1x59049 float64, a 3^10 transform) has a computed
    spectrum fl(X) = X + dX whose error da = IFFT(dX) holds ~0.97 sqrt(log2 T) u of the
    spike, mostly at a few "ghosts" off it; a full-size kernel shaped as da (0 at the
    spike) gathers ~||da|| ||w||_2 into the one output, about LINEAR_ERROR's term, and
    beta is just high enough that the output is certified. Without the point term
    (3 POINT_ERROR u ||a||_1 max|w|, ~6x the linear term here: the ghosts hold most of
    w's energy) it errs 1.10x the contract (mutant cr3); 0 with it (a direct sum)."""
    from scipy_layers._fft_operand import _spectrum
    n, spike, beta = 59049, 16411, 4.611210897564888e-07
    x = np.full((1, n), beta)
    x[0, spike] = 1.0
    half = (x / 2).astype(np.longdouble)  # the library's scaled image (power of two)
    computed = _spectrum(x[None, None] / 2, (1, n))[0, 0]
    da = scipy.fft.irfft2(computed.astype(np.clongdouble) - scipy.fft.rfft2(half),
                          s=(1, n)).astype(np.float64)
    da[0, spike] = 0.0
    w = torch.from_numpy(np.round(da / np.abs(da).max() * 255))
    xt = torch.from_numpy(x)
    got = (conv2d(xt[None, None], w[None, None], method="fft") if layer == "conv2d" else
           scipy_conv2d(xt, w, None, "fft")[None, None])
    ref = conv_reference(xt[None, None], w[None, None], None,
                         torch.zeros(1, 1, 1, 1, dtype=torch.float64))["output"]
    assert contract_ratio(got, ref, torch.float64) <= 1


@pytest.mark.parametrize("layer", ["conv2d", "scipy_conv2d"])
def test_float64_fft_grad_input_where_the_kernel_matches_the_round_trips_error(layer):
    """Hostile pass 132: grad_output of one entry (out 1x1, so standing_out is 0 and E
    has no point term) and a 1x6561 kernel (a 3^8 transform) shaped as one row of the
    round trip's error: grad_input = IFFT(G fl(FFT w)) is w itself, and the twiddles'
    errors of w's transform and of the inverse one are both linear in w, so a kernel
    signed as that row (estimated by regression over 262,144 random inputs, stored as
    int8, tests/fixtures/roundtrip_row_kernel_6561.npy) gathers ~1.1-1.2x the linear
    term sqrt(log2 T) u ||g|| ||w|| into output 4000, whose window (w(4000) = 409/4096)
    is just quiet enough to be certified: 1.16x the contract, no fix-up (native 0: the
    sums are exact). E's linear term now counts the result's norm too (the inverse's
    share), which sends the output to a direct sum (0.65 at worst where M lets it
    count)."""
    import pathlib
    q = 4000
    w = np.load(pathlib.Path(__file__).parent / "fixtures" / "roundtrip_row_kernel_6561.npy")
    w = w.astype(np.float64)
    w[q] = 409 / 4096
    weight = torch.from_numpy(w)[None]
    x = torch.zeros(1, w.size, dtype=torch.float64, requires_grad=True)
    g = torch.ones(1, 1, dtype=torch.float64)
    if layer == "conv2d":
        (got,) = torch.autograd.grad(conv2d(x[None, None], weight[None, None], method="fft"),
                                     x, g[None, None])
    else:
        (got,) = torch.autograd.grad(scipy_conv2d(x, weight, None, "fft"), x, g)
    ref = conv_reference(x, weight, None, g)["grad_input"]
    assert contract_ratio(got, ref, torch.float64) <= 1


@pytest.mark.skipif(np.finfo(np.longdouble).nmant < 63, reason="needs extended long double")
def test_float64_fft_grad_weight_e_covers_an_alternating_images_spectral_error(monkeypatch):
    """Hostile pass 131: an alternating +-1 segment (the last 28419 entries of a 1x59049
    float64 line, a 3^10 transform, zeros before it) has a computed spectrum whose error
    dx = IFFT(fl(X) - X) holds 1.39 sqrt(log2 T) u ||x||_2, past LINEAR_ERROR's 1 (the
    excess sits in X's few large bins near Nyquist; whole alternating lines of odd length
    reach 1.49, segments 1.73), 0.78 of its energy on the zeros. grad_output shaped as dx
    there gathers 1.17x the linear term into grad_weight's output 0 of the FFT pass
    (sum_r x(r) g(r) over a window of zeros: exact 0, M 0). E covers it through the
    result's norm (the spread model's ||r|| and the row model's rowmax(r): x correlates
    with g where the error lies), ~9x the error here; without both, E is the linear term
    and the raw error passes it (mutant). Output 0 itself (M = 0) is recomputed exactly."""
    from scipy_layers import _fft_certify
    from scipy_layers._fft_operand import _spectrum
    n, loud = 59049, 28419
    out = n - loud
    x = np.zeros((1, n))
    x[0, out:] = (-1.0) ** np.arange(loud)
    half = (x / 2).astype(np.longdouble)  # the library's scaled image (max 1 -> 1/2)
    computed = _spectrum(x[None, None] / 2, (1, n))[0, 0]
    dx = scipy.fft.irfft2(computed.astype(np.clongdouble) - scipy.fft.rfft2(half),
                          s=(1, n)).astype(np.float64)
    g = dx[0, :out]
    raw, certify = [], _fft_certify.certify

    def spy(result, bound, tolerance, *args, **kwargs):
        raw.append((result.copy(), bound.copy()))
        return certify(result, bound, tolerance, *args, **kwargs)

    monkeypatch.setattr(_fft_certify, "certify", spy)
    weight = torch.zeros(1, 1, 1, loud + 1, dtype=torch.float64, requires_grad=True)
    y = conv2d(torch.from_numpy(x)[None, None], weight, method="fft")
    (got,) = torch.autograd.grad(y, weight, torch.from_numpy(g)[None, None, None])
    result, bound = raw[-1]  # grad_weight's pass, in the scaled units of x / 2, g / 2^e
    assert result.shape == (1, 1, 1, loud + 1)
    scaled_g = np.ldexp(g, -math.frexp(float(np.abs(g).max()))[1]).astype(np.longdouble)
    exact = float(np.dot(half[0, :out], scaled_g))  # 0: x is 0 on output 0's window
    assert abs(float(result[0, 0, 0, 0]) - exact) <= float(bound[0, 0])
    assert float(got[0, 0, 0, 0]) == 0.0
