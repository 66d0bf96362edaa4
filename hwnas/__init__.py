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

from hwnas.search import (
    Budget,
    Candidate,
    HardwareObjective,
    NoFeasibleCandidateError,
    Objective,
    SearchError,
    TargetOracle,
    accuracy_from_table,
    best_candidates,
    make_study,
    plot_search,
    run_search,
)

__version__ = "0.1.0"

__all__ = [
    "Budget",
    "Candidate",
    "ExportError",
    "HardwareObjective",
    "NoFeasibleCandidateError",
    "Objective",
    "SearchError",
    "TargetOracle",
    "accuracy_from_table",
    "best_candidates",
    "make_study",
    "plot_search",
    "run_search",
    "HwnasError",
    "InvalidModelError",
    "TargetError",
    "UnknownNameError",
    "UnsupportedModelError",
    "__version__",
]
