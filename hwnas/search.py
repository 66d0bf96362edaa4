"""Optuna machinery for hardware-aware search: budgets as constraints, predictions as objectives.

```
import optuna
from hwnas.search import HardwareObjective, make_study, run_search

objective = HardwareObjective(
    "keyword_spotting", "ethos-u55-128",            # space, target (predictor: perfsage-<target>)
    budgets={"latency_ms": 0.5},                    # predicted latency <= 0.5 ms, else no training
    objectives=["accuracy", "energy"],              # maximise accuracy, minimise predicted energy
    accuracy=lambda candidate: train_and_score(candidate.build(batch_size=None)),
)
study = make_study(objective, storage="sqlite:///search.db", sampler="nsga2")
run_search(study, objective, n_trials=100)
study.best_trials                                   # the feasible Pareto front
```

Per trial, :class:`HardwareObjective`:

1. asks the search space for an arch (``space.suggest(trial)``, define-by-run);
2. builds it, exports it to int8 TFLite and predicts the target's metrics (mean and
   ensemble std) with a PerfSAGE predictor (or measures them, :class:`TargetOracle`);
3. records every budget as ``trial.set_constraint(metric, predicted + k * std - budget)``
   (Optuna 5; feasible when <= 0), so TPE, NSGA-II and GPSampler learn the feasible
   region;
4. stores what a user needs later on the trial: the arch (encoded, JSON), its
   ``arch_id``, the predicted metrics and their std (``predicted_<metric>``,
   ``predicted_<metric>_std``), MACs, timings and the ``.tflite`` as an Optuna artifact
   (optuna-dashboard shows all of them);
5. for a candidate predicted over budget, stops *before* any training:
   samplers that learn from pruned trials (TPE, random) get a ``PRUNED`` trial; samplers
   that read only ``COMPLETE`` trials (NSGA-II, GPSampler, checked in Optuna 5.0's
   source) get a ``COMPLETE`` one whose hardware objectives are the predicted values
   and whose user objectives (accuracy) are a sentinel (``Objective.infeasible_value``,
   0 for accuracy). Its constraint is > 0, so it never enters ``study.best_trials`` and
   constrained domination ranks it below every feasible candidate;
6. otherwise computes the objectives: predicted metrics (minimised), MACs or
   parameters (maximised, a capacity proxy for budget-only searches) and the user's
   own functions (``accuracy=``: train on your data and return the score).
"""
from __future__ import annotations

import json
import math
import os
import re
import tempfile
import time
import warnings
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping, Sequence

from search_spaces.errors import HwnasError, UnknownNameError, unknown_name

if TYPE_CHECKING:  # pragma: no cover
    import keras
    import optuna

    from search_spaces import SearchSpace

SAMPLERS = ("tpe", "nsga2", "gp", "random")
def _learns_only_from_complete(sampler: Any) -> bool:
    """Whether ``sampler`` reads COMPLETE trials only (an infeasible candidate is then completed
    with sentinel values instead of pruned).  Checked in Optuna 5.0: samplers/_ga/_base.py and
    samplers/_gp/sampler.py use ``states=(COMPLETE,)``; TPE uses COMPLETE and PRUNED.  A
    subclass counts as its base; a wrapper (``PartialFixedSampler``) as the sampler it wraps."""
    import optuna

    complete_only = (optuna.samplers.NSGAIISampler, optuna.samplers.NSGAIIISampler, optuna.samplers.GPSampler)
    seen = set()
    while sampler is not None and id(sampler) not in seen:
        seen.add(id(sampler))
        if isinstance(sampler, complete_only):
            return True
        sampler = getattr(sampler, "_base_sampler", None)
    return False
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


# --------------------------------------------------------------------------- the objective


def _load_predictor(predictor: Any, target: str) -> Any:
    if predictor is None:
        predictor = f"perfsage-{target}"
    if isinstance(predictor, (str, os.PathLike)):
        from predictors.predictor import list_predictors, load_predictor

        try:
            return load_predictor(predictor)
        except UnknownNameError:
            if str(predictor) == f"perfsage-{target}":
                raise UnknownNameError(
                    f"no shipped predictor for target {target!r} (shipped: "
                    f"{', '.join(list_predictors()) or 'none'}); pass a trained one with --predictor PATH "
                    "(`hwnas train`)"
                ) from None
            raise
    return predictor


class HardwareObjective:
    """An Optuna objective over a search space, with hardware budgets and predicted metrics.

    Args:
        space: a search-space name or instance (``search_spaces.get``).
        target: the hardware target whose metrics are predicted (``hwnas targets``).
        predictor: a predictor name or directory (default ``perfsage-<target>``), a loaded
            :class:`predictors.predictor.Predictor`, or any object with the same
            ``predict(bytes) -> {target: {metric, metric_std}}`` (e.g. :class:`TargetOracle`).
        budgets: ``{metric or alias: limit}`` or :class:`Budget` s; a candidate is over
            budget when ``predicted + margin_std * std > limit``.
        objectives: names or :class:`Objective` s. Names: ``accuracy`` (maximised; needs
            ``accuracy=``), a metric of the target or an alias (``latency``, ``energy``,
            ``memory``; minimised, predicted), ``macs`` or ``params`` (maximised: a capacity
            proxy, the biggest network within budget). Default: ``["accuracy"]`` when
            ``accuracy`` is given, else ``["macs"]``.
        accuracy: ``fn(candidate) -> float``, your training and scoring on your data.
        margin_std: k in ``predicted + k * std <= budget`` (0: the mean prediction).
        infeasible: ``"auto"`` (prune for samplers that learn from pruned trials, complete
            with sentinel values for NSGA-II and GPSampler), ``"prune"`` or ``"complete"``.
        artifact_store: an Optuna artifact store for the ``.tflite`` files (e.g.
            ``optuna.artifacts.FileSystemArtifactStore(dir)``); None stores none.
        artifacts: ``"feasible"`` (upload the candidates within budget) or ``"all"``.
        seed: weight seed of the exported networks (the graph, not the weights, sets the labels).
        space_options: options for ``search_spaces.get`` when ``space`` is a name.
        verify: measure when unsure: ``"uncertain"`` exports and measures every candidate
            whose prediction +- ``verify_std`` std straddles a budget (the measured values
            then decide its constraints) and, with :func:`verify_best`, the best ones at the
            end; ``"best"`` only the latter; ``"none"`` (default) never.
        measure: ``fn(tflite_bytes) -> {metric: value}`` for verification (default: the
            target's own ``measure``, Vela or LiteRT; give one for a device of your own).
        lowering: predict from the lowered graph (milliseconds, no export) where the space
            supports it; False always exports first.
    """

    def __init__(
        self,
        space: "str | SearchSpace",
        target: str,
        predictor: Any = None,
        *,
        budgets: Mapping[str, float] | Iterable[Budget] | None = None,
        objectives: Sequence[str | Objective] | None = None,
        accuracy: Callable[[Candidate], float] | None = None,
        margin_std: float = 0.0,
        infeasible: str = "auto",
        artifact_store: Any = None,
        artifacts: str = "feasible",
        seed: int = 0,
        space_options: Mapping[str, Any] | None = None,
        verify: str = "none",
        verify_std: float = 2.0,
        measure: Callable[[bytes], Mapping[str, float]] | None = None,
        lowering: bool = True,
    ):
        import search_spaces
        from predictors import targets as target_registry

        self.space = search_spaces.get(space, **dict(space_options or {})) if isinstance(space, str) else space
        # a registered target, or a device a retrained predictor knows (hwnas dataset import + train)
        if target not in target_registry.names() and predictor is None:
            raise unknown_name("target", target, target_registry.names())
        self.target = target
        if infeasible not in ("auto", "prune", "complete"):
            raise SearchError(f"infeasible must be 'auto', 'prune' or 'complete', got {infeasible!r}")
        if artifacts not in ("feasible", "all"):
            raise SearchError(f"artifacts must be 'feasible' or 'all', got {artifacts!r}")
        if not (isinstance(margin_std, (int, float)) and math.isfinite(margin_std) and margin_std >= 0):
            raise SearchError(f"margin_std must be a number >= 0, got {margin_std!r}")
        self.predictor = _load_predictor(predictor, target)
        if target not in self.predictor.targets and target not in target_registry.names():
            raise unknown_name("target", target, sorted(set(target_registry.names()) | set(self.predictor.targets)))
        if target not in self.predictor.targets:
            raise UnknownNameError(f"predictor {getattr(self.predictor, 'name', '?')!r} does not predict target "
                                   f"{target!r}; it predicts: {', '.join(self.predictor.targets)}")
        self.metrics: list[str] = list(self.predictor.metrics[target])
        self.budgets = self._budgets(budgets)
        self.accuracy = accuracy
        self.objectives = self._objectives(objectives)
        self.margin_std = float(margin_std)
        self.infeasible = infeasible
        self.artifact_store = artifact_store
        self.artifacts = artifacts
        self.seed = int(seed)
        # smallest predicted value (plus margin) of every budgeted metric seen in this process
        self.smallest: dict[str, tuple[float, str]] = {}
        # arch_id -> (tflite, predicted, macs) of recent candidates: TPE and NSGA-II repeat archs
        self._cache: "OrderedDict[str, tuple[bytes, dict[str, float], float]]" = OrderedDict()
        self.cache_size = 32
        self.predictions = 0  # predictor calls (cache misses)
        self.exported_predictions = 0  # of them, from an exported file (not the lowered graph)
        self.lowering_fallbacks = 0  # archs the lowering could not reproduce (exported instead)
        self.lowering = bool(lowering)
        if verify not in VERIFY_MODES:
            raise SearchError(f"verify must be one of {', '.join(VERIFY_MODES)}, got {verify!r}")
        if not (isinstance(verify_std, (int, float)) and math.isfinite(verify_std) and verify_std >= 0):
            raise SearchError(f"verify_std must be a number >= 0, got {verify_std!r}")
        self.verify, self.verify_std = verify, float(verify_std)
        if measure is None and verify != "none":
            if target not in target_registry.names():
                raise SearchError(f"verifying {target!r} needs measure=fn(tflite_bytes) -> {{metric: value}}: "
                                  "it is not a target hwnas can measure itself")
            measure = target_registry.get(target).measure
        self.measure = measure
        self.measurements = 0  # candidates measured on the target (verification)

    # ----- set-up
    def _budgets(self, budgets: Any) -> list[Budget]:
        if budgets is None:
            return []
        items = budgets.items() if isinstance(budgets, Mapping) else [(b.metric, b.limit) for b in budgets]
        out = []
        for metric, limit in items:
            out.append(Budget(resolve_metric(metric, self.metrics, self.target), limit))
        names = [b.metric for b in out]
        if len(set(names)) != len(names):
            raise SearchError(f"two budgets for the same metric: {', '.join(names)}")
        return out

    def _objectives(self, objectives: Sequence[str | Objective] | None) -> list[Objective]:
        if objectives is None or len(objectives) == 0:
            objectives = ["accuracy"] if self.accuracy is not None else ["macs"]
        out: list[Objective] = []
        for obj in objectives:
            if isinstance(obj, Objective):
                out.append(obj)
            elif obj == "accuracy":
                if self.accuracy is None:
                    raise SearchError(
                        "the accuracy objective needs your accuracy: a table of measured accuracies "
                        "(hwnas search --accuracy-csv FILE) or, in Python, HardwareObjective(accuracy=fn) "
                        "with a function that trains the candidate on your data"
                    )
                out.append(Objective("accuracy", "maximize", self.accuracy, trains=True))
            elif obj == "macs":
                out.append(Objective("macs", "maximize", lambda c: float(c.macs)))
            elif obj == "params":
                out.append(Objective("params", "maximize", lambda c: float(c.params)))
            elif isinstance(obj, str):
                try:
                    metric = resolve_metric(obj, self.metrics, self.target)
                except UnknownNameError:
                    raise UnknownNameError(
                        f"unknown objective {obj!r}; choose accuracy, macs, params, latency, energy, memory or a "
                        f"metric of {self.target}: {', '.join(self.metrics)}"
                    ) from None
                out.append(Objective(metric, "minimize", lambda c, m=metric: float(c.predicted[m])))
            else:
                raise SearchError(f"an objective is a name or an Objective, got {obj!r}")
        names = [o.name for o in out]
        if len(set(names)) != len(names):
            raise SearchError(f"the same objective twice: {', '.join(names)}")
        return out

    @property
    def directions(self) -> list[str]:
        """The study directions, one per objective."""
        return [o.direction for o in self.objectives]

    @property
    def objective_names(self) -> list[str]:
        return [o.name for o in self.objectives]

    def describe(self) -> dict[str, Any]:
        """What a study made for this objective records (``study.user_attrs["hwnas"]``)."""
        return {
            "space": self.space.name,
            "space_options": json.loads(json.dumps(self.space.options)),
            "target": self.target,
            "objectives": self.objective_names,
            "directions": self.directions,
            "budgets": {b.metric: b.limit for b in self.budgets},
            "margin_std": self.margin_std,
        }

    # ----- per trial
    def _mode(self, trial: "optuna.trial.Trial") -> str:
        if self.infeasible != "auto":
            return self.infeasible
        return "complete" if _learns_only_from_complete(trial.study.sampler) else "prune"

    def export(self, arch: dict) -> bytes:
        """The int8 ``.tflite`` file of ``arch`` (built and converted: seconds)."""
        from hwnas.export import to_tflite

        try:
            return to_tflite(self.space.build(arch, seed=self.seed), quantize="int8")
        except HwnasError as exc:
            raise CandidateError(f"{self.space.name} {self.space.arch_id(arch)}: {exc}") from exc

    def evaluate_arch(self, arch: dict) -> tuple[bytes | None, dict[str, float], float]:
        """Predict one arch: (tflite bytes or None, predicted metrics of the target, MACs).

        From the lowered graph when the space and the predictor allow it (milliseconds,
        no file: None); else exported and predicted from the file, as before the lowering.
        """
        arch_id = self.space.arch_id(arch)
        if arch_id in self._cache:
            self._cache.move_to_end(arch_id)
            return self._cache[arch_id]
        result = self._predict_lowered(arch) if self.lowering else None
        if result is None:
            from predictors.graph import summarize

            tflite = self.export(arch)
            try:
                macs = summarize(tflite)["totals"]["total_macs"]
                predicted = self.predictor.predict(tflite)[self.target]
            except HwnasError as exc:
                raise CandidateError(f"{self.space.name} {arch_id}: {exc}") from exc
            result = (tflite, {k: float(v) for k, v in predicted.items()}, float(macs))
            self.exported_predictions += 1
        self.predictions += 1
        self._cache[arch_id] = result
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        return result

    def _predict_lowered(self, arch: dict) -> tuple[None, dict[str, float], float] | None:
        """The prediction from the lowered graph, or None where the lowering cannot run."""
        predict_arrays = getattr(self.predictor, "predict_arrays", None)
        if predict_arrays is None:  # a measuring oracle or a user's predictor: it needs the file
            return None
        from predictors.graph import GRAPH_FEATURES, arch_arrays
        from predictors.graph._lowered import LoweringError

        try:
            arrays = arch_arrays(self.space, arch)
        except LoweringError:
            self.lowering_fallbacks += 1  # a builder the stand-in cannot run: the export path
            return None
        except HwnasError as exc:  # the space's own build refused it
            raise CandidateError(f"{self.space.name} {self.space.arch_id(arch)}: {exc}") from exc
        predicted = predict_arrays([arrays], targets=[self.target])[0][self.target]
        macs = float(arrays["u"][0, GRAPH_FEATURES.index("total_macs")])
        return None, {k: float(v) for k, v in predicted.items()}, macs

    def __call__(self, trial: "optuna.trial.Trial") -> float | tuple[float, ...]:
        """One trial.  A candidate that cannot be built, exported, predicted or measured
        fails its trial (the reason in the trial's ``failure`` attribute; Optuna marks a
        NaN value FAIL) and the study goes on: ``study.optimize(objective)`` is safe alone."""
        try:
            return self._trial(trial)
        except CandidateError as exc:
            trial.set_user_attr("failure", str(exc)[:500])
            trial.set_user_attr("status", "failed")
            nan = float("nan")
            return nan if len(self.objectives) == 1 else tuple(nan for _ in self.objectives)

    def _trial(self, trial: "optuna.trial.Trial") -> float | tuple[float, ...]:
        import optuna

        started = time.perf_counter()
        arch = self.space.suggest(trial)
        arch_id = self.space.arch_id(arch)
        trial.set_user_attr("arch", self.space.encode(arch))
        trial.set_user_attr("arch_id", arch_id)
        trial.set_user_attr("target", self.target)
        tflite, predicted, macs = self.evaluate_arch(arch)
        predicted = dict(predicted)
        predict_s = time.perf_counter() - started
        trial.set_user_attr("macs", macs)
        trial.set_user_attr("hardware_path", "exported" if tflite is not None else "lowered")
        for metric in self.metrics:
            trial.set_user_attr(f"predicted_{metric}", predicted[metric])
            trial.set_user_attr(f"predicted_{metric}_std", predicted.get(f"{metric}_std", 0.0))
        candidate = Candidate(self.space, arch, arch_id, trial, tflite, predicted, macs, self.seed,
                              exporter=lambda: self.export(arch))
        if self.verify == "uncertain" and self._straddles(predicted):
            predicted = self._measure(candidate)
            candidate.predicted = predicted
        feasible = True
        for budget in self.budgets:
            value = predicted[budget.metric] + self.margin_std * predicted.get(f"{budget.metric}_std", 0.0)
            trial.set_constraint(budget.metric, value - budget.limit)
            if value > budget.limit:
                feasible = False
            best = self.smallest.get(budget.metric)
            if best is None or value < best[0]:
                self.smallest[budget.metric] = (value, arch_id)
        trial.set_user_attr("feasible", feasible)
        if feasible or self.artifacts == "all":
            self._upload(trial, candidate)
        timing = {"export_predict_s": round(predict_s, 4)}
        if not feasible:
            trial.set_user_attr("timing", timing)
            over = ", ".join(
                f"{b.metric} {predicted[b.metric]:.4g}" for b in self.budgets if
                predicted[b.metric] + self.margin_std * predicted.get(f"{b.metric}_std", 0.0) > b.limit
            )
            if self._mode(trial) == "prune":
                trial.set_user_attr("status", "pruned: over budget")
                raise optuna.TrialPruned(f"predicted over budget ({over})")
            trial.set_user_attr("status", "infeasible: completed without training")
            values = [o.infeasible_value if o.infeasible_value is not None else float(o.fn(candidate))
                      for o in self.objectives]
            return values[0] if len(values) == 1 else tuple(values)
        started = time.perf_counter()
        values = [float(o.fn(candidate)) for o in self.objectives]
        timing["objectives_s"] = round(time.perf_counter() - started, 4)
        trial.set_user_attr("timing", timing)
        trial.set_user_attr("status", "evaluated")
        for name, value in zip(self.objective_names, values):
            if not math.isfinite(value):
                raise SearchError(f"objective {name!r} returned {value!r} for {arch_id}")
        return values[0] if len(values) == 1 else tuple(values)

    def _straddles(self, predicted: dict[str, float]) -> bool:
        """Whether some budget lies within ``verify_std`` std of its prediction (unsure)."""
        for b in self.budgets:
            mean, std = predicted[b.metric], predicted.get(f"{b.metric}_std", 0.0)
            if mean - self.verify_std * std <= b.limit <= mean + self.verify_std * std:
                return True
        return False

    def _measure(self, candidate: Candidate) -> dict[str, float]:
        """The target's own values (std 0) for the candidate, stored on its trial."""
        try:
            measured = self.measure(candidate.tflite)
        except HwnasError as exc:
            raise CandidateError(f"{self.space.name} {candidate.arch_id}: measuring failed: {exc}") from exc
        self.measurements += 1
        out = dict(candidate.predicted)
        for metric in self.metrics:
            if metric in measured:
                out[metric] = float(measured[metric])
                out[f"{metric}_std"] = 0.0
                if candidate.trial is not None:
                    candidate.trial.set_user_attr(f"measured_{metric}", float(measured[metric]))
        if candidate.trial is not None:
            candidate.trial.set_user_attr("verified", True)
        return out

    def _upload(self, trial: "optuna.trial.Trial", candidate: Candidate) -> None:
        if self.artifact_store is None:
            return
        from optuna.artifacts import upload_artifact

        with tempfile.TemporaryDirectory(prefix="hwnas-") as tmp:
            path = Path(tmp) / f"{self.space.name}-{candidate.arch_id}.tflite"
            path.write_bytes(candidate.tflite)
            artifact_id = upload_artifact(
                artifact_store=self.artifact_store, file_path=str(path), study_or_trial=trial,
                mimetype="application/octet-stream",
            )
        trial.set_user_attr("tflite_artifact_id", artifact_id)


# --------------------------------------------------------------------------- studies


def open_storage(storage: Any) -> Any:
    """A storage from a URL or path; ``None`` is in-memory.

    * an RDB URL: ``sqlite:///study.db``, ``postgresql://user:pass@host/db``, ``mysql://...``,
      with a heartbeat (:func:`heartbeat_seconds`): a trial whose worker died is failed
      by the next worker after two beats and its arch retried (at most twice);
    * a journal file (several processes on one host): ``journal:PATH`` or a path ending
      in ``.log`` or ``.journal``;
    * an Optuna storage object, returned as is.

    Raises:
        SearchError: the storage cannot be opened (one line, password hidden).
    """
    import optuna

    if storage is None or isinstance(storage, optuna.storages.BaseStorage):
        return storage
    text = str(storage)
    shown = re.sub(r"//([^:/@]+):[^@/]*@", r"//\1:***@", text)
    try:
        if text.startswith("journal:") or (("://" not in text) and text.endswith((".log", ".journal"))):
            from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock, JournalStorage

            path = text[len("journal:"):] if text.startswith("journal:") else text
            if path.startswith("//"):
                path = path[2:]
            if not path:
                raise SearchError("journal storage needs a file: journal:PATH")
            parent = Path(path).resolve().parent
            if not parent.is_dir():
                raise SearchError(f"cannot open storage {shown}: folder {parent} does not exist")
            return JournalStorage(JournalFileBackend(path, lock_obj=JournalFileOpenLock(path)))
        if "://" not in text:
            raise SearchError(f"cannot open storage {shown!r}: give an RDB URL (sqlite:///FILE.db, "
                              "postgresql://USER@HOST/DB) or a journal file (journal:FILE)")
        if text.startswith("sqlite:///"):
            parent = Path(text[len("sqlite:///"):]).resolve().parent
            if not parent.is_dir():
                raise SearchError(f"cannot open storage {shown}: folder {parent} does not exist")
        # a worker killed mid-trial stops beating: after the grace period the next worker to
        # start fails its trial and enqueues the arch again (Optuna's own machinery)
        beat = heartbeat_seconds()
        with warnings.catch_warnings():  # Optuna marks the heartbeat experimental
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.storages.RDBStorage(
                _driver_url(text), engine_kwargs=_engine_kwargs(text), heartbeat_interval=beat,
                grace_period=2 * beat,
                heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=2))
    except SearchError:
        raise
    except Exception as exc:  # SQLAlchemy, drivers, OS errors: one line for the user
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        reason = re.sub(r"//([^:/@]+):[^@/]*@", r"//\1:***@", reason)
        if isinstance(exc, ImportError) and text.startswith("postgresql"):
            reason = "the PostgreSQL driver is missing: pip install psycopg2-binary (or hwnas[postgresql])"
        raise SearchError(f"cannot open storage {shown}: {type(exc).__name__}: {reason}") from None


def heartbeat_seconds() -> int:
    """How often a worker's running trial beats on an RDB storage (``HWNAS_HEARTBEAT_S``, 60)."""
    try:
        return max(1, int(os.environ.get("HWNAS_HEARTBEAT_S", "60")))
    except ValueError:
        return 60


def _driver_url(url: str) -> str:
    """``postgresql://`` with the driver that is installed: SQLAlchemy 2.1 defaults to psycopg 3;
    hwnas[postgresql] installs psycopg2-binary."""
    if url.startswith(("postgresql://", "postgres://")):
        import importlib.util

        if importlib.util.find_spec("psycopg") is None and importlib.util.find_spec("psycopg2") is not None:
            return "postgresql+psycopg2://" + url.split("://", 1)[1]
    return url


def _engine_kwargs(url: str) -> dict[str, Any]:
    if url.startswith("sqlite"):
        # several processes on one SQLite file wait for the lock instead of failing at once
        return {"connect_args": {"timeout": 60}}
    if url.startswith("postgresql"):
        return {"pool_pre_ping": True, "connect_args": {"connect_timeout": 10}}
    return {"pool_pre_ping": True}


def make_sampler(name: str, seed: int | None = None, population_size: int | None = None,
                 n_trials: int | None = None) -> "optuna.samplers.BaseSampler":
    """``tpe``, ``nsga2``, ``gp`` or ``random`` as an Optuna sampler.

    NSGA-II's population defaults to ``min(50, max(8, n_trials // 5))``: about five
    generations in the trial budget.
    """
    import optuna

    if name not in SAMPLERS:
        raise unknown_name("sampler", name, SAMPLERS)
    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed, multivariate=True)
    if name == "nsga2":
        if population_size is None:
            population_size = min(50, max(8, (n_trials or 250) // 5))
        return optuna.samplers.NSGAIISampler(seed=seed, population_size=population_size)
    if name == "gp":
        return optuna.samplers.GPSampler(seed=seed)
    return optuna.samplers.RandomSampler(seed=seed)


def make_study(
    objective: HardwareObjective,
    storage: Any = None,
    study_name: str | None = None,
    sampler: "str | optuna.samplers.BaseSampler" = "tpe",
    *,
    seed: int | None = None,
    population_size: int | None = None,
    n_trials: int | None = None,
    load_if_exists: bool = True,
) -> "optuna.Study":
    """A study with the objective's directions, created or joined (several workers, one study).

    The study records the objective's set-up (``user_attrs["hwnas"]``: space, target,
    objectives, budgets); joining with another set-up is refused.

    Args:
        storage: see :func:`open_storage` (None: in memory).
        sampler: a name (``tpe``, ``nsga2``, ``gp``, ``random``) or a sampler.

    Raises:
        SearchError: the storage cannot be opened, or holds a study of that name set up otherwise.
        UnknownNameError: an unknown sampler.
    """
    import optuna

    if isinstance(sampler, str):
        sampler = make_sampler(sampler, seed=seed, population_size=population_size, n_trials=n_trials)
    storage = open_storage(storage)
    name = study_name or f"hwnas-{objective.space.name}-{objective.target}"
    try:
        study = optuna.create_study(
            storage=storage, sampler=sampler, study_name=name, directions=objective.directions,
            load_if_exists=load_if_exists,
        )
    except optuna.exceptions.DuplicatedStudyError:
        raise SearchError(f"study {name!r} already exists in the storage") from None
    except ValueError as exc:  # directions differ from the stored study's
        raise SearchError(f"study {name!r}: {exc}") from None
    except Exception as exc:
        if isinstance(exc, HwnasError):
            raise
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise SearchError(f"cannot create study {name!r}: {type(exc).__name__}: {reason}") from None
    wanted = objective.describe()
    stored = study.user_attrs.get(STUDY_ATTR)
    if stored is None:
        study.set_user_attr(STUDY_ATTR, wanted)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names(objective.objective_names)
    elif stored != wanted:
        differs = [k for k in wanted if stored.get(k) != wanted[k]]
        raise SearchError(
            f"study {name!r} was set up with other {', '.join(differs)} "
            f"({', '.join(f'{k}={stored.get(k)!r}' for k in differs)}); choose another --study-name"
        )
    return study


def is_feasible(trial: "optuna.trial.FrozenTrial") -> bool:
    """A COMPLETE trial whose every constraint is <= 0."""
    import optuna

    return trial.state == optuna.trial.TrialState.COMPLETE and all(v <= 0 for v in trial.constraints.values())


def best_candidates(study: "optuna.Study", limit: int | None = 10) -> list["optuna.trial.FrozenTrial"]:
    """The best feasible trials: the Pareto front (multi-objective) or the top ``limit``.

    Multi-objective fronts are sorted by the first objective, best first; repeated
    archs (same ``arch_id``) appear once.
    """
    import optuna

    trials = [t for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
              if is_feasible(t)]
    directions = study.directions
    sign = [1.0 if d == optuna.study.StudyDirection.MINIMIZE else -1.0 for d in directions]
    if len(directions) > 1:
        front = []
        for t in trials:
            a = [s * v for s, v in zip(sign, t.values)]
            dominated = False
            for u in trials:
                b = [s * v for s, v in zip(sign, u.values)]
                if all(y <= x for x, y in zip(a, b)) and any(y < x for x, y in zip(a, b)):
                    dominated = True
                    break
            if not dominated:
                front.append(t)
        trials = front
    trials.sort(key=lambda t: (sign[0] * t.values[0], t.number))
    seen: set[str] = set()
    out = []
    for t in trials:
        key = t.user_attrs.get("arch_id", str(t.number))
        if key in seen:
            continue
        seen.add(key)
        out.append(t)
    return out if limit is None or len(directions) > 1 else out[:limit]


def trial_record(trial: "optuna.trial.FrozenTrial", names: Sequence[str] | None = None) -> dict[str, Any]:
    """A JSON-safe record of a trial: number, values by objective, arch, predicted metrics, artifact."""
    names = list(names or [f"objective_{i}" for i in range(len(trial.values or []))])
    attrs = trial.user_attrs
    return {
        "trial": trial.number,
        "state": trial.state.name,
        "values": dict(zip(names, trial.values or [])),
        "feasible": is_feasible(trial),
        "constraints": dict(trial.constraints),
        "arch_id": attrs.get("arch_id"),
        "arch": attrs.get("arch"),
        "predicted": {k[len("predicted_"):]: v for k, v in attrs.items() if k.startswith("predicted_")},
        "macs": attrs.get("macs"),
        "tflite_artifact_id": attrs.get("tflite_artifact_id"),
    }


def run_search(
    study: "optuna.Study",
    objective: HardwareObjective,
    n_trials: int,
    *,
    give_up_after: int | None = 20,
    timeout: float | None = None,
    callbacks: Sequence[Callable] = (),
    show_progress_bar: bool = False,
) -> "optuna.Study":
    """``study.optimize`` with the objective, stopping when no budget can be met.

    A candidate that cannot be exported or predicted fails its trial; the search goes on.

    Args:
        n_trials: trials this call runs (several workers on one study each run theirs).
        give_up_after: when this many trials of this call were over budget and the study
            has no feasible candidate, stop with :class:`NoFeasibleCandidateError` naming the
            smallest predicted value seen. None never gives up.

    Raises:
        NoFeasibleCandidateError: see ``give_up_after``.
    """
    import optuna

    if not isinstance(n_trials, int) or n_trials < 1:
        raise SearchError(f"the number of trials must be a positive integer, got {n_trials!r}")
    give_up = GiveUp(objective, give_up_after)
    study.optimize(objective, n_trials=n_trials, timeout=timeout, callbacks=[give_up, *callbacks],
                   catch=(CandidateError,), show_progress_bar=show_progress_bar)
    give_up.raise_if_given_up()
    return study


class GiveUp:
    """A ``study.optimize`` callback: stops the study when ``after`` trials (of this process)
    were over budget and the study has no feasible candidate yet.

    ``study.optimize(objective, callbacks=[give_up := GiveUp(objective)])``, then
    ``give_up.raise_if_given_up()`` for the message naming the smallest prediction seen.
    """

    def __init__(self, objective: HardwareObjective, after: int | None = 20):
        self.objective, self.after = objective, after
        self.infeasible, self.feasible, self.gave_up = 0, False, False

    def __call__(self, study: "optuna.Study", trial: "optuna.trial.FrozenTrial") -> None:
        if not self.objective.budgets or self.feasible or self.after is None:
            return
        if trial.user_attrs.get("feasible") is True:
            self.feasible = True
            return
        if trial.user_attrs.get("feasible") is False:
            self.infeasible += 1
        if self.infeasible >= self.after:
            if any(is_feasible(t) for t in study.get_trials(deepcopy=False)):
                self.feasible = True  # another worker found one
                return
            self.gave_up = True
            study.stop()

    def raise_if_given_up(self) -> None:
        """Raises :class:`NoFeasibleCandidateError` if the callback stopped the study."""
        if not self.gave_up:
            return
        objective = self.objective
        parts = []
        for b in objective.budgets:
            if b.metric in objective.smallest:
                value, arch_id = objective.smallest[b.metric]
                parts.append(f"{b.metric} <= {b.limit:g}: smallest predicted {value:.4g} ({arch_id})")
        margin = f" with a margin of {objective.margin_std:g} std" if objective.margin_std else ""
        raise NoFeasibleCandidateError(
            f"no candidate met the budget{margin} in {self.infeasible} trials ({'; '.join(parts)}); "
            "raise the budget or search a smaller space"
        )


def verify_best(study: "optuna.Study", objective: HardwareObjective, top: int = 5) -> list[dict[str, Any]]:
    """Exports and measures the best feasible candidates on the target (verification's last step).

    Returns, best first, ``{"trial", "arch_id", "measured": {...}, "predicted": {...},
    "within_budget": bool}``; the same records go to the study's user attribute
    ``hwnas_verified`` (a finished trial cannot be changed).  Candidates measured during
    the search are not measured again.
    """
    if objective.measure is None:
        raise SearchError(f"no measure function for {objective.target!r}: give HardwareObjective(measure=...)")
    records = []
    for trial in best_candidates(study, limit=top):
        arch = objective.space.decode(trial.user_attrs["arch"])
        measured = {m[len("measured_"):]: v for m, v in trial.user_attrs.items() if m.startswith("measured_")}
        if not measured:
            raw = objective.measure(objective.export(arch))
            objective.measurements += 1
            measured = {m: float(raw[m]) for m in objective.metrics if m in raw}
        within = all(measured.get(b.metric, math.inf) <= b.limit for b in objective.budgets)
        records.append({"trial": trial.number, "arch_id": trial.user_attrs.get("arch_id"), "measured": measured,
                        "predicted": {m: trial.user_attrs.get(f"predicted_{m}") for m in objective.metrics},
                        "within_budget": within})
    study.set_user_attr("hwnas_verified", records)
    return records


# --------------------------------------------------------------------------- plots


def plot_search(study: "optuna.Study", out_dir: str | os.PathLike, budgets: Mapping[str, float] | None = None,
                ) -> dict[str, str]:
    """Writes ``history.png`` and ``pareto.png`` for a study; returns their paths.

    ``history.png``: every objective per trial (feasible, over budget) with the best so
    far. ``pareto.png``: the first two objectives (or, single-objective, the objective
    against the first budgeted metric) with the feasible Pareto front and the budget.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import optuna

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    names = study.metric_names or [f"objective {i}" for i in range(len(study.directions))]
    trials = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED))
    done = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    feasible = [t for t in done if is_feasible(t)]
    over = [t for t in trials if t.user_attrs.get("feasible") is False]
    paths = {}

    fig, axes = plt.subplots(len(names), 1, figsize=(7, 2.6 * len(names)), squeeze=False)
    for i, (name, direction) in enumerate(zip(names, study.directions)):
        ax = axes[i][0]
        ax.scatter([t.number for t in feasible], [t.values[i] for t in feasible], s=14, label="within budget")
        inf_done = [t for t in done if not is_feasible(t)]
        if inf_done:
            ax.scatter([t.number for t in inf_done], [t.values[i] for t in inf_done], s=14, marker="x",
                       color="tab:red", label="over budget (not trained)")
        if feasible:
            best, xs, ys = None, [], []
            for t in sorted(feasible, key=lambda t: t.number):
                v = t.values[i]
                if best is None or (v > best if direction == optuna.study.StudyDirection.MAXIMIZE else v < best):
                    best = v
                xs.append(t.number)
                ys.append(best)
            ax.step(xs, ys, where="post", color="black", lw=1, label="best so far")
        ax.set_ylabel(name)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="best")
    axes[-1][0].set_xlabel(f"trial ({len(over)} of {len(trials)} over budget)")
    fig.suptitle(f"{study.study_name}: history")
    fig.tight_layout()
    paths["history"] = str(out / "history.png")
    fig.savefig(paths["history"], dpi=110)
    plt.close(fig)

    budgets = dict(budgets or {})
    untrained = [t for t in done if not is_feasible(t)
                 and str(t.user_attrs.get("status", "")).startswith("infeasible")]  # sentinel values
    plotted_inf = [t for t in done if not is_feasible(t) and t not in untrained]
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    if len(names) >= 2:
        xname, yname = names[0], names[1]
        x_of = lambda t: t.values[0]  # noqa: E731
        y_of = lambda t: t.values[1]  # noqa: E731
        front = best_candidates(study, limit=None)
        front_label = "Pareto front (feasible)"
    else:
        metric = next(iter(budgets), None) or next(
            (k[len("predicted_"):] for k in (trials[0].user_attrs if trials else {})
             if k.startswith("predicted_") and not k.endswith("_std")), None)
        xname, yname = f"predicted {metric}", names[0]
        x_of = lambda t: t.user_attrs.get(f"predicted_{metric}", float("nan"))  # noqa: E731
        y_of = lambda t: t.values[0]  # noqa: E731
        # the trade-off: the best value at each predicted cost
        sign = 1.0 if study.directions[0] == optuna.study.StudyDirection.MAXIMIZE else -1.0
        front, best = [], -math.inf
        for t in sorted(feasible, key=lambda t: (x_of(t), -sign * y_of(t))):
            if sign * y_of(t) > best:
                front.append(t)
                best = sign * y_of(t)
        front_label = f"best {yname} at a predicted {metric}"
        rug = [x_of(t) for t in over if t.state == optuna.trial.TrialState.PRUNED]
        if rug:
            ax.plot(rug, [0.02] * len(rug), "|", color="tab:red", ms=12, transform=ax.get_xaxis_transform(),
                    label="over budget (pruned, not trained)")
    ax.scatter([x_of(t) for t in feasible], [y_of(t) for t in feasible], s=16, alpha=0.6, label="within budget")
    if plotted_inf:
        ax.scatter([x_of(t) for t in plotted_inf], [y_of(t) for t in plotted_inf], s=16, marker="x",
                   color="tab:red", alpha=0.6, label="over budget")
    if front:
        pts = sorted((x_of(t), y_of(t)) for t in front)
        ax.step([p[0] for p in pts], [p[1] for p in pts], "o-", where="post", color="black", ms=4, lw=1,
                label=front_label)
    for metric, limit in budgets.items():
        if xname.endswith(metric):
            ax.axvline(limit, color="tab:red", ls="--", lw=1, label=f"budget {limit:g}")
    ax.set_xlabel(xname)
    ax.set_ylabel(yname)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    hidden = f", {len(untrained)} over budget not shown" if untrained else ""
    ax.set_title(f"{study.study_name}: {len(feasible)} feasible of {len(trials)}{hidden}", fontsize=9)
    fig.tight_layout()
    paths["pareto"] = str(out / "pareto.png")
    fig.savefig(paths["pareto"], dpi=110)
    plt.close(fig)
    return paths


__all__ = [
    "Budget",
    "Candidate",
    "CandidateError",
    "HardwareObjective",
    "NoFeasibleCandidateError",
    "Objective",
    "SAMPLERS",
    "SearchError",
    "TargetOracle",
    "accuracy_from_table",
    "best_candidates",
    "is_feasible",
    "make_sampler",
    "make_study",
    "open_storage",
    "plot_search",
    "resolve_metric",
    "run_search",
    "trial_record",
]
