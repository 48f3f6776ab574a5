"""Every argument error is also a RuntimeError, and code that catches native torch's
error for an input catches the layer's.

The layers document a TypeError or ValueError naming the argument; native torch raises
a RuntimeError for nearly every bad tensor argument (F.conv2d: shapes, groups, strides,
padding, dtypes, layouts). Code written against F.conv2d (``except RuntimeError``) let
the batched conv's errors through until each became both (LayerValueError,
LayerTypeError, EmptyDimensionError, LayerMemoryError). The oracle is native torch on
the same arguments: the sample table's error inputs, and the modules' forward."""
from __future__ import annotations

import warnings

import pytest
import torch
import torch.nn.functional as F

import scipy_layers
from scipy_layers.registry import LAYERS
from scipy_layers.samples import ERROR_INPUTS

# The classes an ``except`` clause written against native torch names.
CAUGHT_AS = (ValueError, TypeError, RuntimeError)


def _raised(fn, *args, **kwargs) -> BaseException | None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            fn(*args, **kwargs)
        except Exception as error:  # noqa: BLE001 (the error is what is compared)
            return error
    return None


ALL_ERRORS = [pytest.param(layer, name, error, id=f"{layer}-{name}-{error.name}")
              for layer, errors in ERROR_INPUTS.items() for error in errors
              for name in LAYERS[layer].implementations
              if not (error.kwargs.get("method") and ("-" in name or name == "native"))]


@pytest.mark.parametrize("layer,name,error", ALL_ERRORS)
def test_every_argument_error_is_also_a_runtime_error(layer, name, error):
    fn = LAYERS[layer].implementations[name].fn
    raised = _raised(fn, *error.make_args(), **error.kwargs)
    if name == "native" and layer == "conv2d_nchw":  # (F.conv2d itself: the oracle below)
        return
    assert isinstance(raised, error.error_type) and isinstance(raised, RuntimeError), (
        type(raised).__mro__ if raised is not None else "nothing raised")


NATIVE_REFUSES = [pytest.param(error, id=error.name) for error in ERROR_INPUTS["conv2d_nchw"]
                  if "method" not in error.kwargs]


@pytest.mark.parametrize("error", NATIVE_REFUSES)
def test_the_batched_conv_raises_what_f_conv2d_raises(error):
    """Each class F.conv2d's error is an instance of (of those an except clause names),
    the layer's is too: F.conv2d refuses each of these (or the test says it took it)."""
    native = _raised(F.conv2d, *error.make_args(), **error.kwargs)
    assert native is not None, "F.conv2d took it: the entry belongs elsewhere"
    ours = _raised(scipy_layers.conv2d, *error.make_args(), **error.kwargs)
    missing = [kind.__name__ for kind in CAUGHT_AS
               if isinstance(native, kind) and not isinstance(ours, kind)]
    assert not missing, (f"F.conv2d raised {type(native).__name__} ({native}); the layer "
                         f"{type(ours).__name__}, not a {missing}")


@pytest.mark.parametrize("layer_input", [
    pytest.param(lambda: torch.randn(1, 2, 8, 8, dtype=torch.float64), id="other-dtype"),
    pytest.param(lambda: torch.randn(1, 3, 8, 8), id="channels"),
    pytest.param(lambda: torch.randn(8, 8), id="2d"),
    pytest.param(lambda: torch.randn(1, 2, 2, 2), id="smaller-than-kernel"),
    pytest.param(lambda: torch.randn(1, 2, 0, 8), id="empty-height"),
    pytest.param(lambda: torch.ones(1, 2, 8, 8, dtype=torch.int64), id="integer"),
])
def test_the_module_raises_what_torch_nn_conv2d_raises(layer_input):
    ours, native = scipy_layers.Conv2d(2, 4, 3), torch.nn.Conv2d(2, 4, 3)
    expected, got = _raised(native, layer_input()), _raised(ours, layer_input())
    assert expected is not None and got is not None
    assert [k for k in CAUGHT_AS if isinstance(expected, k) and not isinstance(got, k)] == []


def test_torch_runs_out_of_memory_with_a_runtime_error():
    """Why LayerMemoryError is a RuntimeError too (tests/test_out_of_memory.py checks the
    layers' calls)."""
    assert isinstance(_raised(torch.empty, 2 ** 61, dtype=torch.float64), RuntimeError)


def test_the_error_classes_are_public():
    for name in ("LayerValueError", "LayerTypeError", "EmptyDimensionError", "LayerMemoryError"):
        assert name in scipy_layers.__all__ and issubclass(getattr(scipy_layers, name), RuntimeError)


@pytest.mark.parametrize("kwargs", [
    pytest.param(dict(stride=2 ** 63), id="stride"),
    pytest.param(dict(padding=(2 ** 63, 1)), id="padding-pair"),
    pytest.param(dict(dilation=2 ** 63), id="dilation"),
    pytest.param(dict(groups=3), id="groups"),
])
def test_under_autocast_the_batched_conv_raises_what_f_conv2d_raises(kwargs):
    """Autocast's half-precision tensors go through a rewording of TypeErrors (that a check
    names float32, which the caller never passed): a stride past int64, a ValueError and
    a TypeError (as F.conv2d's, plain or in a tuple), came out a TypeError alone (hostile
    pass 147), which `except ValueError` written against F.conv2d let through."""
    args = torch.randn(1, 2, 8, 8).bfloat16(), torch.randn(2, 2, 3, 3).bfloat16()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        native = _raised(F.conv2d, *args, **kwargs)
        ours = _raised(scipy_layers.conv2d, *args, **kwargs)
    assert native is not None and isinstance(ours, RuntimeError)
    assert [k for k in CAUGHT_AS if isinstance(native, k) and not isinstance(ours, k)] == []
    if isinstance(ours, TypeError):  # (the note is kept)
        assert "under torch.autocast this layer casts" in str(ours), str(ours)


@pytest.mark.parametrize("size", [2.5, "3", None, 2 ** 63])
def test_the_tutorial_module_refuses_a_filter_size_as_torch_nn_conv2d_does(size):
    """A size that is not an int (or past int64): native torch (torch.nn.Conv2d, and
    NativeConv2d's torch.randn before the check) raises a TypeError; the module's error,
    a ValueError as documented, was not one (past int64: torch.randn's TypeError alone,
    naming no argument, hostile pass 147)."""
    native = _raised(torch.nn.Conv2d, 1, 1, (size, 3))
    ours = _raised(scipy_layers.ScipyConv2d, size, 3)
    assert isinstance(native, TypeError)
    assert isinstance(ours, TypeError) and isinstance(ours, RuntimeError), type(ours).__mro__
    assert str(ours).startswith("filter_width must be a positive int"), str(ours)


@pytest.mark.parametrize("layer,native,shapes", [
    pytest.param(scipy_layers.conv2d, F.conv2d, ((1, 2, 8, 8), (2, 2, 3, 3)), id="conv2d"),
    pytest.param(scipy_layers.scipy_conv2d, scipy_layers.native_conv2d, ((8, 8), (3, 3)),
                 id="scipy_conv2d"),
    pytest.param(scipy_layers.fft_abs, lambda x, _: torch.fft.rfft2(x).abs(), ((4, 8), (1,)),
                 id="fft_abs"),
])
@pytest.mark.parametrize("create_graph", [False, True])
def test_a_sparse_gradient_into_backward_is_refused_as_native_refuses_it(layer, native, shapes,
                                                                        create_graph):
    """torch.autograd.grad hands a sparse COO grad_output to a dense output's backward;
    native's backward raises a NotImplementedError (a RuntimeError), the layers' was
    numpy's bare TypeError "can't convert Sparse layout tensor to numpy" (hostile pass 147)."""
    def backward(fn):
        x, w = (torch.randn(shape, requires_grad=True) for shape in shapes)
        y = fn(x, w) if fn is not scipy_layers.fft_abs else fn(x)
        return torch.autograd.grad(y, x, torch.ones_like(y).to_sparse(), create_graph=create_graph)
    expected, got = _raised(backward, native), _raised(backward, layer)
    assert isinstance(expected, RuntimeError)
    assert isinstance(got, TypeError) and isinstance(got, RuntimeError), type(got).__mro__
    assert "sparse_coo" in str(got) and ".to_dense()" in str(got), str(got)
