"""The layers' fast argument checks (``_plainly_valid``) against their full checks.

The fast path answers "valid" for the common call in one frame and sends everything
else to the full checks, which name what is wrong. It must never accept what the full
checks refuse (a wrong argument would reach numpy unchecked), and it must accept the
plain calls it exists for (else it only adds a frame). Each property is checked over a
grid of arguments: every kind of tensor the layers meet or refuse (types, dtypes,
layouts, devices, ranks, empty dims, views) and things that are not tensors.
"""
import itertools
import warnings

import numpy as np
import pytest
import torch

from scipy_layers import _conv_args, _fft_args, conv, fft
from tests._native_quirks import RFFT2_TAKES_EXPANDED_INPUTS


class _Subclass(torch.Tensor):
    pass


def _nested(*shapes):
    with warnings.catch_warnings():  # (torch calls nested tensors a prototype)
        warnings.simplefilter("ignore", UserWarning)
        return torch.nested.nested_tensor([torch.randn(*shape) for shape in shapes])


def _tensors(shape, dtype=torch.float64):
    """Tensors of ``shape`` in every form a caller may pass, named."""
    base = torch.randn(shape, dtype=dtype) if dtype.is_floating_point or dtype.is_complex \
        else torch.ones(shape, dtype=dtype)
    forms = {
        "plain": base,
        "parameter": torch.nn.Parameter(base.clone(), requires_grad=dtype.is_floating_point),
        "requires-grad": base.clone().requires_grad_(dtype.is_floating_point),
        "subclass": base.as_subclass(_Subclass),
        "meta": base.to("meta"),
    }
    if len(shape) == 2 and all(shape):
        forms["transposed"] = base.t().contiguous().t()
        forms["sparse"] = base.to_sparse()
        forms["expanded"] = base[:1].expand(*shape) if dtype.is_floating_point else base
    return forms


_DTYPES = (torch.float32, torch.float64, torch.float16, torch.bfloat16, torch.int64,
           torch.complex64, torch.bool)
_NOT_TENSORS = {"none": None, "list": [[1.0, 2.0], [3.0, 4.0]], "array": np.ones((4, 4)),
                "float": 1.5}


def _candidates(shapes):
    """(name, value) for every shape in ``shapes`` x dtype x form, nested tensors and
    things that are not tensors."""
    out = [(name, value) for name, value in _NOT_TENSORS.items()]
    out.append(("nested", _nested((4, 4), (4, 3))))
    for shape, dtype in itertools.product(shapes, _DTYPES):
        for form, tensor in _tensors(shape, dtype).items():
            out.append((f"{form}-{str(dtype)[6:]}-{'x'.join(map(str, shape)) or '0d'}", tensor))
    return out


def _full_check_accepts(check, *args) -> bool:
    try:
        check(*args)
    except (TypeError, ValueError, RuntimeError):
        return False
    return True


_INPUTS = _candidates([(6, 5), (1, 1), (0, 5), (5, 0), (6,), (), (2, 6, 5)])
_FILTERS = _candidates([(3, 2), (6, 5), (7, 1), (1, 6), (0, 2), (3,), (1, 3, 2)])
_BIASES = [("none", None)] + _candidates([(), (1,), (1, 1), (2,), (1, 1, 1), (0,)])


def _conv_triples():
    """Every input with every filter (no bias, or a valid one), and inputs and filters
    of every form that the fast path can take with every bias."""
    valid_bias = ("plain-bias", torch.ones(1, 1))
    for (x_name, x), (w_name, w) in itertools.product(_INPUTS, _FILTERS):
        yield (x_name, x), (w_name, w), _BIASES[0]
        if x_name.startswith("plain-float32"):
            yield (x_name, x), (w_name, w), valid_bias
    def some(candidates, shapes):
        return [(name, value) for name, value in candidates
                if name.split("-")[0] in ("plain", "meta", "subclass", "parameter")
                and name.split("-")[1] in ("float32", "float64")
                and name.split("-")[2] in shapes]
    for x, w in itertools.product(some(_INPUTS, ("6x5", "1x1", "6")),
                                  some(_FILTERS, ("3x2", "7x1", "0x2"))):
        for bias in _BIASES:
            yield x, w, bias


def test_conv_fast_path_never_accepts_what_the_full_checks_refuse():
    taken = refused = 0
    for (x_name, x), (w_name, w), (b_name, b) in _conv_triples():
        fast = _conv_args._plainly_valid(x, w, b)
        full = _full_check_accepts(_conv_args.check_each_conv_argument, x, w, b)
        assert not fast or full, (x_name, w_name, b_name)
        taken += fast
        refused += not full
    assert taken > 50 and refused > 1000  # (the grid holds both kinds)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_conv_fast_path_takes_every_plain_valid_call(dtype):
    forms = ("plain", "parameter", "requires-grad", "transposed", "expanded")
    inputs, filters = _tensors((6, 5), dtype), _tensors((3, 2), dtype)
    biases = [None, *(_tensors(shape, dtype)["plain"] for shape in ((), (1,), (1, 1)))]
    for x_form, w_form, bias in itertools.product(forms, forms, biases):
        x, w = inputs[x_form], filters[w_form]
        assert _conv_args._plainly_valid(x, w, bias), (x_form, w_form, bias)
        _conv_args.check_each_conv_argument(x, w, bias)
    for k_shape in ((6, 5), (1, 1), (6, 1), (1, 5)):  # up to the input's size, 1xk and kx1
        assert _conv_args._plainly_valid(inputs["plain"], torch.ones(k_shape, dtype=dtype), None)


def test_conv_fast_path_refuses_mixed_dtypes_and_devices():
    x, w = torch.randn(6, 5), torch.randn(3, 2)
    assert not _conv_args._plainly_valid(x, w.double(), None)
    assert not _conv_args._plainly_valid(x, w, torch.ones(1, 1, dtype=torch.float64))
    assert not _conv_args._plainly_valid(x, w.to("meta"), None)
    assert not _conv_args._plainly_valid(x, w, torch.ones(1, device="meta"))


_FFT_INPUTS = _candidates([(6, 5), (1, 1), (3, 6, 5), (0, 6, 5), (2, 0, 4, 5), (0, 5),
                           (5, 0), (6,), ()])


def test_fft_fast_path_never_accepts_what_the_full_checks_refuse():
    taken = refused = 0
    for name, x in _FFT_INPUTS:
        fast = _fft_args._plainly_valid(x)
        full = _full_check_accepts(_fft_args.check_fft_input_fully, x)
        assert not fast or full, name
        taken += fast
        refused += not full
    assert taken > 10 and refused > 50


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_fft_fast_path_takes_every_plain_valid_input(dtype):
    for shape in ((6, 5), (1, 1), (3, 6, 5), (0, 6, 5), (2, 0, 4, 5)):
        for form in ("plain", "parameter", "requires-grad", "meta"):
            x = _tensors(shape, dtype)[form]
            assert _fft_args._plainly_valid(x), (shape, form)
            _fft_args.check_fft_input_fully(x)


class _Method(str):
    pass


class _EqualsAnything:
    __hash__ = None

    def __eq__(self, other):
        return True


_FFT_METHODS = ("auto", "fft", "matrix", "Auto", "", None, 3, _Method("auto"), ("auto",),
                _EqualsAnything())


def _error(call):
    try:
        call()
    except (TypeError, ValueError, RuntimeError) as error:
        return type(error), str(error)
    return None


def test_fft_forward_fast_path_keeps_every_check():
    """FFTAbsFunction.forward tells the common call (a plain valid CPU tensor with
    elements, method "auto" or "fft") apart in one frame: every other input and method
    still gets the full checks' verdict, error and message included, and what passes
    them gives native's values (meta tensors and empty batches: shapes, no numpy)."""
    ran = 0
    # (method "matrix" refuses lengths above 128)
    wide = [("plain-float32-2x130", torch.randn(2, 130)),
            ("plain-float64-130x3", torch.randn(130, 3, dtype=torch.float64))]
    for (name, x), method in itertools.product(_FFT_INPUTS + wide, _FFT_METHODS):
        def checks():
            _fft_args.check_fft_input_fully(x)
            _fft_args.check_fft_method(method, x)
        expected = _error(checks)
        forward = fft.FFTAbsFunction.forward
        if expected is not None:
            assert _error(lambda: forward(x, method, None)) == expected, (name, method)
            continue
        result = forward(x, method, None)
        assert isinstance(result, torch.Tensor) and result.shape == _fft_args.rfft2_shape(x), name
        assert result.dtype == x.dtype and result.device == x.device, name
        if not x.is_meta and x.numel() != 0:  # (MKL refuses an empty batch)
            # (on a copy where torch's rfft2 fails on expanded inputs: tests/_native_quirks)
            oracle = x.detach() if RFFT2_TAKES_EXPANDED_INPUTS else x.detach().contiguous()
            reference = torch.fft.rfft2(oracle).abs()
            torch.testing.assert_close(result, reference, rtol=1e-4, atol=1e-4)
            ran += 1
    assert ran > 10


@pytest.mark.parametrize("case", ["conv", "fft"])
def test_the_errors_still_name_the_argument(case):
    """Whatever the fast path leaves to the full checks gets their message."""
    if case == "conv":
        with pytest.raises(TypeError, match=r"filter has dtype torch\.float64"):
            conv.scipy_conv2d(torch.randn(6, 5), torch.randn(3, 2, dtype=torch.float64))
        with pytest.raises(ValueError, match=r"bias must hold one value"):
            conv.scipy_conv2d(torch.randn(6, 5), torch.randn(3, 2), torch.ones(2))
        with pytest.raises(ValueError, match=r"is larger than input"):
            conv.scipy_conv2d(torch.randn(6, 5), torch.randn(3, 6))
    else:
        with pytest.raises(ValueError, match=r"must not be empty in W"):
            fft.fft_abs(torch.randn(3, 4, 0))
        with pytest.raises(TypeError, match=r"float16, which is unsupported"):
            fft.fft_abs(torch.randn(3, 4, dtype=torch.float16))


# --- the batched conv: check_conv2d_arguments remembers the geometry of plain calls ---

_NCHW_TENSORS = {
    "input": _candidates([(2, 3, 6, 5), (3, 6, 5), (0, 3, 6, 5), (2, 0, 6, 5), (2, 3, 0, 5),
                          (6, 5)]),
    "weight": _candidates([(4, 3, 3, 2), (4, 1, 3, 3), (0, 3, 3, 2), (4, 3, 7, 7), (4, 3, 0, 2),
                           (3, 2)]),
    "bias": [("none", None)] + _candidates([(4,), (3,), (), (1, 4)]),
}
_NCHW_ARGUMENTS = {
    # (values equal to an earlier valid one but of another type come after it: they
    # must not be taken for it)
    "stride": [1, 2, (1, 1), (1, 2), (2,), (1, 1, 1), 0, -1, True, 1.0, np.int64(2), [1, 2],
               (1, 1.0), (True, 1), (1, True), "1"],
    "padding": [0, 1, (1, 1), (1, 2), "same", "valid", "full", -1, (1,), False, True, 1.5,
                np.int32(1), [1, 1], (1, True), (1, 2, 3)],
    "dilation": [1, 2, (1, 1), (2, 1), 0, True, 2.0, (True, True), (1, np.int64(1))],
    "groups": [1, 2, 3, 0, True, 1.0, np.int64(1), "1"],
}


def _verdict(check, *args):
    try:
        return check(*args)
    except (TypeError, ValueError, RuntimeError) as error:
        return type(error), str(error)


def _nchw_calls():
    """Tensors of every kind with plain arguments, and plain tensors with every argument."""
    plain = {name: next(value for key, value in candidates if key.startswith("plain-float64-"))
             for name, candidates in _NCHW_TENSORS.items()}
    for (_, x), (_, w), (_, b) in itertools.product(*_NCHW_TENSORS.values()):
        if b is None or x is plain["input"] or w is plain["weight"]:
            yield x, w, b, 1, 0, 1, 1
    for stride, padding, dilation, groups in itertools.product(*_NCHW_ARGUMENTS.values()):
        for x in (plain["input"], torch.randn(2, 4, 9, 8, dtype=torch.float64)):
            w = torch.randn(4, x.shape[1] // (groups if type(groups) is int and groups > 0
                                                and x.shape[1] % groups == 0 else 1), 3, 2,
                            dtype=torch.float64)
            yield x, w, None, stride, padding, dilation, groups


def test_conv2d_checks_remember_only_what_the_full_checks_say():
    """Every call's verdict (geometry or error) equals the full checks', on its first and
    its second call (the remembered one), whatever was remembered before."""
    from scipy_layers import _nchw_args
    _nchw_args._CHECKED_GEOMETRIES.clear()
    remembered = 0
    for args in _nchw_calls():
        expected = _verdict(_nchw_args.check_each_conv2d_argument, *args)
        for _ in range(2):
            assert _verdict(_nchw_args.check_conv2d_arguments, *args) == expected, args
        remembered += _nchw_args._plain_call_key(*args) is not None and not isinstance(
            expected[0], type)
    assert remembered > 100  # (the grid holds plain valid calls, which are remembered)


def test_conv2d_checks_remember_plain_calls_and_stay_bounded():
    from scipy_layers import _nchw_args
    _nchw_args._CHECKED_GEOMETRIES.clear()
    w = torch.randn(2, 1, 3, 3)
    channels_last = torch.randn(1, 2, 6, 5).to(memory_format=torch.channels_last)
    for x, weight in ((torch.randn(1, 1, 6, 5), torch.nn.Parameter(w.clone())),
                      (channels_last, torch.randn(2, 2, 3, 3).requires_grad_())):
        for stride, padding in ((1, 0), ((2, 1), (1, 2)), (1, "same"), ((1,), "valid")):
            assert _nchw_args._plain_call_key(x, weight, None, stride, padding, 1, 1)
    for width in range(3, 3 + 2 * _nchw_args.CHECKED_GEOMETRIES_MAX):
        geometry = _nchw_args.check_conv2d_arguments(torch.randn(1, 1, 6, width), w, None,
                                                     1, 0, 1, 1)
        assert geometry.out_hw == (4, width - 2)
        assert len(_nchw_args._CHECKED_GEOMETRIES) <= _nchw_args.CHECKED_GEOMETRIES_MAX
