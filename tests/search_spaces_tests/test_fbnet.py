"""FBNet (HW-NAS-Bench / HELP CIFAR-100 setting): the public table, the reference sizes."""
from __future__ import annotations

import csv

import pytest

import search_spaces
from search_spaces import InvalidArchError
from search_spaces.fbnet import CHANNELS, DATASETS, LAYERS_PER_STAGE, OPS, op_spec
from tests.search_spaces_tests.helpers import shared_data, trainable_params

ROW0 = "7 8 1 8 4 8 8 8 7 4 1 4 7 3 2 7 3 2 4 2 4 5"  # sample 0 of the HELP table
ROW0_NAMES = (
    "k5_e6 skip k3_e1_g2 skip k5_e1 skip skip skip k5_e6 k5_e1 k3_e1_g2 k5_e1 k5_e6 k3_e6 k3_e3 "
    "k5_e6 k3_e6 k3_e3 k5_e1 k3_e3 k5_e1 k5_e1_g2"
)


def reference_params(op_idx_list: list[int], num_classes: int = 100) -> int:
    """Parameters of HW-NAS-Bench's ``FBNet_Infer`` (PyTorch), CIFAR setting."""
    strides = DATASETS["cifar100"][2]
    total = 3 * 16 * 9 + 2 * 16  # stem ConvNorm: conv (no bias) + BN
    c_in, layer = 16, 0
    for stage, count in enumerate(LAYERS_PER_STAGE):
        for i in range(count):
            c_out, stride = CHANNELS[stage], (strides[stage] if i == 0 else 1)
            spec = op_spec(OPS[op_idx_list[layer]])
            layer += 1
            if spec is None:  # Skip: a 1x1 ConvNorm only where the shape changes
                if stride != 1 or c_in != c_out:
                    total += c_in * c_out + 2 * c_out
            else:
                kernel, expansion, groups = spec
                mid = c_in * expansion
                total += (c_in // groups) * mid + 2 * mid  # conv1 (grouped) + bn1
                total += mid * kernel * kernel + 2 * mid  # depthwise + bn2
                total += (mid // groups) * c_out + 2 * c_out  # conv3 (grouped) + bn3
            c_in = c_out
    return total + 352 * 1504 + 2 * 1504 + 1504 * num_classes + num_classes  # header ConvNorm, fc


@pytest.fixture(scope="module")
def fbnet():
    return search_spaces.get("fbnet")


def test_every_row_of_the_help_table_decodes(fbnet):
    with open(shared_data("fbnet", "help_fbnet_cifar100_latency_ms.csv"), newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 5000
    ids = set()
    for row in rows:
        arch = fbnet.decode(row["op_idx_list"])
        assert arch["op_idx_list"] == [int(t) for t in row["op_idx_list"].split()]
        assert fbnet.decode(row["arch_str"]) == arch
        assert fbnet.op_names(arch) == row["arch_str"].split()
        ids.add(fbnet.arch_id(arch))
    assert len(ids) == len({row["op_idx_list"] for row in rows})


@pytest.mark.parametrize(
    "op_idx_list",
    [
        [int(t) for t in ROW0.split()],
        [8] * 22,  # every layer skip: identities and the 1x1 ConvNorms where the shape changes
        [7] * 22,  # every layer k5_e6: the largest
        [1] * 11 + [5] * 11,  # grouped 1x1 convolutions everywhere
    ],
)
def test_parameter_count_matches_the_reference_definition(fbnet, op_idx_list):
    model = fbnet.build({"op_idx_list": op_idx_list})
    assert trainable_params(model) == reference_params(op_idx_list)


def test_the_native_forms_decode(fbnet):
    expected = {"space": "fbnet", "op_idx_list": [int(t) for t in ROW0.split()]}
    assert fbnet.decode(ROW0) == expected
    assert fbnet.decode(ROW0_NAMES) == expected
    assert fbnet.decode(ROW0_NAMES.split()) == expected
    assert fbnet.decode(expected["op_idx_list"]) == expected
    assert fbnet.decode({"op_idx_list": ROW0}) == expected  # a CSV cell inside a dict
    assert fbnet.decode("[" + ", ".join(ROW0.split()) + "]") == expected


@pytest.mark.parametrize(
    "bad, message",
    [
        (ROW0.replace("7", "9", 1), "'op_idx_list[0]' value 9 not in [0, 1, 2, 3, 4, 5, 6, 7, 8]"),
        (ROW0 + " 3", "'op_idx_list' has 23 values, expected 22 (one per layer)"),
        (ROW0_NAMES.replace("k5_e6", "k7_e6", 1), "'op_idx_list' item 'k7_e6' is neither an index 0-8 nor an op name"),
        ({"op_idx_list": None}, "'op_idx_list' must be a list of 22 values"),
        ({"ops": ROW0}, "missing key 'op_idx_list'"),
    ],
)
def test_bad_archs_name_the_field(fbnet, bad, message):
    with pytest.raises(InvalidArchError) as info:
        fbnet.decode(bad)
    assert message in str(info.value)


def test_options_select_the_macro_network():
    imagenet = search_spaces.get("fbnet", dataset="ImageNet")
    assert imagenet.options == {"dataset": "imagenet", "input_shape": [224, 224, 3], "num_classes": 1000}
    assert imagenet.input_shape() == (224, 224, 3)
    cifar = search_spaces.get("fbnet")
    assert cifar.options["input_shape"] == [32, 32, 3] and cifar.options["num_classes"] == 100
    assert cifar.arch_id(ROW0) != imagenet.arch_id(ROW0)


@pytest.mark.slow
def test_grouped_convs_and_channel_shuffle_run_on_the_npu(fbnet):
    from predictors import targets
    from predictors.tflite_model import inspect_model
    from search_spaces.export import to_tflite

    tflite = to_tflite(fbnet.build(ROW0))
    opcodes = inspect_model(tflite).opcodes
    assert "TRANSPOSE" in opcodes  # the channel shuffle after a grouped 1x1 conv
    measured = targets.get("ethos-u55-128").measure(tflite)
    assert measured["cpu_operators"] == 0
