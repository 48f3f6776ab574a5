"""The single-channel "shift" method's kernels (see :mod:`scipy_layers.conv_methods`):
shift-and-add along the flattened image, in three tiers by size. Also used per channel
pair by the batched conv's shift method (_nchw_shift)."""
from __future__ import annotations

import numpy as np

# Flat-index trick: with x flattened row-major, the window x[i:i+Ho, j:j+Wo] is the
# contiguous run x_flat[i*W + j : i*W + j + L] (L = (Ho-1)*W + Wo) read as Ho rows of
# width W whose last W - Wo columns are junk. So every tap is a 1-D operation on
# contiguous memory, with g zero-padded to width W so the junk columns contribute nothing.
# Three tiers, by size (numpy's ~1 us per call dominates small inputs, memory traffic
# large ones):
# - smallest (kH kW H W elements up to SHIFT_WINDOWS_MAX_BYTES[dtype]): the kH kW runs
#   copied as the rows of one matrix, summed by one BLAS matrix-vector product (forward,
#   and grad_input on zero-padded g with the flipped filter): two numpy calls a pass,
#   whatever the kernel. Fastest where its matrix stays in cache; measured fwd+bwd
#   kernels, one process, one thread, the AMD EPYC family 26 model 2 VM of
#   docs/performance.md ("A second CPU"), windows / rows: float32 16^2 k3 0.58, k7 0.34,
#   64^2 k3 0.47, k11 (2 MB) 0.64, 127^2 k3 0.72; float64 16^2 k7 0.40, 64^2 k3 (0.3 MB)
#   0.64, k5 (0.8 MB) 0.97, 127^2 k3 (1.2 MB) 1.10; float32 256^2 k7 (13 MB) 1.30 against
#   the taps tier.
#   The whole layer call, side by side against the rows tier (fwd+bwd / native, 60
#   rotated batches): float32 64^2 k3 1.18 -> 1.04, 127^2 k3 1.06 -> 0.95, 32^2 k15
#   0.82 -> 0.40; float64 16^2 k7 1.33 -> 1.20, 64^2 k3 0.99 -> 1.00. In a hot loop it
#   also beats "direct" on 16^2 images (0.51-0.68), but inside a layer call, after
#   native's, direct stays level or ahead (16^2 k3 / k7 float64 1.02 / 1.21 against 1.16
#   / 1.27), so _conv_rule.choose_method keeps direct where it was. The matrix is a temporary:
#   nothing more is kept for backward than before.
# - small (L <= SHIFT_ROWS_MAX_LENGTH[dtype]): one np.correlate / np.convolve per kernel
#   row (kH calls, each a tight C loop).
# - large: one multiply-add per tap over the whole run, which streams memory faster
#   (forward at 64^2, k=3: 12 vs 14 us; at 256^2: 142 vs 67 us). In float32 from ~104^2
#   (forward+backward kernels, 3x3, one process, rotated, the README's VM: taps / rows
#   1.24 at 64^2, 1.10 at 80^2, 0.88-1.02 at 96^2, 0.84-0.87 at 127^2; the whole layer
#   call +8 us at 100^2, -10 at 110^2, -38 at 127^2); float64 rows up to 128^2 (taps /
#   rows 1.31-1.42 at 64^2-127^2).
#   The taps run chunk by chunk along the output (TAP_CHUNK_BYTES of it): every tap on
#   one chunk before the next, so the chunk, its scratch and the input's runs under it
#   stay in the core's cache instead of the whole image streaming through memory once
#   per tap. Each output element gets the same products added in the same order, so
#   the results are the same bit for bit. Forward alone, one thread, chunked / whole
#   (Intel Xeon VM of docs/performance.md, "An Intel CPU"): float32 1024^2 k3 2.2 / 5.2
#   ms, k7 11.8 / 28.7, float64 1024^2 k3 4.1 / 11.8; 256^2 float32 k3 level (one chunk);
#   chunks of 4-32 KB were slower (numpy's ~1 us a call), of 512 KB slower in float64.
# grad_filter is one np.correlate of x with g per kernel row, kW dots of length L each
# (the windows tier's one product from four kernel rows: _shift_grad_filter).
# (Laying the whole filter out flat for a single call per pass was tried: slower at k=3.)

SHIFT_WINDOWS_MAX_BYTES = {np.dtype(np.float32): 2 << 20, np.dtype(np.float64): 1 << 19}
SHIFT_ROWS_MAX_LENGTH = {np.dtype(np.float32): 104 * 104, np.dtype(np.float64): 128 * 128}
TAP_CHUNK_BYTES = 256 << 10


def _chunks(length: int, itemsize: int):
    """(begin, end) of consecutive chunks of TAP_CHUNK_BYTES covering range(length)."""
    step = max(1, TAP_CHUNK_BYTES // itemsize)
    return [(begin, min(length, begin + step)) for begin in range(0, length, step)]


def by_windows(image_shape, filter_shape, dtype) -> bool:
    """Whether the shift method runs its windows-matrix tier on this input (see above)."""
    elements = image_shape[0] * image_shape[1] * filter_shape[0] * filter_shape[1]
    return elements * dtype.itemsize <= SHIFT_WINDOWS_MAX_BYTES.get(dtype, 0)


def _windows(flat, width, k_height, k_width, length):
    """(kH kW, length): row i kW + j is flat[i width + j : i width + j + length], a copy.
    The strided view it copies from is checked by numpy against flat's own buffer (a
    contiguous 1-D array, _flat's or a fresh one), which holds every run: the callers
    pass (kH - 1) width + kW - 1 + length <= flat.size."""
    step = flat.itemsize
    runs = np.ndarray((k_height, k_width, length), flat.dtype, flat, 0,
                      (width * step, step, step))
    windows = np.empty((k_height * k_width, length), flat.dtype)
    np.copyto(windows.reshape(k_height, k_width, length), runs)
    return windows


def _per_row(length: int, dtype) -> bool:
    return length <= SHIFT_ROWS_MAX_LENGTH.get(dtype, 128 * 128)


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
    if by_windows(x.shape, w.shape, x.dtype):
        # (BLAS sums from +0, so a window of -0 products gives +0, as native)
        np.matmul(np.ascontiguousarray(w).reshape(-1),
                  _windows(x_flat, width, k_height, k_width, length), out=acc)
    elif _per_row(length, x.dtype):
        for i in range(k_height):
            start = i * width
            row = np.correlate(x_flat[start:start + length + k_width - 1], w[i], "valid")
            if i:
                acc += row
            else:
                acc[:] = row
    else:
        taps = w.tolist()
        chunks = _chunks(length, x.itemsize)
        scratch = np.empty(chunks[0][1], dtype=x.dtype)
        for begin, end in chunks:
            part, products = acc[begin:end], scratch[:end - begin]
            np.multiply(x_flat[begin:end], taps[0][0], out=part)
            for i in range(k_height):
                for j in range(k_width):
                    if i or j:
                        start = i * width + j + begin
                        np.multiply(x_flat[start:start + end - begin], taps[i][j],
                                    out=products)
                        part += products
            part += 0.0  # a sum of -0 products is +0 (native starts from +0, part at a product)
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
    if by_windows(x_shape, w.shape, g_flat.dtype):
        # grad[p] = sum_ij w[kH-1-i, kW-1-j] g_flat[p + i W + j - reach]: the forward's
        # windows over g_flat with reach zeros in front and zeros behind (to H W + reach)
        reach = (k_height - 1) * width + k_width - 1
        padded = np.zeros(height * width + reach, dtype=g_flat.dtype)
        padded[reach:reach + length] = g_flat
        flipped = np.ascontiguousarray(w[::-1, ::-1]).reshape(-1)
        return np.matmul(flipped, _windows(padded, width, k_height, k_width,
                                           height * width)).reshape(height, width)
    grad = np.zeros(height * width, dtype=g_flat.dtype)
    if _per_row(length, g_flat.dtype):
        for i in range(k_height):
            start = i * width
            grad[start:start + length + k_width - 1] += np.convolve(g_flat, w[i], "full")
    else:
        taps = w.tolist()
        chunks = _chunks(grad.size, grad.itemsize)
        scratch = np.empty(chunks[0][1], dtype=g_flat.dtype)
        for begin, end in chunks:  # grad[start:start + length] += tap g_flat, by chunk of grad
            for i in range(k_height):
                for j in range(k_width):
                    start = i * width + j
                    low, high = max(begin, start), min(end, start + length)
                    if low < high:
                        products = scratch[:high - low]
                        np.multiply(g_flat[low - start:high - start], taps[i][j], out=products)
                        grad[low:high] += products
    return grad.reshape(height, width)


def _shift_grad_filter(x, g_flat, w_shape):
    width = x.shape[1]
    k_height, k_width = w_shape
    x_flat = _flat(x)
    # forward's windows again and one product, where that replaces more than three dots
    # (side by side against the dots, fwd+bwd, us: 16^2 k7 float64 -12 / -3, 24^2 k9
    # float64 -5, 32^2 k15 float32 -3; level at k3 and k5, +6 at 127^2 k3 float32)
    if k_height > 3 and by_windows(x.shape, w_shape, g_flat.dtype):
        return np.matmul(_windows(x_flat, width, k_height, k_width, g_flat.size),
                         g_flat).reshape(w_shape)
    span = g_flat.size + k_width - 1
    grad = np.empty(w_shape, dtype=g_flat.dtype)
    for i in range(k_height):
        grad[i] = np.correlate(x_flat[i * width:i * width + span], g_flat, "valid")
    return grad
