"""The FFT layer's DFT matrices and its H axis run first and folded by their symmetry
(scipy_layers._dft_matrices), against numpy.fft in float64: every length's odd and even
cases, batches, layouts, non-finite pixels, unwritten scratch, the rounding bound that
the zero-bin check (_dft_axes.zero_bin_floor) takes for this order, and the rule that
picks the fold. _dft_axes's transform and _dft_adjoint's adjoint with the fold by its
rule, forced on and forced off: tests/test_fft_methods.py."""
import numpy as np
import pytest

from scipy_layers import _dft_axes, _dft_matrices
from scipy_layers._dft_matrices import (folds, h_adjoint_rows, h_assemble, h_fold_spectrum,
                                        h_forward_rows, h_halves, twiddles, w_adjoint,
                                        w_forward)
from tests._nan_scratch import nan_scratch

LENGTHS = [*range(1, 18), 31, 64, 97, 127, 128]
COMPLEX = {np.float32: np.complex64, np.float64: np.complex128}


def images(shape, dtype, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def spectra(shape, dtype, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(COMPLEX[dtype])


def folded_rfft2(x):
    """H folded first, then the W matrix: as _dft_axes runs it on a (True, True) plan."""
    lines = (h_forward_rows(x) @ w_forward(x.shape[-1], x.dtype)).view(COMPLEX[x.dtype.type])
    return h_assemble(lines, x.shape[-2])


def folded_adjoint(g, width):
    real = g.real.dtype
    rows = h_fold_spectrum(g).view(real) @ w_adjoint(width, real)
    return h_adjoint_rows(rows, g.shape[-2])


def exact_adjoint(g, width):
    """Re sum_k sum_j g[k, j] exp(+2 pi i (k r / H + j b / W)): the adjoint of rfft2 by a
    W matrix, which counts each kept column once (no mirror weights)."""
    height, bins = g.shape[-2:]
    along_h = np.exp(2j * np.pi * np.outer(np.arange(height), np.arange(height)) / height)
    along_w = np.exp(2j * np.pi * np.outer(np.arange(bins), np.arange(width)) / width)
    return np.einsum("kr,...kj,jb->...rb", along_h, g.astype(np.complex128), along_w).real


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("height", LENGTHS)
@pytest.mark.parametrize("shape", [(5,), (2, 8), (2, 2, 7)])
def test_both_directions_match_numpy_fft(height, shape, dtype):
    """Within (H + W + 8) eps of the sum of the input's magnitudes: the size of the
    rounding both orders allow (_dft_axes.zero_bin_floor), far below any wrong sign,
    row or scale."""
    *batch, width = shape
    x = images((*batch, height, width), dtype, seed=height)
    g = spectra((*batch, height, width // 2 + 1), dtype, seed=height)
    before = x.copy(), g.copy()
    for ours, exact, given in ((folded_rfft2(x), np.fft.rfft2(x.astype(np.float64)), x),
                               (folded_adjoint(g, width), exact_adjoint(g, width), g)):
        assert ours.shape == exact.shape and ours.dtype in (x.dtype, g.dtype)
        tolerance = (height + width + 8) * np.finfo(dtype).eps * np.abs(given).sum()
        assert np.abs(ours - exact).max() <= tolerance
    assert np.array_equal(x, before[0]) and np.array_equal(g, before[1])  # left as they were


@pytest.mark.parametrize("height", [1, 2, 7, 8, 127])
def test_any_layout_gives_the_same_bits(height):
    x, g = images((3, height, 6), np.float64), spectra((3, height, 4), np.float64)
    for array, step in ((x, h_forward_rows), (g, h_fold_spectrum)):
        spaced = np.full((*array.shape[:-1], 2 * array.shape[-1]), np.nan, array.dtype)
        spaced[..., ::2] = array
        for view in (np.asfortranarray(array), spaced[..., ::2],
                     array.transpose(2, 1, 0).copy().transpose(2, 1, 0)):
            assert np.array_equal(step(view), step(array))
    rows = images((3, 2 * (height // 2 + 1), 6), np.float64)
    assert np.array_equal(h_adjoint_rows(np.asfortranarray(rows), height),
                          h_adjoint_rows(rows, height))


@pytest.mark.parametrize("height", [1, 2, 3, 4, 9, 10])
def test_no_result_reads_an_unwritten_element(height, monkeypatch):
    """Every buffer the module takes from the workspace starts as NaN here: the results
    are the same bits (the folded spectrum's zero rows are written, not assumed)."""
    x, g = images((2, height, 5), np.float64), spectra((2, height, 3), np.float64)
    expected = folded_rfft2(x), folded_adjoint(g, 5)
    monkeypatch.setattr(_dft_matrices, "scratch", nan_scratch)
    assert np.array_equal(folded_rfft2(x), expected[0])
    assert np.array_equal(folded_adjoint(g, 5), expected[1])


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("height", [1, 2, 5, 8])
def test_a_non_finite_value_spoils_its_column_only(value, height):
    """Along H alone: a NaN or inf at (r, b) makes column b of every row non-finite and
    leaves the other columns finite, in both directions."""
    x, rows = images((height, 4), np.float64), images((2 * (height // 2 + 1), 4), np.float64)
    x[height // 2, 1] = rows[height // 2, 1] = value
    g = spectra((height, 4), np.float64)
    g[height // 2, 1] = value
    with np.errstate(all="ignore"):  # (the layers call these under numpy_quiet)
        results = h_forward_rows(x), h_adjoint_rows(rows, height), h_fold_spectrum(g)
    for result in results:
        assert not np.isfinite(result[..., 1]).all()
        assert np.isfinite(result[..., [0, 2, 3]]).all()
    # every cosine row meets the value (0 * NaN is NaN); the sines of H <= 2 are none
    assert not np.isfinite(results[0][:height // 2 + 1, 1]).any()
    assert not np.isfinite(results[1][..., 1]).any()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("height,width", [(7, 9), (8, 8), (61, 20), (127, 127), (9, 128)])
def test_each_component_errs_within_the_bound_zero_bin_floor_takes(height, width, dtype):
    """|error| of each component of Z <= (gamma_(W+2) + gamma_(h+2)) sum |x| (the module's
    doc): on images with a wide dynamic range and on constant ones (exact zero bins)."""
    unit = np.finfo(dtype).eps / 2
    gamma = lambda n: n * unit / (1 - n * unit)  # noqa: E731
    bound_factor = gamma(width + 2) + gamma(height // 2 + 3)
    rng = np.random.default_rng(height)
    wide = images((height, width), dtype) * (10.0 ** rng.integers(-6, 7, (height, 1)))
    for x in (wide.astype(dtype), np.full((height, width), -3.25, dtype)):
        error = folded_rfft2(x).astype(np.complex128) - np.fft.rfft2(x.astype(np.float64))
        bound = bound_factor * np.abs(x.astype(np.float64)).sum()
        assert np.abs(error.real).max() <= bound and np.abs(error.imag).max() <= bound


@pytest.mark.parametrize("height,width,dtype,expected", [
    (127, 127, np.float64, True), (127, 127, np.float32, True),
    (97, 97, np.float64, True), (113, 113, np.float64, True),
    (113, 113, np.float32, False), (97, 97, np.float32, False),  # float32's GEMM is faster
    (79, 79, np.float64, False), (127, 7, np.float64, False),  # too little to save
    (31, 4096, np.float64, False), (13, 130, np.float32, False),  # columns too short
])
def test_the_fold_runs_on_large_images_only(height, width, dtype, expected):
    assert folds(height, width, dtype) is expected


@pytest.mark.parametrize("height", LENGTHS)
def test_the_halves_are_the_dft_rows_that_meet_the_folded_columns(height):
    cosines, sines = h_halves(height, np.dtype(np.float64))
    half, pairs = height // 2 + 1, (height - 1) // 2
    assert cosines.shape == (half, half) and sines.shape == (half, pairs)
    turns = np.outer(np.arange(half), np.arange(height)) / height
    np.testing.assert_allclose(cosines, np.cos(2 * np.pi * turns[:, :half]), atol=1e-13)
    np.testing.assert_allclose(sines, np.sin(2 * np.pi * turns[:, 1:pairs + 1]), atol=1e-13)
    assert not sines[0].any() and (height % 2 or not sines[-1].any())
    for matrix in (cosines, sines):
        with pytest.raises(ValueError, match="read-only"):
            matrix[...] = 1


def test_quarter_turns_are_exact():
    table = twiddles(8, 8, 8, -1)
    turns = np.outer(np.arange(8), np.arange(8)) % 8
    for turn, value in {0: 1, 2: -1j, 4: -1, 6: 1j}.items():
        assert (table[turns == turn] == value).all()
    np.testing.assert_allclose(table, np.exp(-2j * np.pi * turns / 8), atol=1e-15)


@pytest.mark.parametrize("height,width", [(9, 128), (127, 127), (128, 3), (1, 64)])
def test_the_zero_bin_floor_covers_the_folded_orders_bound(height, width):
    """zero_bin_floor takes the larger of the two orders' bounds: on wide images the
    folded order's, sqrt(2) (W + H/2 + 5) u A, is the larger."""
    x = images((height, width), np.float32)
    centred = x - x.mean()
    spread = np.abs(centred.astype(np.float64)).sum()
    folded_bound = np.sqrt(2) * (width + height / 2 + 5) * np.finfo(np.float32).eps / 2 * spread
    assert _dft_axes.zero_bin_floor(x) >= 1.25 * folded_bound * (1 - 1e-6)
