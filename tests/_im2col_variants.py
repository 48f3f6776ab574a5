"""Run the batched conv's im2col method with each backward variant forced, whatever the
shape and dtype (scipy_layers/_nchw_kernels.py): the layout of forward's windows and of
grad_input's ("narrow": strided rows, "wide": whole padded rows, "wide-grad-input":
narrow forward, wide grad_input; stride 1 only, other strides stay narrow) times the
orientation of grad_weight's GEMM ("gy-first": gy @ cols^T, "cols-first": its transpose
cols @ gy^T), so that the sample-driven tests reach every variant on their small inputs.

    with im2col_variant("im2col-wide-grad-input-cols-first") as method:  # "im2col"
        conv2d(x, w, method=method)

Any other name passes through unchanged, so a test can list methods and variants together.
"""
import contextlib

import numpy as np

from scipy_layers import _nchw_kernels

# (WIDE_MAX_EXTRA, GRAD_INPUT_WIDE_MAX_EXTRA); -inf, not 0: 1x1 and kx1 kernels add no
# extra column, so a limit of 0 would still let them run wide.
_NEVER, _ALWAYS = float("-inf"), float("inf")
_LAYOUTS = {"narrow": (_NEVER, _NEVER), "wide-grad-input": (_NEVER, _ALWAYS),
            "wide": (_ALWAYS, _ALWAYS)}
_ORIENTATIONS = {"gy-first": False, "cols-first": True}  # GRAD_WEIGHT_COLS_FIRST
IM2COL_VARIANTS = tuple(f"im2col-{layout}-{orientation}"
                        for layout in _LAYOUTS for orientation in _ORIENTATIONS)


@contextlib.contextmanager
def im2col_variant(name: str):
    if name not in IM2COL_VARIANTS:
        yield name
        return
    layout, orientation = next((layout, orientation) for layout in _LAYOUTS
                               for orientation in _ORIENTATIONS
                               if name == f"im2col-{layout}-{orientation}")
    forward_limit, grad_input_limit = _LAYOUTS[layout]
    cols_first = _ORIENTATIONS[orientation]
    with contextlib.ExitStack() as undo:
        for attribute, value in (
                ("WIDE_MAX_EXTRA", forward_limit),
                ("GRAD_INPUT_WIDE_MAX_EXTRA", grad_input_limit),
                ("GRAD_WEIGHT_COLS_FIRST", {np.dtype(np.float32): cols_first,
                                            np.dtype(np.float64): cols_first})):
            undo.callback(setattr, _nchw_kernels, attribute, getattr(_nchw_kernels, attribute))
            setattr(_nchw_kernels, attribute, value)
        yield "im2col"
