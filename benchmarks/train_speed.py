"""What a predictor's training costs, one way against another, on the same split.

    python benchmarks/train_speed.py [--data data/edgedlperf] [--target ethos-u55-128]
        [--spaces keyword_spotting,image_classification] [--epochs 5] [--workers 2]

Trains the same 3-member ensemble two ways and prints the wall time of each: the
members one after the other, and ``--workers`` members at once, a forked process and
a core each (``train_predictor(workers=...)``), and whether the second gave the
first's weights bit for bit (it should: each member is seeded by its index). Run it
with the cores otherwise idle: the parallel row needs them.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def same_weights(a, b) -> bool:
    import torch

    return all(torch.equal(x, y) for ma, mb in zip(a.members, b.members)
               for x, y in zip(ma.state_dict().values(), mb.state_dict().values()))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default=os.path.join(REPO, "data", "edgedlperf"))
    parser.add_argument("--target", default="ethos-u55-128")
    parser.add_argument("--spaces", default="keyword_spotting,image_classification")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)

    from predictors.train import load_graphs, train_predictor
    from hwnas.cli import format_table

    spaces = args.spaces.split(",")
    t0 = time.perf_counter()
    graphs, _ = load_graphs([args.data], [args.target], spaces)
    print(f"{len(graphs)} networks of {', '.join(spaces)} with {args.target} labels "
          f"(loaded in {time.perf_counter() - t0:.0f} s)", file=sys.stderr)
    kwargs = dict(epochs=args.epochs, targets=[args.target], spaces=spaces, progress=False,
                  config={"ensemble": 3})
    runs = []
    for label, workers in (("one by one", 1), (f"{args.workers} at once", args.workers)):
        t0 = time.perf_counter()
        predictor, report = train_predictor([args.data], None, workers=workers, **kwargs)
        runs.append((label, predictor, time.perf_counter() - t0, report["split"]["train"]))
        print(f"  {label}: {runs[-1][2]:.1f} s", file=sys.stderr)
    base = runs[0]
    rows = [(label, n, args.epochs, f"{t:.1f}", f"{base[2] / t:.2f}x", "yes" if same_weights(base[1], p) else "NO")
            for label, p, t, n in runs]
    print(format_table(rows, ("training (3 members)", "training networks", "epochs", "wall s", "speed-up",
                              "weights equal to the first")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
