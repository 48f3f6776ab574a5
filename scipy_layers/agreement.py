"""How far an implementation's output and gradients are from the native twin's, and
the accuracy contract every conv method keeps.

One definition shared by the tests, the benchmark suite's ``track_`` figures and the
reports' pass/fail verdicts.

**The accuracy contract.** Every conv method (direct, shift, fft, im2col, tap) returns
each output and gradient entry y with

    |y - y_ref| <= c * (eps(dtype) * M + eta(dtype)),   M = sum of the entry's |a_i b_i|,

for every entry with (1 + c * eps) * M below the dtype's largest value (so no rounded
product or partial sum can overflow: each is at most (1 + gamma_c) M in magnitude, and
gamma_c < c * eps; entries whose M is within that margin of the largest value can round
to inf, e.g. a float32 depthwise sum at M = 0.99999 of it, found by a hostile pass), where y_ref is the exact sum (long double, ``conv_reference``), eps is
the dtype's machine epsilon (2**-23, 2**-52), eta its smallest subnormal (2**-149,
2**-1074: a product that underflows is off by at most half of it) and c the number of
terms the entry sums
(forward: C_in/groups * kH * kW, plus 1 with a bias; grad_input: C_out/groups * kH * kW;
grad_weight and grad_bias: N * Ho * Wo). Why this c: any order of summing n products
(sequential, pairwise, blocked BLAS, FMA or not) obeys |error| <= gamma_n * M with
gamma_n = n u / (1 - n u) < n * eps (Higham, Accuracy and Stability of Numerical
Algorithms, 2nd ed., eq. 3.5 and Sec. 3.1), so the direct methods keep it by
construction. The FFT method, whose error scales with the whole signal instead of the
window, keeps it by certifying each entry at run time and summing directly where it
cannot (``scipy_layers._fft_conv``): with a rigorous error bound for float32 (computed
in float64), with a statistical error model for float64 (a model, not a proof; the
adversarial inputs of tests/test_accuracy.py check it). A window of zeros (M = 0)
must come out exact (to within c * eta). Native torch is not bound by this contract (oneDNN may use other algorithms).
"""
from __future__ import annotations

import contextlib
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


@contextlib.contextmanager
def tf32_off():
    """cuDNN/cuBLAS may run float32 as TF32 (~3e-4 relative error, beyond TOLERANCE): off
    while native serves as the oracle on a GPU."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


@dataclass(frozen=True)
class Errors:
    """``max_abs`` and ``max_rel`` over entries finite on both sides; both are +inf when
    the sides disagree on which entries are finite (``nonfinite_mismatches`` entries),
    0.0 when no entry is finite on both sides and none disagrees (the two agree).
    ``finite_max_abs`` / ``finite_max_rel`` are the same figures without that +inf (what
    the benchmark suite records beside the mismatch count: asv cannot store inf), and
    NaN where no entry is finite on both sides: nothing was compared, which is not an
    error of 0 (asv stores NaN as "skipped"; the mismatch count says whether the sides
    agree on where the non-finite entries are)."""

    max_abs: float
    max_rel: float
    nonfinite_mismatches: int = 0
    finite_max_abs: float = float("nan")
    finite_max_rel: float = float("nan")


def max_errors(actual: torch.Tensor, expected: torch.Tensor) -> Errors:
    """Max absolute error, and that divided by the largest magnitude in ``expected``,
    over the entries finite on both sides, after checking that the non-finite entries
    (NaN, +-inf) sit at the same places: a mismatch is an infinite error, never a pass.
    (Which of NaN, inf, -inf an FFT turns an inf into depends on its arithmetic, so
    only where, not which, is compared.)"""
    if actual.shape != expected.shape:
        raise ValueError(f"shapes differ: {tuple(actual.shape)} vs {tuple(expected.shape)}")
    actual, expected = actual.detach().double().cpu(), expected.detach().double().cpu()
    mismatches = int((actual.isfinite() != expected.isfinite()).sum())
    both = actual.isfinite() & expected.isfinite()
    if not both.any():  # nothing to compare: 0.0 as a verdict, NaN as a figure
        inf_or_zero = float("inf") if mismatches else 0.0
        return Errors(inf_or_zero, inf_or_zero, mismatches, float("nan"), float("nan"))
    ours, theirs = actual[both], expected[both]
    max_abs = (ours - theirs).abs().max().item()
    scale = theirs.abs().max().item()
    max_rel = max_abs / scale if scale > 0 else (0.0 if max_abs == 0 else float("inf"))
    if mismatches:
        return Errors(float("inf"), float("inf"), mismatches, max_abs, max_rel)
    return Errors(max_abs, max_rel, 0, max_abs, max_rel)


def _run(fn, inputs, grad_output_seed, prepare, kwargs, change_grad_output):
    leaves = [None if t is None else t.detach().clone().requires_grad_(True) for t in inputs]
    output = fn(*prepare(leaves), **kwargs)
    gen = torch.Generator().manual_seed(grad_output_seed)
    grad_output = torch.randn(output.shape, generator=gen, dtype=output.dtype).to(output.device)
    output.backward(change_grad_output(grad_output))
    return output, [None if leaf is None else leaf.grad for leaf in leaves]


def _unchanged(value):
    return value


def compare_with_native(layer: Layer, implementation: str, inputs, grad_output_seed=1,
                        prepare=_unchanged, kwargs=None, change_grad_output=_unchanged):
    """Errors of ``implementation`` against the native twin on the same inputs and the
    same random output gradient: a dict with keys ``output`` and ``grad_<input name>``
    (inputs that are None get no entry). ``prepare`` maps the leaf tensors to what each
    side is called with (e.g. strided views of them; each gradient is compared over the
    leaf entries those views read, each once), ``kwargs`` are passed to both, and
    ``change_grad_output`` may alter the output gradient (e.g. plant a NaN): all
    identically for both sides."""
    kwargs = kwargs or {}
    output, grads = _run(layer.implementations[implementation].fn, inputs, grad_output_seed,
                         prepare, kwargs, change_grad_output)
    ref_output, ref_grads = _run(layer.implementations[NATIVE].fn, inputs, grad_output_seed,
                                 prepare, kwargs, change_grad_output)
    errors = {"output": max_errors(output, ref_output)}
    # Each gradient over the leaf entries ``prepare``'s views read, each once: the slots
    # outside a view get 0 from both sides, and counted as compared they made a gradient
    # with no entry finite on both sides in the view read 0.0 instead of NaN (hostile
    # pass 142); an expanded view reads an entry many times, but its gradient is one.
    for name, leaf, grad, ref_grad, read in zip(layer.input_names, inputs, grads, ref_grads,
                                                _entries_read(inputs, prepare)):
        if leaf is not None:
            errors[f"grad_{name}"] = max_errors(_zero_if_none(grad, leaf)[read],
                                                _zero_if_none(ref_grad, leaf)[read])
    return errors


def _entries_read(inputs, prepare):
    """Per input (None kept), a bool mask of its entries that ``prepare``'s view reads:
    where the gradient of the views' sum is not zero (every view is linear)."""
    probes = [None if t is None else torch.zeros_like(t).requires_grad_() for t in inputs]
    used = [p for p in probes if p is not None]
    if not used:
        return probes
    with torch.enable_grad():
        read = sum(v.sum() for v in prepare(probes) if v is not None)
        unread = sum(p.sum() * 0 for p in used)  # (a probe no view reads: a zero gradient)
        counts = iter(torch.autograd.grad(read + unread, used))
    return [None if probe is None else next(counts) != 0 for probe in probes]


# compare_with_native compares gradients over the leaf entries ``prepare``'s views read
# (the benchmark suite reads this: older commits compared them over the whole leaf)
GRADIENTS_OVER_ENTRIES_READ = True


def _zero_if_none(grad, leaf):
    """autograd leaves .grad None where no path reached the leaf: that is a zero gradient."""
    return torch.zeros_like(leaf) if grad is None else grad


# --- the accuracy contract ----------------------------------------------------------------

EPS = {torch.float32: 2.0 ** -23, torch.float64: 2.0 ** -52}
ETA = {torch.float32: 2.0 ** -149, torch.float64: 2.0 ** -1074}  # smallest subnormals


@dataclass(frozen=True)
class Reference:
    """The exact value of one output or gradient (long double), the sum of the absolute
    values of its terms (M) and how many terms each entry sums (c)."""

    value: np.ndarray
    magnitude: np.ndarray
    terms: int


def conv_reference(input, weight, bias, grad_output, stride=1, padding=0, dilation=1,
                   groups=1) -> dict[str, Reference]:
    """Direct sums over real pixels in long double, for ``F.conv2d`` semantics (4-D or
    unbatched 3-D input) or the single-channel layer (2-D input and filter, bias of one
    value). Each Reference has the shape of the quantity it stands for."""
    single = input.dim() == 2
    lead = 2 if single else 4 - input.dim()  # dims added to reach (N, C, H, W)
    x = input.reshape((1,) * lead + tuple(input.shape))
    w = weight.reshape((1, 1) + tuple(weight.shape)) if single else weight
    g = grad_output.reshape((1,) * lead + tuple(grad_output.shape))
    b = None if bias is None else bias.reshape(-1)
    geometry = check_conv2d_arguments(x.detach(), w.detach(), None if b is None else b.detach(),
                                      stride, padding, dilation, groups)

    def ld(t):
        return t.detach().cpu().double().numpy().astype(np.longdouble)

    xl, wl, gl = ld(x), ld(w), ld(g)
    c_group, k_h, k_w = w.shape[1:]
    n, out_pixels = x.shape[0], geometry.out_hw[0] * geometry.out_hw[1]
    bias_l = None if b is None else ld(b)
    empty = min(xl.size, wl.size, gl.size) == 0

    def taps(kernel, shape, *args):
        # (the tap kernels take non-empty operands; a sum over an empty batch is 0)
        return np.zeros(shape, np.longdouble) if empty else kernel(*args)

    abs_bias = None if b is None else abs(bias_l)
    refs = {
        "output": (taps(tap_forward, g.shape, xl, wl, bias_l, geometry),
                   taps(tap_forward, g.shape, abs(xl), abs(wl), abs_bias, geometry),
                   c_group * k_h * k_w + (b is not None), grad_output.shape),
        "grad_input": (taps(tap_grad_input, x.shape, gl, wl, x.shape, geometry),
                       taps(tap_grad_input, x.shape, abs(gl), abs(wl), x.shape, geometry),
                       (w.shape[0] // groups) * k_h * k_w, input.shape),
        "grad_weight": (taps(tap_grad_weight, w.shape, xl, gl, w.shape, geometry),
                        taps(tap_grad_weight, w.shape, abs(xl), abs(gl), w.shape, geometry),
                        n * out_pixels, weight.shape),
    }
    if b is not None:
        refs["grad_bias"] = (gl.sum(axis=(0, 2, 3)), abs(gl).sum(axis=(0, 2, 3)),
                             n * out_pixels, bias.shape)
    return {name: Reference(value.reshape(shape), magnitude.reshape(shape), terms)
            for name, (value, magnitude, terms, shape) in refs.items()}


def contract_ratio(actual: torch.Tensor, reference: Reference, dtype: torch.dtype) -> float:
    """max |actual - exact| / (c * (eps * M + eta)) over the entries whose terms and
    partial sums cannot overflow the dtype ((1 + c * eps) * M below its largest value;
    beyond it native can overflow too): <= 1 keeps the contract. An entry with M = 0
    must be exact to within c * eta."""
    value = np.asarray(reference.value).reshape(actual.shape)
    magnitude = np.asarray(reference.magnitude).reshape(actual.shape)
    got = actual.detach().cpu().double().numpy().astype(np.longdouble)
    largest = np.longdouble(torch.finfo(dtype).max)
    finite = np.isfinite(value) & (magnitude * (1 + reference.terms * EPS[dtype]) <= largest)
    if not finite.any():
        return 0.0
    error = np.abs(got[finite] - value[finite])
    allowed = reference.terms * (EPS[dtype] * magnitude[finite] + ETA[dtype])
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = np.where(allowed > 0, error / allowed, np.where(error > 0, np.inf, 0.0))
    return float(np.max(ratios))
