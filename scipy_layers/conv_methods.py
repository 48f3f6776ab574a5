"""numpy/scipy kernels for a single-channel valid cross-correlation and its gradients.

Every method computes, for x (H, W) and w (kH, kW) with Ho = H - kH + 1, Wo = W - kW + 1:

    forward      y[r, c]  = sum_ij x[r + i, c + j] w[i, j]          (Ho, Wo)
    grad_input   gx[a, b] = sum_rc g[r, c] w[a - r, b - c]           (H, W)  (full convolution)
    grad_filter  gw[i, j] = sum_rc x[r + i, c + j] g[r, c]           (kH, kW)

``forward`` returns (y, state); ``backward`` takes that state back, so a method can
reuse work from forward (the FFT method keeps the input and filter spectra).
Results come back in the input dtype (float32 or float64).

Every method obeys the accuracy contract of ``agreement.py`` and puts NaN and inf where
native torch does: a pass whose operands are not all finite runs the direct "tap"
kernels (_tap_kernels, sums over real pixels only), and the FFT method certifies its
result pixel by pixel (_fft_conv), falling back to "shift" where it cannot.
"""
from __future__ import annotations

from typing import Callable, NamedTuple

from . import _fft_conv, _signal_kernel
from ._finite import all_finite
from ._nchw_args import ConvGeometry
from ._shift_kernels import _shift_backward, _shift_forward
from ._tap_kernels import tap_forward, tap_grad_input, tap_grad_weight


class ConvMethod(NamedTuple):
    """``forward(x, w) -> (y, state)``;
    ``backward(g, x, w, state, need_input, need_filter) -> (grad_x or None, grad_w or None)``."""

    forward: Callable
    backward: Callable


def _backward_from(grad_input, grad_filter):
    """A backward made of two independent gradient kernels."""

    def backward(g, x, w, state, need_input, need_filter):
        return (grad_input(g, x.shape, w) if need_input else None,
                grad_filter(x, g, w.shape) if need_filter else None)

    return backward


# --- "direct": scipy.signal.correlate2d / convolve2d, the tutorial's calls -------------
# Lowest fixed cost, so it wins on tiny inputs; its cost grows as output pixels x taps
# (forward, grad_filter) and H W x the smaller of g and w (grad_input).
# Called at their C kernel where scipy has it (_signal_kernel); x is at least as large
# as w and g in both dims (_conv_args.check_conv_arguments), so correlate2d would swap nothing.

def _direct_forward(x, w):
    return _signal_kernel.correlate_valid(x, w), None


def _direct_grad_input(g, x_shape, w):
    # A full convolution is symmetric in its operands, and scipy's kernel loops over the
    # whole second one for every output pixel: the smaller goes second. Measured (README's
    # VM, one thread, in a loop): 16x16 k15 float64 96 -> 11 us, 32x32 k31 float32 799 ->
    # 18 us, 127x127 k100 float32 184 -> 34 ms; the same products, summed in another order.
    if w.size > g.size:
        return _signal_kernel.convolve_full(w, g)
    return _signal_kernel.convolve_full(g, w)


def _direct_grad_filter(x, g, w_shape):
    return _signal_kernel.correlate_valid(x, g)


# --- "shift": shift-and-add along the flattened image, in three tiers by size: its
# kernels, and why, are in _shift_kernels. Its state is None.

# --- "fft": the certified FFT convolution of _fft_conv, as one image and one channel ---
# Passes its certificate rejects (high dynamic range, zero regions) run "shift".

_NO_PADDING = (0, 0, 0, 0)


def _fft_forward(x, w):
    out_hw = (x.shape[0] - w.shape[0] + 1, x.shape[1] - w.shape[1] + 1)
    # (tap_fixups: shift's per-tap passes cost what the tap kernels' do at c = 1, so
    # fix-ups may take TAP_FIXUP_SHARE of the pass: 64x64 k31 float64's 33 border pixels
    # of grad_input, 19 allowed before, ran all of grad_input by shift after its FFTs)
    y, spectra = _fft_conv.fft_forward(x[None, None], w[None, None], _NO_PADDING, out_hw,
                                       tap_fixups=True)
    if y is None:
        return _shift_forward(x, w)[0], spectra
    return y[0, 0], spectra


def _fft_backward(g, x, w, spectra, need_input, need_filter):
    grad_x, grad_w, certified = _fft_conv.fft_backward(g[None, None], spectra, need_input,
                                                       need_filter)
    grad_x = None if grad_x is None else grad_x[0, 0]
    grad_w = None if grad_w is None else grad_w[0, 0]
    if (need_input and not certified[0]) or (need_filter and not certified[1]):
        shift_x, shift_w = _shift_backward(g, x, w, None, need_input and not certified[0],
                                           need_filter and not certified[1])
        grad_x = shift_x if shift_x is not None else grad_x
        grad_w = shift_w if shift_w is not None else grad_w
    return grad_x, grad_w


# --- non-finite operands: the tap kernels, on one image and one channel -----------------

def _geometry(x_shape, w_shape) -> ConvGeometry:
    return ConvGeometry((1, 1), _NO_PADDING, (1, 1), 1,
                        (x_shape[0] - w_shape[0] + 1, x_shape[1] - w_shape[1] + 1))


def _tap_pass_forward(x, w):
    return tap_forward(x[None, None], w[None, None], None, _geometry(x.shape, w.shape))[0, 0]


def _tap_pass_backward(g, x, w, need_input, need_filter):
    geometry = _geometry(x.shape, w.shape)
    g4 = g[None, None]
    return (tap_grad_input(g4, w[None, None], (1, 1) + x.shape, geometry)[0, 0]
            if need_input else None,
            tap_grad_weight(x[None, None], g4, (1, 1) + w.shape, geometry)[0, 0]
            if need_filter else None)


_TAP = "tap"  # state of a forward that ran the tap kernels


def _routed(method: ConvMethod, blas: bool = True) -> ConvMethod:
    """``method`` for finite operands, the tap kernels for any pass that has a NaN or inf;
    ``blas``: whether the finiteness checks may use BLAS (``all_finite``): not for
    kernels that run none."""

    def forward(x, w):
        if not all_finite(x, w, blas=blas):
            return _tap_pass_forward(x, w), _TAP
        return method.forward(x, w)

    def backward(g, x, w, state, need_input, need_filter):
        if (isinstance(state, str) and state == _TAP) or not all_finite(g, blas=blas):
            return _tap_pass_backward(g, x, w, need_input, need_filter)
        return method.backward(g, x, w, state, need_input, need_filter)

    return ConvMethod(forward, backward)


METHODS: dict[str, ConvMethod] = {
    "direct": _routed(ConvMethod(_direct_forward,
                                 _backward_from(_direct_grad_input, _direct_grad_filter)),
                      blas=False),  # (scipy.signal's own loops)
    "shift": _routed(ConvMethod(_shift_forward, _shift_backward)),
    "fft": _routed(ConvMethod(_fft_forward, _fft_backward)),
}
