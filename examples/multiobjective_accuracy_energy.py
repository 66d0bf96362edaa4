"""A multi-objective NAS study: maximise accuracy, minimise predicted energy (NSGA-II, Pareto front).

    python examples/multiobjective_accuracy_energy.py [--accuracy nats-bench|digits] [--trials 60]
        [--predictor perfsage-ethos-u55-128 | PATH] [--max-latency-ms X] [--out DIR] [--quick]

Two sources of accuracy, both real and offline:

* ``nats-bench`` (default when the table is there): the NAS-Bench-201 space with the
  NATS-Bench CIFAR-10 test accuracies (200 epochs) of ``../shared/data/nb201/
  nats_bench_accuracy.csv`` (``--accuracy-csv``): a tabular oracle, so a trial costs
  an export and a prediction;
* ``digits``: the keyword-spotting DS-CNN space, each candidate trained for a few
  epochs on scikit-learn's digits.

Energy per inference on the Ethos-U55-128 is predicted by PerfSAGE. NSGA-II only
learns from complete trials, so a candidate over an optional latency budget is
completed without training (accuracy 0, its constraint > 0) rather than pruned; it
never appears on the Pareto front. Writes ``pareto.png`` and ``history.png``.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NATS_CSV = os.path.join(os.environ.get("HWNAS_SHARED_DATA", os.path.join(os.path.dirname(REPO), "shared", "data")),
                        "nb201", "nats_bench_accuracy.csv")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accuracy", choices=("nats-bench", "digits"), default=None,
                        help="default: nats-bench if the table exists, else digits")
    parser.add_argument("--accuracy-csv", default=NATS_CSV)
    parser.add_argument("--accuracy-column", default="CIFAR10TestAccuracy200Epochs")
    parser.add_argument("--target", default="ethos-u55-128")
    parser.add_argument("--predictor", default=None, help="default: the shipped perfsage-<target>")
    parser.add_argument("--max-latency-ms", type=float, default=None, help="optional latency budget")
    parser.add_argument("--trials", type=int, default=None, help="default: 60 (nats-bench), 16 (digits)")
    parser.add_argument("--epochs", type=int, default=2, help="training epochs (digits)")
    parser.add_argument("--storage", default=None, help="default: sqlite in --out")
    parser.add_argument("--out", default="out/multiobjective_search")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="a few trials (CI)")
    args = parser.parse_args(argv)
    source = args.accuracy or ("nats-bench" if os.path.isfile(args.accuracy_csv) else "digits")
    trials = args.trials or (60 if source == "nats-bench" else 16)
    if args.quick:
        trials, args.epochs = min(trials, 4), 1

    import optuna
    from optuna.artifacts import FileSystemArtifactStore

    from hwnas import HardwareObjective, HwnasError, accuracy_from_table, best_candidates, make_study, plot_search
    from hwnas import run_search
    from hwnas.cli import format_table
    import search_spaces

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # the summary below says what happened
    started = time.perf_counter()
    os.makedirs(os.path.join(args.out, "artifacts"), exist_ok=True)
    try:
        if source == "nats-bench":
            space = search_spaces.get("nasbench201")  # CIFAR-10: 32x32x3, 10 classes
            accuracy = accuracy_from_table(args.accuracy_csv, space, column=args.accuracy_column)
            print(f"accuracy: {args.accuracy_column} of {len(accuracy.table)} NB201 archs ({args.accuracy_csv})")
        else:
            from _digits import load_digits_data, make_accuracy

            space = search_spaces.get("keyword_spotting", num_classes=10)
            accuracy = make_accuracy(load_digits_data(subset=400 if args.quick else None, seed=args.seed),
                                     epochs=args.epochs)
            print("accuracy: DS-CNN trained on scikit-learn's digits")
        objective = HardwareObjective(
            space, args.target, args.predictor,
            budgets={"latency_ms": args.max_latency_ms} if args.max_latency_ms else None,
            objectives=["accuracy", "energy"],
            accuracy=accuracy,
            artifact_store=FileSystemArtifactStore(os.path.join(args.out, "artifacts")),
        )
        study = make_study(
            objective, storage=args.storage or f"sqlite:///{os.path.join(args.out, 'study.db')}",
            study_name=f"accuracy-energy-{source}-{time.strftime('%Y%m%d-%H%M%S')}", sampler="nsga2",
            seed=args.seed, n_trials=trials,
        )
        run_search(objective, trials, study=study)
    except HwnasError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    plots = plot_search(study, args.out, {"latency_ms": args.max_latency_ms} if args.max_latency_ms else None)
    front = best_candidates(study)
    rows = [(t.number, t.user_attrs["arch_id"], t.values[0], t.values[1], t.user_attrs["predicted_energy_mj_std"],
             t.user_attrs["predicted_latency_ms"], t.user_attrs["macs"]) for t in front]
    print(f"{len(study.trials)} trials; Pareto front of accuracy and predicted energy ({len(front)} candidates):")
    print(format_table(rows, ("trial", "arch_id", "accuracy %", "pred energy mJ", "std", "pred latency ms", "MACs")))
    if front:
        arch = {k: v for k, v in front[0].user_attrs["arch"].items() if k not in ("space", "options")}
        print(f"most accurate on the front: trial {front[0].number}, {json.dumps(arch)}")
    print(f"plots: {plots['pareto']}, {plots['history']}; study: {study.study_name}; "
          f"{time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
