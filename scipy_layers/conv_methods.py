"""numpy/scipy kernels for a single-channel valid cross-correlation and its gradients.

Every method computes, for x (H, W) and w (kH, kW) with Ho = H - kH + 1, Wo = W - kW + 1:

    forward      y[r, c]  = sum_ij x[r + i, c + j] w[i, j]          (Ho, Wo)
    grad_input   gx[a, b] = sum_rc g[r, c] w[a - r, b - c]           (H, W)  (full convolution)
    grad_filter  gw[i, j] = sum_rc x[r + i, c + j] g[r, c]           (kH, kW)

``forward`` returns (y, state); ``backward`` takes that state back, so a method can
reuse work from forward (the FFT method keeps the input and filter spectra).
Arrays stay in the input dtype (float32 or float64) throughout.
"""
from __future__ import annotations

from typing import Callable, NamedTuple

import numpy as np
import scipy.fft
from scipy import signal


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
# Lowest fixed cost, so it wins on tiny inputs; its cost grows as N^2 k^2 per call.

def _direct_forward(x, w):
    return signal.correlate2d(x, w, mode="valid"), None


def _direct_grad_input(g, x_shape, w):
    return signal.convolve2d(g, w, mode="full")


def _direct_grad_filter(x, g, w_shape):
    return signal.correlate2d(x, g, mode="valid")


# --- "shift": shift-and-add over shifted slices -------------------------------------
# Flat-index trick: with x flattened row-major, the window x[i:i+Ho, j:j+Wo] is the
# contiguous run x_flat[i*W + j : i*W + j + L] (L = (Ho-1)*W + Wo) read as Ho rows of
# width W whose last W - Wo columns are junk. So every tap is a 1-D operation on
# contiguous memory, with g zero-padded to width W so the junk columns contribute nothing.
# Two tiers, by size, measured on 2 cores (numpy's ~1 us per call dominates small inputs,
# memory traffic large ones):
# - small (L <= SHIFT_ROWS_MAX_LENGTH): one np.correlate / np.convolve per kernel row
#   (kH calls, each a tight C loop).
# - large: one multiply-add per tap over the whole run, which streams memory faster
#   (forward at 64^2, k=3: 12 vs 14 us; at 256^2: 142 vs 67 us).
# grad_filter is one np.correlate of x with g per kernel row: kW dots of length L each.
# (Laying the whole filter out flat for a single call per pass was tried: slower at k=3.)

SHIFT_ROWS_MAX_LENGTH = 128 * 128


def _flat(x):
    return np.ascontiguousarray(x).reshape(-1)


def _padded_flat_grad(g, width):
    """g (Ho, Wo) zero-padded to width W, flattened and cut to the L used by the taps."""
    out_height, out_width = g.shape
    padded = np.zeros((out_height, width), dtype=g.dtype)
    padded[:, :out_width] = g
    return padded.reshape(-1)[:(out_height - 1) * width + out_width]


def _shift_forward(x, w):
    height, width = x.shape
    k_height, k_width = w.shape
    out_height, out_width = height - k_height + 1, width - k_width + 1
    length = (out_height - 1) * width + out_width
    x_flat = _flat(x)
    out = np.empty(out_height * width, dtype=x.dtype)
    acc = out[:length]
    if length <= SHIFT_ROWS_MAX_LENGTH:
        for i in range(k_height):
            start = i * width
            row = np.correlate(x_flat[start:start + length + k_width - 1], w[i], "valid")
            if i:
                acc += row
            else:
                acc[:] = row
    else:
        taps, scratch = w.tolist(), np.empty(length, dtype=x.dtype)
        np.multiply(x_flat[:length], taps[0][0], out=acc)
        for i in range(k_height):
            for j in range(k_width):
                if i or j:
                    start = i * width + j
                    np.multiply(x_flat[start:start + length], taps[i][j], out=scratch)
                    acc += scratch
    out[length:] = 0
    return out.reshape(out_height, width)[:, :out_width], None


def _shift_backward(g, x, w, state, need_input, need_filter):
    g_flat = _padded_flat_grad(g, x.shape[1])  # shared by both gradients
    return (_shift_grad_input(g_flat, x.shape, w) if need_input else None,
            _shift_grad_filter(x, g_flat, w.shape) if need_filter else None)


def _shift_grad_input(g_flat, x_shape, w):
    height, width = x_shape
    k_height, k_width = w.shape
    length = g_flat.size
    grad = np.zeros(height * width, dtype=g_flat.dtype)
    if length <= SHIFT_ROWS_MAX_LENGTH:
        for i in range(k_height):
            start = i * width
            grad[start:start + length + k_width - 1] += np.convolve(g_flat, w[i], "full")
    else:
        taps, scratch = w.tolist(), np.empty(length, dtype=g_flat.dtype)
        for i in range(k_height):
            for j in range(k_width):
                start = i * width + j
                np.multiply(g_flat, taps[i][j], out=scratch)
                grad[start:start + length] += scratch
    return grad.reshape(height, width)


def _shift_grad_filter(x, g_flat, w_shape):
    width = x.shape[1]
    k_height, k_width = w_shape
    x_flat = _flat(x)
    span = g_flat.size + k_width - 1
    grad = np.empty(w_shape, dtype=g_flat.dtype)
    for i in range(k_height):
        grad[i] = np.correlate(x_flat[i * width:i * width + span], g_flat, "valid")
    return grad


# --- "fft": scipy.fft at next_fast_len ------------------------------------------------
# A valid correlation never reads past the input's edge, so a circular transform of the
# input's own size (rounded up to a fast length) is exact: no N + k - 1 padding. The
# input and filter spectra from forward are reused by both gradients.

def _fft_forward(x, w):
    height, width = x.shape
    k_height, k_width = w.shape
    shape = (scipy.fft.next_fast_len(height, real=True), scipy.fft.next_fast_len(width, real=True))
    x_spec = scipy.fft.rfft2(x, s=shape)
    # The filter is only kH rows: transform those along the width, then pad along height.
    w_spec = scipy.fft.fft(scipy.fft.rfft(w, n=shape[1], axis=1), n=shape[0], axis=0)
    out_height, out_width = height - k_height + 1, width - k_width + 1
    y = _first_rows_of_inverse(x_spec * w_spec.conj(), shape, out_height)[:, :out_width]
    return y, (shape, x_spec, w_spec)


def _first_rows_of_inverse(spectrum, shape, rows):
    """irfft2(spectrum, s=shape)[:rows], skipping the real transforms of unused rows."""
    partial = scipy.fft.ifft(spectrum, axis=0, overwrite_x=True)[:rows]
    return scipy.fft.irfft(partial, n=shape[1], axis=1)


def _fft_backward(g, x, w, state, need_input, need_filter):
    shape, x_spec, w_spec = state
    g_spec = scipy.fft.fft(scipy.fft.rfft(g, n=shape[1], axis=1), n=shape[0], axis=0)
    grad_input = grad_filter = None
    if need_input:
        grad_input = _first_rows_of_inverse(g_spec * w_spec, shape, x.shape[0])[:, :x.shape[1]]
    if need_filter:
        grad_filter = _first_rows_of_inverse(x_spec * g_spec.conj(), shape, w.shape[0])
        grad_filter = grad_filter[:, :w.shape[1]]
    return grad_input, grad_filter


METHODS: dict[str, ConvMethod] = {
    "direct": ConvMethod(_direct_forward, _backward_from(_direct_grad_input, _direct_grad_filter)),
    "shift": ConvMethod(_shift_forward, _shift_backward),
    "fft": ConvMethod(_fft_forward, _fft_backward),
}
