"""The lowering against the converter: every committed network, and fresh exports.

    python benchmarks/lowering.py [--data data/edgedlperf] [--limit N] [--fresh 20]

For every stored network of ``--data`` (or the first ``--limit`` of each space), the
lowered graph (``predictors.graph.arch_arrays``: the arch through the space's own
build code on the Keras stand-in, no TensorFlow) against the graph of the file the
converter wrote (``graph_arrays`` of the stored flatbuffer):

- structure: operators, types, edges identical, every feature column equal
  (relative 1e-6) except ``model_bytes``;
- ``model_bytes``: the lowering's size (the converter's writer's layout, computed) against
  the file's, and how many are the same to the byte;
- predictions of the shipped predictors from both graphs (largest relative
  difference over every metric);
- fallbacks: archs the lowering refused (``LoweringError``).

nasbench201 and fbnet have no committed networks: ``--fresh N`` samples N archs of
each (both NB201 ``zero_edges`` modes), exports them with TensorFlow and compares the
same way.
"""
from __future__ import annotations

import argparse
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

SPACES = ["keyword_spotting", "image_classification", "object_detection", "super_resolution", "generic"]
FRESH = (("nasbench201", {}), ("nasbench201", {"zero_edges": "compute"}), ("fbnet", {}))


def _fresh_key(name: str, options: dict) -> str:
    return name + (" (zero_edges=compute)" if options else "") + " [fresh exports]"


def compare(real: dict, low: dict) -> str | None:
    """None when the graphs are the same but for model_bytes, else what differs first."""
    from predictors.graph import GRAPH_FEATURES, NODE_FEATURES

    if real["x"].shape != low["x"].shape:
        return f"operators {real['x'].shape[0]} vs {low['x'].shape[0]}"
    if not np.array_equal(real["op_type"], low["op_type"]):
        return "operator types"
    if not np.array_equal(real["edge_index"], low["edge_index"]):
        return "edges"
    close = np.isclose(real["x"], low["x"], rtol=1e-6, atol=1e-9)
    if not close.all():
        r, c = np.argwhere(~close)[0]
        return f"node feature {NODE_FEATURES[c]}"
    if not np.allclose(real["edge_attr"], low["edge_attr"], rtol=1e-6):
        return "edge bytes"
    mb = GRAPH_FEATURES.index("model_bytes")
    a, b = real["u"].copy(), low["u"].copy()
    a[0, mb] = b[0, mb] = 0.0
    if not np.allclose(a, b, rtol=1e-6):
        return f"graph feature {GRAPH_FEATURES[int(np.argmax(~np.isclose(a, b, rtol=1e-6)))]}"
    return None


def prediction_gap(predictors, real: dict, low: dict) -> float:
    """Largest relative difference of any predicted metric, lowered vs exported graph."""
    gap = 0.0
    for p in predictors:
        a, b = p.predict_arrays([real])[0], p.predict_arrays([low])[0]
        for t in a:
            for m, v in a[t].items():
                if not m.endswith("_std") and v:
                    gap = max(gap, abs(b[t][m] / v - 1))
    return gap


def stored_rows(data: Path, limit: int | None):
    from predictors.dataset import DatasetStore

    with DatasetStore(data) as store:
        sizes = {r["arch_id"]: r["tflite_bytes"] for r in store.network_rows()}
        for space in SPACES:
            rows = (row for row in store.rows([space]) if row["quantize"] == "int8")  # the lowering's regime
            for i, row in enumerate(rows):
                if limit is not None and i >= limit:
                    break
                yield space, row, sizes[row["arch_id"]]


def check(args, predictors) -> dict:
    import search_spaces
    from predictors.graph import GRAPH_FEATURES, arch_arrays, graph_arrays
    from predictors.graph._lowered import LoweringError

    mb = GRAPH_FEATURES.index("model_bytes")
    stats: dict = defaultdict(lambda: {"n": 0, "equal": 0, "fallback": 0, "diff": defaultdict(int),
                                       "size": [], "exact": 0, "gap": [], "lower_s": []})

    def one(key: str, space, arch, real: dict, size: int) -> None:
        s = stats[key]
        s["n"] += 1
        t0 = time.perf_counter()
        try:
            low = arch_arrays(space, arch)
        except LoweringError as exc:
            s["fallback"] += 1
            s["diff"][f"refused: {str(exc)[:60]}"] += 1
            return
        s["lower_s"].append(time.perf_counter() - t0)
        why = compare(real, low)
        if why:
            s["diff"][why] += 1
            return
        s["equal"] += 1
        s["size"].append(low["u"][0, mb] / size - 1)
        s["exact"] += int(round(low["u"][0, mb])) == size
        if predictors:
            s["gap"].append(prediction_gap(predictors, real, low))

    for space_name, row, size in stored_rows(args.data, args.limit):
        space, arch = search_spaces.from_encoded(row["arch"])
        one(space_name, space, arch, graph_arrays(row["tflite"]), size)
    if args.fresh:
        from hwnas.export import to_tflite

        for name, options in FRESH:
            space = search_spaces.get(name, **options)
            key = _fresh_key(name, options)
            for i in range(args.fresh):
                arch = space.sample(np.random.default_rng([2026, i]))
                tflite = to_tflite(space.build(arch, seed=i), quantize="int8", seed=i)
                one(key, space, arch, graph_arrays(tflite), len(tflite))
    return stats


def report(stats: dict) -> None:
    from hwnas.cli import format_table

    rows = []
    for key, s in stats.items():
        size = np.abs(np.array(s["size"])) * 100 if s["size"] else np.array([np.nan])
        gap = np.array(s["gap"]) * 100 if s["gap"] else np.array([np.nan])
        rows.append((key, s["n"], f"{s['equal']} ({100 * s['equal'] / max(s['n'], 1):.1f} %)", s["fallback"],
                     f"{s['exact']}", f"{np.median(size):.4f} / {np.percentile(size, 95):.4f} / {size.max():.4f}",
                     f"{np.median(gap):.3f} / {np.percentile(gap, 95):.3f} / {gap.max():.3f}",
                     f"{int((size <= 1.0).sum())} / {int((gap <= 0.1).sum())}" if s["gap"] else f"{int((size <= 1.0).sum())} / -",
                     f"{1000 * np.median(s['lower_s']):.2f}" if s["lower_s"] else ""))
    print(format_table(rows, ("space", "networks", "graph identical", "refused",
                              "size to the byte", "model size error % (median / p95 / max)",
                              "prediction gap % (median / p95 / max)",
                              "size within 1 % / gap within 0.1 %", "lowering ms (median)")))
    for key, s in stats.items():
        for why, n in s["diff"].items():
            print(f"  {key}: {n} x {why}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path("data/edgedlperf"))
    ap.add_argument("--limit", type=int, default=None, help="stored networks per space (default: all)")
    ap.add_argument("--fresh", type=int, default=20, help="fresh exports per NB201 mode and FBNet (0: none)")
    ap.add_argument("--no-predict", action="store_true", help="skip the prediction comparison")
    args = ap.parse_args(argv)
    predictors = []
    if not args.no_predict:
        from predictors import load_predictor, list_predictors

        predictors = [load_predictor(n) for n in list_predictors()]
    started = time.perf_counter()
    stats = check(args, predictors)
    report(stats)
    print(f"({time.perf_counter() - started:.0f} s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
