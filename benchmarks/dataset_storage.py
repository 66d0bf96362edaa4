"""Dataset storage: bytes per network, lossless migration, load time.

    python benchmarks/dataset_storage.py [--data data/edgedlperf] [--legacy DIR] [--seal-copy]

Prints the bytes per network by space of the sharded folder ``--data`` and the time
to load all of it into ``GraphDataset`` with no cache.  With ``--legacy DIR`` (a
folder holding one ``dataset.sqlite``, as every hwnas before the shards wrote; the
committed one is ``git show e6e1229:data/edgedlperf/dataset.sqlite``): checks that
every network row, label row, run row and stored graph of it reads back identical
from ``--data`` (bytes for the graphs), and times the load from the SQLite file
too.  ``--seal-copy`` seals a copy of ``--legacy`` first and checks that instead.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sqlite3
import sys
import tempfile
import time
from pathlib import Path


def _legacy_rows(db: Path):
    from predictors.dataset.store import decompress

    conn = sqlite3.connect(db)
    nets = {}
    for r in conn.execute("SELECT arch_id, space, arch, seed, status, reason, tflite_sha256, tflite_bytes,"
                          " export_s, run_id, created FROM networks"):
        nets[r[0]] = dict(zip(("arch_id", "space", "arch", "seed", "status", "reason", "tflite_sha256",
                               "tflite_bytes", "export_s", "run_id", "created"), r))
        nets[r[0]]["arch"] = json.loads(nets[r[0]]["arch"])
    labels = {}
    for r in conn.execute("SELECT arch_id, target, status, reason, metrics, run_id, created FROM labels"):
        row = dict(zip(("arch_id", "target", "status", "reason", "metrics", "run_id", "created"), r))
        row["metrics"] = json.loads(row["metrics"]) if row["metrics"] is not None else None
        labels[(r[0], r[1])] = row
    runs = {}
    for r in conn.execute("SELECT run_id, started, kind, command, provenance FROM runs"):
        runs[r[0]] = {"run_id": r[0], "started": r[1], "kind": r[2], "command": json.loads(r[3]),
                      "provenance": json.loads(r[4])}
    graphs = ((a, decompress(b) if b is not None else None)
              for a, b in conn.execute("SELECT arch_id, tflite FROM networks ORDER BY rowid"))
    return conn, nets, labels, runs, graphs


def check_round_trip(legacy: Path, sharded: Path) -> dict:
    """Every row and graph of the legacy file, read back from the shards."""
    from predictors.dataset.store import DatasetStore

    conn, nets, labels, runs, graphs = _legacy_rows(legacy / "dataset.sqlite")
    with DatasetStore(sharded) as store:
        got_nets = {r["arch_id"]: r for r in store.network_rows()}
        got_labels = {(r["arch_id"], r["target"]): r for r in store.label_rows()}
        got_runs = {r["run_id"]: r for r in store.run_rows()}
        assert got_nets == nets, "network rows differ"
        assert got_labels == labels, "label rows differ"
        assert got_runs == runs, "run rows differ"
        stored = {}
        for shard in store.shards:
            networks = shard.networks()
            for k, g in shard.graphs():
                stored[networks[k]["arch_id"]] = g
        n = 0
        for arch_id, graph in graphs:
            assert stored[arch_id] == graph, f"graph of {arch_id} differs"
            n += 1
    conn.close()
    return {"networks": len(nets), "labels": len(labels), "runs": len(runs), "graphs": n}


def sizes(directory: Path) -> list[tuple]:
    from predictors.dataset.shards import list_shards, Shard

    by_space: dict[str, list[int]] = {}
    for path in list_shards(directory):
        shard = Shard(path)
        key = "+".join(shard.spaces) or "(labels only)"
        acc = by_space.setdefault(key, [0, 0, 0])
        acc[0] += len(shard.networks())
        acc[1] += path.stat().st_size
        acc[2] += 1
    rows = [(space, n, shards, size, size / max(n, 1)) for space, (n, size, shards) in sorted(by_space.items())]
    total_n, total_b = sum(r[1] for r in rows), sum(r[3] for r in rows)
    rows.append(("all", total_n, sum(r[2] for r in rows), total_b, total_b / max(total_n, 1)))
    return rows


def load_seconds(directory: Path) -> float:
    from predictors.dataset.graphs import GraphDataset

    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "d"
        copy.mkdir()
        for p in directory.iterdir():
            if p.is_file() and not p.name.startswith("."):
                shutil.copy(p, copy / p.name)
        t0 = time.perf_counter()
        n = len(GraphDataset(copy))
        seconds = time.perf_counter() - t0
    print(f"  loaded {n} graphs from {directory} in {seconds:.1f} s", file=sys.stderr)
    return seconds


def main(argv=None) -> int:
    from hwnas.cli import format_table
    from predictors.dataset.store import DatasetStore

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--legacy", type=Path, help="a folder with a single dataset.sqlite to check against")
    ap.add_argument("--data", type=Path, default=Path("data/edgedlperf"))
    ap.add_argument("--seal-copy", action="store_true", help="seal a copy of --legacy and check that")
    ap.add_argument("--no-load", action="store_true", help="skip the GraphDataset load timings")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        directory = args.data
        if args.legacy and args.seal_copy:
            directory = Path(tmp) / "sharded"
            directory.mkdir()
            shutil.copy(args.legacy / "dataset.sqlite", directory / "dataset.sqlite")
            t0 = time.perf_counter()
            with DatasetStore(directory, create=True) as store:
                store.seal()
            print(f"sealed in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
        if args.legacy:
            counts = check_round_trip(args.legacy, directory)
            print(f"round trip: identical {counts}")
        print(format_table(sizes(directory), ("space", "networks", "shards", "bytes", "bytes/network")))
        if not args.no_load:
            rows = []
            if args.legacy:
                rows.append(("one dataset.sqlite (before)", load_seconds(args.legacy)))
            rows.append(("shards", load_seconds(directory)))
            print(format_table(rows, ("GraphDataset from", "seconds, no cache")))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
