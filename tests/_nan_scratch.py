"""Scratch buffers that start as NaN in every module of the package that takes them, so
that a result reading an element its kernel never wrote is NaN. Each module binds
_workspace.scratch by name and a patch reaches only the module patched: a list written
by hand missed _depthwise_wide's buffers (thirtieth session)."""
from __future__ import annotations

import sys

import numpy as np

from scipy_layers import _workspace


def nan_scratch(shape, dtype):
    return np.full(shape, np.nan, dtype=dtype)


def modules_binding_scratch(*expected) -> list:
    """Every loaded module of the package whose ``scratch`` is _workspace.scratch; the
    ``expected`` modules must be among them (a discovery that found none tests nothing)."""
    modules = [module for name, module in sorted(sys.modules.items())
               if name.startswith("scipy_layers.")
               and getattr(module, "scratch", None) is _workspace.scratch]
    missing = [module.__name__ for module in expected if module not in modules]
    assert not missing, f"modules expected to take scratch buffers do not: {missing}"
    return modules


def fill_scratch_with_nan(monkeypatch, *expected, shapes: list | None = None) -> None:
    """Patch every module of modules_binding_scratch(*expected) to take NaN scratch;
    ``shapes``, if given, records the shape of each buffer taken."""
    def scratch(shape, dtype):
        if shapes is not None:
            shapes.append(shape)
        return nan_scratch(shape, dtype)

    for module in modules_binding_scratch(*expected):
        monkeypatch.setattr(module, "scratch", scratch)
