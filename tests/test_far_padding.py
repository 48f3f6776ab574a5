"""Padding the windows mostly do not read (a stride or dilation far beyond the image):
the batched conv runs such passes by the tap kernels instead of padding a copy of the
input, which took 3.8 GiB for a 1x4x3x3 output (hostile pass, 2026-12-04). The samples
"far-strided" and "far-dilated" (scipy_layers/samples.py) carry these cases through the
layout, gradient and accuracy tests; here: which cases take the taps, and the memory."""
from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from scipy_layers import _nchw_kernels
from scipy_layers._nchw_args import check_conv2d_arguments
from scipy_layers.samples import CONV2D_NCHW_SAMPLES

ROOT = Path(__file__).resolve().parent.parent
FAR_SAMPLES = ("far-strided", "far-dilated")


def _routed_to_taps(sample, dtype) -> bool:
    x, w, b = (None if shape is None else torch.zeros(shape, dtype=dtype)
               for shape in sample.shapes)
    kwargs = {"stride": 1, "padding": 0, "dilation": 1, "groups": 1, **sample.kwargs}
    geometry = check_conv2d_arguments(x, w, b, kwargs["stride"], kwargs["padding"],
                                      kwargs["dilation"], kwargs["groups"])
    x_shape = x.shape if x.dim() == 4 else (1, *x.shape)
    return _nchw_kernels.padding_mostly_unread(x_shape, w.shape, geometry, x.element_size())


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_only_far_padding_takes_the_taps(dtype):
    """The far samples take the tap kernels; every ordinary sample keeps its path."""
    routed = {sample.name for sample in CONV2D_NCHW_SAMPLES if _routed_to_taps(sample, dtype)}
    assert routed == set(FAR_SAMPLES)


def test_far_padding_forward_state_is_the_taps():
    x, w = torch.randn(2, 2, 5, 6, dtype=torch.float64).numpy(), torch.randn(
        3, 2, 3, 2, dtype=torch.float64).numpy()
    geometry = check_conv2d_arguments(torch.from_numpy(x), torch.from_numpy(w), None, 300, 300,
                                      1, 1)
    _, state = _nchw_kernels.im2col_forward(x, w, None, geometry, keep_cols=True)
    assert state[1] == _nchw_kernels.TAP and state[-1] is None  # no window matrix either


# Each case in a child process whose address space is capped: padding a copy of the
# (1, 16, 8, 8) float64 input by 4000 would take 8.2 GB, far past the cap, so the old way
# fails there with a MemoryError instead of filling this machine's memory.
_CHILD = textwrap.dedent("""
    import resource, sys, torch, torch.nn.functional as F
    import scipy_layers
    cap = 4 << 30
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    kwargs = eval(sys.argv[1])
    groups = kwargs.get("groups", 1)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(1, 16, 8, 8, dtype=torch.float64, generator=gen, requires_grad=True)
    w = torch.randn(4, 16 // groups, 3, 3, dtype=torch.float64, generator=gen, requires_grad=True)
    b = torch.randn(4, dtype=torch.float64, generator=gen, requires_grad=True)
    results = []
    for conv in (F.conv2d, scipy_layers.conv2d):
        y = conv(x, w, b, **kwargs)
        g = torch.randn(y.shape, dtype=y.dtype, generator=torch.Generator().manual_seed(1))
        results.append((y, *torch.autograd.grad(y, (x, w, b), g)))
    for native, ours in zip(*results):
        torch.testing.assert_close(ours, native, rtol=1e-10, atol=1e-12)
    print("ok", tuple(results[1][0].shape))
""")


@pytest.mark.parametrize("kwargs", [
    dict(stride=4000, padding=4000),
    dict(dilation=4000, padding=4000),
    dict(stride=4000, padding=4000, groups=2),
    dict(stride=(1, 4000), padding=(0, 4000)),
    dict(stride=2 ** 41, padding=2 ** 40),  # numpy could not even make that padded array
], ids=str)
def test_far_padding_runs_in_the_memory_of_its_input(kwargs):
    result = subprocess.run([sys.executable, "-c", _CHILD, repr(kwargs)], cwd=ROOT,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.startswith("ok"), result.stdout
