"""How far an implementation's output and gradients are from the native twin's, and
the accuracy contract every conv method keeps.

One definition shared by the tests, the benchmark suite's ``track_`` figures and the
reports' pass/fail verdicts.

**The accuracy contract.** Every conv method (direct, shift, fft, im2col, tap) returns,
for each output and gradient entry y that is finite in a direct sum,

    |y - y_ref| <= c * eps(dtype) * M,    M = sum over the entry's terms of |a_i b_i|,

where y_ref is the exact sum (computed in long double by ``conv_reference``), eps is
the dtype's machine epsilon (2**-23, 2**-52) and c the number of terms the entry sums
(forward: C_in/groups * kH * kW, plus 1 with a bias; grad_input: C_out/groups * kH * kW;
grad_weight and grad_bias: N * Ho * Wo). Why this c: any order of summing n products
(sequential, pairwise, blocked BLAS, FMA or not) obeys |error| <= gamma_n * M with
gamma_n = n u / (1 - n u) < n * eps (Higham, Accuracy and Stability of Numerical
Algorithms, 2nd ed., eq. 3.5 and Sec. 3.1), so the direct methods keep it by
construction. The FFT method, whose error scales with the whole signal instead of the
window, keeps it by certifying each entry at run time and summing directly where it
cannot (``scipy_layers._fft_conv``). A window of zeros (M = 0) must come out exact.
Native torch is not bound by this contract (oneDNN may use other algorithms).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ._nchw_args import check_conv2d_arguments
from ._tap_kernels import tap_forward, tap_grad_input, tap_grad_weight
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
    """``max_abs`` and ``max_rel`` over entries finite on both sides; both are +inf when
    the sides disagree on where NaN, +inf or -inf are (``nonfinite_mismatches`` entries)."""

    max_abs: float
    max_rel: float
    nonfinite_mismatches: int = 0


def _nonfinite_class(t: torch.Tensor) -> torch.Tensor:
    """0 finite, 1 NaN, 2 +inf, 3 -inf."""
    return (t.isnan() * 1 + (t == float("inf")) * 2 + (t == -float("inf")) * 3)


def max_errors(actual: torch.Tensor, expected: torch.Tensor) -> Errors:
    """Max absolute error, and that divided by the largest magnitude in ``expected``,
    over the entries finite on both sides, after checking that NaN and +-inf sit at
    the same places (a mismatch is an infinite error: never a pass)."""
    if actual.shape != expected.shape:
        raise ValueError(f"shapes differ: {tuple(actual.shape)} vs {tuple(expected.shape)}")
    actual, expected = actual.detach().double().cpu(), expected.detach().double().cpu()
    mismatches = int((_nonfinite_class(actual) != _nonfinite_class(expected)).sum())
    if mismatches:
        return Errors(float("inf"), float("inf"), mismatches)
    finite = expected.isfinite()
    if not finite.any():
        return Errors(0.0, 0.0)
    actual, expected = actual[finite], expected[finite]
    max_abs = (actual - expected).abs().max().item()
    scale = expected.abs().max().item()
    return Errors(max_abs, max_abs / scale if scale > 0 else (0.0 if max_abs == 0 else float("inf")))


def _run(fn, inputs, grad_output_seed, prepare):
    leaves = [t.detach().clone().requires_grad_(True) for t in inputs]
    output = fn(*prepare(leaves))
    gen = torch.Generator().manual_seed(grad_output_seed)
    grad_output = torch.randn(output.shape, generator=gen, dtype=output.dtype).to(output.device)
    output.backward(grad_output)
    return output, [leaf.grad for leaf in leaves]


def compare_with_native(layer: Layer, implementation: str, inputs, grad_output_seed=1,
                        prepare=lambda leaves: leaves):
    """Errors of ``implementation`` against the native twin on the same inputs and the
    same random output gradient: a dict with keys ``output`` and ``grad_<input name>``.
    ``prepare`` maps the leaf tensors to what each side is called with (e.g. strided
    views of them), identically for both sides."""
    output, grads = _run(layer.implementations[implementation].fn, inputs, grad_output_seed,
                         prepare)
    ref_output, ref_grads = _run(layer.implementations[NATIVE].fn, inputs, grad_output_seed,
                                 prepare)
    errors = {"output": max_errors(output, ref_output)}
    for name, grad, ref_grad in zip(layer.input_names, grads, ref_grads):
        errors[f"grad_{name}"] = max_errors(grad, ref_grad)
    return errors


# --- the accuracy contract ----------------------------------------------------------------

EPS = {torch.float32: 2.0 ** -23, torch.float64: 2.0 ** -52}


@dataclass(frozen=True)
class Reference:
    """The exact value of one output or gradient (long double), the sum of the absolute
    values of its terms (M) and how many terms each entry sums (c)."""

    value: np.ndarray
    magnitude: np.ndarray
    terms: int


def conv_reference(input, weight, bias, grad_output, stride=1, padding=0, dilation=1,
                   groups=1) -> dict[str, Reference]:
    """Direct sums over real pixels in long double, for ``F.conv2d`` semantics (4-D
    input) or the single-channel layer (2-D input and filter, bias of one value)."""
    single = input.dim() == 2
    x, w = (input[None, None], weight[None, None]) if single else (input, weight)
    b = None if bias is None else bias.reshape(-1)
    g = grad_output[None, None] if single else grad_output
    geometry = check_conv2d_arguments(x.detach(), w.detach(), None if b is None else b.detach(),
                                      stride, padding, dilation, groups)

    def ld(t):
        return t.detach().cpu().double().numpy().astype(np.longdouble)

    xl, wl, gl = ld(x), ld(w), ld(g)
    c_group, k_h, k_w = w.shape[1:]
    n, out_pixels = x.shape[0], geometry.out_hw[0] * geometry.out_hw[1]
    bias_l = None if b is None else ld(b)
    refs = {
        "output": Reference(tap_forward(xl, wl, bias_l, geometry),
                            tap_forward(abs(xl), abs(wl), None if b is None else abs(bias_l),
                                        geometry),
                            c_group * k_h * k_w + (b is not None)),
        "grad_input": Reference(tap_grad_input(gl, wl, x.shape, geometry),
                                tap_grad_input(abs(gl), abs(wl), x.shape, geometry),
                                (w.shape[0] // groups) * k_h * k_w),
        "grad_weight": Reference(tap_grad_weight(xl, gl, w.shape, geometry),
                                 tap_grad_weight(abs(xl), abs(gl), w.shape, geometry),
                                 n * out_pixels),
    }
    if b is not None:
        refs["grad_bias"] = Reference(gl.sum(axis=(0, 2, 3)), abs(gl).sum(axis=(0, 2, 3)),
                                      n * out_pixels)
    if single:
        refs = {k: Reference(r.value.reshape(r.value.shape[-2:]) if k != "grad_bias" else r.value,
                             r.magnitude.reshape(r.magnitude.shape[-2:]) if k != "grad_bias"
                             else r.magnitude, r.terms) for k, r in refs.items()}
    return refs


def contract_ratio(actual: torch.Tensor, reference: Reference, dtype: torch.dtype) -> float:
    """max |actual - exact| / (c * eps * M) over the entries whose exact value is finite:
    <= 1 keeps the contract. An entry with M = 0 must be exact (inf otherwise)."""
    value = np.asarray(reference.value).reshape(actual.shape)
    magnitude = np.asarray(reference.magnitude).reshape(actual.shape)
    got = actual.detach().cpu().double().numpy().astype(np.longdouble)
    finite = np.isfinite(value) & np.isfinite(magnitude)
    if not finite.any():
        return 0.0
    error = np.abs(got[finite] - value[finite])
    allowed = reference.terms * EPS[dtype] * magnitude[finite]
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = np.where(allowed > 0, error / allowed, np.where(error > 0, np.inf, 0.0))
    return float(np.max(ratios))
