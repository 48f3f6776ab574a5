"""``numpy_quiet``: ``np.errstate(all="ignore")`` as a decorator, which every numpy body
of a layer runs under, made cheaper on small calls (see :func:`_quiet`)."""
from __future__ import annotations

import functools

import numpy as np

# numpy warns of overflow, NaN and inf (RuntimeWarning); torch, whose results these
# layers match, propagates them silently. Every numpy body of a layer runs under
# numpy_quiet: np.errstate(all="ignore") as a decorator (see _quiet).
_ERRSTATE_DEFAULT = np.errstate(all="ignore")


def _quiet(function):
    """``np.errstate(all="ignore")`` around ``function``, as numpy's own decorator does
    it (numpy 2: set its error-state context variable to a state made from the current
    one with every error ignored, reset it after), with the made state kept for the
    current one it was made from: numpy's decorator makes it anew on every call, which
    costs 3-4 us of a 16x16 forward+backward inside autograd (a null Function, rotated
    batches, Zen 3). The current state is an immutable object replaced, never changed,
    by np.errstate, np.seterr and np.setbufsize, so the same object means the same
    buffer size and error callback (states with a callback are not kept). numpy's
    private names: :func:`_quiet_works` checks them at import, else numpy's decorator
    runs."""

    @functools.wraps(function)
    def quiet(*args, **kwargs):
        global _quiet_made
        current = _error_state.get()
        made_from, made = _quiet_made
        if made_from is not current:
            made = _make_error_state(all="ignore")
            # (one assignment: threads see either pair). Not kept where the caller's
            # state holds an error callback: the pair would keep it, and whatever it
            # refers to, alive after the caller's np.errstate(call=...) ended.
            _quiet_made = (current, made) if np.geterrcall() is None else (None, None)
        token = _error_state.set(made)
        try:
            return function(*args, **kwargs)
        finally:
            _error_state.reset(token)

    return quiet


def _quiet_works() -> bool:
    """The private names exist and :func:`_quiet` gives np.errstate(all="ignore")'s
    state (every error ignored, the caller's buffer size kept) and restores the
    caller's after."""
    try:
        outside = np.geterr(), np.getbufsize()

        @_quiet
        def inside():
            return np.geterr(), np.getbufsize()

        with np.errstate(over="raise"):
            errors, size = inside()
            restored = np.geterr()["over"] == "raise"
        return (restored and size == outside[1] and set(errors.values()) == {"ignore"}
                and (np.geterr(), np.getbufsize()) == outside)
    except Exception:  # noqa: BLE001 (a numpy whose internals differ: numpy's decorator)
        return False


try:
    from numpy._core._ufunc_config import _extobj_contextvar as _error_state
    from numpy._core._ufunc_config import _make_extobj as _make_error_state
    _quiet_made = (None, None)
    numpy_quiet = _quiet if _quiet_works() else _ERRSTATE_DEFAULT
except ImportError:
    numpy_quiet = _ERRSTATE_DEFAULT
