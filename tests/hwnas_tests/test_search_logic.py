"""The search logic with a fake space and a fake predictor: no Keras, no converter, no Vela (seconds).

The integration tests beside this file run the same machinery on real networks.
"""
from __future__ import annotations

import json
import math

import optuna
import pytest

from hwnas.search import (
    GiveUp,
    HardwareObjective,
    NoFeasibleCandidateError,
    SearchError,
    axis_scale,
    best_candidates,
    check_setup,
    is_feasible,
    run_search,
    verify_best,
)
from search_spaces.errors import HwnasError

TrialState = optuna.trial.TrialState
optuna.logging.set_verbosity(optuna.logging.WARNING)


class FakeSpace:
    """Archs are one integer ``width`` in 1..20; its "file" is the arch's JSON."""

    name = "fake"
    options: dict = {}

    def suggest(self, trial):
        return {"width": trial.suggest_int("width", 1, 20)}

    def decode(self, arch):
        return {"width": int(arch["width"])}

    def encode(self, arch):
        return {"space": self.name, "width": int(arch["width"])}

    def arch_id(self, arch):
        return f"w{int(arch['width']):02d}"

    def build(self, arch, **kwargs):  # pragma: no cover - the fake objective never builds
        raise AssertionError("a fake space has no Keras model")


class FakePredictor:
    """latency = 0.1 * width ms, std 0.05 ms: deterministic, from the file's bytes."""

    name = "fake-predictor"
    targets = ["ethos-u55-128"]
    metrics = {"ethos-u55-128": ["latency_ms", "energy_mj", "sram_kib", "offchip_kib"]}

    def predict(self, tflite, targets=None):
        width = json.loads(tflite)["width"]
        return {"ethos-u55-128": {"latency_ms": 0.1 * width, "latency_ms_std": 0.05, "energy_mj": 0.01 * width,
                                  "energy_mj_std": 0.0, "sram_kib": 10.0, "sram_kib_std": 0.0,
                                  "offchip_kib": 5.0, "offchip_kib_std": 0.0}}


class FakeObjective(HardwareObjective):
    """Exports an arch as its JSON; the "target" measures latency 0.1 * width + 0.04 ms."""

    def export(self, arch):
        self.exports = getattr(self, "exports", 0) + 1
        return json.dumps(self.space.decode(arch)).encode()

    def macs_of(self, tflite):
        return 1000.0 * json.loads(tflite)["width"]


def fake_measure(tflite: bytes) -> dict:
    width = json.loads(tflite)["width"]
    return {"latency_ms": 0.1 * width + 0.04, "energy_mj": 0.01 * width, "sram_kib": 10.0, "offchip_kib": 5.0}


def objective(**kwargs) -> FakeObjective:
    kwargs.setdefault("objectives", ["macs"])
    return FakeObjective(FakeSpace(), "ethos-u55-128", FakePredictor(), **kwargs)


def run(obj, widths, sampler=None) -> optuna.Study:
    study = optuna.create_study(directions=obj.directions, sampler=sampler or optuna.samplers.RandomSampler(seed=0))
    for w in widths:
        study.enqueue_trial({"width": w})
    study.optimize(obj, n_trials=len(widths))
    return study


def test_over_budget_is_pruned_and_the_margin_is_the_constraint():
    obj = objective(budgets={"latency": 1.0})
    study = run(obj, [5, 15, 10])
    five, fifteen, ten = study.trials
    assert five.state == TrialState.COMPLETE and five.constraints == {"latency_ms": pytest.approx(0.5 - 1.0)}
    assert fifteen.state == TrialState.PRUNED and fifteen.user_attrs["feasible"] is False
    assert fifteen.constraints == {"latency_ms": pytest.approx(1.5 - 1.0)}
    assert ten.state == TrialState.COMPLETE and is_feasible(ten)  # 1.0 <= 1.0
    assert obj.exported_predictions == 3  # the fake space cannot be lowered: the export path


def test_the_margin_in_std_tightens_the_budget():
    obj = objective(budgets={"latency": 1.0}, margin_std=1.0)  # 0.1 w + 0.05 <= 1.0
    study = run(obj, [9, 10])
    assert [t.state for t in study.trials] == [TrialState.COMPLETE, TrialState.PRUNED]


def test_nsga2_gets_infeasible_candidates_completed_with_sentinels():
    obj = FakeObjective(FakeSpace(), "ethos-u55-128", FakePredictor(), budgets={"latency": 1.0},
                        objectives=["macs", "latency"])
    study = run(obj, [5, 15], sampler=optuna.samplers.NSGAIISampler(seed=0, population_size=4))
    ok, over = study.trials
    assert over.state == TrialState.COMPLETE and not is_feasible(over)
    assert over.user_attrs["status"].startswith("infeasible")
    assert [t.number for t in best_candidates(study)] == [ok.number]


def test_best_candidates_is_the_feasible_front_best_first_once_per_arch():
    study = optuna.create_study(directions=["maximize", "minimize"])
    for arch_id, values, margin in [("a", (0.9, 5.0), -1.0), ("b", (0.8, 3.0), -1.0),
                                    ("c", (0.95, 1.0), 0.5),  # dominates all, over budget
                                    ("d", (0.7, 4.0), -1.0),  # dominated by b
                                    ("b", (0.8, 3.0), -1.0)]:  # b again
        study.add_trial(optuna.trial.create_trial(values=list(values), user_attrs={"arch_id": arch_id},
                                                  system_attrs={"constraints:latency_ms": margin}))
    assert [(t.user_attrs["arch_id"], t.number) for t in best_candidates(study)] == [("a", 0), ("b", 1)]


def test_give_up_stops_a_study_nobody_can_satisfy():
    obj = objective(budgets={"latency": 0.01})
    give_up = GiveUp(obj, after=3)
    study = optuna.create_study(directions=obj.directions, sampler=optuna.samplers.RandomSampler(seed=0))
    for w in (11, 3, 7):
        study.enqueue_trial({"width": w})
    study.optimize(obj, n_trials=50, callbacks=[give_up])
    assert give_up.gave_up and len(study.trials) == 3
    with pytest.raises(NoFeasibleCandidateError, match=r"latency_ms <= 0.01: smallest predicted 0\.3 \(w03\)"):
        give_up.raise_if_given_up()
    with pytest.raises(NoFeasibleCandidateError):
        run_search(optuna.create_study(directions=obj.directions), obj, 50, give_up_after=3)


def test_run_search_takes_the_objective_once():
    obj = objective()
    study = run_search(obj, 4)  # a new in-memory study with the objective's directions
    assert len(study.trials) == 4 and [d.name.lower() for d in study.directions] == obj.directions
    assert run_search(obj, 3, study=study) is study and len(study.trials) == 7
    assert run_search(study, obj, 2) is study and len(study.trials) == 9  # the older form
    with pytest.raises(SearchError, match="too many positional"):
        run_search(obj, 2, study)
    with pytest.raises(SearchError, match="positive integer"):
        run_search(obj, 0)


def test_only_unsure_candidates_are_measured_and_the_measurement_decides():
    obj = objective(budgets={"latency": 1.0}, verify="uncertain", verify_std=1.0, measure=fake_measure)
    study = run(obj, [2, 10, 19])  # 0.2 +- 0.05: sure; 1.0: on the budget; 1.9: sure over
    sure_in, unsure, sure_out = study.trials
    assert obj.measurements == 1 and obj.exports == 3  # all three predicted from files, one measured
    assert "verified" not in sure_in.user_attrs and "verified" not in sure_out.user_attrs
    assert unsure.user_attrs["verified"] is True
    assert unsure.user_attrs["measured_latency_ms"] == pytest.approx(1.04)
    assert unsure.state == TrialState.PRUNED  # measured 1.04 > 1.0, though predicted 1.0
    records = verify_best(study, obj)
    assert [r["trial"] for r in records] == [sure_in.number] and records[0]["within_budget"]


def test_verifying_a_device_hwnas_cannot_measure_needs_a_measure_function():
    with pytest.raises(Exception, match="measure=fn"):
        FakeObjective(FakeSpace(), "my-phone", FakeMeasurelessPredictor(), verify="uncertain")


class FakeMeasurelessPredictor(FakePredictor):
    targets = ["my-phone"]
    metrics = {"my-phone": ["latency_ms"]}


def test_cost_axes_spanning_decades_are_drawn_on_a_log_scale():
    assert axis_scale("predicted latency_ms", [0.02, 0.5, 3.0]) == "log"
    assert axis_scale("energy_mj", [1.0, 1.5]) == "linear"  # one decade or less: linear
    assert axis_scale("accuracy", [10.0, 95.0]) == "linear"  # not a cost
    assert axis_scale("latency_ms", [0.0, 3.0]) == "linear"  # a zero cannot be on a log axis
    assert axis_scale("latency_ms", [math.nan, 0.1, 5.0]) == "log"


@pytest.mark.parametrize("kwargs, message", [
    ({"sampler": "cmaes"}, "unknown sampler 'cmaes'"),
    ({"n_trials": 0}, "positive integer"),
    ({"budgets": {"latency": float("nan")}}, "budget for latency must be a positive number"),
    ({"objectives": ["accuracy", "energy"]}, "needs measured accuracies"),
])
def test_check_setup_raises_what_the_library_raises_later(kwargs, message):
    with pytest.raises(HwnasError, match=message):
        check_setup(**kwargs)
    check_setup(sampler="tpe", n_trials=1, budgets={"latency": 0.1}, objectives=["accuracy"], has_accuracy=True)


def test_the_plots_show_what_the_search_did():
    from hwnas.search import history_figure, make_study, pareto_figure

    obj = objective(budgets={"latency": 1.25})
    study = make_study(obj)
    for w in (1, 5, 15, 12):  # latency 0.1 w: 1.5 ms is over budget (pruned), the rest within
        study.enqueue_trial({"width": w})
    run_search(obj, 4, study=study, give_up_after=None)

    (ax,) = pareto_figure(study, {"latency_ms": 1.25}).axes
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("predicted latency_ms", "macs")
    assert ax.get_xscale() == "log"  # 0.1-1.25 ms spans more than 10x
    within = next(c for c in ax.collections if c.get_label() == "within budget")
    assert sorted(within.get_offsets()[:, 0].round(6).tolist()) == [0.1, 0.5, 1.2]
    lines = {line.get_label(): line for line in ax.get_lines()}
    assert lines["budget 1.25"].get_xdata()[0] == pytest.approx(1.25)
    assert lines["over budget (pruned, not trained)"].get_xdata().tolist() == [pytest.approx(1.5)]
    front = lines["best macs at a predicted latency_ms"]
    assert front.get_ydata().tolist() == [1000.0, 5000.0, 12000.0]  # each cheaper point is beaten
    assert "3 feasible of 4" in ax.get_title()

    (hist,) = history_figure(study).axes
    within = next(c for c in hist.collections if c.get_label() == "within budget")
    assert sorted(within.get_offsets()[:, 0].tolist()) == [0, 1, 3]  # trial numbers
    assert hist.get_xlabel() == "trial (1 of 4 over budget)"
