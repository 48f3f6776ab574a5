"""The base of the suite's gradient-agreement benchmarks (``*Gradients``): every
output and gradient of a numpy/scipy implementation against its native twin, per
layout and values, computed once per commit in ``setup_cache`` and looked up per
quantity and statistic. The suite runs against older commits too, which lack the
layouts and the finite-part figures: those combinations are skipped, not failed.
"""
from __future__ import annotations

import inspect
import itertools
import traceback

import torch

from scipy_layers import LAYERS, NATIVE
from scipy_layers import agreement
from scipy_layers.agreement import compare_with_native

from .common import cached_inputs, kernel_too_large, skip

try:  # the suite runs against older commits too, which lack the layouts
    from scipy_layers.samples import as_layout
    HAS_LAYOUTS = "prepare" in inspect.signature(compare_with_native).parameters
except ImportError:
    HAS_LAYOUTS = False
# Older commits compared a strided case's gradients over the whole NaN-filled buffer the
# view is cut from, whose slots outside the view hold 0 on both sides: with non-finite
# values those zeros read 0.0 where nothing in the view was compared (NaN here): such a
# commit's strided non-finite cases are skipped, not recorded as a different figure.
GRADIENTS_OVER_ENTRIES_READ = getattr(agreement, "GRADIENTS_OVER_ENTRIES_READ", False)


# Gradient agreement is tracked on contiguous inputs and on strided views of the same
# values (every other element of a NaN-filled buffer: a read outside the view shows), and
# with finite values or with a NaN and an inf planted in the input (non-finite results
# must sit where native's do; a mismatch is recorded as an infinite error).
LAYOUTS = ["contiguous", "strided"]
VALUES = ["finite", "nonfinite"]
_LAYOUT_OF = {"contiguous": "contiguous", "strided": "step_sliced"}


def _with_nonfinite(inputs):
    """A copy of the inputs with a NaN and an inf planted in the first one (the image)."""
    first = inputs[0].detach().clone()
    flat = first.view(-1)
    flat[flat.numel() // 3] = float("nan")
    flat[(2 * flat.numel()) // 3] = float("inf")
    return (first, *inputs[1:])


class CaseFailed:
    """A combination whose comparison raised in ``setup_cache``: its traceback, as text
    (asv pickles the table; an exception may not pickle)."""

    def __init__(self, traceback_text: str):
        self.traceback = traceback_text


class _GradientAgreement:
    """Max absolute and relative error against the native twin, per output/gradient, in
    float64 and float32 (same inputs, same grad_output), per layout and values. A commit
    that breaks a gradient shows here beside one that changes speed.

    Subclasses set ``params`` (ending with layout, values, quantity), ``case(*combo)``,
    which maps the leading parameters to (implementation, size, kernel, dtype), and
    ``setup_cache`` returning ``self.error_table()``."""

    layer: str
    # 3: layout and values parameters; errors over the entries finite on both sides, and
    # the count of entries whose finiteness differs from native's (asv cannot store inf);
    # 4: the errors are NaN (asv: skipped) where no entry is finite on both sides (they
    # read 0.0, a pass, though nothing was compared); 5: a strided case's gradients over
    # the view's entries, not the whole buffer (its zeros outside the view read 0.0 where
    # the view held nothing finite on both sides: hostile pass 142)
    version = "5"
    timeout = 300

    def _skip_reason(self, implementation, size, kernel, dtype):
        spec = LAYERS[self.layer]
        if implementation not in spec.implementations or implementation == NATIVE:
            return f"{implementation} is not compared for {self.layer}"
        if kernel_too_large(kernel, size):
            return f"kernel {kernel} is larger than input {size}"
        return None

    def error_table(self):
        """Every comparison once (each runs both implementations forward and backward);
        the per-quantity, per-statistic benchmarks then only look their figure up.
        Subclasses return it from their own ``setup_cache``: asv keys the cache by the
        function's file and line, so one inherited setup_cache would be shared by all."""
        torch.set_num_threads(1)
        table = {}
        for combo in itertools.product(*self.params[:-1]):
            *case, layout, values = combo
            implementation, size, kernel, dtype = self.case(*case)
            if self._skip_reason(implementation, size, kernel, dtype) is not None:
                continue
            try:
                errors = self._compare(implementation, size, kernel, dtype, layout, values)
            except Exception:  # noqa: BLE001 -- asv fails this combination, not the class
                # Raising here would fail setup_cache, and with it every combination of
                # every implementation of the layer: the traceback is kept (a string:
                # asv pickles the table) and ``setup`` raises it for this one.
                table[combo] = CaseFailed(traceback.format_exc())
                continue
            if errors is not None:
                table[combo] = errors
        return table

    def _compare(self, implementation, size, kernel, dtype, layout, values):
        """compare_with_native's dict for one combination; None where this (older)
        commit cannot run it."""
        spec = LAYERS[self.layer]
        inputs = cached_inputs(self.layer, size, kernel, dtype, "cpu")
        if values == "nonfinite":
            inputs = _with_nonfinite(inputs)
        if (layout, values) == ("strided", "nonfinite") and not GRADIENTS_OVER_ENTRIES_READ:
            return None
        if HAS_LAYOUTS:
            leaves, prepare = as_layout(inputs, _LAYOUT_OF[layout])
            return compare_with_native(spec, implementation, leaves, prepare=prepare)
        if (layout, values) == ("contiguous", "finite"):  # an older commit
            return compare_with_native(spec, implementation, inputs)
        return None

    def setup(self, table, *params):
        *combo, quantity = params
        reason = self._skip_reason(*self.case(*combo[:-2]))
        if reason:
            skip(reason)
        if tuple(combo) not in table:
            skip("this commit predates strided and non-finite gradient checks")
        errors = table[tuple(combo)]
        if isinstance(errors, CaseFailed):  # asv reports this combination failed
            raise RuntimeError("the comparison raised in setup_cache:\n" + errors.traceback)
        if quantity not in errors:
            skip(f"{self.layer} has no {quantity}")
        self.errors = errors[quantity]

    # (getattr: an older commit's Errors has only max_abs and max_rel)
    def track_max_abs_error(self, table, *params):
        """Over the entries finite on both sides (non-finite ones: the mismatch count);
        NaN (asv: skipped) where there is none."""
        return getattr(self.errors, "finite_max_abs", self.errors.max_abs)

    def track_max_rel_error(self, table, *params):
        """Over the entries finite on both sides (non-finite ones: the mismatch count);
        NaN (asv: skipped) where there is none."""
        return getattr(self.errors, "finite_max_rel", self.errors.max_rel)

    def track_nonfinite_mismatches(self, table, *params):
        """Entries that are NaN or inf on one side only: any is a broken gradient."""
        # NaN is asv's "skipped" (raising here would fail the whole benchmark)
        return getattr(self.errors, "nonfinite_mismatches", float("nan"))

    track_max_abs_error.unit = "absolute error"
    track_max_rel_error.unit = "relative error"
    track_nonfinite_mismatches.unit = "entries"
