"""A training loop's graph, alive after its backward (the last ``loss`` still in scope),
leaves the modules' parameters free to be swapped, as native's does: ``torch.utils.
swap_tensors``, which ``Module.to()`` / ``.double()`` and ``load_state_dict(assign=True)``
run under ``torch.__future__.set_swap_module_params_on_conversion(True)``, refuses a
tensor that has a weak reference. Before hostile pass 144 each layer call's graph node
held weak references to its input and weight ("Cannot swap t1 because it has weakref
associated with it"; "_apply(): Couldn't swap Conv2d.weight")."""
import copy
from pathlib import Path

import pytest
import torch

import scipy_layers as sl

D = torch.float64

MODULES = {
    "Conv2d": (lambda: sl.Conv2d(3, 4, 3, padding=1), lambda: torch.nn.Conv2d(3, 4, 3, padding=1),
               (2, 3, 8, 8), "weight"),
    "ScipyConv2d": (lambda: sl.ScipyConv2d(3, 2), lambda: sl.NativeConv2d(3, 2), (8, 7), "filter"),
}


@pytest.fixture
def swap_on_conversion():
    before = torch.__future__.get_swap_module_params_on_conversion()
    torch.__future__.set_swap_module_params_on_conversion(True)
    yield
    torch.__future__.set_swap_module_params_on_conversion(before)


def _trained(make, x_shape):
    torch.manual_seed(0)
    module = make()
    x = torch.randn(x_shape, requires_grad=True)
    loss = module(x).pow(2).sum()
    loss.backward()
    return module, x, loss  # (the caller keeps loss, and so the graph, alive)


@pytest.mark.parametrize("convert", ["double", "load_state_dict"])
@pytest.mark.parametrize("name", MODULES)
def test_a_module_converts_by_swapping_while_its_graph_lives(swap_on_conversion, name,
                                                             convert):
    make, make_native, x_shape, _ = MODULES[name]
    results = []
    for maker in (make, make_native):
        module, _, loss = _trained(maker, x_shape)
        if convert == "double":
            module.double()
        else:
            module.load_state_dict({key: value.double() for key, value in
                                    module.state_dict().items()}, assign=True)
        assert all(p.dtype == D for p in module.parameters())
        results.append(module(torch.linspace(-1, 1, torch.Size(x_shape).numel(),
                                             dtype=D).reshape(x_shape)))
        del loss
    torch.testing.assert_close(results[0], results[1], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("native", [False, True], ids=["layer", "native"])
@pytest.mark.parametrize("name", MODULES)
def test_swap_tensors_takes_a_parameter_and_an_input_a_live_graph_read(name, native):
    make, make_native, x_shape, weight_name = MODULES[name]
    module, x, loss = _trained(make_native if native else make, x_shape)
    weight = getattr(module, weight_name)
    torch.utils.swap_tensors(weight, torch.nn.Parameter(torch.zeros_like(weight)))
    assert not weight.detach().any()
    torch.utils.swap_tensors(x, torch.zeros_like(x))
    assert not x.detach().any()
    del loss


def _forward_and_gradients(module, x):
    x = x.clone().requires_grad_()
    y = module(x)
    y.pow(2).sum().backward()
    return y, x.grad, *(p.grad for p in module.parameters())


def test_a_scipy_conv2d_pickled_before_it_had_a_method_loads_runs_and_prints():
    # torch.save of nn.Sequential(ScipyConv2d(3, 3)) made with the first commit
    # (ff04bc1), whose ScipyConv2d had no ``method``: its forward and repr raised
    # AttributeError until hostile pass 149; nn.Conv2d's __setstate__ likewise gives its
    # old pickles padding_mode='zeros'.
    path = Path(__file__).parent / "fixtures" / "scipyconv2d_ff04bc1.pt"
    old = torch.load(path, weights_only=False).double()
    assert "method" not in vars(old[0])
    assert "method='auto'" in repr(old)
    native = sl.NativeConv2d(3, 3).double()
    native.load_state_dict(old[0].state_dict())
    x = torch.linspace(-2, 3, 63, dtype=D).reshape(7, 9)
    for got, expected in zip(_forward_and_gradients(old, x), _forward_and_gradients(native, x)):
        torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)


def test_an_nn_conv2d_given_the_layers_class_in_place_runs_as_native():
    # module.__class__ = scipy_layers.Conv2d (converting a model in place) runs no
    # __init__: the instance has no ``method`` of its own (AttributeError before pass 149)
    torch.manual_seed(0)
    native = torch.nn.Conv2d(3, 4, 3, padding=1, stride=2).double()
    swapped = copy.deepcopy(native)
    swapped.__class__ = sl.Conv2d
    assert "method='auto'" in repr(swapped)
    x = torch.randn(2, 3, 9, 9, dtype=D)
    for got, expected in zip(_forward_and_gradients(swapped, x),
                             _forward_and_gradients(native, x)):
        torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)
