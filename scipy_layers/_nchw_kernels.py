"""numpy/scipy kernels of a batched, multi-channel 2-D convolution (NCHW), as
``torch.nn.functional.conv2d`` computes it (a cross-correlation), and its gradients.

Shapes: x (N, C_in, H, W) already zero-padded, w (C_out, C_in/groups, kH, kW),
y (N, C_out, Ho, Wo). Two methods:

- "im2col": the (C_in/groups * kH * kW, Ho * Wo) window matrix of each image and group,
  then one BLAS matmul per (image, group); grad_input scatters the window gradients
  back with kH * kW strided adds. Handles any stride, dilation and groups.
- "fft": scipy.fft at next_fast_len of the padded input (a valid correlation needs no
  extra padding), channels contracted in the frequency domain; forward spectra reused
  in backward. Stride 1, dilation 1, groups 1 only: for few channels with large kernels.

Scratch buffers (padded inputs, window matrices, window gradients) come from a small
workspace and go back to it once used: glibc hands freed multi-MB blocks back to the OS,
so fresh buffers page-fault on every call (measured (8,16,32,32)->32 k3 float32
fwd+bwd: ~2200 faults, 6.3 ms; 2.8 ms once no page faulted). Arrays that leave the layer
(outputs, gradients) are never recycled.
"""
from __future__ import annotations

import threading

import numpy as np
import scipy.fft
from numpy.lib.stride_tricks import as_strided

WORKSPACE_LIMIT_BYTES = 256 << 20  # idle scratch kept for reuse, at most
_workspace: dict[tuple, list[np.ndarray]] = {}
_workspace_bytes = 0
_workspace_lock = threading.Lock()


def scratch(shape, dtype) -> np.ndarray:
    """An uninitialised C-contiguous array, reused from the workspace when one fits."""
    global _workspace_bytes
    key = (tuple(shape), np.dtype(dtype).str)
    with _workspace_lock:
        free = _workspace.get(key)
        if free:
            _workspace_bytes -= free[-1].nbytes
            return free.pop()
    return np.empty(shape, dtype)


def recycle(*arrays) -> None:
    """Give scratch arrays back; the caller must hold no other reference to them."""
    global _workspace_bytes
    with _workspace_lock:
        for array in arrays:
            if array is None or array.base is not None:
                continue  # views are not ours to keep
            if _workspace_bytes + array.nbytes > WORKSPACE_LIMIT_BYTES:
                continue
            _workspace.setdefault((array.shape, array.dtype.str), []).append(array)
            _workspace_bytes += array.nbytes


def clear_workspace() -> None:
    global _workspace_bytes
    with _workspace_lock:
        _workspace.clear()
        _workspace_bytes = 0


def pad(x, top, bottom, left, right):
    """x zero-padded into a scratch array, or x itself without padding."""
    if not (top or bottom or left or right):
        return x
    n, c, h, w = x.shape
    out = scratch((n, c, h + top + bottom, w + left + right), x.dtype)
    out[:, :, :top] = 0
    out[:, :, top + h:] = 0
    out[:, :, top:top + h, :left] = 0
    out[:, :, top:top + h, left + w:] = 0
    out[:, :, top:top + h, left:left + w] = x
    return out


def _windows(xp, kernel, stride, dilation, out_hw):
    """A strided view (N, C, kH, kW, Ho, Wo) of xp's windows; no copy."""
    s_n, s_c, s_h, s_w = xp.strides
    return as_strided(xp, (*xp.shape[:2], *kernel, *out_hw),
                      (s_n, s_c, dilation[0] * s_h, dilation[1] * s_w,
                       stride[0] * s_h, stride[1] * s_w), writeable=False)


def im2col_forward(xp, w, stride, dilation, groups, out_hw):
    """y (N, C_out, Ho, Wo) and the window matrix (N, G, C_in/G * kH * kW, Ho * Wo)."""
    n = xp.shape[0]
    c_out, c_group, k_h, k_w = w.shape
    cols = scratch((n, groups, c_group * k_h * k_w, out_hw[0] * out_hw[1]), xp.dtype)
    np.copyto(cols.reshape(n, xp.shape[1], k_h, k_w, *out_hw),
              _windows(xp, (k_h, k_w), stride, dilation, out_hw))
    w_groups = w.reshape(groups, c_out // groups, c_group * k_h * k_w)
    y = np.matmul(w_groups, cols)
    return y.reshape(n, c_out, *out_hw), cols


def im2col_grad_weight(gy, cols, w_shape, groups):
    n = gy.shape[0]
    gy_groups = gy.reshape(n, groups, w_shape[0] // groups, -1)
    grad = np.matmul(gy_groups, cols.transpose(0, 1, 3, 2))
    return (grad.sum(axis=0) if n > 1 else grad[0]).reshape(w_shape)


def im2col_grad_input(gy, w, xp_shape, stride, dilation, groups):
    """Gradient with respect to the padded input, in a scratch array."""
    n, c_in = xp_shape[:2]
    c_out, c_group, k_h, k_w = w.shape
    out_h, out_w = gy.shape[2:]
    w_groups = w.reshape(groups, c_out // groups, c_group * k_h * k_w)
    gy_groups = gy.reshape(n, groups, c_out // groups, out_h * out_w)
    grad_cols = scratch((n, groups, c_group * k_h * k_w, out_h * out_w), gy.dtype)
    np.matmul(w_groups.transpose(0, 2, 1), gy_groups, out=grad_cols)
    taps = grad_cols.reshape(n, c_in, k_h, k_w, out_h, out_w)
    grad = scratch(xp_shape, gy.dtype)
    grad.fill(0)
    (s_h, s_w), (d_h, d_w) = stride, dilation
    for i in range(k_h):
        for j in range(k_w):
            grad[:, :, i * d_h:i * d_h + s_h * (out_h - 1) + 1:s_h,
                 j * d_w:j * d_w + s_w * (out_w - 1) + 1:s_w] += taps[:, :, i, j]
    recycle(grad_cols)
    return grad


def _spectrum_shape(xp_shape):
    return tuple(scipy.fft.next_fast_len(n, real=True) for n in xp_shape[2:])


def fft_forward(xp, w, out_hw):
    """y and the state (shape, x spectrum, w spectrum) that backward reuses."""
    shape = _spectrum_shape(xp.shape)
    x_spec = scipy.fft.rfft2(xp, s=shape)
    w_spec = scipy.fft.rfft2(w, s=shape)
    y_spec = np.einsum("ncuv,ocuv->nouv", x_spec, w_spec.conj())
    y = scipy.fft.irfft2(y_spec, s=shape)[:, :, :out_hw[0], :out_hw[1]]
    return y, (shape, x_spec, w_spec)


def fft_backward(gy, xp_shape, w_shape, state, need_input, need_weight):
    shape, x_spec, w_spec = state
    g_spec = scipy.fft.rfft2(gy, s=shape)
    grad_input = grad_weight = None
    if need_input:
        spec = np.einsum("nouv,ocuv->ncuv", g_spec, w_spec)
        grad_input = scipy.fft.irfft2(spec, s=shape)[:, :, :xp_shape[2], :xp_shape[3]]
    if need_weight:
        spec = np.einsum("ncuv,nouv->ocuv", x_spec, g_spec.conj())
        grad_weight = scipy.fft.irfft2(spec, s=shape)[:, :, :w_shape[2], :w_shape[3]]
    return grad_input, grad_weight
