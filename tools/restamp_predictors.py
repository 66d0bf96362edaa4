"""Carry the shipped predictors over to a new FEATURE_VERSION whose features are unchanged
on their training data, instead of retraining them to the same weights.

    python tools/restamp_predictors.py [--data data/edgedlperf] [NAME | DIR ...]

A new extractor version (an operator it now folds, a MAC rule for an operator the
spaces do not use) can leave every committed graph's features as they were. Then the
predictors trained on them are what retraining would give again, and this proves it
before writing anything: for each predictor it rebuilds the training split the way
``hwnas train`` made it (``split_by_network``, seed 0, the predictor's targets), checks
its size against the manifest, refits the normaliser on it with this extractor and
requires every scaling statistic to equal the shipped one. Only then does it write the
new feature version (and the training graphs' operator types, ``op_types``) into the
manifest; the weights are not touched. A predictor that fails the check must be
retrained (benchmarks/predictor_accuracy.py ... --save-dir predictors/pretrained).

``--keep-scaling`` stamps a predictor whose features did change, keeping its shipped
normaliser (the scale its weights were trained on) and naming the columns that moved:
for a change that leaves what a target's predictor needs nearly untouched (a CPU-only
rule), to be judged by scoring it before and after on the same split
(benchmarks/compare_predictors.py, the old one from a checkout of the old version).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from predictors.graph import FEATURE_VERSION, Normalizer
from predictors.predictor import MANIFEST, PRETRAINED_DIR, list_predictors
from predictors.train import load_graphs, split_by_network, training_op_types


def same_scaling(fitted: dict, shipped: dict) -> str | None:
    for part in ("node", "edge", "graph"):
        for key in ("log", "mean", "std"):
            a, b = np.asarray(fitted[part][key], np.float64), np.asarray(shipped[part][key], np.float64)
            if a.shape != b.shape or not np.array_equal(a, b):
                worst = np.flatnonzero(a != b)[:3] if a.shape == b.shape else "shape"
                return f"normaliser {part}.{key} differs (columns {worst})"
    return None


def moved_columns(fitted: dict, shipped: dict) -> list[str]:
    from predictors.graph import GRAPH_FEATURES, NODE_FEATURES

    names = {"node": NODE_FEATURES, "graph": GRAPH_FEATURES}
    moved = []
    for part, columns in names.items():
        a, b = np.asarray(fitted[part]["mean"], np.float64), np.asarray(shipped[part]["mean"], np.float64)
        for i in np.flatnonzero(~np.isclose(a, b, rtol=1e-9, atol=0.0)):
            moved.append(f"{part}.{columns[i] if i < len(columns) else i} {b[i]:.4g} -> {a[i]:.4g}")
    return moved


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="shipped predictors' names or predictor folders "
                        "(default: every shipped predictor)")
    parser.add_argument("--data", default="data/edgedlperf")
    parser.add_argument("--keep-scaling", action="store_true",
                        help="stamp a predictor whose features changed, keeping its normaliser (then score it)")
    args = parser.parse_args(argv)
    failed = 0
    for name in args.names or list_predictors():
        path = (Path(name) if Path(name).is_dir() else PRETRAINED_DIR / name) / MANIFEST
        manifest = json.loads(path.read_text())
        if manifest["feature_version"] == FEATURE_VERSION:
            print(f"{name}: already {FEATURE_VERSION}")
            continue
        report = manifest["training"]
        graphs, names = load_graphs([args.data], manifest["targets"], host=report.get("host"),  # as hwnas
                                    aux=manifest["train_config"].get("aux_metrics", False))  # train did
        if names != manifest["label_names"]:
            print(f"{name}: labels {names} != {manifest['label_names']}: retrain it")
            failed += 1
            continue
        train, _, _ = split_by_network(graphs, 0, test_spaces=report.get("test_spaces"))
        if len(train) != report["split"]["train"]:
            print(f"{name}: {len(train)} training graphs, the manifest says {report['split']['train']}: retrain it")
            failed += 1
            continue
        refit = Normalizer.fit(train).to_json()
        problem = same_scaling(refit, manifest["normalizer"])
        if problem and not args.keep_scaling:
            print(f"{name}: {problem} on its {len(train)} training graphs: the features changed, retrain it")
            failed += 1
            continue
        if problem:
            print(f"{name}: features changed, shipped scaling kept; columns whose training mean moved: "
                  f"{moved_columns(refit, manifest['normalizer'])}")
        old = manifest["feature_version"]
        manifest["feature_version"] = manifest["normalizer"]["feature_version"] = FEATURE_VERSION
        manifest["op_types"] = training_op_types(train)
        path.write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
        how = "kept" if problem else f"refit on its {len(train)} training graphs equals the shipped one"
        print(f"{name}: {old} -> {FEATURE_VERSION}: the normaliser {how}; {len(manifest['op_types'])} operator types")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
