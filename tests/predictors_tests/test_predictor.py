from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from predictors.dataset import DatasetStore
from predictors.predictor import load_predictor
from predictors.train import load_graphs, split_by_network, train_predictor
from search_spaces.errors import HwnasError, UnknownNameError
from tests.search_spaces_tests.helpers import png_size

SPACE = "keyword_spotting"
COMMITTED = Path(__file__).parents[2] / "data" / "edgedlperf"


@pytest.fixture(scope="module")
def kws_data(tmp_path_factory):
    """The first 40 committed keyword-spotting networks with their U55 labels, in a folder
    of their own (the builder that made them is tested in test_dataset.py)."""
    out = tmp_path_factory.mktemp("kws") / "data"
    with DatasetStore(COMMITTED) as committed:
        first = set(committed.first(SPACE, 40))
        rows = [r for r in committed.rows([SPACE], with_tflite=False) if r["arch_id"] in first]
        graphs = dict(committed.graphs(first))
    with DatasetStore(out, create=True) as store:
        for r in rows:
            store.add_network(arch_id=r["arch_id"], space=SPACE, arch=r["arch"], seed=r["seed"], status="ok",
                              tflite=graphs[r["arch_id"]],
                              labels={"ethos-u55-128": {"metrics": r["labels"]["ethos-u55-128"]}})
    return out


@pytest.fixture(scope="module")
def trained(kws_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("pred") / "perfsage-test"
    predictor, report = train_predictor([kws_data], out, epochs=80, config={"ensemble": 2}, progress=False)
    return out, predictor, report


def test_a_small_training_run_learns(kws_data, trained):
    _, predictor, report = trained
    graphs, names = load_graphs([kws_data])
    train, _, test = split_by_network(graphs)
    y_train = np.concatenate([g.y.numpy() for g in train])
    y_test = np.concatenate([g.y.numpy() for g in test])
    for i, name in enumerate(names):
        t, m = name.split("/")
        constant = np.exp(np.mean(np.log(y_train[:, i])))  # the best constant guess in log space
        constant_mape = np.mean(np.abs(constant - y_test[:, i]) / y_test[:, i]) * 100
        assert report["test"][t][m]["mape"] < constant_mape / 2, (name, report["test"][t][m], constant_mape)
    for member in report["history"]:
        assert member["train_loss"] < 0.5  # started near 1 (standardised targets)


def test_save_load_round_trip_and_batching(trained, int8_model, int16_model, float_model):
    path, predictor, _ = trained
    loaded = load_predictor(path)
    assert loaded.targets == ["ethos-u55-128"]
    assert loaded.metrics == {"ethos-u55-128": ["energy_mj", "latency_ms", "offchip_kib", "sram_kib"]}
    one = loaded.predict(int8_model)
    assert one == predictor.predict(int8_model)
    both = loaded.predict([int8_model, int16_model])
    alone = [one, loaded.predict(int16_model)]
    for batched, single in zip(both, alone):  # batched = unbatched
        assert batched["ethos-u55-128"] == pytest.approx(single["ethos-u55-128"], rel=1e-4, abs=1e-6)
    assert set(one["ethos-u55-128"]) == {"latency_ms", "latency_ms_std", "energy_mj", "energy_mj_std",
                                         "sram_kib", "sram_kib_std", "offchip_kib", "offchip_kib_std"}
    assert one["ethos-u55-128"]["latency_ms_std"] > 0  # two ensemble members disagree a little
    refused = loaded.predict([float_model, int8_model])  # a float file: refused in its place, the rest predicted
    assert set(refused[0]["ethos-u55-128"]) == {"error"}
    assert refused[1]["ethos-u55-128"] == pytest.approx(one["ethos-u55-128"], rel=1e-4, abs=1e-6)
    manifest = json.loads((path / "manifest.json").read_text())
    assert manifest["feature_version"].startswith("perfsage-") and manifest["ensemble"] == 2
    assert manifest["training"]["split"]["test"] >= 1


def test_the_fast_inference_path_matches_the_training_path(trained, int8_model, float_model):
    from predictors.graph import from_tflite

    loaded = load_predictor(trained[0])
    graphs = [from_tflite(int8_model), from_tflite(float_model), from_tflite(int8_model)]
    assert loaded._stacked is not None  # the default architecture runs its members stacked
    stacked = loaded._forward(graphs)
    loaded._stacked = None  # one member at a time, torch collate and scaling
    fused = loaded._forward(graphs)
    loaded.fast = False  # the training path: PyG Batch, NumPy normaliser
    plain = loaded._forward(graphs)
    assert len(stacked) == len(fused) == len(plain) == 2
    for a, b, c in zip(stacked, fused, plain):
        np.testing.assert_allclose(a, c, rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(b, c, rtol=1e-4, atol=1e-4)
    assert not np.allclose(fused[0], fused[1])  # two members, two answers


def test_the_stacked_ensemble_matches_its_members_on_many_graphs(trained, kws_data):
    """Chunked by node count into many small chunks, and one graph at a time."""
    loaded = load_predictor(trained[0])
    graphs, _ = load_graphs([kws_data])
    graphs = list(graphs)
    mean, std = loaded.predict_graphs(graphs, max_nodes=50)  # many small chunks
    one_by_one = [loaded.predict_graphs([g]) for g in graphs[:5]]
    loaded._stacked = None
    ref_mean, ref_std = loaded.predict_graphs(graphs)
    np.testing.assert_allclose(mean, ref_mean, rtol=1e-4)
    np.testing.assert_allclose(std, ref_std, rtol=1e-3, atol=1e-6)
    for i, (m, s) in enumerate(one_by_one):
        np.testing.assert_allclose(m[0], ref_mean[i], rtol=1e-4)


def test_the_numpy_path_for_small_requests_matches_the_torch_path(trained, kws_data, int8_model, int16_model):
    """``predict`` on a few small models runs NumPy (``NumpyStacked``), larger ones torch."""
    from predictors.graph import from_tflite

    loaded = load_predictor(trained[0])
    graphs, _ = load_graphs([kws_data])
    graphs = list(graphs)[:12]
    arrays = [{"x": g.x.numpy(), "op_type": g.op_type.numpy(), "edge_index": g.edge_index.numpy(),
               "u": g.u.numpy()} for g in graphs]
    ref_mean, ref_std = loaded.predict_graphs(graphs)
    for i in range(3):  # one graph at a time
        mean, std = loaded._predict_small(arrays[i:i + 1])
        np.testing.assert_allclose(mean[0], ref_mean[i], rtol=1e-4)
        np.testing.assert_allclose(std[0], ref_std[i], rtol=1e-3, atol=1e-6)
    mean, std = loaded._predict_small(arrays)  # several graphs: pooling per graph, edges offset
    np.testing.assert_allclose(mean, ref_mean, rtol=1e-4)
    np.testing.assert_allclose(std, ref_std, rtol=1e-3, atol=1e-6)
    assert not np.allclose(mean[0], mean[1])
    for model in (int8_model, int16_model):  # end to end from the file
        m, s = loaded.predict_graphs([from_tflite(model)])
        got = loaded.predict(model)["ethos-u55-128"]
        assert got["latency_ms"] == pytest.approx(m[0][1], rel=1e-4)
        assert got["latency_ms_std"] == pytest.approx(s[0][1], rel=1e-3, abs=1e-6)
    assert loaded._numpy is not None


def test_a_checkpoint_of_another_feature_version_is_refused(trained, tmp_path):
    import shutil

    path, _, _ = trained
    stale = tmp_path / "stale"
    shutil.copytree(path, stale)
    manifest = json.loads((stale / "manifest.json").read_text())
    manifest["feature_version"] = "perfsage-0.00000000"
    (stale / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(HwnasError, match="trained on graph features 'perfsage-0.00000000'.*retrain"):
        load_predictor(stale)


def test_unknown_predictor_and_target(trained, int8_model):
    with pytest.raises(UnknownNameError, match="unknown predictor"):
        load_predictor("perfsage-npu-9000")
    _, predictor, _ = trained
    with pytest.raises(UnknownNameError, match="does not predict target 'cpu-litert'"):
        predictor.predict(int8_model, targets=["cpu-litert"])


def test_fine_tuning_starts_from_the_given_predictor(kws_data, trained, tmp_path):
    path, _, _ = trained
    tuned, report = train_predictor([kws_data], tmp_path / "tuned", init=str(path), epochs=2, progress=False)
    assert report["epochs"] == 2
    manifest = json.loads((tmp_path / "tuned" / "manifest.json").read_text())
    assert manifest["init"] == str(path)
    # the normaliser comes from the initial predictor (its trunk expects those features)
    assert manifest["normalizer"] == json.loads((path / "manifest.json").read_text())["normalizer"]


def test_members_trained_in_parallel_are_the_members_trained_one_by_one(kws_data):
    kwargs = dict(epochs=3, config={"ensemble": 3}, progress=False)
    one, _ = train_predictor([kws_data], None, workers=1, **kwargs)
    two, report = train_predictor([kws_data], None, workers=2, **kwargs)
    assert len(two.members) == 3 and len(report["history"]) == 3
    for a, b in zip(one.members, two.members):
        sa, sb = a.state_dict(), b.state_dict()
        assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
    # members differ from each other (each its own seed): a mix-up of results would show
    s0, s1 = two.members[0].state_dict(), two.members[1].state_dict()
    assert not all(torch.equal(s0[k], s1[k]) for k in s0)
    with pytest.raises(HwnasError, match="workers must be 1 or more"):
        train_predictor([kws_data], None, workers=0, **kwargs)


def test_published_configuration_is_runnable(kws_data):
    from predictors.model import PUBLISHED

    predictor, report = train_predictor([kws_data], None, config=PUBLISHED, epochs=3, progress=False)
    assert predictor.manifest["model"]["layers"] == 2 and predictor.manifest["model"]["readout"] == "mean"
    assert report["split"]["train"] >= 30


def test_cli_train_predict_evaluate(kws_data, trained, int8_model_path, tmp_path):
    path, _, _ = trained
    run = lambda *a: subprocess.run([sys.executable, "-m", "hwnas", *a], capture_output=True, text=True)  # noqa
    proc = run("predict", int8_model_path, "--predictor", str(path), "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == load_predictor(path).predict(int8_model_path)
    proc = run("predict", int8_model_path, int8_model_path, "--predictor", str(path), "--json")
    assert len(json.loads(proc.stdout)) == 2
    plot = tmp_path / "eval.png"
    proc = run("evaluate", "--predictor", str(path), "--data", str(kws_data), "--plot", str(plot), "--json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["ethos-u55-128"]["latency_ms"]["n"] == 40 and SPACE in report["by_space"]
    # one 4 x 4 in panel per metric of the target, four to a row
    n = len(report["ethos-u55-128"])
    assert png_size(plot) == pytest.approx((4 * min(4, n), 4 * -(-n // 4)), abs=0.02)
    proc = run("train", "--data", str(kws_data), "--out", str(tmp_path / "p"), "--epochs", "2", "--quiet",
               "--ensemble", "1")
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "p" / "weights.pt").exists()
    proc = run("predict", int8_model_path, "--predictor", str(tmp_path / "nowhere"))
    assert proc.returncode == 1 and "unknown predictor" in proc.stderr and "Traceback" not in proc.stderr


def test_the_training_device_is_checked_before_any_work(kws_data, tmp_path):
    run = lambda *a: subprocess.run([sys.executable, "-m", "hwnas", *a], capture_output=True, text=True)  # noqa
    base = ("train", "--data", str(kws_data), "--out", str(tmp_path / "p"), "--epochs", "1", "--quiet")
    proc = run(*base, "--device", "tpu9")
    assert proc.returncode == 1 and "tpu9" in proc.stderr and "Traceback" not in proc.stderr
    proc = run(*base, "--workers", "0")
    assert proc.returncode == 1 and "workers must be 1 or more" in proc.stderr and "Traceback" not in proc.stderr
    if not torch.cuda.is_available():
        proc = run(*base, "--device", "cuda")
        assert proc.returncode == 1 and "no CUDA device" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "p").exists()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_training_on_cuda_gives_a_cpu_predictor_that_learns(kws_data, trained, tmp_path):
    _, _, cpu_report = trained
    predictor, report = train_predictor([kws_data], tmp_path / "gpu", epochs=80, config={"ensemble": 2},
                                        progress=False, device="cuda")
    assert report["device"].startswith("cuda")
    assert all(p.device.type == "cpu" for m in predictor.members for p in m.parameters())
    loaded = load_predictor(tmp_path / "gpu")
    graphs, _ = load_graphs([kws_data])
    np.testing.assert_allclose(loaded.predict_graphs(graphs)[0], predictor.predict_graphs(graphs)[0], rtol=1e-5)
    for t, metrics in cpu_report["test"].items():
        if t == "by_space":
            continue
        for m, s in metrics.items():  # the same recipe learns as well on the GPU (not bit-equal)
            assert report["test"][t][m]["mape"] < 2 * s["mape"] + 1.0, (t, m, report["test"][t][m], s)


@pytest.mark.parametrize("aggr", ["mean", "sum", "max"])
def test_the_direct_sage_arithmetic_equals_pyg_sageconv(aggr):
    """PerfSAGE calls SAGEConv's linear maps itself (no propagate overhead): same numbers."""
    from torch_geometric.nn import SAGEConv

    from predictors.model import PerfSAGE

    torch.manual_seed(0)
    model = PerfSAGE(2, {"layers": 1, "hidden": 8, "aggr": aggr, "residual": False, "head": "linear",
                         "readout": "sum", "graph_features": False, "l2_normalize": False}).eval()
    conv: SAGEConv = model.convs[0]
    n = 6
    x = torch.randn(n, conv.in_channels - model.embedding.embedding_dim)
    op_type = torch.randint(0, 10, (n,))
    edge_index = torch.tensor([[0, 1, 2, 2, 4], [1, 2, 3, 4, 5]])
    batch = torch.zeros(n, dtype=torch.long)
    h = torch.relu(conv(torch.cat([x, model.embedding(op_type)], dim=-1), edge_index))
    expected = model.head(h.sum(dim=0, keepdim=True))
    torch.testing.assert_close(model(x, op_type, edge_index, batch), expected)


def test_the_ensemble_spread_is_rescaled_to_cover_95_percent_of_validation_errors():
    from types import SimpleNamespace

    from predictors.train import _std_scale

    rng = np.random.default_rng(0)
    y = rng.uniform(1, 10, size=(2000, 2))
    err = rng.normal(0, 1, size=y.shape) * np.array([2.0, 0.5])  # true sigma 2 and 0.5
    val = [SimpleNamespace(y=torch.tensor(row[None], dtype=torch.float64)) for row in y]
    fake = SimpleNamespace(manifest={"ensemble": 3}, label_names=["t/a", "t/b"],
                           predict_graphs=lambda graphs: (y + err, np.ones_like(y)))  # spread says sigma 1
    scale = _std_scale(fake, val)
    assert scale[0] == pytest.approx(2.0, rel=0.1) and scale[1] == pytest.approx(0.5, rel=0.1)
    single = SimpleNamespace(manifest={"ensemble": 1}, label_names=["t/a", "t/b"])
    assert _std_scale(single, val) == [1.0, 1.0]  # one member has no spread to rescale


def test_few_shot_trains_only_the_heads_of_a_frozen_graph_network(trained, kws_data, tmp_path):
    import torch

    path, base, _ = trained
    graphs, _ = load_graphs([kws_data])
    ids = sorted(g.arch_id for g in graphs)
    split = (ids[:12], ids[12:16], ids[16:])  # twelve measured networks
    predictor, report = train_predictor([kws_data], tmp_path / "few", init=str(path), few_shot=True,
                                        epochs=40, split=split, progress=False)
    assert report["split"] == {"train": 12, "val": 4, "test": len(ids) - 16}
    for member, original in zip(predictor.members, base.members):
        new, old = member.state_dict(), original.state_dict()
        for key in new:
            if key.startswith(("head.", "node_head.")):
                continue
            if key.startswith("label_"):  # this table's label scale
                continue
            assert torch.equal(new[key], old[key]), key  # the graph network is frozen
        assert not torch.equal(new["node_head.2.weight"], old["node_head.2.weight"])  # the heads learnt
    mape = report["test"]["ethos-u55-128"]["latency_ms"]["mape"]
    assert mape < 30, report["test"]["ethos-u55-128"]["latency_ms"]
    assert json.loads((tmp_path / "few" / "manifest.json").read_text())["few_shot"] is True


def test_few_shot_without_a_starting_predictor_is_refused(kws_data):
    with pytest.raises(HwnasError, match="few-shot.*--init"):
        train_predictor([kws_data], None, few_shot=True, epochs=1, progress=False)


def test_predictions_in_parallel_threads_equal_the_serial_ones(trained, kws_data):
    loaded = load_predictor(trained[0])
    graphs, _ = load_graphs([kws_data])
    serial = loaded.predict_graphs(graphs, max_nodes=40, workers=1)
    threaded = loaded.predict_graphs(graphs, max_nodes=40, workers=2)
    for a, b in zip(serial, threaded):
        np.testing.assert_array_equal(a, b)
    assert len(serial[0]) == len(graphs)


def test_novelty_names_what_no_training_graph_had_and_nothing_on_committed_graphs(trained, kws_data):
    """A trained predictor records its training graphs' operator types and sizes; a graph of the
    same space raises no novelty, a float16 third-party file names float activations, new ops
    and its size (more operators than any keyword-spotting graph)."""
    import random
    import warnings
    from pathlib import Path

    from predictors.dataset import DatasetStore
    from predictors.graph import graph_arrays
    from predictors.predictor import PredictionWarning, list_predictors

    path, _, _ = trained
    predictor = load_predictor(path)
    assert predictor.op_types_seen and 3 in predictor.op_types_seen  # CONV_2D
    third_party = Path(__file__).resolve().parents[1] / "data" / "thirdparty" / "face_detection_short_range.tflite"
    unseen = predictor.novelty(graph_arrays(third_party))
    assert "operator PAD" in unseen and "out_dtype_float32 (constant in training)" in unseen
    graphs, _ = load_graphs([kws_data])
    train, _, _ = split_by_network(graphs)
    sizes = [int(g.num_nodes) for g in train]
    assert predictor.graph_nodes_seen == (min(sizes), max(sizes))
    n = len(graph_arrays(third_party)["op_type"])
    assert n > 1.25 * max(sizes) and f"{n} operators (training graphs had at most {max(sizes)})" in unseen
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = predictor.predict(third_party)  # an Ethos-U predictor: refused, so nothing to call a guess
    assert set(result["ethos-u55-128"]) == {"error"} and "Vela needs an int8" in result["ethos-u55-128"]["error"]
    assert not any(issubclass(w.category, PredictionWarning) for w in caught)

    committed = Path(__file__).resolve().parents[2] / "data" / "edgedlperf"
    shipped = [load_predictor(n) for n in list_predictors()]
    rng = random.Random(19)
    with DatasetStore(committed) as store:
        rows = [r for r in store.rows(["keyword_spotting", "generic"]) if r["quantize"] == "int8" and rng.random() < 0.01]
    assert len(rows) > 20
    for row in rows:  # what the shipped predictors were trained on is never called unseen
        for p in shipped:
            assert p.novelty(graph_arrays(row["tflite"])) == [], (p.name, row["space"])


def test_a_predictor_trained_with_unknown_ops_reads_every_unseen_operator_as_one(kws_data, int8_model, tmp_path):
    """``unknown_ops``: training reads some nodes' operator types as UNKNOWN_OP_TYPE, and the
    predictor reads any type no training graph had as that one (two unseen types, one
    prediction, on the torch and the NumPy paths); without it they keep their own untrained
    embeddings and give two predictions."""
    from predictors.graph import UNKNOWN_OP_TYPE, graph_arrays, to_data

    config = {"ensemble": 2, "epochs": 3}
    with_unknown, _ = train_predictor([kws_data], tmp_path / "u", config=dict(config, unknown_ops=0.1),
                                      progress=False)
    plain, _ = train_predictor([kws_data], tmp_path / "p", config=config, progress=False)
    unseen = sorted(set(range(UNKNOWN_OP_TYPE)) - with_unknown.op_types_seen - plain.op_types_seen)[-2:]
    base = graph_arrays(int8_model)

    def renamed(t):
        arrays = dict(base, op_type=base["op_type"].copy())
        arrays["op_type"][0] = t
        return arrays

    for predictor, same in ((with_unknown, True), (plain, False)):
        small = [predictor.predict_arrays([renamed(t)])[0] for t in (*unseen, UNKNOWN_OP_TYPE)]  # NumPy
        graphs = predictor.predict_graphs([to_data(renamed(t)) for t in unseen])[0]  # torch
        assert (small[0] == small[1] == small[2]) is same
        assert np.array_equal(graphs[0], graphs[1]) is same
    assert with_unknown.predict_arrays([base])[0] != with_unknown.predict_arrays([renamed(unseen[0])])[0]
