"""The layers under ``torch.autocast``: numpy has no bfloat16, so half-precision
tensors are computed in float32 (see :func:`in_float32`)."""
from __future__ import annotations

import contextlib

import torch

from ._checks import LayerTypeError, LayerValueError

any_autocast = torch._C._is_any_autocast_enabled  # (one C call: ~0.1 us)
_HALF_TYPES = (torch.float16, torch.bfloat16)


def autocast_devices(args) -> list:
    """The device types of the tensors in ``args`` that ``torch.autocast`` is on for."""
    devices = {arg.device.type for arg in args if isinstance(arg, torch.Tensor)}
    return [device for device in devices  # (meta tensors: autocast has no such device)
            if torch.amp.is_autocast_available(device) and torch.is_autocast_enabled(device)]


def as_twins_checks_see(args) -> tuple:
    """``args`` as a native twin's argument checks should see them. Under
    ``torch.autocast`` on their device torch runs half-precision arguments itself (a conv
    in autocast's dtype, an FFT in float32); the checks, which share the layers' dtypes
    (numpy has no bfloat16), then see every tensor as a meta copy, half precision as
    float32 (no data read or copied). Elsewhere ``args`` as they are."""
    if not (any_autocast() and autocast_devices(args)):
        return args
    return tuple(arg.to("meta", torch.float32 if arg.dtype in _HALF_TYPES else arg.dtype)
                 if isinstance(arg, torch.Tensor) else arg for arg in args)


def check_twins_arguments(twin: str, layer: str, check, **named) -> None:
    """Run ``check``, the layer's argument checks, on its native twin's ``named``
    arguments (in the order the checks take them) as :func:`as_twins_checks_see` has
    them. Outside autocast a twin refuses half precision as its layer does, so that the
    two run the same inputs; the error then names the twin, not numpy's missing kernels
    alone (which are the layer's reason, not torch's)."""
    args = tuple(named.values())
    seen = as_twins_checks_see(args)
    if seen is args:  # (outside autocast)
        for name, arg in named.items():
            if not isinstance(arg, torch.Tensor):
                break  # (the checks name it: they take the arguments in this order)
            if arg.dtype in _HALF_TYPES:
                short = str(arg.dtype).removeprefix("torch.")
                if any_autocast():  # (on, but not for this tensor's device: meta, say)
                    where, way_out = (f"on {arg.device.type} tensors, which torch.autocast "
                                      f"does not cover here", "")
                else:
                    where, way_out = ("outside torch.autocast", f", or call it under "
                                      f"torch.autocast, where it takes {short} as torch does")
                raise LayerTypeError(
                    f"{name} has dtype {arg.dtype}, unsupported by {twin} {where}, as by its "
                    f"layer {layer} (numpy/scipy have no {short} kernels), so that the two "
                    f"run the same inputs; use torch.float32 or torch.float64{way_out}")
    check(*seen)


def in_float32(devices, function, *args, **kwargs):
    """``function(*args, **kwargs)`` under ``torch.autocast`` on ``devices``, as
    ``torch.amp.custom_fwd(cast_inputs=torch.float32)`` runs a custom Function: numpy
    has no bfloat16 (and autocast's float16 would lose to float32 here anyway), so the
    half-precision tensors autocast makes (say, a native layer's output before this
    one) are cast to float32 and ``function`` runs with autocast off on those devices;
    the result is float32, which later autocast ops cast as they need. Outside autocast,
    half precision is refused with a clear error, as before."""
    given = args
    cast = [isinstance(arg, torch.Tensor) and arg.dtype in _HALF_TYPES
            and arg.device.type in devices for arg in args]
    args = [arg.float() if was else arg for arg, was in zip(args, cast)]
    with contextlib.ExitStack() as stack:
        for device in devices:
            stack.enter_context(torch.autocast(device, enabled=False))
        try:
            return function(*args, **kwargs)
        except TypeError as error:
            if not any(cast):
                raise
            # (a check then names float32, which the caller never passed: say why)
            half = ", ".join(str(arg.dtype).removeprefix("torch.")
                             for arg, was in zip(given, cast) if was)
            # (in the check's own class: a stride past int64 stays a ValueError too, as
            # F.conv2d's, hostile pass 147)
            ours = isinstance(error, (LayerTypeError, LayerValueError))
            kind = type(error) if ours else LayerTypeError
            raise kind(f"{error} (under torch.autocast this layer casts float16 and "
                       f"bfloat16 tensors to float32 first; given: {half})") from error
