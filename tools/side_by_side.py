#!/usr/bin/env python3
"""A commit's layers against this checkout's and native torch, side by side in one process:

    python tools/side_by_side.py --base 3f249d8 [--cases fft:64:float32 fft:8x256x256:float64
                                 conv:127:float64:3 cnn:8x16x32x32:32:float32:3
                                 cnn:8x64x28x28:64:float32:3:g64:s2:p1] [--batches 42]

A cnn case may end with keyword arguments of ``conv2d``: gG (groups), sS (stride), pP
(padding) and dD (dilation), each at most once (default: 1, 1, 0, 1).

Why: asv times each commit in its own processes, and on a noisy VM native's own time moves
more between those runs than a small change moves the layer (docs/performance.md). Here
the base commit's package (``git archive`` of its ``scipy_layers/``,
imported as ``scipy_layers_base``), this checkout's and native torch run forward+backward
(``torch.autograd.grad``) in batches whose order follows a balanced design, so that each
directly follows every other equally often (tools/rotated_batches.py), one warm-up call
per batch, torch at one thread; each batch's time is divided by
the same batch's native time. Prints per case the median [quartiles] of those ratios and
the median per-batch difference head - base in microseconds, with the environment
(torch, threads, BLAS and its kernel from threadpoolctl). Set the BLAS thread count and
any override in the environment of the command (see docs/comparing.md, "A small change,
in one process").
"""
from __future__ import annotations

import argparse
import importlib
import io
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

from rotated_batches import batch_times  # (tools/, this script's folder)

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from scipy_layers.conv_spec import OPTION_LETTERS, ConvCase, parse_options  # noqa: E402
from help_text import description  # (tools/, this script's folder)
DEFAULT_CASES = ("fft:16:float32", "fft:64:float64", "conv:64:float32:3")


def import_commit(rev: str, into: Path):
    """``scipy_layers`` of commit ``rev`` imported as ``scipy_layers_base`` (its modules
    import each other relatively, so a renamed copy is self-contained)."""
    # (--end-of-options: a rev such as "--output=FILE" is a name, never git's option)
    archive = subprocess.run(["git", "archive", "--end-of-options", rev, "scipy_layers"], cwd=ROOT,
                             capture_output=True, check=False)
    if archive.returncode != 0:
        raise SystemExit(f"side_by_side: git archive {rev}: {archive.stderr.decode().strip()}")
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(into, filter="data")
    (into / "scipy_layers").rename(into / "scipy_layers_base")
    sys.path.insert(0, str(into))
    try:
        module = importlib.import_module("scipy_layers_base")
    except Exception as error:  # noqa: BLE001 (any failure: that commit's code, not ours)
        raise SystemExit(f"side_by_side: {rev}'s scipy_layers does not import here: "
                         f"{type(error).__name__}: {error}") from None
    missing = [name for name in ("fft_abs", "scipy_conv2d") if not hasattr(module, name)]
    if missing:
        raise SystemExit(f"side_by_side: {rev}'s scipy_layers has no {', '.join(missing)}")
    if Path(module.__file__).resolve().parent != (into / "scipy_layers_base").resolve():
        raise SystemExit("side_by_side: the base package did not load from its copy")
    return module


def parse_case(text: str):
    """'fft:N:dtype', 'conv:N:dtype:k' or 'cnn:NxCxHxW:C_out:dtype:k[:gG][:sS][:pP][:dD]'
    -> (layer, size, dtype name, k, conv2d keyword arguments); size is N, or (N, C, H, W,
    C_out) for the batched conv (nn.conv2d), or for the FFT layer the input's shape: N is
    N x N, and the suite's sizes are taken as written ("HxW", "BxHxW": B images of
    H x W)."""
    parts = text.split(":")
    fields = {"fft": 3, "conv": 4, "cnn": 5}
    extra = len(OPTION_LETTERS) if parts[0] == "cnn" else 0
    if parts[0] not in fields or not fields[parts[0]] <= len(parts) <= fields[parts[0]] + extra:
        raise argparse.ArgumentTypeError(
            f"case {text!r}: expected fft:N|HxW|BxHxW:float32|float64, conv:N:float32|float64:k "
            f"or cnn:NxCxHxW:C_out:float32|float64:k[:gG][:sS][:pP][:dD]")
    options = _cnn_options(text, parts[5:]) if parts[0] == "cnn" else {}
    parts = parts[:fields[parts[0]]]
    if parts[0] == "cnn":
        numbers = parts[1].split("x") + [parts[2], parts[4]]
        dtype_name = parts[3]
    elif parts[0] == "fft":
        numbers = parts[1].split("x")
        dtype_name = parts[2]
    else:
        numbers = parts[1:2] + parts[3:4]
        dtype_name = parts[2]
    if (dtype_name not in ("float32", "float64")
            or not all(n.isascii() and n.isdigit() for n in numbers)
            or (parts[0] == "cnn" and len(numbers) != 6)  # (NxCxHxW: four sizes)
            or (parts[0] == "fft" and len(numbers) > 3)):
        raise argparse.ArgumentTypeError(f"case {text!r}: sizes and k are positive ints, "
                                         f"the dtype float32 or float64")
    if parts[0] == "fft":
        shape = tuple(int(n) for n in numbers)
        if min(shape) < 1:
            raise argparse.ArgumentTypeError(f"case {text!r}: needs sizes >= 1")
        return "fft", shape * 2 if len(shape) == 1 else shape, dtype_name, 0, {}
    numbers = [int(n) for n in numbers]
    kernel = numbers[-1]
    if parts[0] == "cnn":
        if min(numbers) < 1:
            raise argparse.ArgumentTypeError(f"case {text!r}: needs sizes >= 1 and k >= 1")
        try:  # (conv_spec's checks: groups dividing, the dilated kernel fitting)
            ConvCase(tuple(numbers[:4]), (numbers[4], kernel, kernel), **options)
        except ValueError as error:
            raise argparse.ArgumentTypeError(f"case {text!r}: {error}") from None
        return "cnn", tuple(numbers[:5]), dtype_name, kernel, options
    size = numbers[0]
    if not 1 <= kernel <= size:
        raise argparse.ArgumentTypeError(f"case {text!r}: needs N >= 1 and 1 <= k <= N")
    return parts[0], size, dtype_name, kernel, {}


def _cnn_options(text: str, fields) -> dict:
    """{'groups': G, ...} from fields like 'g4', 's2' (each letter at most once)."""
    try:
        return parse_options(fields)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"case {text!r}: {error}") from None


# case kind -> (its layer in the registry, the package function both commits have)
LAYER_OF = {"fft": ("fft_abs", "fft_abs"), "conv": ("conv2d", "scipy_conv2d"),
            "cnn": ("conv2d_nchw", "conv2d")}


def calls(case, base, head):
    """{implementation: one forward+backward} of native, the base commit's layer and this
    checkout's on the case's inputs (:func:`case_calls`)."""
    kind = case[0]
    registry_name, function_name = LAYER_OF[kind]
    if not hasattr(base, function_name):
        raise SystemExit(f"side_by_side: the base commit's scipy_layers has no "
                         f"{function_name} (the layer of the {kind} cases)")
    return case_calls(case, head, {"native": head.LAYERS[registry_name].native.fn,
                                   "base": getattr(base, function_name),
                                   "head": getattr(head, function_name)})


def case_calls(case, package, functions: dict, plain: dict | None = None) -> dict:
    """{name: one forward+backward (``torch.autograd.grad``) of ``functions[name]``} on the
    case's seeded inputs (``package``'s registry input maker, seed 0; grad_output seed 1,
    shaped as native's output), each function called as the layer is:
    ``f(*inputs, **conv2d keyword arguments)``; and {name: ``plain[name](inputs, options,
    grad_output)``}, callables made on the same inputs that run without autograd."""
    import torch
    kind, size, dtype_name, kernel, options = case
    layer, dtype = package.LAYERS[LAYER_OF[kind][0]], getattr(torch, dtype_name)
    if kind == "cnn":
        batch, channels, height, width, out_channels = size
        shape, kernel_shape = (batch, channels, height, width), (out_channels, kernel, kernel)
    elif kind == "fft":
        shape, kernel_shape = size, None
    else:
        shape, kernel_shape = (size, size), (kernel, kernel)
    groups = {"groups": options["groups"]} if "groups" in options else {}
    inputs = layer.make_inputs(shape, kernel_shape, dtype=dtype, seed=0, **groups)
    output_shape = layer.native.fn(*inputs, **options).shape
    g = torch.randn(output_shape, dtype=dtype, generator=torch.Generator().manual_seed(1))
    calls = {name: (lambda f=f: torch.autograd.grad(f(*inputs, **options), inputs, g))
             for name, f in functions.items()}
    calls.update({name: make(inputs, options, g) for name, make in (plain or {}).items()})
    return calls


def label(case) -> str:
    layer, size, dtype, kernel, options = case
    if layer == "cnn":
        batch, channels, height, width, out_channels = size
        given = "".join(f" {letter}{options[name]}" for letter, (name, _) in OPTION_LETTERS.items()
                        if name in options)
        return (f"cnn {batch}x{channels}x{height}x{width}->{out_channels} k{kernel}{given} "
                f"{dtype}")
    if layer == "fft":
        return f"fft {'x'.join(map(str, size))} {dtype}"
    return f"conv {size}x{size} k{kernel} {dtype}"


def timed(functions: dict, batches: int) -> dict:
    """batch_times with ~20 ms of native calls per batch."""
    functions["native"]()
    start = time.perf_counter()
    functions["native"]()
    per_batch = max(3, int(0.02 / max(time.perf_counter() - start, 1e-6)))
    return batch_times(functions, batches, per_batch)


def ratio_quartiles(values) -> tuple[float, float, float]:
    """(first quartile, median, third quartile) of per-batch ratios; inclusive quartiles,
    within the values measured (the default method extrapolates past them)."""
    if len(values) < 2:
        return (values[0],) * 3
    low, _, high = statistics.quantiles(values, n=4, method="inclusive")
    return low, statistics.median(values), high


def quartiles(values) -> str:
    if len(values) < 2:
        return f"{values[0]:.3f}"
    low, median, high = ratio_quartiles(values)
    return f"{median:.3f} [{low:.3f}-{high:.3f}]"


def environment_line() -> str:
    import torch
    from threadpoolctl import threadpool_info
    blas = [f"{lib.get('internal_api')} {lib.get('version')} {lib.get('architecture')} "
            f"{lib.get('num_threads')} thread(s)" for lib in threadpool_info()
            if lib.get("user_api") == "blas"]
    return (f"torch {torch.__version__} at {torch.get_num_threads()} thread(s); "
            f"numpy/scipy BLAS: {', '.join(blas) or 'none found'}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=description(__doc__))
    parser.add_argument("--base", required=True, help="the commit to compare against")
    parser.add_argument("--cases", nargs="+", type=parse_case,
                        default=[parse_case(c) for c in DEFAULT_CASES],
                        help="fft:N|HxW|BxHxW:dtype, conv:N:dtype:k or "
                             "cnn:NxCxHxW:C_out:dtype:k[:gG][:sS][:pP][:dD] "
                             f"(default: {' '.join(DEFAULT_CASES)})")  # (as typed, not parsed)
    parser.add_argument("--batches", type=int, default=42,
                        help="batches of calls (default 42: seven whole balanced designs of "
                             "three implementations, tools/rotated_batches.py)")
    args = parser.parse_args(argv)
    if args.batches < 1:
        parser.error("--batches must be at least 1")
    import torch
    torch.set_num_threads(1)
    # malloc as in a long-running process, as the suite's timing processes have it: at
    # its start-up thresholds native's depthwise conv faults ~3,000 pages a call (8x32x56x56
    # float32 fwd+bwd 11-14 ms against 3 ms settled), which no training loop pays
    from benchmarks.common import settle_allocator
    settle_allocator()
    import scipy_layers as head  # (this checkout's: ROOT is on the path)
    with tempfile.TemporaryDirectory() as tmp:
        base = import_commit(args.base, Path(tmp))
        print(f"base {args.base} vs this checkout; {environment_line()}\n")
        print("| case | native (us) | base / native | head / native | head - base (us) |")
        print("| --- | --- | --- | --- | --- |")
        for case in args.cases:
            times = timed(calls(case, base, head), args.batches)
            ratios = {name: [t / n for t, n in zip(times[name], times["native"])]
                      for name in ("base", "head")}
            difference = statistics.median(h - b for h, b in zip(times["head"], times["base"]))
            print(f"| {label(case)} | {statistics.median(times['native']) * 1e6:.0f} | "
                  f"{quartiles(ratios['base'])} | {quartiles(ratios['head'])} | "
                  f"{difference * 1e6:+.1f} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
