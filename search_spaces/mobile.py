"""Mobile networks as they ship for phones: BlazeFace-style detectors, landmark regressors, segmenters.

The files people run on a phone's CPU (MediaPipe's face, hand and pose models, selfie
segmentation) are built from blocks the task spaces do not draw: BlazeBlocks (a 5x5
depthwise convolution and a 1x1 convolution, a residual whose stride-2 path is a max
pooling and a zero padding of the channels), detector heads over two feature maps
that an upsampled coarse map is added into, landmark regressors that end in 1x1 maps,
and MobileNetV3 segmenters with a decoder of bilinear upsampling, squeeze-excite gates
on the skips and a transposed convolution to full size.  They come as float32 or
float16 files, at 128-256 pixels, some landscape.  This space draws them at random for
the CPU predictor's training set; like ``breadth`` it is not a search space for a task
(``kind = "breadth"``).

Three families:

* ``detector``: a stem and 3-5 stages of single or double
  BlazeBlocks, then an upsampling of the last map (bilinear, nearest, DEPTH_TO_SPACE or
  a transposed convolution) added to the one before (as in BlazePose and the
  full-range face detector) or not; two heads per map (box regressors and scores,
  ``anchors`` per pixel) reshaped and concatenated: outputs ``[1, N, coords]`` and
  ``[1, N, 1]``.  Strided convolutions pad 'same', or (``padding`` ``explicit``) after
  a PAD and 'valid', as files converted from PyTorch have them.
* ``landmark``: the same backbone, then strided convolutions down to a 1x1 map (or a
  global average pooling) and two 1x1 convolutions: ``[1, 1, 1, points * 3]``
  coordinates and a presence score through a sigmoid.
* ``segmenter``: a MobileNetV3-style encoder (inverted residuals with squeeze-excite
  and hard-swish), a decoder that upsamples bilinearly, gates the skip of the same size
  with a squeeze-excite (global average pooling, as MEAN or a whole-map AVERAGE_POOL_2D, 1x1 convolutions, sigmoid, multiply),
  adds and convolves, and a 2x2 transposed convolution to the input's size with a
  sigmoid: ``[1, H, W, maps]``.

Some of these operators run on the Ethos-U's CPU under Vela (a channel padding,
DEPTH_TO_SPACE): the space is drawn for the CPU target (docs/search-spaces.md).
"""
from __future__ import annotations

import functools
from typing import Any

from search_spaces import _blocks
from search_spaces._base import Chooser, SearchSpace, register_space

FAMILIES = ("detector", "landmark", "segmenter")
ACTIVATIONS = ("relu", "relu6", "prelu")
SIZES = ("64x64", "96x96", "128x128", "160x160", "192x192", "224x224", "256x256", "144x256")  # height x width
# detector, landmark
STEM_CHANNELS = (16, 24, 32, 48, 64)
PADDINGS = ("same", "explicit")  # explicit: a PAD before every strided convolution (PyTorch-converted files)
STAGES = (3, 5)  # inclusive range; each halves the map
BLAZE = ("single", "double")
DEPTHS = (1, 4)  # inclusive range
GROWTH = (1.0, 1.5, 2.0)  # channels of a stage over the last one's
KERNELS = (3, 5)
UPSAMPLES = ("none", "bilinear", "nearest", "depth_to_space", "transpose")
ANCHORS = (1, 2, 6)
COORDS = (4, 12, 16)
POINTS = (21, 33, 39, 68, 128)
LANDMARK_HEADS = ("conv", "pool")
# segmenter
SEG_WIDTHS = (0.5, 0.75, 1.0)
SEG_STAGES = (3, 4)  # encoder stages after the stem, inclusive
SEG_DEPTHS = (1, 3)  # inclusive range
SEG_ACTIVATIONS = ("relu", "hard_swish")
SEG_MAPS = (1, 2)
SEG_DECODER = (8, 16, 24)  # decoder channels at the finest map
SEG_POOLS = ("mean", "average_pool")  # the gates' global pooling: MEAN, or AVERAGE_POOL_2D over the whole map


@functools.lru_cache(maxsize=None)
def _layers(keras: Any):
    ops = keras.ops

    class ChannelPad(keras.layers.Layer):
        """Zero channels appended (BlazeBlock's residual; the converter's PAD over channels)."""

        def __init__(self, extra: int, **kwargs):
            super().__init__(**kwargs)
            self.extra = int(extra)

        def call(self, x):
            return ops.pad(x, [[0, 0], [0, 0], [0, 0], [0, self.extra]])

        def compute_output_shape(self, input_shape):
            return (*input_shape[:3], input_shape[3] + self.extra)

    class DepthToSpace(keras.layers.Layer):
        """TFLite's own DEPTH_TO_SPACE (``tf.nn.depth_to_space``), as mobile files have it."""

        def __init__(self, block_size: int, **kwargs):
            super().__init__(**kwargs)
            self.block_size = int(block_size)

        def call(self, x):
            import tensorflow as tf

            return tf.nn.depth_to_space(x, self.block_size)

        def compute_output_shape(self, input_shape):
            b, h, w, c = input_shape
            r = self.block_size
            return (b, h * r, w * r, c // (r * r))

    return ChannelPad, DepthToSpace


def _size(arch: dict) -> tuple[int, int]:
    h, w = arch["size"].split("x")
    return int(h), int(w)


def _halve(size: int, times: int) -> int:
    for _ in range(times):
        size = _blocks.same_size(size, 2)
    return size


def _widths(arch: dict) -> list[int]:
    """The channels of every backbone stage (detector, landmark)."""
    widths, c = [], arch["stem_channels"]
    for g in arch["growth"]:
        c = _blocks.make_divisible(c * g, 8)
        widths.append(c)
    return widths


@register_space
class MobileSpace(SearchSpace):
    name = "mobile"
    kind = "breadth"
    param_prefix = "mo_"
    description = (
        "Mobile networks as they ship for phones (MediaPipe-like): BlazeBlock detectors with upsampled "
        "feature maps, landmark regressors, MobileNetV3 segmenters with bilinear decoders: CPU training breadth"
    )
    option_specs: dict = {}
    npu_first = False  # a channel PAD and DEPTH_TO_SPACE run on the Ethos-U's CPU

    def _draw(self, ch: Chooser) -> None:
        family = ch.choice("family", FAMILIES)
        ch.choice("size", SIZES)
        if family == "segmenter":
            # (names of their own: an Optuna parameter keeps its choices across families)
            ch.choice("width", SEG_WIDTHS)
            stages = ch.integer("encoder_stages", *SEG_STAGES)
            ch.items("encoder_depth", stages, f"one per stage; 'encoder_stages' is {stages}")
            for i in range(stages):
                ch.integer("encoder_depth", *SEG_DEPTHS, index=i)
            ch.choice("encoder_activation", SEG_ACTIVATIONS)
            ch.choice("decoder", SEG_DECODER)
            ch.choice("maps", SEG_MAPS)
            ch.choice("pool", SEG_POOLS)
            return
        ch.choice("activation", ACTIVATIONS)
        ch.choice("padding", PADDINGS)
        ch.choice("stem_channels", STEM_CHANNELS)
        ch.choice("blaze", BLAZE)
        ch.choice("kernel", KERNELS)
        stages = ch.integer("stages", *STAGES)
        per = f"one per stage; 'stages' is {stages}"
        for name in ("depth", "growth"):
            ch.items(name, stages, per)
        for i in range(stages):
            ch.integer("depth", *DEPTHS, index=i)
            ch.choice("growth", GROWTH, index=i)
        if family == "detector":
            ch.choice("upsample", UPSAMPLES)
            ch.choice("anchors", ANCHORS)
            ch.choice("coords", COORDS)
        else:
            ch.choice("head", LANDMARK_HEADS)
            ch.choice("points", POINTS)

    def input_shape(self, arch: Any = None) -> tuple[int, int, int]:
        arch = self._input_dependent(arch, "size")
        return (*_size(arch), 3)

    def output_shapes(self, arch: Any) -> list[tuple[int, ...]]:
        arch = self.decode(arch)
        h, w = _size(arch)
        if arch["family"] == "segmenter":
            return [(1, h, w, arch["maps"])]
        if arch["family"] == "landmark":
            return [(1, 1, 1, arch["points"] * 3), (1, 1, 1, 1)]
        s = arch["stages"]
        n = sum(_halve(h, 1 + k) * _halve(w, 1 + k) for k in (s - 1, s)) * arch["anchors"]
        return [(1, n, arch["coords"]), (1, n, 1)]

    def _build(self, arch: dict, inputs: Any, keras: Any) -> Any:
        return getattr(self, f"_{arch['family']}")(arch, inputs, keras)

    # ------------------------------------------------------------------ helpers
    _act = staticmethod(_blocks.activation)

    @staticmethod
    def _crop_to(keras: Any, x: Any, ref: Any) -> Any:
        """``x`` cropped at the bottom and right to ``ref``'s height and width (an upsampled odd map)."""
        dh, dw = int(x.shape[1]) - int(ref.shape[1]), int(x.shape[2]) - int(ref.shape[2])
        return keras.layers.Cropping2D(((0, dh), (0, dw)))(x) if dh or dw else x

    def _conv(self, keras: Any, x: Any, filters: int, kernel: Any = 1, strides: int = 1, act: str | None = None,
              padding: str = "same") -> Any:
        x = keras.layers.Conv2D(filters, kernel, strides=strides, padding=padding)(x)
        return self._act(keras, x, act)

    def _blaze(self, keras: Any, x: Any, out: int, kernel: int, strides: int, double: bool, act: str,
               explicit: bool = False) -> Any:
        """BlazeBlock: depthwise kxk -> 1x1 (double: -> act -> depthwise -> 1x1), plus the shortcut."""
        layers = keras.layers
        cin = int(x.shape[-1])
        if strides == 2 and explicit:  # PyTorch's symmetric padding, written out
            y = layers.ZeroPadding2D(kernel // 2)(x)
            y = layers.DepthwiseConv2D(kernel, strides=2, padding="valid")(y)
        else:
            y = layers.DepthwiseConv2D(kernel, strides=strides, padding="same")(x)
        if double:
            y = self._conv(keras, y, max(8, out // 4), 1, act=act)
            y = layers.DepthwiseConv2D(kernel, padding="same")(y)
        y = self._conv(keras, y, out, 1)
        shortcut = layers.MaxPooling2D(2, 2, padding="same")(x) if strides == 2 else x
        if out > cin:
            shortcut = _layers(keras)[0](out - cin)(shortcut)
        elif out < cin:
            shortcut = self._conv(keras, shortcut, out, 1)
        return self._act(keras, layers.Add()([y, shortcut]), act)

    def _backbone(self, arch: dict, inputs: Any, keras: Any) -> list:
        """The stage outputs of a BlazeBlock backbone (detector, landmark)."""
        layers, act, k = keras.layers, arch["activation"], arch["kernel"]
        explicit = arch["padding"] == "explicit"
        if explicit:
            x = layers.ZeroPadding2D(((1, 2), (1, 2)))(inputs)
            x = self._conv(keras, x, arch["stem_channels"], 5, 2, act, padding="valid")
        else:
            x = self._conv(keras, inputs, arch["stem_channels"], 5, 2, act)
        maps = []
        for i, width in enumerate(_widths(arch)):
            for j in range(arch["depth"][i]):
                x = self._blaze(keras, x, width, k, 2 if j == 0 else 1, arch["blaze"] == "double", act, explicit)
            maps.append(x)
        return maps

    # ------------------------------------------------------------------ families
    def _detector(self, arch: dict, inputs: Any, keras: Any) -> Any:
        layers = keras.layers
        fine, coarse = self._backbone(arch, inputs, keras)[-2:]
        c = int(fine.shape[-1])
        up = arch["upsample"]
        if up != "none":
            if up == "depth_to_space":
                u = self._conv(keras, coarse, 4 * c, 1, act=arch["activation"])
                u = _layers(keras)[1](2)(u)
            elif up == "transpose":
                u = layers.Conv2DTranspose(c, 2, strides=2, padding="same")(coarse)
            else:
                u = self._conv(keras, layers.UpSampling2D(2, interpolation=up)(coarse), c, 1, act=arch["activation"])
            u = self._crop_to(keras, u, fine)
            fine = self._act(keras, layers.Add()([fine, u]), arch["activation"])
        boxes, scores = [], []
        a, coords = arch["anchors"], arch["coords"]
        for m in (fine, coarse):
            boxes.append(layers.Reshape((-1, coords))(layers.Conv2D(a * coords, 3, padding="same")(m)))
            scores.append(layers.Reshape((-1, 1))(layers.Conv2D(a, 3, padding="same")(m)))
        return [layers.Concatenate(axis=1, name="boxes")(boxes), layers.Concatenate(axis=1, name="scores")(scores)]

    def _landmark(self, arch: dict, inputs: Any, keras: Any) -> Any:
        layers, act = keras.layers, arch["activation"]
        x = self._backbone(arch, inputs, keras)[-1]
        if arch["head"] == "pool":
            x = layers.GlobalAveragePooling2D(keepdims=True)(x)
        while int(x.shape[1]) > 1 or int(x.shape[2]) > 1:
            x = self._blaze(keras, x, int(x.shape[-1]), 3, 2, False, act)
        points = layers.Conv2D(arch["points"] * 3, 1, name="landmarks")(x)
        presence = layers.Conv2D(1, 1, activation="sigmoid", name="presence")(x)
        return [points, presence]

    def _segmenter(self, arch: dict, inputs: Any, keras: Any) -> Any:
        layers, act = keras.layers, arch["encoder_activation"]
        width = arch["width"]

        def ch(c):
            return _blocks.make_divisible(c * width, 8)

        x = _blocks.conv_bn(keras, inputs, ch(16), 3, 2, act)
        skips = [x]
        stage_out = (16, 24, 40, 80)
        for i in range(arch["encoder_stages"]):
            for j in range(arch["encoder_depth"][i]):
                x = _blocks.inverted_residual(keras, x, ch(stage_out[i]), 4 if j == 0 else 3, 3 if i < 2 else 5,
                                              2 if j == 0 else 1, act, se=i >= 1)
            skips.append(x)
        skips.pop()
        for level, skip in enumerate(reversed(skips)):
            c = int(skip.shape[-1])
            x = layers.UpSampling2D(2, interpolation="bilinear")(x)
            x = _blocks.conv_bn(keras, x, c, 1, act=act)
            x = self._crop_to(keras, x, skip)
            if arch["pool"] == "mean":
                gate = layers.GlobalAveragePooling2D(keepdims=True)(skip)
            else:
                gate = layers.AveragePooling2D(tuple(int(d) for d in skip.shape[1:3]))(skip)
            gate = layers.Conv2D(c, 1, activation="relu")(gate)
            gate = layers.Conv2D(c, 1, activation="sigmoid")(gate)
            x = layers.Add()([x, layers.Multiply()([skip, gate])])
            x = _blocks.dw_bn(keras, x, 3, act=act)
        x = _blocks.conv_bn(keras, x, arch["decoder"], 1, act=act)
        x = layers.Conv2DTranspose(arch["maps"], 2, strides=2, padding="same")(x)
        x = self._crop_to(keras, x, inputs)
        return layers.Activation("sigmoid", name="maps")(x)
