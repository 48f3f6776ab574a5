"""The FFT layer's two ways of transforming an axis (scipy_layers._dft_axes): the rule
that picks them, the DFT matrices, and the matrix path against native torch where the
sample table does not reach (lengths near the limit, primes, odd batch layouts).
Every sample of the table also runs "scipy-fft" and "scipy-matrix" (tests/test_harness.py
and the other table-driven tests)."""
import weakref

import numpy as np
import pytest
import scipy.fft
import torch

from scipy_layers import fft_abs, native_fft_abs
from scipy_layers import _dft_adjoint, _dft_axes, _dft_matrices
from scipy_layers._dft_axes import AxisPlan, choose_plan
from scipy_layers.agreement import max_errors
from scipy_layers.samples import FFT_ABS_SAMPLES
from tests._native_quirks import RFFT2_TAKES_EXPANDED_INPUTS


@pytest.mark.parametrize("height,width,dtype,plan", [
    (16, 16, np.float32, (False, False)),   # small factors: pocketfft's butterflies
    (77, 121, np.float64, (False, False)),  # 7 and 11 have passes too
    (96, 96, np.float32, (False, False)),
    (13, 17, np.float32, (True, True)),     # primes: a generic pass or Bluestein
    (127, 127, np.float32, (True, True)),   # pocketfft would run Bluestein
    (127, 127, np.float64, (True, True)),
    (69, 69, np.float32, (True, True)),     # 3 x 23: the cost model, per dtype
    (69, 69, np.float64, (False, False)),
    (91, 91, np.float32, (False, False)),   # 7 x 13: not cheap enough (the margin)
    (104, 104, np.float32, (False, False)),  # 8 x 13
    (128, 128, np.float32, (False, False)),
    (131, 131, np.float32, (False, False)),  # prime, but over the matrix limit
    (256, 256, np.float64, (False, False)),
    (13, 130, np.float32, (False, False)),  # H alone never: scipy.fft's H pass is faster
    (127, 8, np.float64, (False, False)),
    (131, 26, np.float64, (False, True)),   # W alone: per axis
])
def test_auto_plan_picks_per_axis_by_the_cost_model(height, width, dtype, plan):
    assert choose_plan(height, width, np.dtype(dtype)) == AxisPlan(*plan)


def test_forced_methods_ignore_the_cost_model():
    assert choose_plan(256, 256, np.dtype(np.float32), "matrix") == AxisPlan(True, True)
    assert choose_plan(16, 16, np.dtype(np.float32), "fft") == AxisPlan(False, False)


def test_the_mixed_samples_really_mix():
    """The table's mixed samples run the (fft, matrix) plan through every table-driven
    test, and a short matrix-able H beside a long W, which "auto" now runs on scipy.fft
    alone (choose_plan: a matrix H axis only beside a matrix W axis)."""
    plans = {s.name: choose_plan(*s.shapes[0][-2:], np.dtype(np.float32))
             for s in FFT_ABS_SAMPLES}
    assert plans["short-h-long-w"] == AxisPlan(False, False)  # (H alone: never "auto"'s)
    assert plans["long-h-short-w"] == AxisPlan(False, True)
    assert plans["primes"] == AxisPlan(True, True)
    assert plans["square"] == AxisPlan(False, False)


def test_pocketfft_cost_follows_its_factorisation():
    cost = _dft_axes._pocketfft_cost
    assert cost(64) == 12 * 64                     # 2^6: six radix-2 units of 2
    assert cost(15) == (3 + 5) * 15                # small odd primes at face value
    assert cost(127) == 3.0 * 16 * 256             # Bluestein on 256 = 2^8 beats 1.1 * 127
    assert cost(7) == pytest.approx(1.1 * 7 * 7)   # a direct pass, larger prime x1.1


PLANS = [AxisPlan(a, b) for a in (False, True) for b in (False, True)]


@pytest.fixture(params=[None, True, False], ids=["fold-by-rule", "folded", "unfolded"])
def fold(request, monkeypatch):
    """A matrix H axis run first and folded (_dft_matrices) as its rule says, or forced
    on or off whatever the size."""
    if request.param is not None:
        monkeypatch.setattr(_dft_matrices, "folds", lambda *arguments: request.param)
    return request.param


@pytest.mark.parametrize("shape", [(3, 9, 12), (13, 300), (2, 127, 127)])
def test_every_rfft2_plan_matches_scipy(shape, fold):
    x = np.random.default_rng(0).standard_normal(shape)
    for plan in PLANS:
        if plan.matrix_w and shape[-1] > _dft_axes.MATRIX_MAX_LENGTH:
            continue  # (a W matrix is capped there)
        np.testing.assert_allclose(_dft_axes.rfft2(x, plan), scipy.fft.rfft2(x), atol=1e-12,
                                   err_msg=str(plan))


@pytest.mark.parametrize("shape", [(6, 8), (5, 7), (1, 1), (4, 1), (3, 2), (2, 8, 7),
                                   (13, 300), (2, 127, 127)])
def test_the_adjoint_is_the_adjoint(shape, fold):
    """Re <rfft2(x), P> over the kept bins equals <x, adjoint(P * weights)> for every
    plan: the identity the gradient rests on (the weights undo irfft's doubling)."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal(shape)
    bins = (*shape[:-1], shape[-1] // 2 + 1)
    p = rng.standard_normal(bins) + 1j * rng.standard_normal(bins)
    for plan in PLANS:
        if plan.matrix_w and shape[-1] > _dft_axes.MATRIX_MAX_LENGTH:
            continue
        weights, _ = _dft_adjoint.adjoint_columns(plan, p.shape[-1], shape[-1],
                                               np.dtype(np.float64))
        assert (weights is None) == plan.matrix_w
        back = _dft_adjoint.adjoint(p.copy() if weights is None else p * weights, shape[-1], plan)
        assert back.shape == shape and back.dtype == np.float64
        expected = np.sum((_dft_axes.rfft2(x, plan) * p.conj()).real)
        assert np.sum(x * back) == pytest.approx(expected, rel=1e-12, abs=1e-12), (shape, plan)


def test_cached_matrices_are_read_only():
    for matrix in (_dft_matrices.w_forward(8, np.dtype(np.float32)),
                   _dft_matrices.w_adjoint(8, np.dtype(np.float32)),
                   _dft_matrices.h_matrix(8, np.dtype(np.float64), -1),
                   *_dft_matrices.h_halves(8, np.dtype(np.float64))):
        with pytest.raises(ValueError, match="read-only"):
            matrix[0, 0] = 1


def test_the_adjoint_weights_have_one_bounded_cache():
    """The gradient's mirror weights and the columns where they are 1 come from one
    cached call, read-only, the same objects on every call (a second cache, refreshed
    apart, held up to twice the arrays: a hostile pass)."""
    _dft_adjoint.adjoint_columns.cache_clear()
    fft_plan = AxisPlan(False, False)
    for width in range(4, 4 + 300):
        _dft_adjoint.adjoint_columns(fft_plan, width // 2 + 1, width, np.dtype(np.float64))
    assert _dft_adjoint.adjoint_columns.cache_info().currsize <= 256
    weights, ones = _dft_adjoint.adjoint_columns(fft_plan, 9, 16, np.dtype(np.float64))
    assert _dft_adjoint.adjoint_columns(fft_plan, 9, 16, np.dtype(np.float64))[0] is weights
    assert not weights.flags.writeable and ones == (0, 8)
    assert weights.tolist() == [1.0] + [0.5] * 7 + [1.0]
    assert _dft_adjoint.adjoint_columns(fft_plan, 8, 15, np.dtype(np.float32))[1] == (0,)
    assert _dft_adjoint.adjoint_columns(AxisPlan(False, True), 9, 16,
                                     np.dtype(np.float64)) == (None, None)
    held = weakref.ref(weights)
    del weights
    _dft_adjoint.adjoint_columns.cache_clear()
    assert held() is None  # (nothing else keeps them)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("shape", [(127, 127), (128, 3), (2, 3, 113, 97), (1, 128)])
def test_matrix_path_matches_native_up_to_its_length_limit(shape, dtype):
    x = torch.randn(shape, dtype=dtype, requires_grad=True)
    x_native = x.detach().clone().requires_grad_(True)
    y, y_native = fft_abs(x, "matrix"), native_fft_abs(x_native)
    g = torch.randn_like(y)
    (grad,), (grad_native,) = (torch.autograd.grad(y, x, g),
                               torch.autograd.grad(y_native, x_native, g))
    tolerance = 2e-5 if dtype == torch.float32 else 1e-12  # norm-wise, as agreement.py
    for ours, theirs in ((y, y_native), (grad, grad_native)):
        assert max_errors(ours, theirs).max_rel <= tolerance


def test_matrix_path_reads_strided_views_through_their_strides():
    base = torch.randn(2, 20, 30, dtype=torch.float64)
    for view in (base[:, 1:17:2, 3:28], base.transpose(-1, -2)[:, ::3],
                 base[:1, :9, :7].expand(4, 9, 7)):
        # (the oracle on a copy where torch's rfft2 fails on expanded inputs)
        oracle = view if RFFT2_TAKES_EXPANDED_INPUTS else view.contiguous()
        torch.testing.assert_close(fft_abs(view, "matrix"), native_fft_abs(oracle), rtol=1e-12,
                                   atol=1e-12)


def _structured_images(height, width):
    """Images whose spectrum is exactly zero at most bins (for any height and width)."""
    rows, cols = np.indices((height, width))
    yield np.full((height, width), 0.1)                     # constant
    yield rows * 1.0                                        # constant along each row
    yield np.zeros((height, width))                         # all bins zero
    yield np.cos(2 * np.pi * cols / width) + 3.0            # one frequency
    yield np.stack([np.full((height, width), 2.0), rows * 1.0 + cols])  # a batch of two
    if height % 2 == 0 and width % 2 == 0:
        yield ((rows + cols) % 2).astype(float)             # checkerboard


def _input_gradient(fn, x, grad_output):
    """d(fn(x)) / dx against ``grad_output``, on a fresh leaf copy of ``x``."""
    leaf = x.detach().clone().requires_grad_()
    return torch.autograd.grad(fn(leaf), leaf, grad_output)[0]


_PI = np.longdouble("3.14159265358979323846264338327950288")


def _longdouble_gradient(x: torch.Tensor, grad_output: torch.Tensor) -> torch.Tensor:
    """d(sum g |rfft2(x)|) / dx of one float64 image by direct DFTs in long double:
    Re(F_H^T (g conj(Z) / |Z|) F_W) with Z = F_H x F_W^T, twiddles from integer-reduced
    angles. An oracle ~eps(long double) * n from exact, far below either FFT's error."""
    height, width = x.shape
    image, g = x.numpy().astype(np.longdouble), grad_output.numpy().astype(np.longdouble)

    def twiddles(rows, cols, length):
        angle = (np.outer(np.arange(rows), np.arange(cols)) % length) * (2 * _PI / length)
        return np.cos(angle) - 1j * np.sin(angle)  # (complex long double)

    f_h, f_w = twiddles(height, height, height), twiddles(width // 2 + 1, width, width)
    spectrum = f_h @ image @ f_w.T
    phase = np.conj(spectrum) / np.abs(spectrum)
    return torch.from_numpy((f_h.T @ (g * phase) @ f_w).real.astype(np.float64))


def _gradient(fn, image, dtype):
    x = torch.tensor(image, dtype=dtype)
    g = torch.randn(*x.shape[:-1], x.shape[-1] // 2 + 1, dtype=dtype,
                    generator=torch.Generator().manual_seed(0))
    return _input_gradient(fn, x, g)


def _numpy_dtype(dtype: torch.dtype) -> np.dtype:
    return np.dtype(str(dtype).removeprefix("torch."))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("shape", [(13, 17), (16, 26), (8, 127), (300, 13)])
def test_auto_follows_scipy_fft_where_the_spectrum_is_exactly_zero(shape, dtype):
    """d|Z|/dZ jumps from sgn(0) = 0 to a unit phase, so at an exact zero bin the gradient
    depends on whether the transform's rounding lands on 0; a matrix DFT's never does.
    Where a matrix result is within its rounding of zero, "auto" redoes the call on
    scipy.fft: its gradient is then scipy.fft's, bit for bit, as before matrices. (Where
    pocketfft and native round differently, the two differ at such bins: a limitation
    named in docs/layers.md ("Zero bins and offsets in the FFT layer"), not new here;
    tests/test_gradcheck.py has an image where both give exact zeros.)"""
    assert any(choose_plan(*shape, _numpy_dtype(dtype)))  # a matrix axis
    for image in _structured_images(*shape):
        ours = _gradient(fft_abs, image, dtype)
        assert torch.equal(ours, _gradient(lambda x: fft_abs(x, "fft"), image, dtype))


@pytest.mark.parametrize("shape", [(16, 16), (13, 17), (31, 29)])
def test_forced_matrices_centre_offset_images(shape):
    """method="matrix" takes each image's mean out before its products too (_dft_axes.rfft2),
    so 1000 + 1e-4 * noise keeps its small bins' phases: its gradient is within ~1e-12 of
    direct DFTs in long double (native's butterflies: ~2e-9; uncentred matrices, which the
    suite passed with: ~3e-9)."""
    generator = torch.Generator().manual_seed(0)
    x = 1000 + 1e-4 * torch.randn(shape, dtype=torch.float64, generator=generator)
    g = torch.randn(shape[0], shape[1] // 2 + 1, dtype=torch.float64, generator=generator)
    ours = _input_gradient(lambda t: fft_abs(t, "matrix"), x, g)
    assert max_errors(ours, _longdouble_gradient(x, g)).max_rel < 1e-10


def test_autos_zero_bin_floor_is_the_batchs_largest_not_its_smallest():
    """One floor serves the whole batch (_dft_axes.zero_bin_floor: the largest image sum),
    so an image of ~1e-22 noise beside one with exactly zero bins cannot lower it below
    the latter's matrix rounding (~2e-16, where scipy.fft gives exact zeros). With the
    floor of the smallest image the matrix result was kept: the zero bins' gradient then
    took the rounding's phase where scipy.fft's takes sgn(0) = 0."""
    height, width = 13, 17
    assert all(choose_plan(height, width, np.dtype(np.float64)))
    columns = np.random.default_rng(1).standard_normal(width)
    columns -= columns.mean()
    constant_columns = np.tile(columns, (height, 1))  # exactly zero bins on scipy.fft
    assert (np.abs(scipy.fft.rfft2(constant_columns)) == 0).any()
    tiny = 1e-22 * np.random.default_rng(0).standard_normal((height, width))
    image = np.stack([tiny, constant_columns])
    ours = _gradient(fft_abs, image, torch.float64)
    assert torch.equal(ours, _gradient(lambda x: fft_abs(x, "fft"), image, torch.float64))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_transform_redoes_calls_the_floor_cannot_vouch_for(dtype):
    """Found by the hostile tester: a NaN bin made "min <= floor" False (one NaN image
    kept matrix noise in the batch's other images); sums near overflow gave NaN bins;
    underflowing products were outside the relative bound (subnormal constant images)."""
    big, tiny = (2e38, 1e-44) if dtype == np.float32 else (1e307, 1e-315)
    ones = np.ones((13, 17), dtype=dtype)
    nan_in_batch = np.stack([ones, ones])
    nan_in_batch[1, 0, 0] = np.nan
    for x in (nan_in_batch, ones * big, np.tile([big, big, -big, -big], (13, 5))[:, :17],
              ones * tiny, ones * np.inf):
        x = x.astype(dtype)
        assert any(choose_plan(*x.shape[-2:], x.dtype))
        with np.errstate(all="ignore"):  # the layer calls it under numpy_quiet
            assert _dft_axes.transform(x)[2] == AxisPlan(False, False)
    assert _dft_axes.zero_bin_floor(ones * tiny) > 0


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_one_bad_image_leaves_the_others_like_scipy_fft(dtype):
    x = torch.ones(2, 13, 17, dtype=dtype)
    x[1, 0, 0] = float("nan")
    g = torch.randn(2, 13, 9, dtype=dtype, generator=torch.Generator().manual_seed(0))
    ours, theirs = x.clone().requires_grad_(), x[:1].clone().requires_grad_()
    fft_abs(ours).backward(g)
    fft_abs(theirs, "fft").backward(g[:1])  # image 0 alone, on scipy.fft
    assert torch.equal(ours.grad[0], theirs.grad[0])
    assert torch.isnan(ours.grad[1]).all()


def test_transform_redoes_only_calls_with_a_bin_at_the_rounding_floor():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((13, 17)).astype(np.float32)
    assert _dft_axes.transform(x)[2] == AxisPlan(True, True)  # random: matrices kept
    for image in _structured_images(13, 17):
        assert _dft_axes.transform(image.astype(np.float32))[2] == AxisPlan(False, False)
        assert _dft_axes.transform(image, "matrix")[2] == AxisPlan(True, True)  # as asked


def test_forced_matrix_gives_rounding_noise_at_exact_zero_bins():
    """What "matrix" is documented to do (fft.py): outputs agree with native to rounding,
    the gradient stays finite, but a zero bin's noise phase enters it."""
    x = torch.full((4, 6), 0.1, dtype=torch.float64, requires_grad=True)
    y = fft_abs(x, "matrix")
    torch.testing.assert_close(y, native_fft_abs(x), rtol=0, atol=1e-14)
    (grad,) = torch.autograd.grad(y, x, torch.ones_like(y))
    assert torch.isfinite(grad).all()


@pytest.mark.parametrize("method", [None, "", 3, "FFT", np.array("auto"),
                                    np.array(["auto", "fft"])])
def test_bad_methods_are_refused_by_name(method):
    with pytest.raises(ValueError, match=r"method must be one of 'auto', 'fft', 'matrix'"):
        fft_abs(torch.randn(4, 4), method)


@pytest.mark.parametrize("dtype,offset,spread,shape", [
    (torch.float64, 1000.0, 1e-4, (16, 16)), (torch.float64, 1.0, 1e-6, (8, 8)),
    (torch.float32, 10.0, 0.01, (8, 8)), (torch.float32, 10.0, 0.01, (3, 16, 32))])
def test_a_large_offset_keeps_native_agreement_on_lengths_of_small_factors(dtype, offset,
                                                                           spread, shape):
    """Found by the hostile tester when matrices ran on every short length: a matrix
    product leaves ~length * eps of a constant offset in every bin, butterflies cancel it
    exactly (as native's FFT does), so the gradient of 1000 + 1e-4 * noise was 1e-8 off
    native. Such lengths keep scipy.fft; the layer's tolerance holds."""
    gen = torch.Generator().manual_seed(0)
    x = (offset + spread * torch.rand(shape, dtype=torch.float64, generator=gen)).to(dtype)
    assert not any(choose_plan(*shape[-2:], _numpy_dtype(dtype)))
    g = torch.randn(*shape[:-1], shape[-1] // 2 + 1, dtype=dtype, generator=gen)
    ours, theirs = _input_gradient(fft_abs, x, g), _input_gradient(native_fft_abs, x, g)
    tolerance = 1e-4 if dtype == torch.float32 else 1e-10
    assert max_errors(ours, theirs).max_rel <= tolerance


@pytest.mark.parametrize("n", [13, 38, 61, 127])
def test_matrices_take_a_constant_offset_out_before_multiplying(n):
    """Found by the second hostile pass: a matrix product left ~n eps of an offset in every
    bin (38x38, 1000 + 0.005 noise, float64: gradient 3.8e-10 off native, scipy.fft
    7.8e-11). rfft2 now takes each image's mean out first; auto stays within 2x of
    scipy.fft's own distance from the exact gradient (a long-double DFT). Measured from
    native instead (as first written), 2 seeds in 25 failed at 13x13 because native
    itself was the least accurate of the three (seed 16: native 9.5e-11 from exact,
    scipy.fft 8.0e-11, auto 8.2e-14; found by a later hostile pass)."""
    assert choose_plan(n, n, np.dtype(np.float64)) == AxisPlan(True, True)
    for seed in range(25 if n < 100 else 3):
        gen = torch.Generator().manual_seed(seed)
        x = 1000 + 0.005 * torch.randn(n, n, dtype=torch.float64, generator=gen)
        g = torch.randn(n, n // 2 + 1, dtype=torch.float64, generator=gen)
        assert _dft_axes.transform(x.numpy())[2] == AxisPlan(True, True)  # no fallback
        exact = _longdouble_gradient(x, g)
        errors = {method: max_errors(_input_gradient(lambda t: fft_abs(t, method), x, g),
                                     exact).max_rel for method in ("auto", "fft")}
        assert errors["auto"] <= max(2 * errors["fft"], 1e-11), (seed, errors)


@pytest.mark.parametrize("scale", [1.1754944e-41, 1e-36])
def test_all_subnormal_images_run_on_scipy_fft(scale):
    """Found by the second hostile pass: float32 images of subnormal values lost ~1e-4 in
    the matrices' underflowing products (scipy.fft: 3e-7)."""
    gen = torch.Generator().manual_seed(0)
    x = (torch.randn(38, 87, dtype=torch.float64, generator=gen) * scale).to(torch.float32)
    assert any(choose_plan(38, 87, np.dtype(np.float32)))
    with np.errstate(all="ignore"):  # the layer calls it under numpy_quiet
        assert _dft_axes.transform(x.numpy())[2] == AxisPlan(False, False)


def test_offset_images_keep_matrices_and_their_accuracy():
    """The floor counts the centred image's spread, not its offset (found by the third
    hostile pass: 100 + noise at 127x127 float32 fell back to scipy.fft every time). Such
    images keep matrices, whose gradient is then the closer to a float64 reference."""
    gen = torch.Generator().manual_seed(0)
    x = 100 + torch.randn(61, 61, generator=gen)
    g = torch.randn(61, 31, generator=gen)
    assert _dft_axes.transform(x.numpy())[2] == AxisPlan(True, True)
    reference = _input_gradient(lambda t: fft_abs(t, "fft"), x.double(), g.double())
    distance = {method: max_errors(_input_gradient(lambda t: fft_abs(t, method), x, g),
                                   reference).max_rel for method in ("auto", "fft")}
    assert distance["auto"] <= distance["fft"], distance


@pytest.mark.parametrize("method", ["auto", "fft", "matrix"])
@pytest.mark.parametrize("value", [float("inf"), -float("inf"), float("nan")])
@pytest.mark.parametrize("shape", [(13, 1), (1, 13), (13, 61), (16, 16), (2, 2)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_a_non_finite_pixel_makes_its_images_bins_non_finite_as_native(method, value, shape,
                                                                        dtype):
    """Native is the oracle for *which* outputs and gradients are finite: all of the
    image holding a NaN or inf, none of the others. (Whether such a bin reads inf or NaN
    follows the transform's own arithmetic, MKL's or pocketfft's or the matrices', and
    differs between them: docs/layers.md.)"""
    x = torch.randn(3, *shape, dtype=dtype, generator=torch.Generator().manual_seed(0))
    x[1, shape[0] // 2, shape[1] // 3] = value
    ours, theirs = x.clone().requires_grad_(), x.clone().requires_grad_()
    y, y_native = fft_abs(ours, method), native_fft_abs(theirs)
    g = torch.randn(y.shape, dtype=dtype, generator=torch.Generator().manual_seed(1))
    (grad,), (grad_native,) = (torch.autograd.grad(out, inp, g)
                               for out, inp in ((y, ours), (y_native, theirs)))
    for result, native in ((y, y_native), (grad, grad_native)):
        assert torch.equal(result.isfinite(), native.isfinite())
        assert not result[1].isfinite().any() and result[[0, 2]].isfinite().all()
    tolerance = 1e-4 if dtype == torch.float32 else 1e-10
    torch.testing.assert_close(y[[0, 2]], y_native[[0, 2]], rtol=tolerance, atol=tolerance)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("shape", [(127, 8), (2, 13, 130), (61, 64), (127, 256)])
def test_a_matrix_length_on_h_alone_runs_as_scipy_fft(shape, dtype):
    """H with a large prime factor beside a W of small factors: "auto" runs scipy.fft on
    both axes (choose_plan), the same bits as method "fft", gradient too."""
    assert _dft_axes._matrix_wins(shape[-2], _numpy_dtype(dtype))  # H alone would take one
    x = torch.randn(shape, dtype=dtype, generator=torch.Generator().manual_seed(4))
    g = torch.randn(fft_abs(x).shape, dtype=dtype, generator=torch.Generator().manual_seed(5))
    results = []
    for method in ("auto", "fft"):
        leaf = x.clone().requires_grad_()
        y = fft_abs(leaf, method)
        results.append((y.detach(), *torch.autograd.grad(y, leaf, g)))
    assert all(torch.equal(a, b) for a, b in zip(*results))
