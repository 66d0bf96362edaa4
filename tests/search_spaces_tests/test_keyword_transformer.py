"""The keyword-transformer space: attention that every Ethos-U runs on its NPU."""
from __future__ import annotations

import collections

import numpy as np
import pytest

import search_spaces
from search_spaces.export import to_tflite

SPACE = search_spaces.get("keyword_transformer")
ARCH = SPACE.sample(np.random.default_rng(27))  # width 32, 4 heads, 2 blocks, GELU, 7-frame patches


def test_the_layer_norm_equals_keras_own():
    from search_spaces import import_keras
    from search_spaces.keyword_transformer import layer_norm

    keras = import_keras()
    x = np.random.default_rng(0).normal(size=(1, 7, 32)).astype("float32") * 3 + 1
    inputs = keras.Input((7, 32), batch_size=1)
    ours = keras.Model(inputs, layer_norm(keras, inputs))
    reference = keras.Model(inputs, keras.layers.LayerNormalization(epsilon=1e-6)(inputs))
    np.testing.assert_allclose(ours(x), reference(x), rtol=1e-4, atol=1e-5)


def test_the_int8_graph_is_attention_with_no_float_operator():
    from predictors.tflite_model import inspect_model

    info = inspect_model(to_tflite(SPACE.build(ARCH)))
    ops = collections.Counter(info.opcodes)
    assert ops["BATCH_MATMUL"] == 2 * 2 and ops["SOFTMAX"] == 2 and ops["GELU"] == 2 and ops["RSQRT"] == 2 * 2
    assert not {"NEG", "DEQUANTIZE", "QUANTIZE"} & set(ops)  # Keras's LayerNormalization leaves a float NEG
    activations = {info.tensors[i].dtype for op in info.operators for i in op.inputs + op.outputs
                   if i >= 0 and not info.tensors[i].is_constant}
    assert activations == {"INT8"}


@pytest.mark.parametrize("target", ["ethos-u55-128", "ethos-u65-256", "ethos-u85-256"])
def test_every_ethos_u_runs_all_of_it_on_the_npu(target):
    from predictors import targets

    measured = targets.get(target).measure(to_tflite(SPACE.build(ARCH)))
    assert measured["cpu_operators"] == 0 and measured["npu_operators"] > 0
