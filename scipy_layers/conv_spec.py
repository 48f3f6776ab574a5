"""A batched conv case written as one readable string, for the asv suite's layer-type
view, its report and tools/side_by_side.py:

    "8x64x28x28 64x3x3 g64 s2 p1"

the input N x C x H x W, then C_out x kH x kW, then conv2d's keyword arguments by letter,
each at most once: gG groups, sS stride, pP padding, dD dilation (the defaults 1, 1, 0, 1
when absent). The weight is C_out x C/G x kH x kW, as F.conv2d takes it.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

# letter -> (conv2d's keyword, its smallest value)
OPTION_LETTERS = {"g": ("groups", 1), "s": ("stride", 1), "p": ("padding", 0),
                  "d": ("dilation", 1)}
_DEFAULTS = {"groups": 1, "stride": 1, "padding": 0, "dilation": 1}
OPTIONS_HELP = ("gG (groups >= 1), sS (stride >= 1), pP (padding >= 0), dD (dilation >= 1), "
                "each at most once")


def parse_options(fields) -> dict:
    """{'groups': G, ...} from a list of fields like ['g4', 's2']; ValueError naming a bad
    field (ASCII digits only: '٢' or '２' are not read as 2)."""
    if not isinstance(fields, (list, tuple)):
        raise ValueError(f"options must be a list of fields like ['g4', 's2'], got "
                         f"{fields!r:.60}")
    options = {}
    for field in fields:
        # (at most 9 digits: no conv is larger, and int() refuses 4300)
        match = re.fullmatch(r"([gspd])([0-9]{1,9})", field) if isinstance(field, str) else None
        name, smallest = OPTION_LETTERS.get(match.group(1) if match else "", (None, 0))
        if name is None or int(match.group(2)) < smallest:
            raise ValueError(f"{field!r:.60} is not one of {OPTIONS_HELP}")
        if name in options:
            raise ValueError(f"{field!r}: {name} is given twice")
        options[name] = int(match.group(2))
    return options


def _dims(text: str, count: int, what: str) -> tuple[int, ...]:
    parts = text.split("x")
    if len(parts) != count or not all(re.fullmatch("[0-9]{1,9}", p) and int(p) > 0
                                      for p in parts):
        raise ValueError(f"{what} must be {count} positive ints (up to 9 digits) joined by "
                         f"'x', got {text!r:.60}")
    return tuple(int(p) for p in parts)


def output_hw(size_hw, kernel_hw, stride=1, padding=0, dilation=1) -> tuple[int, ...]:
    """F.conv2d's output (Ho, Wo) for an input (H, W) and a kernel (kH, kW), one int each
    for stride, padding and dilation: (H + 2p - d (kH - 1) - 1) // s + 1."""
    return tuple((n + 2 * padding - dilation * (k - 1) - 1) // stride + 1
                 for n, k in zip(size_hw, kernel_hw))


@dataclass(frozen=True)
class ConvCase:
    """One batched conv: input (N, C, H, W), kernel (C_out, kH, kW) and conv2d's options."""
    size: tuple[int, int, int, int]
    kernel: tuple[int, int, int]
    groups: int = 1
    stride: int = 1
    padding: int = 0
    dilation: int = 1

    def __post_init__(self):
        """ValueError unless conv2d runs the case: groups dividing both channel counts, the
        kernel (dilated) within the padded input."""
        channels, out_channels = self.size[1], self.kernel[0]
        if channels % self.groups or out_channels % self.groups:
            raise ValueError(f"groups={self.groups} must divide C ({channels}) and C_out "
                             f"({out_channels})")
        if min(self.output_hw) < 1:
            raise ValueError("the kernel's extent (dilated) exceeds the padded input")

    @property
    def options(self) -> dict:
        """conv2d's keyword arguments that differ from their defaults."""
        return {name: getattr(self, name) for name in _DEFAULTS
                if getattr(self, name) != _DEFAULTS[name]}

    @property
    def weight_shape(self) -> tuple[int, int, int, int]:
        c_out, k_h, k_w = self.kernel
        return c_out, self.size[1] // self.groups, k_h, k_w

    @property
    def output_hw(self) -> tuple[int, int]:
        """(Ho, Wo), as F.conv2d computes them."""
        return output_hw(self.size[2:], self.kernel[1:], self.stride, self.padding,
                         self.dilation)

    def __str__(self) -> str:
        given = "".join(f" {letter}{self.options[name]}"
                        for letter, (name, _) in OPTION_LETTERS.items() if name in self.options)
        return f"{'x'.join(map(str, self.size))} {'x'.join(map(str, self.kernel))}{given}"


def parse_conv_case(text: str) -> ConvCase:
    """The ConvCase a string names; ValueError saying what is wrong and what is accepted."""
    # (split on ASCII spaces and tabs only, as the strings are written)
    fields = re.split(r"[ \t]+", text.strip(" \t")) if isinstance(text, str) else []
    if len(fields) < 2:
        raise ValueError(f"conv case {text!r:.80}: expected 'NxCxHxW C_outxkHxkW' and options "
                         f"({OPTIONS_HELP}), e.g. '8x64x28x28 64x3x3 g64 s2 p1'")
    try:
        case = ConvCase(_dims(fields[0], 4, "the input"), _dims(fields[1], 3, "the kernel"),
                        **parse_options(fields[2:]))
    except ValueError as error:
        raise ValueError(f"conv case {text!r:.80}: {error}") from None
    return case
