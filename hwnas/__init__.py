"""hwnas: hardware-aware neural architecture search as an Optuna plugin."""
from __future__ import annotations

from search_spaces.errors import (
    ExportError,
    HwnasError,
    InvalidModelError,
    TargetError,
    UnknownNameError,
    UnsupportedModelError,
)

__version__ = "0.1.0"

__all__ = [
    "ExportError",
    "HwnasError",
    "InvalidModelError",
    "TargetError",
    "UnknownNameError",
    "UnsupportedModelError",
    "__version__",
]
