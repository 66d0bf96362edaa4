"""What a predictor's training costs, one way against another, on the same split.

    python benchmarks/train_speed.py [--data data/edgedlperf] [--target ethos-u55-128]
        [--spaces keyword_spotting,image_classification] [--epochs 5] [--workers 2]

Trains the same 3-member ensemble three ways and prints the wall time of each:

1. the members one after the other, mini-batches collated by PyTorch Geometric's
   ``DataLoader`` (``Batch.from_data_list``: the training loop before 2026-12-04);
2. one after the other, collated by ``predictors.train._collate`` (the tensors the
   step reads, nothing else);
3. ``--workers`` members at once, a forked process and a core each (``workers=``).

and whether each gave the first one's weights bit for bit (it should: same seeds,
same batches). Run it with the cores otherwise idle: the parallel row needs them.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@contextlib.contextmanager
def pyg_loader():
    """``_fit_member`` with PyTorch Geometric's loader and collation, as it was."""
    import torch.utils.data
    from torch_geometric.loader import DataLoader as PygLoader

    class Loader(PygLoader):
        def __init__(self, dataset, batch_size=1, shuffle=False, generator=None, collate_fn=None):
            super().__init__(dataset, batch_size=batch_size, shuffle=shuffle, generator=generator)

    real = torch.utils.data.DataLoader
    torch.utils.data.DataLoader = Loader
    try:
        yield
    finally:
        torch.utils.data.DataLoader = real


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
    for label, workers, old in (("one by one, PyG collation", 1, True), ("one by one, direct collation", 1, False),
                                (f"{args.workers} at once, direct collation", args.workers, False)):
        with pyg_loader() if old else contextlib.nullcontext():
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
