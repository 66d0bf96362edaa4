"""Training PerfSAGE predictors on datasets built by ``hwnas dataset build/import``.

Split 80/10/10 *by network* (arch_id), deterministic for a seed; the normaliser and
the label scaling are fitted on the training split only; each ensemble member is a
model trained from its own seed (a deep ensemble: the spread of the members is the
predicted standard deviation); the member's best epoch on the validation split is
kept; scores are reported on the test split, per label and per search space.
"""
from __future__ import annotations

import copy
import hashlib
import math
import os
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from search_spaces.errors import HwnasError

from predictors.metrics import scores
from predictors.predictor import prior_matrix


from predictors._threads import torch_threads  # noqa: E402  (re-exported: benchmarks import it from here)

# few-shot training: the frozen trunk of a trained predictor, these parameters learn
TRAINABLE_IN_FEW_SHOT = ("head.", "node_head.")
FEW_SHOT = {"lr": 0.01, "epochs": 300, "weight_decay": 1e-4}


def load_graphs(data_dirs: Sequence[str | os.PathLike], targets: Sequence[str] | None = None,
                spaces: Sequence[str] | None = None, host: str | None = None,
                aux: bool = False) -> tuple[list, list[str]]:
    """The graphs of several dataset directories, with ``y`` over the union of their labels.

    ``host``: of the labels that name the host that timed them (``cpu_model``: cpu-litert's),
    keep only that host's timings (``Target.timed_metrics``: the latency; an arena or a model
    size is the model's, kept from every host; a graph left with no label is dropped).
    ``aux``: the targets' auxiliary metrics are labels too."""
    import torch

    from predictors.dataset.graphs import GraphDataset

    datasets = [GraphDataset(d, spaces=list(spaces) if spaces else None,
                             targets=list(targets) if targets else None, aux=aux) for d in data_dirs]
    names = sorted({n for ds in datasets for n in ds.label_names})
    if targets:
        unknown = [t for t in targets if not any(n.startswith(t + "/") for n in names)]
        if unknown:
            raise HwnasError(f"no labels for target {unknown[0]!r} in {', '.join(map(str, data_dirs))}")
    if not names:
        raise HwnasError(f"no labels in {', '.join(map(str, data_dirs))}")
    index = {n: i for i, n in enumerate(names)}
    graphs, seen = [], set()
    for ds in datasets:
        cols = [index[n] for n in ds.label_names]
        for i in range(len(ds)):
            g = ds[i]
            if g.arch_id in seen:
                continue
            seen.add(g.arch_id)
            y = torch.full((1, len(names)), math.nan)
            y[0, cols] = g.y[0]
            if torch.isfinite(y).any():
                g.y = y
                graphs.append(g)
    if host is not None:
        graphs = _keep_host(data_dirs, graphs, names, host)
    return graphs, names


def _first_labels(data_dirs: Sequence[str | os.PathLike]):
    """The successful label rows of several dataset directories, one per (sample, target):
    the first directory that has it wins, as in :func:`load_graphs`."""
    from predictors.dataset.store import DatasetStore

    seen: set[tuple[str, str]] = set()
    for d in data_dirs:
        with DatasetStore(d) as store:
            for row in store.label_rows(status="ok"):
                key = (row["arch_id"], row["target"])
                if key not in seen:
                    seen.add(key)
                    yield row


def _host_of_labels(data_dirs: Sequence[str | os.PathLike]) -> dict[tuple[str, str], str]:
    """(sample, target) -> the host that timed the label, for the labels that name one."""
    return {(row["arch_id"], row["target"]): (row["metrics"] or {})["cpu_model"]
            for row in _first_labels(data_dirs) if (row["metrics"] or {}).get("cpu_model")}


def _keep_host(data_dirs: Sequence[str | os.PathLike], graphs: list, names: Sequence[str], host: str) -> list:
    import torch

    hosts = _host_of_labels(data_dirs)
    timed = {t for _, t in hosts}  # the targets whose labels name a host
    if not timed:
        raise HwnasError(f"--host {host!r}: no label in {', '.join(map(str, data_dirs))} names the host "
                         "that timed it")
    known = sorted(set(hosts.values()))
    if host not in known:
        raise HwnasError(f"--host {host!r}: no label was timed there (hosts: {', '.join(known)})")
    from predictors import targets as registry

    def host_bound(name: str) -> bool:  # a latency is its host's; an arena or a size is the model's
        target, metric = name.split("/", 1)
        if target not in timed:
            return False
        return target not in registry.names() or metric in registry.get(target).timed_metrics

    cols = [(i, n.split("/", 1)[0]) for i, n in enumerate(names) if host_bound(n)]
    kept = []
    for g in graphs:
        for i, target in cols:
            if hosts.get((g.arch_id, target)) != host:
                g.y[0, i] = math.nan
        if torch.isfinite(g.y).any():
            kept.append(g)
    return kept


def label_timings(data_dirs: Sequence[str | os.PathLike], arch_ids: set[str],
                  names: Sequence[str], host: str | None = None) -> dict[str, dict[str, int]]:
    """Per target that records it, how the training labels' latency was timed (``timing``,
    and ``on <cpu_model>`` where the label names its host).

    Labels of one target timed two ways (cpu-litert's ``median`` and ``min-of-10-rounds``)
    or on two hosts teach the predictor two latencies at once: that is warned about, not
    refused (a relabelling job in progress is a normal state of a dataset).
    """
    import warnings

    from predictors.dataset.store import label_timing

    targets = {n.split("/", 1)[0] for n in names}
    counts: dict[str, dict[str, int]] = {}
    for row in _first_labels(data_dirs):
        if row["target"] not in targets or row["arch_id"] not in arch_ids:
            continue
        how = label_timing(row["target"], row["metrics"])
        if how is not None:
            cpu = (row["metrics"] or {}).get("cpu_model")
            if host is not None and cpu != host:
                continue  # left out of the training set (load_graphs)
            how = f"{how} on {cpu}" if cpu else how
            per = counts.setdefault(row["target"], {})
            per[how] = per.get(how, 0) + 1
    for target, per in counts.items():
        if len(per) > 1:
            warnings.warn(f"{target} labels were timed {len(per)} ways "
                          f"({', '.join(f'{how} {n}' for how, n in sorted(per.items()))}): the predictor learns "
                          f"a mix; `hwnas dataset build ... --target {target}` measures the stale ones again "
                          f"(labels from another host it keeps: `hwnas train --host` takes one host's)",
                          stacklevel=3)
    return {t: dict(sorted(c.items())) for t, c in sorted(counts.items())}


def split_by_network(graphs: list, seed: int = 0, fractions=(0.8, 0.1, 0.1),
                     test_spaces: Sequence[str] | None = None) -> tuple[list, list, list]:
    """Deterministic split by network: the samples of one network (its regimes, keys
    ``<arch_id>@<regime>``) share a split. With ``test_spaces``, those spaces are the test set."""
    from predictors.dataset.store import split_key

    def rank(arch_id: str) -> str:
        return hashlib.sha1(f"{seed}:{arch_id}".encode()).hexdigest()

    def parts(pool: list, cuts: list[int]) -> list[list]:
        """``pool`` cut by network rank at ``cuts`` networks; each part in rank order."""
        networks = sorted({split_key(g.arch_id)[0] for g in pool}, key=rank)
        part_of = {a: sum(k >= c for c in cuts) for k, a in enumerate(networks)}
        out: list[list] = [[] for _ in range(len(cuts) + 1)]
        for g in sorted(pool, key=lambda g: (rank(split_key(g.arch_id)[0]), g.arch_id)):
            out[part_of[split_key(g.arch_id)[0]]].append(g)
        return out

    if test_spaces:
        test = [g for g in graphs if g.space in test_spaces]
        rest = [g for g in graphs if g.space not in test_spaces]
        n = len({split_key(g.arch_id)[0] for g in rest})
        val, train = parts(rest, [max(1, int(round(n * fractions[1] / (fractions[0] + fractions[1]))))])
        return train, val, test
    n = len({split_key(g.arch_id)[0] for g in graphs})
    n_test = max(1, int(round(n * fractions[2])))
    n_val = max(1, int(round(n * fractions[1])))
    test, val, train = parts(graphs, [n_test, n_test + n_val])
    return train, val, test


def label_priors(names: Sequence[str]) -> dict[str, list]:
    """``{label: [graph features, factor(, cap)]}`` for the labels whose target has an
    analytic estimate (``Target.priors``)."""
    from predictors import targets as registry

    out = {}
    for name in names:
        target, metric = name.split("/", 1)
        if target in registry.names() and metric in registry.get(target).priors:
            features, factor, *cap = registry.get(target).priors[metric]
            out[name] = [list(features), float(factor)] + ([float(cap[0])] if cap and cap[0] else [])
    return out


def _prepare(graphs: list, normalizer, scaler, priors: dict | None = None, names: Sequence[str] = ()) -> list:
    import torch

    out = []
    for g in graphs:
        h = normalizer(g)
        y = g.y.numpy().astype(np.float64)
        if priors:
            y = y / prior_matrix(g.u.numpy(), g.est.numpy(), names, priors)
        h.yz = torch.from_numpy(np.nan_to_num(scaler.transform(y), nan=0.0).astype(np.float32))
        h.ymask = torch.from_numpy(np.isfinite(y))
        h.y = torch.from_numpy(np.nan_to_num(y, nan=1.0).astype(np.float32))
        out.append(h)
    return out


def _loss(pred, batch, scaler_t, kind: str):
    import torch

    mask = batch.ymask
    if kind == "mape":  # on the original scale (the published PerfSAGE objective)
        mean, std, log = scaler_t
        value = pred * std + mean
        if log:
            value = torch.exp(value.clamp(-50, 50))
        err = (value - batch.y).abs() / batch.y.abs().clamp_min(1e-12)
    elif kind == "mse":
        err = (pred - batch.yz) ** 2
    else:  # l1 in the scaled (log) space: a relative error, robust
        err = (pred - batch.yz).abs()
    return (err * mask).sum() / mask.sum().clamp_min(1)


def resolve_device(device: str | None):
    """``cpu`` (default), ``cuda``, ``cuda:N`` or ``auto`` (CUDA when PyTorch sees one)."""
    import torch

    name = (device or "cpu").strip().lower()
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise HwnasError(f"unknown device {device!r}: use cpu, cuda, cuda:N or auto") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise HwnasError(f"device {device!r}: PyTorch sees no CUDA device here (a CPU build, or no GPU); "
                         "use --device cpu")
    if dev.type not in ("cpu", "cuda"):
        raise HwnasError(f"device {device!r}: only cpu and cuda are supported")
    return dev


def _fit_member(model, train, val, cfg: dict, scaler, seed: int, epochs: int, progress, member: int,
                device="cpu"):
    import torch
    from torch_geometric.loader import DataLoader

    from predictors.graph._features import UNKNOWN_OP_TYPE

    model.to(device)

    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    # small tables (few-shot, fine-tuning on tens of networks) get smaller batches, so that an
    # epoch is still several optimiser steps
    batch_size = max(1, min(int(cfg["batch_size"]), max(8, len(train) // 8)))
    loader = DataLoader(train, batch_size=batch_size, shuffle=True, generator=gen)
    val_loader = DataLoader(val, batch_size=1024)
    trainable = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.Adam(trainable, lr=cfg["lr"], weight_decay=cfg.get("weight_decay", 0.0))
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(epochs, 1))
    scaler_t = (torch.tensor(scaler.mean, dtype=torch.float32, device=device),
                torch.tensor(scaler.std, dtype=torch.float32, device=device), scaler.log)
    best, best_state, history = math.inf, copy.deepcopy(model.state_dict()), []
    unknown = float(cfg.get("unknown_ops") or 0.0)
    unknown_gen = torch.Generator().manual_seed(seed + 1)
    bar = _bar(epochs, f"member {member}", progress)
    for epoch in range(epochs):
        model.train()
        total, count = 0.0, 0
        for b in loader:
            b = b.to(device)
            opt.zero_grad()
            op_type = b.op_type
            if unknown:  # some nodes read as "an operator" (model.DEFAULT["unknown_ops"])
                hide = (torch.rand(op_type.shape, generator=unknown_gen) < unknown).to(op_type.device)
                op_type = op_type.masked_fill(hide, UNKNOWN_OP_TYPE)
            loss = _loss(model(b.x, op_type, b.edge_index, b.batch, b.u), b, scaler_t, cfg["loss"])
            loss.backward()
            torch.nn.utils.clip_grad_norm_(trainable, 5.0)
            opt.step()
            total += float(loss.detach()) * b.num_graphs
            count += b.num_graphs
        sched.step()
        model.eval()
        with torch.inference_mode():
            v, vn = 0.0, 0
            for b in val_loader:
                b = b.to(device)
                v += float(_loss(model(b.x, b.op_type, b.edge_index, b.batch, b.u), b, scaler_t, "mape")) * b.num_graphs
                vn += b.num_graphs
        val_mape = v / max(vn, 1) * 100
        history.append({"epoch": epoch + 1, "train_loss": total / max(count, 1), "val_mape": val_mape})
        if val_mape < best:
            best, best_state = val_mape, copy.deepcopy(model.state_dict())
        bar.update(1)
        bar.set_postfix(loss=f"{total / max(count, 1):.4f}", val_mape=f"{val_mape:.2f}%")
    bar.close()
    model.load_state_dict(best_state)
    model.to("cpu")  # predictors run (and are saved) on the CPU
    model.eval()
    return history, best


def evaluate_graphs(predictor, graphs: list) -> dict[str, Any]:
    """Scores per target and metric, per search space and (when the graphs come in several
    export regimes) per regime, like ``hwnas evaluate --json``."""
    if not graphs:
        return {}
    mean, std = predictor.predict_graphs(graphs)
    names = predictor.label_names
    # the graphs may carry labels in another column order
    y_names = getattr(graphs[0], "label_names", None) or names
    y = np.concatenate([g.y.numpy() for g in graphs]).astype(np.float64)
    spaces = np.array([getattr(g, "space", "?") for g in graphs])
    regimes = np.array([getattr(g, "quantize", "int8") for g in graphs])
    report: dict[str, Any] = {}
    by_space: dict[str, Any] = {}
    by_regime: dict[str, Any] = {}
    for i, name in enumerate(names):
        if name not in y_names:
            continue
        j = y_names.index(name)
        t, m = name.split("/", 1)
        report.setdefault(t, {})[m] = scores(mean[:, i], y[:, j], std[:, i])
        for s in sorted(set(spaces)):
            k = spaces == s
            by_space.setdefault(s, {}).setdefault(t, {})[m] = scores(mean[k, i], y[k, j], std[k, i])
        for q in sorted(set(regimes)) if len(set(regimes)) > 1 else []:
            k = regimes == q
            by_regime.setdefault(q, {"by_space": {}}).setdefault(t, {})[m] = scores(mean[k, i], y[k, j], std[k, i])
            for s in sorted(set(spaces[k])):
                ks = k & (spaces == s)
                by_regime[q]["by_space"].setdefault(s, {}).setdefault(t, {})[m] = scores(mean[ks, i], y[ks, j],
                                                                                       std[ks, i])
    report["by_space"] = by_space
    if by_regime:
        report["by_regime"] = by_regime
    return report


def _std_scale(predictor, val: list) -> list[float]:
    """Per label, the factor that puts 95.45 % of the validation errors inside +-2 std.

    A deep ensemble of a few members agrees with itself more than with the truth; its
    spread is rescaled on the validation split so that ``<metric>_std`` means what a
    standard deviation should (the test split then checks it).
    """
    if len(val) < 10 or predictor.manifest["ensemble"] < 2:
        return [1.0] * len(predictor.label_names)
    mean, std = predictor.predict_graphs(val)
    y = np.concatenate([g.y.numpy() for g in val]).astype(np.float64)
    ratio = np.abs(mean - y) / np.maximum(std, 1e-12 * np.abs(mean))
    q = np.nanquantile(np.where(np.isfinite(y), ratio, np.nan), 0.9545, axis=0) / 2.0
    return [float(v) if np.isfinite(v) else 1.0 for v in np.clip(q, 0.1, 1e3)]


_FORKED: dict[str, Any] = {}  # what the forked member processes inherit (copy-on-write)


def _fit_forked(i: int):
    import torch

    f = _FORKED
    torch.set_num_threads(f["threads"])
    history, best = _fit_member(f["models"][i], f["train"], f["val"], f["cfg"], f["scaler"], f["seed"] * 100 + i,
                                f["cfg"]["epochs"], False, i)
    return i, f["models"][i].state_dict(), history, best


def _fit_members(models: list, train: list, val: list, cfg: dict, scaler, seed: int, progress, device,
                 workers: int | None) -> tuple[list, list]:
    """Trains every member in place; returns their histories and best validation MAPEs.
    With ``workers`` > 1 on the CPU, that many train at once, each in a process of its
    own (forked, so the prepared graphs are shared, not copied) on one thread.  A
    member's result does not depend on where it ran: it is seeded by its index alone,
    so the weights are those of training one after the other."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed
    from concurrent.futures.process import BrokenProcessPool

    workers = min(int(workers or 1), len(models))
    parallel = workers > 1 and device.type == "cpu" and sys.platform.startswith("linux")
    if not parallel:
        results = [_fit_member(m, train, val, cfg, scaler, seed * 100 + i, cfg["epochs"], progress, i, device)
                   for i, m in enumerate(models)]
        return [h for h, _ in results], [b for _, b in results]
    _FORKED.update(models=models, train=train, val=val, cfg=cfg, scaler=scaler, seed=seed,
                   threads=max(1, torch_threads() // workers))
    histories, best_val = [None] * len(models), [None] * len(models)
    bar = _bar(len(models), f"members ({workers} at a time)", progress)
    try:
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) as pool:
            for done in as_completed([pool.submit(_fit_forked, i) for i in range(len(models))]):
                i, state, history, best = done.result()
                models[i].load_state_dict(state)
                models[i].eval()
                histories[i], best_val[i] = history, best
                bar.update(1)
    except BrokenProcessPool:
        raise HwnasError("a process training an ensemble member died (out of memory?); "
                         "train with fewer workers") from None
    finally:
        _FORKED.clear()
        bar.close()
    return histories, best_val


def train_predictor(
    data_dirs: Sequence[str | os.PathLike],
    out: str | os.PathLike | None = None,
    *,
    config: dict[str, Any] | None = None,
    epochs: int | None = None,
    seed: int = 0,
    targets: Sequence[str] | None = None,
    spaces: Sequence[str] | None = None,
    test_spaces: Sequence[str] | None = None,
    init: str | os.PathLike | None = None,
    name: str | None = None,
    progress: bool = True,
    split: tuple[Sequence[str], Sequence[str], Sequence[str]] | None = None,
    few_shot: bool = False,
    device: str | None = None,
    host: str | None = None,
    workers: int | None = None,
):
    """Trains (or fine-tunes, with ``init``) a PerfSAGE predictor; saves it to ``out``.

    ``host``: train on the labels one host timed (``cpu_model``, as ``hwnas dataset info``
    lists them; ``"this"``: the host this runs on) where labels name one; a latency is
    the host's, and a mix of hosts teaches two at once.

    ``split`` gives explicit (train, val, test) arch_id lists instead of the 80/10/10
    split; ``test_spaces`` holds whole search spaces out as the test set.

    ``few_shot`` (needs ``init``): for tables of tens to hundreds of measured networks.
    The graph network of ``init`` is kept frozen (what it learnt about operators on
    tens of thousands of labelled graphs) and only the two readout heads are trained:
    the per-operator cost and the graph overhead, 5,700 of the 37,000 weights for four
    labels (``FEW_SHOT`` sets the optimiser; ``config`` overrides it).

    ``device``: where the members train (``cpu``, ``cuda``, ``cuda:N``, ``auto``); the
    predictor returned and saved runs on the CPU either way.

    ``workers``: ensemble members trained at once on the CPU, each in a process of its
    own (default 1: one after the other). The weights are the same either way.

    Returns:
        ``(predictor, report)``; the report holds the test scores, training time and
        the split sizes (it is also in the manifest).
    """
    import torch

    from predictors.graph import FEATURE_VERSION, Normalizer
    from predictors.model import DEFAULT, PerfSAGE
    from predictors.predictor import LabelScaler, Predictor, load_predictor, save_predictor

    started = time.time()
    dev = resolve_device(device)
    if workers is not None and int(workers) < 1:
        raise HwnasError(f"workers must be 1 or more, not {workers}")
    if few_shot and not init:
        raise HwnasError("few-shot training starts from a trained predictor: give --init NAME|PATH")
    base = load_predictor(init) if init else None
    cfg = {**DEFAULT, **(base.manifest["train_config"] if base else {}), **(FEW_SHOT if few_shot else {}),
           **(config or {})}
    if epochs is not None:
        cfg["epochs"] = int(epochs)
    torch.set_num_threads(torch_threads())  # a training process: its own thread count throughout
    if host == "this":
        from predictors.targets.litert import machine

        host = machine()["cpu_model"]
    graphs, names = load_graphs(data_dirs, targets, spaces, host=host, aux=bool(cfg.get("aux_metrics")))
    timings = label_timings(data_dirs, {g.arch_id for g in graphs}, names, host=host)
    if split is not None:  # explicit arch_id lists (benchmarks: N training networks, fixed test set)
        by_id = {g.arch_id: g for g in graphs}
        train, val, test = ([by_id[a] for a in ids if a in by_id] for ids in split)
    else:
        train, val, test = split_by_network(graphs, seed, test_spaces=test_spaces)
    if len(train) < 2:
        raise HwnasError(f"only {len(graphs)} labelled networks: too few to train on")
    normalizer = base.normalizer if base else Normalizer.fit(train)
    if cfg.get("drop_features") and not base:  # an A/B of features on one split
        normalizer.drop(cfg["drop_features"])
    priors = label_priors(names) if cfg.get("priors") else {}
    y_train = np.concatenate([g.y.numpy() / prior_matrix(g.u.numpy(), g.est.numpy(), names, priors) for g in train]).astype(np.float64)
    scaler = LabelScaler.fit(y_train, log=cfg["target_transform"] == "log")
    if priors:  # a ratio's errors weigh what the label's own would: scaled by the label's spread
        spread = LabelScaler.fit(np.concatenate([g.y.numpy() for g in train]).astype(np.float64), scaler.log).std
        scaler.std = np.where([n in priors for n in names], spread, scaler.std)
    # the ratios training saw (the middle 99 %): a prediction's ratio stays in this range,
    # so a graph unlike any in training gets its estimate times a ratio seen, not a guess
    ratio_range = {n: [float(np.nanpercentile(y_train[:, j], 0.5)), float(np.nanpercentile(y_train[:, j], 99.5))]
                   for j, n in enumerate(names) if n in priors}
    p_train, p_val = (_prepare(part, normalizer, scaler, priors, names) for part in (train, val))

    members = []
    for i in range(int(cfg["ensemble"])):
        torch.manual_seed(seed * 100 + i)
        model = PerfSAGE(len(names), cfg)
        if cfg["readout"] == "lse":
            if not scaler.log:
                raise HwnasError('the "lse" readout needs log targets (target_transform "log")')
            model.set_label_scale(scaler.mean, scaler.std, np.log(np.nanmax(y_train, axis=0)))
        if base:  # fine-tune: the trunk from the shipped predictor, a fresh head if labels differ
            state = {k: v for k, v in base.members[i % len(base.members)].state_dict().items()
                     if k in model.state_dict() and model.state_dict()[k].shape == v.shape}
            state = {k: v for k, v in state.items() if not k.startswith("label_")}  # this data's scale
            if base.label_names != names:
                state = {k: v for k, v in state.items() if not k.startswith(("head.", "node_head.2."))}
            model.load_state_dict(state, strict=False)
            if few_shot:  # only the readout heads learn
                for key, param in model.named_parameters():
                    param.requires_grad = key.startswith(TRAINABLE_IN_FEW_SHOT)
        members.append(model)
    histories, best_val = _fit_members(members, p_train, p_val, cfg, scaler, seed, progress, dev, workers)

    manifest: dict[str, Any] = {
        "name": name or (Path(out).name if out else "perfsage"),
        "format": 1,
        "feature_version": FEATURE_VERSION,
        "label_names": names,
        "targets": list(dict.fromkeys(n.split("/", 1)[0] for n in names)),
        "ensemble": len(members),
        "model": {k: cfg[k] for k in members[0].config},
        "train_config": {k: v for k, v in cfg.items()},
        "normalizer": normalizer.to_json(),
        "label_scaler": scaler.to_json(),
        "priors": priors,  # labels learnt as a ratio to an analytic estimate
        "prior_ratio_range": ratio_range,
        "init": str(init) if init else None,
        "few_shot": bool(few_shot),
        # what Predictor.novelty calls unseen: operator types of no training graph
        "op_types": training_op_types(train, base),
        "graph_nodes": training_graph_nodes(train, base),  # and graphs far larger or smaller than theirs
    }
    state = {f"member{i}.{k}": v for i, m in enumerate(members) for k, v in m.state_dict().items()}
    predictor = Predictor(manifest, state)
    raw_test = evaluate_graphs(predictor, test) if test else {}
    manifest["std_scale"] = _std_scale(predictor, val)
    predictor.std_scale = np.asarray(manifest["std_scale"], np.float64)  # what loading the manifest gives
    report = {
        "test": evaluate_graphs(predictor, test),
        "test_within_2std_unscaled": {t: {m: s.get("within_2std") for m, s in ms.items()}
                                      for t, ms in raw_test.items() if t not in ("by_space", "by_regime")},
        "split": {"train": len(train), "val": len(val), "test": len(test)},
        "spaces": sorted({g.space for g in graphs}),
        "test_spaces": list(test_spaces) if test_spaces else None,
        "data": [str(d) for d in data_dirs],
        "best_val_mape": best_val,
        "train_seconds": time.time() - started,
        "threads": torch.get_num_threads(),
        "device": str(dev) if dev.type == "cpu" else f"{dev} ({torch.cuda.get_device_name(dev)})",
        "epochs": cfg["epochs"],
        "history": [h[-1] for h in histories],
        "timings": timings,
        "host": host,
    }
    manifest["training"] = report
    if out:
        save_predictor(out, manifest, members)
    return predictor, report


def few_shot_update(base: Any, graphs: Sequence[Any], *, epochs: int | None = None, seed: int = 0,
                    config: dict[str, Any] | None = None) -> Any:
    """A copy of the trained predictor ``base`` whose readout heads are fitted to a few
    measured graphs, in memory: what a search that measures its candidates learns from
    them (``HardwareObjective(update_every=M)``).

    The few-shot recipe of :func:`train_predictor` (frozen graph network, ``FEW_SHOT``'s
    optimiser), except that the base's normaliser and label scale are kept, so the copy
    starts out predicting exactly what ``base`` predicts and only moves as far as the
    measurements pull it. Every member keeps the epoch with the lowest error on the
    measurements themselves: tens of graphs leave nothing to hold out.

    ``graphs``: :class:`torch_geometric.data.Data` with ``y`` ``[1, len(base.label_names)]``
    (NaN where a metric was not measured).
    """
    import torch

    from predictors.predictor import Predictor

    cfg = {**base.manifest["train_config"], **FEW_SHOT, **(config or {})}
    if epochs is not None:
        cfg["epochs"] = int(epochs)
    labelled = [g for g in graphs if bool(torch.isfinite(g.y).any())]
    if len(labelled) < 2:
        raise HwnasError(f"a few-shot update needs at least 2 measured graphs, got {len(labelled)}")
    prepared = _prepare(labelled, base.normalizer, base.scaler)
    members, fits = [], []
    for i, source in enumerate(base.members):
        model = copy.deepcopy(source)
        for key, param in model.named_parameters():
            param.requires_grad = key.startswith(TRAINABLE_IN_FEW_SHOT)
        _, best = _fit_member(model, prepared, prepared, cfg, base.scaler, seed * 100 + i, cfg["epochs"], False, i)
        members.append(model)
        fits.append(best)
    manifest = copy.deepcopy(base.manifest)
    manifest.update(init=base.name, few_shot=True)
    manifest["update"] = {"graphs": len(labelled), "epochs": cfg["epochs"], "fit_mape": fits}
    state = {f"member{i}.{k}": v for i, m in enumerate(members) for k, v in m.state_dict().items()}
    return Predictor(manifest, state)


def training_op_types(train: list, base: Any = None) -> list[int]:
    """The operator types of the training graphs (and of a few-shot base's training)."""
    seen = set(int(t) for g in train for t in g.op_type.tolist())
    if base is not None and base.op_types_seen is not None:
        seen |= base.op_types_seen
    return sorted(seen)


def training_graph_nodes(train: list, base: Any = None) -> list[int]:
    """The fewest and the most operators (nodes) of a training graph (and of a few-shot base's)."""
    sizes = [int(g.num_nodes) for g in train]
    if base is not None and base.graph_nodes_seen is not None:
        sizes += list(base.graph_nodes_seen)
    return [min(sizes), max(sizes)]


def _bar(total: int, desc: str, enabled: bool):
    from predictors.dataset.builder import _NoBar

    if not enabled:
        return _NoBar()
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="epoch", file=sys.stderr, dynamic_ncols=True, leave=False)
