"""A small pool of numpy scratch arrays reused across calls, for the layers' large
temporaries and the arrays they hand out.

Why: glibc serves multi-MB arrays from fresh mmaps and returns freed ones to the OS, so
every call's new buffers page-fault on first touch (numpy asks for transparent huge
pages above 4 MB, whose faults zero 2 MB each). Measured on the AMD EPYC VM of the
README: the batched conv (8,16,32,32)->32 k3 float32 fwd+bwd ~2200 faults, 6.3 ms with
fresh buffers, 2.8 ms without faults; fft_abs 8x256x256 to 2048x2048 2000-3100 faults
a forward+backward (docs/performance.md).

Rules: :func:`scratch` gives an uninitialised C-contiguous array (every caller writes
before it reads; the tests fill scratch with NaN to check); :func:`recycle` takes back
arrays the caller holds no other reference to; :func:`output` is for arrays that leave
a layer as tensors: the buffer comes back only when the array handed out dies. (The count
of what forward keeps for backward, against KEPT_LIMIT_BYTES: _kept.)
"""
from __future__ import annotations

import atexit
import functools
import math
import sys
import threading
import weakref

import numpy as np

WORKSPACE_LIMIT_BYTES = 256 << 20  # idle scratch kept for reuse, at most
# Smaller arrays are plain np.empty: glibc serves them from its heap without page
# faults (it maps fresh memory from 128 KiB up, and raises that threshold as mapped
# blocks are freed), and pooling them bought nothing measurable while output()'s
# give-back (then a weakref.finalize) cost ~3 us: fft_abs 16x16 float32 fwd+bwd +7 us
# (1.55 -> 1.59x native) with every array pooled, 127x127 float64 0.74 -> 0.77 with its
# 65-130 KiB arrays pooled; batched conv shapes alike with 0, 64 and 256 KiB (one
# process, rotated).
POOLED_MIN_BYTES = 1 << 18
_workspace: dict[tuple, list[np.ndarray]] = {}
_workspace_bytes = 0
_workspace_lock = threading.RLock()  # a weakref callback may recycle inside scratch()
# Every live array scratch() made, id -> weak reference: only these go back to the pool.
# An array that did not come from it (a matmul's result, say) would pile up there, never
# taken again. Plain weak references with callbacks, not WeakValueDictionary or
# weakref.finalize, whose Python bookkeeping cost more: on the README's VM, one process,
# rotated, scratch() + recycle() 7.7 -> 5.9 us, output() handed out and dead 12.8 -> 8.1,
# recycle_when_dead() and its owner's death 12.9 -> 8.2 (and keys hold the dtype, not
# dtype.str, a string made on each call).
_made_here: dict[int, weakref.ref] = {}
# The weak references whose callbacks give a buffer back, by id (an ndarray's weak
# reference is unhashable), with that buffer, kept alive until they fire.
_pending: dict[int, tuple[weakref.ref, np.ndarray]] = {}


# Set once atexit handlers run: from then on the callbacks do nothing, as
# weakref.finalize(atexit=False) did (a callback during teardown could wait on the lock
# held by a frozen daemon thread, or find this module's globals cleared: None, hence the
# "is not False" tests).
_exiting = False


def _on_exit() -> None:
    global _exiting
    _exiting = True
    # No callback at all from here on: torch's modules may be torn down first, and a
    # callback switched outside compile (below) runs torch's wrapper before it could see
    # _exiting (hostile pass: "Exception ignored in functools.partial ... 'NoneType'").
    # A weak reference that dies first never calls back.
    _made_here.clear()
    _pending.clear()


atexit.register(_on_exit)


# Under torch.compile an owner can die inside a compiled region, and its weak reference's
# callback then runs under Dynamo's frame hook, which tries to compile the callback's
# frame and fails ("Exception ignored in ... give_back ... InternalTorchDynamoError"; the
# buffer never came back; hostile passes). Once Dynamo is in play (a callback made with
# torch._dynamo imported, or, on a torch without per-code strategies, the first traced
# layer call: _torch_protocols), every callback runs through one torch.compiler.disable'd
# call, with the hook off, and the live ones made before are made again that way. Until
# then they are plain functions: a program that never compiles neither imports Dynamo
# (~2 s) nor pays for it. (Left: an owner made before Dynamo was imported that dies
# inside a compiled function which runs no layer and makes no pooled array.)
_outside_compile = None  # callback -> the callback run outside compile, once switched


def run_callbacks_outside_compile(disable) -> None:
    """From now on run the pool's weak-reference callbacks through ``disable(call)``
    (torch.compiler.disable), made once, and remake the live ones that way. ``disable``
    runs before the pool's lock is taken (it may import Dynamo; a hostile pass hung two
    threads on the lock and the import's), and the switch counts as made only once it
    is whole: an interrupt before that leaves it to be made again by the next callback."""
    global _outside_compile, _give_back_callback
    if _outside_compile is not None:
        return
    outside = disable(lambda callback, ref: callback(ref))
    wrap = lambda callback: functools.partial(outside, callback)  # noqa: E731
    with _workspace_lock:
        if _outside_compile is not None:
            return
        _give_back_callback = wrap(_give_back)
        for key, old in list(_made_here.items()):
            array = old()  # (held: it cannot die meanwhile)
            if array is not None and _made_here.get(key) is old:
                _made_here[key] = weakref.ref(array, wrap(_forget(key)))
        for key, (old, array) in list(_pending.items()):
            owner = old()
            if owner is not None and _pending.pop(key, None) is not None:
                _track(owner, array)  # (the old reference dies here: its callback too)
        _outside_compile = wrap


def _switch_once_dynamo_is_in() -> None:
    """run_callbacks_outside_compile once torch._dynamo is imported (a dict lookup), not
    while another thread is still importing it (the switch would wait for that import)."""
    if _outside_compile is None:
        dynamo = sys.modules.get("torch._dynamo")
        if dynamo is not None and not getattr(getattr(dynamo, "__spec__", None),
                                              "_initializing", False):
            run_callbacks_outside_compile(sys.modules["torch"].compiler.disable)


def _callback(callback):
    """``callback`` as the pool registers it now (see _outside_compile); the caller has
    asked _switch_once_dynamo_is_in first, outside the pool's lock."""
    return callback if _outside_compile is None else _outside_compile(callback)


def _forget(key: int):
    def forget(ref):  # (the array died: its id may be reused from now on)
        if _exiting is not False:
            return
        if _made_here.get(key) is ref:
            del _made_here[key]
    return forget


def _give_back(ref) -> None:
    """An owner died: its buffer (in _pending, under its reference's id) back to the pool."""
    if _exiting is not False:
        return
    entry = _pending.pop(id(ref), None)
    if entry is not None:
        recycle(entry[1])


_give_back_callback = _give_back  # (its twin outside compile, once switched)


def scratch(shape, dtype) -> np.ndarray:
    """An uninitialised C-contiguous array, reused from the workspace when one fits."""
    global _workspace_bytes
    dtype = np.dtype(dtype)
    if math.prod(shape) * dtype.itemsize < POOLED_MIN_BYTES:
        return np.empty(shape, dtype)
    key = (tuple(shape), dtype)
    with _workspace_lock:
        free = _workspace.get(key)
        if free:
            # Taken out, counted and the emptied key deleted with no call in between, so
            # no point where a signal handler can run (a KeyboardInterrupt after pop()
            # left an empty key behind). No key stays for each shape ever pooled: a
            # shape that changes every call grew the dict ~220 bytes a shape, without
            # bound (hostile pass 155).
            array = free[-1]
            _workspace_bytes -= array.nbytes
            del free[-1]
            if not free:
                del _workspace[key]
            return array
    _switch_once_dynamo_is_in()  # (outside the lock: see run_callbacks_outside_compile)
    with _workspace_lock:  # (a switch meanwhile remakes what is registered under it)
        array = np.empty(shape, dtype)
        _made_here[id(array)] = weakref.ref(array, _callback(_forget(id(array))))
    return array


def is_large(array) -> bool:
    """Large enough for the pool to keep, and for the kept-arrays count (not None)."""
    return array is not None and array.nbytes >= POOLED_MIN_BYTES


def _made_by_scratch(array) -> bool:
    """True for an array scratch() made (not a view of it, not None, not a small array,
    which scratch() never pools). Safe without the lock: an entry is added before its
    array is handed out and leaves only when the array dies, and the caller holds it."""
    if not is_large(array):
        return False
    made = _made_here.get(id(array))
    return made is not None and made() is array


def recycle(*arrays) -> None:
    """Give scratch() arrays back; the caller must hold no other reference to them.
    Anything else (views, arrays scratch() did not make, None) is left alone."""
    global _workspace_bytes
    # Most calls give back small arrays the pool never kept: answered without a call,
    # a comprehension or the lock (each costs 1-2 us inside an autograd call).
    for array in arrays:
        if array is not None and array.nbytes >= POOLED_MIN_BYTES:
            break
    else:
        return
    with _workspace_lock:
        for array in arrays:
            if not _made_by_scratch(array):
                continue  # views, small arrays and others' arrays are not ours to keep
            key = (array.shape, array.dtype)
            free = _workspace.get(key)
            # (within the limit, not "over it": a NaN limit would have kept everything)
            if not _workspace_bytes + array.nbytes <= WORKSPACE_LIMIT_BYTES or (
                    free is not None and any(kept is array for kept in free)):
                continue  # (given back twice: keep it once)
            # Counted, then put in (a key made only for an array it keeps, with that
            # array: no key per shape refused), with no point between where a signal
            # handler can run: a KeyboardInterrupt after append() and before the count
            # left the array in the pool uncounted, which then held more than the limit,
            # for good (hostile pass 155); one after setdefault(key, []) left an empty key.
            _workspace_bytes += array.nbytes
            if free is None:
                _workspace[key] = [array]
            else:
                free.append(array)


def output(shape, dtype, axes=None) -> np.ndarray:
    """An array to hand out (as a tensor): a view of a scratch buffer that returns to the
    workspace when the view dies; C-contiguous ``shape``, or with ``axes`` that buffer's
    transpose(axes) (e.g. a channels_last NCHW array laid out as an NHWC ``shape``).
    Callers return the view itself, never a view of it (numpy bases views on the buffer,
    which would outlive the view)."""
    buffer = scratch(shape, dtype)
    view = buffer.view() if axes is None else buffer.transpose(axes)
    if not _made_by_scratch(buffer):  # (small arrays included)
        return buffer if axes is None else view  # not pooled: nothing to give back
    _recycle_with(view, buffer)
    return view


def _recycle_with(owner, array) -> None:
    _switch_once_dynamo_is_in()
    _track(owner, array)


def _track(owner, array) -> None:
    reference = weakref.ref(owner, _give_back_callback)
    _pending[id(reference)] = (reference, array)


def recycle_when_dead(owner, array) -> None:
    """recycle() ``array`` once ``owner`` is garbage (only an array the pool would keep:
    each give-back costs a few us)."""
    if _made_by_scratch(array):  # (not None, not small: its first check)
        _recycle_with(owner, array)


def clear_workspace() -> None:
    global _workspace_bytes
    with _workspace_lock:
        _workspace.clear()
        _workspace_bytes = 0
