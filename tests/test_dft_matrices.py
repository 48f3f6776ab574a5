"""The FFT layer's DFT matrices and its H axis, folded by their symmetry or as a complex
product (scipy_layers._dft_matrices), against numpy.fft in float64: every length's odd
and even cases, batches, layouts, non-finite lines, unwritten scratch, the rounding
bound that the zero-bin check (_dft_axes.zero_bin_floor) takes for this stage, and the
rule that picks the fold."""
import numpy as np
import pytest

from scipy_layers import _dft_matrices
from scipy_layers._dft_matrices import folds, h_adjoint, h_folded, h_forward, twiddles

LENGTHS = [*range(1, 18), 31, 64, 97, 127, 128]
COMPLEX = {np.float32: np.complex64, np.float64: np.complex128}


def lines(shape, dtype, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(COMPLEX[dtype])


def exact_forward(t):
    return np.fft.fft(t.astype(np.complex128), axis=-2)


def exact_adjoint(t):
    return np.fft.ifft(t.astype(np.complex128), axis=-2, norm="forward")


@pytest.mark.parametrize("dtype,tolerance", [(np.float64, 1e-14), (np.float32, 3e-6)])
@pytest.mark.parametrize("height", LENGTHS)
@pytest.mark.parametrize("batch", [(), (3,), (2, 2)])
@pytest.mark.parametrize("folded", [True, False])
def test_both_directions_match_numpy_fft(height, batch, dtype, tolerance, folded):
    t = lines((*batch, height, 5), dtype, seed=height)
    before = t.copy()
    for ours, exact in ((h_forward(t, folded), exact_forward(t)),
                        (h_adjoint(t, folded), exact_adjoint(t))):
        assert ours.shape == t.shape and ours.dtype == t.dtype
        assert np.abs(ours - exact).max() <= tolerance * np.abs(exact).max()
    assert np.array_equal(t, before)  # (the input is left as it was)


@pytest.mark.parametrize("height", [1, 2, 7, 8, 127])
@pytest.mark.parametrize("folded", [True, False])
def test_any_layout_gives_the_same_bits(height, folded):
    t = lines((3, height, 6), np.float64)
    spaced = np.full((3, height, 12), np.nan, t.dtype)
    spaced[..., ::2] = t
    for view in (np.asfortranarray(t), t.transpose(2, 1, 0).copy().transpose(2, 1, 0),
                 spaced[..., ::2], np.broadcast_to(t[:1], t.shape)):
        t = np.ascontiguousarray(view)
        assert np.array_equal(view, t)
        assert np.array_equal(h_forward(view, folded), h_forward(t, folded))
        assert np.array_equal(h_adjoint(view, folded), h_adjoint(t, folded))


@pytest.mark.parametrize("height", [1, 2, 3, 4, 9, 10])
def test_no_result_reads_an_unwritten_element(height, monkeypatch):
    """Every buffer the module takes from the workspace starts as NaN here: the results
    are the same bits (the folded adjoint's zero rows are written, not assumed)."""
    t = lines((2, height, 4), np.float64)
    expected = h_forward(t, True), h_adjoint(t, True)
    monkeypatch.setattr(_dft_matrices, "scratch",
                        lambda shape, dtype: np.full(shape, np.nan, dtype=dtype))
    assert np.array_equal(h_forward(t, True), expected[0])
    assert np.array_equal(h_adjoint(t, True), expected[1])


@pytest.mark.parametrize("direction", [h_forward, h_adjoint])
@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("height", [1, 2, 5, 8])
@pytest.mark.parametrize("folded", [True, False])
def test_a_non_finite_line_spoils_its_column_only(direction, value, height, folded):
    t = lines((height, 4), np.float64)
    t[height // 2, 1] = value
    with np.errstate(all="ignore"):  # (the layers call it under numpy_quiet)
        result = direction(t, folded)
    assert not np.isfinite(result[:, 1]).any()
    assert np.isfinite(result[:, [0, 2, 3]]).all()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("height", [7, 8, 61, 127])
@pytest.mark.parametrize("folded", [True, False])
def test_each_component_errs_within_the_bound_zero_bin_floor_takes(height, dtype, folded):
    """|error| of each component of Z[k] <= gamma_(H+2) sum_r |T[r]|: here on lines with
    a wide dynamic range and on lines that cancel (one repeated value)."""
    unit = np.finfo(dtype).eps / 2
    gamma = (height + 2) * unit / (1 - (height + 2) * unit)
    rng = np.random.default_rng(height)
    wide = lines((height, 8), dtype) * (10.0 ** rng.integers(-6, 7, (height, 1)))
    same = np.full((height, 8), 3.0 - 7.0j, COMPLEX[dtype])
    for t in (wide.astype(COMPLEX[dtype]), same):
        bound = gamma * np.abs(t.astype(np.complex128)).sum(axis=-2)
        for ours, exact in ((h_forward(t, folded), exact_forward(t)),
                            (h_adjoint(t, folded), exact_adjoint(t))):
            error = ours.astype(np.complex128) - exact
            assert (np.abs(error.real) <= bound).all() and (np.abs(error.imag) <= bound).all()


@pytest.mark.parametrize("height", LENGTHS)
def test_the_folded_matrix_is_half_the_dft_rows(height):
    matrix = h_folded(height, np.dtype(np.float64))
    half = height // 2 + 1
    assert matrix.shape == (2 * half, height)
    cos, sin = matrix[:half], matrix[half:]
    rows = np.arange(half)[:, None] * np.arange(height)[None, :]
    np.testing.assert_allclose(cos + 1j * sin, np.exp(2j * np.pi * rows / height), atol=1e-15)
    assert not sin[0].any()
    if height % 2 == 0:
        assert not sin[-1].any() and set(cos[-1]) <= {1.0, -1.0}
    with pytest.raises(ValueError, match="read-only"):
        matrix[0, 0] = 1


def test_quarter_turns_are_exact():
    table = twiddles(8, 8, 8, -1)
    turns = np.outer(np.arange(8), np.arange(8)) % 8
    exact = {0: 1, 2: -1j, 4: -1, 6: 1j}
    for turn, value in exact.items():
        assert (table[turns == turn] == value).all()
    np.testing.assert_allclose(table, np.exp(-2j * np.pi * turns / 8), atol=1e-15)


@pytest.mark.parametrize("height,bins,dtype,expected", [
    (127, 64, np.float64, True), (127, 64, np.float32, True),   # 127x127 images
    (97, 49, np.float32, True), (79, 40, np.float64, True),
    (79, 40, np.float32, False),                                # float32's GEMM is faster
    (61, 31, np.float64, False), (127, 7, np.float64, False),   # too little to save
    (31, 4096, np.float64, False), (13, 66, np.float32, False),  # lines too short
])
def test_the_fold_runs_on_long_lines_only(height, bins, dtype, expected):
    assert folds(height, bins, dtype) is expected


@pytest.mark.parametrize("shape", [(2, 127, 64), (13, 66)])
def test_the_rule_picks_the_path(shape):
    t = lines(shape, np.float64)
    rule = folds(*shape[-2:], np.float64)
    assert np.array_equal(h_forward(t), h_forward(t, rule))
    assert np.array_equal(h_adjoint(t), h_adjoint(t, rule))
    assert not np.array_equal(h_forward(t), h_forward(t, not rule))
