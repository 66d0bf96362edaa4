"""Keyword spotting: DS-CNN networks on a 49x10x1 MFCC input (MLPerf Tiny KWS).

DS-CNN (Zhang et al., "Hello Edge", 2017; the MLPerf Tiny KWS reference): a
Conv-BN-ReLU stem with a tall kernel, then depthwise-separable blocks
(3x3/5x5 depthwise -> BN -> ReLU -> 1x1 -> BN -> ReLU), global average pool and a
linear classifier over 12 keywords.  Searchable: the number of channels (one for
the stem and every block, as DS-CNN S/M/L differ: 64/172/276), the stem's kernel
and stride, the number of blocks, and each block's kernel size and stride.
"""
from __future__ import annotations

from typing import Any

from search_spaces import _blocks
from search_spaces._base import Chooser, FixedInputClassifier, Option, parse_positive_int, parse_shape, register_space

CHANNELS = (8, 16, 32, 64, 128, 172, 276)  # 64: MLPerf Tiny DS-CNN (S), 172: DS-CNN M, 276: DS-CNN L
STEM_KERNELS = ("10x4", "5x3", "3x3")  # height (time) x width (frequency)
STEM_STRIDES = ("1x1", "2x1", "2x2")
BLOCKS = (1, 8)  # inclusive range
KERNELS = (3, 5)
STRIDES = (1, 2)


def _pair(text: str) -> tuple[int, int]:
    h, w = text.split("x")
    return int(h), int(w)


@register_space
class KeywordSpottingSpace(FixedInputClassifier):
    name = "keyword_spotting"
    kind = "task"
    param_prefix = "kws_"
    description = (
        "DS-CNN keyword spotters on 49x10x1 MFCCs (MLPerf Tiny KWS): channels, stem kernel/stride, "
        "number of depthwise-separable blocks, per-block kernel and stride"
    )
    option_specs = {
        "num_classes": Option(12, parse_positive_int, "give the number of keywords, e.g. 12"),
        "input_shape": Option(
            [49, 10, 1], parse_shape, "give frames x coefficients x 1, e.g. '49x10x1'"
        ),
    }

    def _draw(self, ch: Chooser) -> None:
        ch.choice("channels", CHANNELS)
        ch.choice("stem_kernel", STEM_KERNELS)
        ch.choice("stem_stride", STEM_STRIDES)
        blocks = ch.integer("blocks", *BLOCKS)
        per = f"one per block; 'blocks' is {blocks}"
        for name in ("kernel", "stride"):
            ch.items(name, blocks, per)
        for i in range(blocks):
            ch.choice("kernel", KERNELS, index=i)
            ch.choice("stride", STRIDES, index=i)

    def _build(self, arch: dict, inputs: Any, keras: Any) -> Any:
        layers = keras.layers
        channels = arch["channels"]
        x = _blocks.conv_bn(keras, inputs, channels, _pair(arch["stem_kernel"]), _pair(arch["stem_stride"]), "relu")
        for kernel, stride in zip(arch["kernel"], arch["stride"]):
            x = _blocks.dw_bn(keras, x, kernel, stride, act="relu")
            x = _blocks.conv_bn(keras, x, channels, 1, act="relu")
        x = layers.GlobalAveragePooling2D()(x)
        return layers.Dense(self.options["num_classes"], name="logits")(x)
