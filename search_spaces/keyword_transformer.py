"""Keyword transformers: KWT networks on a 49x10x1 MFCC input (attention on the NPU).

KWT (Berg et al., "Keyword Transformer", Interspeech 2021): the MFCC frames are cut
into patches of a few frames x every coefficient, each patch embedded by one linear
layer (here a convolution with the patch as kernel and stride), then transformer
blocks: LayerNorm -> multi-head self-attention -> residual, LayerNorm -> MLP (two
fully connected layers, GELU between) -> residual; the tokens are averaged and a
linear classifier gives the 12 keywords.  Searchable: the embedding width, the
heads, the blocks, the MLP ratio, the patch height (frames per token: 49 / p
tokens), the MLP activation (GELU as in KWT, or ReLU).

The graph is the attention the Ethos-U85 runs on its NPU: FULLY_CONNECTED for the
projections, TRANSPOSE and RESHAPE to split heads, BATCH_MATMUL for the scores and
the weighted sum, SOFTMAX, GELU, and LayerNorm as MEAN / SQUARED_DIFFERENCE /
RSQRT / MUL / ADD.  LayerNorm is written as ``(x - mean) * rsqrt(var + eps) * gamma +
beta``: Keras's own layer makes the converter emit a float NEG between a DEQUANTIZE
and a QUANTIZE, three CPU operators per LayerNorm on every Ethos-U.
"""
from __future__ import annotations

import functools
from typing import Any

from search_spaces._base import Chooser, FixedInputClassifier, Option, parse_positive_int, parse_shape, register_space

DIMS = (32, 48, 64, 96, 128, 192)  # KWT-1/2/3: 64/128/192
HEADS = (1, 2, 4, 8)  # every one divides every width
BLOCKS = (1, 6)  # inclusive range; KWT uses 12
MLP_RATIOS = (1, 2, 4)
PATCH_FRAMES = (1, 2, 3, 4, 7)  # tokens: 49, 24, 16, 12, 7
ACTIVATIONS = ("gelu", "relu")


@functools.lru_cache(maxsize=None)
def _layer_norm_class(keras: Any):
    ops = keras.ops

    class LayerNorm(keras.layers.Layer):
        """LayerNorm over the last axis, written so that the int8 graph has no float op."""

        def __init__(self, epsilon: float = 1e-6, **kwargs):
            super().__init__(**kwargs)
            self.epsilon = float(epsilon)

        def build(self, input_shape):
            self.gamma = self.add_weight(shape=(input_shape[-1],), initializer="ones", name="gamma")
            self.beta = self.add_weight(shape=(input_shape[-1],), initializer="zeros", name="beta")

        def call(self, x):
            centred = x - ops.mean(x, axis=-1, keepdims=True)
            variance = ops.mean(ops.square(centred), axis=-1, keepdims=True)
            return centred * ops.rsqrt(variance + self.epsilon) * self.gamma + self.beta

        def get_config(self):
            return {**super().get_config(), "epsilon": self.epsilon}

    return LayerNorm


def layer_norm(keras: Any, x: Any) -> Any:
    return _layer_norm_class(keras)()(x)


@register_space
class KeywordTransformerSpace(FixedInputClassifier):
    name = "keyword_transformer"
    kind = "task"
    param_prefix = "kwt_"
    description = (
        "keyword transformers (KWT) on 49x10x1 MFCCs: embedding width, heads, blocks, MLP ratio, "
        "frames per patch, MLP activation"
    )
    option_specs = {
        "num_classes": Option(12, parse_positive_int, "give the number of keywords, e.g. 12"),
        "input_shape": Option([49, 10, 1], parse_shape, "give frames x coefficients x 1, e.g. '49x10x1'"),
    }

    def _draw(self, ch: Chooser) -> None:
        ch.choice("dim", DIMS)
        ch.choice("heads", HEADS)
        ch.integer("blocks", *BLOCKS)
        ch.choice("mlp_ratio", MLP_RATIOS)
        ch.choice("patch_frames", [p for p in PATCH_FRAMES if p <= self.options["input_shape"][0]])
        ch.choice("activation", ACTIVATIONS)

    def _build(self, arch: dict, inputs: Any, keras: Any) -> Any:
        layers = keras.layers
        dim, heads = arch["dim"], arch["heads"]
        frames, coefficients, _ = self.options["input_shape"]
        patch = arch["patch_frames"]
        x = layers.Conv2D(dim, (patch, coefficients), strides=(patch, coefficients), padding="valid",
                          name="patch_embedding")(inputs)
        x = layers.Reshape((frames // patch, dim))(x)
        for _ in range(arch["blocks"]):
            h = layer_norm(keras, x)
            h = layers.MultiHeadAttention(heads, dim // heads)(h, h)
            x = layers.Add()([x, h])
            h = layer_norm(keras, x)
            h = layers.Dense(dim * arch["mlp_ratio"], activation=arch["activation"])(h)
            h = layers.Dense(dim)(h)
            x = layers.Add()([x, h])
        x = layers.GlobalAveragePooling1D()(x)
        return layers.Dense(self.options["num_classes"], name="logits")(x)
