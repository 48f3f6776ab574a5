"""The memory format native ``F.conv2d`` gives its output and gradients on the CPU, so that
the batched conv hands back the same layout: channels_last where the input's or the
weight's strides are channels_last-like, else contiguous (NCHW).

ATen decides it by ``suggest_memory_format()`` of input and weight (``thnn_conv_use_channels_last``
and ``mkldnn_conv_use_channels_last`` in ATen's ConvUtils.h, float32 and float64 alike),
which reads ``is_channels_last_strides_2d_s4`` (c10/core/MemoryFormat.h): ported below.
tests/test_memory_format.py checks it against native's output and gradients on every
layout of the samples and on random strides, and against torch._prims_common's port.
"""
from __future__ import annotations

import numpy as np
import torch

from ._numpy_bridge import tensor_like, to_tensor
from ._workspace import output


def _strides_like_channels_last(tensor: torch.Tensor) -> bool:
    sizes = tensor.shape
    if len(sizes) != 4:
        return False
    # A contiguous tensor with more than one channel and more than one pixel is never
    # channels_last-like (one C call instead of the loop; ~0.3 us of a small call).
    if sizes[1] > 1 and sizes[2] * sizes[3] > 1 and tensor.is_contiguous():
        return False
    strides = tensor.stride()
    if strides[1] == 0:  # (a broadcast channel dim: ATen's default, NCHW)
        return False
    minimum = 0
    for dim in (1, 3, 2, 0):
        # ATen falls back to NCHW where size-1 dims make the order ambiguous (N111)
        if sizes[dim] == 0 or strides[dim] < minimum or (dim == 0 and minimum == strides[1]):
            return False
        minimum = strides[dim] * sizes[dim] if sizes[dim] > 1 else strides[dim]
    return True


def follows_channels_last(input: torch.Tensor, weight: torch.Tensor) -> bool:
    """Whether native F.conv2d of this 4-D input and weight returns channels_last."""
    return _strides_like_channels_last(input) or _strides_like_channels_last(weight)


def to_tensor_in_format(array, like, channels_last: bool):
    """``array`` (NCHW numpy) as a tensor with the dtype and device of ``like``: channels_last
    where ``channels_last`` (one transposing copy, into a workspace buffer: a fresh one
    would page-fault on every call past malloc's mmap threshold), else as ``to_tensor``."""
    if not channels_last:
        return to_tensor(array, like)
    n, c, h, w = array.shape
    nchw = output((n, h, w, c), array.dtype, axes=(0, 3, 1, 2))
    np.copyto(nchw, array)
    # from_numpy of a channels_last numpy array, not a permute() of a tensor: a tensor a
    # Function returns must not be a torch view (autograd would then refuse in-place
    # changes of the output, e.g. ReLU(inplace=True), which native's output allows)
    return tensor_like(torch.from_numpy(nchw), like)
