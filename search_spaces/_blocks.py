"""Keras building blocks shared by the spaces (imported only inside ``build``).

Every function takes the ``keras`` module, so importing this file stays free of
TensorFlow.  The choices below were checked against Vela 5.2 (Ethos-U55/U65): each
block lands on the NPU in full.
"""
from __future__ import annotations

import functools
from typing import Any

ACTIVATIONS = ("relu", "relu6", "hard_swish")


def make_divisible(value: float, divisor: int = 8, min_value: int | None = None) -> int:
    """MobileNet's channel rounding: to a multiple of ``divisor``, never 10 % below ``value``."""
    min_value = min_value or divisor
    rounded = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded


def activation(keras: Any, x: Any, kind: str | None) -> Any:
    """ReLU, ReLU6 (fused into the convolution in TFLite), hard-swish (HARD_SWISH),
    swish (LOGISTIC and MUL; the generic space's), GELU (GELU), PReLU (one slope per
    channel, shared over the other axes) or leaky ReLU (0.1); the last four are not in
    :data:`ACTIVATIONS`."""
    layers = keras.layers
    if kind is None:
        return x
    if kind == "prelu":
        return layers.PReLU(shared_axes=list(range(1, len(x.shape) - 1)) or None)(x)
    if kind == "leaky_relu":
        return layers.LeakyReLU(0.1)(x)
    if kind == "relu":
        return layers.ReLU()(x)
    if kind == "relu6":
        return layers.ReLU(6.0)(x)
    if kind in ("hard_swish", "swish", "gelu"):
        return layers.Activation(kind)(x)
    raise ValueError(f"unknown activation {kind!r}")


def conv_bn(
    keras: Any,
    x: Any,
    filters: int,
    kernel: int | tuple[int, int] = 1,
    strides: int | tuple[int, int] = 1,
    act: str | None = None,
    *,
    groups: int = 1,
    padding: str = "same",
    bn_epsilon: float = 1e-3,
) -> Any:
    """Conv2D (no bias) -> BatchNorm -> activation; BN folds into the conv on export."""
    layers = keras.layers
    x = layers.Conv2D(filters, kernel, strides=strides, padding=padding, use_bias=False, groups=groups)(x)
    x = layers.BatchNormalization(epsilon=bn_epsilon)(x)
    return activation(keras, x, act)


def dw_bn(
    keras: Any,
    x: Any,
    kernel: int | tuple[int, int],
    strides: int | tuple[int, int] = 1,
    act: str | None = None,
    *,
    padding: str = "same",
    bn_epsilon: float = 1e-3,
) -> Any:
    """DepthwiseConv2D (no bias) -> BatchNorm -> activation."""
    layers = keras.layers
    x = layers.DepthwiseConv2D(kernel, strides=strides, padding=padding, use_bias=False)(x)
    x = layers.BatchNormalization(epsilon=bn_epsilon)(x)
    return activation(keras, x, act)


def squeeze_excite(keras: Any, x: Any, squeezed: int) -> Any:
    """Squeeze-and-excitation: MEAN -> 1x1 conv, ReLU -> 1x1 conv, sigmoid -> MUL.

    The sigmoid is TFLite's LOGISTIC (one NPU operator); the MUL broadcasts over
    height and width, which Vela supports.
    """
    layers = keras.layers
    channels = int(x.shape[-1])
    s = layers.GlobalAveragePooling2D(keepdims=True)(x)
    s = layers.Conv2D(squeezed, 1, activation="relu")(s)
    s = layers.Conv2D(channels, 1, activation="sigmoid")(s)
    return layers.Multiply()([x, s])


def inverted_residual(
    keras: Any,
    x: Any,
    out_channels: int,
    expansion: int,
    kernel: int,
    strides: int,
    act: str,
    se: bool = False,
    expanded: list | None = None,
) -> Any:
    """MobileNetV2/V3 block: 1x1 expand -> depthwise -> (SE) -> 1x1 project (+ residual).

    The SE bottleneck has a quarter of the block's *input* channels (EfficientNet's
    rule; MobileNetV3 takes a quarter of the expanded channels, 3-6x the weights).
    If ``expanded`` is a list, the expansion conv's output is appended to it (the
    feature SSDLite taps, e.g. MobileNetV2's ``layer_15/expansion_output``).
    """
    layers = keras.layers
    in_channels = int(x.shape[-1])
    shortcut = x
    if expansion != 1:
        x = conv_bn(keras, x, in_channels * expansion, 1, act=act)
        if expanded is not None:
            expanded.append(x)
    x = dw_bn(keras, x, kernel, strides, act=act)
    if se:
        x = squeeze_excite(keras, x, make_divisible(in_channels * 0.25, 8))
    x = conv_bn(keras, x, out_channels, 1, act=None)
    if strides == 1 and in_channels == out_channels:
        x = layers.Add()([shortcut, x])
    return x


def same_size(size: int, stride: int) -> int:
    """Output size of a 'same'-padded convolution."""
    return -(-size // stride)


@functools.lru_cache(maxsize=None)
def _depth_to_space_class(keras: Any):
    ops = keras.ops

    class DepthToSpace(keras.layers.Layer):
        """Pixel shuffle with NPU-friendly rank-3 transposes (see :func:`depth_to_space`)."""

        def __init__(self, block_size: int, **kwargs):
            super().__init__(**kwargs)
            self.block_size = int(block_size)

        def call(self, x):
            r = self.block_size
            h, w, c = int(x.shape[1]), int(x.shape[2]), int(x.shape[3])
            k = c // r  # one output row segment: (j, channel)
            t = ops.reshape(x, (-1, r, k))  # [b h w][i][j c]
            t = ops.transpose(t, (1, 0, 2))  # [i][b h w][j c]
            t = ops.reshape(t, (r, -1, w * k))  # [i][b h][w j c]
            t = ops.transpose(t, (1, 0, 2))  # [b h][i][w j c]
            return ops.reshape(t, (-1, h * r, w * r, c // (r * r)))

        def compute_output_shape(self, input_shape):
            b, h, w, c = input_shape
            r = self.block_size
            return (b, h * r, w * r, c // (r * r))

        def get_config(self):
            return {**super().get_config(), "block_size": self.block_size}

    return DepthToSpace


def depth_to_space(keras: Any, x: Any, block_size: int) -> Any:
    """Depth-to-space (pixel shuffle), written so that it runs on the NPU.

    TFLite's DEPTH_TO_SPACE runs on the CPU under Vela 5.2.  The same permutation
    written as RESHAPE -> TRANSPOSE(1, 0, 2) -> RESHAPE -> TRANSPOSE(1, 0, 2) ->
    RESHAPE uses only rank-3 transposes of the two outer axes, which Vela places on
    the NPU.  The output equals ``tf.nn.depth_to_space(x, block_size)`` exactly.
    """
    return _depth_to_space_class(keras)(block_size)(x)


@functools.lru_cache(maxsize=None)
def _zero_class(keras: Any):
    class Zero(keras.layers.Layer):
        """``x * 0``: a zero tensor that stays connected to the graph (one MUL)."""

        def call(self, x):
            return keras.ops.multiply(x, 0.0)

    return Zero


def times_zero(keras: Any, x: Any) -> Any:
    """NB201's ``Zero`` op (PyTorch ``x.mul(0.)``): the converter keeps it as a MUL."""
    return _zero_class(keras)()(x)


def channel_shuffle(keras: Any, x: Any, groups: int) -> Any:
    """ShuffleNet's channel shuffle (NCHW ``view(g, C/g) -> permute -> view``, in NHWC).

    The converter turns it into RESHAPE -> TRANSPOSE -> RESHAPE; Vela runs it on the NPU.
    """
    layers = keras.layers
    h, w, c = int(x.shape[1]), int(x.shape[2]), int(x.shape[3])
    x = layers.Reshape((h, w, groups, c // groups))(x)
    x = layers.Permute((1, 2, 4, 3))(x)
    return layers.Reshape((h, w, c))(x)
