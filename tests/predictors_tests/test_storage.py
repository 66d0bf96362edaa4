"""Dataset storage: the compaction codec, shards, and the folder view (working store + shards).

Real TFLite files throughout (the tiny test network and a seeded sample of the
committed dataset); no converter or Vela runs here, so these take seconds.
"""
from __future__ import annotations

import hashlib
import json
import random
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from predictors.dataset import DatasetStore, compact
from predictors.dataset.shards import Shard, ShardError, list_shards
from predictors.tflite_model import strip_constant_buffers
from search_spaces.errors import HwnasError

COMMITTED = Path(__file__).parents[2] / "data" / "edgedlperf"


@pytest.fixture(scope="module")
def graphs(int8_model, float_model) -> list[bytes]:
    return [strip_constant_buffers(int8_model), strip_constant_buffers(float_model)]


def committed_sample(per_space: int = 4, seed: int = 0) -> list[bytes]:
    """A seeded sample of the committed dataset's stored graphs, per shard."""
    rng = random.Random(seed)
    out = []
    for path in list_shards(COMMITTED):
        shard = Shard(path)
        n = len(shard.networks())
        positions = rng.sample(range(n), min(per_space, n))
        out += [g for _, g in shard.graphs(positions) if g is not None]
    return out


def test_compaction_is_lossless_and_smaller(graphs):
    sample = graphs + committed_sample()
    assert len(sample) >= 2 + 4 * 5
    for data in sample:
        c = compact.encode(data)
        assert c is not None
        assert compact.decode(c) == data
        assert len(c.residual) < len(data) / 2
        # the residual is itself a flatbuffer whose offsets no longer span the zeros:
        # the walk finds the same words and vectors in it as the encoder recorded
        assert c.residual[4:8] == b"TFL3"
        walk = compact._Layout(c.residual)
        assert sorted(walk.offsets()[0].tolist()) == c.words.tolist()
        assert sorted(walk.vectors) == c.vectors.tolist()


def test_a_file_that_would_not_round_trip_is_kept_whole(graphs, monkeypatch, tmp_path):
    real_decode = compact.decode
    monkeypatch.setattr(compact, "decode", lambda c: real_decode(c)[:-1])  # a schema gap, say
    assert compact.encode(graphs[0]) is None
    monkeypatch.setattr(compact, "decode", real_decode)
    monkeypatch.setattr(compact, "encode", lambda data: None)
    with DatasetStore(tmp_path / "d", create=True) as store:
        _add(store, "a" * 16, graphs[0])
        store.seal()
    with DatasetStore(tmp_path / "d") as store:
        assert [r["tflite"] for r in store.rows()] == [graphs[0]]
        assert store.shards[0].networks()[0]["arch_id"] == "a" * 16


def _add(store: DatasetStore, arch_id: str, graph: bytes | None, space: str = "keyword_spotting",
         labels: dict | None = None, run_id: int | None = None) -> None:
    store.add_network(arch_id=arch_id, space=space, arch={"space": space, "id": arch_id}, seed=7,
                      status="ok" if graph is not None else "failed", reason=None if graph else "export error: x",
                      tflite=graph, tflite_sha256=hashlib.sha256(arch_id.encode()).hexdigest(),
                      tflite_bytes=len(graph or b""), export_s=0.25, run_id=run_id,
                      labels=labels if labels is not None else
                      {"ethos-u55-128": {"metrics": {"latency_ms": 1.5}}} if graph is not None else None)


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_sealed_shards_are_never_rewritten_and_later_labels_win(graphs, tmp_path):
    folder = tmp_path / "d"
    with DatasetStore(folder, create=True) as store:
        run = store.start_run("build", {"n": 1}, {"versions": {"hwnas": "0"}})
        _add(store, "net-a", graphs[0], run_id=run)
        _add(store, "net-b", graphs[1], run_id=run)
        _add(store, "net-c", None, run_id=run)  # a failed export
        assert store.working_networks() == 3 and not list_shards(folder)
        first = store.seal()
    assert len(first) == 1 and not (folder / "dataset.sqlite").exists()
    before = _digest(first[0])
    with DatasetStore(folder, create=True) as store:
        run2 = store.start_run("build", {"n": 2}, {"versions": {"hwnas": "0"}})
        assert run2 == run + 1  # run ids stay unique across shards
        store.add_labels("net-a", {"ethos-u55-128": {"metrics": {"latency_ms": 9.0}},
                                   "cpu-litert": {"metrics": {"latency_ms": 3.0}}}, run2)
        _add(store, "net-a", graphs[1], run_id=run2)  # stored already: ignored
        _add(store, "net-d", graphs[1], space="super_resolution", run_id=run2)
        second = store.seal()
    assert len(second) == 2  # one shard per space
    assert _digest(first[0]) == before
    with DatasetStore(folder) as store:
        rows = {r["arch_id"]: r for r in store.rows()}
        assert list(rows) == ["net-a", "net-b", "net-d"]
        assert rows["net-a"]["tflite"] == graphs[0] and rows["net-d"]["tflite"] == graphs[1]
        assert rows["net-a"]["labels"] == {"ethos-u55-128": {"latency_ms": 9.0}, "cpu-litert": {"latency_ms": 3.0}}
        assert rows["net-b"]["labels"] == {"ethos-u55-128": {"latency_ms": 1.5}}
        info = store.info()
        assert info["samples"] == 3 and info["shards"] == 3 and info["runs"] == 2
        assert info["failures"] == {"export error": 1}
        assert info["by_space"]["keyword_spotting"] == {"cpu-litert": 1, "ethos-u55-128": 2}
        assert store.first("keyword_spotting", 1) == ["net-a"]
        assert [a for a, *_ in store.unlabelled(None, "cpu-litert")] == ["net-b", "net-d"]
        # a label measured another way than the target measures now is to be measured again
        stale = lambda metrics: metrics.get("timing", "median") != "min-of-10-rounds"  # noqa: E731
        assert [a for a, *_ in store.unlabelled(None, "cpu-litert", stale=stale)] == ["net-a", "net-b", "net-d"]
        from predictors.targets import LiteRTCPUTarget, get

        assert [a for a, *_ in store.unlabelled(None, "cpu-litert", stale=LiteRTCPUTarget().stale)] == [
            "net-a", "net-b", "net-d"]
        assert store.unlabelled(None, "ethos-u55-128", stale=get("ethos-u55-128").stale) == []  # Vela: never stale


def test_training_labels_timed_two_ways_or_on_two_hosts_are_counted_and_warned_about(graphs, tmp_path):
    from predictors.train import label_timings

    folder = tmp_path / "d"
    with DatasetStore(folder, create=True) as store:
        _add(store, "net-a", graphs[0], labels={"cpu-litert": {"metrics": {"latency_ms": 3.0}}})  # no timing: median
        _add(store, "net-b", graphs[1], labels={"cpu-litert": {"metrics": {"latency_ms": 2.0,
                                                                          "timing": "min-of-10-rounds"}},
                                                "ethos-u55-128": {"metrics": {"latency_ms": 1.5}}})
        _add(store, "net-c", graphs[1], labels={"cpu-litert": {"metrics": {"latency_ms": 2.5,
                                                                          "timing": "min-of-10-rounds"}}})
    names = ["cpu-litert/latency_ms", "ethos-u55-128/latency_ms"]
    with pytest.warns(UserWarning, match=r"cpu-litert labels were timed 2 ways \(median 1, min-of-10-rounds 2\)"):
        assert label_timings([folder], {"net-a", "net-b", "net-c"}, names) == {
            "cpu-litert": {"median": 1, "min-of-10-rounds": 2}}
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # one protocol among the networks trained on: no warning
        assert label_timings([folder], {"net-b", "net-c"}, names) == {"cpu-litert": {"min-of-10-rounds": 2}}
        assert label_timings([folder], {"net-a", "net-b"}, ["ethos-u55-128/latency_ms"]) == {}

    # one protocol on two hosts is two latencies as well
    hosts = tmp_path / "h"
    with DatasetStore(hosts, create=True) as store:
        for arch_id, g, host in (("net-a", graphs[0], "AMD EPYC"), ("net-b", graphs[1], "Intel Xeon"),
                                 ("net-c", graphs[1], "Intel Xeon")):
            _add(store, arch_id, g, labels={"cpu-litert": {"metrics": {
                "latency_ms": 2.0, "timing": "min-of-10-rounds", "cpu_model": host}}})
    with pytest.warns(UserWarning, match=r"timed 2 ways \(min-of-10-rounds on AMD EPYC 1, "
                                         r"min-of-10-rounds on Intel Xeon 2\)"):
        assert label_timings([hosts], {"net-a", "net-b", "net-c"}, names) == {
            "cpu-litert": {"min-of-10-rounds on AMD EPYC": 1, "min-of-10-rounds on Intel Xeon": 2}}
    with DatasetStore(hosts) as store:
        assert store.info()["timing_hosts"] == {"cpu-litert": {"min-of-10-rounds": {"AMD EPYC": 1, "Intel Xeon": 2}}}
    proc = subprocess.run([sys.executable, "-m", "hwnas", "dataset", "info", str(hosts)], capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "cpu-litert timing: min-of-10-rounds 3 (AMD EPYC 1, Intel Xeon 2)" in proc.stdout
    assert "cpu-litert labels come from 2 hosts" in proc.stdout


def test_training_on_one_hosts_labels_leaves_the_other_hosts_timings_out(graphs, tmp_path):
    import math

    from predictors.train import load_graphs

    folder = tmp_path / "d"
    with DatasetStore(folder, create=True) as store:
        for arch_id, g, host in (("net-a", graphs[0], "AMD EPYC"), ("net-b", graphs[0], "Intel Xeon"),
                                 ("net-c", graphs[0], "Intel Xeon")):
            _add(store, arch_id, g, labels={
                "cpu-litert": {"metrics": {"latency_ms": 2.0, "arena_kib": 7.0, "timing": "min-of-10-rounds",
                                           "cpu_model": host}},
                **({"ethos-u55-128": {"metrics": {"latency_ms": 1.5}}} if arch_id == "net-a" else {})})
        _add(store, "net-d", graphs[0], labels={"cpu-litert": {"metrics": {"latency_ms": 3.0, "cpu_model": "Arm X"}}})
    every, names = load_graphs([folder])
    assert sorted(g.arch_id for g in every) == ["net-a", "net-b", "net-c", "net-d"]
    intel, _ = load_graphs([folder], host="Intel Xeon")
    col, arena = names.index("cpu-litert/latency_ms"), names.index("cpu-litert/arena_kib")
    amd = {g.arch_id: g for g in load_graphs([folder], host="AMD EPYC")[0]}
    assert sorted(g.arch_id for g in intel) == ["net-a", "net-b", "net-c"]  # net-d: nothing but its latency
    assert math.isnan(float(intel[0].y[0, col])) and float(intel[1].y[0, col]) == 2.0
    assert float(intel[0].y[0, arena]) == 7.0  # an arena is the model's: kept from another host
    assert sorted(amd) == ["net-a", "net-b", "net-c"] and float(amd["net-a"].y[0, col]) == 2.0
    assert math.isnan(float(amd["net-b"].y[0, col])) and float(amd["net-b"].y[0, arena]) == 7.0
    only_cpu, _ = load_graphs([folder], targets=["cpu-litert"], host="Arm X")
    assert sorted(g.arch_id for g in only_cpu) == ["net-a", "net-b", "net-c", "net-d"]
    with pytest.raises(HwnasError, match=r"--host 'Arm': no label was timed there \(hosts: AMD EPYC, Arm X, Intel Xeon\)"):
        load_graphs([folder], host="Arm")
    proc = subprocess.run([sys.executable, "-m", "hwnas", "train", "--data", str(folder), "--out",
                           str(tmp_path / "p"), "--host", "Arm"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1 and proc.stderr.strip().count("\n") == 0 and "no label was timed there" in proc.stderr


def test_two_writers_on_one_folder_are_refused(tmp_path):
    with DatasetStore(tmp_path / "d", create=True):
        with pytest.raises(HwnasError, match="another build or import is writing"):
            DatasetStore(tmp_path / "d", create=True)
    with DatasetStore(tmp_path / "d", create=True):  # released when the first one closed
        pass


def test_reading_a_folder_with_no_dataset_is_an_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(HwnasError, match="no dataset here"):
        DatasetStore(tmp_path / "empty")
    with pytest.raises(HwnasError, match="opened for reading"):
        with DatasetStore(COMMITTED) as store:
            store.start_run("build", {}, {})


@pytest.fixture()
def two_shards(graphs, tmp_path) -> Path:
    folder = tmp_path / "two"
    with DatasetStore(folder, create=True) as store:
        _add(store, "net-a", graphs[0])
        store.seal()
        _add(store, "net-b", graphs[1])
        store.seal()
    assert len(list_shards(folder)) == 2
    return folder


@pytest.mark.parametrize("damage", ["truncate", "flip", "empty"])
def test_a_damaged_shard_is_named_and_the_others_stay_readable(two_shards, damage, capsys):
    bad = list_shards(two_shards)[0]
    blob = bad.read_bytes()
    if damage == "truncate":
        bad.write_bytes(blob[:len(blob) // 2])
    elif damage == "flip":
        bad.write_bytes(blob[:100] + bytes([blob[100] ^ 0xFF]) + blob[101:])
    else:
        bad.write_bytes(b"")
    with pytest.raises(ShardError, match=str(bad.name)) as exc:
        DatasetStore(two_shards)
    assert "--skip-bad-shards" in str(exc.value)
    with DatasetStore(two_shards, skip_bad_shards=True) as store:
        assert [r["arch_id"] for r in store.rows()] == ["net-b"]
        assert store.info()["bad_shards"] == [str(bad)]
    assert bad.name in capsys.readouterr().err
    with pytest.raises(ShardError):  # a writer never skips: it would seal beside a shard nobody reads
        DatasetStore(two_shards, create=True, skip_bad_shards=True)
    cli = [sys.executable, "-m", "hwnas", "dataset", "info", str(two_shards), "--json"]
    proc = subprocess.run(cli, capture_output=True, text=True)
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr.startswith("hwnas: error: ") and len(proc.stderr.strip().splitlines()) == 1
    proc = subprocess.run(cli + ["--skip-bad-shards"], capture_output=True, text=True)
    assert proc.returncode == 0 and json.loads(proc.stdout)["samples"] == 1


def test_a_legacy_dataset_sqlite_is_read_and_sealed_losslessly(graphs, tmp_path):
    """A folder from an hwnas before the shards: one dataset.sqlite.  `hwnas dataset seal` converts it."""
    work = tmp_path / "work"
    with DatasetStore(work, create=True) as store:  # a working store left unsealed: the old format
        run = store.start_run("build", {"space": "keyword_spotting"}, {"versions": {"hwnas": "0.1.0"}})
        _add(store, "net-a", graphs[0], run_id=run)
        _add(store, "net-b", graphs[1], run_id=run, labels={"ethos-u55-128": {"error": "TargetError: no"}})
        _add(store, "net-c", None, run_id=run)
        store.start_run("build", {"space": "keyword_spotting"}, {"versions": {"hwnas": "0.1.0"}})  # added nothing
    legacy = tmp_path / "legacy"
    legacy.mkdir()
    shutil.copy(work / "dataset.sqlite", legacy / "dataset.sqlite")

    def everything(folder):
        with DatasetStore(folder) as store:
            return (store.network_rows(), store.label_rows(), store.run_rows(), list(store.rows()), store.info())

    before = everything(legacy)
    conn = sqlite3.connect(legacy / "dataset.sqlite")
    raw_labels = conn.execute("SELECT metrics FROM labels WHERE metrics IS NOT NULL").fetchall()
    conn.close()
    proc = subprocess.run([sys.executable, "-m", "hwnas", "dataset", "seal", str(legacy)], capture_output=True,
                          text=True)
    assert proc.returncode == 0, proc.stderr
    assert "sealed" in proc.stdout and not (legacy / "dataset.sqlite").exists()
    after = everything(legacy)
    assert after[:4] == before[:4]  # every network, label, run and graph
    assert {k: v for k, v in after[4].items() if k not in ("size_bytes", "shards", "unsealed_networks")} == \
        {k: v for k, v in before[4].items() if k not in ("size_bytes", "shards", "unsealed_networks")}
    # the stored label text comes back exactly too
    assert [(json.dumps(r["metrics"], sort_keys=True),) for r in after[1] if r["metrics"]] == raw_labels


def test_a_seal_interrupted_after_its_shards_were_written_is_not_repeated(graphs, tmp_path):
    folder = tmp_path / "d"
    with DatasetStore(folder, create=True) as store:
        _add(store, "net-a", graphs[0])
        _add(store, "net-b", graphs[1])
    shutil.copy(folder / "dataset.sqlite", tmp_path / "saved.sqlite")
    with DatasetStore(folder, create=True) as store:
        store.seal()
    shutil.copy(tmp_path / "saved.sqlite", folder / "dataset.sqlite")  # as if killed before the removal
    with DatasetStore(folder) as store:
        assert [r["arch_id"] for r in store.rows()] == ["net-a", "net-b"]
    with DatasetStore(folder, create=True) as store:
        assert store.seal() == []  # nothing new: no shard written twice
    assert len(list_shards(folder)) == 1 and not (folder / "dataset.sqlite").exists()


def test_the_committed_dataset_is_sharded_and_compact():
    """The committed set: shards only (no working store left behind), under 1.5 KB a network."""
    assert not (COMMITTED / "dataset.sqlite").exists()
    shards = list_shards(COMMITTED)
    networks = sum(len(Shard(p).networks()) for p in shards)
    size = sum(p.stat().st_size for p in shards)
    assert networks >= 11_500 and size / networks <= 1536


def test_merging_a_copy_labelled_elsewhere_renumbers_its_runs_and_keeps_everything(graphs, tmp_path):
    """Two writers cannot share a folder: a copy is labelled on its own and merged back."""
    main, other = tmp_path / "main", tmp_path / "other"
    with DatasetStore(main, create=True) as store:
        run = store.start_run("build", {"n": 1}, {"versions": {"hwnas": "0"}})
        _add(store, "net-a", graphs[0], run_id=run)
        _add(store, "net-b", graphs[1], run_id=run, labels={"ethos-u55-128": {"metrics": {"latency_ms": 2.0}}})
        store.seal()
    shutil.copytree(main, other)
    with DatasetStore(main, create=True) as store:  # the main folder goes on: a run of its own
        run2 = store.start_run("build", {"n": 2}, {"versions": {"hwnas": "0"}})
        store.add_labels("net-a", {"cpu-litert": {"metrics": {"latency_ms": 3.0, "cpu_model": "X"}}}, run2)
        store.add_labels("net-a", {"ethos-u55-128": {"metrics": {"latency_ms": 1.25}}}, run2)  # relabelled here
    with DatasetStore(other, create=True) as store:  # the copy: a run numbered like main's second
        run_o = store.start_run("build", {"n": 9, "copy": True}, {"versions": {"hwnas": "0"}})
        assert run_o == run2
        store.add_labels("net-b", {"ethos-u85-256": {"metrics": {"latency_ms": 0.5}},
                                   "ethos-u55-128": {"metrics": {"latency_ms": 2.5}}}, run_o)  # relabelled
        _add(store, "net-c", graphs[0], space="super_resolution", run_id=run_o,
             labels={"ethos-u85-256": {"metrics": {"latency_ms": 0.7}}})
        _add(store, "net-d", None, run_id=run_o)  # a failed export comes along too
    out = subprocess.run([sys.executable, "-m", "hwnas", "dataset", "merge", str(other), "--out", str(main)],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    # what the copy shares with the main folder (run 1, net-a's and net-b's first labels) is not added again
    assert "2 networks, 3 labels and 1 run(s) merged" in out.stdout and "(2 networks it had already kept)" in out.stdout
    assert "1 labels older than its own left out" in out.stdout  # net-a's U55 label, relabelled here since
    with DatasetStore(main) as store:
        assert store.conn is None  # sealed
        runs = {r["run_id"]: r for r in store.run_rows()}
        assert sorted(runs) == [1, 2, 3]  # the copy's run 2 came in as 3
        assert runs[3]["command"] == {"n": 9, "copy": True} and "merged_from" not in runs[1]["provenance"]
        assert runs[3]["provenance"]["merged_from"] == {"dataset": str(other), "run_id": 2}
        labels = {(r["arch_id"], r["target"]): r for r in store.label_rows()}
        assert labels[("net-a", "cpu-litert")]["run_id"] == 2  # main's own, untouched
        assert labels[("net-b", "ethos-u85-256")]["run_id"] == 3
        assert labels[("net-a", "ethos-u55-128")]["metrics"] == {"latency_ms": 1.25}  # the newer, this folder's
        assert labels[("net-b", "ethos-u55-128")]["metrics"] == {"latency_ms": 2.5}  # the later label wins
        rows = {r["arch_id"]: r for r in store.rows()}
        assert rows["net-c"]["tflite"] == graphs[0] and rows["net-c"]["labels"] == {"ethos-u85-256": {"latency_ms": 0.7}}
        assert {r["arch_id"]: r["status"] for r in store.network_rows()} == {
            "net-a": "ok", "net-b": "ok", "net-c": "ok", "net-d": "failed"}
        assert store.network_rows("super_resolution")[0]["run_id"] == 3
    again = subprocess.run([sys.executable, "-m", "hwnas", "dataset", "merge", str(main), "--out", str(main)],
                           capture_output=True, text=True)
    assert again.returncode == 1 and again.stderr.startswith("hwnas: error:") and "itself" in again.stderr
    missing = subprocess.run([sys.executable, "-m", "hwnas", "dataset", "merge", str(tmp_path / "nope"), "--out",
                              str(main)], capture_output=True, text=True)
    assert missing.returncode == 1 and "no dataset here" in missing.stderr and len(missing.stderr.splitlines()) == 1


def test_an_ethos_u_sram_estimate_is_capped_at_a_dedicated_srams_size():
    """The U85's memory mode dedicates 384 KB of SRAM: its SRAM estimate (the peak of live
    activations) stops there; the U55's mode has no such cap."""
    import numpy as np

    from predictors.graph import ESTIMATES, GRAPH_FEATURES
    from predictors.train import label_priors, prior_matrix

    names = ["ethos-u85-256/sram_kib", "ethos-u55-128/sram_kib", "ethos-u85-256/latency_ms"]
    priors = label_priors(names)
    assert priors["ethos-u85-256/sram_kib"][2] == 384.0 and len(priors["ethos-u55-128/sram_kib"]) == 2
    u = np.zeros((2, len(GRAPH_FEATURES)))
    u[:, GRAPH_FEATURES.index("peak_activation_bytes")] = [100 * 1024, 1000 * 1024]
    m = prior_matrix(u, np.zeros((2, len(ESTIMATES))), names, priors)
    assert m.tolist() == [[100.0, 100.0, 1.0], [384.0, 1000.0, 1.0]]


def test_a_metric_learnt_against_its_estimate_extrapolates_with_it(tmp_path):
    """``priors``: the arena is learnt as its ratio to the extractor's estimate of LiteRT's
    arena plan (``arena_plan_bytes``). Labels 1.5x the estimate on the
    smaller two thirds of a sample of committed graphs: the largest, with 5x the largest
    training arena or more, is predicted at 1.5x its estimate, saved and loaded alike, and
    the NumPy path of one candidate gives what the batched one gives."""
    import numpy as np

    from predictors.graph import graph_arrays, to_data
    from predictors.predictor import load_predictor
    from predictors.train import label_priors, prior_matrix, train_predictor

    names = ["cpu-litert/arena_kib", "cpu-litert/latency_ms"]
    priors = label_priors(names)
    assert list(priors) == ["cpu-litert/arena_kib"]
    sample = sorted((prior_matrix(a["u"], a["est"], names, priors)[0, 0], g)
                    for g, a in ((g, graph_arrays(g)) for g in committed_sample(per_space=6)))
    training, (estimate, big) = sample[: 2 * len(sample) // 3], sample[-1]
    assert estimate > 5 * training[-1][0]
    folder = tmp_path / "d"
    with DatasetStore(folder, create=True) as store:
        for i, (e, g) in enumerate(training):
            _add(store, f"net-{i}", g, labels={"cpu-litert": {"metrics": {
                "arena_kib": 1.5 * e * (1 + 0.01 * (i % 3)), "latency_ms": 1.0 + 0.1 * (i % 5)}}})
    predictor, _ = train_predictor([folder], tmp_path / "p", epochs=30, progress=False,
                                   config={"priors": True, "ensemble": 2})
    assert predictor.manifest["priors"] == priors
    k = predictor.label_names.index("cpu-litert/arena_kib")
    graph = to_data(graph_arrays(big))
    mean, _ = predictor.predict_graphs([graph])
    assert mean[0, k] == pytest.approx(1.5 * estimate, rel=0.1)
    loaded = load_predictor(tmp_path / "p")
    again, _ = loaded.predict_graphs([graph])
    assert np.allclose(again, mean, rtol=1e-6)
    small = graph_arrays(training[0][1])
    one = loaded.predict_arrays([small])[0]["cpu-litert"]["arena_kib"]
    batched, _ = loaded.predict_graphs([to_data(small)])
    assert one == pytest.approx(batched[0, k], rel=1e-5)
    # the ratio stays within what training saw (1.5-1.53 here): narrowed, it holds, and the
    # members' spread is still reported
    low, high = loaded.manifest["prior_ratio_range"]["cpu-litert/arena_kib"]
    assert 1.49 <= low < high <= 1.54
    _, spread = loaded.predict_graphs([graph])
    loaded.ratio_range = [(k, 2.0, 2.0)]
    pinned, std = loaded.predict_graphs([graph])
    assert pinned[0, k] == pytest.approx(2.0 * estimate, rel=1e-6) and std[0, k] == spread[0, k] > 0
