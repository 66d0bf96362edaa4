"""Object detection: SSDLite detectors (MobileNetV2 backbone, Sandler et al., 2018).

An inverted-residual backbone (the image-classification macro structure, ReLU6, no
squeeze-excite) feeds multi-scale heads: as SSDLite-MobileNetV2 does, the expansion
output of the first stride-32 block (stride 16; and the same at stride 8 when
``min_feature_stride`` is 8), a 1x1 conv at stride 32 and up to four SSDLite extra
layers (1x1 -> 3x3 depthwise stride 2 -> 1x1).  Each feature map gets a box head
and a class head (depthwise -> BN -> ReLU6 -> 1x1 conv).  The raw outputs are
reshaped and concatenated: ``boxes`` ``(1, N, 4)`` and ``scores``
``(1, N, num_classes + 1)`` (background included), with no NMS post-processing
operator in the graph.

Searchable: input resolution (96 to 320), width (0.1, an MCU detector, to 1.4),
per-stage depth/expansion/kernel, the finest feature stride (8, 16 or 32), number
of extra layers, head kernel and anchors per location.  20 classes by default
(PASCAL VOC); ``num_classes=90`` gives COCO heads, whose weights then dominate the
latency of the smallest detectors on Ethos-U.
"""
from __future__ import annotations

from typing import Any

from search_spaces import _blocks
from search_spaces._base import Chooser, Option, SearchSpace, parse_positive_int, register_space
from search_spaces.image_classification import FIRST_BLOCK_CHANNELS, MAX_DEPTHS, STAGES, STEM_CHANNELS

RESOLUTIONS = (96, 128, 160, 224, 320)
WIDTHS = (0.1, 0.25, 0.5, 1.0, 1.4)  # 0.1: the MCU detectors of Edge Impulse FOMO
EXPANSIONS = (3, 4, 6)
KERNELS = (3, 5)
EXTRA_LAYERS = (0, 4)  # inclusive range
EXTRA_CHANNELS = (512, 256, 256, 128)  # SSDLite's extra feature layers, scaled by width
HEAD_KERNELS = (3, 5)
ANCHORS = (3, 6)
STRIDE32_CHANNELS = 1280
FEATURE_STRIDES = (8, 16, 32)  # the finest feature map with a head
# stride -> the stage whose first block (stride 2) leaves that stride: its expansion
# output is the feature map (SSDLite-MobileNetV2 taps layer_15/expansion_output, 576
# channels at stride 16 = stage 4's first block; stride 8 is the same rule one stage up)
TAP_STAGES = {8: 2, 16: 4}


def _feature_sizes(resolution: int, min_stride: int, extra_layers: int) -> list[int]:
    size = _blocks.same_size(resolution, 2)  # stem
    taps = {stage for stride, stage in TAP_STAGES.items() if stride >= min_stride}
    sizes = []
    for i, (_, stride) in enumerate(STAGES):
        if i in taps:
            sizes.append(size)  # before the stage's stride-2 depthwise
        size = _blocks.same_size(size, stride)
    sizes.append(size)  # stride 32
    for _ in range(extra_layers):
        size = _blocks.same_size(size, 2)
        sizes.append(size)
    return sizes


@register_space
class ObjectDetectionSpace(SearchSpace):
    name = "object_detection"
    kind = "task"
    param_prefix = "od_"
    description = (
        "SSDLite detectors: inverted-residual backbone, multi-scale box/class heads, concatenated raw "
        "outputs (no NMS); resolution 96-320, width, per-stage depth/expansion/kernel, extra layers, anchors"
    )
    option_specs = {
        "num_classes": Option(
            20, parse_positive_int, "give the number of object classes without background, e.g. 90 for COCO"
        ),
    }

    def _draw(self, ch: Chooser) -> None:
        ch.choice("resolution", RESOLUTIONS)
        ch.choice("width", WIDTHS)
        per = "one per stage"
        for name in ("depth", "expansion", "kernel"):
            ch.items(name, len(STAGES), per)
        for i in range(len(STAGES)):
            ch.integer("depth", 1, MAX_DEPTHS[i], index=i)
            ch.choice("expansion", EXPANSIONS, index=i)
            ch.choice("kernel", KERNELS, index=i)
        ch.choice("min_feature_stride", FEATURE_STRIDES)
        ch.integer("extra_layers", *EXTRA_LAYERS)
        ch.choice("head_kernel", HEAD_KERNELS)
        ch.choice("anchors", ANCHORS)

    def input_shape(self, arch: Any = None) -> tuple[int, int, int]:
        arch = self._input_dependent(arch, "resolution")
        return (arch["resolution"], arch["resolution"], 3)

    def num_boxes(self, arch: Any) -> int:
        """N, the number of anchor boxes the detector scores."""
        arch = self.decode(arch)
        sizes = _feature_sizes(arch["resolution"], arch["min_feature_stride"], arch["extra_layers"])
        return sum(size * size * arch["anchors"] for size in sizes)

    def output_shapes(self, arch: Any) -> list[tuple[int, ...]]:
        n = self.num_boxes(arch)
        return [(1, n, 4), (1, n, self.options["num_classes"] + 1)]

    def _build(self, arch: dict, inputs: Any, keras: Any) -> Any:
        layers = keras.layers
        width, act = arch["width"], "relu6"
        div = _blocks.make_divisible
        x = _blocks.conv_bn(keras, inputs, div(STEM_CHANNELS * width), 3, 2, act)
        x = _blocks.inverted_residual(keras, x, div(FIRST_BLOCK_CHANNELS * width), 1, 3, 1, act)
        taps = {stage for stride, stage in TAP_STAGES.items() if stride >= arch["min_feature_stride"]}
        features: list = []
        for i, (channels, stride) in enumerate(STAGES):
            for b in range(arch["depth"][i]):
                x = _blocks.inverted_residual(
                    keras, x, div(channels * width), arch["expansion"][i], arch["kernel"][i],
                    stride if b == 0 else 1, act, expanded=features if (b == 0 and i in taps) else None,
                )
        x = _blocks.conv_bn(keras, x, div(STRIDE32_CHANNELS * width), 1, act=act)
        features.append(x)
        for channels in EXTRA_CHANNELS[: arch["extra_layers"]]:
            out = div(channels * width)
            x = _blocks.conv_bn(keras, x, out // 2, 1, act=act)
            x = _blocks.dw_bn(keras, x, 3, 2, act=act)
            x = _blocks.conv_bn(keras, x, out, 1, act=act)
            features.append(x)

        classes = self.options["num_classes"] + 1
        anchors, kernel = arch["anchors"], arch["head_kernel"]
        boxes, scores = [], []
        for feature in features:
            b = _blocks.dw_bn(keras, feature, kernel, 1, act=act)
            b = layers.Conv2D(anchors * 4, 1)(b)
            boxes.append(layers.Reshape((-1, 4))(b))
            c = _blocks.dw_bn(keras, feature, kernel, 1, act=act)
            c = layers.Conv2D(anchors * classes, 1)(c)
            scores.append(layers.Reshape((-1, classes))(c))
        return [
            layers.Concatenate(axis=1, name="boxes")(boxes),
            layers.Concatenate(axis=1, name="scores")(scores),
        ]
