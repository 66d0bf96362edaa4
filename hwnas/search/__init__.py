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
run_search(objective, n_trials=100, study=study)
study.best_trials                                   # the feasible Pareto front
```

Per trial, :class:`HardwareObjective`:

1. asks the search space for an arch (``space.suggest(trial)``, define-by-run);
2. predicts the target's metrics (mean and ensemble std) with a PerfSAGE predictor from
   the arch's lowered graph (``predictors.graph.from_arch``: no Keras, no converter), or,
   for a space the lowering cannot run, from the exported int8 TFLite; or measures them
   (:class:`TargetOracle`). Only kept or measured candidates are exported;
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

from hwnas.search._common import (
    METRIC_ALIASES,
    SAMPLERS,
    STUDY_ATTR,
    VERIFY_MODES,
    Budget,
    Candidate,
    CandidateError,
    NoFeasibleCandidateError,
    Objective,
    SearchError,
    TargetOracle,
    accuracy_from_table,
    resolve_metric,
)
from hwnas.search._objective import HardwareObjective, _learns_only_from_complete
from hwnas.search._plots import axis_scale, history_figure, pareto_figure, plot_search
from hwnas.search._study import (
    GiveUp,
    best_candidates,
    check_setup,
    heartbeat_seconds,
    is_feasible,
    make_sampler,
    make_study,
    open_storage,
    run_search,
    trial_record,
    verify_best,
)

__all__ = [
    "METRIC_ALIASES", "SAMPLERS", "STUDY_ATTR", "VERIFY_MODES", "Budget", "Candidate",
    "CandidateError", "GiveUp", "HardwareObjective", "NoFeasibleCandidateError", "Objective",
    "SearchError", "TargetOracle", "accuracy_from_table", "axis_scale", "best_candidates",
    "check_setup", "heartbeat_seconds", "history_figure", "is_feasible", "make_sampler",
    "make_study", "open_storage", "pareto_figure", "plot_search", "resolve_metric", "run_search",
    "trial_record", "verify_best",
]
_ = _learns_only_from_complete  # the infeasible-mode rule, for tests
