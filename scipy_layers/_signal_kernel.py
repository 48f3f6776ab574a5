"""scipy.signal's 2-D correlation and convolution (the tutorial's ``correlate2d`` /
``convolve2d``) called at their C kernel, without the public functions' per-call
argument handling.

Why: at the single-channel conv's small sizes that handling is a large share of the
call. The public functions normalise their arguments in Python (array namespace,
``asarray``, a shape check, mode and boundary lookups: ~12 Python calls) and then call
``scipy.signal._sigtools._convolve2d``; measured on the README's VM, one thread, 16x16 by
3x3 float32 in a loop: ``correlate2d`` 9.7 us against the kernel's 6.0, and a 16x16
forward+backward makes three such calls.

How: ``_sigtools._convolve2d(in1, in2, flip, mode, boundary, fillvalue)`` is scipy's
private API, so it is used only after a probe at import checks that it exists and gives
what the public functions give, bit for bit, on small odd shapes, strided views and
both dtypes; otherwise both functions here call the public ones (same values). The
callers pass what the public functions would pass on unchanged: real arrays of one
dtype, "valid" with the first array at least as large as the second in both dims (so
``correlate2d`` swaps nothing) or "full".
"""
from __future__ import annotations

import numpy as np
from scipy import signal

try:
    from scipy.signal._sigtools import _convolve2d
except ImportError:  # (a scipy without it)
    _convolve2d = None

# scipy.signal's codes (its _modedict and _boundarydict): the probe checks them
_VALID, _FULL, _FILL = 0, 2, 0


def _private_correlate_valid(x, w):
    return _convolve2d(x, w, 0, _VALID, _FILL, 0)


def _private_convolve_full(a, b):
    return _convolve2d(a, b, 1, _FULL, _FILL, 0)


def _public_correlate_valid(x, w):
    return signal.correlate2d(x, w, mode="valid")


def _public_convolve_full(a, b):
    return signal.convolve2d(a, b, mode="full")


def _private_works() -> bool:
    """The kernel exists and agrees with the public functions bit for bit."""
    try:
        rng = np.random.default_rng(0)
        for dtype in (np.float32, np.float64):
            x = rng.standard_normal((7, 12)).astype(dtype)[:, ::2]  # (7, 6), strided
            for w in (rng.standard_normal((3, 2)).astype(dtype), x[:1, :1].copy(),
                      x[2:5, 1:].T):  # 3x2; 1x1; a transposed 5x3 view
                g = rng.standard_normal((8 - w.shape[0], 7 - w.shape[1])).astype(dtype)
                pairs = ((_private_correlate_valid(x, w), _public_correlate_valid(x, w)),
                         (_private_convolve_full(g, w), _public_convolve_full(g, w)))
                for ours, public in pairs:
                    if ours.dtype != public.dtype or not np.array_equal(ours, public):
                        return False
    except Exception:  # noqa: BLE001 (any failure: the private API is not what we know)
        return False
    return True


PRIVATE = _convolve2d is not None and _private_works()
# correlate_valid(x, w): correlate2d(x, w, mode="valid"), x at least as large as w in
# both dims; convolve_full(a, b): convolve2d(a, b, mode="full"), any shapes (the caller
# puts the larger first: scipy's loop runs over all of b per output pixel). Bound once
# (no wrapper frame per call).
correlate_valid, convolve_full = (
    (_private_correlate_valid, _private_convolve_full) if PRIVATE
    else (_public_correlate_valid, _public_convolve_full))
