"""Predictors of one target scored on the same test split, by regime and by space.

    python benchmarks/compare_predictors.py --target T [--data data/edgedlperf] [--host CPU|this] NAME|PATH...

The split is ``train.split_by_network`` of the target's samples (seed 0), the one
``hwnas train`` and ``benchmarks/predictor_accuracy.py`` test on: a predictor trained
on fewer samples of the same networks (an earlier round of the data) never saw a test
network, so its score on this split is a fair "before".  With ``--host``, the labels
that host timed, on the networks that are test networks of both splits (of every
sample, and of that host's, which ``--host`` training splits): none of the predictors
compared saw them, whether trained on every host's labels or on that host's.
"""
from __future__ import annotations

import argparse

from hwnas.cli import format_table
from predictors.predictor import load_predictor
from predictors.train import evaluate_graphs, load_graphs, split_by_network


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("predictors", nargs="+")
    parser.add_argument("--target", required=True)
    parser.add_argument("--data", default="data/edgedlperf")
    parser.add_argument("--host", help="score on the labels this host timed (cpu-litert's `cpu_model`, or this)")
    args = parser.parse_args()
    graphs, names = load_graphs([args.data], [args.target], None)
    _, _, test = split_by_network(graphs, 0)
    if args.host:
        from predictors.dataset.store import split_key
        from predictors.targets.litert import machine

        host = machine()["cpu_model"] if args.host == "this" else args.host
        networks = {split_key(g.arch_id)[0] for g in test}
        mine, _ = load_graphs([args.data], [args.target], None, host=host)
        test = [g for g in split_by_network(mine, 0)[2] if split_key(g.arch_id)[0] in networks]
        print(f"labels timed on {host}: {len(test)} test samples")
    for g in test:  # a predictor with more labels (aux_metrics) is scored on these
        g.label_names = names
    reports = [evaluate_graphs(load_predictor(p), test) for p in args.predictors]
    metrics = list(reports[0][args.target])
    rows = []
    for group in ("by_regime", "by_space"):
        for key in sorted(reports[0].get(group, {})):
            scores = [r[group][key][args.target] for r in reports]
            rows.append((key, scores[0][metrics[0]]["n"],
                         *(" / ".join(f"{s[m]['mape']:.2f}" for s in scores) for m in metrics)))
    rows.append(("all", reports[0][args.target][metrics[0]]["n"],
                 *(" / ".join(f"{r[args.target][m]['mape']:.2f}" for r in reports) for m in metrics)))
    print(f"{args.target}, test split of {args.data}; MAPE % of " + " / ".join(args.predictors))
    print(format_table(rows, ("regime or space", "n", *metrics)))


if __name__ == "__main__":
    main()
