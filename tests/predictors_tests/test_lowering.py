"""The lowering: an arch's graph without Keras or the converter, equal to the converter's.

Truth we did not produce: the committed dataset stores the converter's own graph of
every network (a seeded sample per space is lowered and compared here; all of them
in ``benchmarks/lowering.py``), and nasbench201/fbnet archs are exported fresh with
TensorFlow and compared.
"""
from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import search_spaces
from predictors.dataset import DatasetStore
from predictors.graph import GRAPH_FEATURES, arch_arrays, from_arch, from_tflite, graph_arrays
from predictors.graph._lowered import LoweringError
from search_spaces.errors import HwnasError

REPO = Path(__file__).parents[2]
COMMITTED = REPO / "data" / "edgedlperf"
MODEL_BYTES = GRAPH_FEATURES.index("model_bytes")
TASK_SPACES = ["keyword_spotting", "image_classification", "object_detection", "super_resolution", "generic"]


def assert_same_graph(real: dict, low: dict, size_tolerance: float = 0.001) -> None:
    assert low["x"].shape == real["x"].shape
    assert np.array_equal(low["op_type"], real["op_type"])
    assert np.array_equal(low["edge_index"], real["edge_index"])
    np.testing.assert_allclose(low["x"], real["x"], rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(low["edge_attr"], real["edge_attr"], rtol=1e-6)
    a, b = real["u"].copy(), low["u"].copy()
    assert abs(b[0, MODEL_BYTES] / a[0, MODEL_BYTES] - 1) < size_tolerance  # the layout computed, names a digit off
    a[0, MODEL_BYTES] = b[0, MODEL_BYTES] = 0.0
    np.testing.assert_allclose(b, a, rtol=1e-6)


@pytest.fixture(scope="module")
def committed_sample():
    """Eight stored networks of each task space, drawn with a fixed seed."""
    rng = random.Random(18)
    out = []
    with DatasetStore(COMMITTED) as store:
        for space in TASK_SPACES:
            rows = [r for r in store.rows([space], with_tflite=False) if r["quantize"] == "int8"]  # int8 is lowered
            picked = {r["arch_id"]: r for r in rng.sample(rows, 8)}
            for arch_id, data in store.graphs(picked):  # only these are decoded
                picked[arch_id]["tflite"] = data
            out += [r for r in rows if r["arch_id"] in picked]
    return out


def test_lowered_graphs_equal_the_converters_on_committed_networks(committed_sample):
    assert len(committed_sample) == 8 * len(TASK_SPACES)
    errors = []
    for row in committed_sample:
        space, arch = search_spaces.from_encoded(row["arch"])
        real, low = graph_arrays(row["tflite"]), arch_arrays(space, arch)
        assert_same_graph(real, low)
        errors.append(abs(low["u"][0, MODEL_BYTES] / real["u"][0, MODEL_BYTES] - 1))
    assert np.median(errors) < 0.0001  # model size: exact, or a few bytes of a name a digit off


@pytest.mark.parametrize("name,options", [("nasbench201", {}), ("nasbench201", {"zero_edges": "compute"}),
                                          ("fbnet", {}), ("generic", {"widths": "any"})])
def test_lowered_graphs_equal_fresh_exports(name, options):
    from hwnas.export import to_tflite

    space = search_spaces.get(name, **options)
    for i in range(2):
        arch = space.sample(np.random.default_rng([4, i]))
        tflite = to_tflite(space.build(arch, seed=i), quantize="int8", seed=i)
        assert_same_graph(graph_arrays(tflite), arch_arrays(space, arch))


def _names(tflite: bytes) -> list[str]:
    from predictors.tflite_model import inspect_model

    return [t.name for t in inspect_model(tflite).subgraphs[0].tensors]


def test_lowered_tensor_names_are_the_converters_on_committed_networks(committed_sample):
    """Stored graphs keep each name's length (its characters blanked): the lowering's names match."""
    from predictors.graph._lowered import lower
    from predictors.graph._names import ARITH

    for row in committed_sample:
        space, arch = search_spaces.from_encoded(row["arch"])
        lowered = [t.name for t in lower(space, arch).subgraphs[0].tensors]
        stored = _names(row["tflite"])
        assert len(lowered) == len(stored)
        if row["arch"]["space"] == "keyword_spotting":  # no name of these is approximate
            assert sorted(map(len, lowered)) == sorted(map(len, stored))
        # an arith.constant<N> can be a digit or two off, a matmul's weight a "1"; the rest is the converter's
        slack = 2 * sum(n.startswith(ARITH) for n in lowered) + sum("/MatMul" in n for n in lowered)
        assert abs(sum(map(len, lowered)) - sum(map(len, stored))) <= slack, row["arch_id"]


@pytest.mark.parametrize("name", TASK_SPACES + ["nasbench201", "fbnet"])
def test_lowered_tensor_names_equal_a_fresh_exports(name):
    """The strings themselves, against the converter's own file (the arith.constant<N> numbers aside)."""
    from hwnas.export import to_tflite
    from predictors.graph._lowered import lower
    from predictors.graph._names import ARITH

    space = search_spaces.get(name)
    arch = space.sample(np.random.default_rng([5, len(name)]))
    real = _names(to_tflite(space.build(arch, seed=1), quantize="int8", seed=1))
    lowered = [t.name for t in lower(space, arch).subgraphs[0].tensors]
    assert len(lowered) == len(real)
    assert sorted(n for n in lowered if not n.startswith(ARITH)) == sorted(n for n in real if not n.startswith(ARITH))


def test_an_nb201_cell_whose_node_sums_only_zero_edges():
    """Every edge into a node is `none`: x * 0, which the converter folds into the stem conv."""
    from hwnas.export import to_tflite

    space = search_spaces.get("nasbench201")
    arch = space.decode("|none~0|+|none~0|nor_conv_1x1~1|+|none~0|skip_connect~1|nor_conv_1x1~2|")
    assert_same_graph(graph_arrays(to_tflite(space.build(arch))), arch_arrays(space, arch))


def test_from_arch_is_from_tflite_of_the_export(committed_sample):
    row = committed_sample[0]
    space, arch = search_spaces.from_encoded(row["arch"])
    a, b = from_tflite(row["tflite"]), from_arch(space.name, arch)  # a space name works too
    assert a.x.shape == b.x.shape and bool((a.edge_index == b.edge_index).all())
    assert b.feature_version == a.feature_version


def test_predict_arch_matches_predicting_the_exported_file(committed_sample):
    from predictors import load_predictor

    predictor = load_predictor("perfsage-ethos-u55-128")
    rows = committed_sample[::8][:3]
    for row in rows:
        space, arch = search_spaces.from_encoded(row["arch"])
        lowered = predictor.predict_arch(space, arch)["ethos-u55-128"]
        exported = predictor.predict(row["tflite"])["ethos-u55-128"]
        for metric in ("latency_ms", "energy_mj", "sram_kib"):
            assert lowered[metric] == pytest.approx(exported[metric], rel=0.02)
    many = predictor.predict_arch(space, [arch, arch])
    assert isinstance(many, list) and len(many) == 2


def test_a_builder_the_stand_in_cannot_run_is_refused():
    from search_spaces._base import FixedInputClassifier, Option, parse_positive_int

    class RecurrentSpace(FixedInputClassifier):
        name = "recurrent_test"
        option_specs = {"num_classes": Option(4, parse_positive_int, "a number"),
                        "input_shape": Option([8, 4], lambda v: list(v), "a shape")}

        def _draw(self, ch):
            ch.choice("units", (8, 16))

        def _build(self, arch, inputs, keras):
            return keras.layers.Dense(4)(keras.layers.LSTM(arch["units"])(inputs))

    space = RecurrentSpace()
    arch = space.decode({"units": 8})
    with pytest.raises(LoweringError, match="LSTM"):
        arch_arrays(space, arch)
    assert isinstance(LoweringError("x"), HwnasError)


def test_the_lowered_path_imports_no_tensorflow():
    code = ("import sys, json\n"
            "from predictors.graph import from_arch\n"
            "import search_spaces, numpy as np\n"
            "space = search_spaces.get('image_classification')\n"
            "g = from_arch(space, space.sample(np.random.default_rng(0)))\n"
            "print(json.dumps([g.num_nodes, 'tensorflow' in sys.modules, 'keras' in sys.modules]))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert out.returncode == 0, out.stderr
    nodes, tf, keras = json.loads(out.stdout)
    assert nodes > 10 and not tf and not keras


def hwnas(*args):
    return subprocess.run([sys.executable, "-m", "hwnas", *args], capture_output=True, text=True, cwd=REPO,
                          timeout=300)


def test_cli_predicts_archs_in_order_and_refuses_bad_input(tmp_path):
    space = search_spaces.get("keyword_spotting")
    archs = [space.encode(space.sample(np.random.default_rng(k))) for k in range(3)]
    lines = tmp_path / "archs.jsonl"
    lines.write_text("\n".join(json.dumps(a) for a in archs[1:]) + "\n")
    proc = hwnas("predict", "--space", "keyword_spotting", "--arch", json.dumps(archs[0]), "--archs", str(lines),
                 "--target", "ethos-u55-128", "--json")
    assert proc.returncode == 0, proc.stderr
    results = json.loads(proc.stdout)
    assert len(results) == 3 and all(set(r) == {"ethos-u55-128"} for r in results)
    from predictors import load_predictor

    expected = load_predictor("perfsage-ethos-u55-128").predict_arch(space, [space.decode(a) for a in archs])
    for got, want in zip(results, expected):
        assert got["ethos-u55-128"]["latency_ms"] == pytest.approx(want["ethos-u55-128"]["latency_ms"])
    lines.write_text(json.dumps(archs[0]) + "\n{not json\n")
    bad = [
        (("--archs", str(lines)), "line 2 is not JSON"),
        (("--arch", '{"blocks": 2}'), "missing key"),
        (("--arch", json.dumps(archs[0]), "--space-option", "colour=blue"), "colour"),
    ]
    for extra, message in bad:
        proc = hwnas("predict", "--space", "keyword_spotting", *extra, "--json")
        assert proc.returncode == 1 and proc.stdout == ""
        assert proc.stderr.startswith("hwnas: error:") and message in proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1
    proc = hwnas("predict", "model.tflite", "--space", "keyword_spotting", "--arch", "{}")
    assert proc.returncode == 1 and "not both" in proc.stderr


@pytest.mark.parametrize("name", ["keyword_spotting", "object_detection", "nasbench201", "fbnet"])
def test_a_written_lowered_graph_reads_back_as_the_lowering(name):
    """What `hwnas dataset import` stores for a lowered network: every reader sees the lowered graph."""
    from predictors.graph._lowered import lower
    from predictors.graph._writer import write_tflite
    from predictors.tflite_model import inspect_model

    space = search_spaces.get(name)
    for i in range(3):
        arch = space.sample(np.random.default_rng([9, i]))
        info = lower(space, arch)
        data = write_tflite(info)
        inspect_model(data)  # a valid flatbuffer for the validating reader
        a, b = arch_arrays(space, arch), graph_arrays(data)
        assert abs(len(data) - info.size_bytes) <= 8  # filled to the estimated size
        assert_same_graph(b, a, size_tolerance=2e-3)  # alignment: a few bytes


def test_import_stores_lowered_graphs_without_tensorflow(tmp_path):
    from predictors.dataset.importer import import_table

    table = tmp_path / "t.csv"
    table.write_text("arch,latency_s\n"
                     "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|,"
                     "0.012\n|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_1x1~0|skip_connect~1|"
                     "skip_connect~2|,0.004\n")
    stats = import_table(tmp_path / "ds", "nasbench201", table, "arch", ["latency_ms=latency_s*1000"], "board",
                         progress=False)
    assert stats["imported"] == 2 and stats["lowered"] == 2
    space = search_spaces.get("nasbench201")
    with DatasetStore(tmp_path / "ds") as store:
        for row in store.rows():
            assert_same_graph(graph_arrays(row["tflite"]), arch_arrays(space, space.decode(row["arch"])), 2e-3)
        assert all(r["tflite_sha256"] is None for r in store.network_rows())  # no exported file to reproduce


def test_a_lowering_pauses_the_collector_and_restores_it(monkeypatch):
    import gc

    from predictors.graph import _extract
    from predictors.graph._lowered import gc_paused

    states = []
    extract = _extract.extract_arrays
    monkeypatch.setattr(_extract, "extract_arrays", lambda info: states.append(gc.isenabled()) or extract(info))

    space = search_spaces.get("keyword_spotting")
    arch = space.sample(np.random.default_rng(3))
    seen = []
    gc.callbacks.append(lambda phase, info: seen.append(phase))  # a collection during the lowering would show
    try:
        with gc_paused():
            assert not gc.isenabled()
            with gc_paused():  # nested: the inner one leaves it to the outer
                pass
            assert not gc.isenabled()
            before = len(seen)
            for _ in range(30):
                arch_arrays(space, arch)
            assert len(seen) == before
        assert gc.isenabled()
        arch_arrays(space, arch)
        assert states[-1] is False and gc.isenabled()  # paused while it lowered, on again after
        gc.disable()  # a caller who turned the collector off keeps it off
        arch_arrays(space, arch)
        assert not gc.isenabled()
    finally:
        gc.enable()
        gc.callbacks.pop()
