"""A dataset directory as a PyTorch Geometric ``InMemoryDataset``.

Raw input: the folder's shards and working store (TFLite graphs + labels, see
``store.py``).  Processed output: ``processed/graphs-<feature version>-<fingerprint>.pt``:
the name carries the feature extractor's version and a fingerprint of the stored
files, so a cache made by another extractor or before new samples were added is
never reused, it is rebuilt.

Each graph carries ``y`` (float32 ``[1, len(label_names)]``, NaN where a label is
missing), ``space``, ``arch_id``; ``dataset.label_names`` lists ``target/metric``.
"""
from __future__ import annotations

import hashlib
import math
import os
import time
from pathlib import Path

import torch
from torch_geometric.data import InMemoryDataset

from predictors.dataset.store import DatasetStore
from predictors.dataset import _featurize
from predictors.graph import FEATURE_VERSION, to_data


STALE_CACHE_GRACE_S = 600.0  # a stale cache younger than this is left for its writer


def _is_label(target: str, metric: str, value, aux: bool = False) -> bool:
    """A registered target's declared metrics (and, with ``aux``, its auxiliary ones);
    every number for imported (user) targets."""
    from predictors import targets as registry

    if target in registry.names():
        t = registry.get(target)
        if metric in t.metrics:
            return True
        # an auxiliary count of 0 (the U55's DRAM traffic: it has none) is no label: log space
        return aux and metric in t.aux_metrics and isinstance(value, (int, float)) and value > 0
    return isinstance(value, (int, float)) and not isinstance(value, bool)


class GraphDataset(InMemoryDataset):
    """Graphs and labels of one dataset directory.

    Args:
        root: the dataset directory (its shards and working store).
        spaces: keep only these search spaces (default: all).
        targets: keep only labels of these targets (default: all present).
        skip_bad_shards: read the other shards when one is corrupt (with a warning).
        aux: the targets' auxiliary metrics are labels too (``Target.aux_metrics``).
    """

    def __init__(self, root: str | os.PathLike, spaces: list[str] | None = None,
                 targets: list[str] | None = None, transform=None, log: bool = False,
                 skip_bad_shards: bool | None = None, aux: bool = False):
        self._store_dir = Path(root)
        self._spaces = sorted(spaces) if spaces else None
        self._targets = sorted(targets) if targets else None
        self._aux = bool(aux)
        self._skip_bad_shards = skip_bad_shards
        with DatasetStore(root, skip_bad_shards=skip_bad_shards) as store:
            self._fingerprint = store.fingerprint()
            self._sources = [p.name for p in store.source_files()]
        super().__init__(str(root), transform=transform, log=log)
        try:
            meta = self._load_cache()
        except FileNotFoundError:  # another process removed it (its own data moved on): build it again
            self.process()
            meta = self._load_cache()
        self.label_names: list[str] = meta["label_names"]
        self.feature_version: str = meta["feature_version"]

    def _load_cache(self) -> dict:
        self.load(self.processed_paths[0])
        return torch.load(self.processed_paths[1], weights_only=False)

    # PyG layout: raw/ and processed/ live under root; our raw file sits at root itself
    @property
    def raw_dir(self) -> str:
        return str(self._store_dir)

    @property
    def raw_file_names(self) -> list[str]:
        return self._sources

    @property
    def processed_file_names(self) -> list[str]:
        return [f"graphs-{self._cache_prefix}-{self._selection}.pt", f"meta-{self._cache_prefix}-{self._selection}.pt"]

    @property
    def _cache_prefix(self) -> str:
        """Feature version and data: caches with another prefix are stale."""
        return f"{FEATURE_VERSION}-{hashlib.sha1(self._fingerprint.encode()).hexdigest()[:12]}"

    @property
    def _selection(self) -> str:
        aux = "|aux" if self._aux else ""  # (a selection without it keeps the name it always had)
        return hashlib.sha1(f"{self._spaces}|{self._targets}{aux}".encode()).hexdigest()[:8]

    def download(self) -> None:  # pragma: no cover - the raw file is always local
        raise FileNotFoundError(self._store_dir)

    def process(self) -> None:
        # One stored file at a time: a list of the decompressed files of a large dataset
        # does not fit in memory (3,000 FBNet networks: 6 GB).  Large sets are read by
        # worker processes, a run of one shard each (decoding and feature extraction
        # are pure Python and NumPy: one core each).
        with DatasetStore(self._store_dir, skip_bad_shards=self._skip_bad_shards) as store:
            plan = store.plan(self._spaces)
            arrays = _shard_arrays(store, plan, self.workers)
            graphs, labels = [], []
            for index, k, r in plan:
                if index is None:
                    data = store.working_graph(r["arch_id"])
                    if data is None:
                        continue
                    a = _featurize.arrays32(data)
                else:
                    a = arrays.pop((index, k), None)
                    if a is None:
                        continue
                data = to_data(a)
                data.space = r["space"]
                data.arch_id = r["arch_id"]  # the sample's key: <arch_id>@<regime> for other regimes than int8
                data.quantize = r["quantize"]
                graphs.append(data)
                labels.append(r["labels"])
        if not graphs:
            from search_spaces.errors import HwnasError

            raise HwnasError(f"{self._store_dir}: no stored networks to load (spaces: {self._spaces or 'all'})")
        names = sorted({f"{t}/{m}" for row in labels for t, metrics in row.items()
                        if self._targets is None or t in self._targets
                        for m, v in metrics.items() if _is_label(t, m, v, self._aux)})
        index = {n: i for i, n in enumerate(names)}
        for data, row in zip(graphs, labels):
            y = torch.full((1, len(names)), math.nan, dtype=torch.float32)
            for t, metrics in row.items():
                for m, v in metrics.items():
                    i = index.get(f"{t}/{m}")
                    if i is not None and (not self._aux or _is_label(t, m, v, True)):
                        y[0, i] = float(v)
            data.y = y
        # Caches of older feature versions or data go; those of other selections (spaces,
        # targets) of the same data stay: another process may be reading them.  So do
        # stale ones written in the last minutes: another process (another hwnas version,
        # or a training started before a build added networks) may be about to load it.
        now = time.time()
        for old in Path(self.processed_dir).glob("*.pt"):
            if old.name.startswith(("graphs-", "meta-")) and f"-{self._cache_prefix}-" not in old.name:
                try:
                    if now - old.stat().st_mtime > STALE_CACHE_GRACE_S:
                        old.unlink(missing_ok=True)
                except FileNotFoundError:  # removed meanwhile by another process
                    pass
        # Written under a temporary name and renamed: two processes loading the same
        # dataset at once (two trainings) each see either no cache or a whole one.
        meta, graphs_path = self.processed_paths[1], self.processed_paths[0]
        tmp = f".{os.getpid()}.tmp"
        torch.save({"label_names": names, "feature_version": FEATURE_VERSION}, meta + tmp)
        os.replace(meta + tmp, meta)
        self.save(graphs, graphs_path + tmp)
        os.replace(graphs_path + tmp, graphs_path)

    @property
    def workers(self) -> int:
        """Processes that read the shards when the cache is built (``HWNAS_DATASET_WORKERS``, default: the cores)."""
        value = os.environ.get("HWNAS_DATASET_WORKERS")
        if value:
            return max(1, int(value))
        try:
            return max(1, len(os.sched_getaffinity(0)))
        except AttributeError:  # pragma: no cover - not Linux
            return max(1, os.cpu_count() or 1)

    def label_index(self, target: str, metric: str) -> int:
        return self.label_names.index(f"{target}/{metric}")


PARALLEL_FROM = 400  # networks: fewer are read in this process (starting workers costs a second)
CHUNK = 250  # networks per worker task


def _shard_arrays(store: DatasetStore, plan: list, workers: int) -> dict[tuple[int, int], dict]:
    """Feature arrays of the plan's shard networks, ``(shard index, position) -> arrays``."""
    runs: dict[int, list[int]] = {}
    for index, k, _ in plan:
        if index is not None:
            runs.setdefault(index, []).append(k)
    tasks = []
    for index, positions in runs.items():
        for i in range(0, len(positions), CHUNK):
            chunk = positions[i:i + CHUNK]
            tasks.append((index, str(store.shards[index].path), chunk))
    out: dict[tuple[int, int], dict] = {}
    if workers <= 1 or sum(len(p) for p in runs.values()) < PARALLEL_FROM:
        for index, positions in runs.items():
            for k, data in store.shards[index].graphs(positions):
                if data is not None:
                    out[(index, k)] = _featurize.arrays32(data)
        return out
    for index, k, a in _featurize.run_parallel(tasks, workers):
        out[(index, k)] = a
    return out
