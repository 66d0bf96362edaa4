"""What ``hwnas graph`` prints: counts, operator histogram, totals."""
from __future__ import annotations

from collections import Counter
from typing import Any

from predictors.graph._extract import extract_arrays, resolve_runtime_shapes
from predictors.graph._features import ESTIMATES, FEATURE_VERSION, GRAPH_FEATURES, NODE_FEATURES
from predictors.tflite_model import ModelSource, load_model


def summarize(source: ModelSource) -> dict[str, Any]:
    """A JSON-safe summary of a model's graph (no torch needed)."""
    data, info = load_model(source, with_options=True)
    resolve_runtime_shapes(data, info)
    arrays = extract_arrays(info)
    u = arrays["u"][0]
    histogram = Counter(op.opcode for op in info.operators)
    return {
        "nodes": int(len(arrays["op_type"])),  # the predictor's nodes: weight conversions folded
        "file_operators": len(info.operators),
        "edges": int(arrays["edge_index"].shape[1]),
        "subgraphs": info.num_subgraphs,
        "operators_per_subgraph": list(info.operators_per_subgraph),
        "operators": dict(sorted(histogram.items(), key=lambda kv: (-kv[1], kv[0]))),
        "totals": {name: float(u[i]) for i, name in enumerate(GRAPH_FEATURES)},
        "estimates": {name: float(arrays["est"][0, i]) for i, name in enumerate(ESTIMATES)},
        "node_feature_dim": len(NODE_FEATURES),
        "graph_feature_dim": len(GRAPH_FEATURES),
        "feature_version": FEATURE_VERSION,
        # "file", "run time" (LiteRT's, for shapes the file leaves open) or "placeholders: <why>"
        "shapes": info.shapes_from or "file",
    }
