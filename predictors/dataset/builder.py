"""The EdgeDLPerf-style dataset builder: sample -> export -> label -> store, resumable.

Sampling is deterministic: candidate ``i`` of a build is ``space.sample(
default_rng([seed, i]))`` with weights seed ``seed * 1_000_003 + i``.  A build walks
``i = 0, 1, 2, ...``, skips every arch already in the dataset (done or failed) and
stops when the space has ``num`` healthy networks, so running the same command
again after a kill continues where it stopped, with no duplicates; a larger
``num`` extends the dataset.  The run writes into the folder's working store and seals it into
new shards when it ends (and every ``SEAL_EVERY`` networks); a killed run leaves
the working store, which the next run continues and seals.  Targets missing on the space's first ``num`` stored
networks are labelled too (the network is exported again from its arch and seed,
and must reproduce the stored file's SHA-256, or at least the stored graph's: another CPU
rounds the converter's calibration differently, :func:`_work.label_network`), so ``--num 1000 --target cpu-litert``
on a 2,500-network dataset labels 1,000 of them.  ``quantize`` names export regimes
besides int8 (float32, float16, dynamic, int16x8): each of the space's first ``num``
networks is exported in each of them too, same arch and weight seed, and stored and
labelled as a sample of its own (key ``<arch_id>@<regime>``, :func:`store.sample_key`);
a target that cannot run a regime (an Ethos-U and a float file) records why.
"""
from __future__ import annotations

import itertools
import os
import platform
import sys
from typing import Any, Callable, Iterator

import numpy as np

from search_spaces.errors import HwnasError

from predictors.dataset.store import DEFAULT_REGIME, SEAL_EVERY, DatasetStore, sample_key, split_key

MAX_FAILURE_SHARE = 0.5  # give up when more than half of the candidates fail ...
MIN_ATTEMPTS_BEFORE_GIVING_UP = 40  # ... after at least this many


def provenance(targets: list[str]) -> dict[str, Any]:
    """Versions, target settings and machine, stored with every run."""
    from importlib.metadata import PackageNotFoundError, version

    from predictors import targets as registry
    from predictors.targets.litert import machine

    versions = {}
    for pkg in ("hwnas", "ethos-u-vela", "tensorflow-cpu", "tensorflow", "ai-edge-litert", "keras", "tflite",
                "numpy", "ml-dtypes", "flatbuffers", "protobuf"):
        try:
            versions[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    return {
        "versions": versions,
        "python": platform.python_version(),
        "machine": machine(),
        "targets": {t: registry.get(t).settings() for t in targets},
    }


def weight_seed(seed: int, index: int) -> int:
    return (int(seed) * 1_000_003 + int(index)) % (2**31 - 1)


MAX_CONSECUTIVE_DUPLICATES = 20_000


def _candidates(space, seed: int, known: set[str]) -> Iterator[tuple[int, str, dict]]:
    duplicates = 0
    for i in itertools.count():
        arch = space.sample(np.random.default_rng([int(seed), i]))
        arch_id = space.arch_id(arch)
        if arch_id in known:
            duplicates += 1
            if duplicates >= MAX_CONSECUTIVE_DUPLICATES:
                return  # the space is (nearly) exhausted
            continue
        duplicates = 0
        known.add(arch_id)
        yield i, arch_id, arch


def stale_label(target: Any, retime: bool = False) -> Callable[[dict], bool]:
    """What the builder measures again of ``target``'s stored labels: those measured another
    way (``target.stale``) and, with ``retime``, those a label says another machine timed."""
    if not retime:
        return target.stale
    from predictors.targets.litert import machine

    here = machine()["cpu_model"]
    return lambda metrics: target.stale(metrics) or metrics.get("cpu_model", here) != here


def build_dataset(
    out: str | os.PathLike,
    space_name: str,
    num: int,
    targets: list[str],
    *,
    workers: int = 1,
    backend: str = "local",
    seed: int = 0,
    address: str | None = None,
    space_options: dict[str, Any] | None = None,
    timeout_s: float = 900.0,
    progress: bool = True,
    command: dict[str, Any] | None = None,
    seal_every: int | None = None,
    quantize: list[str] | tuple[str, ...] = (DEFAULT_REGIME,),
    retime: bool = False,
) -> dict[str, Any]:
    """Grows ``out`` to ``num`` healthy networks of ``space_name``, labelled on ``targets``.

    ``retime``: a label that names the machine that timed it (cpu-litert's ``cpu_model``)
    and names another one is measured again here, so that the space's first ``num``
    networks end with one machine's timings (a latency is its host's).

    ``seal_every`` networks (default ``store.SEAL_EVERY``) the working store is sealed
    into a shard, so a long build's finished parts can be committed as it goes.

    Returns:
        Counts of this run: ``added``, ``failed``, ``labelled`` (labels added to
        networks that were already stored), and the dataset's total for the space.
    """
    import search_spaces
    from predictors import targets as registry

    if num < 0:
        raise HwnasError("--num must be zero or more")
    if not targets:
        raise HwnasError("name at least one --target")
    for t in targets:
        registry.get(t)  # unknown names fail here, before any work
    from search_spaces.export import QUANTIZE_MODES

    bad = [q for q in quantize if q not in QUANTIZE_MODES]
    if bad or not quantize:
        raise HwnasError(f"unknown quantize mode {bad[0] if bad else ''!r}; choose from: {', '.join(QUANTIZE_MODES)}")
    regimes = [q for q in dict.fromkeys(quantize) if q != DEFAULT_REGIME]  # int8 is always built: the network
    space = search_spaces.get(space_name, **(space_options or {}))
    if "cpu-litert" in targets and workers > 1:
        print("hwnas: warning: cpu-litert latency measured by parallel workers is disturbed by the others; "
              "label cpu-litert with --workers 1 for clean timings", file=sys.stderr)

    store = DatasetStore(out, create=True)
    try:
        run_id = store.start_run("build", command or {"space": space_name, "num": num, "targets": targets,
                                                     "seed": seed, "quantize": list(quantize)},
                                 provenance(targets))
        from predictors.dataset._pool import make_pool

        pool = make_pool(backend, workers, address, timeout_s)
        stats = {"added": 0, "added_samples": 0, "failed": 0, "labelled": 0}

        # 1. stored networks that miss some requested target
        relabel: dict[str, dict] = {}
        first = set(store.first(space.name, num))
        for t in targets:
            for key, arch, wseed, sha in store.unlabelled(space.name, t, stale=stale_label(registry.get(t), retime)):
                arch_id, regime = split_key(key)
                if arch_id not in first or (regime != DEFAULT_REGIME and regime not in regimes):
                    continue  # a target is added to the space's first ``num`` networks (in these regimes) only
                entry = relabel.setdefault(key, {"arch": arch, "seed": wseed, "sha": sha, "targets": [],
                                                 "quantize": regime})
                entry["targets"].append(t)
        if relabel:
            graph_sha = _graph_hashes(store, space.name, set(relabel))
            tasks = ({"kind": "relabel", "arch_id": a, "encoded": e["arch"], "seed": e["seed"],
                      "quantize": e["quantize"], "targets": e["targets"], "expected_sha256": e["sha"],
                      "expected_graph_sha256": graph_sha.get(a), "store": False}
                     for a, e in relabel.items())
            bar = _progress(len(relabel), f"labelling {space.name}", progress)
            for task, result in pool.map_unordered(tasks):
                labels = result.get("labels") or {
                    t: {"error": result.get("reason", "failed")} for t in task["targets"]
                }
                store.add_labels(task["arch_id"], labels, run_id)
                stats["labelled"] += 1
                bar.update(1)
            bar.close()

        # 2. new networks until the space holds ``num`` healthy ones
        have = store.count(space.name)
        need = num - have
        if need > 0:
            known = store.arch_ids()
            candidates = _candidates(space, seed, known)
            bar = _progress(need, f"building {space.name}", progress, initial=0)
            done = failed = 0

            def tasks() -> Iterator[dict]:
                # never more in flight than still needed (plus replacements for failures)
                issued = 0
                for i, arch_id, arch in candidates:
                    if issued - failed >= need:
                        return
                    issued += 1
                    yield {"kind": "new", "arch_id": arch_id, "encoded": space.encode(arch),
                           "seed": weight_seed(seed, i), "targets": list(targets), "store": True}

            for task, result in pool.map_unordered(tasks()):
                ok = result["status"] == "ok"
                _store_result(store, task, result, space.name, run_id)
                store.seal_if_due(seal_every or SEAL_EVERY)
                if ok:
                    done += 1
                    stats["added"] += 1
                    bar.update(1)
                else:
                    failed += 1
                    stats["failed"] += 1
                    bar.set_postfix(failed=failed)
                    attempts = done + failed
                    if attempts >= MIN_ATTEMPTS_BEFORE_GIVING_UP and failed / attempts > MAX_FAILURE_SHARE:
                        raise HwnasError(
                            f"{failed} of {attempts} {space.name} candidates failed (last: {result.get('reason')}); "
                            f"see `hwnas dataset info {out}`"
                        )
            bar.close()
        # 3. the first ``num`` networks in the other regimes, each a sample of its own
        if regimes:
            stored = store.arch_ids(space.name)
            wanted = [(arch_id, q) for arch_id in store.first(space.name, num) for q in regimes
                      if sample_key(arch_id, q) not in stored]
            networks = {r["arch_id"]: r for r in store.network_rows(space.name, "ok")}
            tasks = ({"kind": "regime", "arch_id": sample_key(a, q), "encoded": networks[a]["arch"],
                      "seed": networks[a]["seed"], "quantize": q, "targets": list(targets), "store": True}
                     for a, q in wanted)
            bar = _progress(len(wanted), f"{space.name} in {', '.join(regimes)}", progress)
            for task, result in pool.map_unordered(tasks):
                _store_result(store, task, result, space.name, run_id)
                store.seal_if_due(seal_every or SEAL_EVERY)
                stats["added_samples" if result["status"] == "ok" else "failed"] += 1
                bar.update(1)
            bar.close()
        stats["total"] = store.count(space.name)
        store.seal()
        return stats
    except HwnasError:
        store.seal()  # what was done is kept, in shards
        raise
    finally:
        store.close()


def _graph_hashes(store: DatasetStore, space: str, keys: set[str]) -> dict[str, str]:
    """SHA-256 of the stored graphs (the files with their payload zeroed) of these samples."""
    import hashlib

    return {r["arch_id"]: hashlib.sha256(r["tflite"]).hexdigest() for r in store.rows([space])
            if r["arch_id"] in keys and r["tflite"] is not None}


def _store_result(store: DatasetStore, task: dict, result: dict, space: str, run_id: int) -> None:
    ok = result["status"] == "ok"
    store.add_network(
        arch_id=task["arch_id"], space=space, arch=task["encoded"], seed=task["seed"],
        status=result["status"], reason=result.get("reason"), tflite=result.get("tflite_compact"),
        tflite_sha256=result.get("tflite_sha256"), tflite_bytes=result.get("tflite_bytes"),
        export_s=result.get("export_s"), run_id=run_id, labels=result.get("labels") if ok else None,
    )


class _NoBar:
    def update(self, n: int = 1) -> None: ...
    def set_postfix(self, **kw) -> None: ...
    def close(self) -> None: ...


def _progress(total: int, desc: str, enabled: bool, initial: int = 0):
    if not enabled:
        return _NoBar()
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, initial=initial, unit="net", file=sys.stderr, dynamic_ncols=True)
