"""EdgeDLPerf-style datasets: build (sample, export, label), store, load as graphs.

``build_dataset(out, space, num, targets, ...)`` grows a dataset directory;
``DatasetStore(dir)`` reads it (its sealed shards and its working store, see
``store.py``) and writes it; ``GraphDataset(dir)`` loads it for training, caching the
processed graphs per feature-extractor version.
"""
from __future__ import annotations

from predictors.dataset.builder import build_dataset
from predictors.dataset.store import DatasetStore

__all__ = ["DatasetStore", "GraphDataset", "build_dataset"]


def __getattr__(name: str):
    if name == "GraphDataset":  # imports torch: only when asked for
        from predictors.dataset.graphs import GraphDataset

        return GraphDataset
    raise AttributeError(name)
