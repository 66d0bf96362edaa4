"""How well do cpu-litert latency labels repeat? The two timing protocols, side by side.

    taskset -c 1 python benchmarks/cpu_timing.py [--data DIR] [--num 12] [--repeats 5] [--seed 0]

Takes ``--num`` stored networks that have cpu-litert labels (one per space and export
regime drawn in turn, seeded), exports each again, and measures every file
``--repeats`` times with each protocol, interleaved (file by file, protocol by
protocol), so both see the same machine:

* ``median``: the median of one window of >= 50 runs and >= 0.25 s (how labels were
  timed before 2026-12-02);
* ``rounds`` (the default now): ten rounds 50 ms apart, each >= 60 ms and >= 5 runs;
  the fastest run.

Per protocol: the mean and worst spread of one file's repeats (slowest / fastest), the
mean absolute deviation of a repeat from that file's median repeat (the label noise a
predictor cannot beat), and the share of repeats within 5 % and 10 % of it. Run it as
labels are taken (pinned to a core of its own, the other core as busy as during a
build) to see the noise of those labels.
"""
from __future__ import annotations

import argparse
import os
import random
import sys
import time

import numpy as np


def pick(data: str, num: int, seed: int) -> list[dict]:
    """``num`` stored samples with cpu-litert labels, cycling over (space, regime)."""
    from predictors.dataset.store import DatasetStore, split_key

    groups: dict[tuple[str, str], list[dict]] = {}
    with DatasetStore(data) as store:
        for row in store.rows(with_tflite=False):
            if "cpu-litert" in row.get("labels", {}):
                groups.setdefault((row["space"], split_key(row["arch_id"])[1]), []).append(row)
    if not groups:
        raise SystemExit(f"cpu_timing: {data} has no cpu-litert labels")
    rng = random.Random(seed)
    keys = sorted(groups)
    rng.shuffle(keys)
    chosen = []
    while len(chosen) < num and any(groups.values()):
        for key in keys:
            if groups[key] and len(chosen) < num:
                chosen.append(groups[key].pop(rng.randrange(len(groups[key]))))
    return chosen


def export(row: dict) -> bytes:
    from predictors.dataset.store import split_key
    from search_spaces import from_encoded
    from search_spaces.export import to_tflite

    space, arch = from_encoded(row["arch"])
    return to_tflite(space.build(arch, seed=int(row["seed"])), quantize=split_key(row["arch_id"])[1],
                     seed=int(row["seed"]))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="data/edgedlperf")
    parser.add_argument("--num", type=int, default=12, help="stored networks (default 12)")
    parser.add_argument("--repeats", type=int, default=5, help="measurements of each file per protocol")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.num < 1 or args.repeats < 2:
        print("cpu_timing: --num must be >= 1 and --repeats >= 2", file=sys.stderr)
        return 1

    from hwnas.cli import format_table
    from predictors.dataset.store import split_key
    from predictors.targets import LiteRTCPUTarget

    rows = pick(args.data, args.num, args.seed)
    t0 = time.perf_counter()
    files = [export(r) for r in rows]
    print(f"exported {len(files)} stored networks in {time.perf_counter() - t0:.0f} s; measuring on "
          f"cores {sorted(os.sched_getaffinity(0))}", flush=True)
    protocols = {"median": LiteRTCPUTarget(timing="median"), "rounds": LiteRTCPUTarget()}
    values = {p: np.zeros((len(files), args.repeats)) for p in protocols}
    t0 = time.perf_counter()
    for k in range(args.repeats):
        for i, data in enumerate(files):
            for name, target in protocols.items():
                values[name][i, k] = target.measure(data)["latency_ms"]
    seconds = time.perf_counter() - t0

    per_file = [[r["space"], split_key(r["arch_id"])[1], f"{r['labels']['cpu-litert']['latency_ms']:.4g}",
                 *(f"{np.median(values[p][i]):.4g} ({values[p][i].max() / values[p][i].min():.2f}x)"
                   for p in protocols)] for i, r in enumerate(rows)]
    print(format_table(per_file, ["space", "regime", "stored label ms",
                                  *(f"{p}: median repeat (spread)" for p in protocols)]))
    print()
    summary = []
    for name, v in values.items():
        spread = v.max(axis=1) / v.min(axis=1)
        dev = np.abs(v / np.median(v, axis=1, keepdims=True) - 1) * 100
        summary.append([name, f"{spread.mean():.3f}", f"{spread.max():.3f}", f"{dev.mean():.2f}",
                        f"{(dev <= 5).mean() * 100:.0f}", f"{(dev <= 10).mean() * 100:.0f}"])
    print(format_table(summary, ["protocol", "mean spread", "worst spread", "deviation from the file's median %",
                                 "repeats within 5 %", "within 10 %"]))
    print(f"\n{len(files)} files x {args.repeats} repeats x {len(protocols)} protocols in {seconds:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
