"""One registry of layers: name -> implementations (numpy/scipy ones and the native
twin) and an input maker. Tests, the benchmark suite and the reports all read it, so a
new layer or method is added here and nowhere else.
"""
from __future__ import annotations

import functools
import sys
from dataclasses import dataclass, field
from typing import Callable, Mapping

import torch

from .conv import native_conv2d, scipy_conv2d
from .fft import fft_abs, incorrect_fft, native_fft_abs
from ._nchw_args import _is_int
from .nn import conv2d, native_conv2d_nchw

NATIVE = "native"


@dataclass(frozen=True)
class Implementation:
    """One way of computing a layer.

    ``gradient_is_exact`` is False only for an implementation whose backward is knowingly
    wrong (the tutorial's BadFFTFunction): its gradient error is expected, not a bug.
    """

    fn: Callable[..., torch.Tensor]
    backend: str
    gradient_is_exact: bool = True
    note: str = ""


@dataclass(frozen=True)
class Layer:
    """A layer: its implementations keyed by name (``NATIVE`` is the twin all others are
    compared with), its input names, and whether it takes a kernel size."""

    name: str
    description: str
    implementations: Mapping[str, Implementation]
    input_names: tuple[str, ...]
    takes_kernel: bool
    make_inputs: Callable[..., tuple[torch.Tensor, ...]] = field(repr=False)

    @property
    def native(self) -> Implementation:
        return self.implementations[NATIVE]

    def compared_implementations(self) -> dict[str, Implementation]:
        """Every implementation except the native twin."""
        return {k: v for k, v in self.implementations.items() if k != NATIVE}


def _standard_normal(shapes, dtype, device, seed: int, requires_grad: bool) -> tuple:
    """One tensor per shape, standard normal, drawn in order from one generator seeded
    with ``seed`` (the same values on every device)."""
    gen = torch.Generator().manual_seed(seed)
    return tuple(
        torch.randn(shape, generator=gen, dtype=dtype).to(device).requires_grad_(requires_grad)
        for shape in shapes
    )


def shape_argument(name: str, value, lengths: tuple[int, ...] | range,
                   form: str) -> tuple[int, ...]:
    """``value`` as a tuple of non-negative ints of one of ``lengths``, or a ValueError
    naming ``name``, what it was and ``form`` (what an input maker takes)."""
    try:
        shape = tuple(value)
    except TypeError:
        shape = ()
    if len(shape) not in lengths or not all(_is_int(v) and v >= 0 for v in shape):
        raise ValueError(f"{name} must be {form}, a tuple of non-negative ints; "
                         f"got {name}={value!r}")
    return tuple(int(v) for v in shape)


def make_conv2d_inputs(size, kernel, dtype=torch.float64, device="cpu", seed=0,
                       requires_grad=True):
    """(input (H, W), filter (kH, kW), bias (1, 1)), standard normal, seeded."""
    shapes = (shape_argument("size", size, (2,), "(H, W)"),
              shape_argument("kernel", kernel, (2,), "(kH, kW)"), (1, 1))
    return _standard_normal(shapes, dtype, device, seed, requires_grad)


def make_conv2d_nchw_inputs(size, kernel, dtype=torch.float64, device="cpu", seed=0,
                            requires_grad=True, groups=1):
    """(input (N, C_in, H, W), weight (C_out, C_in / groups, kH, kW), bias (C_out,)),
    standard normal, seeded. ``size`` is (N, C_in, H, W) and ``kernel`` (C_out, kH, kW);
    shorter tuples name the trailing dims, the missing leading ones are 1 (so (H, W) and
    (kH, kW), as the single-channel layer takes them, mean one image, one channel)."""
    size = shape_argument("size", size, (2, 3, 4), "(N, C_in, H, W), (C_in, H, W) or (H, W)")
    kernel = shape_argument("kernel", kernel, (2, 3), "(C_out, kH, kW) or (kH, kW)")
    n, c_in, height, width = (1,) * (4 - len(size)) + size
    c_out, k_h, k_w = (1,) * (3 - len(kernel)) + kernel
    # (an int as conv2d takes it: numpy ints too, not bools)
    if not (_is_int(groups) and groups >= 1 and c_in % groups == 0 and c_out % groups == 0):
        raise ValueError(f"groups must be a positive int dividing C_in ({c_in}) and C_out "
                         f"({c_out}); got groups={groups!r}")
    shapes = ((n, c_in, height, width), (c_out, c_in // int(groups), k_h, k_w), (c_out,))
    return _standard_normal(shapes, dtype, device, seed, requires_grad)


def make_fft_inputs(size, kernel=None, dtype=torch.float64, device="cpu", seed=0,
                    requires_grad=True):
    """(input,) of shape ``size`` (any leading batch dims), standard normal, seeded."""
    if kernel is not None:
        raise ValueError(f"the FFT layer takes no kernel, got kernel={kernel!r}")
    size = shape_argument("size", size, range(2, sys.maxsize), "(..., H, W)")
    return _standard_normal((size,), dtype, device, seed, requires_grad)


LAYERS: dict[str, Layer] = {
    layer.name: layer
    for layer in (
        Layer(
            name="conv2d",
            description="single-channel valid cross-correlation + bias (tutorial's ScipyConv2d)",
            implementations={
                "scipy": Implementation(scipy_conv2d, backend="numpy/scipy, method='auto'",
                                        note="picks direct, shift or fft by size (choose_method); "
                                             "cupyx.scipy for CUDA tensors when CuPy is installed"),
                **{
                    f"scipy-{method}": Implementation(
                        functools.partial(scipy_conv2d, method=method), backend=backend)
                    for method, backend in (("direct", "scipy.signal.correlate2d"),
                                            ("shift", "numpy shift-and-add"),
                                            ("fft", "scipy.fft"))
                },
                NATIVE: Implementation(native_conv2d, backend="torch.nn.functional.conv2d"),
            },
            input_names=("input", "filter", "bias"),
            takes_kernel=True,
            make_inputs=make_conv2d_inputs,
        ),
        Layer(
            name="conv2d_nchw",
            description=("batched multi-channel conv, F.conv2d semantics (stride 1, padding 0 in the "
                         "plain views; the layer-type view sets groups, stride, padding, dilation)"),
            implementations={
                "scipy": Implementation(conv2d, backend="numpy im2col + BLAS / scipy.fft / shift",
                                        note="picks im2col, fft or shift (choose_nchw_method)"),
                "scipy-im2col": Implementation(functools.partial(conv2d, method="im2col"),
                                               backend="numpy im2col + BLAS"),
                "scipy-fft": Implementation(functools.partial(conv2d, method="fft"),
                                            backend="scipy.fft (float64, certified)",
                                            note="stride 1, dilation 1, groups 1 only"),
                "scipy-shift": Implementation(functools.partial(conv2d, method="shift"),
                                              backend="numpy shift-and-add per channel pair",
                                              note="stride 1, dilation 1, groups 1 only"),
                NATIVE: Implementation(native_conv2d_nchw, backend="torch.nn.functional.conv2d"),
            },
            input_names=("input", "weight", "bias"),
            takes_kernel=True,
            make_inputs=make_conv2d_nchw_inputs,
        ),
        Layer(
            name="fft_abs",
            description="|rfft2(x)| over the last two dims",
            implementations={
                "scipy": Implementation(fft_abs, backend="scipy.fft or DFT matrices, per axis",
                                        note="picks per axis (choose_plan); cupy.fft for CUDA "
                                             "tensors when CuPy is installed"),
                "scipy-fft": Implementation(functools.partial(fft_abs, method="fft"),
                                            backend="scipy.fft (pocketfft) on both axes"),
                "scipy-matrix": Implementation(functools.partial(fft_abs, method="matrix"),
                                               backend="DFT matrices by numpy matmul (BLAS)",
                                               note="H and W up to 128 only"),
                "numpy-tutorial": Implementation(
                    incorrect_fft, backend="numpy.fft", gradient_is_exact=False,
                    note="the tutorial's BadFFTFunction: backward is knowingly wrong",
                ),
                NATIVE: Implementation(native_fft_abs, backend="torch.fft"),
            },
            input_names=("input",),
            takes_kernel=False,
            make_inputs=make_fft_inputs,
        ),
    )
}
