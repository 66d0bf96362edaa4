"""Generic networks: structures from no task family, for a predictor's breadth.

The four task spaces teach a predictor to be exact on inverted residuals, DS-CNNs,
SSDLite heads and FSRCNN/ESPCN; networks built from anything else (stacks of large
fully connected layers, DenseNet's concatenations, ResNet's bottlenecks) were
predicted 2-20x off.  This space draws such structures at random, so the training
set covers them; it is not a search space for a task (``kind = "breadth"``).

Two families:

* ``cnn``: a stem conv, 1-5 stages and a head.  Each stage halves the resolution
  (a strided block, max or average pooling) and repeats one block type 1-3 times:
  a plain conv, a depthwise-separable conv, an inverted residual (with or without
  squeeze-excite), a ResNet basic or bottleneck block (projection shortcut where
  the shape changes) or a DenseNet block (1x1 -> kxk layers of a growth rate,
  each concatenated to its input, then a 1x1 transition).  Per stage: width
  multiplier (on a base that doubles per stage), kernel size; per network: input
  resolution and channels, activation, stem, an optional 1x1 head conv, global
  average pooling or flattening (where the flattened map is small enough), 0-2
  hidden fully connected layers and the classifier size.
* ``mlp``: a vector input (32 to 2,048 features), 1-8 fully connected layers of
  8 to 2,048 units, and the output width (classes, or the input's width again:
  an autoencoder).

Option ``widths``: ``pow2`` (the default) draws every width from the lists below, round
numbers (powers of two, multiples of 8); ``any`` draws the MLP's features and units,
the stem and the hidden fully connected layers as any integer in the same range, as
real files have them (430 features into 600, 550, 500 and 450 units: a float32 GEMV
of such widths runs 25 % slower on XNNPACK than one of multiples of 64, which no
round-width network shows a predictor).  The default is left out of ``options``, so
the networks stored before the option existed keep their ``arch_id``.

Every operator is int8-quantisable and runs on the Ethos-U NPU under Vela 5.2
(swish as LOGISTIC and MUL).
"""
from __future__ import annotations

from typing import Any

from search_spaces import _blocks
from search_spaces._base import Chooser, Option, SearchSpace, parse_name, register_space

FAMILIES = ("cnn", "mlp")
ACTIVATIONS = ("relu", "relu6", "hard_swish", "swish")
# cnn
RESOLUTIONS = (32, 48, 64, 96, 128, 160)
IN_CHANNELS = (1, 3)
STEM_CHANNELS = (8, 16, 24, 32, 48, 64)
STEM_STRIDES = (1, 2)
STAGES = (1, 5)  # inclusive range
BLOCKS = ("conv", "dwsep", "mbconv", "mbconv_se", "basic", "bottleneck", "dense")
DEPTHS = (1, 3)  # inclusive range
BASE_WIDTHS = (32, 64, 128, 256, 512)  # stage i's width at multiplier 1
MULTIPLIERS = (0.25, 0.5, 0.75, 1.0, 1.5)
KERNELS = (3, 5, 7)
DOWNSAMPLES = ("stride", "maxpool", "avgpool")
HEAD_CONVS = (0, 256, 512, 1024, 1280)
POOLS = ("gap", "flatten")
MAX_FLATTEN = 16384  # values of the last feature map that may be flattened into a dense layer
FC_LAYERS = (0, 2)  # inclusive range
FC_UNITS = (64, 128, 256, 512, 1024)
CLASSES = (2, 10, 100, 1000)
EXPANSION = 4  # inverted residuals and bottlenecks
# mlp
FEATURES = (32, 64, 128, 256, 490, 640, 1024, 2048)
MLP_LAYERS = (1, 8)  # inclusive range
MLP_UNITS = (8, 16, 32, 64, 128, 256, 512, 1024, 2048)
MLP_OUTPUTS = ("2", "10", "100", "same")  # "same": as many as the input (an autoencoder)
WIDTHS = ("pow2", "any")


def _final_size(resolution: int, stem_stride: int, stages: int) -> int:
    size = _blocks.same_size(resolution, stem_stride)
    for _ in range(stages):
        size = _blocks.same_size(size, 2)
    return size


@register_space
class GenericSpace(SearchSpace):
    name = "generic"
    kind = "breadth"
    param_prefix = "gen_"
    description = (
        "Generic CNNs (conv, depthwise-separable, inverted-residual, ResNet basic/bottleneck and "
        "DenseNet stages, pooling or flattening heads) and MLPs: training breadth for predictors"
    )
    option_specs = {
        "widths": Option("pow2", parse_name(WIDTHS),
                         "give pow2 (widths from round-number lists) or any (any integer in their range)"),
    }

    _resolve_options = SearchSpace._options_without_defaults  # the stored networks keep their ids

    def _width_choice(self, ch: Chooser, name: str, choices: tuple, index: int | None = None) -> int:
        if self.options.get("widths", "pow2") == "any":
            return ch.integer(name, min(choices), max(choices), index=index)
        return ch.choice(name, choices, index=index)

    def _draw(self, ch: Chooser) -> None:
        family = ch.choice("family", FAMILIES)
        ch.choice("activation", ACTIVATIONS)
        if family == "mlp":
            self._width_choice(ch, "features", FEATURES)
            layers = ch.integer("layers", *MLP_LAYERS)
            for i in ch.items("units", layers, f"one per layer; 'layers' is {layers}"):
                self._width_choice(ch, "units", MLP_UNITS, index=i)
            ch.choice("outputs", MLP_OUTPUTS)
            return
        resolution = ch.choice("resolution", RESOLUTIONS)
        ch.choice("in_channels", IN_CHANNELS)
        self._width_choice(ch, "stem_channels", STEM_CHANNELS)
        stem_stride = ch.choice("stem_stride", STEM_STRIDES)
        stages = ch.integer("stages", *STAGES)
        per = f"one per stage; 'stages' is {stages}"
        for name in ("block", "depth", "width", "kernel", "downsample"):
            ch.items(name, stages, per)
        for i in range(stages):
            ch.choice("block", BLOCKS, index=i)
            ch.integer("depth", *DEPTHS, index=i)
            ch.choice("width", MULTIPLIERS, index=i)
            ch.choice("kernel", KERNELS, index=i)
            ch.choice("downsample", DOWNSAMPLES, index=i)
        head = ch.choice("head_conv", HEAD_CONVS)
        last = head or self._width(stages - 1, ch.arch["width"][stages - 1])
        size = _final_size(resolution, stem_stride, stages)
        # flattening is offered only where the dense layer after it stays a few MB
        ch.choice("pool", POOLS if size * size * last <= MAX_FLATTEN else POOLS[:1])
        hidden = ch.integer("fc_layers", *FC_LAYERS)
        for i in ch.items("fc_units", hidden, f"one per hidden layer; 'fc_layers' is {hidden}"):
            self._width_choice(ch, "fc_units", FC_UNITS, index=i)
        ch.choice("classes", CLASSES)

    @staticmethod
    def _width(stage: int, multiplier: float) -> int:
        return _blocks.make_divisible(BASE_WIDTHS[stage] * multiplier)

    def input_shape(self, arch: Any = None) -> tuple[int, ...]:
        arch = self._input_dependent(arch, "family")
        if arch["family"] == "mlp":
            return (arch["features"],)
        return (arch["resolution"], arch["resolution"], arch["in_channels"])

    def output_shapes(self, arch: Any) -> list[tuple[int, ...]]:
        arch = self.decode(arch)
        if arch["family"] == "mlp":
            out = arch["outputs"]
            return [(1, arch["features"] if out == "same" else int(out))]
        return [(1, arch["classes"])]

    def _build(self, arch: dict, inputs: Any, keras: Any) -> Any:
        if arch["family"] == "mlp":
            return self._mlp(arch, inputs, keras)
        return self._cnn(arch, inputs, keras)

    def _mlp(self, arch: dict, inputs: Any, keras: Any) -> Any:
        layers = keras.layers
        x = inputs
        for units in arch["units"]:
            x = layers.Dense(units)(x)
            x = layers.BatchNormalization()(x)
            x = _blocks.activation(keras, x, arch["activation"])
        out = arch["outputs"]
        return layers.Dense(arch["features"] if out == "same" else int(out), name="output")(x)

    def _cnn(self, arch: dict, inputs: Any, keras: Any) -> Any:
        layers = keras.layers
        act = arch["activation"]

        def conv(x, filters, kernel, strides=1, activation=act):
            return _blocks.conv_bn(keras, x, filters, kernel, strides, activation)

        def block(kind, x, out, kernel, strides):
            cin = int(x.shape[-1])
            if kind == "conv":
                return conv(x, out, kernel, strides)
            if kind == "dwsep":
                return conv(_blocks.dw_bn(keras, x, kernel, strides, act), out, 1)
            if kind in ("mbconv", "mbconv_se"):
                return _blocks.inverted_residual(keras, x, out, EXPANSION, kernel, strides, act,
                                                 se=kind == "mbconv_se")
            if kind in ("basic", "bottleneck"):
                if kind == "basic":
                    y = conv(conv(x, out, kernel, strides), out, kernel, activation=None)
                else:
                    mid = max(8, out // EXPANSION)
                    y = conv(conv(conv(x, mid, 1), mid, kernel, strides), out, 1, activation=None)
                shortcut = x if strides == 1 and cin == out else conv(x, out, 1, strides, activation=None)
                return _blocks.activation(keras, layers.Add()([shortcut, y]), act)
            if kind == "dense":  # DenseNet: layers of a growth rate, each concatenated to its input
                if strides != 1:
                    x = layers.AveragePooling2D(2, strides, padding="same")(x)
                growth = max(8, out // 4)
                y = conv(conv(x, 4 * growth, 1), growth, kernel)
                x = layers.Concatenate()([x, y])
                return conv(x, out, 1)  # the transition
            raise ValueError(f"unknown block {kind!r}")

        x = conv(inputs, arch["stem_channels"], 3, arch["stem_stride"])
        for i in range(arch["stages"]):
            out = self._width(i, arch["width"][i])
            kind, kernel, down = arch["block"][i], arch["kernel"][i], arch["downsample"][i]
            if down == "maxpool":
                x = layers.MaxPooling2D(2, 2, padding="same")(x)
            elif down == "avgpool":
                x = layers.AveragePooling2D(2, 2, padding="same")(x)
            for b in range(arch["depth"][i]):
                x = block(kind, x, out, kernel, 2 if b == 0 and down == "stride" else 1)
        if arch["head_conv"]:
            x = conv(x, arch["head_conv"], 1)
        if arch["pool"] == "flatten":
            x = layers.Flatten()(x)
        else:
            x = layers.GlobalAveragePooling2D()(x)
        for units in arch["fc_units"]:
            x = _blocks.activation(keras, layers.Dense(units)(x), act)
        return layers.Dense(arch["classes"], name="logits")(x)

