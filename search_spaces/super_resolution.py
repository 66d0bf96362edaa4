"""Super-resolution: FSRCNN / ESPCN style networks.

FSRCNN (Dong et al., 2016): feature extraction conv (d filters) -> 1x1 shrink to s
-> m mapping convs -> 1x1 expand back to d -> upsampling.  ESPCN (Shi et al., 2016)
is the case without shrinking: convs at low resolution, then a conv to r*r*C
channels and depth-to-space.  Searchable: low-resolution input size, upscale factor
(x2/x3/x4), upsampler (depth-to-space, or stride-2 transposed convolutions for x2
and x4), feature width and kernel, shrink width (0 = none), number and kernels of
the mapping layers, upsampling kernel, activation (ReLU or FSRCNN's PReLU).

NPU notes (Vela 5.2): DEPTH_TO_SPACE runs on the CPU, so depth-to-space is written
as reshapes and rank-3 transposes that run on the NPU (same output, see
``_blocks.depth_to_space``); TRANSPOSE_CONV runs on the NPU only with stride 2,
hence no transposed-convolution upsampler for x3.
"""
from __future__ import annotations

from typing import Any

from search_spaces import _blocks
from search_spaces._base import Chooser, Option, SearchSpace, parse_positive_int, register_space

INPUT_SIZES = (24, 32, 48, 64, 96)  # low-resolution height = width
SCALES = (2, 3, 4)
UPSAMPLERS = ("depth_to_space", "transpose_conv")
FEATURE_CHANNELS = (16, 24, 32, 48, 56, 64)
FEATURE_KERNELS = (3, 5)
SHRINK_CHANNELS = (0, 8, 12, 16)  # 0: no shrink/expand layers (ESPCN style)
MAPPING_LAYERS = (0, 4)  # inclusive range
MAPPING_KERNELS = (3, 5)
UPSAMPLE_KERNELS = (3, 5, 9)
ACTIVATIONS = ("relu", "prelu")


def _channels(value: Any) -> int:
    number = parse_positive_int(value)
    if number not in (1, 3):
        raise ValueError("expected 1 (luminance) or 3 (RGB)")
    return number


@register_space
class SuperResolutionSpace(SearchSpace):
    name = "super_resolution"
    kind = "task"
    param_prefix = "sr_"
    description = (
        "FSRCNN/ESPCN super-resolution: input size, x2/x3/x4 through depth-to-space or transposed "
        "convolution, feature/shrink/mapping layers, widths and kernels"
    )
    option_specs = {
        "channels": Option(1, _channels, "give 1 (the Y channel, as FSRCNN and ESPCN) or 3 (RGB)"),
    }

    def _draw(self, ch: Chooser) -> None:
        ch.choice("input_size", INPUT_SIZES)
        scale = ch.choice("scale", SCALES)
        # stride-3 TRANSPOSE_CONV is not an NPU operator: x3 always uses depth-to-space
        ch.choice("upsampler", UPSAMPLERS if scale != 3 else UPSAMPLERS[:1])
        ch.choice("feature_channels", FEATURE_CHANNELS)
        ch.choice("feature_kernel", FEATURE_KERNELS)
        ch.choice("shrink_channels", SHRINK_CHANNELS)
        layers = ch.integer("mapping_layers", *MAPPING_LAYERS)
        for i in ch.items("mapping_kernel", layers, f"one per mapping layer; 'mapping_layers' is {layers}"):
            ch.choice("mapping_kernel", MAPPING_KERNELS, index=i)
        ch.choice("upsample_kernel", UPSAMPLE_KERNELS)
        ch.choice("activation", ACTIVATIONS)

    def input_shape(self, arch: Any = None) -> tuple[int, int, int]:
        arch = self._input_dependent(arch, "input_size")
        return (arch["input_size"], arch["input_size"], self.options["channels"])

    def output_shapes(self, arch: Any) -> list[tuple[int, ...]]:
        arch = self.decode(arch)
        size = arch["input_size"] * arch["scale"]
        return [(1, size, size, self.options["channels"])]

    def _build(self, arch: dict, inputs: Any, keras: Any) -> Any:
        layers = keras.layers
        channels = self.options["channels"]

        def conv(x, filters, kernel, act=True):
            x = layers.Conv2D(filters, kernel, padding="same")(x)
            if not act:
                return x
            if arch["activation"] == "prelu":
                return layers.PReLU(shared_axes=[1, 2])(x)
            return layers.ReLU()(x)

        d, s = arch["feature_channels"], arch["shrink_channels"]
        x = conv(inputs, d, arch["feature_kernel"])
        if s:
            x = conv(x, s, 1)
        for kernel in arch["mapping_kernel"]:
            x = conv(x, s or d, kernel)
        if s:
            x = conv(x, d, 1)
        r, k = arch["scale"], arch["upsample_kernel"]
        if arch["upsampler"] == "depth_to_space":
            x = conv(x, channels * r * r, k, act=False)
            return _blocks.depth_to_space(keras, x, r)
        stages = {2: 1, 4: 2}[r]
        for stage in range(stages):
            last = stage == stages - 1
            x = layers.Conv2DTranspose(channels if last else d, k, strides=2, padding="same")(x)
            if not last:
                x = layers.PReLU(shared_axes=[1, 2])(x) if arch["activation"] == "prelu" else layers.ReLU()(x)
        return x
