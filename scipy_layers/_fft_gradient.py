"""The FFT layer's gradient spectrum in numpy: c * g * Z/|Z| (see
:class:`scipy_layers.fft.FFTAbsFunction`), quickly where the data allow and carefully
where they do not (zero or NaN bins, non-finite g, overflow), the same bits either way.
Also Z/|Z| alone, for the layer's forward-mode tangent."""
from __future__ import annotations

import math

import numpy as np

from ._workspace import recycle, scratch


def phase(spectrum, magnitude):
    """Z/|Z|, 0 where |Z| = 0 (torch's sgn(0)). Real and imaginary parts are divided as
    real arrays: numpy's complex division overflows for subnormal |Z|."""
    result = np.zeros_like(spectrum)
    nonzero = magnitude != 0
    np.divide(spectrum.real, magnitude, out=result.real, where=nonzero)
    np.divide(spectrum.imag, magnitude, out=result.imag, where=nonzero)
    return result


# From this many elements of g, mirror weights (1/2 on every column but column 0 and, for
# an even width, the last: _spectral.mirror_weights, the only c the layer uses) are
# applied as one contiguous halving with those columns copied over it, not as a product
# broadcast along each row: the same bits (x 0.5 and x 1 are exact), 101 -> ~45 us at
# 1024x513 float32 in a loop. Inside the layer, fwd+bwd with the quotient's check below
# (one process, balanced order, one thread, the Zen 4 VM of docs/performance.md): the
# old and new functions swapped, 1024x1024 float32 -166 us, 8x256x256 float64 -166,
# 1024x1024 float64 -479, 256x256 float32 -3.5 (nothing); at 16x16 the extra calls cost
# ~4 us (a rotated run, before tools/rotated_batches.py was balanced), so small gradients
# keep the broadcast product. The caller says which columns are 1 (``ones``); weights are
# not inspected (a hostile pass found a cache of that answer stale once the array
# changed).
HALVING_MIN_ELEMENTS = 1 << 13


def _weighted(grad, weights, ones=None):
    """c * g in a workspace scratch array (callers write into it and may recycle it); a
    copy of g where there is no c. ``ones``: where ``weights`` are mirror weights, the
    columns where they are 1 (_spectral.mirror_ones), else None."""
    result = scratch(grad.shape, grad.dtype)
    if weights is None:
        np.copyto(result, grad)
    elif ones is not None and grad.size >= HALVING_MIN_ELEMENTS:
        np.multiply(grad, 0.5, out=result)
        for column in ones:
            result[..., column] = grad[..., column]
    else:
        np.multiply(grad, weights, out=result)
    return result


def divide_where_nonzero(scale, magnitude) -> None:
    """scale /= magnitude where magnitude != 0, in place (scale unchanged elsewhere).
    Without a zero (or NaN) in magnitude, the rule on real data, the mask is not built:
    a masked divide runs 4-5x slower than a plain one (1024x513 float32: 530 against
    110 us, the minimum 40 us)."""
    if np.minimum.reduce(magnitude, axis=None) > 0:  # (NaN: False, the masked path)
        np.divide(scale, magnitude, out=scale)
    else:
        np.divide(scale, magnitude, out=scale, where=magnitude != 0)


def gradient_spectrum(spectrum, grad, weights, magnitude, out=None, ones=None):
    """c * g * Z/|Z| in ``out`` (may be ``spectrum`` itself) or a scratch array: c * g /
    |Z| as a real array, then one complex-by-real product (cheaper than Z/|Z|). Where
    |Z| = 0 the result is 0, or NaN for a NaN or inf in g, as native's sgn(0) * g; see
    :func:`gradient_spectrum_carefully`. ``ones``: where ``weights`` are mirror weights,
    the columns where they are 1 (see :func:`_weighted`).
    On real data the quotient is finite everywhere, which its sum of squares tells in
    one BLAS dot, as _finite.all_finite does (a non-finite entry makes it non-finite;
    finite entries whose squares' sum overflows, above ~1e19 in float32, only send the
    call the careful way too; a dot runs ~4x faster than numpy's pairwise sum: 1024x513
    float32 22 against 84 us). This spares the careful way's ``np.errstate``, its
    minimum and its try: 10-13 us of a 16x16 float32 forward+backward (~250 us) on the
    README's VM."""
    scale = _weighted(grad, weights, ones)
    try:  # (in numpy_quiet: a 0 or NaN |Z| gives inf / NaN, left to the check below)
        with np.errstate(under="raise"):
            np.divide(scale, magnitude, out=scale)
    except FloatingPointError:  # (see gradient_spectrum_carefully: underflow)
        underflow = True
    else:
        underflow = False
    flat = scale.reshape(-1)  # (a view: scratch arrays are C-contiguous)
    if not underflow and math.isfinite(np.dot(flat, flat)):
        result = np.multiply(spectrum, scale,
                             out=scratch(spectrum.shape, spectrum.dtype) if out is None else out)
        recycle(scale)
        return result
    recycle(scale)  # (first: the careful way takes the same buffer again)
    return gradient_spectrum_carefully(spectrum, grad, weights, magnitude, out, ones)


def gradient_spectrum_carefully(spectrum, grad, weights, magnitude, out=None, ones=None):
    """:func:`gradient_spectrum` where a |Z| is 0 or NaN, a g not finite or c * g / |Z|
    overflows. Where |Z| = 0 the scale keeps c * g and Z is exactly 0, so the product is
    0 (NaN for a NaN or inf g). If the quotient overflows (tiny inputs: |Z| near the
    smallest floats) or underflows (a tiny g on a large |Z|: the quotient kept few
    digits or none, g = 1e-40 on |Z| = 1e10 in float32 gave a gradient of 0 where
    native's g Z/|Z| gives 1e-40, and 1e-30 on 1e12 was 5e-4 off; hostile pass 159),
    Z/|Z| is taken first instead (bounded by 1), in a new array whatever ``out`` is
    (``spectrum`` is still whole then: the divide raised first)."""
    scale = _weighted(grad, weights, ones)
    try:  # only a finite quotient's overflow or inexact underflow raises
        with np.errstate(over="raise", under="raise"):
            divide_where_nonzero(scale, magnitude)
        result = np.multiply(spectrum, scale,
                             out=scratch(spectrum.shape, spectrum.dtype) if out is None else out)
    except FloatingPointError:
        result = phase(spectrum, magnitude)
        result *= _weighted(grad, weights, ones)
    recycle(scale)
    return result
