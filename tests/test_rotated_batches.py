"""tools/rotated_batches.py: each implementation's batches follow every other's equally
often (a Williams design), so that what ran just before a batch (native's leftovers in
the caches and the allocator) weighs on every implementation alike."""
import sys
from collections import Counter
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))
from rotated_batches import balanced_orders, batch_times  # noqa: E402


@pytest.mark.parametrize("count", range(1, 9))
def test_each_item_follows_every_other_equally_often(count):
    orders = balanced_orders(count)
    assert len(orders) == (count if count % 2 == 0 else 2 * count)
    assert all(sorted(order) == list(range(count)) for order in orders)
    pairs = Counter((a, b) for order in orders for a, b in zip(order, order[1:]))
    assert set(pairs) == {(a, b) for a in range(count) for b in range(count) if a != b}
    assert len(set(pairs.values())) <= 1  # every ordered pair the same number of times


@pytest.mark.parametrize("count", [1, 2, 3, 5, 7, 9])
def test_between_orders_each_item_follows_itself_equally_often(count):
    """Laid end to end (and wrapping round), each order starts with the item the one
    before ended with, every item as often as every other: no implementation's batch
    is the only one never run right after its own (an A/A run read the never-repeated
    one slower)."""
    orders = balanced_orders(count)
    joins = [(orders[i][-1], orders[(i + 1) % len(orders)][0]) for i in range(len(orders))]
    assert all(last == first for last, first in joins)
    assert len(set(Counter(last for last, _ in joins).values())) == 1
    assert len(Counter(last for last, _ in joins)) == count


@pytest.mark.parametrize("count", range(2, 9))
def test_chaining_keeps_the_williams_design(count):
    """The chained orders are the design's orders, each once (or as often as before)."""
    from rotated_batches import _chained
    orders = balanced_orders(count)
    chained = _chained([list(order) for order in orders])
    assert sorted(map(tuple, orders)) == sorted(map(tuple, chained))
    assert len(set(map(tuple, orders))) == len(orders)


def test_two_implementations_alternate():
    assert balanced_orders(2) == [[0, 1], [1, 0]]


def test_batch_times_runs_each_batch_after_each_other_equally_often():
    calls = []
    functions = {name: (lambda name=name: calls.append(name)) for name in "abc"}
    times = batch_times(functions, batches=12, per_batch=3)
    assert {name: len(entries) for name, entries in times.items()} == dict.fromkeys("abc", 12)
    assert all(t >= 0 for entries in times.values() for t in entries)
    runs = calls[6:]  # after the two warm-up calls each
    batch_starts = [runs[i:i + 4] for i in range(0, len(runs), 4)]
    assert all(len(set(batch)) == 1 for batch in batch_starts)  # a warm-up, then 3 timed
    order = [batch[0] for batch in batch_starts]  # the implementation of each batch
    within = Counter()
    for batch in range(12):
        names = order[3 * batch:3 * batch + 3]
        assert sorted(names) == ["a", "b", "c"]
        within.update(zip(names, names[1:]))
    assert set(within.values()) == {4} and len(within) == 6  # 12 batches: two designs


@pytest.mark.parametrize("functions,batches,per_batch", [({}, 3, 1), ({"a": int}, 0, 1),
                                                         ({"a": int}, 2, 0)])
def test_batch_times_refuses_nothing_to_time(functions, batches, per_batch):
    with pytest.raises(ValueError, match="at least one batch"):
        batch_times(functions, batches, per_batch)
