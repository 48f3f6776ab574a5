"""The asv suite's naming contract, in one place (reports/README.md documents it).

A benchmark is named ``bench_<layer>.<Class>.<method>``: ``<layer>`` is a key of
``scipy_layers.LAYERS``; the class name's suffix says which view of the layer it measures
and the method which figure. Parameters are named after what they are (implementation,
size, kernel, dtype, device, threads, quantity).
"""
from __future__ import annotations

# Parameter columns every table has, in this order, even where a benchmark lacks them
# (fft_abs has no kernel; the Threads classes have no dtype/device yet).
PARAM_COLUMNS = ["implementation", "size", "kernel", "dtype", "device", "threads", "quantity"]

# A benchmark without a threads parameter runs with torch pinned to one thread.
DEFAULT_THREADS = "1"

NATIVE = "native"

# Method name -> measurement label. Gradient errors get "of <quantity>" appended.
MEASUREMENTS = {
    "time_forward": "forward",
    "time_backward": "backward",
    "time_forward_backward": "forward+backward",
    "track_peak_memory_forward_backward": "peak memory",
    "track_threads_in_force": "threads in force",
    "track_max_abs_error": "max abs error",
    "track_max_rel_error": "max rel error",
}
TIME_MEASUREMENTS = ["forward", "backward", "forward+backward"]
ERROR_MEASUREMENTS = {"track_max_abs_error": "max_abs", "track_max_rel_error": "max_rel"}

# Class-name suffix -> kind of view ("" = the plain <Name> class: timings and memory).
KIND_SUFFIXES = {"Backward": "backward", "Threads": "threads", "Gradients": "gradients"}
PLAIN_KIND = "timings"


def split_name(name: str) -> tuple[str, str, str]:
    """'bench_conv2d.Conv2dThreads.time_forward_backward' -> (layer, kind, method):
    ('conv2d', 'threads', 'time_forward_backward'). Names outside the contract keep what
    can be read from them (layer '' when the module is not bench_<layer>)."""
    module, _, rest = name.partition(".")
    cls, _, method = rest.rpartition(".")
    layer = module.removeprefix("bench_") if module.startswith("bench_") else ""
    kind = PLAIN_KIND
    for suffix, label in KIND_SUFFIXES.items():
        if cls.endswith(suffix):
            kind = label
            break
    return layer, kind, method or rest


def measurement_label(method: str) -> str:
    return MEASUREMENTS.get(method, method)


def default_unit(method: str) -> str | None:
    """Unit of a benchmark missing from benchmarks.json (removed or renamed since)."""
    return "seconds" if method.startswith("time_") else None
