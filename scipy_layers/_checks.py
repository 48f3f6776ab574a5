"""Argument checks shared by every layer.

Each check runs before any numpy/scipy call, so a user sees which argument was wrong,
what it was, and what is accepted, instead of a traceback from deep inside numpy.
"""
from __future__ import annotations

import os
import sys
from typing import NoReturn

import torch

SUPPORTED_DTYPES = (torch.float32, torch.float64)
# the common case's fast checks (a layer's ``_plainly_valid``): exact types, one C call each
PLAIN_TENSORS = (torch.Tensor, torch.nn.Parameter)
STRIDED = torch.strided
_LOW_PRECISION = (torch.float16, torch.bfloat16)


class LayerValueError(ValueError, RuntimeError):
    """A bad argument value. A ValueError, as every layer documents, and a RuntimeError,
    the class native torch raises for nearly every bad tensor argument (F.conv2d's
    shapes, groups, strides and padding; torch.fft's), so that code written against
    either catches it."""


class LayerTypeError(TypeError, RuntimeError):
    """A bad argument type. A TypeError, as every layer documents, and a RuntimeError, as
    native torch raises for a tensor of the wrong dtype, layout or kind (an integer or
    sparse weight, mismatched dtypes, a nested tensor), so that code written against
    either catches it."""


class EmptyDimensionError(LayerValueError):
    """A tensor is empty in a dim that must hold data (native torch: a RuntimeError)."""


def plain_cpu_floats(first, second, optional) -> bool:
    """Whether ``first``, ``second`` and ``optional`` (or None) are plain tensors
    (torch.Tensor or Parameter, no subclass), on the CPU, dense and not nested, of one
    dtype, float32 or float64: everything the argument checks read beyond shapes, for
    the layers' fast paths (_conv_args._plainly_valid, _nchw_args._plain_call_key). Each
    attribute read once, in one frame: inside a forward+backward every check costs
    several times what it does in a loop."""
    if not (type(first) in PLAIN_TENSORS and type(second) in PLAIN_TENSORS
            and (optional is None or type(optional) in PLAIN_TENSORS)):
        return False
    dtype = first.dtype
    if not (dtype in SUPPORTED_DTYPES and second.dtype is dtype and first.is_cpu
            and second.is_cpu and not first.is_nested and not second.is_nested
            and first.layout is STRIDED and second.layout is STRIDED):
        return False
    return optional is None or (optional.dtype is dtype and optional.is_cpu
                                and not optional.is_nested and optional.layout is STRIDED)


def check_float_tensor(name: str, value, *, ndim: int | None = None, min_ndim: int | None = None,
                       may_be_empty: bool = False):
    """Check that ``value`` is a float32/float64 tensor of the given rank, and non-empty
    unless ``may_be_empty`` (then the caller checks which dims may be 0, with
    :func:`check_dims_not_empty`)."""
    if not isinstance(value, torch.Tensor):
        raise LayerTypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
    if value.is_nested:  # (a strided nested tensor would pass the checks below)
        raise LayerTypeError(f"{name} is a nested tensor, which numpy cannot read as one array; "
                             f"pass its tensors one by one (.unbind()) or as one padded tensor "
                             f"(torch.nested.to_padded_tensor)")
    if value.layout != torch.strided:
        raise LayerTypeError(f"{name} must be a dense (strided) tensor, got layout {value.layout}; "
                             f"call .to_dense() first")
    if value.dtype not in SUPPORTED_DTYPES:  # (one test on the common path)
        if value.dtype in _LOW_PRECISION:
            raise LayerTypeError(
                f"{name} has dtype {value.dtype}, which is unsupported: numpy/scipy have no "
                f"{str(value.dtype).removeprefix('torch.')} kernels; use torch.float32 or "
                f"torch.float64")
        raise LayerTypeError(
            f"{name} must be a floating-point tensor of dtype torch.float32 or torch.float64, "
            f"got {value.dtype}"
        )
    if ndim is not None and value.dim() != ndim:
        raise LayerValueError(
            f"{name} must be {ndim}-D, got a {value.dim()}-D tensor of shape {tuple(value.shape)}"
        )
    if min_ndim is not None and value.dim() < min_ndim:
        raise LayerValueError(
            f"{name} must have at least {min_ndim} dims, got a {value.dim()}-D tensor "
            f"of shape {tuple(value.shape)}"
        )
    if not may_be_empty and value.numel() == 0:
        raise EmptyDimensionError(f"{name} must not be empty, got shape {tuple(value.shape)}")


def check_dims_not_empty(name: str, value, dims: dict[int, str], may_be_empty: str) -> None:
    """Raise :class:`EmptyDimensionError` naming ``name`` if any of ``dims`` (index ->
    name of the dim) is 0; ``may_be_empty`` says which dims may be."""
    if all(value.shape):  # (the common case, without building the list below)
        return
    empty = [dim_name for dim, dim_name in dims.items() if value.shape[dim] == 0]
    if empty:
        raise EmptyDimensionError(
            f"{name} must not be empty in {' or '.join(empty)}, got shape "
            f"{tuple(value.shape)}; only {may_be_empty} may be 0")


def check_method_name(method, accepted: tuple) -> None:
    """A ValueError naming the accepted methods unless ``method`` is one of them. Only a
    str can be (an array's ``in`` would compare elementwise, a 0-d array slip through)."""
    if not (isinstance(method, str) and method in accepted):
        raise LayerValueError(f"method must be one of {', '.join(map(repr, accepted))}; "
                              f"got {method!r}")


def check_same_dtype_and_device(reference_name: str, reference: torch.Tensor, **others) -> None:
    """Check that every tensor in ``others`` matches ``reference`` in dtype and device."""
    for name, value in others.items():
        if value is None:
            continue
        if value.dtype != reference.dtype:
            raise LayerTypeError(
                f"{name} has dtype {value.dtype} but {reference_name} has {reference.dtype}; "
                f"all arguments must share one dtype"
            )
        # (two CPU tensors share the one CPU device: skip making two torch.device objects)
        if not (value.is_cpu and reference.is_cpu) and value.device != reference.device:
            raise LayerValueError(
                f"{name} is on device {value.device} but {reference_name} is on "
                f"{reference.device}; all arguments must be on one device"
            )


class LayerMemoryError(MemoryError, RuntimeError):
    """A layer ran out of memory (:func:`raise_out_of_memory`); a MemoryError, so code that
    catches numpy's keeps working, and a RuntimeError, as native torch's allocator raises
    ("DefaultCPUAllocator: can't allocate memory")."""


def raise_out_of_memory(layer: str, tensors, error: MemoryError) -> NoReturn:
    """For a layer's call that caught ``error``: a MemoryError naming the layer and its
    tensors' shapes, numpy's error its cause, in place of numpy's own ("Unable to allocate
    4.00 TiB for an array with shape (1, 1, 1099511627776)"), which names an internal
    working array (an expanded input, say, whose stride-0 dims numpy copies out), or of a
    plain one (pocketfft's, Python's). ``error`` itself, raised again, where it should
    pass on as it came: one a layer named already (torch.func runs a layer's vmap or
    forward-mode rule inside its outer call, each calling the layer again: named once,
    by the innermost call), or another library's MemoryError subclass (CuPy's
    ``cupy.cuda.memory.OutOfMemoryError`` on the GPU path: callers catch it by its type,
    to free CuPy's pool and retry, and it is about GPU memory; hostile pass 113)."""
    kind = type(error)
    if kind is not MemoryError and kind.__module__.partition(".")[0] != "numpy":
        raise error  # (LayerMemoryError included)
    if kind is MemoryError and not _raised_in_a_library(error):
        raise error  # (a user's hook inside the call: a saved-tensors pack hook, say)
    shapes = ", ".join(f"{tuple(tensor.shape)} {str(tensor.dtype).removeprefix('torch.')}"
                       for tensor in tensors if isinstance(tensor, torch.Tensor))
    raise LayerMemoryError(
        f"{layer} ran out of memory on tensors of shape {shapes}: {error} (its numpy "
        f"working arrays are of the order of the inputs' and output's dense size, "
        f"expanded dims included); give smaller or fewer images") from error


# Where a plain MemoryError from a layer's own allocations is raised (pocketfft's C
# raises in scipy.fft's Python, Python's own in ours; numpy's has a class of its own): one
# whose innermost frame lies elsewhere came from code of the user's that the call ran (a
# saved_tensors_hooks pack hook, run as forward saves its tensors), and is theirs to read
# as they raised it.
_LIBRARIES = ("scipy_layers", "numpy", "scipy")


def _raised_in_a_library(error: BaseException) -> bool:
    frame = error.__traceback__
    if frame is None:
        return True
    while frame.tb_next is not None:
        frame = frame.tb_next
    filename = os.path.abspath(frame.tb_frame.f_code.co_filename)
    for name in _LIBRARIES:
        module = sys.modules.get(name)
        root = os.path.dirname(getattr(module, "__file__", None) or "") if module else ""
        if root and filename.startswith(root + os.sep):
            return True
    return False
