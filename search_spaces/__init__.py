"""Search spaces: Optuna trials build candidate Keras networks.

Only Keras here (imported lazily); ``predictors`` and ``hwnas`` build on this layer.
"""
from __future__ import annotations

from search_spaces._quiet import import_keras, import_tensorflow
from search_spaces.errors import HwnasError

__all__ = ["HwnasError", "import_keras", "import_tensorflow"]
