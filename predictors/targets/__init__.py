"""Hardware targets that produce ground-truth labels (see DESIGN.md).

``get(name).measure(tflite_bytes) -> {metric: value, ...}``; ``names()`` lists them.
Heavy tools (Vela, LiteRT) are imported only when a measurement runs.
"""
from __future__ import annotations

from predictors.targets._base import Target, get, list_targets, names, register_target
from predictors.targets.ethos_u import EthosUTarget, energy_mj
from predictors.targets.litert import LiteRTCPUTarget

__all__ = [
    "EthosUTarget",
    "LiteRTCPUTarget",
    "Target",
    "energy_mj",
    "get",
    "list_targets",
    "names",
    "register_target",
]
