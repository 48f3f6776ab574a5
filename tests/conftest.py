"""Shared test settings."""
import random
import zlib

import numpy as np
import pytest
import torch

from scipy_layers import _workspace


@pytest.fixture(autouse=True)
def pool_every_array(monkeypatch):
    """The workspace pools every array, however small: the tests' inputs are small, and
    reuse (a buffer handed back while still in use, one read before it is written) is
    where pooling can go wrong. tests/test_workspace.py checks the real threshold."""
    monkeypatch.setattr(_workspace, "POOLED_MIN_BYTES", 0)


@pytest.fixture(autouse=True)
def seed_from_the_test_name(request):
    """torch's, numpy's and random's global generators seeded from the test's id: a test
    drawing from them gets the same inputs in one process or in any pytest-xdist worker,
    whatever ran before it, so a failure reproduces with that test alone."""
    seed = zlib.crc32(request.node.nodeid.encode())
    torch.manual_seed(seed)
    np.random.seed(seed)
    random.seed(seed)
