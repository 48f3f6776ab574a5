"""torch.func on the layers: grad, vjp, jacrev, jacfwd and vmap agree with the native
twins (float64, tight tolerances); vmap folds into the batch where it can; what cannot
work (second derivatives, the tutorial's forward mode) raises a clear error; the
autograd promises (only needed gradients, in-place changes caught) still hold."""
import functools

import pytest
import torch
import torch.nn.functional as F
from torch.autograd.functional import jacobian
from torch.func import grad, jacfwd, jacrev, vjp, vmap

import scipy_layers.nn as nn
from scipy_layers import (ScipyConv2d, _dft_axes, conv2d, fft_abs, incorrect_fft,
                          native_conv2d, scipy_conv2d)

TIGHT = dict(rtol=1e-10, atol=1e-12)
SINGLE_METHODS = ["auto", "direct", "shift", "fft"]
NCHW_METHODS = ["im2col", "fft", "shift"]
# (input shape, weight shape, F.conv2d keyword arguments): small, every feature
NCHW_CASES = {
    "plain": ((2, 3, 6, 5), (4, 3, 3, 3), {}),
    "stride-padding": ((1, 2, 7, 6), (3, 2, 3, 2), dict(stride=(2, 1), padding=1)),
    "groups-dilation": ((2, 4, 7, 7), (4, 2, 2, 3), dict(groups=2, dilation=(2, 1))),
    "same": ((1, 2, 5, 6), (2, 2, 4, 3), dict(padding="same")),
}
FFT_METHOD_CASES = ("plain", "same")  # "fft" and "shift" take stride 1, dilation 1, groups 1


def randn(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def nchw_case(name, method):
    x_shape, w_shape, kwargs = NCHW_CASES[name]
    ours = functools.partial(conv2d, method=method, **kwargs)
    native = functools.partial(F.conv2d, **kwargs)
    return ours, native, (randn(*x_shape), randn(*w_shape, seed=1), randn(w_shape[0], seed=2))


def single_case(method):
    ours = functools.partial(scipy_conv2d, method=method)
    return ours, native_conv2d, (randn(7, 6), randn(3, 2, seed=1), randn(1, 1, seed=2))


def fft_case():
    return fft_abs, lambda x: torch.fft.rfft2(x).abs(), (randn(2, 5, 6),)


def all_cases():
    for method in SINGLE_METHODS:
        yield f"scipy_conv2d-{method}", lambda m=method: single_case(m)
    for method in NCHW_METHODS:
        for name in NCHW_CASES if method == "im2col" else FFT_METHOD_CASES:
            yield f"conv2d-{method}-{name}", lambda m=method, n=name: nchw_case(n, m)
    yield "fft_abs", fft_case


CASES = dict(all_cases())


def scalar_loss(fn):
    return lambda *args: fn(*args).sin().sum()  # a non-linear loss: every gradient matters


@pytest.mark.parametrize("case", list(CASES))
def test_grad_of_every_input_agrees_with_native(case):
    ours, native, inputs = CASES[case]()
    argnums = tuple(range(len(inputs)))
    got = grad(scalar_loss(ours), argnums=argnums)(*inputs)
    expected = grad(scalar_loss(native), argnums=argnums)(*inputs)
    torch.testing.assert_close(got, expected, **TIGHT)


@pytest.mark.parametrize("case", list(CASES))
def test_vjp_agrees_with_autograd_on_native(case):
    ours, native, inputs = CASES[case]()
    out, vjp_fn = vjp(ours, *inputs)
    g = randn(*out.shape, seed=9)
    leaves = [t.clone().requires_grad_() for t in inputs]
    ref = native(*leaves)
    torch.testing.assert_close(out, ref.detach(), **TIGHT)
    torch.testing.assert_close(vjp_fn(g), torch.autograd.grad(ref, leaves, g), **TIGHT)


@pytest.mark.parametrize("transform", [jacrev, jacfwd])
@pytest.mark.parametrize("case", list(CASES))
def test_jacobians_agree_with_autograd_functional_jacobian_of_native(case, transform):
    ours, native, inputs = CASES[case]()
    argnums = tuple(range(len(inputs)))
    got = transform(ours, argnums=argnums)(*inputs)
    expected = jacobian(native, inputs)
    torch.testing.assert_close(got, expected, **TIGHT)


def test_tutorial_fft_grad_under_torch_func_is_its_own_backward():
    x, g = randn(3, 5, 6), randn(3, 5, 4, seed=3)
    leaf = x.clone().requires_grad_()
    (eager,) = torch.autograd.grad(incorrect_fft(leaf), leaf, g)
    _, vjp_fn = vjp(incorrect_fft, x)
    torch.testing.assert_close(vjp_fn(g)[0], eager, rtol=0, atol=0)
    torch.testing.assert_close(jacrev(incorrect_fft)(x[0]).shape, (5, 4, 5, 6))


# --- vmap ------------------------------------------------------------------------------

def native_loop(fn, *batched):
    return torch.stack([fn(*entries) for entries in zip(*batched)])


@pytest.mark.parametrize("method", NCHW_METHODS)
@pytest.mark.parametrize("unbatched", [False, True])
def test_vmap_conv2d_over_a_leading_dim_folds_into_one_call(method, unbatched, monkeypatch):
    seen = []
    original = nn._forward_kernels
    monkeypatch.setattr(nn, "_forward_kernels",
                        lambda x, *args: seen.append(x.shape) or original(x, *args))
    x = randn(5, 3, 7, 6) if unbatched else randn(5, 2, 3, 7, 6)  # vmapped dim first
    w, b = randn(4, 3, 3, 3, seed=1), randn(4, seed=2)
    got = vmap(lambda x: conv2d(x, w, b, padding=1, method=method))(x)
    torch.testing.assert_close(got, native_loop(lambda x: F.conv2d(x, w, b, padding=1), x),
                               **TIGHT)
    assert seen == [(5, 3, 7, 6) if unbatched else (10, 3, 7, 6)]


def test_vmap_over_an_inner_dim_and_nested_vmap():
    x, w = randn(2, 4, 3, 6, 6), randn(5, 3, 3, 3, seed=1)
    got = vmap(lambda x: conv2d(x, w), in_dims=1)(x)  # (4, 2, 5, 4, 4)
    torch.testing.assert_close(got, F.conv2d(x.transpose(0, 1).reshape(8, 3, 6, 6), w)
                               .reshape(4, 2, 5, 4, 4), **TIGHT)
    nested = vmap(vmap(lambda x: conv2d(x, w)))(x)
    torch.testing.assert_close(nested, F.conv2d(x.reshape(8, 3, 6, 6), w).reshape(2, 4, 5, 4, 4),
                               **TIGHT)


@pytest.mark.parametrize("method", NCHW_METHODS)
def test_vmap_over_weight_and_bias_runs_one_call_per_entry(method):
    x, w, b = randn(2, 3, 6, 6), randn(4, 5, 3, 3, 3, seed=1), randn(4, 5, seed=2)
    got = vmap(lambda w, b: conv2d(x, w, b, method=method))(w, b)
    torch.testing.assert_close(got, native_loop(lambda w, b: F.conv2d(x, w, b), w, b), **TIGHT)
    got = vmap(lambda x, w: conv2d(x, w, method=method))(randn(4, 2, 3, 6, 6), w)
    torch.testing.assert_close(got, native_loop(F.conv2d, randn(4, 2, 3, 6, 6), w), **TIGHT)


@pytest.mark.parametrize("method", NCHW_METHODS)
def test_vmap_over_the_bias_alone(method):
    """A vmapped bias with an unbatched weight runs one call per entry (only a vmapped
    input alone folds into the batch)."""
    x, w, b = randn(2, 3, 6, 6), randn(4, 3, 3, 3, seed=1), randn(5, 4, seed=2)
    got = vmap(lambda b: conv2d(x, w, b, method=method))(b)
    torch.testing.assert_close(got, torch.stack([F.conv2d(x, w, e) for e in b]), **TIGHT)


def test_jvp_with_no_input_channels_gives_an_output_with_no_channels():
    """Weight (C_out, 0, kH, kW): torch's output has no channels, so the bias tangent
    (C_out,) adds nothing to it."""
    x, w, b = randn(2, 0, 6, 5), randn(4, 0, 3, 3, seed=1), randn(4, seed=2)
    tangents = (randn(2, 0, 6, 5, seed=3), randn(4, 0, 3, 3, seed=4), randn(4, seed=5))
    ours = torch.func.jvp(lambda x, w, b: conv2d(x, w, b), (x, w, b), tangents)
    native = torch.func.jvp(lambda x, w, b: F.conv2d(x, w, b), (x, w, b), tangents)
    assert ours[1].shape == native[1].shape == (2, 0, 4, 3)
    torch.testing.assert_close(ours, native, **TIGHT)


@pytest.mark.parametrize("fn", [fft_abs, incorrect_fft])
def test_vmap_fft_layers_is_one_call_over_the_batch(fn, monkeypatch):
    calls = []
    original = _dft_axes.transform  # fft_abs's one entry to its transforms, by either method
    monkeypatch.setattr(_dft_axes, "transform", lambda a, *args, **kw: calls.append(a.shape) or
                        original(a, *args, **kw))
    x = randn(6, 3, 5, 7)
    for in_dims in (0, 2):
        got = vmap(fn, in_dims=in_dims)(x)
        expected = torch.fft.rfft2(x.movedim(in_dims, 0)).abs()
        torch.testing.assert_close(got, expected, **TIGHT)
    if fn is fft_abs:  # (incorrect_fft is on numpy.fft)
        assert calls == [(6, 3, 5, 7), (5, 6, 3, 7)]


@pytest.mark.parametrize("fn", [fft_abs, incorrect_fft])
@pytest.mark.parametrize("in_dims", [0, 1, -1])
def test_vmap_fft_layers_refuse_entries_that_are_not_images(fn, in_dims):
    """Each vmapped entry must be (..., H, W), as native's rfft2 needs: a 2-D input
    vmapped to 1-D entries was folded into one (entries, length) image, transformed
    across the entries (hostile pass 112), where native raises."""
    x = randn(3, 5)
    with pytest.raises(IndexError):  # native: the entries have no second dim
        vmap(lambda t: torch.fft.rfft2(t).abs(), in_dims=in_dims)(x)
    entry = (5,) if in_dims == 0 else (3,)
    with pytest.raises(ValueError, match=rf"at least 2 dims, got a 1-D tensor of shape "
                                         rf"\({entry[0]},\)"):
        vmap(fn, in_dims=in_dims)(x)
    with pytest.raises(ValueError, match=r"at least 2 dims, got a 1-D tensor of shape \(5,\)"):
        vmap(vmap(fn))(randn(2, 3, 5))


@pytest.mark.parametrize("method", SINGLE_METHODS)
def test_vmap_single_channel_conv_over_input_filter_and_bias(method):
    x, w, b = randn(3, 7, 6), randn(3, 3, 2, seed=1), randn(3, 1, 1, seed=2)
    got = vmap(lambda x, w, b: scipy_conv2d(x, w, b, method))(x, w, b)
    torch.testing.assert_close(got, native_loop(native_conv2d, x, w, b), **TIGHT)


@pytest.mark.parametrize("method", NCHW_METHODS)
def test_vmap_of_grad_and_grad_of_vmap(method):
    x, w = randn(3, 2, 3, 6, 6), randn(4, 3, 3, 3, seed=1)
    loss = lambda conv: lambda x: conv(x, w).sin().sum()  # noqa: E731
    ours = functools.partial(conv2d, method=method)
    torch.testing.assert_close(vmap(grad(loss(ours)))(x), vmap(grad(loss(F.conv2d)))(x), **TIGHT)
    batched_loss = lambda conv: lambda x: vmap(lambda e: conv(e, w))(x).sin().sum()  # noqa: E731
    torch.testing.assert_close(grad(batched_loss(ours))(x), grad(batched_loss(F.conv2d))(x),
                               **TIGHT)


def test_vmap_over_an_empty_dim_gives_an_empty_result():
    x, w = randn(2, 3, 6, 6), randn(4, 3, 3, 3)
    assert vmap(lambda x: conv2d(x, w))(randn(0, 2, 3, 6, 6)).shape == (0, 2, 4, 4, 4)
    assert vmap(lambda w: conv2d(x, w))(randn(0, 4, 3, 3, 3)).shape == (0, 2, 4, 4, 4)
    assert vmap(fft_abs)(randn(0, 5, 6)).shape == (0, 5, 4)
    # (vmapped along another dim than the first: the entries' shapes drop that dim)
    assert vmap(lambda w: conv2d(x, w), in_dims=1)(randn(4, 0, 3, 3, 3)).shape == (0, 2, 4, 4, 4)


def test_vmap_over_the_weights_inner_dim_takes_each_entry_along_it():
    """A vmap by loop (one call per entry: the weight vmapped) reads each entry along
    the vmapped dim, here the weight's second."""
    x, weights = randn(2, 3, 6, 6), randn(4, 5, 3, 3, 3)
    got = vmap(lambda w: conv2d(x, w), in_dims=1)(weights)
    expected = torch.stack([F.conv2d(x, weights[:, i]) for i in range(5)])
    torch.testing.assert_close(got, expected, **TIGHT)


# --- what cannot work says so ---------------------------------------------------------

# (the public names the user called, each with its Function's)
NAMED_IN_ERRORS = {"scipy_conv2d": r"ScipyConv2dFunction \(scipy_conv2d / ScipyConv2d\)",
                   "conv2d": r"Conv2dNCHWFunction \(scipy_layers\.conv2d / Conv2d\)",
                   "fft_abs": r"FFTAbsFunction \(fft_abs\)"}


@pytest.mark.parametrize("case", ["scipy_conv2d-fft", "conv2d-im2col-plain", "fft_abs"])
def test_second_derivatives_raise_the_double_backward_error(case):
    ours, _, inputs = CASES[case]()
    named = NAMED_IN_ERRORS[case.split("-")[0]]
    with pytest.raises(RuntimeError, match=rf"^{named} does not support double backward"):
        grad(lambda x: grad(scalar_loss(ours))(x, *inputs[1:]).sum())(inputs[0])
    with pytest.raises(RuntimeError, match="does not support double backward"):
        torch.func.hessian(scalar_loss(ours))(*inputs)


@pytest.mark.parametrize("case", ["scipy_conv2d-auto", "conv2d-im2col-plain", "fft_abs",
                                  "incorrect_fft"])
@pytest.mark.parametrize("nesting", ["alone", "inside-vmap", "around-vmap"])
def test_functionalize_names_the_layer_and_the_way_out(case, nesting):
    if case == "incorrect_fft":
        ours, native, inputs = incorrect_fft, lambda x: torch.fft.rfft2(x).abs(), (randn(5, 6),)
    else:
        ours, native, inputs = CASES[case]()
    x, rest = inputs[0], inputs[1:]
    functionalize = torch.func.functionalize
    in_dims = (0,) + (None,) * len(rest)  # (vmap over the input alone)
    if nesting == "alone":
        run = lambda: functionalize(ours)(x, *rest)  # noqa: E731
    elif nesting == "inside-vmap":
        run = lambda: vmap(functionalize(ours), in_dims=in_dims)(x[None], *rest)  # noqa: E731
    else:
        run = lambda: functionalize(vmap(ours, in_dims=in_dims))(x[None], *rest)  # noqa: E731
    layer, twin = {"scipy_conv2d-auto": ("scipy_conv2d", "native_conv2d / NativeConv2d"),
                   "conv2d-im2col-plain": ("scipy_layers.conv2d", "torch.nn.functional.conv2d"),
                   "fft_abs": ("fft_abs", "native_fft_abs"),
                   "incorrect_fft": ("incorrect_fft", "native_fft_abs")}[case]
    with pytest.raises(RuntimeError, match=rf"Function \({layer}.*\) cannot run under "
                                           rf"torch\.func\.functionalize.*native twin, {twin}$"):
        run()
    torch.testing.assert_close(functionalize(native)(x, *rest), native(x, *rest))  # the way out


@pytest.mark.parametrize("case", ["scipy_conv2d-auto", "conv2d-im2col-plain", "fft_abs"])
def test_a_backward_under_functionalize_names_the_layer(case):
    ours, _, inputs = CASES[case]()
    inputs = [t.clone().requires_grad_() for t in inputs]
    out = ours(*inputs)
    named = NAMED_IN_ERRORS[case.split("-")[0]]
    with pytest.raises(RuntimeError, match=rf"^the backward of {named} cannot run under "
                                           r"torch\.func\.functionalize"):
        torch.func.functionalize(lambda g: torch.autograd.grad(out, inputs[0], g)[0])(
            torch.ones_like(out))


def test_the_tutorial_fft_promises_no_forward_mode_in_its_double_backward_error():
    x = randn(4, 5).requires_grad_()
    (g,) = torch.autograd.grad(incorrect_fft(x).sum(), x, create_graph=True)
    with pytest.raises(RuntimeError, match=r"does not support double backward") as error:
        torch.autograd.grad(g.sum(), x)
    assert "where the layer has a forward-mode rule" in str(error.value)


def test_autograd_functional_jvp_points_to_torch_func_jvp():
    x = randn(5, 6)
    with pytest.raises(RuntimeError, match=r"double backward.*torch\.func\.jvp"):
        torch.autograd.functional.jvp(fft_abs, x, torch.ones_like(x))
    _, tangent = torch.func.jvp(fft_abs, (x,), (torch.ones_like(x),))
    _, expected = torch.func.jvp(lambda t: torch.fft.rfft2(t).abs(), (x,), (torch.ones_like(x),))
    torch.testing.assert_close(tangent, expected, **TIGHT)


@pytest.mark.parametrize("case", list(CASES))
def test_linearize_is_refused_naming_itself_and_torch_func_jvp(case):
    """torch.func.linearize traces the function with make_fx, which the layers refuse
    (a trace would hold this input's values as constants); its error named make_fx and
    torch.export alone, which the caller never called, and not torch.func.jvp, which
    gives the same products for each tangent (hostile pass 141)."""
    ours, native, args = CASES[case]()
    with pytest.raises(RuntimeError, match=r"cannot record a scipy_layers layer") as error:
        torch.func.linearize(ours, *args)
    assert "torch.func.linearize" in str(error.value) and "torch.func.jvp" in str(error.value)
    tangents = tuple(torch.ones_like(arg) for arg in args)
    torch.testing.assert_close(torch.func.jvp(ours, args, tangents)[1],
                               torch.func.jvp(native, args, tangents)[1], **TIGHT)


def test_tutorial_fft_has_no_forward_mode_and_says_so():
    # (naming the layer called, incorrect_fft, as its gradient step's errors do: hostile
    # pass 113 found it named the Function alone)
    for transform in (jacfwd, torch.func.hessian):
        with pytest.raises(RuntimeError, match=r"^BadFFTFunction \(incorrect_fft, the tutorial's "
                                               r"wrong gradient\) does not support forward-mode "
                                               r"AD.*jacrev"):
            transform(lambda x: incorrect_fft(x).sum() if transform is torch.func.hessian
                      else incorrect_fft(x))(randn(4, 5))


# --- autograd promises kept ---------------------------------------------------------------

@pytest.mark.parametrize("argnums,needs", [(0, (True, False)), (1, (False, True)),
                                           ((0, 1), (True, True))])
def test_torch_func_grad_computes_only_the_gradients_asked_for(argnums, needs, monkeypatch):
    seen = []
    original = nn.kernels.im2col_backward
    monkeypatch.setattr(nn.kernels, "im2col_backward", lambda gy, w, state, geometry, *need:
                        seen.append(need) or original(gy, w, state, geometry, *need))
    x, w = randn(2, 3, 6, 6), randn(4, 3, 3, 3, seed=1)
    grad(scalar_loss(functools.partial(conv2d, method="im2col")), argnums=argnums)(x, w)
    assert seen == [needs]


@pytest.mark.parametrize("call", [
    lambda x: scipy_conv2d(x[0], x[0, :3, :2].detach(), None, "fft"),
    lambda x: conv2d(x[None], torch.ones(2, 2, 3, 3, dtype=x.dtype)),
    fft_abs,
    incorrect_fft,
], ids=["scipy_conv2d", "conv2d", "fft_abs", "incorrect_fft"])
def test_changing_a_saved_input_in_place_is_caught(call):
    x = randn(2, 6, 6).requires_grad_()
    leaf = x * 1  # an intermediate the layer saves
    out = call(leaf)
    leaf.add_(1)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        out.sum().backward()


def test_changing_fft_abs_output_in_place_is_caught_not_a_wrong_gradient():
    x = randn(4, 6).requires_grad_()
    out = fft_abs(x)
    out.mul_(2)  # the saved magnitude: before, backward silently used the doubled values
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        out.sum().backward()


def test_module_parameters_through_functional_call_and_grad():
    module = ScipyConv2d(3, 2, method="shift").double()
    params = {name: p.detach() for name, p in module.named_parameters()}
    x = randn(8, 7)
    got = grad(lambda p: torch.func.functional_call(module, p, (x,)).sin().sum())(params)
    expected = grad(lambda p: native_conv2d(x, p["filter"], p["bias"]).sin().sum())(params)
    torch.testing.assert_close(got, expected, **TIGHT)


def test_cupy_path_under_torch_func_on_the_numpy_stand_in(monkeypatch):
    from tests._fake_cupy import fake_cupy, install  # the numpy-backed CuPy stand-in
    modules, calls = fake_cupy()
    install(monkeypatch, modules)
    x, w, b = randn(9, 8), randn(3, 3, seed=1), randn(1, 1, seed=2)
    ours = functools.partial(scipy_conv2d, method="cupy")
    torch.testing.assert_close(jacrev(ours, argnums=(0, 1, 2))(x, w, b),
                               jacobian(native_conv2d, (x, w, b)), **TIGHT)
    torch.testing.assert_close(grad(scalar_loss(fft_abs))(randn(4, 6)),
                               grad(scalar_loss(lambda x: torch.fft.rfft2(x).abs()))(randn(4, 6)),
                               **TIGHT)
    assert {name for name, *_ in calls} == {"correlate2d", "convolve2d"}  # the CuPy path ran


@pytest.mark.parametrize("case", ["scipy_conv2d-shift", "conv2d-im2col-plain", "conv2d-shift-plain",
                                  "fft_abs"])
def test_autograd_batched_gradients_raise_a_clear_error_and_the_loop_works(case):
    """is_grads_batched / jacobian(vectorize=True) run autograd's own vmap, under which
    numpy cannot read the gradient: a clear error naming what works, not a detach trace."""
    ours, native, inputs = CASES[case]()
    leaves = tuple(t.requires_grad_() for t in inputs)
    out = ours(*leaves)
    batch = randn(3, *out.shape, seed=5)
    named = NAMED_IN_ERRORS[case.split("-")[0]]
    with pytest.raises(RuntimeError, match=rf"^the gradients of {named} run in numpy/scipy and "
                                           r"cannot take autograd's batched gradients.*"
                                           r"torch\.func\.vmap"):
        torch.autograd.grad(out, leaves, batch, is_grads_batched=True)
    for strategy in ("reverse-mode", "forward-mode"):  # (forward mode: in jvp)
        with pytest.raises(RuntimeError, match="cannot take autograd's batched gradients"):
            jacobian(lambda *args: ours(*args), leaves, vectorize=True, strategy=strategy)
    torch.testing.assert_close(jacobian(ours, leaves), jacobian(native, leaves), **TIGHT)


@pytest.mark.parametrize("layer", ["fft_abs", "scipy_conv2d"])
def test_a_tensor_leaked_from_a_transform_works_afterwards(layer):
    """A tensor a function stored while torch.func.grad ran (a functorch wrapper, dead
    once the transform ended) gives the values of the plain tensor when a layer takes it
    later, as in torch (the layers' apply unwraps dead wrappers as torch's does)."""
    leaked = []
    weight, bias = randn(3, 2, seed=1), randn(1, 1, seed=2)
    call = {"fft_abs": lambda x: fft_abs(x),
            "scipy_conv2d": lambda x: scipy_conv2d(x, weight, bias)}[layer]

    def loss(x):
        leaked.append(x)
        return call(x).sum()

    x = randn(6, 5)
    grad(loss)(x)
    assert torch._C._functorch.is_functorch_wrapped_tensor(leaked[0])
    torch.testing.assert_close(call(leaked[0]), call(x), rtol=0, atol=0)


@pytest.mark.parametrize("name", list(CASES))
def test_forward_mode_ad_in_a_dual_level_matches_native(name):
    """torch.autograd.forward_ad itself (not torch.func): each layer's jvp finds what it
    reads, with a tangent on each input in turn and on all at once."""
    import torch.autograd.forward_ad as fwAD
    ours, native, args = CASES[name]()
    tangents = [randn(*a.shape, seed=10 + i) for i, a in enumerate(args)]
    for which in [*([i] for i in range(len(args))), list(range(len(args)))]:
        results = []
        for fn in (ours, native):
            with fwAD.dual_level():
                duals = [fwAD.make_dual(a, t) if i in which else a
                         for i, (a, t) in enumerate(zip(args, tangents))]
                out = fwAD.unpack_dual(fn(*duals))
                results.append((out.primal, out.tangent))
        torch.testing.assert_close(results[0], results[1], **TIGHT)
    out = ours(*args)  # and outside a level, after one: no tangent, no error
    assert fwAD.unpack_dual(out).tangent is None
