"""How far an implementation's output and gradients are from the native twin's.

One definition shared by the tests, the benchmark suite's ``track_`` figures and the
reports' pass/fail verdicts.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .registry import NATIVE, Layer

# Relative error = max|a - b| / max|b| (norm-wise, so entries near zero do not blow up).
# float64: both sides are exact algorithms in double precision; 1e-10 leaves room for
# the different summation orders of FFT vs direct sums (seen: ~1e-15).
# float32: eps is 1.2e-7; a k x k correlation sums k^2 products and an N-point FFT
# ~log2(N) rounding steps, so the worst cases on the grid (k = 31, N = 2048) stay near
# 1e-5; 1e-4 keeps a 10x margin while still catching any real gradient bug (>= 1e-2).
TOLERANCE = {torch.float64: 1e-10, torch.float32: 1e-4}


@dataclass(frozen=True)
class Errors:
    max_abs: float
    max_rel: float


def max_errors(actual: torch.Tensor, expected: torch.Tensor) -> Errors:
    """Max absolute error, and that divided by the largest magnitude in ``expected``."""
    if actual.shape != expected.shape:
        raise ValueError(f"shapes differ: {tuple(actual.shape)} vs {tuple(expected.shape)}")
    actual, expected = actual.detach().double().cpu(), expected.detach().double().cpu()
    max_abs = (actual - expected).abs().max().item()
    scale = expected.abs().max().item()
    return Errors(max_abs, max_abs / scale if scale > 0 else (0.0 if max_abs == 0 else float("inf")))


def _run(fn, inputs, grad_output_seed):
    leaves = [t.detach().clone().requires_grad_(True) for t in inputs]
    output = fn(*leaves)
    gen = torch.Generator().manual_seed(grad_output_seed)
    grad_output = torch.randn(output.shape, generator=gen, dtype=output.dtype).to(output.device)
    output.backward(grad_output)
    return output, [leaf.grad for leaf in leaves]


def compare_with_native(layer: Layer, implementation: str, inputs, grad_output_seed=1):
    """Errors of ``implementation`` against the native twin on the same inputs and the
    same random output gradient: a dict with keys ``output`` and ``grad_<input name>``."""
    output, grads = _run(layer.implementations[implementation].fn, inputs, grad_output_seed)
    ref_output, ref_grads = _run(layer.implementations[NATIVE].fn, inputs, grad_output_seed)
    errors = {"output": max_errors(output, ref_output)}
    for name, grad, ref_grad in zip(layer.input_names, grads, ref_grads):
        errors[f"grad_{name}"] = max_errors(grad, ref_grad)
    return errors
