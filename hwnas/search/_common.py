"""Part of :mod:`hwnas.search` (see there)."""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Sequence

from search_spaces.errors import HwnasError, UnknownNameError

if TYPE_CHECKING:  # pragma: no cover
    import keras

    from search_spaces import SearchSpace

SAMPLERS = ("tpe", "nsga2", "gp", "random")
METRIC_ALIASES = {"latency": ("latency_ms",), "energy": ("energy_mj",), "memory": ("sram_kib", "arena_kib")}
STUDY_ATTR = "hwnas"
VERIFY_MODES = ("none", "uncertain", "best")


class SearchError(HwnasError, ValueError):
    """A search set up with something it cannot use (objective, budget, storage, sampler)."""


class NoFeasibleCandidateError(SearchError):
    """No candidate met the budgets within the allowed number of trials."""


class CandidateError(HwnasError, RuntimeError):
    """One candidate could not be exported or predicted; its trial fails, the search goes on."""



# --------------------------------------------------------------------------- pieces


# one message wherever the accuracy objective is asked for without a source of accuracies
ACCURACY_NEEDED = (
    "the accuracy objective needs measured accuracies: a table (hwnas search --accuracy-csv FILE "
    "[--accuracy-column C], e.g. NATS-Bench for nasbench201) or, in Python, "
    "HardwareObjective(accuracy=fn) with a function that trains the candidate on your data"
)


@dataclass(frozen=True)
class Budget:
    """An upper bound on one predicted metric of the target (``latency_ms <= 0.5``)."""

    metric: str
    limit: float

    def __post_init__(self) -> None:
        if not isinstance(self.limit, (int, float)) or not math.isfinite(self.limit) or self.limit <= 0:
            raise SearchError(f"the budget for {self.metric} must be a positive number, got {self.limit!r}")


class Candidate:
    """One network of a trial, as an objective function sees it.

    Attributes:
        space: the search space.
        arch: the arch dict (``space.decode`` form).
        arch_id: its stable id.
        trial: the Optuna trial (report intermediate values, ``should_prune``).
        tflite: the int8 ``.tflite`` bytes of the arch (exported on first use: a trial
            predicts from the lowered graph and exports only what it keeps or measures).
        predicted: ``{metric: value, "<metric>_std": std}`` for the target (measured
            values, std 0, where the candidate was verified on the target).
        macs: multiply-accumulates of the graph.
    """

    def __init__(self, space: "SearchSpace", arch: dict, arch_id: str, trial: Any, tflite: bytes | None,
                 predicted: dict[str, float], macs: float, seed: int = 0,
                 exporter: Callable[[], bytes] | None = None):
        self.space, self.arch, self.arch_id, self.trial = space, arch, arch_id, trial
        self._tflite, self._exporter = tflite, exporter
        self.predicted, self.macs, self.seed = predicted, macs, seed

    @property
    def tflite(self) -> bytes:
        if self._tflite is None:
            if self._exporter is None:
                raise SearchError(f"candidate {self.arch_id} has no exported file and no way to export one")
            self._tflite = self._exporter()
        return self._tflite

    @property
    def exported(self) -> bool:
        """Whether the ``.tflite`` file exists yet (without exporting it)."""
        return self._tflite is not None

    def build(self, **kwargs: Any) -> "keras.Model":
        """The Keras model of this arch (``space.build``); ``batch_size=None`` to train it."""
        kwargs.setdefault("seed", self.seed)
        return self.space.build(self.arch, **kwargs)

    @property
    def params(self) -> int:
        """Parameters of the Keras model (trainable and not)."""
        return int(self.build().count_params())


@dataclass
class Objective:
    """One value a study optimises.

    Attributes:
        name: shown in tables and stored as the study's metric name.
        direction: ``"minimize"`` or ``"maximize"``.
        fn: ``fn(candidate) -> float``.
        infeasible_value: the value an over-budget candidate gets when it is completed
            rather than pruned (NSGA-II, GPSampler); ``None`` computes ``fn`` (cheap
            objectives such as predicted metrics and MACs).
        trains: whether ``fn`` is expensive (training): never called over budget.
    """

    name: str
    direction: str
    fn: Callable[[Candidate], float]
    infeasible_value: float | None = None
    trains: bool = False

    def __post_init__(self) -> None:
        if self.direction not in ("minimize", "maximize"):
            raise SearchError(f"objective {self.name!r}: direction must be 'minimize' or 'maximize'")
        if self.trains and self.infeasible_value is None:
            self.infeasible_value = 0.0 if self.direction == "maximize" else float(1e300)


def resolve_metric(name: str, metrics: Sequence[str], target: str) -> str:
    """A metric name or alias (``latency``, ``energy``, ``memory``) -> the target's metric."""
    if name in metrics:
        return name
    for candidate in METRIC_ALIASES.get(name, ()):
        if candidate in metrics:
            return candidate
    raise UnknownNameError(f"target {target!r} has no metric {name!r}; its metrics: {', '.join(metrics)}")


def accuracy_from_table(
    path: str | os.PathLike, space: "SearchSpace", column: str | None = None, arch_column: str | None = None
) -> Callable[[Candidate], float]:
    """An accuracy objective read from a CSV table (e.g. NATS-Bench's accuracies for nasbench201).

    Each row's architecture (in any form ``space.decode`` takes, e.g. NB201 strings) is
    matched to candidates by ``arch_id``. A candidate missing from the table prunes its
    trial (``user_attrs["status"]``).

    Args:
        column: the accuracy column; default: the only column whose name contains "acc".
        arch_column: default: the first of ArchitectureString, arch_str, arch present.

    Raises:
        SearchError: unreadable file, unknown columns, no row that decodes.
    """
    import csv

    try:
        with open(path, newline="") as f:
            reader = csv.DictReader(f)
            header = list(reader.fieldnames or [])
            rows = list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise SearchError(f"cannot read the accuracy table {path}: {exc}") from None
    if arch_column is None:
        arch_column = next((c for c in ("ArchitectureString", "arch_str", "arch") if c in header), None)
        if arch_column is None:
            raise SearchError(f"{path}: no architecture column found (columns: {', '.join(header)}); "
                              "choose one with --arch-column")
    elif arch_column not in header:
        raise SearchError(f"{path}: no column {arch_column!r}; columns: {', '.join(header)}")
    if column is None:
        accs = [c for c in header if "acc" in c.lower()]
        if len(accs) != 1:
            raise SearchError(f"{path}: choose the accuracy column with --accuracy-column "
                              f"({'candidates: ' + ', '.join(accs) if accs else 'columns: ' + ', '.join(header)})")
        column = accs[0]
    elif column not in header:
        raise SearchError(f"{path}: no column {column!r}; columns: {', '.join(header)}")
    table: dict[str, float] = {}
    for row in rows:
        try:
            value = float(row[column])
            arch = space.decode(row[arch_column])
        except (TypeError, ValueError, HwnasError):
            continue
        if math.isfinite(value):
            table[space.arch_id(arch)] = value
    if not table:
        raise SearchError(f"{path}: no row has a {space.name} arch in {arch_column!r} and a number in {column!r}")

    def accuracy(candidate: Candidate) -> float:
        import optuna

        try:
            return table[candidate.arch_id]
        except KeyError:
            candidate.trial.set_user_attr("status", "pruned: not in the accuracy table")
            raise optuna.TrialPruned(f"{candidate.arch_id} is not in {path}") from None

    accuracy.table = table  # type: ignore[attr-defined]
    accuracy.column = column  # type: ignore[attr-defined]
    return accuracy


class TargetOracle:
    """The ground truth of a target in the predictor interface (std 0): search on measurements.

    ``HardwareObjective(space, target, predictor=TargetOracle(target))`` drives the same
    search with Vela (or LiteRT) labels instead of PerfSAGE predictions.
    """

    def __init__(self, target: str):
        from predictors import targets

        self._target = targets.get(target)
        self.name = f"measured-{target}"
        self.targets = [self._target.name]
        self.metrics = {self._target.name: list(self._target.metrics)}
        self.calls = 0

    def predict(self, tflite: Any, targets: Sequence[str] | None = None) -> dict:
        self.calls += 1
        result = self._target.measure(tflite)
        out: dict[str, float] = {}
        for metric in self._target.metrics:
            out[metric] = float(result[metric])
            out[f"{metric}_std"] = 0.0
        return {self._target.name: out}


