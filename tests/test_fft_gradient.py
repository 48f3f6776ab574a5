"""The FFT layer's gradient spectrum (scipy_layers/_fft_gradient.py): its quick ways give
the careful ways' bits on every kind of input (zero, NaN and subnormal bins, non-finite
and huge gradients, overflowing quotients), and mirror weights applied as a halving give
the broadcast product's bits."""
import numpy as np
import pytest

from scipy_layers._spectral import mirror_ones


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("zeros", ["none", "one", "all", "nan", "subnormal"])
def test_gradient_divide_matches_the_masked_divide_bit_for_bit(dtype, zeros):
    """_fft_gradient.divide_where_nonzero skips the mask when no magnitude is 0 or NaN: on every
    kind of magnitude array it gives what the masked divide gives, bit for bit."""
    from scipy_layers._fft_gradient import divide_where_nonzero
    rng = np.random.default_rng(0)
    magnitude = np.abs(rng.standard_normal((3, 17, 9))).astype(dtype)
    scale = rng.standard_normal(magnitude.shape).astype(dtype)
    scale[0, 0, :3] = [np.inf, -np.inf, np.nan]
    if zeros == "one":
        magnitude[1, 5, 4] = 0
    elif zeros == "all":
        magnitude[...] = 0
    elif zeros == "nan":
        magnitude[2, 3, 0] = np.nan
    elif zeros == "subnormal":
        magnitude[1, 2, 3] = np.finfo(dtype).smallest_subnormal
    expected = scale.copy()
    with np.errstate(all="ignore"):
        np.divide(expected, magnitude, out=expected, where=magnitude != 0)
        divide_where_nonzero(scale, magnitude)
    np.testing.assert_array_equal(scale, expected)  # (NaN where NaN, signs of zero too)
    assert np.array_equal(np.signbit(scale), np.signbit(expected))


GRADIENT_SPECTRUM_CASES = ["finite", "zero bin", "nan bin", "inf in g", "nan in g",
                           "quotient overflows", "huge g", "sum overflows", "edges of g",
                           "subnormal g"]


def _gradient_weights(kind, width, dtype):
    """None, the layer's mirror weights for an image ``width`` wide, or 1 / 1/2 by turns."""
    from scipy_layers._spectral import mirror_weights
    columns = width // 2 + 1
    if kind == "mirror":
        return mirror_weights(np, columns, width, dtype)
    if kind == "alternating":
        return np.where(np.arange(columns) % 2 == 0, 1, 0.5).astype(dtype)
    return None


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("weighted", [None, "alternating", "mirror"])
@pytest.mark.parametrize("case", GRADIENT_SPECTRUM_CASES)
@pytest.mark.parametrize("shape", [(2, 9, 9), (2, 64, 129)], ids=["small", "halved"])
def test_gradient_spectrum_quick_way_equals_the_careful_way(dtype, weighted, case, shape):
    """_fft_gradient.gradient_spectrum divides without a mask, np.errstate or a minimum and keeps
    the result only where it came out finite; on every kind of input it gives what the
    careful way (mask, overflow check, Z/|Z| first) gives, bit for bit. ("halved": large
    enough that mirror weights are applied as a halving, _fft_gradient.HALVING_MIN_ELEMENTS.)"""
    from scipy_layers import _fft_gradient
    from scipy_layers._fft_into import complex_of
    rng = np.random.default_rng(7)
    tiny, huge = np.finfo(dtype).smallest_subnormal, np.finfo(dtype).max
    spectrum = (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(
        complex_of(np.dtype(dtype)))
    grad = rng.standard_normal(shape).astype(dtype)
    if case == "zero bin":
        spectrum[1, 4, 2] = 0
    elif case == "nan bin":
        spectrum[0, 3, 1] = complex(np.nan, 1)
    elif case == "inf in g":
        grad[1, 0, 0] = -np.inf
    elif case == "nan in g":
        grad[0, 8, 4] = np.nan
    elif case == "quotient overflows":
        spectrum[0, 2, 3] = complex(tiny, -tiny)
    elif case == "huge g":
        grad[1, 1, 1] = huge
        spectrum[1, 1, 1] = complex(0.25, 0)
    elif case == "sum overflows":  # every quotient finite, their sum not: a false alarm
        grad[...] = huge / 4
        spectrum[...] = 2
    elif case == "edges of g":  # the columns a halving copies instead of scaling
        grad[0, 5, 0], grad[1, 2, -1], grad[0, 1, -1], grad[1, 3, 0] = np.nan, -np.inf, -0.0, tiny
    elif case == "subnormal g":  # halving them rounds: both ways must round alike
        grad *= tiny * 3
    magnitude = np.abs(spectrum)
    width = 2 * (shape[-1] - 1)
    weights = _gradient_weights(weighted, width, dtype)
    ones = mirror_ones(shape[-1], width) if weighted == "mirror" else None  # as the layer
    with np.errstate(all="ignore"):  # as inside the layer
        quick = _fft_gradient.gradient_spectrum(spectrum, grad, weights, magnitude, ones=ones)
        careful = _fft_gradient.gradient_spectrum_carefully(spectrum, grad, weights, magnitude,
                                                            ones=ones)
        product = _fft_gradient.gradient_spectrum(spectrum, grad, weights, magnitude)
    real = np.dtype(dtype).newbyteorder("=").str.replace("f", "u")
    assert np.array_equal(quick.view(real), careful.view(real))  # bits, NaN payloads too
    assert np.array_equal(quick.view(real), product.view(real))  # halved or multiplied
    if case == "finite":
        assert np.isfinite(quick).all()
    if case == "quotient overflows":  # the careful way's Z/|Z| first: still finite
        assert np.isfinite(quick).all()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("width", [1, 2, 3, 4, 255, 256])
def test_mirror_weights_as_a_halving_are_the_product(dtype, width):
    """Past HALVING_MIN_ELEMENTS, _weighted applies mirror weights, given their weight-1
    columns (_spectral.mirror_ones), as x 0.5 with those columns copied: bit for bit the
    broadcast product, NaN, inf, -0 and subnormals included, on strided g too. Without
    ``ones`` any weights keep the product, whatever they hold."""
    from scipy_layers import _fft_gradient
    from scipy_layers._spectral import mirror_ones, mirror_weights
    columns = width // 2 + 1
    rows = -(-_fft_gradient.HALVING_MIN_ELEMENTS // columns) + 1
    rng = np.random.default_rng(width)
    grad = rng.standard_normal((2, rows, columns)).astype(dtype)
    specials = [np.nan, np.inf, -np.inf, -0.0, np.finfo(dtype).smallest_subnormal,
                -3 * np.finfo(dtype).smallest_subnormal, np.finfo(dtype).max]
    for index, value in enumerate(specials):  # in the first, last and a middle column
        for column in {0, columns // 2, columns - 1}:
            grad[index % 2, index, column] = value
    weights = mirror_weights(np, columns, width, dtype)
    ones = mirror_ones(columns, width)
    assert set(ones) == set(np.flatnonzero(weights == 1)) and (np.delete(weights, ones) == 0.5).all()
    bits = np.dtype(dtype).str.replace("f", "u")
    for g in (grad, np.asfortranarray(grad), grad.transpose(0, 2, 1).copy().transpose(0, 2, 1)):
        assert g.size >= _fft_gradient.HALVING_MIN_ELEMENTS
        with np.errstate(all="ignore"):
            expected = g * weights
            got = _fft_gradient._weighted(g, weights, ones)
        assert np.array_equal(got.view(bits), expected.view(bits))
    other = weights.copy()
    other[columns // 2] = 0.25
    with np.errstate(all="ignore"):
        assert np.array_equal(_fft_gradient._weighted(grad, other).view(bits),
                              (grad * other).view(bits))


@pytest.mark.parametrize("width", [256, 255])
def test_the_layer_halves_its_mirror_weights_and_matches_native(width, monkeypatch):
    """fft_abs's backward hands its weight-1 columns to the gradient spectrum (so large
    gradients take the halving) and its gradient still matches native's."""
    import torch

    import scipy_layers
    from scipy_layers import _fft_gradient
    seen = []
    real = _fft_gradient._weighted
    monkeypatch.setattr(_fft_gradient, "_weighted",
                        lambda grad, weights, ones=None: seen.append((grad.size, ones))
                        or real(grad, weights, ones))
    x = torch.randn(2, 64, width, dtype=torch.float64, requires_grad=True)
    g = torch.randn(2, 64, width // 2 + 1, dtype=torch.float64)
    (ours,) = torch.autograd.grad(scipy_layers.fft_abs(x), x, g)
    (theirs,) = torch.autograd.grad(scipy_layers.native_fft_abs(x), x, g)
    assert seen == [(g.numel(), mirror_ones(width // 2 + 1, width))]
    assert g.numel() >= _fft_gradient.HALVING_MIN_ELEMENTS
    torch.testing.assert_close(ours, theirs, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("method", ["fft", "matrix"])
@pytest.mark.parametrize("shape", [(3, 8, 6), (4, 8, 8), (16, 4)], ids=str)
def test_fft_abs_tangent_is_zero_at_zero_bins_as_native(shape, method):
    """Forward mode (torch.func.jvp) of fft_abs where |Z| = 0 (near-constant images on
    sizes whose transforms give exact zeros in both libraries; elsewhere a bin of ~1e-16
    leaves the tangent ill-conditioned): native's tangent Re(conj(sgn Z) dZ) is 0 there
    (sgn(0) = 0); _fft_gradient.phase must give 0, not whatever its array held."""
    import torch
    from scipy_layers import fft_abs
    x = torch.full(shape, 0.75, dtype=torch.float64)
    x[..., 1, 1] = 0.25  # (not every bin zero, and the zero ones spread over the spectrum)
    for seed in range(3):  # (the bins' garbage, if read, differs from call to call)
        t = torch.randn(shape, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
        _, ours = torch.func.jvp(lambda v: fft_abs(v, method), (x,), (t,))
        _, native = torch.func.jvp(lambda v: torch.fft.rfft2(v).abs(), (x,), (t,))
        torch.testing.assert_close(ours, native, rtol=1e-9, atol=1e-9)
    x = torch.ones(shape, dtype=torch.float64)  # every bin but the first is exactly 0
    _, ours = torch.func.jvp(lambda v: fft_abs(v, method), (x,), (t,))
    _, native = torch.func.jvp(lambda v: torch.fft.rfft2(v).abs(), (x,), (t,))
    torch.testing.assert_close(ours, native, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("shape", [(3, 5, 7), (4, 6), (2, 9, 1)], ids=str)
def test_incorrect_fft_gives_the_tutorials_gradient_of_the_inputs_shape(shape):
    """BadFFTFunction's backward is irfft2(grad_output) with s= the input's (H, W), as its
    docstring says: odd widths too (irfft2 alone would give an even width)."""
    import torch
    from scipy_layers import incorrect_fft
    x = torch.randn(shape, dtype=torch.float64, requires_grad=True)
    y = incorrect_fft(x)
    g = torch.randn(y.shape, dtype=torch.float64)
    (got,) = torch.autograd.grad(y, x, g)
    assert got.shape == x.shape
    np.testing.assert_allclose(got.numpy(), np.fft.irfft2(g.numpy(), s=shape[-2:]),
                               rtol=1e-12, atol=1e-12)


def _subnormal_steps(dtype, count: int) -> float:
    """``count`` of the smallest subnormal steps of torch ``dtype`` (smallest normal x
    eps): subnormal gradients hold fewer digits, so comparisons allow a few of these."""
    import torch
    return count * torch.finfo(dtype).smallest_normal * torch.finfo(dtype).eps


# (dtype, |g|, |x|): g / |Z| below the smallest normal float, every value normal or
# subnormal as given, far from overflow
TINY_QUOTIENTS = [("float32", 1e-30, 1e12), ("float32", 1e-20, 1e20), ("float32", 1e-40, 1e10),
                  ("float64", 1e-300, 1e20), ("float64", 1e-310, 1e10)]


@pytest.mark.parametrize("method", ["auto", "fft", "matrix"])
@pytest.mark.parametrize("dtype,g_scale,x_scale", TINY_QUOTIENTS, ids=str)
@pytest.mark.parametrize("shape", [(1, 1), (5, 7), (2, 9, 16)], ids=str)
def test_a_tiny_grad_output_on_a_large_spectrum_keeps_its_digits(method, dtype, g_scale,
                                                                 x_scale, shape):
    """c g / |Z| can underflow where g Z/|Z|, native's order, cannot: the quotient then
    keeps few digits or none (hostile pass 159: a 1x1 float32 image of 1e10 with g = 1e-40
    gave a gradient of 0 where native's is g; 1e-30 on 1e12 was 5e-4 off; a 1e20 float64
    image with g = 1e-300 1e-5). _fft_gradient takes Z/|Z| first there, as native."""
    import torch
    from scipy_layers import fft_abs
    from scipy_layers.agreement import TOLERANCE
    dtype = getattr(torch, dtype)
    gen = torch.Generator().manual_seed(5)
    x = (torch.randn(shape, generator=gen, dtype=torch.float64) * x_scale).to(dtype)
    out_shape = (*shape[:-1], shape[-1] // 2 + 1)
    g = (torch.randn(out_shape, generator=gen, dtype=torch.float64) * g_scale).to(dtype)
    ours, = torch.autograd.grad(fft_abs(x.requires_grad_(), method), x, g)
    native, = torch.autograd.grad(torch.fft.rfft2(x).abs(), x, g)
    if shape == (1, 1):  # |Z| = |x|: the gradient is g sgn(x), exactly
        assert torch.equal(ours, g * x.sign())
    torch.testing.assert_close(ours, native, rtol=TOLERANCE[dtype],
                               atol=_subnormal_steps(dtype, 64))


@pytest.mark.parametrize("method", ["auto", "fft", "matrix"])
@pytest.mark.parametrize("dtype,g_scale,x_scale", TINY_QUOTIENTS[1:4], ids=str)
def test_one_underflowing_image_or_bin_beside_normal_ones_agrees_with_native(method, dtype,
                                                                            g_scale, x_scale):
    """Hostile pass 160: the underflow check sends the whole call Z/|Z| first; images and
    bins beside the one whose quotient underflows (normal g, normal x, exact zeros in g,
    subnormal g) still get native's gradient, also under the caller's np.seterr(all="raise"),
    which is left as it was."""
    import torch
    from scipy_layers import fft_abs
    from scipy_layers.agreement import TOLERANCE
    dtype = getattr(torch, dtype)
    gen = torch.Generator().manual_seed(11)
    x = torch.randn((3, 12, 10), generator=gen, dtype=torch.float64)
    g = torch.randn((3, 12, 6), generator=gen, dtype=torch.float64)
    x[0] *= x_scale  # the one image whose quotients underflow
    g[0] *= g_scale
    g[1, ::2] *= g_scale  # tiny g beside normal ones in a normal image
    g[2, 3] = 0.0
    g[2, 5] = _subnormal_steps(dtype, 3)
    x, g = x.to(dtype), g.to(dtype)
    native, = torch.autograd.grad(torch.fft.rfft2(x.requires_grad_()).abs(), x, g)
    with np.errstate(all="raise"):
        ours, = torch.autograd.grad(fft_abs(x, method), x, g)
        assert set(np.geterr().values()) == {"raise"}
    floor = _subnormal_steps(dtype, 64 * 11)
    for image in range(3):  # norm-wise per image: their scales differ by decades
        error = (ours[image] - native[image]).double().norm()
        assert error <= TOLERANCE[dtype] * native[image].double().norm() + floor, image
