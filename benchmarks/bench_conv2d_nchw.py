"""The drop-in batched, multi-channel ``scipy_layers.conv2d`` (``conv2d_nchw`` in the
registry) against F.conv2d: stride 1, no padding, on real CNN layer shapes; and, in the
layer-type view, the other kinds of conv layer real networks have (depthwise, grouped,
strided, dilated, pointwise, few output channels)."""
from .common import DTYPES, _BackwardTiming, _ForwardBackwardTiming, _Memory, _Timings, skip
from .gradients import LAYOUTS, VALUES, _GradientAgreement

LAYER = "conv2d_nchw"
IMPLEMENTATIONS = ["native", "scipy"]
# Fixed list (an older commit lacking a method shows n/a): each method forced.
METHODS = ["scipy-im2col", "scipy-fft", "scipy-shift"]
# Input (N x C_in x H x W) -> output channels: real CNN layers, plus few channels with a
# large kernel. The kernel parameter is kH x kW; C_out follows from the input.
OUTPUT_CHANNELS = {
    "8x3x32x32": 16,      # CIFAR stem
    "8x16x32x32": 32,     # CIFAR block
    "1x64x56x56": 64,     # ResNet stage 1
    "1x3x224x224": 64,    # ImageNet stem (7x7)
    "4x1x128x128": 1,     # few channels, large kernel
}
SIZES = list(OUTPUT_CHANNELS)
KERNELS = ["3x3", "7x7", "15x15"]
DEFAULT_PAIRS = {("8x3x32x32", "3x3"), ("8x16x32x32", "3x3"), ("1x64x56x56", "3x3"),
                 ("1x3x224x224", "7x7"), ("4x1x128x128", "3x3"), ("4x1x128x128", "15x15")}
# CPU only: the GPU work of this project is the single-channel layers (bench_conv2d,
# bench_fft_abs); every parameter value costs asv launches even where skipped.
PARAM_NAMES = ["implementation", "size", "kernel", "dtype"]
PARAMS = [IMPLEMENTATIONS, SIZES, KERNELS, list(DTYPES)]


def weight_shape(size: str, kernel: str) -> str:
    """'8x3x32x32', '3x3' -> '16x3x3' (C_out x kH x kW), as the registry's maker takes it."""
    return f"{OUTPUT_CHANNELS[size]}x{kernel}"


def in_default_grid(implementation, size, kernel, dtype):
    return (size, kernel) in DEFAULT_PAIRS


class _Conv2dNCHWCase:
    layer = LAYER
    param_names = PARAM_NAMES
    params = PARAMS

    def in_default_grid(self, implementation, size, weight, dtype):
        return in_default_grid(implementation, size, weight.partition("x")[2], dtype)

    def setup(self, implementation, size, kernel, dtype):
        self.setup_case(implementation, size, weight_shape(size, kernel), dtype, "cpu")


class Conv2dNCHW(_Conv2dNCHWCase, _Timings):
    pass


class Conv2dNCHWBackward(_Conv2dNCHWCase, _BackwardTiming):
    pass


class Conv2dNCHWMemory(_Conv2dNCHWCase, _Memory):
    pass


class Conv2dNCHWMethods(_ForwardBackwardTiming):
    """Forward+backward of each method forced beside the rule ("scipy") and native."""

    layer = LAYER
    param_names = PARAM_NAMES
    params = [[*IMPLEMENTATIONS, *METHODS], SIZES, KERNELS, list(DTYPES)]

    def in_default_grid(self, implementation, size, weight, dtype):
        return (in_default_grid(implementation, size, weight.partition("x")[2], dtype)
                and dtype == "float32")

    def setup(self, implementation, size, kernel, dtype):
        if implementation == "scipy-shift" and OUTPUT_CHANNELS[size] > 1:
            # its loop over channel pairs is for one output channel (auto's rule); forced
            # on 64 x 64 pairs it would take seconds a call and say nothing new
            skip("scipy-shift is timed on one output channel, where auto runs it")
        self.setup_case(implementation, size, weight_shape(size, kernel), dtype, "cpu")


# One conv per kind of layer, each reaching its own path of the layer's "auto" (named
# after it); the shapes are those of MobileNet, ResNet and ResNeXt stages. The key is the
# case as scipy_layers.conv_spec writes it (input, C_out x kH x kW, then gG groups, sS
# stride, pP padding, dD dilation), which the report reads; the suite keeps the parts
# itself (a test checks they agree) so that it imports against commits older than
# conv_spec. Fixed list: parameters are the same on every machine.
LAYER_TYPES = {
    # depthwise (tall rows); depthwise at stride 2 (phases); grouped (im2col per group)
    "8x32x56x56 32x3x3 g32 p1": ("8x32x56x56", "32x3x3", {"groups": 32, "padding": 1}),
    "8x64x28x28 64x3x3 g64 s2 p1": ("8x64x28x28", "64x3x3",
                                    {"groups": 64, "stride": 2, "padding": 1}),
    "8x128x14x14 128x3x3 g8 p1": ("8x128x14x14", "128x3x3", {"groups": 8, "padding": 1}),
    # strided, dilated (im2col); pointwise (one GEMM, no window copies)
    "8x16x32x32 32x3x3 s2 p1": ("8x16x32x32", "32x3x3", {"stride": 2, "padding": 1}),
    "8x64x28x28 64x3x3 p2 d2": ("8x64x28x28", "64x3x3", {"padding": 2, "dilation": 2}),
    "8x64x28x28 128x1x1": ("8x64x28x28", "128x1x1", {}),
    # few output channels, one output channel (kn2row)
    "1x64x56x56 4x7x7 p3": ("1x64x56x56", "4x7x7", {"padding": 3}),
    "2x256x16x16 1x3x3": ("2x256x16x16", "1x3x3", {}),
}


class Conv2dNCHWLayerTypes(_ForwardBackwardTiming):
    """Forward+backward of each kind of conv layer, with conv2d's keyword arguments."""

    layer = LAYER
    param_names = ["implementation", "conv", "dtype"]
    params = [IMPLEMENTATIONS, list(LAYER_TYPES), list(DTYPES)]

    def in_default_grid(self, implementation, size, weight, dtype):
        return dtype == "float32"

    def setup(self, implementation, conv, dtype):
        size, kernel, options = LAYER_TYPES[conv]
        self.setup_case(implementation, size, kernel, dtype, "cpu",
                        options=tuple(options.items()))


class Conv2dNCHWGradients(_GradientAgreement):
    layer = LAYER
    param_names = ["implementation", "size", "kernel", "dtype", "layout", "values", "quantity"]
    params = [[*IMPLEMENTATIONS[1:], *METHODS], ["8x3x32x32", "4x1x128x128"], ["3x3", "15x15"],
              list(DTYPES), LAYOUTS, VALUES, ["output", "grad_input", "grad_weight", "grad_bias"]]

    def setup_cache(self):
        return self.error_table()

    @staticmethod
    def case(implementation, size, kernel, dtype):
        return implementation, size, weight_shape(size, kernel), dtype
