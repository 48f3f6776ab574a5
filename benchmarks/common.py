"""Shared pieces of the asv suite: the parameter grid as readable strings, seeded and
cached inputs from the package's registry, thread pinning, devices, and the base classes
every ``bench_<layer>.py`` file builds on (the gradient-agreement base: gradients.py).

Parameters are the same on every machine. The default grid is a subset of them; the rest
is skipped in ``setup`` (shown as n/a) unless SCIPY_LAYERS_BENCH_FULL=1 (0 or unset: the
default grid, any other value refused), so results from either grid line up in one table.
"""
from __future__ import annotations

import functools
import inspect
import os
import re

import numpy as np
import torch
# torch.autograd.grad(..., grad_outputs) imports this (and sympy, ~0.6 s) on its first
# call. asv's forkserver imports the suite once and forks a process per case: imported
# here, no case pays it again (it came out of each case's warmup, so of no figure, but
# it cost ~0.6 s of wall time per case).
import torch.fx.experimental.symbolic_shapes  # noqa: F401,E402

from scipy_layers import LAYERS

SEED = 1234
DTYPES = {"float32": torch.float32, "float64": torch.float64}
DEVICES = ["cpu", "cuda"]
# "1": torch pinned to one thread, like the numpy/scipy kernels (compares algorithms);
# "all": torch's default, one thread per core (compares what a user gets out of the box).
THREADS = ["1", "all"]


def full_grid(value: str | None) -> bool:
    """SCIPY_LAYERS_BENCH_FULL's value: "1" the full grid, unset, "" or "0" the default
    one; anything else is refused (a "yes" or "true" ran the default grid unnoticed)."""
    if value in (None, "", "0", "1"):
        return value == "1"
    raise ValueError(f"SCIPY_LAYERS_BENCH_FULL must be 1 (the full grid) or 0 or unset (the "
                     f"default grid); got {value!r}")


FULL_GRID = full_grid(os.environ.get("SCIPY_LAYERS_BENCH_FULL"))


def parse_size(text: str) -> tuple[int, ...]:
    """'256x256' -> (256, 256); '8x3x32x32' -> (8, 3, 32, 32)."""
    return tuple(int(part) for part in text.split("x"))


def skip(reason: str):
    """Mark this parameter combination as not run (asv shows n/a)."""
    raise NotImplementedError(reason)


def pin_threads(threads: str) -> int:
    """Set torch's intra-op thread count for this process and return what is in force."""
    count = 1 if threads == "1" else len(os.sched_getaffinity(0))
    torch.set_num_threads(count)
    return torch.get_num_threads()


# glibc's malloc starts a process with 128 KiB mmap and trim thresholds and raises both
# when a large mmapped block is freed, as any long-running training process soon does.
# At the start values, a call that frees a few MB hands the pages back and faults them in
# again on the next call: measured 1,500 page faults and 2x the time per fwd+bwd of the
# 8x256x256 FFT layer, for native and scipy alike, in proportions that depended on which
# allocations the process happened to make first. Timing processes therefore free one
# block below glibc's 32 MiB cap first, the same way for every implementation.
SETTLE_BLOCK_BYTES = 24 * 2**20


@functools.lru_cache(maxsize=None)
def settle_allocator() -> None:
    """Put malloc in the state of a long-running process (once per process): a block
    above the mmap threshold, freed at once, raises the thresholds to its size."""
    np.empty(SETTLE_BLOCK_BYTES, dtype=np.uint8)  # never touched: costs no page faults


def check_device(device: str) -> None:
    """Skip CUDA cases where there is no GPU (checked in setup, never at import)."""
    if device == "cuda" and not torch.cuda.is_available():
        skip("no CUDA device on this machine")


def synchronize(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


@functools.lru_cache(maxsize=8)
def cached_inputs(layer: str, size: str, kernel: str | None, dtype: str, device: str,
                  options: tuple = ()):
    """Seeded inputs of a case, made once per process, requiring grad; ``options``: the
    layer's keyword arguments as (name, value) pairs (a weight has C / groups channels)."""
    make_inputs = LAYERS[layer].make_inputs
    groups = {"groups": dict(options)["groups"]} if "groups" in dict(options) else {}
    if groups and "groups" not in inspect.signature(make_inputs).parameters:
        skip("this commit's input maker makes no grouped weights (it came with the "
             "layer-type view)")
    return make_inputs(
        parse_size(size), None if kernel is None else parse_size(kernel),
        dtype=DTYPES[dtype], device=device, seed=SEED, **groups,
    )


def case_function(layer: str, implementation: str, options: tuple = ()):
    """The implementation's function, with the case's keyword arguments bound."""
    fn = LAYERS[layer].implementations[implementation].fn
    return functools.partial(fn, **dict(options)) if options else fn


def seeded_grad_output(shape, dtype: torch.dtype, device) -> torch.Tensor:
    """The output gradient every implementation of a case gets: seeded, standard normal."""
    gen = torch.Generator().manual_seed(SEED + 1)
    return torch.randn(shape, generator=gen, dtype=dtype).to(device)


@functools.lru_cache(maxsize=8)
def cached_grad_output(shape: tuple[int, ...], dtype: str, device: str) -> torch.Tensor:
    return seeded_grad_output(shape, DTYPES[dtype], device)


def _rss_and_peak() -> tuple[int, int]:
    """(VmRSS, VmHWM) of this process in bytes: its resident set now, and its peak since
    start or the last reset through /proc/self/clear_refs."""
    status = open("/proc/self/status").read()
    return tuple(1024 * int(re.search(rf"{field}:\s+(\d+)", status).group(1))
                 for field in ("VmRSS", "VmHWM"))


def extra_peak_memory(fn) -> int:
    """Bytes by which ``fn()`` raised this process's peak RSS above its RSS before the
    call (Linux: /proc/self/clear_refs resets the peak to the RSS): what the call kept
    counts, as what it freed does. Measures only the call itself, unlike asv's peakmem_,
    which includes the ~300 MB of an imported torch."""
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
    except OSError:
        skip("resetting the peak RSS needs Linux /proc/self/clear_refs")
    rss_before, _ = _rss_and_peak()
    fn()
    _, peak = _rss_and_peak()
    # A call that raises no peak can read a page or two below zero (the kernel updates
    # its RSS counter lazily; seen: -8192 for a 16x16 native conv in a CI run): no call
    # adds less than nothing.
    return max(0, peak - rss_before)


@functools.lru_cache(maxsize=2)
def cached_output_shape(layer: str, implementation: str, size: str, kernel, dtype: str,
                        device: str, options: tuple = ()) -> tuple[int, ...]:
    """The output shape of a case, from one forward per process (asv re-runs setup before
    every sample; meta tensors would cost ~0.3 s of lazy initialisation per process)."""
    with torch.no_grad():
        fn = case_function(layer, implementation, options)
        return tuple(fn(*cached_inputs(layer, size, kernel, dtype, device, options)).shape)


def kernel_too_large(kernel: str | None, size: str, options: tuple = ()) -> bool:
    """Whether the kernel (dilated) is wider than the input (padded), per ``options``."""
    if kernel is None:
        return False
    padding, dilation = dict(options).get("padding", 0), dict(options).get("dilation", 1)
    return any(dilation * (k - 1) + 1 > n + 2 * padding
               for k, n in zip(parse_size(kernel)[-2:], parse_size(size)[-2:]))


def extra_cuda_memory(fn) -> int:
    """Bytes by which ``fn()`` raised torch's peak CUDA allocation above the current one."""
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    before = torch.cuda.memory_allocated()
    fn()
    torch.cuda.synchronize()
    return torch.cuda.max_memory_allocated() - before


class _LayerCase:
    """One parameter combination of a layer: its inputs, the implementation to run and the
    grad_output for backward. Subclasses set ``layer``, ``params`` and a ``setup`` that
    calls ``setup_case``; ``in_default_grid`` says which combinations run without
    SCIPY_LAYERS_BENCH_FULL=1 (the others are skipped, never removed)."""

    layer: str
    # setup re-runs before every timed call (asv_runner 0.3), so a sample is one call:
    # at least 3 samples, up to 30 within ~0.5 s a case, keep the default grid in budget.
    number = 1
    repeat = (3, 30, 0.5)
    warmup_time = 0.05
    rounds = 1
    # asv's default (60 s) is too short for the full grid's slowest native call: F.conv2d
    # fwd+bwd of 2048x2048 31x31 float32 takes 10-12 s on a 2-core VM; a case runs one
    # forward for the output's shape, then four fwd+bwd (one warm-up, three timed), and
    # timed out at ce7ee56 on the Zen 3 VM. Only a hung case waits this long.
    timeout = 300
    version = "2"  # 2: timing processes settle the allocator first (settle_allocator)
    settles_allocator = True

    def in_default_grid(self, implementation, size, kernel, dtype) -> bool:
        return True

    def setup_case(self, implementation, size, kernel, dtype, device, threads="1", options=()):
        """``options``: the layer's keyword arguments as (name, value) pairs."""
        spec = LAYERS[self.layer]
        if implementation not in spec.implementations:
            skip(f"{implementation} is not an implementation of {self.layer}")
        if kernel_too_large(kernel, size, tuple(options)):
            skip(f"kernel {kernel} is larger than input {size}")
        if not FULL_GRID and not self.in_default_grid(implementation, size, kernel, dtype):
            skip("outside the default grid (set SCIPY_LAYERS_BENCH_FULL=1)")
        check_device(device)
        if self.settles_allocator:
            settle_allocator()
        self.threads_in_force = pin_threads(threads)
        self.case = (self.layer, implementation, size, kernel, dtype, device, tuple(options))
        self.device = device
        self.fn = case_function(self.layer, implementation, self.case[-1])
        self.inputs = cached_inputs(self.layer, size, kernel, dtype, device, self.case[-1])
        if self.grad_output_in_setup:
            shape = cached_output_shape(*self.case)
            self.grad_output = cached_grad_output(shape, dtype, device)

    # Timings get grad_output ready in setup (its shape costs one forward per process);
    # _BackwardTiming takes it from the forward its setup builds; _Memory makes it inside the
    # measured call, so nothing has run before it.
    grad_output_in_setup = True

    def forward_backward(self):
        output = self.fn(*self.inputs)
        torch.autograd.grad(output, self.inputs, self.grad_output)
        synchronize(self.device)


class _ForwardBackwardTiming(_LayerCase):
    """Forward+backward time alone, torch pinned to one thread."""

    def time_forward_backward(self, *params):
        self.forward_backward()


class _Timings(_ForwardBackwardTiming):
    """Forward and forward+backward time."""

    def time_forward(self, *params):
        self.fn(*self.inputs)
        synchronize(self.device)


class _Memory(_LayerCase):
    """Peak memory added by one forward+backward, in a process where no forward has run
    before (a warm allocator would hide what the call needs)."""

    grad_output_in_setup = False
    # What the first call needs, from the process's start-up state: nothing settled.
    settles_allocator = False
    # 2: the peak above the RSS before the call; 1 took it above the RSS after the call,
    # so what the call kept (its pool, a cache) did not count
    version = "2"

    def _first_forward_backward(self):
        output = self.fn(*self.inputs)
        grad_output = seeded_grad_output(output.shape, output.dtype, self.device)
        torch.autograd.grad(output, self.inputs, grad_output)
        synchronize(self.device)

    def track_peak_memory_forward_backward(self, *params):
        """Bytes, on the inputs' device: host RSS on the CPU (asv's own peakmem_ would
        include the ~300 MB of an imported torch and hide the layer),
        torch.cuda.max_memory_allocated on CUDA."""
        if self.device == "cuda":
            return extra_cuda_memory(self._first_forward_backward)
        return extra_peak_memory(self._first_forward_backward)

    track_peak_memory_forward_backward.unit = "bytes"


class _BackwardTiming(_LayerCase):
    """Backward alone, on a forward built in ``setup`` (asv re-runs it before every
    sample), outside the timing: each timed call is a plain backward of a fresh graph, as
    in training. (A forward built once per process and backed through again with
    retain_graph was no such thing: fft_abs's backward takes the spectrum its forward
    kept, so every call after the first recomputed the forward transform.)"""

    grad_output_in_setup = False  # the output's shape from setup's forward: no second one
    # 3: a forward per sample, built in setup; 2 backed through one forward per process
    # again and again (fft_abs's recomputed its forward transform: hostile pass 142)
    version = "3"

    def setup_case(self, *args, **kwargs):
        super().setup_case(*args, **kwargs)
        self.output = self.fn(*self.inputs)
        self.grad_output = cached_grad_output(tuple(self.output.shape), *self.case[4:6])
        synchronize(self.device)

    def time_backward(self, *params):
        torch.autograd.grad(self.output, self.inputs, self.grad_output)
        synchronize(self.device)

    def teardown(self, *params):
        self.output = None  # (its graph goes before the next sample's forward)


class _ThreadTimings(_ForwardBackwardTiming):
    """Forward+backward with torch at 1 thread and at its default (one per core): the
    secondary view, comparing what a user gets out of the box."""

    def track_threads_in_force(self, *params):
        """torch.get_num_threads() while the case ran."""
        return self.threads_in_force

    track_threads_in_force.unit = "threads"
