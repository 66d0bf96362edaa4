"""Scaling of the raw graph features, fitted on training graphs, stored as plain JSON.

Raw features span many orders of magnitude (a MAC count of 10^9 beside a stride of
2).  A column whose training values are all non-negative and not only 0 and 1 (a
size, a count, a kernel or stride) is put through ``log1p`` first; every column is
then standardised with the training mean and standard deviation and clipped to
+-``CLIP`` standard deviations.  A column constant in training carries nothing the
model could have learnt, so it is set to zero: left in, a value never seen in
training (the 3x10^5 output bytes of a detection head where every training network
had ten) reaches the model through weights that were never trained.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import numpy as np

from search_spaces.errors import HwnasError

from predictors.graph._features import FEATURE_VERSION, GRAPH_FEATURES, NODE_FEATURES

CLIP = 8.0


@dataclass
class _Columns:
    log: np.ndarray  # bool [C]
    mean: np.ndarray  # [C]
    std: np.ndarray  # [C]

    @classmethod
    def fit(cls, values: np.ndarray) -> "_Columns":
        values = np.asarray(values, dtype=np.float64)
        if values.ndim != 2 or values.shape[0] == 0:
            raise HwnasError("cannot fit a normaliser on no data")
        binary = np.all((values == 0) | (values == 1), axis=0)
        log = (values.min(axis=0) >= 0) & ~binary
        scaled = np.where(log, np.log1p(np.maximum(values, 0)), values)
        mean = scaled.mean(axis=0)
        std = scaled.std(axis=0)
        std = np.where(std > 1e-8, std, 0.0)  # 0: a constant column, dropped
        return cls(log, mean, std)

    def inverse_std(self) -> np.ndarray:
        return np.where(self.std > 0, 1.0 / np.where(self.std > 0, self.std, 1.0), 0.0)

    def apply(self, values: np.ndarray) -> np.ndarray:
        scaled = np.array(values, dtype=np.float64)  # a copy
        if self.log.any():
            cols = np.flatnonzero(self.log)
            scaled[:, cols] = np.log1p(np.maximum(scaled[:, cols], 0))
        scaled -= self.mean
        scaled *= self.inverse_std()
        return np.clip(scaled, -CLIP, CLIP)

    def to_json(self) -> dict:
        return {"log": self.log.astype(bool).tolist(), "mean": self.mean.tolist(), "std": self.std.tolist()}

    @classmethod
    def from_json(cls, d: dict) -> "_Columns":
        return cls(np.asarray(d["log"], bool), np.asarray(d["mean"], np.float64), np.asarray(d["std"], np.float64))


class Normalizer:
    """Per-column log + standard scaling of node (``x``), edge and graph (``u``) features."""

    def __init__(self, node: _Columns, edge: _Columns, graph: _Columns, feature_version: str = FEATURE_VERSION):
        self.node, self.edge, self.graph = node, edge, graph
        self.feature_version = feature_version

    @classmethod
    def fit(cls, graphs: Iterable) -> "Normalizer":
        """Fits on training graphs (``Data`` objects from :func:`from_tflite`)."""
        graphs = list(graphs)
        if not graphs:
            raise HwnasError("cannot fit a normaliser on no graphs")
        for g in graphs:
            _check_version(getattr(g, "feature_version", None))
        x = np.concatenate([g.x.numpy() for g in graphs])
        e = np.concatenate([g.edge_attr.numpy() for g in graphs] + [np.zeros((1, 1))])
        u = np.concatenate([g.u.numpy() for g in graphs])
        return cls(_Columns.fit(x), _Columns.fit(e), _Columns.fit(u))

    def drop(self, names: Iterable[str]) -> "Normalizer":
        """Scales the named node or graph feature columns to zero, as a column constant in
        training is: an A/B of a feature on one split (``train_predictor(config=
        {"drop_features": [...]})``) without a second feature layout.  A predictor
        trained so reads those columns as constant in training, and its
        ``PredictionWarning`` names them: it is for measuring a feature, not for shipping."""
        for name in names:
            if name in NODE_FEATURES:
                self.node.std[NODE_FEATURES.index(name)] = 0.0
            elif name in GRAPH_FEATURES:
                self.graph.std[GRAPH_FEATURES.index(name)] = 0.0
            else:
                raise HwnasError(f"drop_features: no feature {name!r}")
        return self

    def transform(self, data):
        """A copy of ``data`` with scaled ``x``, ``edge_attr`` and ``u`` (float32)."""
        import torch

        _check_version(getattr(data, "feature_version", None))
        out = data.clone()
        out.x = torch.tensor(self.node.apply(data.x.numpy()), dtype=torch.float32)
        out.edge_attr = torch.tensor(self.edge.apply(data.edge_attr.numpy()), dtype=torch.float32)
        out.u = torch.tensor(self.graph.apply(data.u.numpy()), dtype=torch.float32)
        return out

    __call__ = transform

    def transform_batch(self, batch):
        """Scales a collated ``Batch`` in place (one vectorised pass instead of one per graph)."""
        import torch

        batch.x = torch.tensor(self.node.apply(batch.x.numpy()), dtype=torch.float32)
        batch.edge_attr = torch.tensor(self.edge.apply(batch.edge_attr.numpy()), dtype=torch.float32)
        batch.u = torch.tensor(self.graph.apply(batch.u.numpy()), dtype=torch.float32)
        return batch

    def to_json(self) -> dict:
        return {
            "feature_version": self.feature_version,
            "node_features": list(NODE_FEATURES),
            "graph_features": list(GRAPH_FEATURES),
            "node": self.node.to_json(),
            "edge": self.edge.to_json(),
            "graph": self.graph.to_json(),
        }

    @classmethod
    def from_json(cls, d: dict) -> "Normalizer":
        version = d.get("feature_version")
        if version != FEATURE_VERSION:
            raise HwnasError(
                f"normaliser was fitted on features {version!r}, this hwnas extracts {FEATURE_VERSION!r}; "
                "refit it on graphs extracted by this version"
            )
        return cls(_Columns.from_json(d["node"]), _Columns.from_json(d["edge"]), _Columns.from_json(d["graph"]),
                   version)

    def save(self, path: str | os.PathLike) -> None:
        Path(path).write_text(json.dumps(self.to_json()))

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Normalizer":
        try:
            return cls.from_json(json.loads(Path(path).read_text()))
        except (OSError, ValueError, KeyError) as exc:
            raise HwnasError(f"{path}: not a normaliser file ({exc})") from None


def _check_version(version) -> None:
    if version is not None and version != FEATURE_VERSION:
        raise HwnasError(
            f"graph was extracted with features {version!r}, this hwnas uses {FEATURE_VERSION!r}; "
            "extract it again"
        )
