"""Ctrl-C wherever a signal handler can run: a KeyboardInterrupt raised at the N-th
point, in some functions, where CPython checks for pending signals.

    interrupts = SignalPoints({"scratch": _workspace.scratch, ...})
    interrupts.run(work, 0)            # no interrupt: counts the points work passes
    for target in range(1, interrupts.passed + 1):
        where = interrupts.run(work, target)   # the function interrupted (its name)

Used by the pool's and the kept windows' bookkeeping tests (one model of the points
for both: the kept-windows test once had its own, which also raised where no signal
can land, after a loop's exit; hostile pass 155).
"""
from __future__ import annotations

import dis
import sys


def signal_points(code) -> frozenset:
    """Offsets where CPython (3.11+) may run a signal handler: after a call returns, at a
    function's start, and where a loop's back edge lands (its check runs before the
    jump; the instruction after a JUMP_BACKWARD is reached only from the loop's exit,
    where nothing checks: raising there, outside a ``with`` block's handler, would
    leave a lock held)."""
    points, previous = set(), None
    for instruction in dis.get_instructions(code):
        if previous is None or previous.opname.startswith("CALL") or previous.opname == "RESUME":
            points.add(instruction.offset)
        if instruction.opname == "JUMP_BACKWARD":
            points.add(instruction.argval)
        previous = instruction
    return frozenset(points)


class SignalPoints:
    """The signal points of ``functions`` (name -> function), and runs of work with a
    KeyboardInterrupt raised at one of them."""

    def __init__(self, functions: dict):
        self._codes = {f.__code__: (name, signal_points(f.__code__))
                       for name, f in functions.items()}
        self.passed = 0  # points the last run passed (up to its interrupt)

    def run(self, work, target: int) -> str | None:
        """``work()`` with a KeyboardInterrupt at the ``target``-th point it passes (0:
        none), caught here; the name of the function interrupted, or None."""
        self.passed, where = 0, None

        def tracer(frame, event, arg):
            if frame.f_code not in self._codes:
                return None
            frame.f_trace_opcodes = True
            name, points = self._codes[frame.f_code]

            def local(frame, event, arg):
                nonlocal where
                if event == "opcode" and frame.f_lasti in points:
                    self.passed += 1
                    if self.passed == target:
                        where = name
                        raise KeyboardInterrupt
                return local
            return local

        sys.settrace(tracer)
        try:
            work()
        except KeyboardInterrupt:
            pass
        finally:
            sys.settrace(None)
        return where
