"""The layers inside the machinery of real training code: in-place changes that autograd
allows, activation checkpointing and saved-tensor hooks, autocast, torch.jit.trace and
nn.Conv2d's own hooks. Native torch is the oracle (float64 unless autocast)."""
import functools
import re

import pytest
import torch
import torch.nn.functional as F
from torch.autograd.graph import allow_mutation_on_saved_tensors, saved_tensors_hooks
from torch.utils.checkpoint import checkpoint

import scipy_layers as sl

D = torch.float64

# (name, layer, native twin, input shape, weight shape): every method of every layer
CONVS = [
    *[(f"conv2d-{method}", lambda x, w, m=method: sl.conv2d(x, w, padding=1, method=m),
       lambda x, w: F.conv2d(x, w, padding=1), (2, 3, 9, 8), (4, 3, 3, 3))
      for method in ("auto", "im2col", "fft")],
    ("conv2d-shift", lambda x, w: sl.conv2d(x, w, padding=1, method="shift"),
     lambda x, w: F.conv2d(x, w, padding=1), (2, 2, 9, 8), (1, 2, 3, 3)),
    *[(f"scipy_conv2d-{method}", lambda x, w, m=method: sl.scipy_conv2d(x, w, None, m),
       sl.native_conv2d, (10, 9), (3, 2)) for method in ("auto", "direct", "shift", "fft")],
]
IDS = [case[0] for case in CONVS]


def _grads(conv, x0, w0, mutate):
    """Gradients of sum(conv(x * 1, w * 1) * g) when ``mutate`` ("input", "weight" or
    None) is multiplied by 3 in place between forward and backward, as
    allow_mutation_on_saved_tensors permits."""
    x, w = x0.clone().requires_grad_(), w0.clone().requires_grad_()
    with allow_mutation_on_saved_tensors():
        xi, wi = x * 1, w * 1  # non-leaf tensors, saved by the conv
        y = conv(xi, wi)
        if mutate:
            (xi if mutate == "input" else wi).mul_(3)
        y.backward(torch.linspace(-1, 1, y.numel(), dtype=D).reshape(y.shape))
    return x.grad, w.grad


@pytest.mark.parametrize("mutate", ["input", "weight"])
@pytest.mark.parametrize("name, conv, native, x_shape, w_shape", CONVS, ids=IDS)
def test_allowed_mutation_of_saved_tensors_gives_native_gradients(name, conv, native,
                                                                  x_shape, w_shape, mutate):
    # The gradients of the function as forward evaluated it: forward's numpy views see
    # the new values, so backward must not read them (it recomputes from the clone
    # autograd kept). Before the fix: 9-39 off native.
    x0, w0 = torch.randn(x_shape, dtype=D), torch.randn(w_shape, dtype=D)
    for got, expected in zip(_grads(conv, x0, w0, mutate), _grads(native, x0, w0, mutate)):
        torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-12)


def _grads_repacked_after_forward(conv, x0, w0, mutate):
    """Gradients of sum(conv(x * 1, w * 1) * g) where hooks put on the saved input and
    weight after forward (grad_fn._raw_saved_tensors) repack them as clones, and then
    ``mutate`` is multiplied by 3 in place: autograd hands backward the clones (no version
    check through hooks), while forward's numpy views see the new values."""
    x, w = x0.clone().requires_grad_(), w0.clone().requires_grad_()
    xi, wi = x * 1, w * 1
    y = conv(xi, wi)
    for saved in y.grad_fn._raw_saved_tensors[:2]:  # (input, weight: not the holder)
        saved.register_hooks(lambda t: t.clone(), lambda t: t)
    with torch.no_grad():
        (xi if mutate == "input" else wi).mul_(3)
    y.backward(torch.linspace(-1, 1, y.numel(), dtype=D).reshape(y.shape))
    return x.grad, w.grad


@pytest.mark.parametrize("mutate", ["input", "weight"])
@pytest.mark.parametrize("name, conv, native, x_shape, w_shape", CONVS, ids=IDS)
def test_hooks_put_on_saved_tensors_after_forward_give_native_gradients(
        name, conv, native, x_shape, w_shape, mutate):
    # Hooks registered after forward are the case only _forward_state.state_for catches
    # (hooks active during forward keep no state at all): backward must recompute from
    # the tensors autograd hands it, the values forward saw, as native's gradients of
    # the unchanged inputs are.
    x0, w0 = torch.randn(x_shape, dtype=D), torch.randn(w_shape, dtype=D)
    for got, expected in zip(_grads_repacked_after_forward(conv, x0, w0, mutate),
                             _grads(native, x0, w0, None)):
        torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("mutate", ["input", "weight"])
def test_allowed_mutation_of_saved_input_of_fft_abs(mutate):
    x0 = torch.randn(3, 8, 7, dtype=D)
    grads = []
    for layer in (sl.fft_abs, sl.native_fft_abs):
        x = x0.clone().requires_grad_()
        with allow_mutation_on_saved_tensors():
            xi = x * 1
            y = layer(xi)
            xi.mul_(3)
            y.backward(torch.linspace(-1, 1, y.numel(), dtype=D).reshape(y.shape))
        grads.append(x.grad)
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-10, atol=1e-12)


def _state_kept(y):
    state = y.grad_fn.forward_state  # (the Function's ctx)
    return state is not None and state.value is not None


@pytest.mark.parametrize("name, conv, native, x_shape, w_shape", CONVS, ids=IDS)
def test_saved_tensor_hooks_hold_all_that_backward_reads(name, conv, native, x_shape,
                                                         w_shape):
    # Under hooks (non-reentrant checkpointing, save_on_cpu) nothing is kept beside the
    # saved tensors: a kept state would hold the activations the hooks free or move.
    x = torch.randn(x_shape, dtype=D, requires_grad=True)
    w = torch.randn(w_shape, dtype=D, requires_grad=True)
    assert _state_kept(conv(x, w))  # (without hooks it is: the test can fail)
    packed = []
    with saved_tensors_hooks(lambda t: packed.append(t.clone()) or len(packed) - 1,
                             lambda i: packed[i]):
        y = conv(x, w)
    assert not _state_kept(y) and packed
    got = torch.autograd.grad(y, (x, w), torch.ones_like(y))
    expected = torch.autograd.grad(native(x, w), (x, w), torch.ones_like(y))
    for a, b in zip(got, expected):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def test_fft_abs_keeps_no_spectrum_under_saved_tensor_hooks():
    x = torch.randn(2, 8, 8, dtype=D, requires_grad=True)
    assert _state_kept(sl.fft_abs(x))
    with torch.autograd.graph.save_on_cpu():
        y = sl.fft_abs(x)
    assert not _state_kept(y)
    torch.testing.assert_close(torch.autograd.grad(y.sum(), x)[0],
                               torch.autograd.grad(sl.native_fft_abs(x).sum(), x)[0])


def _half(t):
    """A pack hook storing real activations in half precision (complex ones as they are:
    torch has no complex half kernels to speak of)."""
    return t.half() if t.is_floating_point() else t


def _grads_under_hooks(layer, args, unpack):
    leaves = [a.clone().requires_grad_() for a in args]
    with saved_tensors_hooks(lambda t: (t.dtype, _half(t)), unpack):
        y = layer(*leaves)
    return torch.autograd.grad(y, leaves, torch.linspace(-1, 1, y.numel(), dtype=y.dtype)
                               .reshape(y.shape))


def _restored(packed):
    return packed[1].to(packed[0])


def _left_half(packed):
    return packed[1]


@pytest.mark.parametrize("name, conv, native, x_shape, w_shape", CONVS, ids=IDS)
def test_a_hook_handing_back_another_dtype_gives_the_restored_dtypes_gradients(
        name, conv, native, x_shape, w_shape):
    # An unpack hook that leaves the saved tensors in the pack hook's half precision:
    # the layers cast them back, as an unpack hook restoring the dtype does (native's
    # conv raises "expected scalar type"). Before hostile pass 151: im2col a TypeError
    # "dtype must be float32 or float64", fft a KeyError: dtype('float16'), direct
    # scipy's "convolve2d not available for this type", shift float16 arithmetic.
    args = torch.randn(x_shape, dtype=D), torch.randn(w_shape, dtype=D)
    for got, expected in zip(_grads_under_hooks(conv, args, _left_half),
                             _grads_under_hooks(conv, args, _restored)):
        assert got.dtype == D
        torch.testing.assert_close(got, expected, rtol=0, atol=0)


@pytest.mark.parametrize("method", ["auto", "fft", "matrix"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_fft_abs_under_a_hook_storing_half_precision_keeps_native_gradient(method, dtype):
    # Native's rfft2(x).abs() saves only its complex spectrum, which the hook leaves
    # alone: its gradient is exact. fft_abs saves its real input and output, which come
    # back in float16; before hostile pass 151 backward failed in pocketfft ("unsupported
    # data type") or a KeyError: dtype('float16'); now it computes from them in forward's
    # dtype, within half precision of native.
    x = torch.randn(2, 8, 8, dtype=dtype)
    layer = functools.partial(sl.fft_abs, method=method)
    (got,) = _grads_under_hooks(layer, (x,), _left_half)
    (restored,) = _grads_under_hooks(layer, (x,), _restored)
    (expected,) = _grads_under_hooks(sl.native_fft_abs, (x,), _left_half)
    assert got.dtype == dtype
    torch.testing.assert_close(got, restored, rtol=0, atol=0)
    assert (got - expected).abs().max() <= 1e-2 * expected.abs().max()


@pytest.mark.parametrize("use_reentrant", [False, True])
def test_checkpointed_block_gives_native_gradients(use_reentrant):
    torch.manual_seed(0)
    layers = [sl.Conv2d(3, 3, 3, padding=1, dtype=D) for _ in range(2)]
    natives = [torch.nn.Conv2d(3, 3, 3, padding=1, dtype=D) for _ in range(2)]
    for layer, native in zip(layers, natives):
        native.load_state_dict(layer.state_dict())

    def block(modules, x):
        return modules[1](torch.tanh(modules[0](x)))

    def gradients(modules, checkpointed):
        x = torch.linspace(-2, 2, 2 * 3 * 8 * 8, dtype=D).reshape(2, 3, 8, 8).requires_grad_()
        y = (checkpoint(block, modules, x, use_reentrant=use_reentrant) if checkpointed
             else block(modules, x))
        y.sum().backward()  # (reentrant checkpointing takes no autograd.grad)
        return [x.grad, *(p.grad for m in modules for p in m.parameters())]

    for a, b in zip(gradients(layers, True), gradients(natives, False)):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def test_padding_mode_set_after_construction_is_refused():
    layer = sl.Conv2d(2, 3, 3, padding=1)
    layer.padding_mode = "circular"  # (a plain attribute: conversion loops set it)
    with pytest.raises(ValueError, match="padding_mode must be 'zeros'.*'circular'"):
        layer(torch.randn(1, 2, 6, 6))


def test_subclass_convolving_a_changed_weight_runs_the_layer():
    class StandardisedConv(sl.Conv2d):  # weight standardisation: nn.Conv2d's own hook
        def forward(self, x):
            w = self.weight - self.weight.mean((1, 2, 3), keepdim=True)
            return self._conv_forward(x, w, self.bias)

    layer = StandardisedConv(2, 3, 3, dtype=D)
    x = torch.randn(1, 2, 6, 6, dtype=D)
    y = layer(x)
    assert "Conv2dNCHWFunction" in type(y.grad_fn).__name__
    w = layer.weight - layer.weight.mean((1, 2, 3), keepdim=True)
    torch.testing.assert_close(y, F.conv2d(x, w, layer.bias))


def test_jit_trace_of_conv2d_is_refused_clearly():
    # The geometry is Python arithmetic on the shapes: a trace would fix the output size
    # and crop (im2col, fft) or crash (shift) on another input size; before, the trace
    # itself failed with a bare "unordered_map::at".
    layer = sl.Conv2d(3, 4, 3, padding="same", dtype=D)
    x = torch.randn(2, 3, 8, 8, dtype=D)
    with pytest.raises(RuntimeError, match="torch.jit.trace cannot record.*torch.compile"):
        torch.jit.trace(layer, x)
    with pytest.raises(RuntimeError, match="torch.jit.trace cannot record"):
        torch.jit.trace(lambda a: sl.conv2d(a, torch.ones(4, 3, 3, 3, dtype=D)), x)


def _direct_nchw_apply(x):  # (the batched conv's Function, called as the tutorial does)
    from scipy_layers._nchw_args import check_conv2d_arguments
    from scipy_layers.nn import Conv2dNCHWFunction
    w = torch.ones(4, 3, 3, 3, dtype=D)
    geometry = check_conv2d_arguments(x, w, None, 1, 0, 1, 1)
    return Conv2dNCHWFunction.apply(x, w, None, geometry, "im2col")


FILTER = torch.randn(3, 3, dtype=D, generator=torch.Generator().manual_seed(1))

# (entry point, its native twin as a function, input shape): every call that hands its
# Function a per-call ForwardState
TRACED_WITH_STATE = {
    "fft_abs": (lambda x: sl.fft_abs(x), sl.native_fft_abs, (2, 8, 8)),
    "FFTAbsFunction.apply": (lambda x: sl.FFTAbsFunction.apply(x), sl.native_fft_abs,
                             (2, 8, 8)),
    "scipy_conv2d": (lambda x: sl.scipy_conv2d(x, FILTER),
                     lambda x: sl.native_conv2d(x, FILTER), (10, 10)),
    "ScipyConv2dFunction.apply": (lambda x: sl.ScipyConv2dFunction.apply(x, FILTER),
                                  lambda x: sl.native_conv2d(x, FILTER), (10, 10)),
}


class _Scaled(torch.nn.Module):
    """A user's module around an entry point, with a parameter before it."""

    def __init__(self, call):
        super().__init__()
        self.call, self.scale = call, torch.nn.Parameter(torch.tensor(1.5, dtype=D))

    def forward(self, a):
        return self.call(a * self.scale)


def _traced_scipy_conv2d_module():
    layer = sl.ScipyConv2d(3, 3).double()
    with torch.no_grad():
        layer.filter.copy_(FILTER)
        layer.bias.zero_()
    return layer


@pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning")  # (the numpy inside it)
@pytest.mark.parametrize("entry", [*TRACED_WITH_STATE, "ScipyConv2d"])
def test_jit_trace_of_a_layer_with_forward_state_runs_it_afresh_per_call(entry):
    """The trace recorded the call's ForwardState as a constant (the graph read
    "^FFTAbsFunction(auto, ForwardState(empty))(%x)"), shared by every later call of the
    traced function: a backward after a second call got that call's gradient (fft_abs 46
    off native, ScipyConv2d's grad_filter 29), a no_grad call in between flipped a
    gradient's sign, another input size gave an "invalid gradient" error, and every
    call's spectrum was queued forever (hostile pass 94). Traced, a layer now gets no
    state: its backward recomputes what forward would have kept (hostile pass 100:
    refusing broke TensorBoard's add_graph, which traces once to draw)."""
    if entry == "ScipyConv2d":
        call, twin, shape = _traced_scipy_conv2d_module(), TRACED_WITH_STATE[
            "scipy_conv2d"][1], (10, 10)
    else:
        call, twin, shape = TRACED_WITH_STATE[entry]
    model, native = _Scaled(call), _Scaled(twin)
    traced = torch.jit.trace(model, torch.randn(*shape, dtype=D))
    assert "ForwardState" not in str(traced.graph)
    x1 = torch.randn(*shape, dtype=D, requires_grad=True)
    y1 = traced(x1)
    other = (shape[0] + 3, shape[1] + 2) if len(shape) == 2 else (3, 10, 7)
    traced(torch.randn(*other, dtype=D, requires_grad=True))  # another size between
    with torch.no_grad():
        traced(torch.randn(*shape, dtype=D))  # a validation call between
    g = torch.randn_like(y1)
    got = torch.autograd.grad(y1, (x1, model.scale), g)
    x1n = x1.detach().requires_grad_()
    y1n = native(x1n)
    want = torch.autograd.grad(y1n, (x1n, native.scale), g)
    torch.testing.assert_close(y1, y1n)
    torch.testing.assert_close(got, want)


def test_jit_trace_of_the_batched_conv_s_function_is_refused_clearly():
    """Its geometry argument is one input size's (conv2d and Conv2d refuse before it)."""
    with pytest.raises(RuntimeError, match=r"^torch\.jit\.trace cannot record "
                                           r"scipy_layers\.conv2d / Conv2d: its arguments "
                                           r".*native twin, torch\.nn\.functional\.conv2d$"):
        torch.jit.trace(_direct_nchw_apply, torch.randn(2, 3, 8, 8, dtype=D))


@pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning")
@pytest.mark.parametrize("layer, call", [
    ("incorrect_fft", lambda x: sl.incorrect_fft(x)), ("fft_abs", lambda x: sl.fft_abs(x)),
    ("scipy_conv2d / ScipyConv2d", lambda x: sl.scipy_conv2d(x[0], FILTER))])
@pytest.mark.parametrize("traced_first", [False, True], ids=["module", "traced module"])
def test_onnx_export_of_a_layer_is_refused_clearly(layer, call, traced_first):
    """The legacy (tracing) exporter put the recorded call's output in the model as a
    constant: a model with no input, the same output for every one (hostile pass 100);
    so did exporting a model traced before (hostile pass 102)."""
    import io

    class Model(torch.nn.Module):
        def forward(self, a):
            return call(a)
    x = torch.randn(2, 8, 8, dtype=D)
    model = torch.jit.trace(Model(), x) if traced_first else Model()
    with pytest.raises(RuntimeError, match=rf"^torch\.onnx\.export cannot export "
                                           rf"{re.escape(layer)}: it runs numpy/scipy"):
        torch.onnx.export(model, (x,), io.BytesIO(), dynamo=False)


@pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning")  # (the numpy inside it)
def test_jit_trace_of_incorrect_fft_runs_it_afresh_per_call():
    # BadFFTFunction keeps no state outside autograd's saved tensors: the trace records
    # one Python op that calls BadFFTFunction.apply anew on each call, so it stays
    # traceable. Two calls (the second of another size, a third without grad) before
    # the first call's backward give the first call's eager gradient.
    class Tutorial(torch.nn.Module):
        def forward(self, a):
            return sl.incorrect_fft(a * 2)
    traced = torch.jit.trace(Tutorial(), torch.randn(2, 8, 8, dtype=D))
    x1 = torch.randn(2, 8, 8, dtype=D, requires_grad=True)
    y1 = traced(x1)
    y2 = traced(torch.randn(3, 10, 7, dtype=D, requires_grad=True))
    with torch.no_grad():
        traced(torch.randn(2, 8, 8, dtype=D))
    assert y2.shape == (3, 10, 4)
    g = torch.randn_like(y1)
    got, = torch.autograd.grad(y1, x1, g)
    x1e = x1.detach().requires_grad_()
    y1e = sl.incorrect_fft(x1e * 2)
    want, = torch.autograd.grad(y1e, x1e, g)
    torch.testing.assert_close(y1, y1e)
    torch.testing.assert_close(got, want)


def test_jit_trace_of_incorrect_fft_backward_is_refused_clearly():
    # A traced function that differentiates the layer: the gradient numpy computed entered
    # the trace as a constant (this grad_output's, for every later one). (The other
    # layers' forwards are refused under the trace already.)
    def grad_of_layer(x, g):
        x = x.detach().requires_grad_()
        return torch.autograd.grad((sl.incorrect_fft(x) * g).sum(), x)[0]

    x = torch.randn(8, 8, dtype=D)
    with pytest.raises(RuntimeError, match=r"^torch\.jit\.trace cannot record the backward "
                                           r"of BadFFTFunction \(incorrect_fft\): "
                                           r".*native twin$"):
        torch.jit.trace(grad_of_layer, (x, torch.randn(8, 5, dtype=D)))


def test_meta_tensors_under_autocast_give_the_shape():
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert sl.conv2d(torch.empty(2, 3, 8, 8, device="meta"),
                         torch.empty(4, 3, 3, 3, device="meta")).shape == (2, 4, 6, 6)
        assert sl.fft_abs(torch.empty(2, 8, 8, device="meta")).shape == (2, 8, 5)
        assert sl.scipy_conv2d(torch.empty(8, 8, device="meta"),
                               torch.empty(3, 3, device="meta")).shape == (6, 6)


def test_autocast_leaves_an_error_it_did_not_cast_for_as_it_was():
    """_autocast.in_float32 names the float16 / bfloat16 casts it made in a TypeError only
    where it made some: an int64 weight beside a float32 input is refused under autocast
    with the message it has outside it (the suite passed with every TypeError under
    autocast given the casts' note, naming no dtype)."""
    x = torch.randn(1, 2, 6, 6)
    cases = [(sl.conv2d, (x, torch.ones(3, 2, 3, 3, dtype=torch.int64))),
             (sl.scipy_conv2d, (x[0, 0], torch.ones(3, 3, dtype=torch.int64))),
             (sl.fft_abs, (torch.ones(4, 4, dtype=torch.int64),))]
    for layer, args in cases:
        with pytest.raises(TypeError) as outside:
            layer(*args)
        with torch.autocast("cpu", dtype=torch.bfloat16), pytest.raises(TypeError) as inside:
            layer(*args)
        assert str(inside.value) == str(outside.value)
        assert "autocast" not in str(inside.value)


@pytest.mark.parametrize("layer_name", ["conv2d", "Conv2d", "scipy_conv2d", "fft_abs"])
def test_autocast_runs_the_layer_in_float32(layer_name):
    torch.manual_seed(0)
    before = torch.nn.Linear(8, 8)  # a native op autocast runs in bfloat16
    conv = sl.Conv2d(2, 3, 3)
    w2 = torch.randn(3, 3, requires_grad=True)
    layers = {"conv2d": lambda h: sl.conv2d(h.reshape(2, 2, 4, 8), conv.weight, conv.bias),
              "Conv2d": lambda h: conv(h.reshape(2, 2, 4, 8)),
              "scipy_conv2d": lambda h: sl.scipy_conv2d(h.reshape(16, 8), w2),
              "fft_abs": lambda h: sl.fft_abs(h.reshape(2, 8, 8))}
    x = torch.randn(16, 8, requires_grad=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        h = before(x)
        assert h.dtype == torch.bfloat16
        y = layers[layer_name](h)
    assert y.dtype == torch.float32
    # the same as the layer on the bfloat16 values, in float32, outside autocast
    torch.testing.assert_close(y, layers[layer_name](h.detach().float()), rtol=0, atol=0)
    (grad_h,) = torch.autograd.grad(y.sum(), h)
    assert grad_h.dtype == torch.bfloat16 and torch.isfinite(grad_h.float()).all()
    with pytest.raises(TypeError, match="bfloat16"):  # outside autocast: refused as before
        layers[layer_name](h.detach())


@pytest.mark.parametrize("half", [torch.bfloat16, torch.float16])
def test_the_fft_twin_under_autocast_runs_as_torch_and_the_layer_do(half):
    """native_fft_abs is torch.fft.rfft2(x).abs(), which torch.autocast runs in float32
    for a half-precision input, as fft_abs does; the twin's argument check refused it
    ("numpy/scipy have no bfloat16 kernels", of a function that runs no numpy), so a
    model could not swap the layer for its twin under autocast (hostile pass 141)."""
    torch.manual_seed(0)
    x = torch.randn(2, 8, 7).to(half)
    outputs, grads = [], []
    for layer in (sl.native_fft_abs, lambda t: torch.fft.rfft2(t).abs(), sl.fft_abs):
        leaf = x.clone().requires_grad_()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            y = layer(leaf)
        assert y.dtype == torch.float32
        outputs.append(y)
        grads.append(torch.autograd.grad(y, leaf, torch.linspace(-1, 1, y.numel()).reshape(y.shape))[0])
    assert all(g.dtype == half for g in grads)
    torch.testing.assert_close(outputs[0], outputs[1], rtol=0, atol=0)
    torch.testing.assert_close(grads[0], grads[1], rtol=0, atol=0)
    torch.testing.assert_close(outputs[0], outputs[2], rtol=1e-4, atol=1e-4)
    with pytest.raises(TypeError, match=str(half).removeprefix("torch.")):  # (outside: refused)
        sl.native_fft_abs(x)


@pytest.mark.parametrize("half", [torch.bfloat16, torch.float16])
def test_the_conv_twin_under_autocast_runs_as_f_conv2d(half):
    """native_conv2d is F.conv2d, which torch.autocast runs in its own dtype on float32
    and on half-precision arguments alike; the twin's argument check refused the latter
    ("numpy/scipy have no bfloat16 kernels", of a function that runs no numpy), so a model
    could not swap the layer for its twin there (hostile pass 141's note). Its other
    checks hold: a filter larger than the input is still the twin's own error."""
    torch.manual_seed(0)
    args = [torch.randn(9, 8).to(half), torch.randn(3, 2), torch.randn(1).to(half)]
    outputs, grads = [], []
    oracle = lambda x, w, b: F.conv2d(x[None, None], w[None, None], b)[0, 0]  # noqa: E731
    for layer in (sl.native_conv2d, oracle):
        leaves = [a.clone().requires_grad_() for a in args]
        with torch.autocast("cpu", dtype=torch.bfloat16):
            y = layer(*leaves)
        outputs.append(y)
        grads.append(torch.autograd.grad(y, leaves, torch.linspace(-1, 1, y.numel()).reshape(y.shape)))
    assert outputs[0].dtype == torch.bfloat16
    torch.testing.assert_close(outputs[0], outputs[1], rtol=0, atol=0)
    for mine, theirs, arg in zip(grads[0], grads[1], args):
        assert mine.dtype == arg.dtype
        torch.testing.assert_close(mine, theirs, rtol=0, atol=0)
    with torch.autocast("cpu", dtype=torch.bfloat16), pytest.raises(ValueError, match="larger than input"):
        sl.native_conv2d(args[0], torch.randn(10, 2).to(half))
    with pytest.raises(TypeError, match=str(half).removeprefix("torch.")):  # (outside: refused)
        sl.native_conv2d(*args)


@pytest.mark.parametrize("layer", ["scipy_conv2d", "conv2d"])
def test_autocast_dtype_error_says_what_was_given(layer):
    """A float16 input cast to float32 by autocast, beside a float64 weight: the dtype
    error names float32, which the caller never passed, so it says why (hostile pass)."""
    x, w = {"scipy_conv2d": ((8, 8), (3, 3)), "conv2d": ((1, 2, 8, 8), (3, 2, 3, 3))}[layer]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        with pytest.raises(TypeError, match=r"has dtype torch\.float64 but input has "
                                            r"torch\.float32.*casts float16 and bfloat16 "
                                            r"tensors to float32 first; given: float16"):
            getattr(sl, layer)(torch.randn(x, dtype=torch.float16),
                               torch.randn(w, dtype=torch.float64))


def test_tutorial_module_takes_numpy_ints_and_shows_its_method():
    np = pytest.importorskip("numpy")
    module = sl.ScipyConv2d(np.int64(3), np.int32(2), method="fft")
    assert module.filter.shape == (3, 2)
    assert repr(module) == "ScipyConv2d(filter=(3, 2), method='fft')"
    assert repr(sl.NativeConv2d(3, 3)) == "NativeConv2d(filter=(3, 3))"
    for bad in (True, 0, 2.0, np.float64(2)):
        with pytest.raises(ValueError, match="filter_width must be a positive int"):
            sl.ScipyConv2d(bad, 2)
