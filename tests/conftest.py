"""Shared test settings."""
import pytest

from scipy_layers import _workspace


@pytest.fixture(autouse=True)
def pool_every_array(monkeypatch):
    """The workspace pools every array, however small: the tests' inputs are small, and
    reuse (a buffer handed back while still in use, one read before it is written) is
    where pooling can go wrong. tests/test_workspace.py checks the real threshold."""
    monkeypatch.setattr(_workspace, "POOLED_MIN_BYTES", 0)
