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
from .nn import conv2d, make_conv2d_nchw_inputs, native_conv2d_nchw, shape_argument

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


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def make_conv2d_inputs(size, kernel, dtype=torch.float64, device="cpu", seed=0,
                       requires_grad=True):
    """(input (H, W), filter (kH, kW), bias (1, 1)), standard normal, seeded."""
    shapes = (shape_argument("size", size, (2,), "(H, W)"),
              shape_argument("kernel", kernel, (2,), "(kH, kW)"), (1, 1))
    gen = _generator(seed)
    return tuple(
        torch.randn(shape, generator=gen, dtype=dtype).to(device).requires_grad_(requires_grad)
        for shape in shapes
    )


def make_fft_inputs(size, kernel=None, dtype=torch.float64, device="cpu", seed=0,
                    requires_grad=True):
    """(input,) of shape ``size`` (any leading batch dims), standard normal, seeded."""
    if kernel is not None:
        raise ValueError(f"the FFT layer takes no kernel, got kernel={kernel!r}")
    size = shape_argument("size", size, range(2, sys.maxsize), "(..., H, W)")
    gen = _generator(seed)
    x = torch.randn(size, generator=gen, dtype=dtype).to(device)
    return (x.requires_grad_(requires_grad),)


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
