"""A trained PerfSAGE predictor: ``state_dict`` + JSON manifest, and its registry.

Files of a predictor directory: ``manifest.json`` (feature-extractor version,
targets and metrics, normaliser, label scaling, model configuration, training
data summary, test scores) and ``weights.pt`` (a plain ``state_dict`` of tensors,
loaded with ``weights_only=True``; the ensemble members under ``member<i>.``).
"""
from __future__ import annotations

import fnmatch
import json
import math
import os
from collections import Counter
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from search_spaces.errors import HwnasError, UnknownNameError, unknown_name

from predictors.graph.normalizer import _check_version
from predictors.tflite_model import ModelSource

class PredictionWarning(UserWarning):
    """A prediction to take with care: a graph unlike the predictor's training graphs, custom
    operators, or a spread as large as the value. ``hwnas predict`` prints each as one line."""


PRETRAINED_DIR = Path(__file__).with_name("pretrained")
MANIFEST = "manifest.json"
WEIGHTS = "weights.pt"
SIZE_MARGIN = 1.25  # Predictor.novelty: a graph this much larger (smaller) than every training graph


def prior_matrix(u: np.ndarray, est: np.ndarray | None, names: Sequence[str], priors: dict[str, list]) -> np.ndarray:
    """``[B, M]``: each label's analytic estimate, a sum of raw graph features ``u`` ``[B, G]``
    and the extractor's estimates ``est`` ``[B, len(ESTIMATES)]``, times a factor, at most a
    cap where it has one (1 for a label without one): what a predictor with priors
    multiplies its output by."""
    from predictors.graph._features import ESTIMATES, GRAPH_INDEX

    out = np.ones((u.shape[0], len(names)), np.float64)
    for i, name in enumerate(names):
        if name in priors:
            features, factor, *cap = priors[name]
            total = np.zeros(u.shape[0], np.float64)
            for f in features:
                total += u[:, GRAPH_INDEX[f]] if f in GRAPH_INDEX else est[:, ESTIMATES.index(f)]
            total *= factor
            if cap:
                np.minimum(total, cap[0], out=total)
            out[:, i] = np.maximum(total, 1e-9)
    return out


class LabelScaler:
    """Per-label transform of targets: optional log, then standardisation."""

    def __init__(self, log: bool, mean: np.ndarray, std: np.ndarray):
        self.log, self.mean, self.std = bool(log), np.asarray(mean, np.float64), np.asarray(std, np.float64)

    @classmethod
    def fit(cls, y: np.ndarray, log: bool) -> "LabelScaler":
        z = np.log(np.maximum(y, 1e-12)) if log else y
        mean = np.nanmean(z, axis=0)
        std = np.nanstd(z, axis=0)
        mean = np.where(np.isfinite(mean), mean, 0.0)
        std = np.where(np.isfinite(std) & (std > 1e-8), std, 1.0)
        return cls(log, mean, std)

    def transform(self, y: np.ndarray) -> np.ndarray:
        z = np.log(np.maximum(y, 1e-12)) if self.log else y
        return (z - self.mean) / self.std

    def inverse(self, z: np.ndarray) -> np.ndarray:
        v = z * self.std + self.mean
        if self.log:
            np.minimum(np.maximum(v, -700.0, out=v), 700.0, out=v)
            return np.exp(v, out=v)
        return v

    def to_json(self) -> dict:
        return {"log": self.log, "mean": self.mean.tolist(), "std": self.std.tolist()}

    @classmethod
    def from_json(cls, d: dict) -> "LabelScaler":
        return cls(d["log"], np.asarray(d["mean"]), np.asarray(d["std"]))


class Predictor:
    """Predicts every (target, metric) label of its manifest for TFLite models."""

    def __init__(self, manifest: dict[str, Any], state_dict: dict[str, Any]):
        import torch

        from predictors.graph import FEATURE_VERSION, Normalizer
        from predictors.model import PerfSAGE

        version = manifest.get("feature_version")
        if version != FEATURE_VERSION:
            raise HwnasError(
                f"predictor {manifest.get('name', '?')!r} was trained on graph features {version!r}, but this "
                f"hwnas extracts {FEATURE_VERSION!r}; retrain it (`hwnas train`) or install the hwnas version "
                "it was made with"
            )
        self.manifest = manifest
        self.name: str = manifest.get("name", "perfsage")
        # the operator types of the training graphs (None: a predictor from before they were recorded)
        seen = manifest.get("op_types")
        self.op_types_seen: frozenset[int] | None = frozenset(seen) if seen is not None else None
        # the fewest and most operators of a training graph (None: a predictor from before 2026-12-08)
        sizes = manifest.get("graph_nodes")
        self.graph_nodes_seen: tuple[int, int] | None = (int(sizes[0]), int(sizes[1])) if sizes else None
        # trained with ``unknown_ops``: an operator type no training graph had reads as UNKNOWN_OP_TYPE,
        # the embedding that learnt "some operator" (else it would keep its untrained one)
        self._op_map: np.ndarray | None = None
        if (manifest.get("train_config") or {}).get("unknown_ops") and seen is not None:
            from predictors.graph._features import NUM_OP_TYPES, UNKNOWN_OP_TYPE

            self._op_map = np.full(NUM_OP_TYPES, UNKNOWN_OP_TYPE, np.int64)
            self._op_map[sorted(self.op_types_seen)] = sorted(self.op_types_seen)
        self.label_names: list[str] = manifest["label_names"]
        self.normalizer = Normalizer.from_json(manifest["normalizer"])
        self.scaler = LabelScaler.from_json(manifest["label_scaler"])
        # the ensemble spread rescaled on the validation split (train.py: _std_scale)
        self.std_scale = np.asarray(manifest.get("std_scale") or [1.0] * len(self.label_names), np.float64)
        self.priors: dict[str, list] = manifest.get("priors") or {}
        # [label index, low, high]: the ratios to the estimate that training saw
        self.ratio_range = [(self.label_names.index(n), lo, hi)
                            for n, (lo, hi) in (manifest.get("prior_ratio_range") or {}).items()]
        self.members = []
        for i in range(manifest["ensemble"]):
            model = PerfSAGE(len(self.label_names), manifest["model"])
            prefix = f"member{i}."
            model.load_state_dict({k[len(prefix):]: v for k, v in state_dict.items() if k.startswith(prefix)})
            model.eval()
            self.members.append(model)
        self._torch = torch
        from predictors._fast import Scaling, StackedEnsemble

        self.fast = True  # collate and scale in torch (False: the training path, PyG Batch + NumPy)
        self._scale_x, self._scale_u = Scaling(self.normalizer.node), Scaling(self.normalizer.graph)
        # all members in one pass where the architecture allows (None: one member at a time)
        self._stacked = None
        self._numpy = None  # NumpyStacked, built on the first small prediction
        if StackedEnsemble.supports(manifest["model"]):
            self._scale_live = Scaling(self.normalizer.node, live_only=True)
            self._stacked = StackedEnsemble(self.members, self._scale_live.live)

    # -- what it predicts
    @property
    def targets(self) -> list[str]:
        return list(dict.fromkeys(n.split("/", 1)[0] for n in self.label_names))

    @property
    def metrics(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for n in self.label_names:
            t, m = n.split("/", 1)
            out.setdefault(t, []).append(m)
        return out

    # -- prediction
    def predict_graphs(self, graphs: Sequence[Any], batch_size: int = 512, max_nodes: int = 3072,
                       workers: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Mean and std over the ensemble, in label units: two arrays ``[len(graphs), M]``.

        Graphs go through in chunks of at most ``batch_size`` graphs and about
        ``max_nodes`` operators: activations of a few thousand nodes stay in the CPU's
        cache (measured: chunks of 2,000-4,000 nodes ran 10-15 % faster than of 8,000).
        ``workers`` chunks run at once, each in its own thread on one core (default: the
        ``HWNAS_TORCH_THREADS`` setting, 1); PyTorch's own intra-op threads scale worse on
        operations this small.
        """
        from predictors._threads import torch_thread_scope, torch_threads

        for g in graphs:
            _check_version(getattr(g, "feature_version", None))
        chunks = list(_chunks(graphs, batch_size, max_nodes))
        if not chunks:
            empty = np.zeros((0, len(self.label_names)))
            return empty, empty
        workers = torch_threads() if workers is None else max(1, int(workers))
        if workers > 1 and len(chunks) > 1:
            from concurrent.futures import ThreadPoolExecutor

            with torch_thread_scope(1):  # one core per chunk; the threads run side by side
                with ThreadPoolExecutor(min(workers, len(chunks))) as pool:
                    results = list(pool.map(self._predict_chunk, chunks))
        else:
            with torch_thread_scope():
                results = [self._predict_chunk(chunk) for chunk in chunks]
        return np.concatenate([m for m, _ in results]), np.concatenate([s for _, s in results])

    def _predict_chunk(self, chunk: Sequence[Any]) -> tuple[np.ndarray, np.ndarray]:
        raw = None
        if self.priors:
            raw = (np.concatenate([g.u.numpy() for g in chunk]), np.concatenate([g.est.numpy() for g in chunk]))
        return self._ensemble_stats(self._forward(chunk), raw)

    def _ensemble_stats(self, members, raw: tuple[np.ndarray, np.ndarray] | None = None,
                        ) -> tuple[np.ndarray, np.ndarray]:
        """Each member's scaled outputs ``[B, M]`` -> mean and calibrated std in label units
        (``raw``: the graphs' raw features and estimates, for the labels learnt as a ratio to
        an estimate; the mean's ratio stays within the range training saw, the std is the
        members' own spread, so a graph that pushes them out of it still says so)."""
        outs = self.scaler.inverse(np.asarray(members, np.float64))  # [E, B, M]
        mean = None
        if self.priors:
            if self.ratio_range:  # the mean of ratios kept to those training saw; the spread as predicted
                clipped = outs.copy()
                for j, lo, hi in self.ratio_range:
                    np.clip(clipped[:, :, j], lo, hi, out=clipped[:, :, j])
            estimate = prior_matrix(*raw, self.label_names, self.priors)
            outs *= estimate
            if self.ratio_range:
                mean = np.add.reduce(clipped, axis=0) / len(outs) * estimate
        spread_mean = np.add.reduce(outs, axis=0) / len(outs)
        if mean is None:
            mean = spread_mean
        if len(outs) == 1:
            return mean, np.zeros_like(mean)
        outs -= spread_mean
        outs *= outs
        std = np.sqrt(np.add.reduce(outs, axis=0) / len(outs))  # ndarray.std's ufuncs, minus its wrapper
        std *= self.std_scale
        return mean, std

    def _forward(self, chunk: Sequence[Any]) -> list[np.ndarray]:
        """Scaled outputs of every member for a list of graphs: ``E`` arrays ``[B, M]``."""
        with self._torch.inference_mode():
            return self._forward_members(chunk)

    def _forward_members(self, chunk: Sequence[Any]) -> list[np.ndarray]:
        from predictors._fast import collate

        if self.fast:
            x, op_type, edge_index, batch, u = collate(chunk)
            op_type = self._known_ops(op_type)
            u = self._scale_u(u)
            if self._stacked is not None:
                x = self._scale_live(x)
                return list(self._stacked(x, op_type, edge_index, batch, u).double().numpy())
            x = self._scale_x(x)
            return [m(x, op_type, edge_index, batch, u).double().numpy() for m in self.members]
        from torch_geometric.data import Batch

        b = self.normalizer.transform_batch(
            Batch.from_data_list(chunk, exclude_keys=["y", "yz", "ymask", "space", "arch_id",
                                                      "feature_version", "label_names"]))
        op_type = self._known_ops(b.op_type)
        return [m(b.x, op_type, b.edge_index, b.batch, b.u).double().numpy() for m in self.members]

    def _known_ops(self, op_type):
        """Operator types (a tensor or an array) with those no training graph had read as unknown."""
        if self._op_map is None:
            return op_type
        if isinstance(op_type, np.ndarray):
            return self._op_map[op_type]
        return self._torch.from_numpy(self._op_map)[op_type]

    def _predict_small(self, arrays: Sequence[dict[str, Any]]) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`predict_graphs` for a few small graphs, on :class:`NumpyStacked`."""
        if self._numpy is None:
            from predictors._fast import NumpyStacked

            self._numpy = NumpyStacked(self._stacked, self._scale_live, self._scale_u)
        net = self._numpy
        sizes = [len(a["op_type"]) for a in arrays]
        raw = None
        if self.priors:
            raw = (np.concatenate([a["u"] for a in arrays]), np.concatenate([a["est"] for a in arrays]))
        if len(arrays) == 1:  # one search candidate: its arrays as they are (scale copies x and u)
            a = arrays[0]
            x, u, op_type, edge_index = net.scale(a["x"], 0), net.scale(a["u"], 1), a["op_type"], a["edge_index"]
            op_type = self._known_ops(op_type)
        else:
            offsets = np.cumsum([0] + sizes[:-1])
            x = net.scale(np.concatenate([a["x"] for a in arrays]), 0)
            u = net.scale(np.concatenate([a["u"] for a in arrays]), 1)
            op_type = self._known_ops(np.concatenate([a["op_type"] for a in arrays]))
            edge_index = np.concatenate([a["edge_index"] + o for a, o in zip(arrays, offsets)], axis=1)
        return self._ensemble_stats(net(x, op_type, edge_index, sizes, u), raw)  # [E, B, M]

    def _as_dict(self, mean: np.ndarray, std: np.ndarray, targets: Sequence[str] | None) -> dict[str, dict]:
        out: dict[str, dict[str, float]] = {}
        for i, name in enumerate(self.label_names):
            t, m = name.split("/", 1)
            if targets and t not in targets:
                continue
            out.setdefault(t, {})[m] = float(mean[i])
            out[t][f"{m}_std"] = float(std[i])
        return out

    def predict(self, tflite: ModelSource | Sequence[ModelSource], targets: Sequence[str] | None = None):
        """Predicts one model (a dict like ``hwnas predict --json``) or a list of models (a list).

        A target that cannot run a model (an Ethos-U and a float model) gets
        ``{"error": why}`` instead of metrics, in the words its ``measure`` would use. A model
        unlike the training graphs, with custom operators, or predicted with a spread as
        large as the value raises a :class:`PredictionWarning` naming it (``warnings``).

        Args:
            tflite: a path or bytes, or a list of them (predicted in batches).
            targets: restrict the output to these targets.
        """
        from predictors.graph._extract import model_arrays

        self._check_targets(targets)
        single = isinstance(tflite, (str, bytes, bytearray, memoryview, os.PathLike))
        items = [tflite] if single else list(tflite)
        loaded = [model_arrays(item) for item in items]
        results = self.predict_arrays([arrays for arrays, _ in loaded], targets)
        for item, (arrays, info), result in zip(items, loaded, results):
            self._check_model(item, info, arrays, result)
        return results[0] if single else results

    def novelty(self, arrays: dict[str, Any]) -> list[str]:
        """What a graph has that none of this predictor's training graphs had: operator types
        it never saw, features that were constant in training and differ here, graph
        features more than the normaliser's clip (8 std) from the training mean, and more
        operators than the largest training graph had by a quarter (or fewer than the
        smallest by as much): a sum over operators extrapolated there is a guess."""
        from predictors.graph import GRAPH_FEATURES, NODE_FEATURES, UNKNOWN_OP_TYPE
        from predictors.graph.normalizer import CLIP
        from predictors.tflite_model import builtin_operator_names

        found = []
        if self.op_types_seen is not None:
            names = builtin_operator_names()
            new = sorted(set(int(t) for t in arrays["op_type"]) - self.op_types_seen)
            found += [f"operator {names.get(t, 'unknown') if t != UNKNOWN_OP_TYPE else 'unknown'}" for t in new]
        if self.graph_nodes_seen is not None:
            n, (low, high) = len(arrays["op_type"]), self.graph_nodes_seen
            if n > SIZE_MARGIN * high:
                found.append(f"{n} operators (training graphs had at most {high})")
            elif n * SIZE_MARGIN < low:
                found.append(f"{n} operators (training graphs had at least {low})")
        for cols, values, features in ((self.normalizer.node, arrays["x"], NODE_FEATURES),
                                       (self.normalizer.graph, arrays["u"], GRAPH_FEATURES)):
            scaled = np.where(cols.log, np.log1p(np.maximum(values, 0)), values)
            constant = cols.std == 0
            differs = constant & np.any(np.abs(scaled - cols.mean) > 1e-6 * np.maximum(1.0, np.abs(cols.mean)),
                                        axis=0)
            found += [f"{features[i]} (constant in training)" for i in np.flatnonzero(differs)]
            if features is GRAPH_FEATURES:
                z = (scaled[0] - cols.mean) * cols.inverse_std()
                found += [f"{features[i]} {z[i]:+.0f} std" for i in np.flatnonzero(~constant & (np.abs(z) > CLIP))]
        return found

    def _check_model(self, item: Any, info: Any, arrays: dict[str, Any], result: dict[str, dict]) -> None:
        import warnings

        from predictors import targets as registry
        from predictors.graph._extract import CUSTOM_AS_BUILTIN

        label = "model bytes" if isinstance(item, (bytes, bytearray, memoryview)) else str(item)
        for target in list(result):
            if target in registry.names():
                reason = registry.get(target).refusal(info)
                if reason:
                    result[target] = {"error": reason}
        if info.shapes_from.startswith("placeholders"):
            warnings.warn(PredictionWarning(
                f"{label}: shapes known only at run time, and LiteRT could not run the model to tell them "
                f"({info.shapes_from.removeprefix('placeholders: ')}): sizes are the file's placeholders, so "
                "MACs, memory and the prediction are likely too low"), stacklevel=3)
        custom = Counter(op.opcode for op in info.operators if op.opcode.startswith("CUSTOM"))
        unknown = {name: n for name, n in custom.items() if name not in CUSTOM_AS_BUILTIN}
        if unknown:
            warnings.warn(PredictionWarning(
                f"{label}: custom operators, one node type for all of them, costs not modelled: "
                + ", ".join(f"{name.removeprefix('CUSTOM:')} x{n}" for name, n in sorted(unknown.items()))),
                stacklevel=3)
        if len(unknown) < len(custom):
            warnings.warn(PredictionWarning(
                f"{label}: custom operators read as the builtin they implement: "
                + ", ".join(f"{name.removeprefix('CUSTOM:')} x{n} as {CUSTOM_AS_BUILTIN[name]}"
                            for name, n in sorted(custom.items()) if name in CUSTOM_AS_BUILTIN)), stacklevel=3)
        predicted = [(f"{t}/{m} {v:.3g} +- {r[m + '_std']:.2g}", abs(v), r[m + "_std"]) for t, r in result.items()
                     for m, v in r.items() if not m.endswith("_std") and m != "error" and f"{m}_std" in r]
        unseen = self.novelty(arrays) if predicted else []  # nothing predicted: the refusal says it all
        if unseen:
            shown = ", ".join(unseen[:5]) + (f" and {len(unseen) - 5} more" if len(unseen) > 5 else "")
            warnings.warn(PredictionWarning(
                f"{label}: unlike every graph {self.name} was trained on ({shown}); the prediction is a guess: "
                + "; ".join(text for text, _, _ in predicted)), stacklevel=3)
        elif any(std > value for _, value, std in predicted):
            wide = "; ".join(text for text, value, std in predicted if std > value)
            warnings.warn(PredictionWarning(f"{label}: a spread as large as the value: {wide}"), stacklevel=3)

    def predict_arrays(self, arrays: Sequence[dict[str, Any]], targets: Sequence[str] | None = None) -> list[dict]:
        """:meth:`predict` of feature arrays (``predictors.graph.graph_arrays`` or the lowering's)."""
        from predictors._fast import NumpyStacked
        from predictors.graph import to_data

        self._check_targets(targets)
        if self._stacked is not None and 0 < sum(len(a["op_type"]) for a in arrays) <= NumpyStacked.MAX_NODES:
            mean, std = self._predict_small(arrays)  # a search's one candidate: NumPy, no tensors
        else:
            mean, std = self.predict_graphs([to_data(a) for a in arrays])
        return [self._as_dict(mean[i], std[i], targets) for i in range(len(arrays))]

    def predict_arch(self, space: Any, arch: Any, targets: Sequence[str] | None = None):
        """:meth:`predict` of a search space's arch (or a list of archs) from the lowered graph:
        no Keras model, no TFLite conversion (``predictors.graph.from_arch``).

        Raises:
            LoweringError: the lowering cannot reproduce this network (export it and call
                :meth:`predict` instead); InvalidArchError for an arch the space refuses.
        """
        from predictors.graph import arch_arrays

        single = not isinstance(arch, list)
        archs = [arch] if single else list(arch)
        results = self.predict_arrays([arch_arrays(space, a) for a in archs], targets)
        return results[0] if single else results

    def _check_targets(self, targets: Sequence[str] | None) -> None:
        if targets:
            missing = [t for t in targets if t not in self.targets]
            if missing:
                raise UnknownNameError(
                    f"predictor {self.name!r} does not predict target {missing[0]!r}; it predicts: "
                    f"{', '.join(self.targets)}"
                )

    # -- persistence
    def save(self, directory: str | os.PathLike) -> None:
        save_predictor(directory, self.manifest, self.members)


def _chunks(graphs: Sequence[Any], batch_size: int, max_nodes: int):
    chunk, nodes = [], 0
    for g in graphs:
        chunk.append(g)
        nodes += int(g.num_nodes)
        if len(chunk) >= batch_size or nodes >= max_nodes:
            yield chunk
            chunk, nodes = [], 0
    if chunk:
        yield chunk


def save_predictor(directory: str | os.PathLike, manifest: dict[str, Any], members: Sequence[Any]) -> None:
    import torch

    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    state = {f"member{i}.{k}": v.detach().cpu().clone() for i, m in enumerate(members)
             for k, v in m.state_dict().items()}
    torch.save(state, path / WEIGHTS)
    (path / MANIFEST).write_text(json.dumps(json_safe(manifest), indent=1, sort_keys=True))


def json_safe(value):
    """JSON has no NaN or infinity: write them as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def list_predictors(pattern: str = "*") -> list[str]:
    """Names of the predictors shipped in the package (``perfsage-<target>``)."""
    if not PRETRAINED_DIR.is_dir():
        return []
    names = sorted(p.name for p in PRETRAINED_DIR.iterdir() if (p / MANIFEST).is_file())
    return [n for n in names if fnmatch.fnmatchcase(n, pattern)]


def load_predictor(name_or_path: str | os.PathLike) -> Predictor:
    """A shipped predictor by name, or a predictor directory written by ``hwnas train``.

    Raises:
        UnknownNameError: neither a shipped name nor a predictor directory.
        HwnasError: the files are unreadable or from another feature-extractor version.
    """
    import torch

    path = Path(name_or_path)
    if not (path / MANIFEST).is_file():
        shipped = PRETRAINED_DIR / str(name_or_path)
        if (shipped / MANIFEST).is_file():
            path = shipped
        elif path.exists():
            raise HwnasError(f"{path}: not a predictor (no {MANIFEST}); train one with `hwnas train`")
        else:
            raise unknown_name("predictor", str(name_or_path), list_predictors() or ["(none shipped)"])
    try:
        manifest = json.loads((path / MANIFEST).read_text())
        state = torch.load(path / WEIGHTS, map_location="cpu", weights_only=True)
    except (OSError, ValueError, RuntimeError) as exc:
        raise HwnasError(f"{path}: cannot read the predictor ({exc})") from None
    manifest.setdefault("name", path.name)
    return Predictor(manifest, state)


def shipped_predictors(targets: Sequence[str] | None = None) -> list[Predictor]:
    """The shipped predictor of each target (default: every shipped one).

    Raises:
        HwnasError: a target with no shipped predictor (the message lists those shipped).
    """
    shipped = list_predictors()
    wanted = list(targets or [n.removeprefix("perfsage-") for n in shipped])
    for target in wanted:
        if f"perfsage-{target}" not in shipped:
            raise HwnasError(f"no shipped predictor for target {target!r}; shipped: "
                             f"{', '.join(shipped) or 'none'} (or pass --predictor PATH)")
    return [load_predictor(f"perfsage-{target}") for target in wanted]
