"""Image classification: inverted-residual networks (MobileNetV2/V3, EfficientNet-lite).

The macro structure is MobileNetV2's: a 3x3 stride-2 stem, one depthwise-separable
block, six searchable stages and a 1x1 head conv, global average pool and a linear
classifier.  Per network: input resolution, width multiplier, activation (ReLU,
ReLU6 or hard-swish).  Per stage (MnasNet's factorised space): depth, expansion
ratio, depthwise kernel size and squeeze-excite on/off.

Resolutions run from 32 (CIFAR-sized, MCU) to 224 (ImageNet), widths from 0.25 to
1.4 (MobileNetV2's largest).  The head conv's width scales with the width
multiplier too (MobileNetV2 keeps 1280 below 1.0; scaling it keeps the smallest
networks MCU-sized).  The classifier has 10 classes by default (MLPerf Tiny's image
classification task); ``num_classes=1000`` gives ImageNet heads, whose 1000-way
weights then dominate the latency of the smallest networks on Ethos-U.

Every operator choice runs on the Ethos-U NPU under Vela 5.2 (hard-swish as
HARD_SWISH; the SE gate as MEAN, 1x1 convs, LOGISTIC and a broadcast MUL).
"""
from __future__ import annotations

from typing import Any

from search_spaces import _blocks
from search_spaces._base import Chooser, Option, SearchSpace, parse_positive_int, register_space

RESOLUTIONS = (32, 48, 64, 96, 128, 160, 192, 224)
WIDTHS = (0.1, 0.25, 0.35, 0.5, 0.75, 1.0, 1.4)  # 0.1 and 0.35: the MCU models of Edge Impulse
ACTIVATIONS = _blocks.ACTIVATIONS
EXPANSIONS = (3, 4, 6)
KERNELS = (3, 5, 7)
SE = (False, True)
# (base output channels, stride of the first block) of the six searchable stages
STAGES = ((24, 2), (32, 2), (64, 2), (96, 1), (160, 2), (320, 1))
MAX_DEPTHS = (2, 3, 4, 3, 3, 1)  # blocks per stage: 1 up to MobileNetV2's
STEM_CHANNELS = 32
FIRST_BLOCK_CHANNELS = 16
HEAD_CHANNELS = 1280


@register_space
class ImageClassificationSpace(SearchSpace):
    name = "image_classification"
    kind = "task"
    param_prefix = "ic_"
    description = (
        "Inverted-residual image classifiers (MobileNetV2/V3, EfficientNet-lite style): "
        "resolution, width, activation; per stage depth, expansion, kernel, squeeze-excite"
    )
    option_specs = {
        "num_classes": Option(10, parse_positive_int, "give the number of classes, e.g. 1000 for ImageNet"),
    }

    def _draw(self, ch: Chooser) -> None:
        ch.choice("resolution", RESOLUTIONS)
        ch.choice("width", WIDTHS)
        ch.choice("activation", ACTIVATIONS)
        per = "one per stage"
        for name in ("depth", "expansion", "kernel", "se"):
            ch.items(name, len(STAGES), per)
        for i in range(len(STAGES)):
            ch.integer("depth", 1, MAX_DEPTHS[i], index=i)
            ch.choice("expansion", EXPANSIONS, index=i)
            ch.choice("kernel", KERNELS, index=i)
            ch.choice("se", SE, index=i)

    def input_shape(self, arch: Any = None) -> tuple[int, int, int]:
        arch = self._input_dependent(arch, "resolution")
        return (arch["resolution"], arch["resolution"], 3)

    def output_shapes(self, arch: Any) -> list[tuple[int, ...]]:
        self.decode(arch)
        return [(1, self.options["num_classes"])]

    def _build(self, arch: dict, inputs: Any, keras: Any) -> Any:
        layers = keras.layers
        width, act = arch["width"], arch["activation"]
        x = _blocks.conv_bn(keras, inputs, _blocks.make_divisible(STEM_CHANNELS * width), 3, 2, act)
        x = _blocks.inverted_residual(
            keras, x, _blocks.make_divisible(FIRST_BLOCK_CHANNELS * width), 1, 3, 1, act
        )
        for i, (channels, stride) in enumerate(STAGES):
            out = _blocks.make_divisible(channels * width)
            for b in range(arch["depth"][i]):
                x = _blocks.inverted_residual(
                    keras, x, out, arch["expansion"][i], arch["kernel"][i], stride if b == 0 else 1, act,
                    se=arch["se"][i],
                )
        head = _blocks.make_divisible(HEAD_CHANNELS * width)
        x = _blocks.conv_bn(keras, x, head, 1, act=act)
        x = layers.GlobalAveragePooling2D()(x)
        return layers.Dense(self.options["num_classes"], name="logits")(x)
