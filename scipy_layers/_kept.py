"""The count of what forward keeps for backward (im2col's window matrix), over all live
graphs of the process, against KEPT_LIMIT_BYTES: a forward reserves its share, a keeper
holds it while the graph lives, and the arrays then go back to the scratch pool
(:mod:`scipy_layers._workspace`, whose lock and POOLED_MIN_BYTES threshold it shares).
"""
from __future__ import annotations

import weakref

from . import _workspace
from ._workspace import _workspace_lock, recycle_when_dead

# What forward keeps for backward beside autograd's saved tensors (im2col's window matrix,
# kH kW times the size of its input) lives until autograd frees the graph's saved tensors
# (_forward_state.ForwardState.holder), so a network of many such layers holds all of
# them between forward and backward: three (32,64,56,56) -> 64
# 3x3 float32 layers held 811 MiB resident against native's 129 MiB (hostile pass,
# 2026-12-04). Kept arrays of POOLED_MIN_BYTES and up count against this limit, over all
# live graphs of the process; a forward that would pass it keeps nothing, and its
# backward builds what it needs again (slower: docs/layers.md, "Memory in training").
# Smaller arrays are not counted: the count's lock and weak reference cost ~14 us of a
# 1x3x8x8 call.
KEPT_LIMIT_BYTES = 1 << 30


def _counted(nbytes: int) -> int:
    return nbytes if nbytes >= _workspace.POOLED_MIN_BYTES else 0


class KeptCount:
    """One forward's share of kept_bytes(): what it reserved (:func:`reserve_kept`), then
    what its keeper holds (:func:`keep_until_dead`), or nothing once given back
    (:func:`release_kept`). kept_bytes() sums the live records; the keeper holds its
    record, which goes with it, and each step is one store of ``state``: a Ctrl-C at any
    point can neither leave a count behind nor give one back twice. (A running total
    updated beside the reservation and by the keeper's death callback did both: a
    hostile pass, and tests/test_kept_windows.py's interrupt at every signal point.)"""

    __slots__ = ("state", "__weakref__")

    def __init__(self):
        self.state = (0, False)  # (bytes counted, whether a keeper holds them)


_kept_counts: "weakref.WeakSet[KeptCount]" = weakref.WeakSet()  # (changed under the lock)


def _kept_sum() -> int:
    return sum(count.state[0] for count in _kept_counts)


def reserve_kept(count: KeptCount, nbytes: int) -> bool:
    """Count ``nbytes`` that forward will keep into ``count``, if that stays within
    KEPT_LIMIT_BYTES (True), else nothing (False); below POOLED_MIN_BYTES, True without
    a count. The caller settles ``count`` with :func:`keep_until_dead` and, in any case
    (a ``finally``), :func:`release_kept`."""
    if not _counted(nbytes):
        return True
    with _workspace_lock:
        if not _kept_sum() + nbytes <= KEPT_LIMIT_BYTES:  # (a NaN limit: nothing kept,
            return False                                  # not everything; pass 155)
        _kept_counts.add(count)
        count.state = (nbytes, False)
        return True


def release_kept(count: KeptCount) -> None:
    """Give back what ``count`` reserved, unless a keeper holds it (its death does)."""
    if not count.state[1]:
        count.state = (0, False)


def kept_bytes() -> int:
    """The bytes forward's counted kept arrays hold now, over all live graphs."""
    with _workspace_lock:
        return _kept_sum()


def keep_until_dead(owner, array, count: KeptCount) -> None:
    """``array`` (None: nothing), for which forward reserved ``count``
    (:func:`reserve_kept`), stays counted while ``owner`` (with a ``kept_count`` slot,
    which takes ``count``) lives, by its own size (an array larger than its reservation
    is counted in full, one below POOLED_MIN_BYTES not at all, its reservation then
    left to :func:`release_kept`); then the count goes with the owner and the array
    back to the workspace, as :func:`recycle_when_dead` gives it."""
    held = _counted(0 if array is None else array.nbytes)
    recycle_when_dead(owner, array)
    if not held:
        return
    owner.kept_count = count  # (first: a Ctrl-C before the store below leaves it to
    with _workspace_lock:     # release_kept)
        _kept_counts.add(count)  # (already in where the reservation was counted)
        count.state = (held, True)
