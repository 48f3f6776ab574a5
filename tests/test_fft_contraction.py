"""The FFT convolution's channel contraction (_fft_contract.contract_channels): each of
its branches (broadcast product, stacked matmul over bins into a scratch buffer, einsum)
gives einsum's products from operands in either memory layout, in the C-contiguous
layout the inverse transforms take, and a recycled buffer never leaks into a later
result. And its transforms (_fft_into's
rfft_n / fft_n / ifft / irfft_n) are scipy.fft's, bit for bit."""
import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from scipy_layers import _fft_contract, _fft_conv, _workspace, conv2d
from tests import _nan_scratch

PATTERNS = ["ncuv,ocuv->nouv", "nouv,ocuv->ncuv", "ncuv,nouv->ocuv"]


def spectra(rng, dtype, *shape):
    return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(dtype)


def operands(pattern, rng, dtype, n, c_in, c_out, bins):
    x, w, g = (spectra(rng, dtype, *lead, *bins) for lead in ((n, c_in), (c_out, c_in),
                                                                (n, c_out)))
    return {"ncuv,ocuv->nouv": (x, w), "nouv,ocuv->ncuv": (g, w),
            "ncuv,nouv->ocuv": (x, g)}[pattern]


@pytest.fixture
def nan_scratch(monkeypatch):
    """Every scratch buffer starts as NaN: a result that reads an unwritten element is NaN."""
    monkeypatch.setattr(_fft_contract, "scratch", _nan_scratch.nan_scratch)


CASES = [*itertools.product((1, 2, 5), (1, 2, 7), (1, 2, 3), ((4, 3), (5, 1), (1, 1))),
         (8, 16, 32, (16, 9)), (4, 8, 9, (6, 4)), (2, 128, 1, (3, 2))]  # >= 256 a bin


# the stacked matmul's chunks of bins: as set; one bin each; a few, the last one short
CHUNK_BYTES = [_fft_contract.BINS_CHUNK_BYTES, 1, 5000]


def bins_first(spectrum):
    """``spectrum`` (P, Q, U, V) as a view of (U, V, P, Q) memory, as _spectrum lays
    out the operands of passes that contract by matmul."""
    return np.ascontiguousarray(spectrum.transpose(2, 3, 0, 1)).transpose(2, 3, 0, 1)


LAYOUTS = {"as made": lambda a: a, "bins first": bins_first,
           "bins first, conjugated": lambda a: bins_first(a.conj()).conj()}


@pytest.mark.parametrize("blocks", [None, 2], ids=["whole", "pairwise blocks of 2"])
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("chunk_bytes", CHUNK_BYTES)
@pytest.mark.parametrize("min_products", [_fft_contract.MATMUL_MIN_PRODUCTS, 1])
@pytest.mark.parametrize("dtype", [np.complex128, np.complex64])
@pytest.mark.parametrize("pattern", PATTERNS)
def test_every_branch_gives_einsums_products(pattern, dtype, min_products, chunk_bytes,
                                             layout, blocks, nan_scratch, monkeypatch):
    """In either memory layout of the operands (and of their conjugates, which the
    forward and grad_weight passes take), whole or summed in pairwise blocks (float64's
    passes: the cases sum 3 to 128 terms, in 2 to 64 blocks, the last one short or not)."""
    if blocks is not None:
        monkeypatch.setattr(_fft_contract, "CHANNEL_BLOCK", blocks)
    monkeypatch.setattr(_fft_contract, "MATMUL_MIN_PRODUCTS", min_products)
    monkeypatch.setattr(_fft_contract, "BINS_CHUNK_BYTES", chunk_bytes)
    rng = np.random.default_rng(3)
    tolerance = 1e-12 if dtype == np.complex128 else 1e-5
    for n, c_in, c_out, bins in CASES:
        a, b = (LAYOUTS[layout](operand) for operand in
                operands(pattern, rng, dtype, n, c_in, c_out, bins))
        got = _fft_contract.contract_channels(pattern, a, b, pairwise=blocks is not None)
        expected = np.einsum(pattern, a, b)
        case = (n, c_in, c_out, bins)
        assert got.shape == expected.shape and got.dtype == expected.dtype, case
        assert got.flags.c_contiguous, case
        scale = np.einsum(pattern, np.abs(a), np.abs(b))  # each product's own magnitude
        assert np.all(np.abs(got - expected) <= tolerance * scale), case


def test_bins_first_where_every_pass_multiplies(monkeypatch):
    """contracts_by_matmul, which decides the operands' layout, says True exactly where
    all three passes of contract_channels run the stacked matmul."""
    called = []
    matmul_bins = _fft_contract._matmul_bins
    monkeypatch.setattr(_fft_contract, "_matmul_bins",
                        lambda *args: called.append(1) or matmul_bins(*args))
    rng = np.random.default_rng(8)
    for n, c_in, c_out in itertools.product((1, 2, 3, 8), (1, 2, 3, 16), (1, 2, 5, 32)):
        passes = []
        for pattern in PATTERNS:
            called.clear()
            _fft_contract.contract_channels(pattern, *operands(pattern, rng, np.complex128, n,
                                                               c_in, c_out, (3, 2)))
            passes.append(bool(called))
        assert _fft_contract.contracts_by_matmul(n, c_in, c_out) == all(passes), (n, c_in, c_out)


@pytest.mark.parametrize("pattern", PATTERNS)
def test_mixed_precision_operands_give_einsums_dtype(pattern, monkeypatch):
    """np.einsum's type promotion in every branch: complex64 with complex128 gives
    complex128, from the stacked matmul too (its buffers typed by both operands)."""
    monkeypatch.setattr(_fft_contract, "MATMUL_MIN_PRODUCTS", 1)
    rng = np.random.default_rng(5)
    for n, c_in, c_out in [(3, 4, 5), (1, 1, 2), (2, 1, 3)]:
        a, b = operands(pattern, rng, np.complex128, n, c_in, c_out, (4, 3))
        for left, right in [(a.astype(np.complex64), b), (a, b.astype(np.complex64))]:
            got = _fft_contract.contract_channels(pattern, left, right)
            expected = np.einsum(pattern, left, right)
            assert got.dtype == expected.dtype == np.complex128, (n, c_in, c_out)
            np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)


def test_one_images_passes_contract_by_einsum(monkeypatch):
    """With one image the forward and grad_input products are vector-matrix, which
    einsum runs 2-3x faster than the stacked matmul: however many channels, neither goes
    to _matmul_bins (grad_weight is a broadcast product)."""
    called = []
    monkeypatch.setattr(_fft_contract, "_matmul_bins",
                        lambda *args: called.append(args) or np.zeros(0))
    rng = np.random.default_rng(2)
    for pattern in PATTERNS:
        a, b = operands(pattern, rng, np.complex128, 1, 32, 64, (3, 2))
        got = _fft_contract.contract_channels(pattern, a, b)
        np.testing.assert_allclose(got, np.einsum(pattern, a, b), rtol=1e-12, atol=1e-12)
    assert called == []


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=str)
def test_channel_heavy_passes_multiply_their_spectra_uncopied(dtype, monkeypatch):
    """Where every pass multiplies (contracts_by_matmul), each of the six products of a
    forward+backward (three passes, their M's in float32) gets operands BLAS takes as
    they lie; elsewhere the spectra keep their (P, Q, U, V) memory."""
    seen = []
    matmul_bins = _fft_contract._matmul_bins

    def spy(left, right, like):
        seen.append(_fft_contract._blas_ready(left) and _fft_contract._blas_ready(right))
        return matmul_bins(left, right, like)

    monkeypatch.setattr(_fft_contract, "_matmul_bins", spy)
    x = torch.randn(4, 8, 20, 20, dtype=dtype, requires_grad=True)
    w = torch.randn(16, 8, 5, 5, dtype=dtype, requires_grad=True)
    y = conv2d(x, w, method="fft")
    torch.autograd.grad(y, (x, w), torch.randn_like(y))
    assert len(seen) >= 3 and all(seen), seen
    xp = np.random.default_rng(0).standard_normal((4, 2, 20, 20))
    state = _fft_conv.fft_forward(xp, np.ones((3, 2, 5, 5)), (0, 0, 0, 0), (16, 16))[1]
    assert not _fft_contract.contracts_by_matmul(4, 2, 3)
    assert state.x.spectrum.flags.c_contiguous and state.w.spectrum.flags.c_contiguous


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=str)
def test_the_layout_of_the_spectra_changes_no_result(dtype, monkeypatch):
    """A channel-heavy fft pass (bins first) against the same pass with the spectra as
    made: the same values to rounding, and native's, forward and both gradients, with
    padding and the certificate's fix-ups of a float32 pass."""
    generator = torch.Generator().manual_seed(9)
    x = torch.randn(4, 8, 20, 20, dtype=dtype, generator=generator)
    x[0, :, 3:9, 3:9] *= 1e-5  # (a dim patch: some pixels need M, or fix-ups)
    x.requires_grad_()
    w = torch.randn(16, 8, 5, 5, dtype=dtype, generator=generator, requires_grad=True)
    assert _fft_contract.contracts_by_matmul(4, 8, 16)
    g = torch.randn(4, 16, 18, 18, dtype=dtype, generator=generator)

    def run():
        y = conv2d(x, w, padding=1, method="fft")
        return (y, *torch.autograd.grad(y, (x, w), g))

    ours = run()
    monkeypatch.setattr(_fft_conv, "contracts_by_matmul", lambda *shape: False)
    as_made = run()
    y = F.conv2d(x, w, padding=1)
    native = (y, *torch.autograd.grad(y, (x, w), g))
    tight = dict(rtol=1e-12, atol=1e-12) if dtype == torch.float64 else dict(rtol=1e-6,
                                                                              atol=1e-6)
    loose = dict(rtol=1e-10, atol=1e-10) if dtype == torch.float64 else dict(rtol=1e-4,
                                                                              atol=1e-3)
    for got, other, expected in zip(ours, as_made, native):
        torch.testing.assert_close(got, other, **tight)
        torch.testing.assert_close(got, expected, **loose)


@pytest.mark.parametrize("chunk_bytes", CHUNK_BYTES)
def test_non_finite_bins_stay_in_their_own_products(chunk_bytes, monkeypatch):
    """A NaN bin of one image spoils that image's products only, in every branch (the
    callers route non-finite operands elsewhere, but a wrong index would show here)."""
    monkeypatch.setattr(_fft_contract, "BINS_CHUNK_BYTES", chunk_bytes)
    rng = np.random.default_rng(4)
    for pattern, (n, c_in, c_out) in itertools.product(PATTERNS, [(3, 4, 2), (8, 6, 9)]):
        a, b = operands(pattern, rng, np.complex128, n, c_in, c_out, (5, 3))
        a[1, 0, 2, 1] = np.nan
        got = _fft_contract.contract_channels(pattern, a, b)
        assert np.array_equal(np.isnan(got), np.isnan(np.einsum(pattern, a, b))), pattern
        assert np.isnan(got).any(), pattern


@pytest.mark.parametrize("chunk_bytes", CHUNK_BYTES[::2])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=str)
def test_pooled_products_do_not_leak_into_later_calls(dtype, chunk_bytes, monkeypatch):
    """Channel-heavy passes whose products come from (and go back to) the pool, run
    twice on different data and interleaved with another shape: each result agrees with
    native, so no recycled buffer was read before it was written or handed out twice
    (also with the stacked matmul in chunks of a few bins)."""
    monkeypatch.setattr(_fft_contract, "BINS_CHUNK_BYTES", chunk_bytes)
    _workspace.clear_workspace()
    generator = torch.Generator().manual_seed(6)
    shapes = [((4, 16, 24, 24), (32, 16, 7, 7), 3), ((2, 8, 20, 20), (16, 8, 5, 5), 0)]
    tolerance = dict(rtol=1e-10, atol=1e-10) if dtype == torch.float64 else dict(rtol=1e-4,
                                                                                 atol=1e-3)
    for _ in range(2):
        for x_shape, w_shape, padding in shapes:
            x = torch.randn(x_shape, dtype=dtype, generator=generator, requires_grad=True)
            w = torch.randn(w_shape, dtype=dtype, generator=generator, requires_grad=True)
            y = conv2d(x, w, padding=padding, method="fft")
            g = torch.randn(y.shape, dtype=dtype, generator=generator)
            ours = (y, *torch.autograd.grad(y, (x, w), g))
            y_native = F.conv2d(x, w, padding=padding)
            theirs = (y_native, *torch.autograd.grad(y_native, (x, w), g))
            for got, expected in zip(ours, theirs):
                torch.testing.assert_close(got, expected, **tolerance)


@pytest.mark.parametrize("real", [np.float64, np.float32])
def test_the_convolutions_transforms_are_scipy_ffts_bit_for_bit(real):
    """_fft_into's rfft_n / fft_n / ifft / irfft_n (pocketfft called directly, as
    _fft_conv's passes use them) against scipy.fft's public functions: padding, cutting,
    strided views and both normalisations give the same bits."""
    import scipy.fft

    from scipy_layers import _fft_into
    rng = np.random.default_rng(7)
    for lead, length, n in [((2, 3), 7, 16), ((1,), 16, 16), ((4, 2), 5, 9), ((3,), 12, 10)]:
        x = rng.standard_normal((*lead, 6, length)).astype(real)
        for view in (x, x[..., ::2, :], np.swapaxes(np.swapaxes(x, -1, -2).copy(), -1, -2)):
            got = _fft_into.rfft_n(view, n, -1)
            np.testing.assert_array_equal(got, scipy.fft.rfft(view, n=n, axis=-1))
            for rows in (6, 8, 4):
                spectrum = scipy.fft.rfft(view, n=n, axis=-1)
                np.testing.assert_array_equal(_fft_into.fft_n(spectrum, rows, -2),
                                              scipy.fft.fft(spectrum, n=rows, axis=-2))
                assert np.array_equal(spectrum, scipy.fft.rfft(view, n=n, axis=-1))  # intact
            full = scipy.fft.fft(scipy.fft.rfft(view, n=n, axis=-1), axis=-2)
            np.testing.assert_array_equal(_fft_into.ifft(full, -2), scipy.fft.ifft(full, axis=-2))
            partial = scipy.fft.ifft(full, axis=-2)[..., :3, :]
            np.testing.assert_array_equal(_fft_into.irfft_n(partial, n, -1),
                                          scipy.fft.irfft(partial, n=n, axis=-1))
