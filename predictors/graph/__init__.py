"""TFLite flatbuffer -> PyTorch Geometric graph: the one input path of PerfSAGE.

``from_tflite(path_or_bytes) -> Data``, and ``from_arch(space, arch) -> Data`` the same
graph from a search space's arch without Keras or the converter (the lowering); the
feature layout is in ``NODE_FEATURES``
and ``GRAPH_FEATURES``, analytic estimates beside them in ``ESTIMATES``, all versioned by
``FEATURE_VERSION``; ``Normalizer`` scales
features fitted on training graphs; ``summarize`` backs ``hwnas graph``.
"""
from __future__ import annotations

from predictors.graph._extract import extract_arrays, from_tflite, graph_arrays, to_data
from predictors.graph._lowered import arch_arrays, from_arch, lower
from predictors.graph._features import (
    ESTIMATES,
    FEATURE_VERSION,
    GRAPH_FEATURES,
    NODE_FEATURES,
    NUM_OP_TYPES,
    OPTION_FIELDS,
    UNKNOWN_OP_TYPE,
)
from predictors.graph._summary import summarize
from predictors.graph.normalizer import Normalizer

__all__ = [
    "ESTIMATES",
    "FEATURE_VERSION",
    "GRAPH_FEATURES",
    "NODE_FEATURES",
    "NUM_OP_TYPES",
    "OPTION_FIELDS",
    "UNKNOWN_OP_TYPE",
    "Normalizer",
    "arch_arrays",
    "extract_arrays",
    "from_arch",
    "from_tflite",
    "graph_arrays",
    "lower",
    "summarize",
    "to_data",
]
