"""The CuPy path of the single-channel conv layer (ScipyConv2dFunction, method "cupy"):
direct sums on the GPU, through scipy_layers.gpu's bridge to CuPy.

These functions hold no autograd state: forward returns what backward reuses, and the
caller (the layer's Function) keeps it; backward recomputes it when given None.
"""
from __future__ import annotations

from .gpu import _modules, _on_torch_stream, _to_cupy, _to_torch

# Every pass is a direct sum, so it keeps the accuracy contract (scipy_layers.agreement)
# as the CPU's direct method does: cupyx's FFT correlation is off by ~u ||x|| ||w|| at
# every output, which is no bound at all on a window of small values or exact zeros.
# cupyx's direct kernels skip zero weights, its full convolution forms padding x weight
# products, and it refuses operands of 2 GiB and more; such passes (and grad_filter,
# whose cupyx form gives each tap one thread looping over all of g) run the loops below,
# which form exactly the products over real pixels: NaN and inf where native has them.
# Each loops over the filter's taps or over the output's pixels, whichever are fewer,
# one array operation a turn (~50 us on an H200, whatever its size).

CUPYX_DIRECT_MAX_BYTES = 2 ** 31  # cupyx: "smaller array must be 2 GiB or less"


def _finite_flags(cp, *arrays) -> list[bool]:
    """Whether each array is all finite, with one synchronisation for all of them."""
    flags = cp.stack([cp.isfinite(a).all() for a in arrays])
    return [bool(flag) for flag in cp.asnumpy(flags)]


def _cupyx_direct_takes(cp, a, b) -> bool:
    """cupyx's direct kernel gives the sum over real pixels for operands a and b."""
    return min(a.nbytes, b.nbytes) < CUPYX_DIRECT_MAX_BYTES and all(_finite_flags(cp, a, b))


def _by_taps(filter_shape, out_shape) -> bool:
    return filter_shape[0] * filter_shape[1] <= out_shape[0] * out_shape[1]


def _loop_correlate(cp, x, w):
    """Valid cross-correlation of x with w; with g for w, grad_filter (all of g is then
    the "filter", and the filter's taps are the output)."""
    (k_h, k_w), (out_h, out_w) = w.shape, (x.shape[0] - w.shape[0] + 1, x.shape[1] - w.shape[1] + 1)
    y = cp.zeros((out_h, out_w), dtype=x.dtype)
    if _by_taps(w.shape, y.shape):
        for i in range(k_h):
            for j in range(k_w):
                y += w[i, j] * x[i:i + out_h, j:j + out_w]
    else:
        for a in range(out_h):
            for b in range(out_w):
                y[a, b] = (w * x[a:a + k_h, b:b + k_w]).sum()
    return y


def _loop_grad_input(cp, g, w, input_shape):
    """Full convolution of g with w (each output's gradient back onto its window)."""
    (k_h, k_w), (out_h, out_w) = w.shape, g.shape
    gx = cp.zeros(input_shape, dtype=g.dtype)
    if _by_taps(w.shape, g.shape):
        for i in range(k_h):
            for j in range(k_w):
                gx[i:i + out_h, j:j + out_w] += w[i, j] * g
    else:
        for a in range(out_h):
            for b in range(out_w):
                gx[a:a + k_h, b:b + k_w] += g[a, b] * w
    return gx


def conv_forward(input, filter, bias):
    """(y, state) for backward: state is the CuPy views of input and filter."""
    cp, signal = _modules()
    with _on_torch_stream(cp, input):
        x, w = _to_cupy(cp, input), _to_cupy(cp, filter)
        if _cupyx_direct_takes(cp, x, w):
            y = signal.correlate2d(x, w, mode="valid")
        else:
            y = _loop_correlate(cp, x, w)
        result = _to_torch(y, x.dtype)
    if bias is not None:
        result += bias.reshape(())  # on the GPU: bias.item() would synchronise
    return result, (x, w)


def conv_backward(state, grad_output, input, filter, need_input, need_filter, bias_shape,
                  need_bias):
    """(grad_input, grad_filter, grad_bias), each None where not needed; ``state`` from
    :func:`conv_forward` on these input and filter, or None."""
    cp, signal = _modules()
    grad_input = grad_filter = grad_bias = None
    if need_input or need_filter:
        with _on_torch_stream(cp, grad_output):
            x, w = state if state is not None else (_to_cupy(cp, input), _to_cupy(cp, filter))
            g = _to_cupy(cp, grad_output)
            if need_input:  # full convolution of g with w
                if _cupyx_direct_takes(cp, g, w):
                    gx = signal.convolve2d(g, w, mode="full")
                else:
                    gx = _loop_grad_input(cp, g, w, x.shape)
                grad_input = _to_torch(gx, x.dtype)
            if need_filter:
                grad_filter = _to_torch(_loop_correlate(cp, x, g), x.dtype)
    if bias_shape is not None and need_bias:
        grad_bias = grad_output.sum().reshape(bias_shape)
    return grad_input, grad_filter, grad_bias
