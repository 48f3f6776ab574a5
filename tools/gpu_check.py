"""Check and time the CuPy backend (scipy_layers.gpu) on an NVIDIA GPU.

    pip install -e ".[gpu]"          # CuPy built for the machine's CUDA
    python tools/gpu_check.py        # checks, then the timing table (a few minutes at most)
    python tools/gpu_check.py --no-timing     # checks only
    python tools/gpu_check.py --timing-only   # the table only

1. gradcheck in float64 on the GPU of the CuPy path of the conv layer (input, filter and
   bias; small filters and ones large enough for its FFT branch) and of the FFT layer;
2. agreement of outputs and gradients with the native twins, TF32 off, float32 and float64;
   and that torch.cuda.max_memory_allocated counts the CuPy path's own allocations;
3. a table of medians (CUDA events): the CuPy conv layer vs F.conv2d, forward+backward, on
   N in {1024, 2048} x k in {7, 15, 31}, float32 and float64; cupyx's direct forward and
   grad_filter passes beside its FFT forward (the layer runs direct sums only: the FFT's
   error breaks the accuracy contract; the column says what a certified FFT could win);
   and the FFT layer vs torch.

Exit status: 0 when everything passed, or when there is no CUDA GPU (nothing to do);
1 when CuPy is missing or unusable, or a check failed.
"""
from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
from pathlib import Path

import torch
from torch.autograd import gradcheck

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout

from scipy_layers import (LAYERS, NATIVE, Implementation, LayerTypeError,  # noqa: E402
                          LayerValueError, _cupy_conv, fft_abs, gpu, scipy_conv2d)
from scipy_layers.agreement import TOLERANCE, compare_with_native, tf32_off  # noqa: E402
from help_text import description  # (tools/, this script's folder)

CONV_CASES = [((12, 10), (3, 4)), ((9, 13), (5, 2)), ((1, 9), (1, 4)), ((24, 22), (16, 17))]
FFT_SHAPES = [(8, 8), (7, 9), (1, 7), (3, 4, 5)]
AGREEMENT_CASES = [((64, 64), (3, 3)), ((129, 40), (7, 2)), ((200, 300), (16, 16)),
                   ((512, 512), (31, 31))]
GRID_N, GRID_K = (1024, 2048), (7, 15, 31)
DTYPES = (torch.float32, torch.float64)


def _name(dtype) -> str:
    return str(dtype).removeprefix("torch.")


def cupy_conv2d(input, filter, bias=None):
    return scipy_conv2d(input, filter, bias, method="cupy")


def check_gradients(device="cuda") -> None:
    """gradcheck (float64) of the CuPy conv path (every input) and the FFT layer."""
    for size, kernel in CONV_CASES:
        inputs = LAYERS["conv2d"].make_inputs(size, kernel, dtype=torch.float64, device=device)
        # every pass is a direct sum: linear, so the difference quotient is exact
        assert gradcheck(cupy_conv2d, inputs, eps=1e-6, atol=1e-8, rtol=1e-6), (size, kernel)
    for shape in FFT_SHAPES:
        inputs = LAYERS["fft_abs"].make_inputs(shape, dtype=torch.float64, device=device)
        assert gradcheck(fft_abs, inputs, eps=1e-6, atol=1e-8, rtol=1e-6), shape


def agreement_rows(device="cuda", conv_cases=AGREEMENT_CASES, fft_shapes=((256, 255), (4, 64, 64))):
    """(case, what, max relative error, tolerance) of the CuPy paths against the native
    twins, outputs and every gradient, TF32 off."""
    conv = dataclasses.replace(LAYERS["conv2d"], implementations={
        "cupy": Implementation(cupy_conv2d, backend="cupy"), NATIVE: LAYERS["conv2d"].native})
    fft = dataclasses.replace(LAYERS["fft_abs"], implementations={
        "cupy": Implementation(fft_abs, backend="cupy"), NATIVE: LAYERS["fft_abs"].native})
    rows = []
    with tf32_off():
        for dtype in DTYPES:
            name = _name(dtype)
            for size, kernel in conv_cases:
                inputs = conv.make_inputs(size, kernel, dtype=dtype, device=device, seed=3)
                for what, err in compare_with_native(conv, "cupy", inputs).items():
                    rows.append((f"conv {size} k{kernel} {name}", what, err.max_rel, TOLERANCE[dtype]))
            for shape in fft_shapes:
                inputs = fft.make_inputs(shape, dtype=dtype, device=device, seed=3)
                for what, err in compare_with_native(fft, "cupy", inputs).items():
                    rows.append((f"fft_abs {shape} {name}", what, err.max_rel, TOLERANCE[dtype]))
    return rows


def check_memory_counted(device="cuda", size=(2048, 2048)) -> int:
    """Bytes torch's allocator holds for one CuPy fft_abs forward: its output plus the
    complex spectrum kept for backward. Raises if torch does not see them (CuPy would
    then be allocating from its own pool, hidden from the suite's memory figures)."""
    (x,) = LAYERS["fft_abs"].make_inputs(size, dtype=torch.float64, device=device)
    torch.cuda.synchronize()
    before = torch.cuda.memory_allocated()
    output = fft_abs(x)
    torch.cuda.synchronize()
    held = torch.cuda.memory_allocated() - before
    spectrum_bytes = 2 * output.numel() * output.element_size()  # complex, same shape
    expected = output.numel() * output.element_size() + spectrum_bytes
    assert held >= expected, (f"torch's allocator holds {held} bytes after the CuPy forward, "
                              f"expected at least {expected}: CuPy is not allocating from it")
    return held


def median_ms(fn, repeats: int, budget_ms: float = 2000.0) -> float:
    """Median of ``repeats`` timings by CUDA events after one warm-up call; fewer (at
    least 3) where the warm-up says ``repeats`` would take over ``budget_ms``."""
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    fn()
    end.record()
    end.synchronize()
    repeats = max(3, min(repeats, int(budget_ms / max(start.elapsed_time(end), 1e-3))))
    times = []
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)


def _forward_backward(fn, inputs):
    leaves = [t.detach().requires_grad_(True) for t in inputs]

    def run():
        out = fn(*leaves)
        torch.autograd.grad(out, leaves, torch.ones_like(out))
    return run


def _safe_ms(fn, repeats):
    try:
        return median_ms(fn, repeats)
    except (LayerValueError, LayerTypeError):
        raise  # (the layers' argument errors are RuntimeErrors too: a defect here, not a cell)
    except RuntimeError as error:  # out of memory, or a cuDNN/cuFFT refusal
        print(f"# timing failed: {type(error).__name__}: {str(error).splitlines()[0][:200]}")
        torch.cuda.empty_cache()
        return float("nan")


def _format_ms(value: float) -> str:
    return "failed" if value != value else f"{value:.3f}"


def timing_table(repeats: int, device="cuda", sizes=GRID_N, kernels=GRID_K):
    """The table's lines, one at a time (a cut-off session keeps the rows it finished)."""
    cp, signal = gpu.cupy_status().cupy, gpu.cupy_status().signal
    fmt = _format_ms
    yield ("| N | k | dtype | native fwd+bwd ms | cupy fwd+bwd ms | cupy/native "
           "| cupyx correlate2d fwd ms | tap-sum grad_filter ms | cupyx FFT correlate fwd ms |")
    yield "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"
    with tf32_off():
        for dtype in DTYPES:
            for n in sizes:
                for k in kernels:
                    inputs = LAYERS["conv2d"].make_inputs((n, n), (k, k), dtype=dtype,
                                                          device=device, requires_grad=False)
                    native = _safe_ms(_forward_backward(LAYERS["conv2d"].native.fn, inputs), repeats)
                    ours = _safe_ms(_forward_backward(cupy_conv2d, inputs), repeats)
                    x, w = cp.from_dlpack(inputs[0]), cp.from_dlpack(inputs[1])
                    g = cp.ones((n - k + 1, n - k + 1), dtype=x.dtype)
                    direct = _safe_ms(lambda: signal.correlate2d(x, w, mode="valid"), repeats)
                    grad_filter = _safe_ms(lambda: _cupy_conv._loop_correlate(cp, x, g), repeats)
                    via_fft = _safe_ms(lambda: signal.correlate(x, w, mode="valid", method="fft"),
                                       repeats)
                    yield (f"| {n} | {k} | {_name(dtype)} | {fmt(native)} | {fmt(ours)} | "
                           f"{ours / native:.2f} | {fmt(direct)} | {fmt(grad_filter)} | {fmt(via_fft)} |")
            for n in sizes:
                (x,) = LAYERS["fft_abs"].make_inputs((n, n), dtype=dtype, device=device,
                                                     requires_grad=False)
                native = _safe_ms(_forward_backward(LAYERS["fft_abs"].native.fn, (x,)), repeats)
                ours = _safe_ms(_forward_backward(fft_abs, (x,)), repeats)
                yield (f"| {n} | fft_abs | {_name(dtype)} | {fmt(native)} | {fmt(ours)} | "
                       f"{ours / native:.2f} | | | |")


def _print_table(repeats: int) -> None:
    for line in timing_table(repeats):
        print(line, flush=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=description(__doc__))
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--no-timing", action="store_true", help="run the checks only")
    which.add_argument("--timing-only", action="store_true", help="print the timing table only")
    parser.add_argument("--repeats", type=int, default=10, help="timed calls per cell (median)")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print("gpu_check: no CUDA GPU on this machine (torch.cuda.is_available() is False); "
              "nothing was checked or timed. Run it on an NVIDIA machine after "
              "`pip install -e .[gpu]`.")
        return 0
    status = gpu.cupy_status()
    if not status.available:
        print(f"gpu_check: {status.reason}. `{gpu.INSTALL_HINT}` (or `pip install -e .[gpu]`) "
              f"installs CuPy; nothing was checked.")
        return 1
    print(f"gpu_check: {torch.cuda.get_device_name()}, torch {torch.__version__}, "
          f"CuPy {status.cupy.__version__}, CUDA runtime {status.cupy.cuda.runtime.runtimeGetVersion()}")
    if args.timing_only:
        _print_table(args.repeats)
        return 0
    failed = False
    try:
        check_gradients()
        print("gradcheck (float64, CUDA): conv input/filter/bias and fft_abs: passed")
    except Exception as error:  # gradcheck raises GradcheckError, the cases AssertionError
        print(f"gradcheck FAILED: {type(error).__name__}: {error}")
        failed = True
    try:
        held = check_memory_counted()
        print(f"memory: torch's allocator holds the CuPy path's arrays ({held / 2**20:.1f} MiB "
              f"after one 2048x2048 fft_abs forward): passed")
    except Exception as error:
        print(f"memory check FAILED: {type(error).__name__}: {error}")
        failed = True
    for case, what, err, tol in agreement_rows():
        verdict = "ok" if err <= tol else "FAILED"
        failed |= err > tol
        print(f"agreement {case:<40} {what:<12} max_rel {err:.2e} (tol {tol:.0e}) {verdict}")
    if not args.no_timing:
        print()
        _print_table(args.repeats)
    print("gpu_check: FAILED" if failed else "gpu_check: all checks passed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
