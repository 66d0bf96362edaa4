"""The hardware-target interface and its registry (timm-style)."""
from __future__ import annotations

import fnmatch
from abc import ABC, abstractmethod
from typing import Any, Callable

from search_spaces.errors import unknown_name

from predictors.tflite_model import ModelSource


class Target(ABC):
    """A hardware platform that labels TFLite models with measured metrics.

    Subclasses set ``name`` and ``metrics`` and implement :meth:`measure`.
    """

    name: str
    metrics: tuple[str, ...]
    # counts a measurement records beside the metrics that a predictor may learn as well
    # (``train_config["aux_metrics"]``): more to learn from per network, not more to report
    aux_metrics: tuple[str, ...] = ()
    # the metrics that belong to the machine that measured them (a latency); the others
    # (a memory footprint, a size) are the model's wherever they were measured
    timed_metrics: tuple[str, ...] = ()
    # an analytic estimate of a metric (``train_config["priors"]``): metric -> (graph
    # features or ESTIMATES summed, factor to the metric's unit[, cap in that unit or
    # None]); a predictor then
    # learns the measured value's ratio to it
    priors: dict[str, tuple] = {}
    description: str = ""

    @abstractmethod
    def measure(self, tflite: ModelSource) -> dict[str, Any]:
        """Labels one model.

        Args:
            tflite: the flatbuffer bytes (or a path to a ``.tflite`` file).

        Returns:
            ``{metric: value}`` for every name in :attr:`metrics`, plus extra
            provenance keys (tool versions, operator counts, machine, spread).

        Raises:
            InvalidModelError: the input is not a valid TFLite model.
            UnsupportedModelError: a valid model this target cannot label.
            TargetError: the tool itself failed on the model.
        """

    def refusal(self, model: Any) -> str | None:
        """Why this target cannot run a model, before any tool sees it; None if it may.

        ``model`` is a :class:`~predictors.tflite_model.ModelInfo`. A predictor of this
        target refuses to predict what this refuses to measure, with the same words.
        """
        return None

    def settings(self) -> dict[str, Any]:
        """How this target measures (recorded with every label)."""
        return {}

    def stale(self, metrics: dict[str, Any]) -> bool:
        """Whether a stored label was measured another way than this target measures now.

        The dataset builder measures a stale label again (the new label replaces it).
        """
        return False

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "metrics": list(self.metrics),
            "description": self.description,
            "settings": self.settings(),
        }

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


_REGISTRY: dict[str, Callable[[], Target]] = {}


def register_target(name: str, factory: Callable[[], Target]) -> None:
    """Registers a factory under ``name`` (later registrations replace earlier ones)."""
    _REGISTRY[name] = factory


def names() -> list[str]:
    """The registered target names, sorted."""
    return sorted(_REGISTRY)


def list_targets(pattern: str = "*") -> list[str]:
    """The registered names matching a shell-style ``pattern``."""
    return [n for n in names() if fnmatch.fnmatchcase(n, pattern)]


def get(name: str) -> Target:
    """Builds the target registered as ``name``.

    Raises:
        UnknownNameError: no target has that name.
    """
    try:
        factory = _REGISTRY[name]
    except KeyError:
        raise unknown_name("target", name, names()) from None
    return factory()
