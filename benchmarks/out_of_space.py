"""Predictors on a space none of them trained on, per target, metric and family.

    python benchmarks/out_of_space.py [--data data/edgedlperf] [--space breadth]
        [--predictor NAME|PATH]...

Scores each predictor (default: the shipped ones) on every labelled network of
``--space`` (a space its manifest does not list among its training spaces, or the
script says so): MAPE, the share within 10 %, the worst ratio of prediction to truth
(either way), and per ``family`` (the arch field) where the space has one.
"""
from __future__ import annotations

import argparse
import collections

import numpy as np

from hwnas.cli import format_table
from predictors.dataset import DatasetStore
from predictors.predictor import list_predictors, load_predictor
from predictors.train import load_graphs
from search_spaces.errors import HwnasError


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="data/edgedlperf")
    parser.add_argument("--space", default="breadth")
    parser.add_argument("--predictor", action="append")
    args = parser.parse_args()
    with DatasetStore(args.data) as store:
        family = {r["arch_id"]: r["arch"].get("family", "-") for r in store.network_rows(args.space, "ok")}
    rows = []
    for name in args.predictor or list_predictors():
        p = load_predictor(name)
        trained_on = p.manifest.get("training", {}).get("spaces") or []
        note = " (trained on it!)" if args.space in trained_on else ""
        for target in p.targets:
            try:
                graphs, _ = load_graphs([args.data], [target], [args.space])
            except HwnasError:  # no labels of this target in the space
                continue
            graphs = [g for g in graphs if getattr(g, "quantize", "int8") == "int8"]
            if not graphs:
                continue
            mean, _ = p.predict_graphs(graphs)
            y = np.concatenate([g.y.numpy() for g in graphs]).astype(np.float64)
            fam = np.array([family.get(g.arch_id, "-") for g in graphs])
            for i, label in enumerate(p.label_names):
                metric = label.split("/", 1)[1]
                ok = np.isfinite(y[:, i]) & (y[:, i] > 0)
                for group in ["all", *sorted(set(fam[ok]))]:
                    k = ok & ((fam == group) if group != "all" else True)
                    rel = np.abs(mean[k, i] - y[k, i]) / y[k, i]
                    ratio = np.maximum(mean[k, i] / y[k, i], y[k, i] / np.maximum(mean[k, i], 1e-12))
                    rows.append((target + note, metric, group, int(k.sum()), f"{100 * rel.mean():.1f}",
                                 f"{100 * (rel <= 0.1).mean():.0f}", f"{ratio.max():.2f}x"))
    if not rows:
        raise SystemExit(f"out_of_space: no labelled {args.space!r} networks in {args.data} for these predictors")
    print(f"{args.space} networks in {args.data}, int8, predicted by predictors that never trained on them")
    print(format_table(rows, ("target", "metric", "family", "n", "MAPE %", "within 10 %", "worst ratio")))


if __name__ == "__main__":
    main()
