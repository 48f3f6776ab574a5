"""tools/overhead_floor.py: its floors do the layer's work (kernels only) or none (null),
and the script prints one row per layer and size."""
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from scipy_layers import fft_abs, scipy_conv2d

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import overhead_floor  # noqa: E402


@pytest.mark.parametrize("size,kernel", [(16, 3), (64, 3), (16, 15), (70, 15)])
def test_kernels_only_conv_computes_what_the_layer_computes(size, kernel):
    x = torch.randn(size, size, dtype=torch.float64, requires_grad=True)
    w = torch.randn(kernel, kernel, dtype=torch.float64, requires_grad=True)
    b = torch.randn(1, 1, dtype=torch.float64, requires_grad=True)
    y_floor, y_layer = overhead_floor.KernelsOnlyConv.apply(x, w, b), scipy_conv2d(x, w, b)
    g = torch.randn_like(y_layer)
    assert torch.equal(y_floor, y_layer)
    for ours, theirs in zip(torch.autograd.grad(y_floor, (x, w, b), g),
                            torch.autograd.grad(y_layer, (x, w, b), g)):
        torch.testing.assert_close(ours.reshape(theirs.shape), theirs, rtol=0, atol=0)


@pytest.mark.parametrize("shape", [(16, 16), (127, 127), (256, 256)])
def test_kernels_only_fft_computes_what_the_layer_computes(shape):
    x = torch.randn(shape, requires_grad=True)
    y_floor, y_layer = overhead_floor.KernelsOnlyFFT.apply(x), fft_abs(x)
    g = torch.randn_like(y_layer)
    assert torch.equal(y_floor, y_layer)
    assert torch.equal(torch.autograd.grad(y_floor, x, g)[0], torch.autograd.grad(y_layer, x, g)[0])


def test_the_script_prints_a_row_per_layer_and_size():
    result = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "overhead_floor.py"), "--sizes", "8", "12",
         "--kernels", "3", "--batches", "1"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    rows = [line.split("|")[1:-1] for line in result.stdout.splitlines()
            if line.startswith("| conv2d") or line.startswith("| fft_abs")]
    assert [(r[0].strip(), r[1].strip()) for r in rows] == [
        ("conv2d 3x3", "8"), ("fft_abs", "8"), ("conv2d 3x3", "12"), ("fft_abs", "12")]
    for row in rows:
        assert all(float(cell) > 0 for cell in row[2:])
