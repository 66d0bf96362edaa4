"""Predictors of one target scored on the same test split, by regime and by space.

    python benchmarks/compare_predictors.py --target T [--data data/edgedlperf] NAME|PATH...

The split is ``train.split_by_network`` of the target's samples (seed 0), the one
``hwnas train`` and ``benchmarks/predictor_accuracy.py`` test on: a predictor trained
on fewer samples of the same networks (an earlier round of the data) never saw a test
network, so its score on this split is a fair "before".
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
    args = parser.parse_args()
    graphs, _ = load_graphs([args.data], [args.target], None)
    _, _, test = split_by_network(graphs, 0)
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
