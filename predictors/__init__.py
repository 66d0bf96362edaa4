"""The core of hwnas: TFLite graphs, hardware targets, datasets and PerfSAGE predictors."""
from __future__ import annotations

from search_spaces.errors import (
    HwnasError,
    InvalidModelError,
    TargetError,
    UnknownNameError,
    UnsupportedModelError,
)

__all__ = ["HwnasError", "InvalidModelError", "TargetError", "UnknownNameError", "UnsupportedModelError"]
