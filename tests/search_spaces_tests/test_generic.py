"""The generic space: every block type and both families build, export and run on the NPU."""
from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

import search_spaces
from search_spaces import InvalidArchError
from search_spaces.generic import BLOCKS
from tests.search_spaces_tests.helpers import run_litert

SPACE = search_spaces.get("generic")


def _cnn(blocks, **over):
    n = len(blocks)
    arch = {
        "family": "cnn", "activation": "relu", "resolution": 32, "in_channels": 3, "stem_channels": 8,
        "stem_stride": 1, "stages": n, "block": list(blocks), "depth": [2] * n, "width": [0.25] * n,
        "kernel": [3] * n, "downsample": ["stride", "maxpool", "avgpool", "stride"][:n], "head_conv": 0,
        "pool": "gap", "fc_layers": 1, "fc_units": [64], "classes": 10,
    }
    return SPACE.decode({**arch, **over})


ARCHS = {
    "cnn: conv, dwsep, mbconv, basic": _cnn(["conv", "dwsep", "mbconv", "basic"], activation="swish"),
    "cnn: mbconv_se, bottleneck, dense, flatten": _cnn(["mbconv_se", "bottleneck", "dense"], pool="flatten",
                                                      activation="hard_swish", head_conv=256, fc_layers=0,
                                                      fc_units=[]),
    "mlp autoencoder": SPACE.decode({"family": "mlp", "activation": "relu6", "features": 640, "layers": 3,
                                     "units": [128, 8, 128], "outputs": "same"}),
}


@pytest.fixture(scope="module")
def exported():
    from predictors.tflite_model import inspect_model
    from search_spaces.export import to_tflite

    out = {}
    for label, arch in ARCHS.items():
        tflite = to_tflite(SPACE.build(arch, seed=0), quantize="int8", num_samples=2)
        out[label] = (arch, tflite, Counter(op.opcode for op in inspect_model(tflite).operators))
    return out


def test_every_block_type_is_covered_by_the_fixtures():
    assert {b for a in ARCHS.values() if a["family"] == "cnn" for b in a["block"]} == set(BLOCKS)


def test_each_structure_becomes_the_operators_it_names(exported):
    _, _, ops = exported["cnn: conv, dwsep, mbconv, basic"]
    assert ops["DEPTHWISE_CONV_2D"] == 4  # dwsep and mbconv, depth 2 each
    assert ops["ADD"] >= 3  # the second mbconv block and both basic blocks
    assert ops["LOGISTIC"] >= 1 and ops["MUL"] >= 1  # swish
    assert ops["MAX_POOL_2D"] == 1 and ops["AVERAGE_POOL_2D"] == 1
    _, _, ops = exported["cnn: mbconv_se, bottleneck, dense, flatten"]
    assert ops["CONCATENATION"] == 2  # one per dense layer
    assert ops["HARD_SWISH"] >= 1
    assert ops["RESHAPE"] >= 1 and ops["MEAN"] == 2  # flattened head; the MEANs are the SE squeezes
    _, _, ops = exported["mlp autoencoder"]
    assert set(ops) == {"FULLY_CONNECTED"} and ops["FULLY_CONNECTED"] == 4  # ReLU6 and BN are fused


def test_exports_run_in_litert_and_on_the_npu(exported):
    from predictors import targets

    u55 = targets.get("ethos-u55-128")
    for label, (arch, tflite, _) in exported.items():
        assert run_litert(tflite) == SPACE.output_shapes(arch), label
        measured = u55.measure(tflite)
        assert measured["cpu_operators"] == 0 and measured["npu_operators"] > 0, (label, measured)


def test_flatten_is_offered_only_for_small_feature_maps():
    big = _cnn(["conv"], resolution=160, stem_stride=1, width=[1.5], head_conv=1280)
    assert big["pool"] == "gap"  # flattening 80 x 80 x 1280 values: 8.2 M inputs per unit
    with pytest.raises(InvalidArchError, match="'pool' value 'flatten' not in \\['gap'\\]"):
        SPACE.decode({**big, "pool": "flatten"})
    small = _cnn(["conv", "conv", "conv", "conv"], pool="flatten")
    assert small["pool"] == "flatten"  # 2 x 2 x 64 values


def test_samples_cover_both_families_and_every_block():
    rng = np.random.default_rng(0)
    archs = [SPACE.sample(rng) for _ in range(300)]
    families = Counter(a["family"] for a in archs)
    assert families["cnn"] > 100 and families["mlp"] > 100
    assert {b for a in archs if a["family"] == "cnn" for b in a["block"]} == set(BLOCKS)
    assert {a["pool"] for a in archs if a["family"] == "cnn"} == {"gap", "flatten"}
    assert {a["outputs"] for a in archs if a["family"] == "mlp"} == {"2", "10", "100", "same"}
    assert len({SPACE.arch_id(a) for a in archs}) == len(archs)


def test_widths_any_draws_integers_in_the_lists_ranges_and_builds_them():
    from predictors.tflite_model import inspect_model
    from search_spaces.export import to_tflite
    from search_spaces.generic import FEATURES, MLP_UNITS

    space = search_spaces.get("generic", widths="any")
    archs = [space.sample(np.random.default_rng([0, i])) for i in range(40)]
    mlps = [a for a in archs if a["family"] == "mlp"]
    widths = [w for a in mlps for w in [a["features"], *a["units"]]]
    assert any(w not in MLP_UNITS + FEATURES for w in widths)  # not only the round numbers
    assert all(min(MLP_UNITS) <= u <= max(MLP_UNITS) for a in mlps for u in a["units"])
    arch = space.decode({"family": "mlp", "activation": "relu", "features": 430, "layers": 2,
                         "units": [600, 550], "outputs": "2"})
    assert search_spaces.from_encoded(space.encode(arch))[0].options == {"widths": "any"}
    info = inspect_model(to_tflite(space.build(arch, seed=0), quantize="float32"))
    assert [op.opcode for op in info.operators] == ["FULLY_CONNECTED"] * 3
    assert [info.tensors[op.inputs[1]].shape for op in info.operators] == [(600, 430), (550, 600), (2, 550)]
    with pytest.raises(InvalidArchError):  # the default space keeps its lists
        SPACE.decode({**arch, "options": {}})


def test_the_default_widths_keep_the_stored_networks_ids():
    assert SPACE.options == {}  # the option at its default is not part of the options ...
    arch = SPACE.sample(np.random.default_rng([0, 2]))
    assert SPACE.arch_id(arch) == "4eb9222daf3ea416"  # ... so a committed network's id is unchanged
