"""Arguments that are not plain, passed as users may: tensor subclasses, a str subclass
as the method. Each gives what the plain argument gives."""
import pytest
import torch


class _OwnNumpy(torch.Tensor):
    """A tensor subclass whose numpy() takes no ``force`` (as a user's might)."""

    def numpy(self):
        return torch.Tensor.numpy(self)


@pytest.mark.parametrize("layer", ["fft_abs", "scipy_conv2d"])
def test_tensor_subclasses_reach_numpy_as_plain_tensors_do(layer):
    """Found by the hostile tester: handing numpy(force=True) to every tensor broke a
    subclass whose numpy() takes no force; values and gradients equal the plain ones."""
    from scipy_layers import fft_abs, scipy_conv2d
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(9, 8, dtype=torch.float64, generator=generator)
    w = torch.randn(3, 2, dtype=torch.float64, generator=generator)
    b = torch.randn(1, 1, dtype=torch.float64, generator=generator)

    def run(make):
        inputs = [make(t).requires_grad_() for t in (x, w, b)]
        y = fft_abs(inputs[0]) if layer == "fft_abs" else scipy_conv2d(*inputs)
        wanted = inputs[:1] if layer == "fft_abs" else inputs
        return (y.as_subclass(torch.Tensor),
                *torch.autograd.grad(y.sum(), wanted))

    for ours, plain in zip(run(lambda t: t.clone().as_subclass(_OwnNumpy)),
                           run(lambda t: t.clone())):
        assert torch.equal(ours.as_subclass(torch.Tensor), plain)


def test_a_str_subclass_method_that_hashes_apart_still_runs_backward():
    """Found by the hostile tester: backward looked its method up in a dict, so a str
    subclass equal to "fft" but hashing apart (forward accepts it) raised KeyError."""
    from scipy_layers import fft_abs

    class OwnHash(str):
        def __hash__(self):
            return 12345

    x = torch.randn(6, 7, dtype=torch.float64, requires_grad=True)
    (ours,) = torch.autograd.grad(fft_abs(x, OwnHash("fft")).sum(), x)
    (plain,) = torch.autograd.grad(fft_abs(x, "fft").sum(), x)
    assert torch.equal(ours, plain)


class _Plain(torch.Tensor):
    """A subclass with torch's default ``__torch_function__``: native ops return it."""


class _Logged(torch.Tensor):
    """A subclass whose handler records what reaches it, then runs torch's default."""

    seen = []

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        cls.seen.append(func)
        return super().__torch_function__(func, types, args, kwargs or {})


class _Refusing(torch.Tensor):
    """A subclass whose handler knows no function (as a strict one may)."""

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        return NotImplemented


_SUBCLASS_INPUTS = {"conv2d": ((9, 8), (3, 2)), "conv2d_nchw": ((2, 3, 7, 6), (4, 3, 2)),
                    "fft_abs": ((2, 6, 7), None)}


def _registry_cases():
    from scipy_layers import LAYERS
    return [(layer.name, name) for layer in LAYERS.values()
            for name in layer.implementations]


@pytest.mark.parametrize("layer_name,implementation", _registry_cases())
def test_a_tensor_subclass_comes_back_as_native_gives_it(layer_name, implementation):
    """Native ops return a subclass with torch's default ``__torch_function__`` as that
    subclass; every implementation now does too (the numpy layers returned plain
    tensors), with the plain call's values and gradients, the gradients as plain as
    native's."""
    from scipy_layers import LAYERS
    layer = LAYERS[layer_name]
    size, kernel = _SUBCLASS_INPUTS[layer_name]
    plain_inputs = layer.make_inputs(size, kernel, dtype=torch.float64)

    def run(fn, wrap):
        inputs = [wrap(t.detach().clone()).requires_grad_() for t in plain_inputs]
        out = fn(*inputs)
        grads = torch.autograd.grad(out, inputs, torch.ones(out.shape, dtype=out.dtype))
        return out, grads

    fn = layer.implementations[implementation].fn
    out, grads = run(fn, lambda t: t.as_subclass(_Plain))
    native_out, native_grads = run(layer.native.fn, lambda t: t.as_subclass(_Plain))
    plain_out, plain_grads = run(fn, lambda t: t)
    assert type(native_out) is _Plain and type(out) is _Plain
    assert torch.equal(out.as_subclass(torch.Tensor), plain_out)
    assert [type(g) for g in grads] == [type(g) for g in native_grads]
    for grad, plain in zip(grads, plain_grads):
        assert torch.equal(grad.as_subclass(torch.Tensor), plain)


@pytest.mark.parametrize("layer_name,implementation", _registry_cases())
def test_parameters_stay_off_the_subclass_protocol(layer_name, implementation):
    """Parameters disable ``__torch_function__``: native returns a plain tensor for
    them, and so does every implementation."""
    from scipy_layers import LAYERS
    layer = LAYERS[layer_name]
    size, kernel = _SUBCLASS_INPUTS[layer_name]
    inputs = [torch.nn.Parameter(t.detach())
              for t in layer.make_inputs(size, kernel, dtype=torch.float64)]
    assert type(layer.native.fn(*inputs)) is torch.Tensor
    assert type(layer.implementations[implementation].fn(*inputs)) is torch.Tensor


def test_a_subclass_handler_sees_the_layer_and_its_refusal_is_torchs_error():
    """A handler is called with the layer's Function (its ``apply``), once per call;
    one that returns NotImplemented gets torch's own TypeError, naming the Function, as
    it would for a native op it does not know."""
    from scipy_layers import ScipyConv2d, fft_abs
    from scipy_layers.fft import FFTAbsFunction
    from scipy_layers.conv import ScipyConv2dFunction
    _Logged.seen.clear()
    x = torch.randn(6, 5, dtype=torch.float64)
    assert type(fft_abs(x.as_subclass(_Logged))) is _Logged
    assert _Logged.seen == [FFTAbsFunction.apply]
    module = ScipyConv2d(3, 2).double()
    _Logged.seen.clear()
    assert type(module(x.as_subclass(_Logged))) is _Logged
    assert ScipyConv2dFunction.apply in _Logged.seen
    with pytest.raises(TypeError, match="FFTAbsFunction.apply"):
        fft_abs(x.as_subclass(_Refusing))
