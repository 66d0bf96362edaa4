"""The Optuna plugin: budgets as constraints, pruning before training, objectives, studies, CLI."""
from __future__ import annotations

import json
import os
import re
import statistics
import subprocess
import sys
import uuid
import warnings
from pathlib import Path

import optuna
import pytest

from hwnas.search import (
    Candidate,
    HardwareObjective,
    NoFeasibleCandidateError,
    SearchError,
    accuracy_from_table,
    best_candidates,
    is_feasible,
    make_study,
    open_storage,
    pareto_figure,
    plot_search,
    run_search,
    verify_best,
)
from search_spaces.errors import HwnasError, UnknownNameError
from tests.hwnas_tests.conftest import TARGET
from tests.search_spaces_tests.helpers import png_size, shared_data

REPO = Path(__file__).resolve().parents[2]
SPACE = "keyword_spotting"
N_PROBE = 6
TrialState = optuna.trial.TrialState


def hwnas(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    env = dict(os.environ, HWNAS_TORCH_THREADS="1")
    return subprocess.run([sys.executable, "-m", "hwnas", *args], capture_output=True, text=True, timeout=timeout,
                          env=env, cwd=REPO)


@pytest.fixture(scope="module")
def probe(search_predictor):
    """Six random keyword-spotting archs with their predicted latency (the budgets come from these)."""
    objective = HardwareObjective(SPACE, TARGET, search_predictor, objectives=["latency"])
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    study.optimize(objective, n_trials=N_PROBE)
    rows = [(t.params, t.user_attrs["predicted_latency_ms"], t.user_attrs["predicted_latency_ms_std"],
             t.user_attrs["arch_id"]) for t in study.trials]
    assert len({r[3] for r in rows}) == N_PROBE
    return objective, rows


def replay(objective, probe_objective, rows, sampler) -> optuna.Study:
    """The probe's archs again, in order, under ``objective`` (sharing its exports)."""
    objective._cache = probe_objective._cache
    study = optuna.create_study(directions=objective.directions, sampler=sampler)
    for params, *_ in rows:
        study.enqueue_trial(params)
    run_search(objective, len(rows), study=study, give_up_after=None)
    return study


def counting(value=90.0):
    calls = []

    def accuracy(candidate: Candidate) -> float:
        calls.append(candidate.arch_id)
        return value

    accuracy.calls = calls
    return accuracy


def test_over_budget_is_pruned_before_training_and_recorded_as_a_constraint(probe, search_predictor, tmp_path):
    probe_objective, rows = probe
    budget = statistics.median(r[1] for r in rows)
    accuracy = counting()
    store = optuna.artifacts.FileSystemArtifactStore(str(tmp_path))
    objective = HardwareObjective(SPACE, TARGET, search_predictor, budgets={"latency": budget},
                                  accuracy=accuracy, artifact_store=store)
    assert objective.directions == ["maximize"] and objective.budgets[0].metric == "latency_ms"
    study = replay(objective, probe_objective, rows, optuna.samplers.TPESampler(seed=0))
    space = objective.space
    over = [r[3] for r in rows if r[1] > budget]
    assert 0 < len(over) < N_PROBE
    for trial, (_, latency, std, arch_id) in zip(study.trials, rows):
        attrs = trial.user_attrs
        assert attrs["arch_id"] == arch_id == space.arch_id(attrs["arch"])  # the arch JSON rebuilds the network
        assert trial.constraints == {"latency_ms": pytest.approx(latency - budget)}
        for metric in ("latency_ms", "energy_mj", "sram_kib", "offchip_kib"):
            assert attrs[f"predicted_{metric}"] > 0 and attrs[f"predicted_{metric}_std"] >= 0
        assert attrs["macs"] > 0
        if arch_id in over:
            assert trial.state == TrialState.PRUNED and attrs["feasible"] is False
            assert "tflite_artifact_id" not in attrs
        else:
            assert trial.state == TrialState.COMPLETE and trial.value == 90.0 and attrs["feasible"] is True
            data = (tmp_path / attrs["tflite_artifact_id"]).read_bytes()
            assert data[4:8] == b"TFL3" and data == objective.export(space.decode(attrs["arch"]))
    assert sorted(accuracy.calls) == sorted(r[3] for r in rows if r[3] not in over)  # no training over budget
    assert {t.number for t in study.best_trials} <= {t.number for t in study.trials if is_feasible(t)}


@pytest.mark.parametrize("sampler", ["nsga2", "gp"])
def test_nsga2_and_gp_complete_infeasible_candidates_without_training(sampler, probe, search_predictor):
    probe_objective, rows = probe
    budget = statistics.median(r[1] for r in rows)
    accuracy = counting()
    objective = HardwareObjective(SPACE, TARGET, search_predictor, budgets={"latency_ms": budget},
                                  objectives=["accuracy", "energy"], accuracy=accuracy)
    assert objective.directions == ["maximize", "minimize"]
    sampler = (optuna.samplers.NSGAIISampler(seed=0, population_size=4) if sampler == "nsga2"
               else optuna.samplers.GPSampler(seed=0))
    study = replay(objective, probe_objective, rows, sampler)
    assert all(t.state == TrialState.COMPLETE for t in study.trials)  # they learn only from COMPLETE trials
    for trial, (_, latency, _, arch_id) in zip(study.trials, rows):
        assert trial.values[1] == pytest.approx(trial.user_attrs["predicted_energy_mj"])
        if latency > budget:
            assert trial.values[0] == 0.0 and trial.constraints["latency_ms"] > 0
            assert trial.user_attrs["status"].startswith("infeasible") and arch_id not in accuracy.calls
    front = best_candidates(study)
    assert front and all(is_feasible(t) for t in front)
    assert {t.number for t in study.best_trials} == {t.number for t in front}


def test_a_margin_of_k_std_tightens_the_budget(probe, search_predictor):
    probe_objective, rows = probe
    params, latency, std, _ = max(rows, key=lambda r: r[2] / r[1])
    assert std > 0  # an ensemble
    budget = latency + 0.5 * std
    results = {}
    for k in (0.0, 1.0):
        objective = HardwareObjective(SPACE, TARGET, search_predictor, budgets={"latency_ms": budget},
                                      margin_std=k, objectives=["macs"])
        study = replay(objective, probe_objective, [(params, latency, std, None)], optuna.samplers.TPESampler())
        results[k] = study.trials[0]
    assert results[0.0].state == TrialState.COMPLETE and results[0.0].constraints["latency_ms"] < 0
    assert results[1.0].state == TrialState.PRUNED
    assert results[1.0].constraints["latency_ms"] == pytest.approx(latency + std - budget)


def test_a_budget_no_candidate_meets_stops_with_the_smallest_prediction(probe, search_predictor):
    probe_objective, rows = probe
    objective = HardwareObjective(SPACE, TARGET, search_predictor, budgets={"latency_ms": 1e-9})
    objective._cache = probe_objective._cache
    study = make_study(objective, sampler="random", seed=0)
    smallest = min(r[1] for r in rows)
    for params, *_ in rows[:3]:
        study.enqueue_trial(params)
    with pytest.raises(NoFeasibleCandidateError, match=r"no candidate met the budget in 3 trials \(latency_ms <= 1e-09: "
                                                        r"smallest predicted [0-9.e-]+"):
        run_search(objective, 10, study=study, give_up_after=3)
    assert len(study.trials) == 3
    assert objective.smallest["latency_ms"][0] == pytest.approx(min(r[1] for r in rows[:3]))
    assert objective.smallest["latency_ms"][0] >= smallest


def test_set_up_errors(search_predictor, tmp_path):
    with pytest.raises(UnknownNameError, match="target 'ethos-u55-128' has no metric 'arena_kib'"):
        HardwareObjective(SPACE, TARGET, search_predictor, budgets={"arena_kib": 1.0})
    with pytest.raises(SearchError, match="accuracy objective needs measured accuracies"):
        HardwareObjective(SPACE, TARGET, search_predictor, objectives=["accuracy"])
    with pytest.raises(UnknownNameError, match="unknown objective 'speed'"):
        HardwareObjective(SPACE, TARGET, search_predictor, objectives=["speed"])
    with pytest.raises(SearchError, match="must be a positive number"):
        HardwareObjective(SPACE, TARGET, search_predictor, budgets={"latency": -1})
    with pytest.raises(UnknownNameError, match="unknown target"):
        HardwareObjective(SPACE, "npu-9000", search_predictor)
    with pytest.raises(UnknownNameError, match="unknown sampler 'cmaes'"):
        make_study(HardwareObjective(SPACE, TARGET, search_predictor), sampler="cmaes")
    with pytest.raises(SearchError, match="cannot open storage"):
        open_storage(f"sqlite:///{tmp_path}/missing/dir/x.db")
    # one study, one set-up: joining with other budgets is refused
    url = f"sqlite:///{tmp_path}/s.db"
    make_study(HardwareObjective(SPACE, TARGET, search_predictor, budgets={"latency_ms": 1.0}), url, "s")
    with pytest.raises(SearchError, match="set up with other budgets"):
        make_study(HardwareObjective(SPACE, TARGET, search_predictor, budgets={"latency_ms": 2.0}), url, "s")


def test_accuracy_table_matches_candidates_by_arch(tmp_path):
    import search_spaces

    space = search_spaces.get("nasbench201")
    a = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"
    b = "|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_1x1~0|skip_connect~1|skip_connect~2|"
    csv = tmp_path / "acc.csv"
    csv.write_text(f"arch_str,top1_acc,note\n{a},93.5,x\n{b},85.1,y\nnot-an-arch,1,z\n")
    accuracy = accuracy_from_table(csv, space)
    assert accuracy.column == "top1_acc" and len(accuracy.table) == 2

    def cand(arch_str):
        arch = space.decode(arch_str)
        trial = optuna.create_study().ask()
        return Candidate(space, arch, space.arch_id(arch), trial, b"", {}, 0.0)

    assert accuracy(cand(a)) == 93.5 and accuracy(cand(b)) == 85.1
    with pytest.raises(optuna.TrialPruned):
        accuracy(cand("|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"))
    with pytest.raises(SearchError, match="no column 'acc'"):
        accuracy_from_table(csv, space, column="acc")


def test_nats_bench_table_gives_the_published_accuracy():
    import csv as csvlib

    import search_spaces

    path = shared_data("nb201", "nats_bench_accuracy.csv")
    space = search_spaces.get("nasbench201")
    accuracy = accuracy_from_table(path, space, column="CIFAR10TestAccuracy200Epochs")
    assert len(accuracy.table) == 15625
    with open(path, newline="") as f:
        row = next(csvlib.DictReader(f))
    arch = space.decode(row["ArchitectureString"])
    assert accuracy.table[space.arch_id(arch)] == pytest.approx(float(row["CIFAR10TestAccuracy200Epochs"]))


def test_plots_are_written(probe, search_predictor, tmp_path):
    probe_objective, rows = probe
    budget = statistics.median(r[1] for r in rows)
    objective = HardwareObjective(SPACE, TARGET, search_predictor, budgets={"latency_ms": budget},
                                  objectives=["macs", "energy"])
    study = replay(objective, probe_objective, rows, optuna.samplers.NSGAIISampler(seed=0, population_size=4))
    paths = plot_search(study, tmp_path, {"latency_ms": budget})
    assert all(Path(p).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in paths.values())
    (ax,) = pareto_figure(study, {"latency_ms": budget}).axes
    front = next(line for line in ax.get_lines() if line.get_label() == "Pareto front (feasible)")
    expected = sorted((t.values[0], t.values[1]) for t in best_candidates(study, limit=None))
    assert len(expected) >= 2
    assert list(front.get_xdata()) == pytest.approx([x for x, _ in expected])
    assert list(front.get_ydata()) == pytest.approx([y for _, y in expected])


# --- the command line, as a user runs it ---------------------------------------------------------


def one_line_error(proc: subprocess.CompletedProcess, pattern: str) -> None:
    import re

    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("hwnas: error: "), proc.stderr
    assert "Traceback" not in proc.stderr
    assert re.search(pattern, lines[0]), lines[0]


@pytest.mark.parametrize("args, pattern", [
    (["--space", "nope"], "unknown search space 'nope'"),
    (["--target", "npu-9000"], "unknown target 'npu-9000'"),
    (["--sampler", "cmaes"], "unknown sampler 'cmaes'"),
    (["--storage", "sqlite:////no/such/dir/s.db"], "cannot open storage sqlite:////no/such/dir/s.db"),
    (["--storage", "postgresql://hwnas:secret@127.0.0.1:9/nodb"], r"cannot open storage postgresql://hwnas:\*\*\*@"),
    (["--storage", "nonsense"], "cannot open storage 'nonsense'"),
    (["--objective", "accuracy"], "accuracy objective needs measured accuracies.*--accuracy-csv"),
    (["--max-latency-ms", "0"], "budget for latency must be a positive number"),
    (["--update-every", "2"], r"update_every \(--update-every\) .* needs verify='uncertain'"),
])
def test_cli_bad_input_is_one_line(args, pattern, tmp_path):
    base = {"--space": SPACE, "--target": TARGET, "--trials": "2", "--out": str(tmp_path)}
    for flag, value in zip(args[::2], args[1::2]):
        base[flag] = value
    proc = hwnas("search", *[x for kv in base.items() for x in kv], timeout=120)
    one_line_error(proc, pattern)
    assert "secret" not in proc.stderr


def test_cli_impossible_budget(search_predictor_path, tmp_path):
    proc = hwnas("search", "--space", SPACE, "--target", TARGET, "--predictor", search_predictor_path,
                 "--max-latency-ms", "0.000001", "--trials", "10", "--give-up-after", "2", "--out", str(tmp_path),
                 "--seed", "0")
    one_line_error(proc, r"no candidate met the budget in 2 trials \(latency_ms <= 1e-06: smallest predicted")


def check_one_consistent_study(storage, name, n_expected):
    study = optuna.load_study(study_name=name, storage=open_storage(storage))
    trials = study.get_trials(deepcopy=False)
    assert sorted(t.number for t in trials) == list(range(n_expected))  # none lost, none duplicated
    assert len({t._trial_id for t in trials}) == n_expected
    assert all(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials)
    assert all("arch_id" in t.user_attrs and "predicted_latency_ms" in t.user_attrs for t in trials)
    return study


def run_workers(storage, name, predictor, out, budget, workers=2, trials=3, json_out=False):
    cmd = [sys.executable, "-m", "hwnas", "search", "--space", SPACE, "--target", TARGET, "--predictor", predictor,
           "--max-latency-ms", str(budget), "--trials", str(trials), "--storage", storage, "--study-name", name,
           "--out", str(out), "--give-up-after", "100"]
    env = dict(os.environ, HWNAS_TORCH_THREADS="1")
    procs = [subprocess.Popen(cmd + ["--seed", str(i)] + (["--json"] if json_out and i == 0 else []), cwd=REPO,
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for i in range(workers)]
    results = [p.communicate(timeout=600) for p in procs]
    for p, (stdout, stderr) in zip(procs, results):
        assert p.returncode == 0, stderr[-3000:]
    return results


def test_cli_search_workers_share_one_journal_study(probe, search_predictor_path, tmp_path):
    _, rows = probe
    budget = statistics.median(r[1] for r in rows)
    storage = f"journal:{tmp_path / 'study.log'}"
    results = run_workers(storage, "kws-journal", search_predictor_path, tmp_path, budget, json_out=True)
    study = check_one_consistent_study(storage, "kws-journal", 6)
    report = json.loads(results[0][0])  # --json: nothing else on stdout
    assert report["objectives"] == ["macs"] and report["study"] == "kws-journal"
    for entry in report["best"]:
        assert entry["feasible"] and entry["predicted"]["latency_ms"] <= budget
        assert (tmp_path / "artifacts" / entry["tflite_artifact_id"]).is_file()
    # the figures as history_figure / pareto_figure lay them out: one 7 x 2.6 in panel per objective
    assert png_size(report["plots"]["history"]) == pytest.approx((7, 2.6), abs=0.02)
    assert png_size(report["plots"]["pareto"]) == pytest.approx((6.5, 4.5), abs=0.02)
    assert study.user_attrs["hwnas"]["budgets"] == {"latency_ms": budget}
    table = results[1][0]  # the other worker printed the summary table
    assert "trials in the study" in table and "arch_id" in table and "plots:" in table


def test_cli_search_workers_share_one_postgresql_study(probe, search_predictor_path, tmp_path):
    url = os.environ.get("HWNAS_TEST_POSTGRES_URL")
    if not url:
        pytest.skip("no PostgreSQL server (set HWNAS_TEST_POSTGRES_URL; .ci/run starts one)")
    try:
        open_storage(url)
    except SearchError as exc:
        pytest.skip(f"PostgreSQL not reachable: {exc}")
    _, rows = probe
    budget = statistics.median(r[1] for r in rows)
    name = f"kws-pg-{uuid.uuid4().hex[:8]}"
    run_workers(url, name, search_predictor_path, tmp_path, budget, workers=2, trials=3)
    study = check_one_consistent_study(url, name, 6)
    optuna.delete_study(study_name=name, storage=open_storage(url))
    assert study.study_name == name


# --- the examples, reduced -----------------------------------------------------------------------


@pytest.mark.parametrize("script", ["latency_constrained_search.py", "multiobjective_accuracy_energy.py"])
def test_examples_run_quick(script, search_predictor_path, tmp_path):
    env = dict(os.environ, HWNAS_TORCH_THREADS="1")
    proc = subprocess.run([sys.executable, str(REPO / "examples" / script), "--quick", "--predictor",
                           search_predictor_path, "--out", str(tmp_path)], capture_output=True, text=True,
                          timeout=900, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "plots:" in proc.stdout and (tmp_path / "pareto.png").is_file() and (tmp_path / "study.db").is_file()
    if script.startswith("latency"):
        # seed 0: trial 0 is within the 0.1 ms budget, so a candidate is trained and measured
        measured = re.search(r"measured on ethos-u55-128 \(Vela\): ([0-9.e-]+) ms, within the 0.1 ms budget "
                             r"\(predicted ([0-9.e-]+) ", proc.stdout)
        assert measured, proc.stdout
        if search_predictor_path == "perfsage-ethos-u55-128":  # the shipped predictor, as the demo uses it
            assert abs(float(measured[2]) / float(measured[1]) - 1) < 0.1
    else:
        assert "Pareto front of accuracy and predicted energy" in proc.stdout


HELP_CSV = REPO.parent / "shared" / "data" / "nb201" / "help_nb201_latency_ms.csv"


@pytest.mark.skipif(not HELP_CSV.is_file(), reason="needs ../shared/data (the public device tables)")
def test_retrain_example_goes_from_a_measurement_table_to_a_search(tmp_path):
    env = dict(os.environ, HWNAS_TORCH_THREADS="1")
    proc = subprocess.run([sys.executable, str(REPO / "examples" / "retrain_predictor.py"), "--quick", "--out",
                           str(tmp_path)], capture_output=True, text=True, timeout=900, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "raspi4: 12 networks imported" in proc.stdout
    assert (tmp_path / "predictor" / "manifest.json").is_file()
    assert "on raspi4" in proc.stdout and "best of the feasible candidates" in proc.stdout, proc.stdout[-2000:]


def test_trials_predict_from_the_lowered_graph_and_export_only_what_they_keep(probe, search_predictor, tmp_path):
    probe_objective, rows = probe
    budget = statistics.median(r[1] for r in rows)
    store = optuna.artifacts.FileSystemArtifactStore(str(tmp_path))
    objective = HardwareObjective(SPACE, TARGET, search_predictor, budgets={"latency": budget}, artifact_store=store)
    exports = []
    real_export = objective.export
    objective.export = lambda arch: exports.append(objective.space.arch_id(arch)) or real_export(arch)
    study = optuna.create_study(directions=objective.directions, sampler=optuna.samplers.TPESampler(seed=0))
    for params, *_ in rows:
        study.enqueue_trial(params)
    run_search(objective, len(rows), study=study, give_up_after=None)
    assert {t.user_attrs["hardware_path"] for t in study.trials} == {"lowered"}
    kept = [t.user_attrs["arch_id"] for t in study.trials if "tflite_artifact_id" in t.user_attrs]
    assert kept and sorted(exports) == sorted(kept)  # exported: the feasible candidates' artifacts, nothing else
    assert objective.exported_predictions == 0 and objective.lowering_fallbacks == 0
    # the same predictions as the export path (the lowering reproduces the converter's graph)
    for t, (_, latency, _, _) in zip(study.trials, rows):
        assert t.user_attrs["predicted_latency_ms"] == pytest.approx(latency, rel=0.01)


def test_a_builder_the_lowering_cannot_run_takes_the_export_path(search_predictor):
    from search_spaces.keyword_spotting import KeywordSpottingSpace

    class NoisySpace(KeywordSpottingSpace):
        """Keyword spotting with a training-time noise layer (an identity once exported)."""

        def _build(self, arch, inputs, keras):
            return super()._build(arch, keras.layers.GaussianNoise(0.1)(inputs), keras)

    objective = HardwareObjective(NoisySpace(), TARGET, search_predictor)
    study = optuna.create_study(directions=objective.directions, sampler=optuna.samplers.RandomSampler(seed=1))
    run_search(objective, 1, study=study)
    (trial,) = study.trials
    assert trial.state == TrialState.COMPLETE and trial.user_attrs["hardware_path"] == "exported"
    assert objective.lowering_fallbacks == 1 and objective.exported_predictions == 1


def test_verification_measures_candidates_near_the_budget_and_the_best(probe, search_predictor):
    from predictors import targets

    probe_objective, rows = probe
    _, latency, std, arch_id = min(rows, key=lambda r: r[1])
    budget = latency  # this candidate's prediction sits on the budget: unsure
    objective = HardwareObjective(SPACE, TARGET, search_predictor, budgets={"latency": budget},
                                  verify="uncertain", verify_std=1.0)
    study = optuna.create_study(directions=objective.directions, sampler=optuna.samplers.RandomSampler(seed=0))
    for params, *_ in rows:
        study.enqueue_trial(params)
    run_search(objective, len(rows), study=study, give_up_after=None)
    by_id = {t.user_attrs["arch_id"]: t for t in study.trials}
    trial = by_id[arch_id]
    measured = targets.get(TARGET).measure(objective.export(objective.space.decode(trial.user_attrs["arch"])))
    assert trial.user_attrs["verified"] is True
    assert trial.user_attrs["measured_latency_ms"] == pytest.approx(measured["latency_ms"])
    assert trial.constraints["latency_ms"] == pytest.approx(measured["latency_ms"] - budget)  # the measurement decides
    assert objective.measurements >= 1
    unsure = [t for t in study.trials if t.user_attrs.get("verified")]
    assert len(unsure) == objective.measurements
    records = verify_best(study, objective)
    assert records == study.user_attrs["hwnas_verified"]
    for rec in records:
        assert rec["within_budget"] == (rec["measured"]["latency_ms"] <= budget)
    with pytest.raises(SearchError, match="verify must be"):
        HardwareObjective(SPACE, TARGET, search_predictor, verify="sometimes")


def test_updates_fit_the_predictor_to_a_device_it_was_not_trained_on(probe, search_predictor):
    """A U55 predictor searching for a U65 (real Vela, another NPU): every candidate is
    measured (a budget inside every straddle); after each pair of measurements the
    predictor is fitted to them, and the next trials are predicted by the fitted one."""
    import numpy as np

    from predictors import targets

    probe_objective, rows = probe
    u65 = targets.get("ethos-u65-256").measure
    budget = statistics.median(r[1] for r in rows)
    objective = HardwareObjective(SPACE, TARGET, search_predictor, budgets={"latency": budget},
                                  verify="uncertain", verify_std=1e9, measure=u65, update_every=2, update_epochs=40)
    study = optuna.create_study(directions=objective.directions, sampler=optuna.samplers.RandomSampler(seed=0))
    for params, *_ in rows:
        study.enqueue_trial(params)
    run_search(objective, len(rows), study=study, give_up_after=None)
    assert objective.measurements == N_PROBE and objective.updates == N_PROBE // 2
    assert [t.user_attrs["predictor_updates"] for t in study.trials] == [k // 2 for k in range(N_PROBE)]
    assert objective.predictor is not objective.base_predictor
    assert objective.predictor.manifest["update"]["graphs"] == N_PROBE
    graphs = objective.measured_graphs
    measured = np.array([[t.user_attrs["measured_latency_ms"]] for t in study.trials])
    col = search_predictor.label_names.index(f"{TARGET}/latency_ms")

    def error(predictor):
        mean, _ = predictor.predict_graphs(graphs)
        return float(np.mean(np.abs(mean[:, col:col + 1] - measured) / measured))

    # the U55's latency is not the U65's; fitted to the U65's, the predictor is nearer to it
    assert error(objective.predictor) < 0.5 * error(objective.base_predictor)
    for verify in ("none", "best"):  # "best" measures only after the search: nothing to learn from during it
        with pytest.raises(SearchError, match="needs verify='uncertain'"):
            HardwareObjective(SPACE, TARGET, search_predictor, verify=verify, update_every=2)
    with pytest.raises(SearchError, match="whole number"):
        HardwareObjective(SPACE, TARGET, search_predictor, verify="uncertain", update_every=-1)


def test_study_optimize_alone_fails_a_bad_candidate_and_goes_on(search_predictor):
    from search_spaces.keyword_spotting import KeywordSpottingSpace

    class PickySpace(KeywordSpottingSpace):
        """Refuses to build networks of 8 channels (as a user's builder might refuse some)."""

        def _build(self, arch, inputs, keras):
            if arch["channels"] == 8:
                raise HwnasError("8 channels: not buildable here")
            return super()._build(arch, inputs, keras)

    objective = HardwareObjective(PickySpace(), TARGET, search_predictor)
    study = optuna.create_study(directions=objective.directions)
    study.enqueue_trial({"kws_channels": 8})
    study.enqueue_trial({"kws_channels": 16})
    study.optimize(objective, n_trials=2)  # plain Optuna: no run_search, no catch=
    first, second = study.trials
    assert first.state == TrialState.FAIL and "not buildable" in first.user_attrs["failure"]
    assert second.state == TrialState.COMPLETE


def test_infeasible_mode_follows_what_the_sampler_is_not_its_name(search_predictor):
    from hwnas.search import _learns_only_from_complete

    class MyNSGA(optuna.samplers.NSGAIISampler):
        pass

    assert _learns_only_from_complete(MyNSGA(seed=0))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        wrapped = optuna.samplers.PartialFixedSampler({}, optuna.samplers.NSGAIISampler())
    assert _learns_only_from_complete(wrapped)
    assert not _learns_only_from_complete(optuna.samplers.TPESampler())


def test_loading_a_predictor_leaves_the_process_thread_count_alone(search_predictor_path):
    code = ("import torch; torch.set_num_threads(2)\n"
            "from predictors import load_predictor\n"
            f"p = load_predictor({search_predictor_path!r})\n"
            "import search_spaces, numpy as np\n"
            "space = search_spaces.get('keyword_spotting')\n"
            "p.predict_arch(space, space.sample(np.random.default_rng(0)))\n"
            "print(torch.get_num_threads())\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "2"


def test_a_worker_killed_mid_trial_has_its_trial_failed_and_the_arch_retried(tmp_path, search_predictor_path):
    """A real SIGKILL of a worker during a trial, then a second worker on the same SQLite study."""
    import signal
    import time

    db = tmp_path / "study.db"
    script = tmp_path / "worker.py"
    script.write_text(
        "import sys, time, optuna\n"
        "from hwnas.search import HardwareObjective, make_study, open_storage\n"
        "optuna.logging.set_verbosity(optuna.logging.WARNING)\n"
        f"objective = HardwareObjective('keyword_spotting', {TARGET!r}, {search_predictor_path!r},\n"
        "    accuracy=lambda c: time.sleep(float(sys.argv[1])) or 0.5)\n"
        f"study = make_study(objective, open_storage('sqlite:///{db}'), 'killed', 'random', seed=int(sys.argv[2]))\n"
        "study.optimize(objective, n_trials=int(sys.argv[3]))\n")
    env = dict(os.environ, HWNAS_HEARTBEAT_S="1", HWNAS_TORCH_THREADS="1")
    worker = subprocess.Popen([sys.executable, str(script), "600", "0", "1"], cwd=REPO, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    storage = None
    deadline = time.time() + 180
    running = []
    while time.time() < deadline and not running:
        time.sleep(0.5)
        if db.exists():
            try:
                storage = storage or open_storage(f"sqlite:///{db}")
                study = optuna.load_study(study_name="killed", storage=storage)
                running = [t for t in study.get_trials() if t.state == TrialState.RUNNING]
            except Exception:  # the first worker is still creating the tables
                continue
    assert running, "the worker never started a trial"
    time.sleep(1.5)  # a beat or two
    worker.send_signal(signal.SIGKILL)
    worker.wait()
    time.sleep(3)  # past the grace period (two beats)
    again = subprocess.run([sys.executable, str(script), "0", "1", "1"], cwd=REPO, env=env, capture_output=True,
                           text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    trials = optuna.load_study(study_name="killed", storage=storage).get_trials()
    killed = trials[0]
    assert killed.state == TrialState.FAIL  # no longer RUNNING for ever
    retried = [t for t in trials[1:] if t.system_attrs.get("failed_trial") == killed.number]
    assert retried and retried[0].state == TrialState.COMPLETE and retried[0].params == killed.params
    assert not [t for t in trials if t.state == TrialState.RUNNING]
