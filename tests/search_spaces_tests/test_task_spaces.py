"""The task spaces' special operator choices, each checked through export, LiteRT and Vela.

Small explicit archs that cover what a random sample may miss: hard-swish and
squeeze-excite, depth-to-space at x3 (lowered to NPU transposes), stride-2
transposed convolutions at x4, PReLU, detectors with one or six feature maps.
"""
from __future__ import annotations

import numpy as np
import pytest

import search_spaces
from search_spaces import InvalidArchError
from tests.search_spaces_tests.helpers import run_litert


def compile_on_u55(space, arch):
    from predictors import targets
    from predictors.tflite_model import inspect_model
    from search_spaces.export import to_tflite

    tflite = to_tflite(space.build(arch))
    assert run_litert(tflite) == space.output_shapes(arch)
    measured = targets.get("ethos-u55-128").measure(tflite)
    return inspect_model(tflite), measured


IC_SMALL = {
    "resolution": 32, "width": 0.25, "activation": "hard_swish",
    "depth": [1, 1, 1, 1, 1, 1], "expansion": [3, 4, 6, 3, 4, 6], "kernel": [3, 5, 7, 3, 5, 7],
    "se": [True, True, True, True, True, True],
}
SR_SMALL = {
    "input_size": 24, "scale": 2, "upsampler": "depth_to_space", "feature_channels": 16, "feature_kernel": 5,
    "shrink_channels": 8, "mapping_layers": 2, "mapping_kernel": [3, 5], "upsample_kernel": 3, "activation": "relu",
}
OD_SMALL = {
    "resolution": 96, "width": 0.25, "depth": [1, 1, 1, 1, 1, 1], "expansion": [3, 3, 3, 3, 3, 3],
    "kernel": [3, 5, 3, 5, 3, 5], "min_feature_stride": 8, "extra_layers": 4, "head_kernel": 5, "anchors": 6,
}


def test_hard_swish_and_squeeze_excite_run_on_the_npu():
    space = search_spaces.get("image_classification")
    info, measured = compile_on_u55(space, IC_SMALL)
    assert {"HARD_SWISH", "MEAN", "LOGISTIC", "MUL"} <= set(info.opcodes)
    assert measured["cpu_operators"] == 0


@pytest.mark.parametrize(
    "change",
    [
        {"scale": 3, "upsampler": "depth_to_space", "activation": "prelu"},
        {"scale": 4, "upsampler": "transpose_conv", "upsample_kernel": 9},
        {"scale": 2, "upsampler": "transpose_conv", "shrink_channels": 0, "mapping_layers": 0, "mapping_kernel": []},
    ],
)
def test_super_resolution_upsamplers_run_on_the_npu(change):
    space = search_spaces.get("super_resolution", channels=3)
    arch = {**SR_SMALL, **change}
    info, measured = compile_on_u55(space, arch)
    opcodes = info.opcodes
    assert measured["cpu_operators"] == 0
    assert "DEPTH_TO_SPACE" not in opcodes  # a CPU operator under Vela 5.2
    if change["upsampler"] == "depth_to_space":
        assert "TRANSPOSE" in opcodes
    else:
        assert "TRANSPOSE_CONV" in opcodes


@pytest.mark.parametrize("scale, channels", [(2, 1), (3, 3), (4, 2)])
def test_depth_to_space_layer_equals_tensorflows(scale, channels):
    from search_spaces import _blocks, import_keras, import_tensorflow

    keras, tf = import_keras(), import_tensorflow()
    x = np.random.default_rng(0).standard_normal((2, 5, 3, channels * scale * scale)).astype(np.float32)
    inputs = keras.Input(x.shape[1:])
    model = keras.Model(inputs, _blocks.depth_to_space(keras, inputs, scale))
    np.testing.assert_array_equal(np.asarray(model(x)), tf.nn.depth_to_space(x, scale).numpy())


def test_transposed_convolution_is_not_offered_for_x3():
    space = search_spaces.get("super_resolution")
    with pytest.raises(InvalidArchError, match=r"'upsampler' value 'transpose_conv' not in \['depth_to_space'\]"):
        space.decode({**SR_SMALL, "scale": 3, "upsampler": "transpose_conv"})
    rng = np.random.default_rng(0)
    for _ in range(50):
        arch = space.sample(rng)
        assert arch["scale"] != 3 or arch["upsampler"] == "depth_to_space"


@pytest.mark.parametrize(
    "change, maps",
    [
        ({}, 7),  # stride 8, 16, 32 and four extra layers
        ({"min_feature_stride": 32, "extra_layers": 0, "anchors": 3}, 1),  # one feature map
    ],
)
def test_detector_outputs_are_concatenated_raw_boxes_and_scores(change, maps):
    space = search_spaces.get("object_detection", num_classes=20)
    arch = {**OD_SMALL, **change}
    info, measured = compile_on_u55(space, arch)
    (boxes, scores) = space.output_shapes(arch)
    assert boxes[2] == 4 and scores[2] == 21 and boxes[1] == scores[1] == space.num_boxes(arch)
    assert not [op for op in info.opcodes if op.startswith(("CUSTOM", "NON_MAX_SUPPRESSION"))]  # no NMS
    assert info.opcodes.count("RESHAPE") == 2 * maps  # a box and a class head per map
    assert measured["cpu_operators"] == 0


def test_detector_box_count_follows_the_feature_maps():
    space = search_spaces.get("object_detection")
    # 96x96: stride 8 -> 12x12, 16 -> 6x6, 32 -> 3x3, extras 2, 1, 1, 1
    assert space.num_boxes(OD_SMALL) == 6 * (144 + 36 + 9 + 4 + 1 + 1 + 1)
    assert space.num_boxes({**OD_SMALL, "resolution": 320, "min_feature_stride": 16, "extra_layers": 1}) == 6 * (
        400 + 100 + 25
    )


def test_keyword_spotting_contains_the_mlperf_tiny_ds_cnn():
    """MLPerf Tiny's KWS reference: 64-channel 10x4/2 stem, four 3x3 depthwise-separable blocks."""
    space = search_spaces.get("keyword_spotting")
    arch = {
        "channels": 64, "stem_kernel": "10x4", "stem_stride": "2x2", "blocks": 4, "kernel": [3] * 4, "stride": [1] * 4,
    }
    model = space.build(arch)
    assert tuple(model.inputs[0].shape) == (1, 49, 10, 1)
    assert tuple(model.outputs[0].shape) == (1, 12)
    # conv 10x4x1x64 + 4 x (dw 3x3x64 + pw 64x64) + dense 64x12 (+ biases, BN gamma/beta)
    from tests.search_spaces_tests.helpers import trainable_params

    assert trainable_params(model) == 2560 + 128 + 4 * (576 + 128 + 4096 + 128) + 64 * 12 + 12
