from __future__ import annotations

import itertools
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

import search_spaces
from predictors.dataset import DatasetStore, build_dataset
from predictors.dataset._pool import LocalPool
from predictors.dataset.builder import _candidates, weight_seed
from search_spaces.errors import HwnasError

SPACE = "keyword_spotting"  # the smallest, fastest networks


def test_pool_survives_native_crashes_and_hangs():
    pool = LocalPool(workers=2, timeout_s=5, worker="tests.predictors_tests.crashy_worker:run")
    tasks = [{"n": 0}, {"n": 1, "crash": True}, {"n": 2}, {"n": 3, "hang": True}, {"n": 4}, {"n": 5}]
    results = {task["n"]: result for task, result in pool.map_unordered(tasks)}
    assert sorted(results) == [0, 1, 2, 3, 4, 5]
    assert results[1]["status"] == "failed" and "worker crashed" in results[1]["reason"]
    assert "-11" in results[1]["reason"]  # SIGSEGV
    assert results[3]["status"] == "failed" and "timeout" in results[3]["reason"]
    assert all(results[n]["echo"] == n for n in (0, 2, 4, 5))


def test_worker_whose_parent_was_killed_exits_quietly(tmp_path):
    """Killing a long import must not print a worker's BrokenPipeError traceback."""
    mark, log = tmp_path / "running", tmp_path / "stderr"
    script = ("from predictors.dataset._pool import LocalPool\n"
              "pool = LocalPool(workers=1, worker='tests.predictors_tests.crashy_worker:run')\n"
              f"list(pool.map_unordered([{{'n': 0, 'mark': {str(mark)!r}, 'sleep': 2}}]))\n")
    with open(log, "w") as err:
        parent = subprocess.Popen([sys.executable, "-c", script], stderr=err, cwd=Path(__file__).parents[2])
    deadline = time.time() + 60
    while not mark.exists() and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(0.1)
    worker = int(mark.read_text())
    parent.kill()
    parent.wait()
    while time.time() < deadline:  # the worker finishes its task, finds no parent and leaves
        try:
            os.kill(worker, 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    else:
        pytest.fail("the orphaned worker did not exit")
    assert "Traceback" not in log.read_text()


@pytest.fixture(scope="module")
def small_dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp("ds") / "kws"
    stats = build_dataset(out, SPACE, 3, ["ethos-u55-128"], workers=1, progress=False)
    assert stats == {"added": 3, "added_samples": 0, "failed": 0, "labelled": 0, "total": 3}
    return out


def test_build_stores_networks_labels_and_provenance(small_dataset):
    with DatasetStore(small_dataset) as store:
        info = store.info()
        rows = list(store.rows())
    assert info["samples"] == 3
    assert info["by_space"] == {SPACE: {"ethos-u55-128": 3}}
    assert info["versions"]["ethos-u-vela"] == "5.2.0" and "tensorflow-cpu" in info["versions"]
    assert info["machines"][0]["cpu_cores"] >= 1
    assert len({r["arch_id"] for r in rows}) == 3
    for r in rows:
        assert r["arch"]["space"] == SPACE
        assert r["labels"]["ethos-u55-128"]["latency_ms"] > 0


def test_stored_graph_is_the_exported_file_with_its_payload_zeroed(small_dataset):
    """Exporting the same arch and seed again gives the original file back."""
    import hashlib

    from hwnas.export import to_tflite
    from predictors.graph import from_tflite
    from predictors.tflite_model import strip_constant_buffers
    from search_spaces import from_encoded

    with DatasetStore(small_dataset) as store:
        row = next(store.rows())
        sha = {r["arch_id"]: r["tflite_sha256"] for r in store.network_rows()}[row["arch_id"]]
    space, arch = from_encoded(row["arch"])
    again = to_tflite(space.build(arch, seed=row["seed"]), seed=row["seed"])
    assert hashlib.sha256(again).hexdigest() == sha
    assert strip_constant_buffers(again) == row["tflite"]
    assert from_tflite(again).x.equal(from_tflite(row["tflite"]).x)


def test_relabelling_takes_a_reexport_whose_graph_is_the_stored_one(small_dataset):
    """Another CPU's export (other payload bytes, same graph) is labelled and says so; another graph is refused."""
    import hashlib

    from predictors.dataset._work import label_network

    with DatasetStore(small_dataset) as store:
        row = next(store.rows())
        sha = {r["arch_id"]: r["tflite_sha256"] for r in store.network_rows()}[row["arch_id"]]
    task = {"encoded": row["arch"], "seed": row["seed"], "targets": ["ethos-u55-128"], "store": False,
            "expected_sha256": "0" * 64, "expected_graph_sha256": hashlib.sha256(row["tflite"]).hexdigest()}
    result = label_network(task)
    assert result["status"] == "ok", result.get("reason")
    metrics = result["labels"]["ethos-u55-128"]["metrics"]
    assert metrics.pop("reexport_sha256") == sha  # the file it measured
    assert metrics == row["labels"]["ethos-u55-128"]
    assert "reexport_sha256" not in label_network(dict(task, expected_sha256=sha))["labels"]["ethos-u55-128"]["metrics"]
    refused = label_network(dict(task, expected_graph_sha256=hashlib.sha256(b"another graph").hexdigest()))
    assert refused["status"] == "failed" and refused["reason"].startswith("not reproducible")
    assert refused["labels"] == {}


def test_adding_a_target_labels_only_what_is_missing(tmp_path, small_dataset):
    import shutil

    out = tmp_path / "copy"
    shutil.copytree(small_dataset, out)
    first = build_dataset(out, SPACE, 2, ["ethos-u55-128", "ethos-u65-256"], progress=False)
    assert first == {"added": 0, "added_samples": 0, "failed": 0, "labelled": 2, "total": 3}  # --num caps the relabelling
    stats = build_dataset(out, SPACE, 3, ["ethos-u55-128", "ethos-u65-256"], progress=False)
    assert stats == {"added": 0, "added_samples": 0, "failed": 0, "labelled": 1, "total": 3}
    with DatasetStore(out) as store:
        assert store.info()["by_space"][SPACE] == {"ethos-u55-128": 3, "ethos-u65-256": 3}
        # the u55 labels were not touched: still from the first run
        runs = {r["run_id"] for r in store.label_rows("ethos-u55-128")}
        assert runs == {1}
        assert [r["run_id"] for r in store.run_rows()] == [1, 2, 3]


def test_a_build_on_a_sharded_folder_continues_without_touching_its_shards(tmp_path, small_dataset):
    import hashlib
    import shutil

    from predictors.dataset.shards import list_shards

    out = tmp_path / "grown"
    shutil.copytree(small_dataset, out)
    sealed = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in list_shards(out)}
    assert len(sealed) == 1 and not (out / "dataset.sqlite").exists()
    stats = build_dataset(out, SPACE, 5, ["ethos-u55-128"], progress=False, seal_every=1)
    assert stats == {"added": 2, "added_samples": 0, "failed": 0, "labelled": 0, "total": 5}
    shards = list_shards(out)
    assert len(shards) == 3  # a shard per network: seal_every=1
    assert {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in shards if p.name in sealed} == sealed
    with DatasetStore(out) as store:
        grown = [r["arch_id"] for r in store.rows()]
    # the same networks as one build of 5 from scratch (deterministic sampling)
    clean = tmp_path / "clean"
    build_dataset(clean, SPACE, 5, ["ethos-u55-128"], progress=False)
    with DatasetStore(clean) as store:
        assert [r["arch_id"] for r in store.rows()] == grown


def _count(db: Path) -> int:
    with sqlite3.connect(db) as c:
        return c.execute("SELECT COUNT(*) FROM networks WHERE status = 'ok'").fetchone()[0]


def test_sigkill_loses_only_samples_in_flight_and_resume_continues(tmp_path):
    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "hwnas", "dataset", "build", "--space", SPACE, "--num", "6",
           "--target", "ethos-u55-128", "--out", str(out), "--workers", "2", "--quiet"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    db = out / "dataset.sqlite"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and not (db.exists() and _count(db) >= 2):
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)  # the builder and its workers, mid-build
    proc.wait()
    with sqlite3.connect(db) as c:
        assert c.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    survived = _count(db)
    assert 2 <= survived < 6
    rerun = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr
    assert f"{6 - survived} networks added" in rerun.stdout
    with DatasetStore(out) as store:
        seeds = {r["arch_id"]: r["seed"] for r in store.rows(with_tflite=False)}
    assert len(seeds) == 6
    # resuming gives the networks of one uninterrupted build: the space's first six draws
    # (deterministic sampling; none of them fails), each with the weight seed of its draw
    drawn = itertools.islice(_candidates(search_spaces.get(SPACE), 0, set()), 6)
    assert seeds == {arch_id: weight_seed(0, i) for i, arch_id, _ in drawn}


def test_graph_dataset_caches_per_feature_version(small_dataset, monkeypatch):
    from predictors.dataset import graphs
    from predictors.dataset.graphs import GraphDataset

    ds = GraphDataset(small_dataset)
    assert len(ds) == 3
    assert ds.label_names == [f"ethos-u55-128/{m}" for m in sorted(
        ("latency_ms", "energy_mj", "sram_kib", "offchip_kib"))]
    y = ds[0].y
    assert y.shape == (1, 4) and bool((y > 0).all())
    cache = sorted(p.name for p in Path(ds.processed_dir).glob("graphs-*.pt"))
    assert len(cache) == 1 and graphs.FEATURE_VERSION in cache[0]
    # a new feature extractor version: the old cache is not reused, it is rebuilt
    monkeypatch.setattr(graphs, "FEATURE_VERSION", "perfsage-99.test")
    GraphDataset(small_dataset)
    cache = sorted(p.name for p in Path(ds.processed_dir).glob("graphs-*.pt"))
    # the old one was written seconds ago: another process may be about to load it, it stays
    assert len(cache) == 2 and sum("perfsage-99.test" in c for c in cache) == 1
    stale = [p for p in Path(ds.processed_dir).glob("*-*.pt") if "perfsage-99.test" not in p.name]
    for p in stale:  # ... until it is older than the grace period
        os.utime(p, (time.time() - graphs.STALE_CACHE_GRACE_S - 5,) * 2)
    monkeypatch.setattr(graphs, "FEATURE_VERSION", "perfsage-98.test")
    GraphDataset(small_dataset)
    cache = sorted(p.name for p in Path(ds.processed_dir).glob("graphs-*.pt"))
    assert len(cache) == 2 and not any(p.exists() for p in stale)


def test_auxiliary_metrics_are_labels_only_when_asked_and_only_above_zero(small_dataset, tmp_path):
    """Vela's cycles and traffic beside the four metrics; the U55's DRAM traffic is always 0: no label."""
    from predictors.dataset.graphs import GraphDataset

    folder = tmp_path / "copy"
    shutil.copytree(small_dataset, folder, ignore=shutil.ignore_patterns("processed"))
    plain, aux = GraphDataset(folder), GraphDataset(folder, aux=True)
    assert len(plain.label_names) == 4
    assert aux.label_names == [f"ethos-u55-128/{m}" for m in sorted(
        ("latency_ms", "energy_mj", "sram_kib", "offchip_kib", "cycles_npu", "sram_total_bytes"))]
    with DatasetStore(folder) as store:
        stored = {r["arch_id"]: r["labels"]["ethos-u55-128"] for r in store.rows(with_tflite=False)}
    assert all(m["dram_total_bytes"] == 0 for m in stored.values())
    for g in aux:
        for k, name in enumerate(aux.label_names):
            assert float(g.y[0, k]) == pytest.approx(stored[g.arch_id][name.split("/")[1]], rel=1e-6)
    assert len(list((folder / "processed").glob("graphs-*.pt"))) == 2  # a cache per selection


def test_a_cache_removed_before_it_is_loaded_is_built_again(small_dataset, tmp_path):
    """Another process (another hwnas version, or newer data) removed the cache this one just wrote."""
    import shutil

    from predictors.dataset.graphs import GraphDataset

    copy = tmp_path / "copy"
    shutil.copytree(small_dataset, copy)
    built = []

    class RacedDataset(GraphDataset):
        def process(self):
            super().process()
            built.append(1)
            if len(built) == 1:  # the other process's cleanup, between this write and the load
                for p in Path(self.processed_dir).glob("*.pt"):
                    p.unlink()

    ds = RacedDataset(copy)
    assert len(built) == 2 and len(ds) == 3 and ds[0].y.shape == (1, 4)


def test_the_graph_cache_is_built_one_stored_file_at_a_time(small_dataset, tmp_path):
    """A decompressed TFLite file is MBs (FBNet: 2 MB): 3,000 of them held at once were 6 GB."""
    import shutil
    import tracemalloc

    from predictors.dataset.graphs import GraphDataset

    copy = tmp_path / "many"
    shutil.copytree(small_dataset, copy)
    with DatasetStore(small_dataset) as store:
        rows = list(store.rows())
        networks = {r["arch_id"]: r for r in store.network_rows()}
    with DatasetStore(copy, create=True) as store:  # 30 more in the working store: the 3 under new ids
        for n in range(10):
            for r in rows:
                net = networks[r["arch_id"]]
                store.add_network(arch_id=f"{r['arch_id']}-{n}", space=r["space"], arch=r["arch"], seed=r["seed"],
                                  status="ok", tflite=r["tflite"], tflite_sha256=net["tflite_sha256"],
                                  labels={t: {"metrics": m} for t, m in r["labels"].items()})
    with DatasetStore(copy) as store:
        sizes = [len(r["tflite"]) for r in store.rows()]
        assert len(sizes) == 33 and all(r["tflite"] is None for r in store.rows(with_tflite=False))
    tracemalloc.start()
    try:
        assert len(GraphDataset(copy)) == 33
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 0.3 * sum(sizes), (peak, sum(sizes))


def test_bad_arguments_are_project_errors(tmp_path):
    from search_spaces.errors import UnknownNameError

    with pytest.raises(UnknownNameError, match="unknown target"):
        build_dataset(tmp_path / "a", SPACE, 1, ["npu-9000"], progress=False)
    with pytest.raises(UnknownNameError, match="unknown search space"):
        build_dataset(tmp_path / "b", "no_such_space", 1, ["ethos-u55-128"], progress=False)
    with pytest.raises(HwnasError, match="no dataset here"):
        DatasetStore(tmp_path / "missing")


def test_cli_info_json(small_dataset):
    proc = subprocess.run([sys.executable, "-m", "hwnas", "dataset", "info", str(small_dataset), "--json"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout)
    assert info["samples"] == 3 and info["by_space"][SPACE]["ethos-u55-128"] == 3
    assert set(info) >= {"samples", "by_space", "failures", "versions"}


@pytest.fixture(scope="module")
def ray_local():
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    yield ray
    ray.shutdown()


def test_ray_pool_isolates_crashes(ray_local):
    from predictors.dataset._pool import RayPool

    pool = RayPool(workers=2, timeout_s=20, worker="tests.predictors_tests.crashy_worker:run")
    results = {t["n"]: r for t, r in pool.map_unordered([{"n": 0}, {"n": 1, "crash": True}, {"n": 2}])}
    assert results[0]["echo"] == 0 and results[2]["echo"] == 2
    assert results[1]["status"] == "failed" and "worker crashed" in results[1]["reason"]


def test_ray_backend_builds_the_same_dataset(ray_local, small_dataset, tmp_path):
    out = tmp_path / "ray"
    stats = build_dataset(out, SPACE, 3, ["ethos-u55-128"], workers=2, backend="ray", progress=False)
    assert stats["added"] == 3
    with DatasetStore(out) as a, DatasetStore(small_dataset) as b:
        ra = {r["arch_id"]: r["labels"] for r in a.rows()}
        rb = {r["arch_id"]: r["labels"] for r in b.rows()}
    assert ra == rb  # same networks, same (deterministic) Vela labels


def test_a_network_in_several_regimes_is_one_network_and_a_sample_per_regime(tmp_path):
    """``--quantize int8 float16 dynamic``: every network also exported float16 and dynamic-range,
    same arch and weights; each regime stored and labelled under ``<arch_id>@<regime>``; the
    Ethos-U refuses the float ones in its own words; a split keeps a network's samples together."""
    from predictors.dataset import GraphDataset
    from predictors.graph import NODE_FEATURES
    from predictors.tflite_model import inspect_model
    from predictors.train import split_by_network

    out = tmp_path / "regimes"
    cmd = [sys.executable, "-m", "hwnas", "dataset", "build", "--space", SPACE, "--num", "2", "--target",
           "ethos-u55-128", "--target", "cpu-litert", "--out", str(out), "--quiet", "--quantize", "int8",
           "float16", "dynamic"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert "2 networks added (and 4 samples in other regimes)" in proc.stdout
    with DatasetStore(out) as store:
        rows = {r["arch_id"]: r for r in store.rows()}
        info = store.info()
    nets = [k for k in rows if "@" not in k]
    assert len(nets) == 2 and set(rows) == {f"{a}{q}" for a in nets for q in ("", "@float16", "@dynamic")}
    for a in nets:
        for q in ("float16", "dynamic"):
            row = rows[f"{a}@{q}"]
            assert row["arch"] == rows[a]["arch"] and row["seed"] == rows[a]["seed"] and row["quantize"] == q
            assert row["labels"]["cpu-litert"]["latency_ms"] > 0 and "ethos-u55-128" not in row["labels"]
            info_q = inspect_model(row["tflite"])
            assert not info_q.is_integer_quantized
        assert rows[a]["labels"]["ethos-u55-128"]["latency_ms"] > 0
        assert "DEQUANTIZE" in inspect_model(rows[f"{a}@float16"]["tflite"]).opcodes
    assert info["networks_by_space"] == {SPACE: 2} and info["samples"] == 6
    assert info["regimes"]["float16"] == {"samples": {SPACE: 2}, "labels": {"cpu-litert": 2}}
    assert info["failures"] == {"ethos-u55-128: UnsupportedModelError": 4}
    assert info["timings"] == {"cpu-litert": {"min-of-10-rounds": 6}} and info["stale_labels"] == {"cpu-litert": 0}
    from predictors.targets.litert import machine

    assert info["timing_hosts"] == {"cpu-litert": {"min-of-10-rounds": {machine()["cpu_model"]: 6}}}
    table = subprocess.run([sys.executable, "-m", "hwnas", "dataset", "info", str(out)], capture_output=True,
                           text=True)
    assert "2 networks (6 samples)" in table.stdout and "cpu-litert timing: min-of-10-rounds 6\n" in table.stdout
    assert "hosts: a predictor trained on all of them" not in table.stdout  # one host
    assert [line.split()[:3] for line in table.stdout.splitlines() if line.startswith("(all, float16)")] == [
        ["(all,", "float16)", "2"]]

    with DatasetStore(out, create=True) as store:  # a label timed the old way (the median of one window) is stale
        store.add_labels(nets[0], {"cpu-litert": {"metrics": {"latency_ms": 1234.5, "timing": "median"}}})
    rerun = subprocess.run(cmd[:8] + ["3"] + cmd[9:], capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr
    assert "1 networks added (and 2 samples in other regimes)" in rerun.stdout  # only the new network's
    with DatasetStore(out) as store:
        again = {r["arch_id"]: r for r in store.rows(with_tflite=False)}[nets[0]]["labels"]["cpu-litert"]
    assert again["timing"] == "min-of-10-rounds" and again["latency_ms"] < 1234.5  # measured again

    from predictors.dataset.builder import stale_label
    from predictors.targets import get

    with DatasetStore(out, create=True) as store:  # the same protocol on another machine: kept, unless --retime
        elsewhere = {"latency_ms": 4321.0, "timing": "min-of-10-rounds", "cpu_model": "Another CPU"}
        store.add_labels(nets[1], {"cpu-litert": {"metrics": elsewhere}})
        target = get("cpu-litert")
        assert nets[1] not in [a for a, *_ in store.unlabelled(SPACE, "cpu-litert", stale=stale_label(target))]
        assert nets[1] in [a for a, *_ in store.unlabelled(SPACE, "cpu-litert", stale=stale_label(target, True))]
    retimed = subprocess.run(cmd[:8] + ["3", "--target", "cpu-litert", "--out", str(out), "--quiet", "--retime"],
                             capture_output=True, text=True, timeout=600)
    assert retimed.returncode == 0, retimed.stderr
    assert "0 networks added, 0 failed, 1 relabelled" in retimed.stdout
    with DatasetStore(out) as store:
        again = {r["arch_id"]: r for r in store.rows(with_tflite=False)}[nets[1]]["labels"]["cpu-litert"]
    assert again["cpu_model"] == machine()["cpu_model"] and again["latency_ms"] < 4321.0

    graphs = list(GraphDataset(out, targets=["cpu-litert"]))
    assert len(graphs) == 9 and {g.quantize for g in graphs} == {"int8", "float16", "dynamic"}
    half = NODE_FEATURES.index("weight_dtype_float16")
    assert all(bool((g.x[:, half] == 1).any()) == (g.quantize == "float16") for g in graphs)
    parts = split_by_network(graphs, fractions=(0.34, 0.33, 0.33))
    where = {}
    for k, part in enumerate(parts):
        for g in part:
            where.setdefault(g.arch_id.split("@")[0], set()).add(k)
    assert len(where) == 3 and all(len(v) == 1 for v in where.values())
