"""Run the batched conv's im2col method with each backward variant forced, whatever the
shape and dtype (scipy_layers/_nchw_kernels.py): the layout of forward's windows and of
grad_input's ("narrow": strided rows, "wide": whole padded rows, "wide-grad-input":
narrow forward, wide grad_input; stride 1 only, other strides stay narrow) times the
orientation of grad_weight's GEMM ("gy-first": gy @ cols^T, "cols-first": its transpose
cols @ gy^T), each with the kn2row layout off; "-bias-apart" (narrow, wide): the bias
added and summed in passes of its own instead of riding in the GEMMs (BIAS_IN_GEMM off);
"im2col-kn2row": kn2row wherever it
can run (stride 1, two or more input channels a group, any output channels and output
size; the rules above elsewhere); and "im2col-bands-one-row" / "im2col-bands-two-rows":
the wide layout in bands of output rows (_im2col_bands) wherever it runs wide with one
group, bands of one row (grad_weight gy-first) or two (cols-first: a short last band
on odd output heights), so that the sample-driven tests reach every variant on their
small inputs. Every variant also cuts the batch into chunks of one image
(CHUNK_BYTES), which the default reaches only on large inputs.

    with im2col_variant("im2col-wide-grad-input-cols-first") as method:  # "im2col"
        conv2d(x, w, method=method)

Any other name passes through unchanged, so a test can list methods and variants together.
"""
import contextlib
from unittest import mock

from scipy_layers import _im2col_bands, _im2col_layout, _kn2row, _windows

# (WIDE_MAX_EXTRA, GRAD_INPUT_WIDE_MAX_EXTRA); -inf, not 0: 1x1 and kx1 kernels add no
# extra column, so a limit of 0 would still let them run wide. Every variant lifts
# WIDE_MAX_OUTPUT_ROWS, so that the wide ones run whatever the channel counts.
_NEVER, _ALWAYS = float("-inf"), float("inf")
_LAYOUTS = {"narrow": (_NEVER, _NEVER), "wide-grad-input": (_NEVER, _ALWAYS),
            "wide": (_ALWAYS, _ALWAYS)}
_ORIENTATIONS = {"gy-first": False, "cols-first": True}  # grad_weight_cols_first
# variant name -> the _im2col_layout attributes it sets
_SETTINGS = {
    f"im2col-{layout}-{orientation}": {
        "WIDE_MAX_EXTRA": forward_limit, "GRAD_INPUT_WIDE_MAX_EXTRA": grad_input_limit,
        "WIDE_MAX_OUTPUT_ROWS": _ALWAYS,
        "GRAD_WEIGHT_COLS_FIRST_ROWS": dict.fromkeys(
            _im2col_layout.GRAD_WEIGHT_COLS_FIRST_ROWS, (0, _ALWAYS) if cols_first else (1, 0))}
    for layout, (forward_limit, grad_input_limit) in _LAYOUTS.items()
    for orientation, cols_first in _ORIENTATIONS.items()}
# The bias in its own passes (an add after forward's GEMM or on the wide copy out, the
# sum of gy), not as a row of the GEMMs (BIAS_IN_GEMM): what groups > 1 and a bias
# that is not finite take.
_SETTINGS.update({
    f"im2col-{layout}-bias-apart": {**_SETTINGS[f"im2col-{layout}-gy-first"],
                                    "BIAS_IN_GEMM": False}
    for layout in ("narrow", "wide")})
_ONE_IMAGE_CHUNKS = {"CHUNK_BYTES": 1, "MIN_TAP_BYTES": 0, "MAX_CHUNK_BYTES": _ALWAYS}
_KN2ROW_OFF = {"MAX_OUTPUT_RATIO": dict.fromkeys(_kn2row.MAX_OUTPUT_RATIO, _NEVER)}
_KN2ROW_SETTINGS = dict.fromkeys(_SETTINGS, _KN2ROW_OFF)
_SETTINGS["im2col-kn2row"] = {}
_KN2ROW_SETTINGS["im2col-kn2row"] = {
    "MAX_OUTPUT_RATIO": dict.fromkeys(_kn2row.MAX_OUTPUT_RATIO, _ALWAYS),
    "MAX_COMPUTED_PER_OUTPUT": _ALWAYS, "MAX_ROWS_PER_WINDOW": _ALWAYS}
# Bands wherever the wide layout runs with one group (the other variants never band)
_BANDS_OFF = {"MIN_IMAGE_WINDOW_BYTES": dict.fromkeys(_im2col_bands.MIN_IMAGE_WINDOW_BYTES,
                                                       _ALWAYS)}
_BANDS_SETTINGS = dict.fromkeys(_SETTINGS, _BANDS_OFF)
for _rows, _orientation in ((1, "gy-first"), (2, "cols-first")):
    _name = f"im2col-bands-{'one-row' if _rows == 1 else 'two-rows'}"
    _SETTINGS[_name] = _SETTINGS[f"im2col-wide-{_orientation}"]
    _KN2ROW_SETTINGS[_name] = _KN2ROW_OFF
    _BANDS_SETTINGS[_name] = {
        "MIN_IMAGE_WINDOW_BYTES": dict.fromkeys(_im2col_bands.MIN_IMAGE_WINDOW_BYTES, -1),
        "MIN_BAND_COLUMNS": 0, "band_rows": lambda *_, rows=_rows: rows}
IM2COL_VARIANTS = tuple(_SETTINGS)


@contextlib.contextmanager
def im2col_variant(name: str):
    if name not in _SETTINGS:
        yield name
        return
    with contextlib.ExitStack() as stack:
        for module, settings in ((_im2col_layout, _SETTINGS[name]),
                                 (_kn2row, _KN2ROW_SETTINGS[name]),
                                 (_im2col_bands, _BANDS_SETTINGS.get(name)),
                                 (_windows, _ONE_IMAGE_CHUNKS)):
            if settings:
                stack.enter_context(mock.patch.multiple(module, **settings))
        yield "im2col"
