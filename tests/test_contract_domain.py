"""The accuracy contract's domain (scipy_layers/agreement.py): entries with (1 + c eps) M
below the dtype's largest value, where no rounded product or partial sum can overflow.
A hostile pass (2026-12-04) found a float32 depthwise output of M = 0.99999 of the
largest value that comes out inf (its products round up past it); the old domain, M
below the largest value, counted that entry, and contract_ratio reported a breach."""
from __future__ import annotations

import numpy as np
import torch

import scipy_layers
from scipy_layers.agreement import EPS, Reference, contract_ratio, conv_reference

LARGEST32 = float(np.finfo(np.float32).max)


def _edge_case():
    """The hostile pass's entry, cut down to its window: one channel of a grouped conv
    whose four nonzero products (4 and -5 times weights near the largest float32 / 9)
    add up to the largest float32 value."""
    x = torch.zeros(1, 2, 3, 3)
    x[0, 0] = torch.tensor([[4.0, -5.0, 0.0], [4.0, -5.0, 0.0], [0.0, 0.0, 0.0]])
    big = float.fromhex("0x1.c71c7p123")
    w = torch.zeros(2, 1, 3, 3)
    w[0, 0] = torch.tensor([[big, -big, float.fromhex("0x1.775c06p122")],
                            [big, -big, big],
                            [-float.fromhex("0x1.281ccp123"), float.fromhex("0x1.48b09p123"),
                             float.fromhex("0x1.c0fe28p123")]])
    return x, w


def test_an_entry_at_the_edge_can_overflow_and_lies_outside_the_domain():
    x, w = _edge_case()
    y = scipy_layers.conv2d(x, w, None, groups=2)
    reference = conv_reference(x, w, None, torch.zeros_like(y), groups=2)["output"]
    exact, magnitude = reference.value.reshape(-1)[0], reference.magnitude.reshape(-1)[0]
    # the facts behind the domain: a finite exact value whose M does not exceed the
    # largest float32, computed as inf (the rounded products add up past it)
    assert np.isfinite(exact) and magnitude <= LARGEST32
    assert torch.isinf(y.reshape(-1)[0])
    assert magnitude * (1 + reference.terms * EPS[torch.float32]) > LARGEST32
    assert contract_ratio(y, reference, torch.float32) <= 1


def test_the_domain_still_holds_entries_away_from_the_edge():
    """An inf (or any error) where (1 + c eps) M fits is still a breach."""
    magnitude = np.array([LARGEST32 / 2, LARGEST32 * (1 - 2.0 ** -18)], dtype=np.longdouble)
    reference = Reference(value=magnitude.copy(), magnitude=magnitude, terms=9)
    for entry in range(2):  # (9 terms: the margin is 9 * 2**-23 ~ 1.1e-6 of the largest)
        actual = torch.tensor([float(v) for v in magnitude])
        actual[entry] = float("inf")
        assert contract_ratio(actual, reference, torch.float32) == float("inf")
    actual = torch.tensor([float(v) for v in magnitude])
    assert contract_ratio(actual, reference, torch.float32) <= 1
