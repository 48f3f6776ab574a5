"""Padding the windows mostly do not read (a stride or dilation far beyond the image):
the batched conv runs such passes by the tap kernels instead of padding a copy of the
input, which took 3.8 GiB for a 1x4x3x3 output (hostile pass, 2026-12-04); so do maps
smaller than the kernel's reach, where most window entries are padding. The samples
"far-strided", "far-dilated" and "one-pixel-map" (scipy_layers/samples.py) carry these
cases through the layout, gradient and accuracy tests; here: which cases take the taps,
and the memory."""
from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import scipy_layers
from scipy_layers import _im2col_route, _nchw_kernels
from scipy_layers._im2col_route import _real_positions
from scipy_layers._nchw_args import ConvGeometry, check_conv2d_arguments
from scipy_layers._tap_kernels import _taps
from scipy_layers.samples import CONV2D_NCHW_SAMPLES

ROOT = Path(__file__).resolve().parent.parent
PADDING_SAMPLES = ("far-strided", "far-dilated", "one-pixel-map")  # mostly padding


def _routed_to_taps(sample, dtype) -> bool:
    x, w, b = (None if shape is None else torch.zeros(shape, dtype=dtype)
               for shape in sample.shapes)
    kwargs = {"stride": 1, "padding": 0, "dilation": 1, "groups": 1, **sample.kwargs}
    geometry = check_conv2d_arguments(x, w, b, kwargs["stride"], kwargs["padding"],
                                      kwargs["dilation"], kwargs["groups"])
    x_shape = x.shape if x.dim() == 4 else (1, *x.shape)
    return _im2col_route.padding_mostly_unread(x_shape, w.shape, geometry)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_only_padding_dominated_samples_take_the_taps(dtype):
    """The samples whose windows are mostly padding take the tap kernels; every other
    sample keeps its path."""
    routed = {sample.name for sample in CONV2D_NCHW_SAMPLES if _routed_to_taps(sample, dtype)}
    assert routed == set(PADDING_SAMPLES)


def test_far_padding_forward_state_is_the_taps():
    x, w = torch.randn(2, 2, 5, 6, dtype=torch.float64).numpy(), torch.randn(
        3, 2, 3, 2, dtype=torch.float64).numpy()
    geometry = check_conv2d_arguments(torch.from_numpy(x), torch.from_numpy(w), None, 300, 300,
                                      1, 1)
    _, state = _nchw_kernels.im2col_forward(x, w, None, geometry, keep_cols=True)
    assert state[1] == _nchw_kernels.TAP and state[-1] is None  # no window matrix either


# Each case in a child process whose address space is capped at 1 GiB above what it
# holds after its imports: padding a copy of the input by 4000 (8.2 GB in float64) or the
# 1x1 stride-2 case's 984 MiB copy and 246 MiB of windows would pass the cap, so the old
# way fails there with a MemoryError instead of filling this machine's memory.
_CHILD = textwrap.dedent("""
    import resource, sys, torch, torch.nn.functional as F
    import scipy_layers
    size = next(int(line.split()[1]) for line in open("/proc/self/status")
                if line.startswith("VmSize:")) * 1024
    cap = size + (1 << 30)
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    x_shape, w_shape, dtype, kwargs = eval(sys.argv[1])
    dtype = getattr(torch, dtype)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(x_shape, dtype=dtype, generator=gen, requires_grad=True)
    w = torch.randn(w_shape, dtype=dtype, generator=gen, requires_grad=True)
    b = torch.randn(w_shape[0], dtype=dtype, generator=gen, requires_grad=True)
    results = []
    for conv in (F.conv2d, scipy_layers.conv2d):
        y = conv(x, w, b, **kwargs)
        g = torch.randn(y.shape, dtype=y.dtype, generator=torch.Generator().manual_seed(1))
        results.append((y, *torch.autograd.grad(y, (x, w, b), g)))
    tolerance = 1e-10 if dtype == torch.float64 else 1e-4
    for native, ours in zip(*results):
        torch.testing.assert_close(ours, native, rtol=tolerance, atol=tolerance)
    print("ok", tuple(results[1][0].shape))
""")

_SMALL = ((1, 16, 8, 8), (4, 16, 3, 3), "float64")


@pytest.mark.parametrize("case", [
    (*_SMALL, dict(stride=4000, padding=4000)),
    (*_SMALL, dict(dilation=4000, padding=4000)),
    ((1, 16, 8, 8), (4, 8, 3, 3), "float64", dict(stride=4000, padding=4000, groups=2)),
    (*_SMALL, dict(stride=(1, 4000), padding=(0, 4000))),
    (*_SMALL, dict(stride=2 ** 41, padding=2 ** 40)),  # numpy could not make that padding
    # the windows of a 1x1 stride-2 conv read padding too (second hostile pass)
    ((1, 64, 8, 8), (1, 64, 1, 1), "float32", dict(stride=2, padding=1000)),
    ((4, 16, 8, 8), (1, 16, 2, 2), "float32", dict(stride=2, padding=1000)),
], ids=str)
def test_far_padding_runs_in_the_memory_of_its_input(case):
    result = subprocess.run([sys.executable, "-c", _CHILD, repr(case)], cwd=ROOT,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.startswith("ok"), result.stdout


def _geometry_if_it_fits(image, kernel, stride, padding, dilation):
    """The ConvGeometry (groups 1) of these, or None where the padded image (padding: top,
    bottom, left, right) is smaller than the dilated kernel's reach."""
    reach = (dilation[0] * (kernel[0] - 1) + 1, dilation[1] * (kernel[1] - 1) + 1)
    padded = (image[0] + padding[0] + padding[1], image[1] + padding[2] + padding[3])
    if padded[0] < reach[0] or padded[1] < reach[1]:
        return None
    out = tuple((p - r) // s + 1 for p, r, s in zip(padded, reach, stride))
    return ConvGeometry(stride, padding, dilation, 1, out)


def test_real_positions_count_what_the_tap_kernels_form():
    """The rule's count of window entries that read real pixels, axis by axis, against
    the tap kernels' own blocks, on random geometries."""
    rng = np.random.default_rng(0)
    checked = 0
    for _ in range(3000):
        height, width, k_h, k_w = (int(v) for v in rng.integers(1, 9, 4))
        stride, dilation = tuple(rng.integers(1, 5, 2)), tuple(rng.integers(1, 5, 2))
        padding = tuple(int(v) for v in rng.integers(0, 7, 4))
        geometry = _geometry_if_it_fits((height, width), (k_h, k_w), stride, padding, dilation)
        if geometry is None:
            continue
        out = geometry.out_hw
        blocks = sum((rows.stop - rows.start) * (cols.stop - cols.start) for *_, (rows, cols), _
                     in _taps((1, 1, k_h, k_w), (height, width), geometry))
        assert blocks == (_real_positions(k_h, dilation[0], stride[0], padding[0], height, out[0])
                          * _real_positions(k_w, dilation[1], stride[1], padding[2], width,
                                            out[1]))
        checked += 1
    assert checked > 1000


@pytest.mark.parametrize("x_shape,w_shape,padding,fits", [
    ((0, 2, 8, 8), (2, 2, 3, 3), 2 ** 29, True),
    ((0, 2, 8, 8), (2, 2, 3, 3), 2 ** 30, False),
    ((0, 2, 8, 8), (2, 2, 3, 3), 2 ** 40, False),
    # no input channels: no output channels either, as in torch (third hostile pass)
    ((3, 0, 8, 8), (2, 0, 3, 3), 2 ** 30, True),
    ((1, 0, 8, 8), (2, 0, 3, 3), 2 ** 29, True),
    # ... yet torch's strides still count a 0 as 1: C_out Ho Wo past an int64 is refused
    ((1, 0, 8, 8), (2, 0, 3, 3), 2 ** 40, False),
], ids=str)
def test_an_empty_output_of_huge_size(x_shape, w_shape, padding, fits):
    """An empty output makes no array, but torch's strides (up to C_out Ho Wo) must fit
    an int64: where they do, the empty output as native gives it; else a clear error
    (native: 'Stride calculation overflowed', or an output with overflowed strides)."""
    x, w = torch.randn(x_shape), torch.randn(w_shape)
    if fits:
        assert scipy_layers.conv2d(x, w, padding=padding).shape == F.conv2d(
            x, w, padding=padding).shape
    else:
        with pytest.raises(ValueError, match="more elements than any array can hold"):
            scipy_layers.conv2d(x, w, padding=padding)



def _counted(x_shape, w_shape, geometry):
    """The rule's terms (_im2col_route.PADDED_MAX_FACTOR's comment) counted on arrays:
    (the padded input's elements, the window matrix's (torch's unfold of it), the bound:
    PADDED_MAX_FACTOR x (the input's elements + the window entries that read a real
    pixel, from the unfold of a mask of them))."""
    n, c_in, height, width = x_shape
    top, bottom, left, right = geometry.padding
    mask = F.pad(torch.ones(1, 1, height, width, dtype=torch.float64),
                 (left, right, top, bottom))
    windows = F.unfold(mask, w_shape[2:], dilation=geometry.dilation, stride=geometry.stride)
    real = n * c_in * int(windows.sum())
    return (n * c_in * mask.numel(), n * c_in * windows.numel(),
            _im2col_route.PADDED_MAX_FACTOR * (n * c_in * height * width + real))


def test_the_padding_rule_counts_what_the_padded_arrays_hold():
    """padding_mostly_unread against its definition, counted, on random geometries with
    each side's padding drawn apart (asymmetric: 'same' on an even kernel pads one side
    more), so that padding on the bottom or right alone, the W axis's own left padding
    and a window matrix larger than the padded input each decide some cases."""
    rng = np.random.default_rng(1)
    seen = {"taps": 0, "im2col": 0, "bottom or right only": 0, "windows decide": 0}
    for _ in range(1500):
        n, c_in = (int(v) for v in rng.integers(1, 3, 2))
        height, width, k_h, k_w = (int(v) for v in rng.integers(1, 7, 4))
        stride, dilation = tuple(rng.integers(1, 4, 2)), tuple(rng.integers(1, 3, 2))
        padding = tuple(int(v) * int(rng.random() < 0.6) for v in rng.integers(0, 13, 4))
        geometry = _geometry_if_it_fits((height, width), (k_h, k_w), stride, padding, dilation)
        if geometry is None:
            continue
        x_shape, w_shape = (n, c_in, height, width), (1, c_in, k_h, k_w)
        padded_elements, window_elements, bound = _counted(x_shape, w_shape, geometry)
        expected = max(padded_elements, window_elements) > bound
        assert _im2col_route.padding_mostly_unread(x_shape, w_shape, geometry) == expected, (
            x_shape, w_shape, geometry)
        seen["taps" if expected else "im2col"] += 1
        seen["bottom or right only"] += expected and not (padding[0] or padding[2])
        seen["windows decide"] += expected and padded_elements <= bound
    assert min(seen.values()) >= 20, seen
