"""Streaming networks: one hop of frames in, the state kept in the model between calls.

Wake-word and keyword models that run on a stream (microWakeWord's MixedNet, Google's
``kws_streaming``) are exported so that one inference consumes only the newest frames:
each temporal layer keeps the frames it still needs in a variable (a ring buffer),
concatenates the new ones, runs its kernel once, and writes the newest frames back.
The TFLite file carries that state as resource variables: ``VAR_HANDLE``,
``READ_VARIABLE``, ``CONCATENATION``, ``STRIDED_SLICE``, ``ASSIGN_VARIABLE`` around
each layer, and an initialisation subgraph that ``CALL_ONCE`` runs on the first
inference.  An inference is a few microseconds.  No other space has any of it; like
``breadth`` this is not a search space for a task (``kind = "breadth"``), it is
drawn for the CPU predictor's training set.

A network reads ``stride`` new frames of ``features`` (``[stride, features]``):

* ``layout``: ``channels`` (the features are the channels of a one-pixel-wide map:
  ``[frames, 1, features]``, microWakeWord's layout) or ``image`` (the spectrogram
  as a one-channel image, ``[frames, features, 1]``, kernels 3 wide in frequency,
  the frequency axis zero-padded: ``PAD``);
* a stem convolution of ``stem_kernel`` frames with time stride ``stride``: one
  output frame per inference (the frequency axis optionally strided by 2);
* 1-6 blocks, each one output frame from a ring buffer of the frames its kernel needs:
  ``ds`` (depthwise then pointwise), ``conv`` (a full convolution), ``mix`` (MixConv:
  the channels split in two, ``SPLIT_V``, each half a depthwise kernel of its own over
  the last frames of one buffer), ``dilated`` (a depthwise kernel of 3 dilated by 2,
  4 or 8, then pointwise) or ``gru`` (a gated recurrent cell whose hidden state is
  the variable: one step per inference, on the frame flattened; the map is one pixel
  wide after it); an optional residual add where the channels allow;
* a head over the last ``head_frames`` output frames: flattened or averaged, then a
  dense classifier (sigmoid for one or two classes, else softmax).

Exported in int8, the converter quantises the state too (``to_tflite`` sets its
variable quantisation), as microWakeWord's files have it.  The Ethos-U runs the
variable operators on its CPU: ``npu_first = False``.
"""
from __future__ import annotations

import functools
from typing import Any

from search_spaces import _blocks
from search_spaces._base import Chooser, SearchSpace, register_space

LAYOUTS = ("channels", "image")
FEATURES = (10, 20, 32, 40, 49, 64)
STRIDES = (1, 2, 3, 4)  # new frames per inference
STEM_KERNELS = (3, 5, 7)  # frames (at least the stride: one output frame per inference)
BLOCK_TYPES = ("ds", "conv", "mix", "dilated", "gru")
KERNELS = (3, 5, 7, 9, 13, 21)  # frames a block's kernel spans
DILATIONS = (2, 4, 8)
CHANNELS = (8, 16, 24, 32, 48, 64, 96, 128)
BLOCKS = (1, 6)  # inclusive range
HEAD_FRAMES = (1, 2, 4, 8)
HEADS = ("flatten", "average")
ACTIVATIONS = ("relu", "relu6")
CLASSES = (1, 2, 4, 12)


@functools.lru_cache(maxsize=None)
def _layers(keras: Any):
    import numpy as np

    ops = keras.ops

    class RingBuffer(keras.layers.Layer):
        """Prepends the ``keep`` frames kept from earlier calls (a variable, zeros at first)
        and keeps the newest ``keep`` frames of the result for the next call."""

        def __init__(self, keep: int, **kwargs):
            super().__init__(**kwargs)
            self.keep = int(keep)

        def build(self, input_shape):
            self.state = self.add_weight(shape=(input_shape[0], self.keep, *input_shape[2:]),
                                         initializer="zeros", trainable=False, name="state")

        def call(self, x):
            full = ops.concatenate([ops.cast(self.state, x.dtype), x], axis=1)
            self.state.assign(full[:, -self.keep:])
            return full

        def compute_output_shape(self, input_shape):
            return (input_shape[0], input_shape[1] + self.keep, *input_shape[2:])

    class GruStep(keras.layers.Layer):
        """One step of a gated recurrent cell on one frame (flattened); the hidden state
        is a variable, read at the start of the call and written back at its end."""

        def __init__(self, units: int, **kwargs):
            super().__init__(**kwargs)
            self.units = int(units)

        def build(self, input_shape):
            u, c = self.units, int(np.prod(input_shape[1:]))  # the frame, flattened
            self.h = self.add_weight(shape=(1, u), initializer="zeros", trainable=False, name="h")
            self.wx = self.add_weight(shape=(c, 3 * u), initializer="glorot_uniform", name="wx")
            self.wh = self.add_weight(shape=(u, 3 * u), initializer="orthogonal", name="wh")
            self.b = self.add_weight(shape=(3 * u,), initializer="zeros", name="b")

        def call(self, x):
            u = self.units
            h = ops.cast(self.h, x.dtype)
            gx = ops.matmul(ops.reshape(x, (1, -1)), self.wx) + self.b
            gh = ops.matmul(h, self.wh)
            z = ops.sigmoid(gx[:, :u] + gh[:, :u])
            r = ops.sigmoid(gx[:, u:2 * u] + gh[:, u:2 * u])
            n = ops.tanh(gx[:, 2 * u:] + r * gh[:, 2 * u:])
            new = (1.0 - z) * n + z * h
            self.h.assign(new)
            return ops.reshape(new, (1, 1, 1, u))

        def compute_output_shape(self, input_shape):
            return (input_shape[0], 1, 1, self.units)

    class SplitChannels(keras.layers.Layer):
        """The channels in two parts of ``first`` and the rest (``SPLIT_V``)."""

        def __init__(self, first: int, **kwargs):
            super().__init__(**kwargs)
            self.first = int(first)

        def call(self, x):
            import tensorflow as tf

            return tf.split(x, [self.first, int(x.shape[-1]) - self.first], axis=-1)

        def compute_output_shape(self, input_shape):
            return [(*input_shape[:-1], self.first), (*input_shape[:-1], input_shape[-1] - self.first)]

    class LastFrames(keras.layers.Layer):
        """The last ``count`` frames (``STRIDED_SLICE``)."""

        def __init__(self, count: int, **kwargs):
            super().__init__(**kwargs)
            self.count = int(count)

        def call(self, x):
            return x[:, -self.count:]

        def compute_output_shape(self, input_shape):
            return (input_shape[0], self.count, *input_shape[2:])

    return RingBuffer, GruStep, SplitChannels, LastFrames


def buffered(keras: Any, x: Any, frames: int) -> Any:
    """``x`` (its newest frames) with the earlier frames a kernel of ``frames`` needs."""
    keep = frames - int(x.shape[1])
    return _layers(keras)[0](keep)(x) if keep > 0 else x


@register_space
class StreamingSpace(SearchSpace):
    name = "streaming"
    kind = "breadth"
    param_prefix = "st_"
    description = (
        "Streaming networks (microWakeWord, kws_streaming): the newest frames in, ring buffers and recurrent "
        "state as resource variables (VAR_HANDLE, READ_VARIABLE, ASSIGN_VARIABLE, CALL_ONCE); "
        "depthwise-separable, MixConv, dilated, convolution and GRU blocks: CPU training breadth"
    )
    option_specs: dict = {}
    npu_first = False  # the variable operators run on the Ethos-U's CPU

    def _draw(self, ch: Chooser) -> None:
        layout = ch.choice("layout", LAYOUTS)
        ch.choice("features", FEATURES)
        ch.choice("stride", STRIDES)
        ch.choice("stem_kernel", STEM_KERNELS)
        if layout == "image":
            ch.choice("freq_stride", (1, 2))
        ch.choice("stem_channels", CHANNELS)
        blocks = ch.integer("blocks", *BLOCKS)
        per = f"one per block; 'blocks' is {blocks} (null where a block's type has no such choice)"
        for name in ("type", "kernel", "kernel2", "dilation", "channels", "residual"):
            ch.items(name, blocks, per)
        for i in range(blocks):
            kind = ch.choice("type", BLOCK_TYPES, i)
            for name, choices, has in (("kernel", KERNELS, kind in ("ds", "conv", "mix")),
                                       ("kernel2", KERNELS, kind == "mix"),
                                       ("dilation", DILATIONS, kind == "dilated"),
                                       ("channels", CHANNELS, True),
                                       ("residual", (False, True), kind != "gru")):
                if has:
                    ch.choice(name, choices, i)
                else:
                    ch.skip(name, i, f"a {kind} block has no {name}")
        ch.choice("head", HEADS)
        ch.choice("head_frames", HEAD_FRAMES)
        ch.choice("activation", ACTIVATIONS)
        ch.choice("classes", CLASSES)

    def input_shape(self, arch: Any = None) -> tuple[int, ...]:
        arch = self._input_dependent(arch, "stride")
        return (arch["stride"], arch["features"])

    def output_shapes(self, arch: Any) -> list[tuple[int, ...]]:
        return [(1, self.decode(arch)["classes"])]

    def _build(self, arch: dict, inputs: Any, keras: Any) -> Any:
        layers = keras.layers
        keras.ops.concatenate  # (the lowering's stand-in has none: such networks are exported)
        _, GruStep, SplitChannels, LastFrames = _layers(keras)
        act = arch["activation"]
        image = arch["layout"] == "image"
        stride, width = arch["stride"], 3 if image else 1
        x = layers.Reshape((stride, arch["features"], 1) if image else (stride, 1, arch["features"]))(inputs)
        kernel = max(arch["stem_kernel"], stride)

        def pad(t):  # the frequency axis of the image layout, 'same' for kernels 3 wide
            return layers.ZeroPadding2D(((0, 0), (1, 1)))(t) if image else t

        x = pad(buffered(keras, x, kernel))
        x = layers.Conv2D(arch["stem_channels"], (kernel, width), strides=(stride, arch.get("freq_stride", 1)))(x)
        x = self._act(keras, x, act)
        for i in range(arch["blocks"]):
            block = {k: arch[k][i] for k in ("type", "kernel", "kernel2", "dilation", "channels", "residual")}
            c, kind = block["channels"], block["type"]
            if kind == "gru":
                x = GruStep(c)(x)
                continue
            shortcut = x
            if kind == "mix":
                k1, k2 = block["kernel"], block["kernel2"]
                y = pad(buffered(keras, x, max(k1, k2)))
                first = _blocks.make_divisible(int(y.shape[-1]) / 2, 4) if int(y.shape[-1]) > 4 else 1
                a, b = SplitChannels(min(first, int(y.shape[-1]) - 1))(y)
                y = layers.Concatenate()([
                    layers.DepthwiseConv2D((k, width))(LastFrames(k)(part) if k < int(y.shape[1]) else part)
                    for part, k in ((a, k1), (b, k2))])
            elif kind == "dilated":
                d = block["dilation"]
                y = layers.DepthwiseConv2D((3, width), dilation_rate=(d, 1))(pad(buffered(keras, x, 2 * d + 1)))
            elif kind == "conv":
                y = layers.Conv2D(c, (block["kernel"], width))(pad(buffered(keras, x, block["kernel"])))
            else:
                y = layers.DepthwiseConv2D((block["kernel"], width))(pad(buffered(keras, x, block["kernel"])))
            if kind != "conv":
                y = self._act(keras, y, act)
                y = layers.Conv2D(c, 1)(y)
            if block["residual"] and int(shortcut.shape[-1]) == c:
                y = layers.Add()([shortcut, y])
            x = self._act(keras, y, act)
        x = buffered(keras, x, arch["head_frames"])
        if arch["head"] == "average":
            x = layers.GlobalAveragePooling2D()(x)
        else:
            x = layers.Flatten()(x)
        classes = arch["classes"]
        return layers.Dense(classes, activation="sigmoid" if classes <= 2 else "softmax", name="scores")(x)

    _act = staticmethod(_blocks.activation)
