"""How far the graph features' own arena arithmetic is from the interpreter's arena.

For every committed network with a ``cpu-litert`` arena label (the span LiteRT's own
memory planner gives the model's tensors and its kernels' scratch tensors, read after
``allocate_tensors()``), the extractor's estimate ``arena_plan_bytes`` (``ESTIMATES``)
against the label: MAPE and the share within 1 % and 10 %, per regime and per space.
Truth is the interpreter's plan, not this project's arithmetic: a rule of
``_kernel_scratch`` or of the planner's emulation that LiteRT does not follow shows up here.

    python benchmarks/arena_estimate.py [--per 200] [--data data/edgedlperf]
"""
from __future__ import annotations

import argparse
import collections
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from predictors.dataset import DatasetStore  # noqa: E402
from predictors.graph import ESTIMATES  # noqa: E402
from predictors.graph._extract import model_arrays  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default="data/edgedlperf")
    p.add_argument("--per", type=int, default=200, help="networks per (space, regime), the first stored")
    args = p.parse_args(argv)
    store = DatasetStore(args.data)
    taken: collections.Counter = collections.Counter()
    errors: dict[tuple[str, str], list[float]] = collections.defaultdict(list)
    for row in store.rows():
        label = row["labels"].get("cpu-litert", {})
        key = (row["space"], row["quantize"])
        if "arena_kib" not in label or row["tflite"] is None or taken[key] >= args.per:
            continue
        taken[key] += 1
        arrays, _ = model_arrays(row["tflite"])
        estimate = arrays["est"][0, ESTIMATES.index("arena_plan_bytes")] / 1024.0
        errors[key].append(estimate / label["arena_kib"] - 1.0)

    def line(name: str, e: list[float]) -> str:
        a = np.abs(np.array(e))
        return (f"| {name} | {len(a)} | {100 * a.mean():.2f} | {100 * np.mean(a <= 0.01):.0f} | "
                f"{100 * np.mean(a <= 0.10):.0f} | {np.min(e) + 1:.2f}-{np.max(e) + 1:.2f} |")

    print("| networks | n | MAPE % | within 1 % | within 10 % | estimate / arena |")
    print("| --- | --- | --- | --- | --- | --- |")
    for regime in sorted({r for _, r in errors}):
        print(line(f"**{regime}**", [x for (s, r), e in errors.items() if r == regime for x in e]))
        for space in sorted(s for s, r in errors if r == regime):
            print(line(f"{space} {regime}", errors[(space, regime)]))
    print(line("**all**", [x for e in errors.values() for x in e]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
