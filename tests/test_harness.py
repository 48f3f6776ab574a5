"""The differential harness: every layer x implementation x sample (scipy_layers.samples)
against the native twin, in every memory layout, with NaN and inf planted in each
argument, and the error inputs of each layer. Native torch is the oracle."""
import itertools

import pytest
import torch
from torch.autograd import gradcheck

from scipy_layers import LAYERS, NATIVE, _workspace
from scipy_layers.agreement import TOLERANCE, compare_with_native, conv_reference, max_errors
from scipy_layers.samples import ERROR_INPUTS, LAYOUTS, SAMPLES, as_layout, make_case
from tests._dft_paths import DFT_PATHS, dft_path
from tests._im2col_variants import IM2COL_VARIANTS, im2col_variant
from tests._native_quirks import skip_where_native_rfft2_cannot
from tests._shift_tiers import SHIFT_TIERS, shift_tier

DTYPES = [torch.float32, torch.float64]


def implementations(layer_name, exact_gradient_only=False):
    layer = LAYERS[layer_name]
    return [name for name, impl in layer.compared_implementations().items()
            if impl.gradient_is_exact or not exact_gradient_only]


CASES = [pytest.param(layer, impl, sample, id=f"{layer}-{impl}-{sample.name}")
         for layer, samples in SAMPLES.items() for sample in samples
         for impl in implementations(layer) if sample.accepts(impl)]


def check_errors(layer_name, implementation, errors, dtype):
    exact = LAYERS[layer_name].implementations[implementation].gradient_is_exact
    for what, err in errors.items():
        if what == "output" or exact:
            assert err.max_rel <= TOLERANCE[dtype], (what, err)


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("layer_name,implementation,sample", CASES)
def test_agrees_with_native_in_every_layout(layer_name, implementation, sample, dtype, layout):
    skip_where_native_rfft2_cannot(layer_name, layout)
    leaves, prepare = make_case(sample, layout, dtype, seed=11)
    errors = compare_with_native(LAYERS[layer_name], implementation, leaves, prepare=prepare,
                                 kwargs=sample.kwargs)
    check_errors(layer_name, implementation, errors, dtype)


# Paths the rules pick by size, dtype and shape, each forced here to meet every sample
# and layout too: the shift method's tiers (tests/_shift_tiers.py; the samples are small,
# so "scipy-shift" above runs its windows tier), the im2col method's backward
# variants (tests/_im2col_variants.py: layouts and grad_weight's GEMM orientation) and
# the FFT layer's folded H axis (tests/_dft_paths.py: large images only).
FORCED_PATHS = {"scipy-shift": SHIFT_TIERS, "scipy-im2col": IM2COL_VARIANTS,
                "scipy-matrix": DFT_PATHS}
FORCED_PATH_CASES = [pytest.param(layer, impl, sample, path, id=f"{layer}-{path}-{sample.name}")
                     for layer, impl, sample in (case.values for case in CASES)
                     for path in FORCED_PATHS.get(impl, ())]


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("layer_name,implementation,sample,path", FORCED_PATH_CASES)
def test_every_forced_path_agrees_with_native_in_every_layout(layer_name, implementation,
                                                              sample, path, dtype, layout):
    skip_where_native_rfft2_cannot(layer_name, layout)
    leaves, prepare = make_case(sample, layout, dtype, seed=11)
    with shift_tier(path), im2col_variant(path), dft_path(path):
        errors = compare_with_native(LAYERS[layer_name], implementation, leaves,
                                     prepare=prepare, kwargs=sample.kwargs)
    check_errors(layer_name, implementation, errors, dtype)


# tests/conftest.py pools every array, however small; users' small arrays are never
# pooled (_workspace.POOLED_MIN_BYTES, read here before any test changes it). These
# samples are all small, so at the real floor every one takes that other path (mutation
# pass 124 found a small channels_last result the pooled tests could not see).
REAL_POOL_FLOOR = _workspace.POOLED_MIN_BYTES
UNPOOLED_LAYOUTS = ("contiguous", "transposed", "step_sliced", "channels_last")


@pytest.mark.parametrize("layout", UNPOOLED_LAYOUTS)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("layer_name,implementation,sample", CASES)
def test_agrees_with_native_where_small_arrays_are_not_pooled(layer_name, implementation,
                                                              sample, dtype, layout,
                                                              monkeypatch):
    monkeypatch.setattr(_workspace, "POOLED_MIN_BYTES", REAL_POOL_FLOOR)
    leaves, prepare = make_case(sample, layout, dtype, seed=13)
    errors = compare_with_native(LAYERS[layer_name], implementation, leaves, prepare=prepare,
                                 kwargs=sample.kwargs)
    check_errors(layer_name, implementation, errors, dtype)


GRADCHECK_CASES = [case for case in CASES
                   if LAYERS[case.values[0]].implementations[case.values[1]].gradient_is_exact]


# transposed: a non-contiguous view without extra elements, whose numerical Jacobian
# gradcheck would otherwise compute too; fast mode (random projections) keeps the many
# samples cheap (tests/test_gradcheck.py runs the full Jacobians on the canonical shapes).
@pytest.mark.parametrize("layout", ["contiguous", "transposed"])
@pytest.mark.parametrize("layer_name,implementation,sample", GRADCHECK_CASES)
def test_gradcheck(layer_name, implementation, sample, layout):
    leaves, prepare = make_case(sample, layout, torch.float64, seed=3)
    fn = LAYERS[layer_name].implementations[implementation].fn
    present = [t for t in leaves if t is not None]

    def call(*tensors):
        it = iter(tensors)
        return fn(*prepare([None if t is None else next(it) for t in leaves]), **sample.kwargs)

    # conv is linear in each argument, so a large step is exact and lifts the FFT
    # method's ~1e-16 forward noise far above the difference quotient's resolution.
    eps = 1e-6 if layer_name == "fft_abs" else 1e-3
    assert gradcheck(call, present, eps=eps, atol=1e-8, rtol=1e-6, fast_mode=True)


# --- NaN and inf --------------------------------------------------------------------------

def _nonfinite_classes(t):
    return t.isnan() * 1 + (t == float("inf")) * 2 + (t == -float("inf")) * 3


def _plant(tensor, value, index=0):
    """Put ``value`` at one element (chosen by ``index``) of a leaf's visible part."""
    with torch.no_grad():
        flat = tensor.view(-1) if tensor.is_contiguous() else None
        if flat is None:
            raise AssertionError("plant values into contiguous leaves only")
        finite = torch.nonzero(flat.isfinite()).flatten()
        flat[finite[(index * 7919) % len(finite)]] = value


def _native_paths_disagree(sample):
    """Zero padding, or a stride: native's paths form 0 x inf there differently (its
    float32 oneDNN path forms no product with padding; its float64 path and float32
    strided backward do), so a non-finite weight or output gradient has no one oracle."""
    padding = sample.kwargs.get("padding", 0)
    stride = sample.kwargs.get("stride", 1)
    padded = padding == "same" or (padding != "valid" and any(
        p for p in ((padding,) if isinstance(padding, int) else padding)))
    return padded or any(s != 1 for s in ((stride,) if isinstance(stride, int) else stride))


def _argument_count(sample):
    return sum(shape is not None for shape in sample.shapes)


NONFINITE_CASES = [pytest.param(layer, impl, sample, where, value, id=(
    f"{layer}-{impl}-{sample.name}-{where}-{value}"))
    for layer, impl, sample in (case.values for case in GRADCHECK_CASES)
    for where in ("input", "weight", "bias", "grad_output")
    for value in ("nan", "inf", "-inf")
    if where == "grad_output" or ["input", "weight", "bias"].index(where) < _argument_count(sample)
    if value == "nan" or where != "bias"]


def _outputs_and_grads(fn, leaves, kwargs, change_grad_output, dtype):
    args = [None if t is None else t.detach().clone().requires_grad_(True) for t in leaves]
    output = fn(*args, **kwargs)
    gen = torch.Generator().manual_seed(1)
    grad_output = change_grad_output(torch.randn(output.shape, generator=gen, dtype=dtype))
    present = [t for t in args if t is not None]
    return [output, *torch.autograd.grad(output, present, grad_output)], grad_output


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("layer_name,implementation,sample,where,value", NONFINITE_CASES)
def test_nonfinite_values_land_where_native_puts_them(layer_name, implementation, sample,
                                                      where, value, dtype):
    leaves, _ = make_case(sample, "contiguous", dtype, seed=5)
    planted = float(value)
    change = lambda g: g  # noqa: E731
    if where == "grad_output":
        def change(g):
            _plant(g, planted, 3)
            return g
    else:
        _plant(leaves[["input", "weight", "bias"].index(where)], planted, 1)
    layer = LAYERS[layer_name]
    ours, grad_output = _outputs_and_grads(layer.implementations[implementation].fn, leaves,
                                           sample.kwargs, change, dtype)
    if (layer_name == "conv2d_nchw" and _native_paths_disagree(sample)
            and where in ("weight", "grad_output")):
        # The oracle is then the direct sum over real pixels (docs/layers.md: NaN and
        # inf), which oneDNN's float32 path matches (checked below).
        refs = conv_reference(*[None if t is None else t.detach() for t in leaves], grad_output,
                              **sample.kwargs)
        names = ["output", "grad_input", "grad_weight", "grad_bias"]
        theirs = [torch.from_numpy(refs[name].value.astype("float64")) for name in names[:len(ours)]]
    else:
        theirs, _ = _outputs_and_grads(layer.native.fn, leaves, sample.kwargs, change, dtype)
    for index, (mine, reference) in enumerate(zip(ours, theirs)):
        err = max_errors(mine, reference)
        assert err.nonfinite_mismatches == 0, (index, err)
        if layer_name != "fft_abs":  # conv sums: NaN, inf and -inf exactly as native's
            assert torch.equal(_nonfinite_classes(mine), _nonfinite_classes(reference)), index
        exact = layer.implementations[implementation].gradient_is_exact
        if index == 0 or exact:
            assert err.max_rel <= TOLERANCE[dtype], (index, err)


def test_native_float32_stride_1_matches_the_reference_where_padding_meets_inf():
    """The oracle chosen above is native's oneDNN float32 path, checked here."""
    x = torch.randn(2, 2, 9, 9)
    w = torch.randn(3, 2, 3, 3)
    w[1, 0, 0, 0] = float("inf")
    x.requires_grad_()
    w.requires_grad_()
    y = torch.nn.functional.conv2d(x, w, padding=1)
    grad_output = torch.randn_like(y)
    grad_x, grad_w = torch.autograd.grad(y, (x, w), grad_output)
    refs = conv_reference(x.detach(), w.detach(), None, grad_output, padding=1)
    for name, got in (("output", y), ("grad_input", grad_x), ("grad_weight", grad_w)):
        expected = torch.from_numpy(refs[name].value.astype("float64"))
        assert torch.equal(_nonfinite_classes(got), _nonfinite_classes(expected)), name


# --- error inputs --------------------------------------------------------------------------

ERROR_CASES = [pytest.param(layer, impl, error, id=f"{layer}-{impl}-{error.name}")
               for layer, errors in ERROR_INPUTS.items() for error in errors
               for impl in implementations(layer)
               if not (error.kwargs.get("method") and "-" in impl)]


@pytest.mark.parametrize("layer_name,implementation,error", ERROR_CASES)
def test_error_inputs_raise_clear_errors(layer_name, implementation, error):
    fn = LAYERS[layer_name].implementations[implementation].fn
    with pytest.raises(error.error_type, match=error.match):
        fn(*error.make_args(), **error.kwargs)


def test_every_layer_has_samples_and_error_inputs():
    assert set(SAMPLES) == set(LAYERS) == set(ERROR_INPUTS)
    for layer_name, samples in SAMPLES.items():
        for impl in implementations(layer_name):
            assert any(s.accepts(impl) for s in samples), (layer_name, impl)


def test_the_sample_table_keeps_every_kind_it_promises():
    """Every test drawn from samples.py shrinks silently when a layout or a kernel kind is
    dropped from it (or a layout stops making the view it names), so the table's kinds
    are checked here: each layout's view, the NaN in the slots it leaves out, and the
    kernel shapes and arguments docs/layers.md ("What is guaranteed") lists."""
    assert set(LAYOUTS) == {"contiguous", "offset", "cropped_h", "cropped_w", "transposed",
                            "step_sliced", "expanded", "channels_last"}
    values = torch.randn(2, 3, 4, 5, dtype=torch.float64)
    views = {}
    for layout in LAYOUTS:
        (leaf,), prepare = as_layout([values], layout, requires_grad=False)
        (view,) = prepare([leaf])
        assert view.shape == values.shape, layout
        expected = values[:1].expand(values.shape) if layout == "expanded" else values
        assert torch.equal(view, expected), layout
        if layout in ("offset", "cropped_h", "cropped_w", "step_sliced"):  # poisoned slots
            assert int(leaf.isnan().sum()) == leaf.numel() - view.numel() > 0, layout
        views[layout] = view
    assert views["contiguous"].is_contiguous()
    assert views["offset"].storage_offset() == 3
    assert views["cropped_h"].stride() == (3 * 6 * 5, 6 * 5, 5, 1)
    assert views["cropped_w"].stride() == (3 * 4 * 8, 4 * 8, 8, 1)
    assert views["transposed"].stride()[-2:] == (1, 4)
    assert views["step_sliced"].stride() == (2 * 6 * 8 * 10, 2 * 8 * 10, 2 * 10, 2)
    assert views["expanded"].stride()[0] == 0
    channels_last = views["channels_last"]
    assert channels_last.is_contiguous(memory_format=torch.channels_last)
    assert not channels_last.is_contiguous()

    for table in (SAMPLES["conv2d"], SAMPLES["conv2d_nchw"]):
        kernels = [tuple(sample.shapes[1][-2:]) for sample in table]
        assert (1, 1) in kernels
        assert any(k_h > 1 and k_w == 1 for k_h, k_w in kernels)  # kx1
        assert any(k_h == 1 and k_w > 1 for k_h, k_w in kernels)  # 1xk
        assert any(k_h > 1 and k_w > 1 and k_h % 2 == 0 for k_h, k_w in kernels)  # even
        assert any(k_h == k_w > 1 for k_h, k_w in kernels)  # square
        assert any(tuple(s.shapes[0][-2:]) == tuple(s.shapes[1][-2:]) for s in table)
        assert any(s.shapes[2] is None for s in table)  # no bias
    nchw = SAMPLES["conv2d_nchw"]
    for option in ("padding", "stride", "dilation", "groups"):
        assert any(option in s.kwargs for s in nchw), option
    assert any(s.kwargs.get("padding") == "same" for s in nchw)
    assert any(s.kwargs.get("groups", 1) > 1 and s.kwargs["groups"] == s.shapes[0][-3]
               for s in nchw)  # depthwise
    assert any(len(s.shapes[0]) == 3 for s in nchw)  # unbatched
    images = [tuple(s.shapes[0]) for s in SAMPLES["fft_abs"]]
    assert any(shape[-2] == 1 for shape in images) and any(shape[-1] == 1 for shape in images)
    assert any(len(shape) > 2 for shape in images)


def test_a_reader_outside_the_view_is_caught():
    """The poisoned layouts do their job: a layer that reads the whole buffer fails."""
    sample = SAMPLES["fft_abs"][0]
    leaves, prepare = make_case(sample, "step_sliced", torch.float64)

    def reads_the_buffer(x):
        return torch.fft.rfft2(x.as_strided(x.shape, (x.shape[1], 1))).abs()

    out = reads_the_buffer(*prepare(leaves))
    assert torch.isnan(out).any()
    assert max_errors(out, torch.fft.rfft2(*prepare(leaves)).abs()).max_rel == float("inf")


def test_numpy_integer_arguments_are_taken_like_f_conv2d():
    """Found by the hostile tester: F.conv2d and nn.Conv2d take numpy integers."""
    import numpy as np
    from scipy_layers import Conv2d, conv2d
    x = torch.randn(1, 3, 9, 9, dtype=torch.float64)
    w = torch.randn(4, 3, 3, 3, dtype=torch.float64)
    kwargs = dict(stride=np.int64(2), padding=np.int32(1), dilation=(np.int64(2), 1),
                  groups=np.int64(1))
    torch.testing.assert_close(conv2d(x, w, **kwargs), torch.nn.functional.conv2d(x, w, **kwargs))
    module = Conv2d(3, 4, kernel_size=np.int64(3), stride=np.int64(2)).double()
    torch.testing.assert_close(module(x), torch.nn.functional.conv2d(
        x, module.weight, module.bias, stride=2))


def test_negated_views_are_read_by_value():
    """torch._neg_view tensors (lazily negated) compute like native, not with an error."""
    x = torch.randn(10, 10, dtype=torch.float64)
    w = torch.randn(3, 3, dtype=torch.float64)
    negated = torch._neg_view(x)
    assert negated.is_neg()
    for name in implementations("conv2d"):
        fn = LAYERS["conv2d"].implementations[name].fn
        torch.testing.assert_close(fn(negated, w), LAYERS["conv2d"].native.fn(-x, w))
    for name in implementations("fft_abs"):
        fn = LAYERS["fft_abs"].implementations[name].fn
        torch.testing.assert_close(fn(negated), torch.fft.rfft2(-x).abs())


@pytest.mark.parametrize("layer_name", list(SAMPLES))
def test_nonfinite_and_overflowing_values_raise_no_numpy_warnings(layer_name, recwarn):
    """Native propagates NaN, inf and overflow silently; so must the numpy code."""
    layer = LAYERS[layer_name]
    for sample in SAMPLES[layer_name][:3]:
        leaves, _ = make_case(sample, "contiguous", torch.float64, seed=2)
        with torch.no_grad():
            leaves[0].view(-1)[0] = float("inf")
            leaves[0].view(-1)[1] = -float("inf")
            leaves[0].view(-1)[2] = torch.finfo(torch.float64).max
        for impl in implementations(layer_name):
            if sample.accepts(impl):
                compare_with_native(layer, impl, leaves, kwargs=sample.kwargs)
    numpy_warnings = [w for w in recwarn if issubclass(w.category, RuntimeWarning)]
    assert not numpy_warnings, [str(w.message) for w in numpy_warnings]
