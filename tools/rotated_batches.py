"""Timing in batches whose order changes every batch, shared by tools/overhead_floor.py,
tools/side_by_side.py and tools/targets.py.

On a shared, noisy VM a call's time depends on what ran just before it: a batch of
calls right after native's ran 10-12% slower than the same calls after the layer's own
(8x3x32x32 -> 16 k3 float32, 10 calls a batch, Zen 4 VM, 2026-12-05). So the orders
form a Williams design (:func:`balanced_orders`): within batches each implementation
directly follows every other equally often, over every len(orders) batches. (Rotating
one order, as before, kept its cycle: with three implementations each always followed
the same one, and an A/A run, base and head the same code, read head faster by 0-67 us:
native, base, head left base always after native.) One warm-up call per batch makes
the batch time this implementation, not its predecessor's leftovers alone.
Between two orders the last batch of one runs just before the first of the next; where
the design allows (odd counts, and two), the orders are chained so that each starts with
the implementation the one before ended with, which every implementation then does
equally often (laid end to end as they were, with three implementations native and base
each followed themselves once a design and the third never). That alone did not remove
what A/A runs show (docs/performance.md, eighteenth session): at FFT 127x127 and 256x256
the implementation listed third reads a few us slower, the reason unknown.
"""
from __future__ import annotations

import time


def balanced_orders(count: int) -> list[list[int]]:
    """Orders of ``count`` items (0 .. count - 1) in which each item directly follows
    every other equally often: a Williams design, one Latin square (``count`` orders) for
    an even count, it and its mirror image (2 ``count``) for an odd one. For two items,
    [0, 1] and [1, 0]."""
    first, low, high = [0], 1, count - 1
    while len(first) < count:  # 0, 1, n-1, 2, n-2, ...
        first.append(low)
        low += 1
        if len(first) < count:
            first.append(high)
            high -= 1
    orders = [[(item + shift) % count for item in first] for shift in range(count)]
    if count % 2:
        orders += [order[::-1] for order in orders]
    return _chained(orders)


def _chained(orders: list[list[int]]) -> list[list[int]]:
    """``orders`` reordered so that each starts with the item the one before ended with
    (the last one wrapping round to the first), where such a sequence exists: an Euler
    circuit of the graph with an edge from each order's first item to its last
    (Hierholzer's algorithm; every item is as often first as last in these designs).
    Else ``orders`` as they are (even counts from four: each order's last item is its
    first plus count / 2, so the graph falls apart into pairs)."""
    leaving: dict[int, list[int]] = {}
    for index in reversed(range(len(orders))):  # (popped from the end: lowest index first)
        leaving.setdefault(orders[index][0], []).append(index)
    stack, circuit = [(orders[0][0], None)], []
    while stack:
        item, arrived_by = stack[-1]
        if leaving.get(item):
            index = leaving[item].pop()
            stack.append((orders[index][-1], index))
        else:
            stack.pop()
            if arrived_by is not None:
                circuit.append(arrived_by)
    if len(circuit) != len(orders):
        return orders
    return [orders[index] for index in reversed(circuit)]


def batch_times(functions: dict, batches: int, per_batch: int) -> dict:
    """{name: [seconds per call, one entry per batch]} for ``functions`` (name -> a
    callable), ``per_batch`` timed calls each, batch b in the order
    balanced_orders(len(functions))[b % len(...)] (exactly balanced when ``batches`` is a
    multiple of that length; between batches, the last of one and the first of the next
    are whatever the design puts there). A ValueError for no functions or batches or
    per_batch below 1."""
    if not functions or batches < 1 or per_batch < 1:
        raise ValueError(f"batch_times needs functions and at least one batch of at least "
                         f"one call; got {len(functions)} function(s), batches={batches}, "
                         f"per_batch={per_batch}")
    for function in functions.values():
        function()
        function()
    names, times = list(functions), {name: [] for name in functions}
    orders = balanced_orders(len(names))
    for batch in range(batches):
        for name in (names[index] for index in orders[batch % len(orders)]):
            function = functions[name]
            function()
            start = time.perf_counter()
            for _ in range(per_batch):
                function()
            times[name].append((time.perf_counter() - start) / per_batch)
    return times
