"""Sample inputs and error inputs per layer, in the manner of PyTorch's OpInfo: one table
that the tests and the gradient checks draw from, and the memory layouts that the
benchmark suite's gradient benchmarks also use (on the registry's seeded inputs, not
this table's samples).

A :class:`Sample` names the shapes of a layer's tensor arguments and its keyword
arguments. :func:`make_case` builds leaf tensors for it in a given **layout** and a
``prepare`` function that turns the leaves into the arguments the layer is called with:
the same values seen through a view of another memory layout (cropped, transposed,
expanded with stride 0, step-sliced, channels_last, at a storage offset). Slots of a
leaf that the view does not cover hold NaN, so code that reads outside the view (or
assumes a stride it did not check) returns NaN instead of passing by luck. Gradients are
taken with respect to the leaves, so both sides of a comparison are checked through the
same view.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Callable

import torch

LAYOUTS = ("contiguous", "offset", "cropped_h", "cropped_w", "transposed", "step_sliced",
           "expanded", "channels_last")


@dataclass(frozen=True)
class Sample:
    """Shapes of the tensor arguments (None: that argument is None) and keyword arguments.
    ``methods`` lists the implementations that accept it (None: every one)."""

    name: str
    shapes: tuple
    kwargs: dict = field(default_factory=dict)
    methods: tuple | None = None

    def accepts(self, implementation: str) -> bool:
        return self.methods is None or implementation in self.methods


@dataclass(frozen=True)
class ErrorInput:
    """Arguments a layer must reject with ``error_type`` (ValueError or TypeError, and
    always also a RuntimeError, as native torch's errors are) whose message matches
    ``match``."""

    name: str
    make_args: Callable[[], tuple]
    kwargs: dict
    error_type: type
    match: str


def _embed(values: torch.Tensor, layout: str) -> tuple[torch.Tensor, Callable]:
    """(leaf, view): ``view(leaf)`` has the shape and values of ``values`` (for
    "expanded": its first slice repeated along dim 0) laid out as ``layout``; slots of
    the leaf outside the view are NaN."""
    values = values.detach()
    shape, ndim = tuple(values.shape), values.dim()

    def poisoned(big_shape, keep):
        base = torch.full(big_shape, float("nan"), dtype=values.dtype)
        base[keep] = values
        return base

    if layout == "contiguous" or ndim == 0:
        return values.clone(), lambda t: t
    if layout == "offset":
        flat = torch.full((values.numel() + 3,), float("nan"), dtype=values.dtype)
        flat[3:] = values.reshape(-1)
        return flat, lambda t: t[3:].view(shape)
    if layout == "cropped_h" and ndim >= 2:
        return (poisoned((*shape[:-2], shape[-2] + 2, shape[-1]), (..., slice(1, -1), slice(None))),
                lambda t: t[..., 1:-1, :])
    if layout in ("cropped_w", "cropped_h"):
        return poisoned((*shape[:-1], shape[-1] + 3), (..., slice(1, -2))), lambda t: t[..., 1:-2]
    if layout == "transposed" and ndim >= 2:
        return values.transpose(-1, -2).contiguous(), lambda t: t.transpose(-1, -2)
    if layout in ("step_sliced", "transposed"):
        steps = tuple(slice(None, None, 2) for _ in shape)
        return poisoned(tuple(2 * n for n in shape), steps), lambda t: t[steps]
    if layout == "expanded":  # stride 0 along dim 0
        return values[:1].clone(), lambda t: t.expand(shape)
    if layout == "channels_last" and ndim == 4:
        return values.contiguous(memory_format=torch.channels_last), lambda t: t
    if layout == "channels_last":  # no such format below 4-D: reversed strides instead
        order = tuple(reversed(range(ndim)))
        return values.permute(order).contiguous().permute(order), lambda t: t
    raise ValueError(f"unknown layout {layout!r}; known: {', '.join(LAYOUTS)}")


def as_layout(tensors, layout: str, requires_grad: bool = True):
    """(leaves, prepare) for given tensors (None kept): ``prepare(leaves)`` shows each
    tensor's values through a ``layout`` view; gradients land on the leaves."""
    pairs = [(None, None) if t is None else _embed(t, layout) for t in tensors]
    leaves = [None if leaf is None else leaf.requires_grad_(requires_grad) for leaf, _ in pairs]
    views = [view for _, view in pairs]

    def prepare(args):
        return [None if t is None else v(t) for t, v in zip(args, views)]

    return leaves, prepare


def make_case(sample: Sample, layout: str, dtype: torch.dtype, seed: int = 0,
              requires_grad: bool = True):
    """(leaves, prepare) for ``sample`` with seeded standard-normal values: see
    :func:`as_layout`."""
    generator = torch.Generator().manual_seed(seed)
    values = [None if shape is None else torch.randn(tuple(shape), generator=generator, dtype=dtype)
              for shape in sample.shapes]
    return as_layout(values, layout, requires_grad)


# --- the tables ------------------------------------------------------------------------

CONV2D_SAMPLES = [  # single-channel valid cross-correlation: (input, filter, bias)
    Sample("square-3x3", ((12, 12), (3, 3), (1, 1))),
    Sample("odd-non-square", ((13, 9), (3, 5), (1,))),
    Sample("1x1-kernel", ((7, 6), (1, 1), (1, 1))),
    Sample("kx1-kernel", ((11, 8), (5, 1), ())),
    Sample("1xk-kernel", ((8, 11), (1, 4), (1, 1))),
    Sample("even-kernel", ((10, 10), (4, 2), (1, 1))),
    Sample("kernel-equals-input", ((5, 4), (5, 4), (1, 1))),
    Sample("row-input", ((1, 9), (1, 3), (1, 1))),
    Sample("large-kernel", ((40, 36), (15, 13), (1, 1))),
    # more taps than output pixels, yet narrower than the output in one dim (direct's
    # grad_input swaps its operands there)
    Sample("filter-larger-than-output", ((20, 7), (17, 3), (1, 1))),
    Sample("no-bias", ((9, 9), (2, 3), None)),
]

# fft and shift take stride 1, dilation 1 and groups 1 only
_STRIDE_ONE = ("scipy", "scipy-im2col", "scipy-fft", "scipy-shift")
_ANY_GEOMETRY = ("scipy", "scipy-im2col")
CONV2D_NCHW_SAMPLES = [  # F.conv2d semantics: (input, weight, bias) and keyword arguments
    Sample("plain", ((2, 3, 7, 6), (4, 3, 3, 3), (4,)), methods=_STRIDE_ONE),
    Sample("1x1", ((2, 3, 6, 5), (2, 3, 1, 1), (2,)), methods=_STRIDE_ONE),
    Sample("kx1", ((2, 2, 8, 5), (3, 2, 3, 1), (3,)), methods=_STRIDE_ONE),
    Sample("1xk", ((1, 2, 5, 8), (3, 2, 1, 4), None), methods=_STRIDE_ONE),
    Sample("kernel-equals-input", ((2, 1, 5, 4), (2, 1, 5, 4), (2,)), methods=_STRIDE_ONE),
    Sample("padded", ((1, 2, 5, 6), (2, 2, 3, 3), (2,)), dict(padding=(2, 1)), methods=_STRIDE_ONE),
    Sample("same-even", ((1, 2, 6, 7), (3, 2, 4, 2), (3,)), dict(padding="same"),
           methods=_STRIDE_ONE),
    Sample("large-kernel-few-channels", ((2, 1, 20, 18), (1, 1, 9, 7), (1,)), dict(padding=2),
           methods=_STRIDE_ONE),
    Sample("strided", ((2, 2, 9, 8), (3, 2, 3, 2), (3,)), dict(stride=(2, 3)),
           methods=_ANY_GEOMETRY),
    Sample("dilated", ((1, 2, 9, 9), (2, 2, 3, 2), (2,)), dict(dilation=(2, 3), padding=1),
           methods=_ANY_GEOMETRY),
    Sample("grouped", ((2, 4, 6, 6), (6, 2, 3, 3), (6,)), dict(groups=2, stride=2, padding=1),
           methods=_ANY_GEOMETRY),
    # depthwise with a channel multiplier (im2col per group) and without (tall rows)
    Sample("depthwise", ((2, 3, 6, 5), (6, 1, 3, 3), (6,)), dict(groups=3, padding="same"),
           methods=_ANY_GEOMETRY),
    Sample("depthwise-one-per-channel", ((2, 3, 6, 5), (3, 1, 3, 3), (3,)),
           dict(groups=3, padding="same"), methods=_ANY_GEOMETRY),
    Sample("wide-dilated", ((2, 4, 7, 9), (4, 2, 2, 3), (4,)), dict(dilation=(1, 2), groups=2,
                                                                    padding=(0, 2)),
           methods=_ANY_GEOMETRY),
    Sample("unbatched", ((2, 6, 5), (3, 2, 2, 3), (3,)), dict(padding=1), methods=_STRIDE_ONE),
    # one output channel: what "auto" runs by shift
    Sample("one-output-channel", ((3, 4, 9, 8), (1, 4, 3, 2), (1,)), dict(padding=(1, 2)),
           methods=_STRIDE_ONE),
    Sample("single-pair", ((4, 1, 12, 11), (1, 1, 3, 3), (1,)), methods=_STRIDE_ONE),
    # fewer output than input channels (a group): im2col's kn2row layout
    Sample("few-output-channels", ((2, 6, 7, 8), (2, 6, 3, 3), (2,)), dict(padding=1),
           methods=_STRIDE_ONE),
    Sample("grouped-few-outputs", ((2, 8, 6, 7), (2, 4, 3, 2), (2,)),
           dict(groups=2, dilation=(2, 1), padding=(2, 1)), methods=_ANY_GEOMETRY),
    # padding that the windows mostly do not read (a stride or dilation far beyond the
    # image): im2col runs the tap kernels instead of padding a copy of the input
    Sample("far-strided", ((2, 2, 5, 6), (3, 2, 3, 2), (3,)), dict(stride=300, padding=300),
           methods=_ANY_GEOMETRY),
    Sample("far-dilated", ((1, 4, 6, 5), (2, 2, 2, 3), (2,)),
           dict(dilation=(300, 150), padding=150, groups=2), methods=_ANY_GEOMETRY),
    # a map smaller than the kernel: most window entries are padding, so im2col runs the
    # tap kernels here too
    Sample("one-pixel-map", ((3, 4, 1, 1), (5, 4, 3, 3), (5,)), dict(padding=1),
           methods=_STRIDE_ONE),
]

_FFT_ANY_LENGTH = ("scipy", "scipy-fft", "numpy-tutorial")  # all but "scipy-matrix"
FFT_ABS_SAMPLES = [  # (input,): |rfft2| over the last two dims
    Sample("square", ((8, 8),)),
    Sample("odd", ((7, 9),)),
    Sample("single-row", ((1, 6),)),
    Sample("single-column", ((6, 1),)),
    Sample("batched", ((3, 5, 6),)),
    Sample("two-batch-dims", ((2, 2, 4, 7),)),
    # "auto" takes DFT matrices on lengths with a prime factor above 11, per axis (on H
    # only beside a matrix W: short-h-long-w runs on scipy.fft alone), and mixes them
    # with scipy.fft along an axis over the matrix method's limit (so "scipy-matrix"
    # refuses those two)
    Sample("primes", ((13, 17),)),
    Sample("short-h-long-w", ((2, 13, 130),), methods=_FFT_ANY_LENGTH),
    Sample("long-h-short-w", ((131, 26),), methods=_FFT_ANY_LENGTH),
]

SAMPLES = {"conv2d": CONV2D_SAMPLES, "conv2d_nchw": CONV2D_NCHW_SAMPLES,
           "fft_abs": FFT_ABS_SAMPLES}


def _randn(*shape, dtype=torch.float32):
    return torch.randn(*shape, dtype=dtype)


def _nested(*shapes):
    """A (strided) nested tensor of random tensors of these shapes."""
    with warnings.catch_warnings():  # (torch calls nested tensors a prototype)
        warnings.simplefilter("ignore", UserWarning)
        return torch.nested.nested_tensor([_randn(*shape) for shape in shapes])


ERROR_INPUTS = {
    "conv2d": [
        ErrorInput("input-3d", lambda: (_randn(1, 8, 8), _randn(3, 3), None), {}, ValueError,
                   r"input must be 2-D, got a 3-D"),
        ErrorInput("integer-input", lambda: (torch.ones(8, 8, dtype=torch.int64), _randn(3, 3),
                                             None), {}, TypeError, r"input .*torch\.int64"),
        ErrorInput("filter-larger", lambda: (_randn(2, 8), _randn(3, 3), None), {}, ValueError,
                   r"filter of shape \(3, 3\) is larger than input of shape \(2, 8\)"),
        ErrorInput("mixed-dtypes", lambda: (_randn(8, 8), _randn(3, 3, dtype=torch.float64),
                                            None), {}, TypeError, r"filter has dtype torch\.float64"),
        ErrorInput("bias-shape", lambda: (_randn(8, 8), _randn(3, 3), _randn(2, 1)), {},
                   ValueError, r"bias must hold one value"),
        ErrorInput("unknown-method", lambda: (_randn(8, 8), _randn(3, 3), None),
                   dict(method="fastest"), ValueError, r"method must be one of"),
        ErrorInput("sparse-input", lambda: (_randn(8, 8).to_sparse(), _randn(3, 3), None), {},
                   TypeError, r"input must be a dense \(strided\) tensor"),
        ErrorInput("nested-input", lambda: (_nested((8, 8), (8, 6)), _randn(3, 3), None), {},
                   TypeError, r"input is a nested tensor"),
    ],
    "conv2d_nchw": [
        ErrorInput("input-2d", lambda: (_randn(8, 8), _randn(2, 1, 3, 3), None), {}, ValueError,
                   r"input must be 3-D .* or 4-D"),
        ErrorInput("channels", lambda: (_randn(1, 3, 8, 8), _randn(2, 2, 3, 3), None), {},
                   ValueError, r"expects input with 2 channels"),
        ErrorInput("negative-stride", lambda: (_randn(1, 2, 8, 8), _randn(2, 2, 3, 3), None),
                   dict(stride=-1), ValueError, r"stride must be >= 1"),
        ErrorInput("groups-zero", lambda: (_randn(1, 2, 8, 8), _randn(2, 2, 3, 3), None),
                   dict(groups=0), ValueError, r"groups must be >= 1"),
        ErrorInput("kernel-too-large", lambda: (_randn(1, 2, 2, 8), _randn(2, 2, 3, 3), None), {},
                   ValueError, r"smaller than weight"),
        ErrorInput("fft-strided", lambda: (_randn(1, 2, 8, 8), _randn(2, 2, 3, 3), None),
                   dict(stride=2, method="fft"), ValueError, r"method='fft' needs stride 1"),
        ErrorInput("shift-dilated", lambda: (_randn(1, 2, 8, 8), _randn(1, 2, 3, 3), None),
                   dict(dilation=2, method="shift"), ValueError, r"method='shift' needs stride 1"),
        ErrorInput("same-strided", lambda: (_randn(1, 2, 8, 8), _randn(2, 2, 3, 3), None),
                   dict(stride=2, padding="same"), ValueError, r"padding='same' is not supported"),
        ErrorInput("nested-input", lambda: (_nested((2, 8, 8), (2, 8, 6)), _randn(2, 2, 3, 3),
                                            None), {}, TypeError, r"input is a nested tensor"),
        ErrorInput("weight-3d", lambda: (_randn(1, 2, 8, 8), _randn(2, 3, 3), None), {},
                   ValueError, r"weight must be 4-D, got a 3-D"),
        ErrorInput("groups-not-dividing", lambda: (_randn(1, 4, 8, 8), _randn(3, 2, 3, 3), None),
                   dict(groups=2), ValueError, r"3 output channels, which groups=2 does not"),
        ErrorInput("groups-float", lambda: (_randn(1, 2, 8, 8), _randn(2, 2, 3, 3), None),
                   dict(groups=1.0), TypeError, r"groups must be an int, got 1\.0"),
        ErrorInput("stride-triple", lambda: (_randn(1, 2, 8, 8), _randn(2, 2, 3, 3), None),
                   dict(stride=(1, 1, 1)), TypeError, r"stride must be an int or a pair of ints"),
        ErrorInput("negative-padding", lambda: (_randn(1, 2, 8, 8), _randn(2, 2, 3, 3), None),
                   dict(padding=-1), ValueError, r"padding must be >= 0"),
        ErrorInput("padding-word", lambda: (_randn(1, 2, 8, 8), _randn(2, 2, 3, 3), None),
                   dict(padding="full"), ValueError, r"padding must be 'valid', 'same', an int"),
        ErrorInput("dilation-zero", lambda: (_randn(1, 2, 8, 8), _randn(2, 2, 3, 3), None),
                   dict(dilation=0), ValueError, r"dilation must be >= 1"),
        ErrorInput("dilated-too-large", lambda: (_randn(1, 2, 8, 8), _randn(2, 2, 3, 3), None),
                   dict(dilation=4), ValueError, r"smaller than weight .* with dilation \(4, 4\)"),
        ErrorInput("bias-2d", lambda: (_randn(1, 2, 8, 8), _randn(2, 2, 3, 3), _randn(2, 1)), {},
                   ValueError, r"bias must be 1-D"),
        ErrorInput("bias-length", lambda: (_randn(1, 2, 8, 8), _randn(2, 2, 3, 3), _randn(3)), {},
                   ValueError, r"bias must have shape \(2,\)"),
        ErrorInput("mixed-dtypes", lambda: (_randn(1, 2, 8, 8),
                                            _randn(2, 2, 3, 3, dtype=torch.float64), None), {},
                   TypeError, r"weight has dtype torch\.float64 but input has torch\.float32"),
        ErrorInput("integer-weight", lambda: (_randn(1, 2, 8, 8),
                                              torch.ones(2, 2, 3, 3, dtype=torch.int64), None), {},
                   TypeError, r"weight must be a floating-point tensor .* got torch\.int64"),
        ErrorInput("bool-input", lambda: (_randn(1, 2, 8, 8) > 0, _randn(2, 2, 3, 3) > 0, None),
                   {}, TypeError, r"input must be a floating-point tensor .* got torch\.bool"),
        ErrorInput("sparse-weight", lambda: (_randn(1, 2, 8, 8), _randn(2, 2, 3, 3).to_sparse(),
                                             None), {}, TypeError,
                   r"weight must be a dense \(strided\) tensor"),
        ErrorInput("empty-height", lambda: (_randn(1, 2, 0, 8), _randn(2, 2, 3, 3), None), {},
                   ValueError, r"input must not be empty in H"),
        ErrorInput("no-output-channels", lambda: (_randn(1, 2, 8, 8), _randn(0, 2, 3, 3), None),
                   {}, ValueError, r"weight must not be empty in C_out"),
        # (F.conv2d reads these as 64-bit ints: "Overflow when unpacking long long")
        ErrorInput("stride-past-int64", lambda: (_randn(1, 2, 8, 8), _randn(2, 2, 3, 3), None),
                   dict(stride=(1, 2 ** 63)), ValueError, r"stride must be at most 2\*\*63 - 1"),
        ErrorInput("padding-past-int64", lambda: (_randn(1, 2, 8, 8), _randn(2, 2, 3, 3), None),
                   dict(padding=2 ** 64), ValueError, r"padding must be at most 2\*\*63 - 1"),
        # (numpy's own error for an array that large names no argument)
        ErrorInput("output-too-large", lambda: (_randn(1, 2, 8, 8), _randn(2, 2, 3, 3), None),
                   dict(padding=2 ** 62), ValueError, r"more elements than any array can hold"),
    ],
    "fft_abs": [
        ErrorInput("input-1d", lambda: (_randn(8),), {}, ValueError, r"at least 2 dims"),
        ErrorInput("complex", lambda: (torch.randn(4, 4, dtype=torch.complex64),), {}, TypeError,
                   r"complex64"),
        ErrorInput("not-a-tensor", lambda: ([[1.0, 2.0]],), {}, TypeError, r"torch\.Tensor"),
        ErrorInput("unknown-method", lambda: (_randn(8, 8),), dict(method="fastest"),
                   ValueError, r"method must be one of 'auto', 'fft', 'matrix'; got 'fastest'"),
        ErrorInput("matrix-too-long", lambda: (_randn(4, 200),), dict(method="matrix"),
                   ValueError, r"method='matrix' takes H and W up to 128 .* got H=4, W=200"),
        ErrorInput("nested-input", lambda: (_nested((4, 8), (4, 6)),), {}, TypeError,
                   r"input is a nested tensor"),
    ],
}
