"""The asv suite's naming contract, in one place (reports/README.md documents it).

A benchmark is named ``bench_<layer>.<Class>.<method>``: ``<layer>`` is a key of
``scipy_layers.LAYERS``; the class name's suffix says which view of the layer it measures
and the method which figure. Parameters are named after what they are (implementation,
size, kernel, dtype, device, threads, quantity).
"""
from __future__ import annotations

# Parameter columns every table has, in this order, even where a benchmark lacks them
# (fft_abs has no kernel; the Threads classes have no dtype/device yet; results from
# before the *Gradients classes gained layout and values leave those blank).
PARAM_COLUMNS = ["implementation", "size", "kernel", "dtype", "device", "threads", "quantity",
                 "layout", "values"]

# Names a parameter may not take: every other column a report table writes, and the
# working columns the tables are built with (a parameter named "value" or "ratio" would
# overwrite them). tests/test_reports_malformed.py checks the tables against this set.
RESERVED_NAMES = frozenset("""
    layer kind measurement value unit status q25 q75 ci99_a ci99_b number repeat commit
    commit_date commit_order machine env benchmark version time native_time native_q25 native_q75
    native_status ratio ratio_low ratio_high worst_rel_error worst_quantity unmeasured not_compared
    tolerance gradient_is_exact verdict statistic column cell elements method date
    samples cpu blas thread_limits overrides versions commit_a commit_b rounds_a rounds_b
    ci_low ci_high p_value q_value p_rank native_ratio_change native_ratio_change_low
    native_ratio_change_high gradient_regression gradient_change env_differs
    env_difference _se _df ratio_native _se_native _df_native bound_time limit_fraction
    native_limit_fraction
""".split()) | {f"{column}_{side}" for side in "ab" for column in (
    "value", "status", "samples", "cpu", "blas", "thread_limits", "overrides", "versions")}

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
    "track_nonfinite_mismatches": "nonfinite mismatches",
}
TIME_MEASUREMENTS = ["forward", "backward", "forward+backward"]
ERROR_MEASUREMENTS = {"track_max_abs_error": "max_abs", "track_max_rel_error": "max_rel",
                      "track_nonfinite_mismatches": "nonfinite_mismatches"}
# Every gradient case has these; results older than the mismatch count lack only that.
REQUIRED_ERROR_STATISTICS = ("max_abs", "max_rel")
VERDICT_STATISTIC = "max_rel"  # what the verdict reads: required even where max_abs was not run

# Class-name suffix -> kind of view ("" = the plain <Name> class: timings and memory).
# Any other suffix after <Name> (e.g. Conv2dMethods) becomes its own kind, lower-cased.
KIND_SUFFIXES = {"": "timings", "Backward": "backward", "Threads": "threads",
                 "Gradients": "gradients"}
PLAIN_KIND = "timings"


def split_name(name: str) -> tuple[str, str, str]:
    """'bench_conv2d.Conv2dThreads.time_forward_backward' -> (layer, class, method):
    ('conv2d', 'Conv2dThreads', 'time_forward_backward'). Names outside the contract
    keep what can be read from them (layer '' when the module is not bench_<layer>)."""
    module, _, rest = name.partition(".")
    cls, _, method = rest.rpartition(".")
    layer = module.removeprefix("bench_") if module.startswith("bench_") else ""
    return layer, cls, method or rest


def kinds(names) -> dict[str, str]:
    """Benchmark name -> kind. Within a module the plain class <Name> is the shortest
    class name that begins every other one; the rest of a class name is its suffix."""
    classes: dict[str, set[str]] = {}
    for name in names:
        classes.setdefault(name.partition(".")[0], set()).add(split_name(name)[1])
    result = {}
    for name in names:
        module, cls = name.partition(".")[0], split_name(name)[1]
        siblings = classes[module]
        bases = [c for c in siblings if all(other.startswith(c) for other in siblings)]
        suffix = cls[len(min(bases, key=len)):] if bases else next(
            (s for s in KIND_SUFFIXES if s and cls.endswith(s)), "")
        result[name] = KIND_SUFFIXES.get(suffix, suffix.lower())
    return result


def measurement_label(method: str) -> str:
    return MEASUREMENTS.get(method, method)


def default_unit(method: str) -> str | None:
    """Unit of a benchmark missing from benchmarks.json (removed or renamed since)."""
    return "seconds" if method.startswith("time_") else None
