"""Run the shift method (single-channel and batched) on one of its three tiers whatever the
size (scipy_layers/_shift_kernels.py: windows matrix, per-row correlate, per-tap
multiply-add), so that the sample-driven tests reach each tier on their small inputs.

    with shift_tier("shift-rows") as method:   # method == "shift"
        scipy_conv2d(x, w, None, method)

Any other name passes through unchanged, so a test can list methods and tiers together.
On "shift-taps" the taps also run in chunks of TAPS_CHUNK_BYTES (7 float64 / 14 float32
elements): a few chunks, the last one short, on most samples, one on the smallest.
"""
import contextlib
from unittest import mock

from scipy_layers import _shift_kernels

SHIFT_TIERS = ("shift-windows", "shift-rows", "shift-taps")
_NEVER, _ALWAYS = -1, float("inf")
TAPS_CHUNK_BYTES = 56


@contextlib.contextmanager
def shift_tier(path: str):
    if path not in SHIFT_TIERS:
        yield path
        return
    windows = _ALWAYS if path == "shift-windows" else _NEVER
    rows = _NEVER if path == "shift-taps" else _ALWAYS
    with mock.patch.multiple(
            _shift_kernels,
            SHIFT_WINDOWS_MAX_BYTES=dict.fromkeys(_shift_kernels.SHIFT_WINDOWS_MAX_BYTES, windows),
            SHIFT_ROWS_MAX_LENGTH=dict.fromkeys(_shift_kernels.SHIFT_ROWS_MAX_LENGTH, rows),
            TAP_CHUNK_BYTES=(TAPS_CHUNK_BYTES if path == "shift-taps"
                             else _shift_kernels.TAP_CHUNK_BYTES)):
        yield "shift"
