"""im2col's kn2row layout (scipy_layers/_kn2row.py): where it runs, that it gives native's
results on every input the samples and these cases make, and its own paths (the tall
input rebuilt in backward, non-finite operands handed to the tap kernels)."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

import scipy_layers.nn as nn
from scipy_layers import LAYERS, _im2col_route, _kn2row, _nchw_kernels, conv2d
from scipy_layers._nchw_args import check_conv2d_arguments
from scipy_layers.agreement import TOLERANCE, compare_with_native, max_errors
from scipy_layers.samples import SAMPLES, make_case
from tests._call_counts import count_calls
from tests._im2col_variants import im2col_variant


@pytest.fixture
def kn2row_calls(monkeypatch):
    """The number of kn2row forwards and backwards run, as [forwards, backwards]."""
    return count_calls(monkeypatch, _kn2row, ("forward", "backward"))


@pytest.mark.parametrize("x_shape,w_shape,kwargs,runs", [
    ((2, 8, 9, 9), (4, 8, 3, 3), {}, True),                   # half as many outputs
    ((2, 8, 9, 9), (5, 8, 3, 3), {}, False),                  # more than half
    ((2, 8, 9, 9), (1, 8, 1, 1), {}, True),                   # 1x1
    ((2, 8, 9, 9), (2, 8, 5, 1), dict(padding="same"), True),  # kx1
    ((2, 8, 9, 9), (2, 8, 3, 3), dict(dilation=2, padding=2), True),
    ((2, 8, 9, 9), (2, 8, 3, 3), dict(stride=2), False),      # strides: im2col's windows
    ((2, 8, 9, 9), (2, 8, 3, 3), dict(stride=(1, 2)), False),  # along one axis too
    ((2, 8, 9, 9), (2, 8, 3, 3), dict(stride=(2, 1)), False),
    ((2, 8, 9, 9), (4, 4, 3, 3), dict(groups=2), True),       # 2 outputs on 4 inputs a group
    ((2, 8, 9, 9), (8, 2, 3, 3), dict(groups=4), False),      # 2 on 2
    ((2, 2, 9, 9), (1, 2, 3, 3), {}, True),
    ((2, 1, 9, 9), (1, 1, 3, 3), {}, False),                  # one input channel
    ((2, 4, 9, 9), (4, 1, 3, 3), dict(groups=4), False),      # depthwise: its own path
    # computed positions a kept output, expanded rows / im2col's windows (MAX_COMPUTED_...)
    ((2, 16, 9, 9), (2, 16, 5, 5), {}, True),                 # 3.2, 0.45
    ((2, 16, 9, 9), (2, 16, 6, 6), {}, False),                # 5.1: too much thrown away
    ((1, 16, 12, 12), (4, 16, 12, 12), {}, False),            # one output of 144 ("global")
    ((1, 8, 9, 9), (1, 8, 3, 3), dict(dilation=3), False),    # 81 computed for 9 kept
    ((2, 16, 8, 8), (8, 16, 5, 5), {}, False),                # 4.0, but rows 2.6x the windows
])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
def test_runs_where_the_rule_says(x_shape, w_shape, kwargs, runs, dtype, kn2row_calls):
    x = torch.randn(x_shape, dtype=dtype, requires_grad=True)
    w = torch.randn(w_shape, dtype=dtype, requires_grad=True)
    out = conv2d(x, w, method="im2col", **kwargs)
    out.backward(torch.randn_like(out))
    assert kn2row_calls == ([1, 1] if runs else [0, 0])
    native = F.conv2d(x, w, **kwargs)
    assert max_errors(out, native).max_rel <= TOLERANCE[dtype]


@pytest.mark.parametrize("name", ["few-output-channels", "grouped-few-outputs",
                                  "one-output-channel"])
def test_the_samples_reach_it_by_default(name, kn2row_calls):
    sample = next(s for s in SAMPLES["conv2d_nchw"] if s.name == name)
    leaves, prepare = make_case(sample, "contiguous", torch.float64, seed=1)
    compare_with_native(LAYERS["conv2d_nchw"], "scipy", leaves, prepare=prepare,
                        kwargs=sample.kwargs)
    assert kn2row_calls[0] >= 1 and kn2row_calls[1] >= 1


def test_the_forced_variant_reaches_every_stride_one_sample(kn2row_calls):
    reached = []
    for sample in SAMPLES["conv2d_nchw"]:
        w_shape, kwargs = sample.shapes[1], sample.kwargs
        groups = kwargs.get("groups", 1)
        if (kwargs.get("stride", 1) not in (1, (1, 1)) or w_shape[1] < 2
                or not sample.accepts("scipy-im2col") or _far_padding(sample)):
            continue
        before = kn2row_calls[0]
        leaves, prepare = make_case(sample, "contiguous", torch.float32, seed=2)
        with im2col_variant("im2col-kn2row"):
            compare_with_native(LAYERS["conv2d_nchw"], "scipy-im2col", leaves,
                                prepare=prepare, kwargs=kwargs)
        reached.append((sample.name, groups, kn2row_calls[0] > before))
    assert len(reached) >= 10 and all(ran for *_, ran in reached), reached


def _far_padding(sample) -> bool:
    """Padding no window reads: such samples take the tap kernels (test_far_padding.py)."""
    x_shape, w_shape = sample.shapes[:2]
    x = np.zeros(x_shape if len(x_shape) == 4 else (1, *x_shape), np.float32)
    geometry = _geometry(x, np.zeros(w_shape, np.float32), **sample.kwargs)
    return _im2col_route.padding_mostly_unread(x.shape, w_shape, geometry)


def _geometry(x, w, **kwargs):
    return check_conv2d_arguments(torch.from_numpy(x), torch.from_numpy(w), None,
                                  kwargs.get("stride", 1), kwargs.get("padding", 0),
                                  kwargs.get("dilation", 1), kwargs.get("groups", 1))


@pytest.mark.parametrize("kwargs", [dict(padding=1), dict(padding=(2, 0), dilation=(2, 1),
                                                         groups=2)])
def test_backward_rebuilds_the_tall_input_bit_for_bit(kwargs):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 8, 7, 9))
    w = rng.standard_normal((2, 8 // kwargs.get("groups", 1), 3, 2))
    geometry = _geometry(x, w, **kwargs)
    y, flat = _kn2row.forward(x, w, None, geometry)
    gy = rng.standard_normal(y.shape)
    kept = _kn2row.backward(gy, w, x, flat.copy(), geometry, True, True)
    rebuilt = _kn2row.backward(gy, w, x, None, geometry, True, True)
    assert all(np.array_equal(a, b) for a, b in zip(kept, rebuilt))
    only_input = _kn2row.backward(gy, w, x, None, geometry, True, False)
    only_weight = _kn2row.backward(gy, w, x, None, geometry, False, True)
    assert only_input[1] is None and np.array_equal(only_input[0], kept[0])
    assert only_weight[0] is None and np.array_equal(only_weight[1], kept[1])


def test_nothing_to_compute_never_runs_it():
    """No output pixel (a padded size of 0, as the rule's model may ask about): kn2row
    does not run, even for a 1x1 kernel whose computed and kept counts are both 0."""
    from scipy_layers._nchw_args import ConvGeometry
    geometry = ConvGeometry((1, 1), (0, 0, 0, 0), (1, 1), 1, (0, 5))
    assert not _kn2row.runs((1, 4, 0, 5), (1, 4, 1, 1), geometry, np.float32)
    assert _kn2row.runs((1, 4, 1, 5), (1, 4, 1, 1), geometry._replace(out_hw=(1, 5)),
                        np.float32)


def test_backward_reads_the_tall_input_forward_kept(monkeypatch):
    """The tall input forward keeps for grad_weight is the one backward reads: it is
    built once a forward+backward, not again."""
    built = count_calls(monkeypatch, _kn2row, ("tall_padded",))
    x = torch.randn(2, 8, 9, 9, dtype=torch.float64, requires_grad=True)
    w = torch.randn(2, 8, 3, 3, dtype=torch.float64, requires_grad=True)
    y = conv2d(x, w, padding=1, method="im2col")
    grads = torch.autograd.grad(y, (x, w), torch.ones_like(y))
    assert built == [1]
    native = F.conv2d(x, w, padding=1)
    for ours, theirs in zip(grads, torch.autograd.grad(native, (x, w), torch.ones_like(y))):
        assert max_errors(ours, theirs).max_rel <= TOLERANCE[torch.float64]


@pytest.mark.parametrize("keep", [True, False])
def test_forward_keeps_the_tall_input_only_when_asked(keep):
    rng = np.random.default_rng(1)
    x, w = rng.standard_normal((2, 6, 5, 5)), rng.standard_normal((2, 6, 3, 3))
    geometry = _geometry(x, w, padding=1)
    _, state = _nchw_kernels.im2col_forward(x, w, None, geometry, keep)
    assert state[1] is _nchw_kernels.KN2ROW
    if keep:  # the padded images of each channel, one after another, then zeros
        images = state[-1][:, :2 * 7 * 7].reshape(6, 2, 7, 7)
        assert np.array_equal(images[:, :, 1:-1, 1:-1], x.transpose(1, 0, 2, 3))
        assert not images[:, :, [0, -1]].any() and not images[:, :, :, [0, -1]].any()
        assert not state[-1][:, 2 * 7 * 7:].any()
    else:
        assert state[-1] is None


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
def test_a_kept_tall_input_outlives_each_backward(dtype, kn2row_calls):
    """The tall input forward keeps is the graph's (recycled when its node dies), not
    backward's: a second backward of the graph, after another call, still reads it
    (the suite passed with backward recycling it: the pool then handed it to the
    next call, and both that call and the second backward read each other's values)."""
    x = torch.randn(2, 16, 8, 8, dtype=dtype, requires_grad=True)
    w = torch.randn(4, 16, 3, 3, dtype=dtype, requires_grad=True)
    y = conv2d(x, w, padding=1, method="im2col")
    g = torch.randn_like(y)
    native = torch.autograd.grad(F.conv2d(x, w, padding=1), (x, w), g)
    for _ in range(2):
        grads = torch.autograd.grad(y, (x, w), g, retain_graph=True)
        other = conv2d(2 * x, w, padding=1, method="im2col")  # reuses what was recycled
        assert max_errors(other, F.conv2d(2 * x, w, padding=1)).max_rel <= TOLERANCE[dtype]
        for ours, theirs in zip(grads, native):
            assert max_errors(ours, theirs).max_rel <= TOLERANCE[dtype]
    assert kn2row_calls == [3, 2]


@pytest.mark.parametrize("where", ["input", "weight", "grad_output"])
@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_non_finite_operands_take_the_tap_kernels(where, value, kn2row_calls):
    x = torch.randn(2, 6, 7, 7, dtype=torch.float64, requires_grad=True)
    w = torch.randn(2, 6, 3, 3, dtype=torch.float64, requires_grad=True)
    gy = torch.randn(2, 2, 5, 5, dtype=torch.float64)
    with torch.no_grad():
        {"input": x, "weight": w, "grad_output": gy}[where].view(-1)[5] = value
    # (no padding: there native's paths form 0 x inf differently, docs/layers.md,
    # "NaN and inf where native puts them")
    ours = conv2d(x, w, method="im2col")
    grads = torch.autograd.grad(ours, (x, w), gy)
    native = F.conv2d(x, w)
    native_grads = torch.autograd.grad(native, (x, w), gy)
    assert kn2row_calls[0] == (1 if where == "grad_output" else 0) and kn2row_calls[1] == 0
    for mine, theirs in zip((ours, *grads), (native, *native_grads)):
        assert torch.equal(mine.isnan(), theirs.isnan())
        assert torch.equal(mine.isinf(), theirs.isinf())


@pytest.mark.parametrize("x_shape,w_shape,kwargs", [
    ((4, 32, 16, 16), (4, 32, 5, 5), dict(padding="same")),
    ((1, 16, 20, 24), (3, 16, 3, 3), dict(dilation=2, padding=2)),
    ((2, 64, 9, 9), (1, 64, 9, 9), dict(padding=4)),          # kernel as large as the image
    ((3, 16, 12, 10), (8, 4, 3, 3), dict(groups=4, padding=(0, 1))),
])
@pytest.mark.parametrize("layout", ["contiguous", "channels_last", "step-sliced"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
def test_larger_shapes_in_strided_layouts_agree_with_native(x_shape, w_shape, kwargs, layout,
                                                            dtype, kn2row_calls):
    gen = torch.Generator().manual_seed(4)
    x = torch.randn(x_shape, dtype=dtype, generator=gen) * torch.logspace(
        -6, 6, x_shape[-1], dtype=dtype)  # wide dynamic range along each row
    w = torch.randn(w_shape, dtype=dtype, generator=gen)
    if layout == "channels_last":
        x = x.to(memory_format=torch.channels_last)
        w = w.to(memory_format=torch.channels_last)
    elif layout == "step-sliced":
        x = torch.repeat_interleave(x, 2, dim=-1)[..., ::2]
    x, w = x.requires_grad_(), w.requires_grad_()
    gy = torch.randn(F.conv2d(x, w, **kwargs).shape, dtype=dtype, generator=gen)
    ours = conv2d(x, w, **kwargs)
    grads = torch.autograd.grad(ours, (x, w), gy)
    native = F.conv2d(x, w, **kwargs)
    native_grads = torch.autograd.grad(native, (x, w), gy)
    assert kn2row_calls == [1, 1]
    for what, mine, theirs in zip(("y", "grad_input", "grad_weight"), (ours, *grads),
                                  (native, *native_grads)):
        assert max_errors(mine, theirs).max_rel <= TOLERANCE[dtype], what


def test_an_empty_batch_never_reaches_it(kn2row_calls):
    x = torch.randn(0, 8, 6, 6, requires_grad=True)
    w = torch.randn(2, 8, 3, 3, requires_grad=True)
    out = conv2d(x, w, method="im2col")
    out.sum().backward()
    assert out.shape == (0, 2, 4, 4) and kn2row_calls == [0, 0]
    assert torch.equal(w.grad, torch.zeros_like(w))
