"""Run the shift method (single-channel and batched) on one of its three tiers whatever the
size (scipy_layers/conv_methods.py: windows matrix, per-row correlate, per-tap
multiply-add), so that the sample-driven tests reach each tier on their small inputs.

    with shift_tier("shift-rows") as method:   # method == "shift"
        scipy_conv2d(x, w, None, method)

Any other name passes through unchanged, so a test can list methods and tiers together.
"""
import contextlib

from scipy_layers import conv_methods

SHIFT_TIERS = ("shift-windows", "shift-rows", "shift-taps")
_NEVER, _ALWAYS = -1, float("inf")


@contextlib.contextmanager
def shift_tier(path: str):
    if path not in SHIFT_TIERS:
        yield path
        return
    with contextlib.ExitStack() as undo:
        for name, value in (("SHIFT_WINDOWS_MAX_BYTES",
                             _ALWAYS if path == "shift-windows" else _NEVER),
                            ("SHIFT_ROWS_MAX_LENGTH",
                             _NEVER if path == "shift-taps" else _ALWAYS)):
            saved = getattr(conv_methods, name)
            setattr(conv_methods, name, dict.fromkeys(saved, value))
            undo.callback(setattr, conv_methods, name, saved)
        yield "shift"
