"""Breadth networks: the structures neither the task spaces nor ``generic`` draw.

Out of space the shipped predictors were 12-17 % off on Ethos-U latency (2x on the
worst networks) for families the training set lacked: Inception and fire modules,
grouped and dilated convolutions, channel shuffles, encoder-decoders with skip
concatenations, 1-D temporal convolutions, unrolled recurrent cells and attention
inside CNNs.  This space draws them at random, at odd resolutions and channel counts,
so that the training set covers them; like ``generic`` it is not a search space for a
task (``kind = "breadth"``).

Four families, and a fifth on request:

* ``branchy``: a stem (a 'same' convolution, or an explicit asymmetric zero padding
  and a 'valid' one), 1-4 stages and a classifier.  A stage downsamples (strided 3x3 convolution,
  max or average pooling) and repeats one block 1-3 times: an Inception block (1x1,
  1x1 -> kxk, 1x1 -> 1xk -> kx1, 3x3 pooling -> 1x1, concatenated), a fire module
  (squeeze 1x1, expand 1x1 and 3x3, concatenated), a ShuffleNet unit (grouped 1x1,
  channel shuffle, depthwise 3x3, grouped 1x1, residual), a ResNeXt bottleneck
  (grouped 3x3), a dilated residual block (rate 2 or 3), a narrow bottleneck residual
  (a quarter or an eighth of the width inside) or a self-attention block over the
  stage's pixels (multi-head attention, residual; on maps of more than 256 pixels the
  keys and values come from an average-pooled map, as in PVT).  Activations include PReLU and
  leaky ReLU.
* ``unet``: an encoder of 2-4 levels (two convolutions, then 2x2 max pooling), a
  bottleneck, and a decoder that upsamples (nearest, bilinear or a transposed
  convolution), concatenates the encoder's map of the same size and convolves; a 1x1
  convolution gives 1-8 output maps at the input's resolution.
* ``temporal``: a (frames, features) input; 1-D convolutions in residual blocks with
  dilations 1, 2, 4, 8 ('same' or causal padding), global pooling, a classifier.
* ``recurrent``: 1-D convolutions down to 4-16 steps, then a gated recurrent cell
  unrolled over them (per step: two fully connected layers, sigmoid gate, tanh
  candidate, the gated mix), the last state into a classifier.
* ``cell`` (only with the option ``families=cell`` or ``families=all``): a NASNet /
  DARTS-style cell network.  A stem convolution, 0-2 reduction cells, then three stages
  of 1-3 normal cells with a reduction cell between them; a cell preprocesses its two
  predecessors (activation, 1x1 convolution; a factorised reduction of the older one
  when it is twice the size: two strided 1x1 paths, one shifted by a pad and a crop),
  computes 2-5 nodes, each the sum of two operations on earlier states (separable
  convolution 3x3/5x5/7x7 applied twice, dilated separable convolution 3x3/5x5, 3x3
  average or max pooling, identity), and concatenates the nodes.  A normal cell and a
  reduction cell each have their own genotype.  This is where stride-1 'same' pooling on
  small maps, long chains of depthwise/pointwise pairs, stand-alone activations, pads
  and crops, and graphs of several hundred operators come from.  The Ethos-U
  predictors trained without them were 43-88 % off on their latency (800 networks), and
  NASNetMobile's U55 error (28 %) is mostly its four crops (``STRIDED_SLICE``), which
  Vela folds into their consumers and the predictor charged 6 ms.

Option ``families``: ``classic`` (the default: the first four families; the draws and
every stored ``arch_id`` as before), ``cell`` (cell networks only) or ``all``.

Every operator is int8-quantisable; most run on the Ethos-U NPU under Vela 5.2.  What
Vela places on the CPU is labelled with ``cpu_operators`` counted (docs/search-spaces.md).
"""
from __future__ import annotations

from typing import Any

from search_spaces import _blocks
from search_spaces._base import Chooser, Option, SearchSpace, parse_name, register_space

FAMILIES = ("branchy", "unet", "temporal", "recurrent")
FAMILY_SETS = {"classic": FAMILIES, "cell": ("cell",), "all": FAMILIES + ("cell",)}
ACTIVATIONS = ("relu", "relu6", "prelu", "leaky_relu", "hard_swish")
# branchy
RESOLUTIONS = (33, 47, 57, 64, 75, 96, 111, 128)
IN_CHANNELS = (1, 3, 4)
STEM_CHANNELS = (12, 16, 20, 24, 32, 40)
STEMS = ("same", "zero_pad")
STAGES = (1, 4)  # inclusive range
BLOCKS = ("inception", "fire", "shuffle", "resnext", "dilated", "narrow", "attention")
DEPTHS = (1, 3)  # inclusive range
WIDTHS = (24, 36, 48, 60, 72, 96, 120, 144, 192, 240)  # every one divides by 2, 3, 4 and 6 ... (groups)
GROUPS = (2, 3, 4)
KERNELS = (3, 5)
DOWNSAMPLES = ("stride", "maxpool", "avgpool")
HEADS = (1, 2, 4)
MAX_KEYS = 256  # attention on a larger map takes its keys and values from a pooled one (PVT)
CLASSES = (2, 10, 12, 100)
# unet
UNET_SIZES = (32, 48, 64, 80, 96, 112, 128)  # input height and width: divisible by 2 ** levels
UNET_LEVELS = (2, 4)  # inclusive range
UNET_BASE = (8, 12, 16, 24, 32)
UPSAMPLES = ("nearest", "bilinear", "transpose")
UNET_OUTPUTS = (1, 2, 3, 8)
# temporal, recurrent
FRAMES = (49, 64, 98, 125, 128, 250)
FEATURES = (1, 3, 10, 13, 40, 64)
TCN_CHANNELS = (16, 24, 32, 48, 64, 96)
TCN_BLOCKS = (1, 6)  # inclusive range; block i dilates by 2 ** (i % 4)
TCN_KERNELS = (2, 3, 5)
TCN_PADDING = ("same", "causal")
STEPS = (4, 8, 12, 16)
UNITS = (16, 32, 48, 64, 128)
# cell
CELL_RESOLUTIONS = (32, 47, 64, 75, 96, 111, 128)  # above 47 the stem convolution has stride 2
CELL_CHANNELS = (8, 11, 16, 22, 32, 44)  # C of the first stage's cells (doubled by every reduction)
CELL_STEM_REDUCTIONS = (0, 2)  # inclusive range: reduction cells between the stem and stage 1
CELL_REPEATS = (1, 3)  # inclusive range: normal cells per stage
CELL_NODES = (2, 5)  # inclusive range
CELL_OPS = ("sep3", "sep5", "sep7", "dil3", "dil5", "avg3", "max3", "skip")


@register_space
class BreadthSpace(SearchSpace):
    name = "breadth"
    kind = "breadth"
    param_prefix = "br_"
    description = (
        "Breadth networks: Inception, fire, ShuffleNet, ResNeXt, dilated, narrow-bottleneck and attention "
        "stages at odd sizes, U-Nets, temporal convolutions and unrolled recurrent cells (families=cell: "
        "NASNet/DARTS-style cell networks): training breadth"
    )
    option_specs = {
        "families": Option("classic", parse_name(tuple(FAMILY_SETS)),
                           "give classic (branchy, unet, temporal, recurrent), cell (NASNet/DARTS-style "
                           "cell networks) or all"),
    }

    _resolve_options = SearchSpace._options_without_defaults  # the stored networks keep their ids

    def _draw(self, ch: Chooser) -> None:
        family = ch.choice("family", FAMILY_SETS[self.options.get("families", "classic")])
        ch.choice("activation", ACTIVATIONS)
        if family == "cell":
            ch.choice("resolution", CELL_RESOLUTIONS)
            ch.choice("in_channels", IN_CHANNELS)
            ch.choice("channels", CELL_CHANNELS)
            ch.integer("stem_reductions", *CELL_STEM_REDUCTIONS)
            ch.integer("repeats", *CELL_REPEATS)
            for kind in ("normal", "reduce"):
                nodes = ch.integer(f"{kind}_nodes", *CELL_NODES)
                per = f"one per node; '{kind}_nodes' is {nodes}"
                for name in ("op_a", "op_b", "in_a", "in_b"):
                    ch.items(f"{kind}_{name}", nodes, per)
                for i in range(nodes):  # inputs: 0 the older predecessor, 1 the newer, 2 + j node j
                    ch.choice(f"{kind}_op_a", CELL_OPS, index=i)
                    ch.choice(f"{kind}_op_b", CELL_OPS, index=i)
                    ch.integer(f"{kind}_in_a", 0, i + 1, index=i)
                    ch.integer(f"{kind}_in_b", 0, i + 1, index=i)
            ch.choice("classes", CLASSES)
            return
        if family == "branchy":
            ch.choice("resolution", RESOLUTIONS)
            ch.choice("in_channels", IN_CHANNELS)
            ch.choice("stem_channels", STEM_CHANNELS)
            ch.choice("stem", STEMS)
            stages = ch.integer("stages", *STAGES)
            per = f"one per stage; 'stages' is {stages}"
            for name in ("block", "depth", "width", "kernel", "downsample", "groups"):
                ch.items(name, stages, per)
            for i in range(stages):
                ch.choice("block", BLOCKS, index=i)
                ch.integer("depth", *DEPTHS, index=i)
                ch.choice("width", WIDTHS, index=i)
                ch.choice("kernel", KERNELS, index=i)
                ch.choice("downsample", DOWNSAMPLES, index=i)
                ch.choice("groups", GROUPS, index=i)
            ch.choice("heads", HEADS)
            ch.choice("classes", CLASSES)
        elif family == "unet":
            ch.choice("size", UNET_SIZES)  # (not 'resolution': a parameter name keeps its choices in Optuna)
            ch.choice("in_channels", IN_CHANNELS)
            ch.integer("levels", *UNET_LEVELS)
            ch.choice("base", UNET_BASE)
            ch.choice("upsample", UPSAMPLES)
            ch.choice("outputs", UNET_OUTPUTS)
        else:
            ch.choice("frames", FRAMES)
            ch.choice("features", FEATURES)
            ch.choice("channels", TCN_CHANNELS)
            ch.choice("tcn_kernel", TCN_KERNELS)
            if family == "temporal":
                ch.integer("tcn_blocks", *TCN_BLOCKS)
                ch.choice("padding", TCN_PADDING)
            else:
                ch.choice("steps", STEPS)
                ch.choice("units", UNITS)
            ch.choice("classes", CLASSES)

    def input_shape(self, arch: Any = None) -> tuple[int, ...]:
        arch = self._input_dependent(arch, "family")
        if arch["family"] in ("temporal", "recurrent"):
            return (arch["frames"], arch["features"])
        if arch["family"] == "unet":
            return (arch["size"], arch["size"], arch["in_channels"])
        return (arch["resolution"], arch["resolution"], arch["in_channels"])

    def output_shapes(self, arch: Any) -> list[tuple[int, ...]]:
        arch = self.decode(arch)
        if arch["family"] == "unet":
            return [(1, arch["size"], arch["size"], arch["outputs"])]
        return [(1, arch["classes"])]

    def _build(self, arch: dict, inputs: Any, keras: Any) -> Any:
        return getattr(self, f"_{arch['family']}")(arch, inputs, keras)

    # ------------------------------------------------------------------ helpers
    _act = staticmethod(_blocks.activation)

    def _conv(self, keras: Any, x: Any, filters: int, kernel: Any = 1, strides: Any = 1, act: str | None = None,
              **kw: Any) -> Any:
        layers = keras.layers
        x = layers.Conv2D(filters, kernel, strides=strides, padding=kw.pop("padding", "same"), use_bias=False,
                          **kw)(x)
        return self._act(keras, layers.BatchNormalization()(x), act)

    # ------------------------------------------------------------------ branchy
    def _branchy(self, arch: dict, inputs: Any, keras: Any) -> Any:
        layers = keras.layers
        act = arch["activation"]
        if arch["stem"] == "zero_pad":
            x = layers.ZeroPadding2D(((1, 2), (1, 2)))(inputs)  # not 'same''s (the converter would fold it)
            x = self._conv(keras, x, arch["stem_channels"], 3, 2, act, padding="valid")
        else:
            x = self._conv(keras, inputs, arch["stem_channels"], 3, 2, act)
        for i in range(arch["stages"]):
            kind, width, kernel, groups = arch["block"][i], arch["width"][i], arch["kernel"][i], arch["groups"][i]
            down = arch["downsample"][i]
            if down == "stride":
                x = self._conv(keras, x, width, 3, 2, act)
            elif down == "maxpool":
                x = layers.MaxPooling2D(2, 2, padding="same")(x)
            else:
                x = layers.AveragePooling2D(2, 2, padding="same")(x)
            for _ in range(arch["depth"][i]):
                x = self._block(keras, kind, x, width, kernel, groups, act, arch["heads"])
        x = layers.GlobalAveragePooling2D()(x)
        return layers.Dense(arch["classes"], name="logits")(x)

    def _block(self, keras: Any, kind: str, x: Any, width: int, kernel: int, groups: int, act: str,
               heads: int) -> Any:
        layers = keras.layers
        conv = self._conv
        cin = int(x.shape[-1])
        if kind == "inception":
            q = width // 4
            b1 = conv(keras, x, q, 1, act=act)
            b2 = conv(keras, conv(keras, x, q, 1, act=act), q, kernel, act=act)
            b3 = conv(keras, conv(keras, conv(keras, x, q, 1, act=act), q, (1, kernel), act=act), q, (kernel, 1),
                      act=act)
            b4 = conv(keras, layers.MaxPooling2D(3, 1, padding="same")(x), width - 3 * q, 1, act=act)
            return layers.Concatenate()([b1, b2, b3, b4])
        if kind == "fire":
            s = conv(keras, x, max(8, width // 8), 1, act=act)
            return layers.Concatenate()([conv(keras, s, width // 2, 1, act=act),
                                         conv(keras, s, width - width // 2, 3, act=act)])
        if kind == "shuffle":  # ShuffleNet v1 unit
            mid = width // 4 // groups * groups or groups
            if cin % groups:
                x = conv(keras, x, width, 1, act=act)
                cin = width
            y = conv(keras, x, mid, 1, act=act, groups=groups)
            y = _blocks.channel_shuffle(keras, y, groups)
            y = _blocks.dw_bn(keras, y, 3)
            y = conv(keras, y, cin, 1, groups=groups)
            return self._act(keras, layers.Add()([x, y]), act)
        if kind in ("resnext", "dilated", "narrow"):
            if kind == "resnext":
                mid = width // 2 // groups * groups
                y = conv(keras, x, mid, 1, act=act)
                y = conv(keras, y, mid, kernel, act=act, groups=groups)
                y = conv(keras, y, width, 1)
            elif kind == "dilated":
                y = conv(keras, x, width, kernel, act=act, dilation_rate=groups if groups < 4 else 2)
                y = conv(keras, y, width, 3)
            else:  # narrow bottleneck: an eighth (groups 4) or a quarter inside
                mid = max(4, width // (8 if groups == 4 else 4))
                y = conv(keras, conv(keras, conv(keras, x, mid, 1, act=act), mid, kernel, act=act), width, 1)
            shortcut = x if cin == width else conv(keras, x, width, 1)
            return self._act(keras, layers.Add()([shortcut, y]), act)
        if kind == "attention":  # multi-head self-attention over the pixels (BoTNet; PVT's pooled keys)
            h, w = int(x.shape[1]), int(x.shape[2])
            if cin != width:
                x = conv(keras, x, width, 1, act=act)
            t = layers.Reshape((h * w, width))(x)
            kv, r = t, 1
            while -(-h // r) * -(-w // r) > MAX_KEYS:
                r *= 2
            if r > 1:
                pooled = layers.AveragePooling2D(r, r, padding="same")(x)
                kv = layers.Reshape((int(pooled.shape[1]) * int(pooled.shape[2]), width))(pooled)
            a = layers.MultiHeadAttention(heads, max(8, width // heads))(t, kv)
            t = layers.Add()([t, a])
            return layers.Reshape((h, w, width))(t)
        raise ValueError(f"unknown block {kind!r}")

    # ------------------------------------------------------------------ cell
    def _cell(self, arch: dict, inputs: Any, keras: Any) -> Any:
        layers = keras.layers
        act, c = arch["activation"], arch["channels"]
        stride = 2 if arch["resolution"] > 47 else 1
        x = self._conv(keras, inputs, 3 * c, 3, stride)  # DARTS's stem: 3C maps, no activation
        cells = [("reduce", c)] * arch["stem_reductions"]  # NASNet's stem cells keep the width
        for stage in range(3):
            cells += [("normal", c * 2 ** stage)] * arch["repeats"]
            cells += [("reduce", c * 2 ** (stage + 1))] if stage < 2 else []
        s0 = s1 = x
        shrunk = False  # s0 is twice s1's size (the cell before was a reduction)
        for kind, width in cells:
            out = self._one_cell(keras, arch, kind, s0, s1, width, act, shrunk)
            s0, s1, shrunk = s1, out, kind == "reduce"
        x = self._act(keras, s1, act)
        x = layers.GlobalAveragePooling2D()(x)
        return layers.Dense(arch["classes"], name="logits")(x)

    def _one_cell(self, keras: Any, arch: dict, kind: str, s0: Any, s1: Any, c: int, act: str,
                  shrunk: bool) -> Any:
        layers = keras.layers
        s0 = self._reduce_skip(keras, s0, c, act) if shrunk else self._relu_conv(keras, s0, c, act)
        s1 = self._relu_conv(keras, s1, c, act)
        states = [s0, s1]
        for i in range(len(arch[f"{kind}_op_a"])):
            terms = []
            for side in ("a", "b"):
                j = arch[f"{kind}_in_{side}"][i]
                stride = 2 if kind == "reduce" and j < 2 else 1
                terms.append(self._cell_op(keras, arch[f"{kind}_op_{side}"][i], states[j], c, stride, act))
            states.append(layers.Add()(terms))
        return layers.Concatenate()(states[2:])

    def _relu_conv(self, keras: Any, x: Any, c: int, act: str) -> Any:
        return self._conv(keras, self._act(keras, x, act), c, 1)

    def _reduce_skip(self, keras: Any, x: Any, c: int, act: str) -> Any:
        """NASNet's factorised reduction: two strided 1x1 paths, the second shifted one pixel."""
        layers = keras.layers
        x = self._act(keras, x, act)
        a = layers.Conv2D(c // 2, 1, use_bias=False)(layers.AveragePooling2D(1, 2)(x))
        shifted = layers.Cropping2D(((1, 0), (1, 0)))(layers.ZeroPadding2D(((0, 1), (0, 1)))(x))
        b = layers.Conv2D(c - c // 2, 1, use_bias=False)(layers.AveragePooling2D(1, 2)(shifted))
        return layers.BatchNormalization()(layers.Concatenate()([a, b]))

    def _sep(self, keras: Any, x: Any, c: int, kernel: int, stride: int, act: str, dilation: int = 1) -> Any:
        """activation, depthwise (kernel, dilated), pointwise, BN; a dilated one strides in its 1x1."""
        layers = keras.layers
        x = self._act(keras, x, act)
        dw_stride = stride if dilation == 1 else 1
        x = layers.DepthwiseConv2D(kernel, dw_stride, padding="same", dilation_rate=dilation, use_bias=False)(x)
        x = layers.Conv2D(c, 1, strides=stride // dw_stride, use_bias=False)(x)
        return layers.BatchNormalization()(x)

    def _cell_op(self, keras: Any, op: str, x: Any, c: int, stride: int, act: str) -> Any:
        layers = keras.layers
        if op.startswith("sep"):  # DARTS's SepConv: the separable convolution twice
            k = int(op[3:])
            return self._sep(keras, self._sep(keras, x, c, k, stride, act), c, k, 1, act)
        if op.startswith("dil"):
            return self._sep(keras, x, c, int(op[3:]), stride, act, dilation=2)
        if op == "avg3":
            return layers.AveragePooling2D(3, stride, padding="same")(x)
        if op == "max3":
            return layers.MaxPooling2D(3, stride, padding="same")(x)
        if op == "skip":
            return x if stride == 1 else self._reduce_skip(keras, x, c, act)
        raise ValueError(f"unknown cell operation {op!r}")

    # ------------------------------------------------------------------ unet
    def _unet(self, arch: dict, inputs: Any, keras: Any) -> Any:
        layers = keras.layers
        act = arch["activation"]

        def double(x, filters):
            return self._conv(keras, self._conv(keras, x, filters, 3, act=act), filters, 3, act=act)

        x, skips, filters = inputs, [], arch["base"]
        for level in range(arch["levels"]):
            x = double(x, filters * 2 ** level)
            skips.append(x)
            x = layers.MaxPooling2D(2, 2)(x)
        x = double(x, filters * 2 ** arch["levels"])
        for level in reversed(range(arch["levels"])):
            f = filters * 2 ** level
            if arch["upsample"] == "transpose":
                x = layers.Conv2DTranspose(f, 2, strides=2, padding="same")(x)
            else:
                x = self._conv(keras, layers.UpSampling2D(2, interpolation=arch["upsample"])(x), f, 1, act=act)
            x = double(layers.Concatenate()([skips[level], x]), f)
        return layers.Conv2D(arch["outputs"], 1, name="maps")(x)

    # ------------------------------------------------------------------ temporal, recurrent
    def _temporal(self, arch: dict, inputs: Any, keras: Any) -> Any:
        layers = keras.layers
        act, c, k = arch["activation"], arch["channels"], arch["tcn_kernel"]
        x = self._act(keras, layers.Conv1D(c, k, padding="same")(inputs), act)
        for i in range(arch["tcn_blocks"]):
            y = layers.Conv1D(c, k, padding=arch["padding"], dilation_rate=2 ** (i % 4), use_bias=False)(x)
            y = self._act(keras, layers.BatchNormalization()(y), act)
            y = layers.Conv1D(c, 1)(y)
            x = self._act(keras, layers.Add()([x, y]), act)
        x = layers.GlobalAveragePooling1D()(x)
        return layers.Dense(arch["classes"], name="logits")(x)

    def _recurrent(self, arch: dict, inputs: Any, keras: Any) -> Any:
        layers = keras.layers
        act, c, k, steps, units = (arch["activation"], arch["channels"], arch["tcn_kernel"], arch["steps"],
                                   arch["units"])
        x = inputs
        while int(x.shape[1]) > steps:  # strided 1-D convolutions down to at most ``steps`` frames
            x = self._act(keras, layers.Conv1D(c, k, strides=2, padding="same")(x), act)
        frames = int(x.shape[1])
        gate_x, cand_x = layers.Dense(units), layers.Dense(units)  # one cell, shared by every step
        gate_h, cand_h = layers.Dense(units, use_bias=False), layers.Dense(units, use_bias=False)
        h = None
        for t in range(frames):  # a minimal gated unit, unrolled: h = z * h + (1 - z) * tanh(...)
            xt = layers.Reshape((c,))(layers.Cropping1D((t, frames - t - 1))(x))
            if h is None:
                z = layers.Activation("sigmoid")(gate_x(xt))
                cand = layers.Activation("tanh")(cand_x(xt))
                h = layers.Multiply()([layers.Rescaling(-1.0, offset=1.0)(z), cand])
                continue
            z = layers.Activation("sigmoid")(layers.Add()([gate_x(xt), gate_h(h)]))
            cand = layers.Activation("tanh")(layers.Add()([cand_x(xt), cand_h(h)]))
            keep = layers.Multiply()([z, h])
            h = layers.Add()([keep, layers.Multiply()([layers.Rescaling(-1.0, offset=1.0)(z), cand])])
        return layers.Dense(arch["classes"], name="logits")(h)
