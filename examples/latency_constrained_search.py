"""A latency-constrained NAS study: the most accurate keyword-spotting DS-CNN within a latency budget.

    python examples/latency_constrained_search.py [--max-latency-ms 0.1] [--trials 20]
        [--predictor perfsage-ethos-u55-128 | PATH] [--storage URL] [--out DIR] [--quick]

Every candidate's latency on the Arm Ethos-U55-128 is predicted by PerfSAGE from its
int8 TFLite graph in milliseconds; candidates predicted over budget are pruned before
any training, and ``trial.set_constraint`` tells the sampler (TPE) where the budget
lies. The candidates within budget are trained for a few epochs on real data
(scikit-learn's digits, resized to the space's 49x10 input). At the end the best
candidate's latency is measured with Vela, the ground truth the predictor stands in
for. This is ``make demo``.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time



def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", default="ethos-u55-128")
    parser.add_argument("--predictor", default=None, help="default: the shipped perfsage-<target>")
    parser.add_argument("--max-latency-ms", type=float, default=0.1)
    parser.add_argument("--margin-std", type=float, default=1.0,
                        help="over budget when predicted + K std > budget (default 1)")
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--storage", default=None, help="default: sqlite in --out")
    parser.add_argument("--out", default="out/latency_search")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="a few trials on a subset (CI)")
    args = parser.parse_args(argv)
    if args.quick:
        args.trials, args.epochs = min(args.trials, 4), 1

    import optuna
    from optuna.artifacts import FileSystemArtifactStore

    from _digits import load_digits_data, make_accuracy
    from hwnas import HardwareObjective, HwnasError, best_candidates, make_study, plot_search, run_search
    from hwnas.cli import format_table
    from predictors import targets

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # the summary below says what happened
    started = time.perf_counter()
    os.makedirs(args.out, exist_ok=True)
    data = load_digits_data(subset=400 if args.quick else None, seed=args.seed)
    try:
        objective = HardwareObjective(
            "keyword_spotting", args.target, args.predictor,
            space_options={"num_classes": 10},
            budgets={"latency_ms": args.max_latency_ms},
            margin_std=args.margin_std,
            objectives=["accuracy"],
            accuracy=make_accuracy(data, epochs=args.epochs),
            artifact_store=FileSystemArtifactStore(_mkdir(os.path.join(args.out, "artifacts"))),
        )
        study = make_study(
            objective, storage=args.storage or f"sqlite:///{os.path.join(args.out, 'study.db')}",
            study_name=f"latency-{time.strftime('%Y%m%d-%H%M%S')}", sampler="tpe", seed=args.seed,
        )
        run_search(objective, args.trials, study=study, give_up_after=max(args.trials, 10))
    except HwnasError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    plots = plot_search(study, args.out, {"latency_ms": args.max_latency_ms})

    trials = study.get_trials(deepcopy=False)
    pruned = [t for t in trials if t.state == optuna.trial.TrialState.PRUNED and t.user_attrs.get("feasible") is False]
    trained = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    stopped = [t for t in trials if t.state == optuna.trial.TrialState.PRUNED and t.user_attrs.get("feasible")]
    train_s = sum(t.user_attrs.get("timing", {}).get("objectives_s", 0.0) for t in trained)
    print(f"{len(trials)} trials: {len(pruned)} predicted over {args.max_latency_ms} ms (pruned, not trained), "
          f"{len(trained)} trained ({train_s:.0f} s), {len(stopped)} stopped early by the median pruner")
    best = best_candidates(study, limit=5)
    rows = [(t.number, t.user_attrs["arch_id"], t.value, t.user_attrs["predicted_latency_ms"],
             t.user_attrs["predicted_latency_ms_std"], t.user_attrs["predicted_energy_mj"], t.user_attrs["macs"])
            for t in best]
    print(format_table(rows, ("trial", "arch_id", "val accuracy %", "pred latency ms", "std", "pred energy mJ",
                              "MACs")))
    if best:
        winner = best[0]
        measured = targets.get(args.target).measure(objective.export(objective.space.decode(winner.user_attrs["arch"])))
        ok = "within" if measured["latency_ms"] <= args.max_latency_ms else "OVER"
        arch = {k: v for k, v in winner.user_attrs["arch"].items() if k not in ("space", "options")}
        print(f"best: trial {winner.number}, {json.dumps(arch)}")
        print(f"measured on {args.target} (Vela): {measured['latency_ms']:.4g} ms, {ok} the {args.max_latency_ms} ms "
              f"budget (predicted {winner.user_attrs['predicted_latency_ms']:.4g} "
              f"+- {winner.user_attrs['predicted_latency_ms_std']:.2g} ms)")
    else:
        print("no candidate within budget was trained")
    print(f"plots: {plots['pareto']}, {plots['history']}; study: {study.study_name}; "
          f"{time.perf_counter() - started:.0f} s")
    return 0


def _mkdir(path: str) -> str:
    os.makedirs(path, exist_ok=True)
    return path


if __name__ == "__main__":
    sys.exit(main())
