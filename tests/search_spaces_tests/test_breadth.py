"""The breadth space: the structures the other spaces lack, int8 and on the Ethos-U55's NPU."""
from __future__ import annotations

import collections

import pytest

import search_spaces
from search_spaces.export import to_tflite

SPACE = search_spaces.get("breadth")
BRANCHY = {"family": "branchy", "resolution": 33, "in_channels": 3, "stem_channels": 12, "heads": 2, "classes": 10,
           "kernel": [3, 5, 3, 3], "downsample": ["stride", "maxpool", "avgpool", "stride"], "groups": [2, 3, 4, 2],
           "width": [24, 36, 24, 24], "depth": [1, 1, 2, 1]}
ARCHS = {  # small archs, each family and block; the operators the converter must make of them
    "inception, shuffle, dilated, attention": (
        dict(BRANCHY, activation="prelu", stem="zero_pad", stages=4,
             block=["inception", "shuffle", "dilated", "attention"]),
        {"PAD", "CONCATENATION", "TRANSPOSE", "PRELU", "BATCH_MATMUL", "SOFTMAX", "MAX_POOL_2D"}),
    "fire, resnext, narrow": (
        dict(BRANCHY, activation="leaky_relu", stem="same", stages=3, block=["fire", "resnext", "narrow"],
             kernel=[3, 3, 5], downsample=["stride", "maxpool", "avgpool"], groups=[2, 4, 3], width=[24, 48, 36],
             depth=[1, 1, 2]),
        {"CONCATENATION", "LEAKY_RELU", "AVERAGE_POOL_2D", "ADD"}),
    "unet": (
        {"family": "unet", "activation": "relu", "size": 32, "in_channels": 1, "levels": 2, "base": 8,
         "upsample": "bilinear", "outputs": 2},
        {"RESIZE_BILINEAR", "CONCATENATION", "MAX_POOL_2D"}),
    "unet, transposed": (
        {"family": "unet", "activation": "relu6", "size": 32, "in_channels": 3, "levels": 2, "base": 8,
         "upsample": "transpose", "outputs": 1},
        {"TRANSPOSE_CONV", "CONCATENATION"}),
    "temporal": (
        {"family": "temporal", "activation": "hard_swish", "frames": 49, "features": 10, "channels": 16,
         "tcn_kernel": 3, "tcn_blocks": 3, "padding": "causal", "classes": 12},
        {"PAD", "CONV_2D", "HARD_SWISH", "MEAN"}),
    "recurrent": (
        {"family": "recurrent", "activation": "relu", "frames": 49, "features": 10, "channels": 16,
         "tcn_kernel": 3, "steps": 4, "units": 16, "classes": 12},
        {"STRIDED_SLICE", "FULLY_CONNECTED", "LOGISTIC", "TANH", "MUL"}),
}


@pytest.mark.parametrize("name", list(ARCHS))
def test_each_family_exports_its_structure_in_int8_and_runs_on_the_npu(name):
    from predictors import targets
    from predictors.tflite_model import inspect_model

    fields, expected = ARCHS[name]
    arch = SPACE.decode(dict(fields, space="breadth"))
    model = SPACE.build(arch)
    assert [tuple(o.shape) for o in model.outputs] == SPACE.output_shapes(arch)
    tflite = to_tflite(model)
    info = inspect_model(tflite)
    ops = collections.Counter(info.opcodes)
    assert expected <= set(ops), expected - set(ops)
    activations = {info.tensors[i].dtype for op in info.operators for i in op.inputs + op.outputs
                   if i >= 0 and not info.tensors[i].is_constant}
    assert activations == {"INT8"}
    measured = targets.get("ethos-u55-128").measure(tflite)
    assert measured["cpu_operators"] == 0 and measured["npu_operators"] > 0


def test_grouped_and_dilated_convolutions_stay_one_operator_each():
    """ResNeXt's grouped 3x3 is one CONV_2D with a kernel of C/groups input channels; a dilated
    convolution one CONV_2D with its dilation (no SPACE_TO_BATCH_ND around it)."""
    from predictors.tflite_model import inspect_model

    fields = dict(BRANCHY, activation="relu", stem="same", stages=2, block=["resnext", "dilated"], kernel=[3, 3],
                  downsample=["stride", "stride"], groups=[4, 3], width=[48, 24], depth=[1, 1])
    info = inspect_model(to_tflite(SPACE.build(SPACE.decode(dict(fields, space="breadth")))), with_options=True)
    assert not {"SPACE_TO_BATCH_ND", "BATCH_TO_SPACE_ND", "SPLIT"} & set(info.opcodes)
    convs = [op for op in info.operators if op.opcode == "CONV_2D"]
    grouped = [op for op in convs if info.tensors[op.inputs[1]].shape[-1] != info.tensors[op.inputs[0]].shape[-1]]
    assert {info.tensors[op.inputs[0]].shape[-1] // info.tensors[op.inputs[1]].shape[-1] for op in grouped} == {4}
    assert {op.options.get("DilationHFactor") for op in convs} >= {1, 3}


def test_attention_on_a_large_map_pools_its_keys():
    fields = dict(BRANCHY, resolution=128, activation="relu", stem="same", stages=1, block=["attention"],
                  kernel=[3], downsample=["stride"], groups=[2], width=[24], depth=[1])
    model = SPACE.build(SPACE.decode(dict(fields, space="breadth")))
    attention = next(layer for layer in model.layers if type(layer).__name__ == "MultiHeadAttention")
    queries, keys = (int(t.shape[1]) for t in attention.input)
    assert queries == 32 * 32 and keys <= 256


CELL_SPACE = search_spaces.get("breadth", families="cell")
CELL = {"family": "cell", "activation": "relu", "resolution": 47, "in_channels": 3, "channels": 8,
        "stem_reductions": 1, "repeats": 1, "classes": 10,
        "normal_nodes": 3, "normal_op_a": ["sep3", "avg3", "dil5"], "normal_op_b": ["skip", "max3", "sep5"],
        "normal_in_a": [1, 0, 2], "normal_in_b": [0, 2, 3],
        "reduce_nodes": 2, "reduce_op_a": ["max3", "sep7"], "reduce_op_b": ["skip", "avg3"],
        "reduce_in_a": [1, 0], "reduce_in_b": [0, 2]}


def test_cell_networks_have_nasnets_operators_and_run_on_the_npu():
    """Stride-1 'same' average pools on small maps, depthwise/pointwise chains, the factorised
    reduction's pad and crop, concatenated nodes: NASNet's structure, int8, all on the U55's NPU."""
    from predictors import targets
    from predictors.tflite_model import inspect_model

    arch = CELL_SPACE.decode(dict(CELL, space="breadth", options={"families": "cell"}))
    model = CELL_SPACE.build(arch)
    assert [tuple(o.shape) for o in model.outputs] == CELL_SPACE.output_shapes(arch)
    tflite = to_tflite(model)
    info = inspect_model(tflite, with_options=True)
    assert {"DEPTHWISE_CONV_2D", "CONV_2D", "MAX_POOL_2D", "PAD", "STRIDED_SLICE", "CONCATENATION", "ADD",
            "RELU"} <= set(info.opcodes)
    pools = [(op.options.get("StrideH"), info.tensors[op.inputs[0]].shape[1])
             for op in info.operators if op.opcode == "AVERAGE_POOL_2D"]
    assert {size for stride, size in pools if stride == 1} == {24, 12, 6}  # each stage's normal cell
    assert len(info.operators) > 100
    measured = targets.get("ethos-u55-128").measure(tflite)
    assert measured["cpu_operators"] == 0 and measured["npu_operators"] >= len(info.operators)


def test_families_option_keeps_the_classic_draws_and_ids():
    import numpy as np

    classic, explicit, cells, both = (search_spaces.get("breadth", **o) for o in
                                      ({}, {"families": "classic"}, {"families": "cell"}, {"families": "all"}))
    assert classic.options == explicit.options == {}  # the default is not part of any arch_id
    draws = [classic.sample(np.random.default_rng([0, i])) for i in range(20)]
    assert [classic.arch_id(a) for a in draws] == [explicit.arch_id(explicit.sample(np.random.default_rng([0, i])))
                                                   for i in range(20)]
    assert classic.arch_id(draws[0]) == "d156053c07353b20"  # a committed network (data/edgedlperf)
    assert {a["family"] for a in draws} <= {"branchy", "unet", "temporal", "recurrent"}
    assert {cells.sample(np.random.default_rng([0, i]))["family"] for i in range(5)} == {"cell"}
    assert {both.sample(np.random.default_rng([1, i]))["family"] for i in range(40)} >= {"cell", "branchy"}
    arch = cells.decode(dict(CELL, space="breadth", options={"families": "cell"}))
    assert search_spaces.from_encoded(cells.encode(arch))[0].options == {"families": "cell"}
    with pytest.raises(Exception, match="classic, cell"):
        search_spaces.get("breadth", families="nasnet")
