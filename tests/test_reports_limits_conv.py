"""The machine's limit of a conv with stride, padding and dilation (the layer-type view's
``conv`` strings; scipy_layers/reports/limits.py, conv_axes.py), checked against what
torch does rather than against the formulas: a direct method need not multiply padding
zeros, nor read inputs or taps that no output reads, and a spectral method needs no
transform longer than the shortest circular correlation that holds the outputs
(hostile pass 145: the bound counted taps on the padding and the whole input, so it
overstated the time of every padded case, e.g. 8x64x28x28 64x3x3 p2 d2 by 10%)."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from benchmarks.bench_conv2d_nchw import LAYER_TYPES
from scipy_layers.conv_spec import parse_conv_case
from scipy_layers.reports import conv_axes
from scipy_layers.reports.limits import work

ODD = ["1x4x9x9 4x1x1 s2",          # pointwise at stride 2: a quarter of the input read
       "1x2x10x10 2x3x3 s4",        # windows with gaps between them
       "1x1x6x6 1x2x2 s2 d2",       # stride and dilation 2: even rows and columns only
       "1x1x3x3 1x5x5 p2",          # kernel larger than the input, 'same' padding
       "1x1x4x4 1x3x3 p3",          # padding wider than the kernel: outputs of bias alone
       "1x2x2x2 2x2x2 p2 d2",       # an output between dilated taps reads nothing
       "2x4x8x8 4x2x2 g2 s3 d2",
       "1x2x7x5 2x3x1 p1"]          # kx1


def ones_conv(case):
    """Through torch, for one channel of the case: the (output, tap) pairs that read
    the input (all-ones conv, summed), the inputs and the taps they read (the nonzero
    gradients), and the output's (Ho, Wo)."""
    (_, _, h, w), (_, kh, kw) = case.size, case.kernel
    x = torch.ones(1, 1, h, w, dtype=torch.float64, requires_grad=True)
    k = torch.ones(1, 1, kh, kw, dtype=torch.float64, requires_grad=True)
    y = F.conv2d(x, k, stride=case.stride, padding=case.padding, dilation=case.dilation)
    y.sum().backward()
    return int(y.sum()), int((x.grad != 0).sum()), int((k.grad != 0).sum()), y.shape[-2:]


@pytest.mark.parametrize("conv", [*LAYER_TYPES, *ODD])
def test_each_pass_counts_only_the_work_that_reads_the_input(conv):
    case = parse_conv_case(conv)
    (n, c_in, h, w), (c_out, kh, kw) = case.size, case.kernel
    group = c_in // case.groups
    pairs, touched, taps, (ho, wo) = ones_conv(case)
    output = n * c_out * ho * wo
    forward = work("conv2d_nchw", "forward", None, None, conv)
    assert forward.direct_flops == 2 * n * c_out * group * pairs
    assert forward.elements == n * c_in * touched + c_out * group * taps + output
    backward = work("conv2d_nchw", "backward", None, None, conv)
    assert backward.direct_flops == 4 * n * c_out * group * pairs
    # grad_input and grad_weight are written whole
    assert backward.elements == (output + n * c_in * touched + c_out * group * taps
                                 + n * c_in * h * w + c_out * group * kh * kw)


def test_the_padded_suite_case_lost_its_padding_taps():
    """8x64x28x28 64x3x3 p2 d2: 4 of the 84 pairs of each axis read padding."""
    item = work("conv2d_nchw", "forward", None, None, "8x64x28x28 64x3x3 p2 d2")
    assert item.direct_flops == 2 * 8 * 64 * 64 * 80 * 80


def circular_holds(x, kernel, padding, dilation, size, wanted, expected) -> bool:
    """Whether a circular correlation of ``size`` (what a spectral method computes at
    that transform size) gives ``expected`` at the ``wanted`` stride-1 outputs."""
    (h, w), (th, tw) = x.shape, size
    if th < h or tw < w:
        return False
    embedded = np.zeros(size)
    embedded[:h, :w] = x
    circular = np.zeros(size)
    for (u, v), tap in np.ndenumerate(kernel):
        circular += tap * np.roll(embedded, (-u * dilation, -v * dilation), axis=(0, 1))
    rows, cols = np.nonzero(wanted)
    got = circular[(rows - padding) % th, (cols - padding) % tw]
    return np.allclose(got, expected[rows, cols], rtol=1e-9, atol=1e-9)


def shortest(holds, start) -> int:
    length = 1
    while not holds(length):
        length += 1
        assert length < start + 64
    return length


@pytest.mark.parametrize("conv", ["1x1x9x7 1x3x3", "1x1x9x7 1x3x2 p1", "1x1x8x8 1x3x3 p2 d2",
                                  "1x1x3x3 1x5x5 p2", "1x1x4x4 1x3x3 p3", "1x1x2x2 1x2x2 p2 d2",
                                  "1x1x12x10 1x3x3 s2 p1", "1x1x5x6 1x2x3 p4 d2",
                                  "1x1x1x9 1x5x3 p9 d4", "1x1x2x3 1x3x2 p5 d4"])
def test_the_spectral_transform_is_the_shortest_that_holds_the_outputs(conv):
    """Every stride-1 output that reads the input, from random data: the transform
    length along each axis is the shortest circular correlation that gives them all."""
    case = parse_conv_case(conv)
    (_, _, h, w), (_, kh, kw) = case.size, case.kernel
    rng = np.random.default_rng(0)
    x, kernel = rng.standard_normal((h, w)), rng.standard_normal((kh, kw))
    full = F.conv2d(torch.from_numpy(x)[None, None], torch.from_numpy(kernel)[None, None],
                    padding=case.padding, dilation=case.dilation)[0, 0].numpy()
    reads = F.conv2d(torch.ones(1, 1, h, w, dtype=torch.float64),
                     torch.ones(1, 1, kh, kw, dtype=torch.float64),
                     padding=case.padding, dilation=case.dilation)[0, 0].numpy() > 0
    wide = (h + kh * case.dilation + 2 * case.padding, w + kw * case.dilation + 2 * case.padding)
    th = shortest(lambda t: circular_holds(x, kernel, case.padding, case.dilation,
                                           (t, wide[1]), reads, full), h)
    tw = shortest(lambda t: circular_holds(x, kernel, case.padding, case.dilation,
                                           (wide[0], t), reads, full), w)
    item = work("conv2d_nchw", "forward", None, None, conv)
    assert item.points == th * tw
    assert item.bin_flops == th * (tw // 2 + 1) * 6   # one channel: a product per bin


def test_an_axis_narrower_than_its_dilation_folds_onto_a_shorter_transform():
    """Every axis of 1-4 inputs, 1-5 taps, padding 0-11 and dilation 1-5 against a
    numeric circular correlation of random data (the shortest length that gives every
    stride-1 output that reads the input): where the dilation is longer than the input,
    the runs a window reads outside it lie d apart and a shorter transform folds them
    onto zeros (n = 1, k = 5, p = 9, d = 4: 3 points, where the runs' formula said 10;
    found by hostile pass 146)."""
    rng = np.random.default_rng(1)
    shorter = 0
    for n in range(1, 5):
        for k in range(1, 6):
            for p in range(12):
                for d in range(1, 6):
                    if n + 2 * p < d * (k - 1) + 1:
                        continue
                    x, kernel = rng.standard_normal((1, n)), rng.standard_normal((1, k))
                    full = F.conv2d(torch.from_numpy(x)[None, None],
                                    torch.from_numpy(kernel)[None, None], padding=(0, p),
                                    dilation=d)[0, 0].numpy()
                    reads = F.conv2d(torch.ones(1, 1, 1, n, dtype=torch.float64),
                                     torch.ones(1, 1, 1, k, dtype=torch.float64),
                                     padding=(0, p), dilation=d)[0, 0].numpy() > 0
                    got = conv_axes.axis(n, k, 1, p, d).points
                    holds = [circular_holds_1d(x[0], kernel[0], p, d, t, reads[0], full[0])
                             for t in range(n, got + 1)]
                    assert holds[-1] and not any(holds[:-1]), (n, k, p, d, got, holds)
                    shorter += got < n + min(p, d * (k - 1))
    assert shorter > 100  # (the cases the formula overstated)


def circular_holds_1d(x, kernel, padding, dilation, size, wanted, expected) -> bool:
    """circular_holds along one axis (a length below the input's never holds)."""
    if size < len(x):
        return False
    buffer = np.zeros(size)
    buffer[:len(x)] = x
    circular = sum(tap * np.roll(buffer, -j * dilation) for j, tap in enumerate(kernel))
    outputs = np.nonzero(wanted)[0]
    return np.allclose(circular[(outputs - padding) % size], expected[outputs],
                       rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("n, k, s, p, d", [(200_003, 7, 3, 5, 2), (100_000, 2, 5, 0, 1),
                                           (99_991, 11, 1, 40, 3)])
def test_long_axes_are_counted_exactly(n, k, s, p, d):
    x = torch.ones(1, 1, n, dtype=torch.float64, requires_grad=True)
    kernel = torch.ones(1, 1, k, dtype=torch.float64, requires_grad=True)
    y = F.conv1d(x, kernel, stride=s, padding=p, dilation=d)
    y.sum().backward()
    assert conv_axes.axis(n, k, s, p, d)[:4] == (
        y.shape[-1], int(y.sum()), int((x.grad != 0).sum()), int((kernel.grad != 0).sum()))


@pytest.mark.parametrize("n, k, s, p, d", [(40, 3, 1, 1, 1), (40, 5, 3, 2, 2), (41, 30, 2, 9, 1),
                                           (12, 9, 1, 20, 1)])
def test_past_the_exact_counts_limits_the_counts_stay_lower_bounds(monkeypatch, n, k, s, p, d):
    exact = conv_axes.axis(n, k, s, p, d)
    monkeypatch.setattr(conv_axes, "_LOOPS", 0)
    monkeypatch.setattr(conv_axes, "_BYTES", 0)
    bounded = conv_axes.axis(n, k, s, p, d)
    assert bounded.pairs == exact.pairs and bounded.points == exact.points
    assert 0 < bounded.touched <= exact.touched and 0 < bounded.taps <= exact.taps


def test_floor_sum_against_the_sum_itself():
    rng = np.random.default_rng(1)
    for count, m, a, b in rng.integers([0, 1, 0, 0], [60, 40, 90, 200], size=(500, 4)):
        assert conv_axes.floor_sum(int(count), int(m), int(a), int(b)) == sum(
            (int(a) * i + int(b)) // int(m) for i in range(int(count)))


def test_every_small_axis_against_its_pairs_enumerated():
    """n, k, s, p, d up to 12, 7, 4, 5, 3: the pairs, inputs and taps, listed one by one."""
    for n, k, s, p, d in np.ndindex(12, 7, 4, 6, 3):
        n, k, s, d = n + 1, k + 1, s + 1, d + 1
        outputs = (n + 2 * p - d * (k - 1) - 1) // s + 1
        if outputs < 1:
            continue
        read = [(j, i * s + j * d - p) for i in range(outputs) for j in range(k)
                if 0 <= i * s + j * d - p < n]
        assert conv_axes.axis(n, k, s, p, d)[:4] == (
            outputs, len(read), len({x for _, x in read}), len({j for j, _ in read})), (n, k, s, p, d)


def test_a_narrow_axis_past_the_search_limits_gets_a_lower_bound(monkeypatch):
    assert conv_axes.axis(1, 5, 1, 9, 4).points == 3
    monkeypatch.setattr(conv_axes, "_LOOPS", 0)
    assert conv_axes.axis(1, 5, 1, 9, 4).points == 1  # (the input's length: never above)
    monkeypatch.setattr(conv_axes, "_LOOPS", 1 << 16)
    monkeypatch.setattr(conv_axes, "_BYTES", 0)
    assert conv_axes.axis(1, 5, 1, 9, 4).points == 1
