"""tools/batched_breakdown.py (mutation pass 114): its figure is a median, the GEMMs it
times are im2col's three, and its table's row is the layer at method im2col against
native, torch and the BLAS at one thread (nothing here times anything: the timer is
replaced)."""
import statistics
import sys
from pathlib import Path

import numpy as np
import pytest
import threadpoolctl
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import batched_breakdown  # noqa: E402


def test_the_figure_is_the_median_of_the_calls(monkeypatch):
    called = []
    monkeypatch.setattr(batched_breakdown, "time_calls",
                        lambda fn, repeats: [1.0, 1.0, 10.0][:repeats])
    assert batched_breakdown.median_time(lambda: called.append(1), 3) == 1.0
    assert called == [1]  # (a warm-up call of its own before time_calls')


class _Spy:
    """Stands in for numpy in batched_breakdown: records each matmul's operands' shapes."""

    def __init__(self):
        self.shapes = []

    def __getattr__(self, name):
        return getattr(np, name)

    def matmul(self, a, b):
        self.shapes.append((a.shape, b.shape))
        return np.matmul(a, b)


def test_the_gemms_are_im2cols_three_with_the_kernels_own_grad_weight(monkeypatch):
    n, c_in, c_out, k, out_h, out_w = 2, 3, 5, 3, 4, 6
    rows, length = c_in * k * k, out_h * out_w
    spy, asked = _Spy(), []
    run = batched_breakdown.gemms(n, c_in, c_out, k, out_h, out_w, np.dtype(np.float32))
    monkeypatch.setattr(batched_breakdown, "np", spy)
    monkeypatch.setattr(batched_breakdown, "_grad_weight",
                        lambda gy, cols, w_shape, **options: asked.append(
                            (gy.shape, cols.shape, w_shape, options, gy.dtype)))
    run()
    # forward W @ cols and grad_cols W^T @ gy, on one image's columns per batch entry
    assert spy.shapes == [((c_out, rows), (n, 1, rows, length)),
                          ((rows, c_out), (n, 1, c_out, length))]
    # grad_weight by the kernels' own function, in the orientation they pick (no keyword)
    assert asked == [((n, 1, c_out, length), (n, 1, rows, length), (c_out, c_in, k, k), {},
                      np.dtype(np.float32))]


def test_a_row_is_the_layer_at_im2col_against_native_at_one_thread(monkeypatch, capsys):
    figures = iter([2e-3, 6e-3, 3e-3])  # native, im2col, the GEMMs alone
    seen = []

    def median_time(fn, repeats):
        fn()  # (each measured call runs once: the layer's method is seen)
        blas = [i["num_threads"] for i in threadpoolctl.threadpool_info()
                if i["user_api"] == "blas"]
        seen.append((repeats, torch.get_num_threads(), blas))
        return next(figures)

    methods = []
    real_conv2d = batched_breakdown.conv2d

    def conv2d(*args, **options):
        methods.append(options.get("method", "auto"))
        return real_conv2d(*args, **options)

    monkeypatch.setattr(batched_breakdown, "CASES", [("8x3x32x32", 3)])
    monkeypatch.setattr(batched_breakdown, "median_time", median_time)
    monkeypatch.setattr(batched_breakdown, "conv2d", conv2d)
    monkeypatch.setattr(sys, "argv", ["batched_breakdown.py", "--dtype", "float64",
                                      "--repeats", "2"])
    threads = torch.get_num_threads()
    try:
        with threadpoolctl.threadpool_limits(2):  # (the tool must bring the BLAS to one)
            assert batched_breakdown.main() == 0
    finally:
        torch.set_num_threads(threads)
    out = capsys.readouterr().out
    assert out.startswith("float64, torch ")
    row = [line for line in out.splitlines() if line.startswith("| 8x3x32x32")]
    # native 2 ms, im2col 6 ms (3x native), its GEMMs 3 ms (1.5x native)
    assert row == ["| 8x3x32x32 | 3x3 | 2.00 | 6.00 | 3.00 | 3.00 | 1.50 |"]
    assert methods == ["im2col"]
    assert [(repeats, torch_threads) for repeats, torch_threads, _ in seen] == [(2, 1)] * 3
    assert all(blas and set(blas) == {1} for *_, blas in seen), seen
