"""The single-channel conv's methods: gradients, agreement, the "auto" rule, bad methods."""
from unittest import mock

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.autograd import gradcheck

import scipy_layers._conv_rule as conv_rule
import scipy_layers.conv as conv
import scipy_layers._shift_kernels as shift_kernels
import scipy_layers.conv_methods as conv_methods
from scipy_layers import LAYERS, ScipyConv2d, ScipyConv2dFunction, scipy_conv2d
from scipy_layers.agreement import TOLERANCE, compare_with_native
from scipy_layers.conv import choose_method
from scipy_layers.conv_methods import METHODS
from tests._shift_tiers import SHIFT_TIERS, shift_tier

GRADCHECK_SHAPES = [  # odd, non-square, 1xN, Nx1, 1x1 kernel, kernel == input
    ((10, 10), (3, 3)), ((7, 13), (3, 5)), ((1, 9), (1, 4)), ((9, 1), (4, 1)),
    ((6, 5), (1, 1)), ((5, 4), (5, 4)), ((13, 8), (6, 3)),
]


# The shift method's tiers (tests/_shift_tiers.py), each forced on these small shapes.
METHOD_PATHS = [*METHODS, *SHIFT_TIERS]


@pytest.mark.parametrize("path", METHOD_PATHS)
@pytest.mark.parametrize("size,kernel", GRADCHECK_SHAPES)
def test_gradcheck_every_method_every_input(path, size, kernel):
    inputs = LAYERS["conv2d"].make_inputs(size, kernel, dtype=torch.float64, seed=5)
    with shift_tier(path) as method:
        assert gradcheck(lambda x, w, b: scipy_conv2d(x, w, b, method), inputs,
                         eps=1e-6, atol=1e-8, rtol=1e-6)
        assert gradcheck(lambda x, w: scipy_conv2d(x, w, None, method), inputs[:2])


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("size,kernel", [((64, 64), (15, 15)), ((300, 200), (5, 7)),
                                         ((129, 40), (7, 2)), ((16, 16), (3, 3)),
                                         ((16, 16), (15, 15)), ((32, 20), (29, 5))])
def test_every_registered_method_agrees_with_native(size, kernel, dtype):
    layer = LAYERS["conv2d"]
    inputs = layer.make_inputs(size, kernel, dtype=dtype, seed=7)
    for name in layer.compared_implementations():
        for what, err in compare_with_native(layer, name, inputs).items():
            assert err.max_rel <= TOLERANCE[dtype], (name, what, err)


def test_registry_lists_each_method_as_an_implementation():
    names = set(LAYERS["conv2d"].implementations)
    assert {"scipy", "scipy-direct", "scipy-shift", "scipy-fft", "native"} <= names


@pytest.mark.parametrize("method", list(METHODS))
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_gradients_keep_dtype(method, dtype):
    x, w, b = LAYERS["conv2d"].make_inputs((20, 17), (4, 3), dtype=dtype)
    out = scipy_conv2d(x, w, b, method)
    out.sum().backward()
    assert out.dtype == dtype
    assert all(t.grad.dtype == dtype and t.grad.shape == t.shape for t in (x, w, b))


def spy_on_methods(monkeypatch):
    """Record (method, what) for every forward and backward call of every method."""
    calls = []
    for name, kernels in METHODS.items():
        def forward(x, w, name=name, kernels=kernels):
            calls.append((name, "forward"))
            return kernels.forward(x, w)

        def backward(g, x, w, state, need_input, need_filter, name=name, kernels=kernels):
            calls.append((name, "backward", need_input, need_filter))
            return kernels.backward(g, x, w, state, need_input, need_filter)

        monkeypatch.setitem(METHODS, name, conv_methods.ConvMethod(forward, backward))
    return calls


@pytest.mark.parametrize("size,kernel,dtype,expected", [
    ((16, 16), (5, 5), torch.float32, "direct"),     # 144 outputs x 25 taps: tiny
    ((16, 16), (15, 15), torch.float64, "direct"),
    ((16, 16), (9, 9), torch.float32, "direct"),     # 64 outputs <= 81 taps
    ((32, 32), (25, 25), torch.float64, "direct"),
    ((32, 32), (15, 15), torch.float64, "shift"),    # tiny images keep shift to 21x21
    ((40, 40), (21, 21), torch.float32, "shift"),
    ((64, 64), (57, 57), torch.float32, "fft"),      # 64 x 3249 products: too many
    ((16, 16), (7, 7), torch.float64, "direct"),     # 100 x 49: a filter 2+ wide
    ((32, 32), (5, 1), torch.float64, "shift"),      # 28 x 32 x 5 = 4480, one column
    ((28, 28), (3, 3), torch.float32, "shift"),      # 676 x 9 = 6084
    ((64, 64), (3, 3), torch.float32, "shift"),
    ((1024, 1024), (5, 5), torch.float64, "shift"),
    ((256, 256), (11, 11), torch.float32, "shift"),
    ((256, 256), (11, 11), torch.float64, "shift"),  # its linear term counts ||r|| (132)
    ((256, 256), (15, 15), torch.float64, "fft"),
    ((64, 64), (11, 11), torch.float64, "shift"),    # small images keep shift longer
    ((64, 64), (15, 15), torch.float32, "fft"),
    ((2048, 2048), (31, 31), torch.float32, "fft"),
    ((1024, 1024), (15, 15), torch.float64, "shift"),  # float64's certificate would reject
    ((512, 512), (11, 11), torch.float64, "shift"),    # fft (its linear term)
    ((512, 512), (15, 15), torch.float64, "shift"),  # (fft until hostile pass 132)
    ((384, 384), (15, 15), torch.float64, "fft"),
    ((1024, 1024), (15, 15), torch.float32, "fft"),
    ((200, 200), (3, 41), torch.float64, "shift"),    # grad_input's borders (hostile 128)
    ((200, 200), (3, 41), torch.float32, "fft"),
])
def test_auto_runs_the_method_the_rule_names(size, kernel, dtype, expected, monkeypatch):
    assert choose_method(size, kernel, dtype) == expected
    calls = spy_on_methods(monkeypatch)
    x = torch.randn(size, dtype=dtype, requires_grad=True)
    w = torch.randn(kernel, dtype=dtype, requires_grad=True)
    scipy_conv2d(x, w, method="auto").sum().backward()
    assert [c[0] for c in calls] == [expected, expected]


def test_auto_rule_thresholds_are_consistent():
    # Each rule boundary, one step either side.
    assert choose_method((5, 5), (1, 1)) == "direct"
    # DIRECT_MAX_WORK products, or DIRECT_WIDE_FILTER_MAX_WORK for filters 2+ columns wide
    assert choose_method((31, 51), (2, 2)) == "direct"       # 30 x 50 x 4 = 6000
    assert choose_method((31, 52), (2, 2)) == "shift"        # 30 x 51 x 4 = 6120
    assert choose_method((24, 24), (7, 1)) == "direct"       # 18 x 24 x 7 = 3024
    assert choose_method((32, 32), (5, 1)) == "shift"        # 28 x 32 x 5 = 4480
    assert choose_method((32, 32), (1, 5)) == "direct"       # the same, 5 columns wide
    # outputs <= taps: direct up to DIRECT_SMALL_OUTPUT_MAX_WORK products
    assert choose_method((52, 53), (49, 49)) == "direct"     # 4 x 5 x 2401 = 48020
    assert choose_method((53, 53), (49, 49)) == "fft"        # 5 x 5 x 2401 = 60025
    assert choose_method((31, 31), (21, 21)) == "direct"     # 121 x 441 = 53361
    assert choose_method((32, 32), (21, 21)) == "shift"      # 144 x 441 = 63504
    assert choose_method((29, 29), (15, 15)) == "direct"     # 225 outputs, 225 taps
    assert choose_method((30, 29), (15, 15)) == "shift"      # 240 outputs > 225 taps
    # images up to SHIFT_TINY_IMAGE_MAX_PIXELS keep shift up to SHIFT_TINY_IMAGE_MAX_TAPS
    assert choose_method((48, 48), (21, 21), torch.float64) == "shift"
    assert choose_method((48, 49), (21, 21), torch.float64) == "fft"
    assert choose_method((48, 48), (21, 22), torch.float64) == "fft"
    assert choose_method((4096, 4096), (11, 11), torch.float32) == "shift"
    assert choose_method((4096, 4096), (11, 12), torch.float32) == "fft"
    assert choose_method((200, 200), (9, 9), torch.float64) == "shift"
    # (float64 9x10 was fft here until E's linear term counted the result's norm, hostile
    # pass 132: single-channel float64 now leaves shift for fft from ~13x13)
    assert choose_method((200, 200), (9, 10), torch.float64) == "shift"
    assert choose_method((200, 200), (13, 13), torch.float64) == "fft"
    # float64 past FFT_LINEAR_LIMIT (its certificate's linear term): shift again
    assert choose_method((4096, 4096), (9, 10), torch.float64) == "shift"
    assert choose_method((1024, 1024), (15, 15), torch.float64) == "shift"  # 1.07 / 0.8
    assert choose_method((1024, 1024), (31, 31), torch.float64) == "fft"    # 0.35 / 0.8
    side = int(conv_rule.SHIFT_SMALL_IMAGE_MAX_PIXELS ** 0.5)
    assert choose_method((side, side), (11, 11), torch.float64) == "shift"
    # (past it float64 11x11 was fft until hostile pass 132; now the certificate's linear
    # term, which counts the result's norm, keeps it on shift too)
    assert choose_method((side + 1, side), (11, 11), torch.float64) == "shift"
    assert choose_method((side, side), (11, 11), np.dtype(np.float64)) == "shift"
    # numpy dtypes and names count as float64 (float32 takes fft here, float64 shift)
    assert choose_method((1024, 1024), (15, 15), np.float64) == "shift"
    assert choose_method((1024, 1024), (15, 15), "float64") == "shift"
    assert choose_method((1024, 1024), (15, 15), np.float32) == "fft"


@pytest.mark.parametrize("not_a_dtype", ["torch.float64", torch.zeros(1, dtype=torch.float64)])
def test_auto_rule_refuses_what_is_not_a_dtype(not_a_dtype):
    """Not a dtype: an error, not the float32 threshold taken silently (as before f972e30)."""
    with pytest.raises(TypeError):
        choose_method((4096, 4096), (9, 10), not_a_dtype)


@pytest.mark.parametrize("mask", [(True, False, False), (False, True, False),
                                  (False, False, True), (True, True, False)])
def test_only_needed_gradients_are_computed(mask, monkeypatch):
    calls = spy_on_methods(monkeypatch)
    x, w, b = (t.detach().requires_grad_(m) for t, m in
               zip(LAYERS["conv2d"].make_inputs((12, 12), (3, 3)), mask))
    scipy_conv2d(x, w, b, "shift").sum().backward()
    backward_calls = [c for c in calls if c[1] == "backward"]
    if mask[0] or mask[1]:
        assert backward_calls == [("shift", "backward", mask[0], mask[1])]
    else:
        assert backward_calls == []  # the bias gradient alone needs no kernel
    assert b.grad is None or torch.allclose(b.grad, torch.full_like(b, 100.0))


@pytest.mark.parametrize("make_call", [
    lambda m: scipy_conv2d(torch.randn(5, 5), torch.randn(2, 2), None, m),
    lambda m: ScipyConv2dFunction.apply(torch.randn(5, 5), torch.randn(2, 2), None, m),
    lambda m: ScipyConv2d(2, 2, method=m),
])
@pytest.mark.parametrize("method", ["fastest", "FFT", None, 3])
def test_unknown_method_is_a_value_error_naming_the_accepted_ones(make_call, method):
    with pytest.raises(ValueError) as info:
        make_call(method)
    message = str(info.value)
    assert "method" in message and repr(method) in message
    for accepted in ("'auto'", "'direct'", "'shift'", "'fft'"):
        assert accepted in message


@pytest.mark.parametrize("method", ["auto", *METHODS])
def test_module_uses_its_method_and_matches_the_function(method):
    module = ScipyConv2d(3, 4, method=method).double()
    x = torch.randn(11, 9, dtype=torch.float64)
    expected = scipy_conv2d(x, module.filter, module.bias, "direct")
    torch.testing.assert_close(module(x), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("tier", SHIFT_TIERS)
def test_each_forced_shift_tier_runs_its_own_code(tier, monkeypatch):
    """tests/_shift_tiers.py really moves the sample-driven tests onto each tier."""
    windows_calls = []
    monkeypatch.setattr(shift_kernels, "_windows",
                        lambda *args, real=shift_kernels._windows: windows_calls.append(1)
                        or real(*args))
    dtype = np.dtype(np.float32)
    with shift_tier(tier) as method:
        assert method == "shift"
        per_row = shift_kernels._per_row(10 * 10, dtype)
        x = torch.randn(10, 12, requires_grad=True)
        for kernel in ((3, 4), (4, 3)):  # grad_filter by windows from 4 kernel rows
            w = torch.randn(kernel, requires_grad=True)
            torch.autograd.grad(scipy_conv2d(x, w, None, method).sum(), (x, w))
    # forward and grad_input twice, grad_filter once
    assert (len(windows_calls) == 5) == (tier == "shift-windows")
    assert per_row == (tier != "shift-taps")


def test_the_taps_chunks_cover_the_output_once():
    for length, itemsize in ((1, 4), (7, 8), (65536, 4), (65537, 4), (100000, 8)):
        chunks = shift_kernels._chunks(length, itemsize)
        assert chunks[0][0] == 0 and chunks[-1][1] == length
        assert all(end == begin for (_, end), (begin, _) in zip(chunks, chunks[1:]))
        assert all(0 < (end - begin) * itemsize <= shift_kernels.TAP_CHUNK_BYTES
                   for begin, end in chunks)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("shape, kernel", [((300, 301), (3, 3)), ((260, 200), (7, 1)),
                                           ((200, 260), (1, 7)), ((257, 255), (1, 1)),
                                           ((190, 230), (5, 4))])
def test_the_taps_in_chunks_give_the_whole_images_result_bit_for_bit(dtype, shape, kernel):
    """The taps tier in chunks of the output (TAP_CHUNK_BYTES) adds each element's
    products in the same order as one chunk of the whole output: the same bits, forward
    and both gradients; and native's values (ragged last chunks, kx1, 1xk, 1x1)."""
    generator = torch.Generator().manual_seed(sum(shape) + kernel[0])
    x = torch.randn(shape, dtype=dtype, generator=generator, requires_grad=True)
    w = torch.randn(kernel, dtype=dtype, generator=generator, requires_grad=True)
    results = {}
    with shift_tier("shift-taps"):
        for chunk_bytes in (1 << 40, 4096, 1000):  # one chunk; many; many, not a power of 2
            with mock.patch.object(shift_kernels, "TAP_CHUNK_BYTES", chunk_bytes):
                y = scipy_conv2d(x, w, None, "shift")
                g = torch.ones_like(y).index_fill_(0, torch.tensor([0]), -2.0)
                results[chunk_bytes] = (y, *torch.autograd.grad(y, (x, w), g))
    for other in (4096, 1000):
        for got, whole in zip(results[other], results[1 << 40]):
            assert torch.equal(got, whole)
    y_native = F.conv2d(x[None, None], w[None, None])[0, 0]
    tol = {"rtol": 1e-4, "atol": 1e-4} if dtype == torch.float32 else {}
    torch.testing.assert_close(results[1000][0], y_native, **tol)
    grads = torch.autograd.grad(y_native, (x, w), torch.ones_like(y_native).index_fill_(
        0, torch.tensor([0]), -2.0))
    for got, expected in zip(results[1000][1:], grads):
        torch.testing.assert_close(got, expected, **tol)


def test_the_windows_tier_follows_its_byte_limits():
    f32, f64 = np.dtype(np.float32), np.dtype(np.float64)
    limit = shift_kernels.SHIFT_WINDOWS_MAX_BYTES
    # 64x64 image, 3x3 filter: 36,864 window elements
    assert shift_kernels.by_windows((64, 64), (3, 3), f32) == (36864 * 4 <= limit[f32])
    assert shift_kernels.by_windows((256, 256), (7, 7), f32) is False  # 12.8 MB
    assert shift_kernels.by_windows((127, 127), (3, 3), f64) is False  # 1.2 MB
    assert shift_kernels.by_windows((16, 16), (7, 7), f64) is True
    assert shift_kernels.by_windows((16, 16), (7, 7), np.dtype(np.float16)) is False


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("taps,length", [(1, 7), (9, 300), (49, 1000)])
def test_blas_product_into_an_uninitialised_array_ignores_what_it_held(dtype, taps, length):
    """The windows tier writes np.matmul's result into np.empty memory (beta = 0 in BLAS
    terms): a NaN left there must not reach the result (an OpenBLAS scal(0) that keeps
    NaN would)."""
    rng = np.random.default_rng(0)
    weights = rng.standard_normal(taps).astype(dtype)
    windows = rng.standard_normal((taps, length)).astype(dtype)
    out = np.full(length, np.nan, dtype)
    np.matmul(weights, windows, out=out)
    assert np.isfinite(out).all()
    exact = weights.astype(np.float64) @ windows.astype(np.float64)
    bound = taps * np.finfo(dtype).eps * (np.abs(weights).astype(np.float64) @ np.abs(windows))
    assert (np.abs(out - exact) <= bound).all()


@pytest.mark.parametrize("tier", SHIFT_TIERS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_shift_grad_filter_reads_the_input_backward_sees(tier, dtype):
    """docs/layers.md, "Limit": shift keeps nothing of the input for backward, so an input
    changed through .data after forward (autograd does not track it) reaches grad_filter
    as it reaches native's (a hostile pass caught a kept window matrix doing otherwise)."""
    grads = []
    for layer in (lambda x, w: conv.native_conv2d(x, w), None):
        x = torch.randn(16, 16, dtype=dtype, generator=torch.Generator().manual_seed(1),
                        requires_grad=True)
        w = torch.randn(3, 3, dtype=dtype, generator=torch.Generator().manual_seed(2),
                        requires_grad=True)
        with shift_tier(tier) as method:
            y = layer(x, w) if layer else scipy_conv2d(x, w, None, method)
            x.data.mul_(2)
            grads.append(torch.autograd.grad(y.sum(), w)[0])
    torch.testing.assert_close(grads[1], grads[0])


@pytest.mark.parametrize("wanted", ["input", "filter", "both"])
@pytest.mark.parametrize("operands", ["finite", "a NaN in the input"])
@pytest.mark.parametrize("method", list(METHODS))
def test_each_gradient_alone_is_natives(method, operands, wanted):
    """A backward asked for one gradient (the other operand a constant, a frozen
    filter) gives native's for it, on every method and on the tap kernels that take a
    pass with a NaN or inf; the other stays None."""
    gen = torch.Generator().manual_seed(3)
    x0 = torch.randn(11, 9, dtype=torch.float64, generator=gen)
    w0 = torch.randn(4, 3, dtype=torch.float64, generator=gen)
    g = torch.randn(8, 7, dtype=torch.float64, generator=gen)
    if operands != "finite":
        x0[2, 5] = float("nan")
    grads = []
    for layer in (conv.native_conv2d, lambda x, w: scipy_conv2d(x, w, None, method)):
        x = x0.clone().requires_grad_(wanted in ("input", "both"))
        w = w0.clone().requires_grad_(wanted in ("filter", "both"))
        layer(x, w).backward(g)
        grads.append((x.grad, w.grad))
    (native_x, native_w), (ours_x, ours_w) = grads
    for native, ours in [(native_x, ours_x), (native_w, ours_w)]:
        assert (native is None) == (ours is None)
        if native is not None:
            torch.testing.assert_close(ours, native, rtol=1e-10, atol=1e-10, equal_nan=True)


@pytest.mark.parametrize("need_input", [True, False])
def test_fft_gradients_where_the_certificate_rejects_grad_filter_alone(need_input):
    """A pixel 1e12 times the rest makes the float32 FFT's grad_filter uncertified (its
    one tap that reads the pixel dwarfs the others), not grad_input (g and w are
    ordinary): grad_filter then runs shift, and grad_input stays the FFT's; both within
    the accuracy contract of native's."""
    from scipy_layers import _fft_conv
    gen = torch.Generator().manual_seed(0)
    x0 = torch.randn(32, 32, generator=gen)
    x0[0, 0] = 1e12
    w0, g = torch.randn(5, 5, generator=gen), torch.randn(28, 28, generator=gen)
    _, spectra = _fft_conv.fft_forward(x0.numpy()[None, None], w0.numpy()[None, None],
                                       (0, 0, 0, 0), (28, 28))
    certified = _fft_conv.fft_backward(g.numpy()[None, None], spectra, True, True)[2]
    assert list(certified) == [True, False]  # (the case this test is for)
    grads = []
    for layer in (conv.native_conv2d, lambda x, w: scipy_conv2d(x, w, None, "fft")):
        x, w = x0.clone().requires_grad_(need_input), w0.clone().requires_grad_()
        layer(x, w).backward(g)
        grads.append((x.grad, w.grad))
    (native_x, native_w), (ours_x, ours_w) = grads
    assert (ours_x is None) == (not need_input)
    pairs = [(ours_w, native_w)] + ([(ours_x, native_x)] if need_input else [])
    for ours, native in pairs:
        error = ((ours.double() - native.double()).abs().max() / native.double().abs().max())
        assert error <= TOLERANCE[torch.float32], error


@pytest.mark.parametrize("size,k", [(64, 31), (48, 25)])
def test_fft_fixes_up_grad_inputs_border_instead_of_rerunning_it_by_shift(size, k,
                                                                          monkeypatch):
    """Float64 grad_input fails its certificate on a few border pixels (few products in
    M): 33 at 64x64 k31, where 19 were allowed, so all of grad_input ran by shift after
    its FFTs (0.90 -> 0.48 of native side by side). Fix-ups may now take what they take
    where the tap kernels are the direct method; they agree with the exact sums."""
    from scipy_layers.agreement import conv_reference, contract_ratio
    shift_runs = []
    shift_backward = conv_methods._shift_backward
    monkeypatch.setattr(conv_methods, "_shift_backward", lambda *a: shift_runs.append(a[4:])
                        or shift_backward(*a))
    gen = torch.Generator().manual_seed(size)
    x = torch.randn(size, size, dtype=torch.float64, generator=gen, requires_grad=True)
    w = torch.randn(k, k, dtype=torch.float64, generator=gen, requires_grad=True)
    g = torch.randn(size - k + 1, size - k + 1, dtype=torch.float64, generator=gen)
    y = scipy_conv2d(x, w, None, "fft")
    grads = torch.autograd.grad(y, (x, w), g)
    assert shift_runs == []
    refs = conv_reference(x, w, None, g)
    for name, got in zip(("output", "grad_input", "grad_weight"), (y, *grads)):
        assert contract_ratio(got, refs[name], torch.float64) <= 1, name
