"""Bad input: the exception type, and a message naming the argument and what is accepted."""
import numpy as np
import pytest
import torch

from scipy_layers import (FFTAbsFunction, ScipyConv2d, ScipyConv2dFunction, fft_abs, incorrect_fft,
                          native_conv2d, native_fft_abs, scipy_conv2d)

CONV_FNS = [scipy_conv2d, native_conv2d]
FFT_FNS = [fft_abs, incorrect_fft, native_fft_abs]


def good():
    return torch.randn(8, 8), torch.randn(3, 3), torch.randn(1, 1)


def replace(index, value):
    args = list(good())
    args[index] = value
    return args


CONV_CASES = [
    # (args, exception, words the message must contain)
    (replace(0, torch.randn(1, 8, 8)), ValueError, ["input", "2-D", "3-D"]),
    (replace(1, torch.randn(3)), ValueError, ["filter", "2-D", "1-D"]),
    (replace(0, torch.ones(8, 8, dtype=torch.int64)), TypeError, ["input", "torch.int64", "float32"]),
    (replace(1, torch.ones(3, 3, dtype=torch.bool)), TypeError, ["filter", "torch.bool", "float64"]),
    (replace(0, torch.randn(8, 8, dtype=torch.complex64)), TypeError, ["input", "complex64"]),
    (replace(0, torch.randn(8, 8, dtype=torch.float16)), TypeError, ["input", "float16", "unsupported"]),
    (replace(2, torch.randn(1, 1, dtype=torch.bfloat16)), TypeError, ["bias", "bfloat16", "unsupported"]),
    (replace(0, torch.randn(2, 8)), ValueError, ["filter", "(3, 3)", "larger than input", "(2, 8)"]),
    (replace(0, torch.randn(0, 8)), ValueError, ["input", "empty"]),
    (replace(1, torch.randn(3, 3, dtype=torch.float64)), TypeError, ["filter", "float64", "input", "float32"]),
    (replace(2, torch.randn(1, 1, dtype=torch.float64)), TypeError, ["bias", "float64"]),
    (replace(2, torch.randn(2, 1)), ValueError, ["bias", "(2, 1)", "(1, 1)"]),
    (replace(2, torch.randn(3)), ValueError, ["bias", "(3,)"]),
    (replace(0, np.ones((8, 8))), TypeError, ["input", "torch.Tensor", "ndarray"]),
    (replace(1, torch.randn(3, 3, device="meta")), ValueError, ["filter", "device", "meta"]),
]


@pytest.mark.parametrize("fn", CONV_FNS)
@pytest.mark.parametrize("args,exc,words", CONV_CASES)
def test_conv_bad_input(fn, args, exc, words):
    with pytest.raises(exc) as info:
        fn(*args)
    for word in words:
        assert word in str(info.value), (word, str(info.value))


FFT_CASES = [
    (torch.randn(8), ValueError, ["input", "at least 2 dims", "1-D"]),
    (torch.ones(4, 4, dtype=torch.int32), TypeError, ["input", "torch.int32"]),
    (torch.randn(4, 4, dtype=torch.float16), TypeError, ["input", "float16", "unsupported"]),
    (torch.randn(4, 4, dtype=torch.complex128), TypeError, ["input", "complex128"]),
    (torch.randn(3, 0, 4), ValueError, ["input", "empty", "(3, 0, 4)"]),
    ([[1.0, 2.0]], TypeError, ["input", "torch.Tensor", "list"]),
]


@pytest.mark.parametrize("fn", FFT_FNS)
@pytest.mark.parametrize("arg,exc,words", FFT_CASES)
def test_fft_bad_input(fn, arg, exc, words):
    with pytest.raises(exc) as info:
        fn(arg)
    for word in words:
        assert word in str(info.value), (word, str(info.value))


@pytest.mark.parametrize("width,height", [(0, 3), (3, -1), (2.5, 3), (True, 3)])
def test_module_rejects_bad_filter_size(width, height):
    with pytest.raises(ValueError, match="filter_(width|height) must be a positive int"):
        ScipyConv2d(width, height)


def _nchw_apply(*extra):
    from scipy_layers.nn import Conv2dNCHWFunction, check_conv2d_arguments
    x, w = torch.randn(1, 2, 6, 6), torch.randn(3, 2, 3, 3)
    geometry = check_conv2d_arguments(x, w, None, 1, 0, 1, 1)
    return Conv2dNCHWFunction.apply(x, w, None, geometry, "im2col", *extra)


@pytest.mark.parametrize("extra", [3, True, "fft", [None]])
@pytest.mark.parametrize("call,names", [
    (lambda *e: FFTAbsFunction.apply(torch.randn(6, 6), "fft", *e), "(input, method)"),
    (lambda *e: ScipyConv2dFunction.apply(torch.randn(6, 6), torch.randn(2, 2), None, "auto", *e),
     "(input, filter, bias, method)"),
    (_nchw_apply, "(input, weight, bias, geometry, method)"),
], ids=["FFTAbsFunction", "ScipyConv2dFunction", "Conv2dNCHWFunction"])
def test_a_functions_internal_last_argument_is_refused_naming_the_public_ones(call, names, extra):
    """A Function's ``apply`` takes one internal argument after the public ones (the
    forward state torch.func passes down); anything else there raised "'int' object has
    no attribute 'value'" from inside forward (hostile pass 112)."""
    assert call().shape  # (the public arguments alone run)
    with pytest.raises(TypeError) as info:
        call(extra)
    message = str(info.value)
    assert f"apply takes {names}" in message and repr(extra) in message, message
    assert "internal" in message, message


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("twin,layer,arguments,position", [
    (native_conv2d, "scipy_conv2d", ("input", "filter", "bias"), 0),
    (native_conv2d, "scipy_conv2d", ("input", "filter", "bias"), 1),
    (native_conv2d, "scipy_conv2d", ("input", "filter", "bias"), 2),
    (native_fft_abs, "fft_abs", ("input",), 0),
])
def test_twins_name_themselves_when_they_refuse_half_precision(twin, layer, arguments, position,
                                                               dtype):
    """Outside autocast a twin refuses float16 / bfloat16 as its layer does (so that both
    run the same inputs): the error names the twin, its layer and the way out, not only
    numpy's kernels, which the twin never runs."""
    args = [torch.randn(8, 8), torch.randn(3, 3), torch.randn(1, 1)][:len(arguments)]
    args[position] = args[position].to(dtype)
    with pytest.raises(TypeError) as info:
        twin(*args)
    message = str(info.value)
    name = arguments[position]
    assert message.startswith(f"{name} has dtype {dtype}"), message
    for word in (twin.__name__, f"its layer {layer}", "torch.autocast", "float32"):
        assert word in message, (word, message)
    # the layer itself keeps its own message
    layer_function = {"scipy_conv2d": scipy_conv2d, "fft_abs": fft_abs}[layer]
    with pytest.raises(TypeError) as info:
        layer_function(*args)
    assert twin.__name__ not in str(info.value)
    assert str(info.value).startswith(f"{name} has dtype {dtype}, which is unsupported")


@pytest.mark.parametrize("twin", [native_conv2d, native_fft_abs])
def test_a_twins_refusal_under_autocast_of_another_device_does_not_say_outside(twin):
    """Under torch.autocast("cpu") a meta half-precision tensor is still refused (autocast
    covers no meta device, nor does the layer's cast): the error says so, not "outside
    torch.autocast" with autocast on (hostile pass 146)."""
    args = [torch.randn(8, 8, dtype=torch.float16, device="meta"),
            torch.randn(3, 3, dtype=torch.float16, device="meta")]
    args = args if twin is native_conv2d else args[:1]
    with torch.autocast("cpu", dtype=torch.bfloat16), pytest.raises(TypeError) as info:
        twin(*args)
    message = str(info.value)
    assert "outside torch.autocast" not in message and "on meta tensors" in message, message
