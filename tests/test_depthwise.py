"""The depthwise conv (groups = C_in): on finite operands along whole padded rows (of the
padded input's phases at strides; _depthwise_wide, _tall), or with a channel multiplier
by im2col per group (_im2col_route.DEPTHWISE_MAX_MULTIPLIER), else by the tap kernels;
the rows and taps over blocks of channels (_tap_kernels.DEPTHWISE_BLOCK_BYTES). Neither the blocking nor the
wide rows change a bit of the output or grad_input (each value sums the same products in
the same order, plus +-0 products with the padding), grad_weight only within rounding;
all agree with native torch on every layout, stride, dilation, multiplier and non-finite
value."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from scipy_layers import _depthwise_wide, _im2col_route, _nchw_kernels, _tap_kernels, conv2d
from scipy_layers._nchw_args import check_conv2d_arguments
from scipy_layers.agreement import TOLERANCE, max_errors

# (input shape, channel multiplier, kernel, conv keyword arguments)
CASES = [
    ((2, 6, 11, 9), 1, (3, 3), dict(padding=1)),
    ((3, 5, 12, 10), 2, (5, 5), dict(padding=2)),
    ((2, 4, 13, 12), 3, (3, 1), dict(padding=(1, 0))),
    ((2, 4, 9, 14), 1, (1, 5), dict(stride=2, padding=(0, 2))),
    ((1, 7, 15, 15), 1, (3, 3), dict(dilation=2, padding="same")),
    ((2, 3, 8, 8), 1, (1, 1), {}),
    ((0, 4, 8, 8), 1, (3, 3), dict(padding=1)),  # empty batch
    ((2, 8, 10, 10), 1, (7, 7), dict(stride=(1, 2), padding=(3, 1))),
    ((1, 2, 4, 4), 9, (4, 4), {}),  # 1x1 outputs, 9 terms a multiplier sum: in order
    ((2, 2, 1, 1), 8, (3, 3), dict(padding=1)),
    ((2, 3, 6, 7), 8, (3, 3), dict(padding=1)),
    # strides: the phases of the padded input
    ((2, 6, 11, 12), 1, (3, 3), dict(stride=2, padding=1)),
    ((1, 4, 13, 11), 2, (5, 5), dict(stride=(2, 3), padding=2)),
    ((2, 3, 9, 9), 1, (2, 2), dict(stride=2)),                  # one tap a phase
    ((2, 3, 10, 9), 1, (1, 1), dict(stride=2)),                 # pixels no tap reads
    ((2, 4, 12, 12), 1, (3, 3), dict(stride=2, dilation=2, padding=2)),  # one phase read
    ((1, 3, 14, 13), 1, (3, 3), dict(stride=3, dilation=2, padding=1)),  # phases 0, 2, 1
    ((3, 2, 5, 5), 1, (5, 5), dict(stride=4, padding=2)),
]
LAYOUTS = ["contiguous", "channels_last", "cropped", "step_sliced"]


def _input(shape, layout, dtype, gen):
    n, c, h, w = shape
    if layout == "cropped":
        return torch.randn(n, c, h + 3, w + 2, dtype=dtype, generator=gen)[:, :, 2:-1, 1:-1]
    if layout == "step_sliced":
        return torch.randn(n, c, 2 * h, w, dtype=dtype, generator=gen)[:, :, ::2]
    x = torch.randn(shape, dtype=dtype, generator=gen)
    return x.to(memory_format=torch.channels_last) if layout == "channels_last" else x


def _fwd_bwd(x, w, b, kwargs):
    x, w, b = (t.detach().requires_grad_() for t in (x, w, b))
    y = conv2d(x, w, b, groups=x.shape[1], method="im2col", **kwargs)
    gy = torch.linspace(-2, 3, y.numel(), dtype=y.dtype).reshape(y.shape)
    y.backward(gy)
    return y.detach(), x.grad, w.grad, b.grad, gy


@pytest.mark.parametrize("nonfinite", [False, True])
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("shape, multiplier, kernel, kwargs", CASES)
def test_blocks_keep_the_bits_and_agree_with_native(shape, multiplier, kernel, kwargs, dtype,
                                                    layout, nonfinite, monkeypatch):
    gen = torch.Generator().manual_seed(sum(shape) + multiplier)
    x = _input(shape, layout, dtype, gen)
    if nonfinite and x.numel():
        x[0, 0, shape[2] // 2, shape[3] // 2], x[-1, -1, -1, 0] = float("nan"), float("inf")
    w = torch.randn((shape[1] * multiplier, 1, *kernel), dtype=dtype, generator=gen)
    b = torch.randn(shape[1] * multiplier, dtype=dtype, generator=gen)
    monkeypatch.setattr(_tap_kernels, "DEPTHWISE_BLOCK_BYTES", 1)  # one channel a block
    one_channel = _fwd_bwd(x, w, b, kwargs)
    monkeypatch.setattr(_tap_kernels, "DEPTHWISE_BLOCK_BYTES", 1 << 40)  # all at once
    all_channels = _fwd_bwd(x, w, b, kwargs)
    for blocked, whole in zip(one_channel[:2], all_channels[:2]):  # y and grad_input
        assert torch.equal(blocked.isnan(), whole.isnan())
        assert torch.equal(torch.nan_to_num(blocked), torch.nan_to_num(whole))
    gw_blocked, gw_whole = one_channel[2], all_channels[2]  # einsum may sum in another order
    assert torch.equal(gw_blocked.isnan(), gw_whole.isnan())
    finite = gw_blocked.isfinite()
    assert max_errors(gw_blocked[finite], gw_whole[finite]).max_rel <= TOLERANCE[dtype]

    xn, wn, bn = (t.detach().requires_grad_() for t in (x, w, b))
    native = F.conv2d(xn, wn, bn, groups=shape[1], **kwargs)
    native.backward(one_channel[4])
    for ours, theirs in zip(one_channel[:4], (native.detach(), xn.grad, wn.grad, bn.grad)):
        assert torch.equal(ours.isfinite(), theirs.isfinite())
        assert torch.equal(ours.isnan(), theirs.isnan())
        finite = ours.isfinite()
        assert max_errors(ours[finite], theirs[finite]).max_rel <= TOLERANCE[dtype]


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("shape, multiplier, kernel, kwargs", CASES)
def test_wide_rows_give_the_tap_kernels_bits(shape, multiplier, kernel, kwargs, dtype, layout,
                                             monkeypatch):
    gen = torch.Generator().manual_seed(sum(shape) + 7 * multiplier)
    x = _input(shape, layout, dtype, gen) * 10.0 ** torch.randint(-20, 20, shape, generator=gen)
    x[..., 0, :] = 0.0  # zero rows: products of +-0 beside the padding's
    w = torch.randn((shape[1] * multiplier, 1, *kernel), dtype=dtype, generator=gen)
    w[0] = -0.0
    b = torch.randn(shape[1] * multiplier, dtype=dtype, generator=gen)
    calls = []
    real = _depthwise_wide.forward
    monkeypatch.setattr(_depthwise_wide, "forward", lambda *a: calls.append(1) or real(*a))
    # (every case on the wide rows, 1x1 outputs and multipliers included, whatever the
    # limit on what they compute and drop: test_what_the_wide_rows_would_drop_takes_the_tap_kernels,
    # and whatever the rule for multipliers: test_a_channel_multiplier_runs_im2col_per_group)
    monkeypatch.setattr(_depthwise_wide, "MAX_COMPUTED_PER_OUTPUT", float("inf"))
    monkeypatch.setattr(_im2col_route, "DEPTHWISE_MAX_MULTIPLIER", multiplier)
    wide = _fwd_bwd(x, w, b, kwargs)
    runs_wide = x.numel() > 0
    assert calls == ([1] if runs_wide else [])
    monkeypatch.setattr(_depthwise_wide, "runs", lambda *args: False)
    taps = _fwd_bwd(x, w, b, kwargs)
    for ours, theirs in zip(wide[:2], taps[:2]):  # y and grad_input: bit for bit
        assert torch.equal(ours, theirs)
        assert torch.equal(ours.signbit(), theirs.signbit())
    assert max_errors(wide[2], taps[2]).max_rel <= TOLERANCE[dtype]
    torch.testing.assert_close(wide[3], taps[3], rtol=0, atol=0)


@pytest.mark.parametrize("kwargs", [dict(padding=1), dict(padding=1, stride=2)])
def test_non_finite_operands_keep_the_tap_kernels(kwargs, monkeypatch):
    calls = []
    monkeypatch.setattr(_depthwise_wide, "forward", lambda *a: calls.append(1))
    x, w = torch.randn(2, 4, 9, 9), torch.randn(4, 1, 3, 3)
    x[1, 2, 4, 4] = float("inf")
    _fwd_bwd(x, w, torch.zeros(4), kwargs)
    assert calls == []


@pytest.mark.parametrize("shape, kernel, kwargs, runs_wide", [
    ((1, 8, 3, 3), (3, 3), dict(stride=2, padding=30, dilation=30), False),  # 2x2 of 63x63
    ((2, 4, 8, 8), (3, 3), dict(padding=20, dilation=20), False),            # 8x8 of 48x48
    ((2, 4, 8, 8), (6, 6), {}, False),                                       # 3x3 of 8x8
    ((2, 4, 8, 8), (4, 4), {}, True),                                        # 5x5 of 8x8
    ((2, 4, 16, 16), (3, 3), dict(stride=2, padding=1), True),               # 8x8 of 9x9
])
def test_what_the_wide_rows_would_drop_takes_the_tap_kernels(shape, kernel, kwargs, runs_wide,
                                                             monkeypatch):
    # at most _depthwise_wide.MAX_COMPUTED_PER_OUTPUT (4) positions computed a kept output
    calls = []
    real = _depthwise_wide.forward
    monkeypatch.setattr(_depthwise_wide, "forward", lambda *a: calls.append(1) or real(*a))
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(shape, dtype=torch.float64, generator=gen)
    w = torch.randn((shape[1], 1, *kernel), dtype=torch.float64, generator=gen)
    b = torch.randn(shape[1], dtype=torch.float64, generator=gen)
    ours = _fwd_bwd(x, w, b, kwargs)
    assert calls == ([1] if runs_wide else [])
    xn, wn, bn = (t.detach().requires_grad_() for t in (x, w, b))
    native = F.conv2d(xn, wn, bn, groups=shape[1], **kwargs)
    native.backward(ours[4])
    for mine, theirs in zip(ours[:4], (native.detach(), xn.grad, wn.grad, bn.grad)):
        assert max_errors(mine, theirs).max_rel <= TOLERANCE[torch.float64]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("shape, multiplier, kernel, kwargs", [
    ((2, 2, 3, 3), 1, (1, 1), dict(stride=2 ** 60 + 3, padding=2 ** 60 + 3)),
    ((1, 3, 6, 4), 1, (3, 2), dict(stride=(2 ** 61 - 1, 3), padding=(2 ** 61 + 1, 2))),
    ((2, 2, 4, 5), 2, (2, 3), dict(stride=(3, 2 ** 59 + 5), padding=(1, 2 ** 59 + 3),
                                   dilation=(2, 1))),
    ((2, 3, 5, 5), 1, (3, 3), dict(stride=(2 ** 53 + 1, 1), padding=(2 ** 53 + 1, 1))),
], ids=str)
def test_phases_of_strides_and_paddings_past_2_53_agree_with_native(shape, multiplier,
                                                                    kernel, kwargs, dtype,
                                                                    monkeypatch):
    """Found by hostile pass 138: the phases' first and last positions (_tall._axis) were
    ceilings of float quotients, which round from 2**53 up, so a depthwise pass whose
    stride and padding are that large (its outputs few, the wide rows run) read its
    pixels into the wrong rows: outputs and gradients 0.5-2.8 off native (2x2x3x3, 1x1
    kernel, stride = padding = 2**60 + 3: the one output that reads the image got the
    bias alone)."""
    monkeypatch.setattr(_im2col_route, "DEPTHWISE_MAX_MULTIPLIER", multiplier)  # (the rows')
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(shape, dtype=dtype, generator=gen)
    w = torch.randn(shape[1] * multiplier, 1, *kernel, dtype=dtype, generator=gen)
    b = torch.randn(shape[1] * multiplier, dtype=dtype, generator=gen)
    arguments = {"stride": 1, "padding": 0, "dilation": 1, **kwargs}
    geometry = check_conv2d_arguments(x, w, b, arguments["stride"], arguments["padding"],
                                      arguments["dilation"], shape[1])
    assert _depthwise_wide.runs(x.shape, w.shape, geometry, finite=True)  # (the phases')
    ours = _fwd_bwd(x, w, b, kwargs)
    x, w, b = (t.detach().requires_grad_() for t in (x, w, b))
    y = F.conv2d(x, w, b, groups=shape[1], **kwargs)
    y.backward(ours[-1])
    for got, want in zip(ours, (y.detach(), x.grad, w.grad, b.grad)):
        assert got.shape == want.shape
        assert max_errors(got, want).max_rel <= TOLERANCE[dtype]


# (input shape, channel multiplier, kernel, conv keyword arguments): multipliers on the
# layouts, strides, dilations and kernel shapes im2col per group takes
MULTIPLIER_CASES = [
    ((2, 4, 9, 10), 16, (5, 3), dict(padding=1, dilation=2)),
    ((1, 3, 8, 8), 2, (3, 3), dict(stride=2, padding=1)),
    ((2, 5, 7, 6), 3, (3, 1), dict(padding=(1, 0))),
    ((2, 4, 6, 6), 4, (1, 1), {}),
    ((1, 2, 5, 9), 5, (1, 4), dict(padding="same")),
    ((0, 3, 6, 6), 2, (3, 3), dict(padding=1)),  # empty batch
]


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("shape, multiplier, kernel, kwargs", MULTIPLIER_CASES)
def test_a_channel_multiplier_runs_im2col_per_group(shape, multiplier, kernel, kwargs, dtype,
                                                    layout, monkeypatch):
    """Depthwise convs with a channel multiplier run im2col's GEMM per group on finite
    operands (1.1-6x faster than the tall rows in the timings of
    _im2col_route.DEPTHWISE_MAX_MULTIPLIER), and agree with native there; one output
    channel an input channel keeps the rows."""
    taken = []
    monkeypatch.setattr(_nchw_kernels, "route",
                        lambda *a: taken.append(_im2col_route.route(*a)) or taken[-1])
    monkeypatch.setattr(_depthwise_wide, "forward", None)  # (would raise if run)
    monkeypatch.setattr(_nchw_kernels, "tap_forward", None)
    gen = torch.Generator().manual_seed(sum(shape) + multiplier)
    x = _input(shape, layout, dtype, gen)
    w = torch.randn((shape[1] * multiplier, 1, *kernel), dtype=dtype, generator=gen)
    b = torch.randn(shape[1] * multiplier, dtype=dtype, generator=gen)
    ours = _fwd_bwd(x, w, b, kwargs)
    assert all(path in (None, _im2col_route.KN2ROW) for path in taken), taken
    assert taken or not x.numel()  # (an empty batch computes nothing)
    xn, wn, bn = (t.detach().requires_grad_() for t in (x, w, b))
    native = F.conv2d(xn, wn, bn, groups=shape[1], **kwargs)
    native.backward(ours[4])
    for mine, theirs in zip(ours[:4], (native.detach(), xn.grad, wn.grad, bn.grad)):
        assert mine.shape == theirs.shape
        assert max_errors(mine, theirs).max_rel <= TOLERANCE[dtype]


@pytest.mark.parametrize("multiplier, finite, expected", [
    (1, True, _im2col_route.DEPTHWISE),
    (2, True, None),
    (1, False, _im2col_route.TAP),
    (2, False, _im2col_route.TAP),  # (0 * inf: a GEMM would mix padding into NaN)
])
def test_the_route_of_a_depthwise_conv_by_multiplier(multiplier, finite, expected):
    x = torch.randn(2, 4, 9, 9, dtype=torch.float64)
    if not finite:
        x[1, 2, 4, 4] = float("inf")
    w = torch.randn(4 * multiplier, 1, 3, 3, dtype=torch.float64)
    assert _route_of(x.numpy(), w.numpy(), stride=1, padding=1) is expected


def _route_of(x, w, stride, padding):
    """What _im2col_route.route picks for depthwise numpy operands x and w."""
    geometry = check_conv2d_arguments(torch.from_numpy(x), torch.from_numpy(w), None, stride,
                                      padding, 1, x.shape[1])
    return _im2col_route.route(x, w, geometry)


def test_a_channel_multiplier_gradchecks_on_im2col_per_group():
    gen = torch.Generator().manual_seed(5)
    x = torch.randn(2, 3, 6, 5, dtype=torch.float64, generator=gen, requires_grad=True)
    w = torch.randn(9, 1, 3, 2, dtype=torch.float64, generator=gen, requires_grad=True)
    b = torch.randn(9, dtype=torch.float64, generator=gen, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda *a: conv2d(*a, stride=(1, 2), padding=1, groups=3, method="im2col"), (x, w, b))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_a_channel_multiplier_on_a_large_image_keeps_no_windows(dtype):
    """Found by hostile pass 158: im2col per group has no bands (one group only), so a
    depthwise conv with a multiplier on a large image kept its whole window matrix
    (4x16x256x256 -> 32 7x7 p3 float32: 802 MiB for a 16 MiB input, a 1.8 GiB peak in
    forward+backward, where the tall rows peaked at 133 MiB). Where an image's wide windows
    pass _im2col_route.DEPTHWISE_MAX_IMAGE_WINDOW_BYTES the tall rows run: nothing kept,
    native's results."""
    from scipy_layers._kept import kept_bytes
    gen = torch.Generator().manual_seed(158)
    x = torch.randn(1, 8, 128, 128, dtype=dtype, generator=gen, requires_grad=True)
    w = torch.randn(16, 1, 5, 5, dtype=dtype, generator=gen, requires_grad=True)
    b = torch.randn(16, dtype=dtype, generator=gen, requires_grad=True)
    before = kept_bytes()
    y = conv2d(x, w, b, padding=2, groups=8)  # (an image's windows 13.6 MB in float32)
    assert kept_bytes() == before
    gy = torch.randn(y.shape, dtype=dtype, generator=gen)
    ours = (y, *torch.autograd.grad(y, (x, w, b), gy))
    theirs = F.conv2d(x, w, b, padding=2, groups=8)
    for mine, native in zip(ours, (theirs, *torch.autograd.grad(theirs, (x, w, b), gy))):
        assert max_errors(mine, native).max_rel <= TOLERANCE[dtype]


@pytest.mark.parametrize("shape, multiplier, kernel, stride, padding, dtype, expected", [
    ((4, 16, 256, 256), 2, 7, 1, 3, "float32", _im2col_route.DEPTHWISE),  # 202 MB an image
    ((1, 8, 128, 128), 2, 5, 1, 2, "float64", _im2col_route.DEPTHWISE),   # 27 MB
    ((8, 32, 56, 56), 2, 3, 1, 1, "float64", None),   # 7.5 MB: below the limit, per group
    ((1, 96, 112, 112), 2, 3, 2, 1, "float32", None),  # (stride 2: narrow windows)
])
def test_the_route_of_a_multiplier_by_image_size(shape, multiplier, kernel, stride, padding,
                                                 dtype, expected):
    x = np.zeros(shape, dtype)
    w = np.zeros((shape[1] * multiplier, 1, kernel, kernel), dtype)
    assert _route_of(x, w, stride, padding) is expected
