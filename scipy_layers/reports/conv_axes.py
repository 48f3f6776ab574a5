"""One axis of a convolution, as the machine's limit (``limits``) counts it. A 2-D case
is the product of its two axes: a (output, tap) pair reads the input when it does along
both.

Along an axis of n inputs, k taps, stride s, padding p and dilation d, output i and tap
j read input i s + j d - p. A pair whose index falls outside [0, n) multiplies a padding
zero, which no method has to do; an input no pair reads (a stride longer than the
kernel's reach skips it) need not be read; a tap no output reads the input with (a
padding wider than the kernel) need not be read either. ``pairs`` is exact in O(log)
arithmetic, whatever the sizes (a hand-made results file may give any); ``touched``,
``taps`` and ``points`` are exact up to ``_LOOPS`` runs and ``_BYTES`` inputs, lower bounds
past them.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ..conv_spec import output_hw

_LOOPS, _BYTES = 1 << 16, 1 << 24  # (exact counts' loop and memory; lower bounds past them)


class Axis(NamedTuple):
    outputs: int  # Ho
    pairs: int    # (output, tap) pairs that read the input: multiply-adds a direct method does
    touched: int  # inputs some pair reads (<= n)
    taps: int     # taps some output reads the input with (<= k)
    points: int   # circular transform length holding every stride-1 output that reads the input


def floor_sum(count: int, m: int, a: int, b: int) -> int:
    """sum(floor((a i + b) / m) for i in range(count)), for a, b >= 0 and m > 0, in
    O(log) steps (the Euclid-like reduction of AtCoder Library's floor_sum)."""
    total = 0
    while True:
        if a >= m:
            total += count * (count - 1) // 2 * (a // m)
            a %= m
        if b >= m:
            total += count * (b // m)
            b %= m
        top = a * count + b
        if top < m:
            return total
        count, b = divmod(top, m)
        m, a = a, m


def _pairs_up_to(c: int, k: int, outputs: int, s: int, d: int) -> int:
    """#{(i, j): i < outputs, j < k, i s + j d <= c}."""
    full = min(max((c - (outputs - 1) * s) // d + 1, 0), k)  # taps every output counts for
    some = min(max(c // d + 1, 0), k)                        # taps some output counts for
    middle = some - full  # j in [full, some): floor((c - j d) / s) + 1 outputs each
    if middle <= 0:
        return outputs * full
    low = c - (some - 1) * d  # c - j d at j = some - 1 (>= 0), growing by d as j falls
    return outputs * full + floor_sum(middle, s, d, low) + middle


def _run(x: int, step_x: int, count_y: int, step_y: int, n: int, p: int) -> tuple[int, int]:
    """With one index fixed at x (step ``step_x``), the other over range(count_y) (step
    ``step_y``): (the first input read, how many are read, ``step_y`` apart)."""
    first = max(-((x * step_x - p) // step_y), 0)
    last = min((p - x * step_x + n - 1) // step_y, count_y - 1)
    return first * step_y + x * step_x - p, max(last - first + 1, 0)


def _touched(n, k, outputs, s, p, d, pairs) -> int:
    if min(k, outputs) > _LOOPS or n > _BYTES:
        # each input is read by at most k pairs; one tap reads distinct inputs
        return max(-(-pairs // k), _run(k // 2, d, outputs, s, n, p)[1])
    read = bytearray(n)
    fixed, step_x, count_y, step_y = (k, d, outputs, s) if k <= outputs else (outputs, s, k, d)
    for x in range(fixed):
        start, count = _run(x, step_x, count_y, step_y, n, p)
        read[start:start + count * step_y:step_y] = b"\1" * count
    return read.count(1)


def _taps(n, k, outputs, s, p, d, pairs) -> int:
    if k > _LOOPS:
        return -(-pairs // outputs)  # each tap is read by at most every output
    return sum(_run(j, d, outputs, s, n, p)[1] > 0 for j in range(k))


def axis(n: int, k: int, stride: int = 1, padding: int = 0, dilation: int = 1) -> Axis:
    """The counts of one axis (see the module's docstring): n, k, stride, dilation >= 1,
    padding >= 0, the dilated kernel within the padded input."""
    (outputs,) = output_hw((n,), (k,), stride, padding, dilation)
    s, p, d = stride, padding, dilation
    # reading an index <= p + n - 1 (in padded terms), less those reading one <= p - 1
    pairs = _pairs_up_to(p + n - 1, k, outputs, s, d) - _pairs_up_to(p - 1, k, outputs, s, d)
    return Axis(outputs, pairs, _touched(n, k, outputs, s, p, d, pairs),
                _taps(n, k, outputs, s, p, d, pairs), _points(n, k, p, d))


def _points(n: int, k: int, p: int, d: int) -> int:
    """The shortest circular correlation length T (>= n) whose outputs include every
    stride-1 output that reads the input, each right.

    Output i, tap j read index m = i - p + j d; circularly, m mod T. That is right where
    m falls in the input, and where it does not, m mod T must fall on a zero (in [n, T)).
    Where d <= n the taps' windows overlap, so the indices read outside the input are one
    run on each side, and the p zeros on one side can stand for those on both: T = n + p,
    or n + d (k - 1) when the padding is wider than the kernel's reach. Where d > n they
    are runs d apart with gaps that a shorter T can fold onto (n = 1, k = 5, p = 9, d = 4:
    3, where the runs' formula gives 10): tried one T at a time, up to ``_LOOPS`` indices
    and ``_BYTES`` index-lengths; past that n, a lower bound."""
    longest = n + min(p, d * (k - 1))
    if d <= n:
        return longest
    (outputs,) = output_hw((n,), (k,), 1, p, d)
    if outputs * k > _LOOPS or (longest - n) * outputs * k > _BYTES:
        return n
    read = (np.arange(outputs)[:, None] - p) + d * np.arange(k)[None, :]
    inside = (read >= 0) & (read < n)
    wanted = inside.any(axis=1)  # (the outputs that read the input)
    outside = read[wanted][~inside[wanted]]
    for length in range(n, longest):
        if (outside % length >= n).all():
            return length
    return longest
