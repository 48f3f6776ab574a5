"""Which method ``method="auto"`` runs for the single-channel conv layer
(:func:`choose_method`, for :mod:`scipy_layers.conv`): "direct", "shift" or "fft", with
the measurements behind each threshold; and the dtype helpers that the layers' per-dtype
tables of measured constants share (:func:`is_float64`, :func:`dtype_name`)."""
from __future__ import annotations

import numpy as np
import torch

from ._fft_route import float64_rejects_on_normal_data

# "auto" thresholds, from forward+backward timings on this project's 2-core machine
# (AMD EPYC family 25 model 1, OpenBLAS Haswell kernel, torch pinned to 1 thread; N x N
# input, k x k filter; medians of one process per method, 2026-12-01):
# - direct wins where output pixels x taps is tiny (N = 16 with k >= 5: 61 vs 61 us at
#   k=5, 87 vs 97 us (shift) vs 110 us (fft) at k=15), and on small outputs of large
#   filters (below); elsewhere its N^2 k^2 scipy.signal loops lose (64^2, k=3: 193 us
#   vs 75 us for shift).
# - fft is certified (float64 transforms, a per-pixel accuracy check: _fft_conv), so it
#   pays off only for large kernels. float32: shift up to 11x11 at every size (256^2 k11:
#   5.2 vs 13.5 ms; 1024^2 k11: 89 vs 196 ms), fft from 15x15 (1024^2: 160 vs 184 ms;
#   128^2: 2.9 vs 6.9 ms). float64: shift up to 9x9 (1024^2: 174 vs 211 ms), fft from
#   11x11 (256^2: 9.3 vs 10.7 ms), except on small images, where shift keeps 11x11
#   (64^2: 1.0 vs 3.0 ms; 128^2: 2.0 vs 3.0 ms).
# - fft's cost hardly depends on k (1024^2 float32: 160-197 ms for k = 5..31).
# - a filter with at least as many taps as the output has pixels (nearly as large as the
#   image): there direct's grad_input loops over g, not the filter (conv_methods), and
#   direct beats shift's per-row calls (one per filter row and pass) and fft's float64
#   transforms further (forward+backward, one process, rotated, float32 / float64, us):
#   16^2 k9 direct 343 / 296 against shift 428 / 349; 32^2 k25 764 / 714 against fft
#   1588 / 2208 (shift 1019); 64^2 k63 567 / 604 against fft 1850 / 16764; 64^2 k57 (208k
#   products) 2008 / 2214 against fft 1810 / 3327, where fft takes over in float32; the
#   crossover with shift: 32^2 k23 (53k products) direct 519 / 514 against shift 637 /
#   588, k21 (64k) 593 / 592 against 616 / 566, k19 (71k) 687 / 686 against 615 / 573.
# - images up to 48x48 keep shift up to 21x21 (fft's fixed cost is ~1 / 1.4 ms there):
#   32^2 k13 517 / 549 against fft 1018 / 1379, k19 615 / 573 against 991 / 1408; 40^2
#   k21 944 / 843 against 1234 / 1539; 48^2 k15 987 / 1126 against 1103 / 1563 (48^2 k25
#   is fft's in float32: 1283 against 1576).
# shift's figures above predate its windows tier (_shift_kernels), which made it faster
# on small images (float32 32^2 k15 0.82 -> 0.40x native); these crossovers were kept.
# - with shift's windows tier, direct still wins up to ~6000 products where the filter
#   is at least 2 wide (scipy's loop runs along the filter's rows), measured fwd+bwd /
#   native, one process, 25 batches, direct always right after native (the costlier
#   place, docs/performance.md), the Zen 4 VM, direct against shift: float64 16^2 k7
#   (4900 products) 1.06 / 1.20, 17^2 k7 1.08 / 1.19, 24^2 k3 1.06 / 1.19, 26^2 k3 1.14
#   / 1.24, 33^2 k2 1.16 / 1.23, 32x32 1x5 1.05 / 1.23; float32 24^2 k3 1.08 / 1.21,
#   18^2 k5 0.40 / 0.44, 17^2 k7 0.42 / 0.44; past it level or shift's (28^2 k3 1.18 /
#   1.21, 30^2 k3 1.21 / 1.21, 32^2 k3 float32 1.31 / 1.23, 40^2 k2 1.28 / 1.24). Filters
#   one column wide stay at DIRECT_MAX_WORK: 32x32 5x1 float64 1.31 / 1.18 (24x24 7x1, 3024
#   products, 1.22 / 1.19). Measured on that one CPU; side by side, balanced, 16^2 k7
#   float64 1.226 -> 1.085 of native.
# - float64 fft's certificate holds a linear term (hostile pass 126) that rejects large
#   images with smaller kernels, and narrow kernels' grad_input borders: there shift
#   (_fft_route.float64_rejects_on_normal_data).
DIRECT_MAX_WORK = 4000          # output pixels x filter taps
DIRECT_WIDE_FILTER_MAX_WORK = 6000  # the same, for filters 2 or more columns wide
DIRECT_SMALL_OUTPUT_MAX_WORK = 60_000  # the same, where output pixels <= taps
SHIFT_MAX_TAPS = {"float32": 121, "float64": 81}
SHIFT_SMALL_IMAGE_MAX_TAPS = 121
SHIFT_SMALL_IMAGE_MAX_PIXELS = 128 * 128
SHIFT_TINY_IMAGE_MAX_TAPS = 441
SHIFT_TINY_IMAGE_MAX_PIXELS = 48 * 48


def is_float64(dtype) -> bool:
    """Whether ``dtype`` (torch or numpy) is float64 rather than float32; a TypeError for
    anything else (the layers take no other dtype, and None would read as numpy's
    default float64)."""
    # (a torch dtype compared with a numpy dtype makes numpy try to convert it: ~2 us)
    if isinstance(dtype, torch.dtype):
        if dtype is torch.float64 or dtype is torch.float32:
            return dtype is torch.float64
    elif dtype is not None:
        try:
            kind = np.dtype(dtype)
        except (TypeError, ValueError):
            kind = None
        if kind == np.float64 or kind == np.float32:
            return kind == np.float64
    raise TypeError(f"dtype must be float32 or float64, as a torch or numpy dtype; "
                    f"got {dtype!r}")


def dtype_name(dtype) -> str:
    """"float32" or "float64" for ``dtype`` (torch or numpy): the key of every per-dtype
    table of measured constants (here, _nchw_rule, _kn2row)."""
    return "float64" if is_float64(dtype) else "float32"


def shift_max_taps(dtype) -> int:
    """Up to how many filter taps shift beats fft at every image size, for ``dtype``."""
    return SHIFT_MAX_TAPS[dtype_name(dtype)]


def choose_method(input_shape, filter_shape, dtype=torch.float32) -> str:
    """The method "auto" runs for an input of ``input_shape`` and a filter of
    ``filter_shape`` (both (rows, cols)) in ``dtype`` (torch or numpy); the thresholds
    above say why."""
    height, width = input_shape
    k_height, k_width = filter_shape
    taps = k_height * k_width
    outputs = (height - k_height + 1) * (width - k_width + 1)
    work = outputs * taps
    if work <= DIRECT_MAX_WORK or (k_width >= 2 and work <= DIRECT_WIDE_FILTER_MAX_WORK) or (
            outputs <= taps and work <= DIRECT_SMALL_OUTPUT_MAX_WORK):
        return "direct"
    pixels = height * width
    if taps <= shift_max_taps(dtype) or (
            taps <= SHIFT_SMALL_IMAGE_MAX_TAPS and pixels <= SHIFT_SMALL_IMAGE_MAX_PIXELS) or (
            taps <= SHIFT_TINY_IMAGE_MAX_TAPS and pixels <= SHIFT_TINY_IMAGE_MAX_PIXELS):
        return "shift"
    if is_float64(dtype) and float64_rejects_on_normal_data(
            input_shape, filter_shape, (0, 0, 0, 0), 1, 1):
        return "shift"  # (the certificate's linear term: _fft_route)
    return "fft"
