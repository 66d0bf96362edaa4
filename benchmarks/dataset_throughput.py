"""Dataset-building throughput: samples per hour, per space and backend.

    python benchmarks/dataset_throughput.py [--num 12] [--spaces a,b] [--targets ethos-u55-128,ethos-u65-256]

For each task space, builds ``--num`` networks into a fresh temporary dataset with
the local backend (1 and 2 workers) and with Ray (2 workers, a local instance),
labelled on the given targets.  Steady-state rate = networks between the first and
the last stored one / the time between them (from the database's own timestamps),
so worker start-up (TensorFlow import, Ray start) is reported apart.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time


EDGEDLPERF_NETWORKS = 134_912


def _rate(directory: str, started: float) -> tuple[float, float, int]:
    from predictors.dataset import DatasetStore

    with DatasetStore(directory) as store:
        times = sorted(r["created"] for r in store.network_rows(status="ok"))
    if len(times) < 2:
        return float("nan"), float("nan"), len(times)
    steady = (len(times) - 1) / (times[-1] - times[0]) * 3600
    return steady, times[0] - started, len(times)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num", type=int, default=12)
    parser.add_argument("--spaces", default="image_classification,keyword_spotting,super_resolution,object_detection")
    parser.add_argument("--targets", default="ethos-u55-128,ethos-u65-256")
    parser.add_argument("--backends", default="local:1,local:2,ray:2")
    args = parser.parse_args(argv)

    from hwnas.cli import format_table
    from predictors.dataset import build_dataset

    targets = args.targets.split(",")
    rows, rates = [], {}
    for space in args.spaces.split(","):
        for spec in args.backends.split(","):
            backend, workers = spec.split(":")
            with tempfile.TemporaryDirectory() as tmp:
                started = time.time()
                build_dataset(tmp, space, args.num, targets, workers=int(workers), backend=backend,
                              progress=False)
                wall = time.time() - started
                rate, startup, n = _rate(tmp, started)
            rates.setdefault(spec, []).append(rate)
            rows.append((space, spec, n, f"{wall:.0f}", f"{startup:.1f}", f"{rate:,.0f}"))
        if "ray" in args.backends:
            import ray

            ray.shutdown()
    print(f"targets: {', '.join(targets)}; {args.num} networks per run; machine: {os.cpu_count()} cores\n")
    print(format_table(rows, ("space", "backend:workers", "networks", "wall s", "first result s",
                              "networks/hour (steady)")))
    print()
    for spec, values in rates.items():
        mean = sum(values) / len(values)
        print(f"{spec}: mean {mean:,.0f} networks/hour -> {EDGEDLPERF_NETWORKS:,} networks "
              f"(EdgeDLPerf's size) in {EDGEDLPERF_NETWORKS / mean:,.0f} hours on this machine")
    return 0


if __name__ == "__main__":
    sys.exit(main())
