"""The core of hwnas: TFLite graphs, hardware targets, datasets and PerfSAGE predictors."""
from __future__ import annotations

from search_spaces.errors import (
    HwnasError,
    InvalidModelError,
    TargetError,
    UnknownNameError,
    UnsupportedModelError,
)

__all__ = [
    "HwnasError",
    "InvalidModelError",
    "TargetError",
    "UnknownNameError",
    "UnsupportedModelError",
    "list_predictors",
    "load_predictor",
]


def __getattr__(name: str):
    # the predictor registry imports torch: only when asked for
    if name in ("load_predictor", "list_predictors", "Predictor"):
        from predictors import predictor

        return getattr(predictor, name)
    raise AttributeError(name)
