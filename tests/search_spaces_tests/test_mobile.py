"""The mobile space: the operators of the files phones run (MediaPipe-like), exported as floats."""
from __future__ import annotations

import collections

import numpy as np
import pytest

import search_spaces
from search_spaces.export import to_tflite
from tests.search_spaces_tests.helpers import litert_outputs

SPACE = search_spaces.get("mobile")
BLAZE = {"activation": "prelu", "padding": "explicit", "stem_channels": 16, "blaze": "double", "kernel": 5,
         "stages": 3, "depth": [1, 2, 1], "growth": [1.5, 1.0, 2.0]}
ARCHS = {  # small archs, each family; the operators the converter must make of them
    "detector, depth to space": (
        dict(BLAZE, family="detector", size="96x96", upsample="depth_to_space", anchors=2, coords=16),
        {"DEPTH_TO_SPACE", "PAD", "PRELU", "MAX_POOL_2D", "CONCATENATION", "RESHAPE"}),
    "detector, transposed, odd maps": (
        dict(BLAZE, family="detector", size="144x256", padding="same", activation="relu", blaze="single",
             upsample="transpose", anchors=1, coords=4, stages=4, depth=[1, 1, 1, 1],
             growth=[1.0, 1.5, 1.5, 2.0]),
        {"TRANSPOSE_CONV", "PAD", "ADD"}),
    "landmark": (
        dict(BLAZE, family="landmark", size="64x64", head="pool", points=21),
        {"MEAN", "LOGISTIC", "PRELU"}),
    "segmenter": (
        {"family": "segmenter", "size": "64x64", "width": 0.5, "encoder_stages": 3, "encoder_depth": [1, 2, 1],
         "encoder_activation": "hard_swish", "decoder": 8, "maps": 2, "pool": "average_pool"},
        {"HARD_SWISH", "AVERAGE_POOL_2D", "RESIZE_BILINEAR", "TRANSPOSE_CONV", "MUL", "LOGISTIC"}),
}


@pytest.mark.parametrize("name", list(ARCHS))
def test_each_family_exports_its_operators_and_litert_computes_what_keras_does(name):
    from predictors.tflite_model import inspect_model

    fields, expected = ARCHS[name]
    arch = SPACE.decode(dict(fields, space="mobile"))
    model = SPACE.build(arch, seed=0)
    assert [tuple(o.shape) for o in model.outputs] == SPACE.output_shapes(arch)
    tflite = to_tflite(model, quantize="float32")
    ops = collections.Counter(inspect_model(tflite).opcodes)
    assert expected <= set(ops), expected - set(ops)
    x = np.random.default_rng(0).uniform(-1, 1, size=(1, *SPACE.input_shape(arch))).astype(np.float32)
    outputs = model(x, training=False)
    want = sorted((np.asarray(o) for o in (outputs if isinstance(outputs, (list, tuple)) else [outputs])),
                  key=lambda a: a.shape)
    got = sorted(litert_outputs(tflite, x), key=lambda a: a.shape)
    assert [a.shape for a in got] == [a.shape for a in want]
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-3, atol=1e-4 * float(np.abs(w).max() + 1))


def test_blaze_residuals_pad_channels_and_explicit_padding_precedes_strided_depthwise():
    """A BlazeBlock that widens pads its max-pooled shortcut's channels (a PAD whose last
    dimension grows); ``explicit`` writes a spatial PAD before every strided depthwise."""
    from predictors.tflite_model import inspect_model

    info = inspect_model(to_tflite(SPACE.build(SPACE.decode(dict(ARCHS["detector, depth to space"][0],
                                                                 space="mobile")))), with_options=True)
    pads = [(info.tensors[op.inputs[0]].shape, info.tensors[op.outputs[0]].shape)
            for op in info.operators if op.opcode == "PAD"]
    assert any(i[1:3] == o[1:3] and o[3] > i[3] for i, o in pads)  # channels
    assert any(i[3] == o[3] and o[1] > i[1] for i, o in pads)  # height and width
    producer = {t: op for op in info.operators for t in op.outputs}
    strided = [op for op in info.operators if op.opcode == "DEPTHWISE_CONV_2D" and op.options.get("StrideH") == 2]
    assert strided and all(producer[op.inputs[0]].opcode == "PAD" for op in strided)
