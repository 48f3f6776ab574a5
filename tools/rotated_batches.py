"""Timing in rotated batches, shared by tools/overhead_floor.py and tools/side_by_side.py.

On a shared, noisy VM a small call's time depends on what ran just before it; rotating
the order every batch makes each implementation follow every other equally often, and
one warm-up call per batch makes the batch time this implementation, not its
predecessor.
"""
from __future__ import annotations

import time


def batch_times(functions: dict, batches: int, per_batch: int) -> dict:
    """{name: [seconds per call, one entry per batch]} for ``functions`` (name -> a
    callable), ``per_batch`` timed calls each, the order rotated every batch."""
    for function in functions.values():
        function()
        function()
    names, times = list(functions), {name: [] for name in functions}
    for batch in range(batches):
        shift = batch % len(names)
        for name in names[shift:] + names[:shift]:
            function = functions[name]
            function()
            start = time.perf_counter()
            for _ in range(per_batch):
                function()
            times[name].append((time.perf_counter() - start) / per_batch)
    return times
