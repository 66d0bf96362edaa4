"""Part of :mod:`hwnas.search` (see there)."""
from __future__ import annotations

import json
import math
import os
import tempfile
import time
import warnings
from collections import OrderedDict
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping, Sequence

from search_spaces.errors import HwnasError, UnknownNameError, unknown_name

if TYPE_CHECKING:  # pragma: no cover
    import optuna

    from search_spaces import SearchSpace

from hwnas.search._common import (
    ACCURACY_NEEDED, VERIFY_MODES, Budget, Candidate, CandidateError, Objective, SearchError,
    resolve_metric,
)


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
        update_every: with ``verify="uncertain"``, after every M measurements, fit the predictor's
            readout heads to all the measurements so far (few-shot, from the predictor given:
            ``predictors.train.few_shot_update``) and predict the next trials with that; 0
            (default) never. For a device the predictor was not trained on.
        update_epochs: epochs of each update (default ``FEW_SHOT``'s).
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
        update_every: int = 0,
        update_epochs: int | None = None,
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
        self.unlike_training = 0  # of those, graphs the predictor called unlike its training (PredictionWarning)
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
        if isinstance(update_every, bool) or not isinstance(update_every, int) or update_every < 0:
            raise SearchError(f"update_every must be a whole number >= 0, got {update_every!r}")
        if update_every and verify != "uncertain":
            raise SearchError("update_every (--update-every) learns from the measurements during the search: "
                              "it needs verify='uncertain' (--verify uncertain)")
        if update_every and not (hasattr(self.predictor, "manifest") and hasattr(self.predictor, "members")):
            raise SearchError(f"update_every fine-tunes a trained PerfSAGE predictor; "
                              f"{getattr(self.predictor, 'name', type(self.predictor).__name__)!r} is not one")
        self.update_every, self.update_epochs = update_every, update_epochs
        self.base_predictor = self.predictor  # what every update starts from
        self.measured_graphs: list = []  # the measured candidates' graphs, labelled (updates learn from them)
        self.updates = 0  # predictor updates so far

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
                    raise SearchError(ACCURACY_NEEDED)
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
            "update_every": self.update_every,
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
            tflite = self.export(arch)
            try:
                macs = self.macs_of(tflite)
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always")
                    predicted = self.predictor.predict(tflite)[self.target]
            except HwnasError as exc:
                raise CandidateError(f"{self.space.name} {arch_id}: {exc}") from exc
            self._pass_on(caught)
            result = (tflite, {k: float(v) for k, v in predicted.items()}, float(macs))
            self.exported_predictions += 1
        self.predictions += 1
        self._cache[arch_id] = result
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        return result

    def _pass_on(self, caught: list) -> None:
        """A predictor's warnings about one candidate, said once per study and counted: a
        search repeats the same graph family thousands of times."""
        from predictors.predictor import PredictionWarning

        notes = [w for w in caught if issubclass(w.category, PredictionWarning)]
        for w in caught:
            if w not in notes:
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
        if notes:
            self.unlike_training += 1
            if self.unlike_training == 1:
                first = str(notes[0].message).split(": ", 1)[-1]
                warnings.warn(PredictionWarning(
                    f"{self.space.name} candidates on {self.target}: {first} (said once; "
                    "verify='uncertain' measures the candidates near a budget)"), stacklevel=4)

    def macs_of(self, tflite: bytes) -> float:
        """Multiply-accumulates of an exported file (the graph extractor's total)."""
        from predictors.graph import summarize

        return float(summarize(tflite)["totals"]["total_macs"])

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
        if self.update_every:
            trial.set_user_attr("predictor_updates", self.updates)  # the predictor this trial's values came from
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
        if self.update_every:
            self._learn(candidate.tflite, measured)
        return out

    def _learn(self, tflite: bytes, measured: Mapping[str, float]) -> None:
        """Keeps a measurement as a labelled graph; every ``update_every`` of them, a new
        predictor fitted (few-shot) to all of them replaces the current one."""
        import torch

        from predictors.graph import from_tflite
        from predictors.train import few_shot_update

        graph = from_tflite(tflite)
        values = []
        for name in self.base_predictor.label_names:
            target, metric = name.split("/", 1)
            value = measured.get(metric) if target == self.target else None
            values.append(float(value) if value is not None and math.isfinite(float(value)) else math.nan)
        graph.y = torch.tensor([values], dtype=torch.float32)
        self.measured_graphs.append(graph)
        n = len(self.measured_graphs)
        if n % self.update_every == 0 and n >= 2:  # one graph is too few to fit (update_every=1 waits for two)
            self.predictor = few_shot_update(self.base_predictor, self.measured_graphs, epochs=self.update_epochs)
            self.updates += 1
            self._cache.clear()  # predictions of the replaced predictor

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


