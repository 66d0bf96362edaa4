"""Speed of a PerfSAGE prediction against the ground truth it replaces.

    python benchmarks/predict_speed.py [--predictor NAME|PATH] [--per-space 8] [--repeats 30]

One run prints:
1. for named networks (DS-CNN, ResNet-8, MobileNets), one prediction from a
   ``.tflite`` file (parse + forward, p50/p95) against one Vela call (in-process)
   and one LiteRT measurement, and the ratio;
2. for typical networks, ``--per-space`` random samples of each task search space
   (what a search predicts): median prediction and Vela times and the ratios;
3. batched throughput (graphs per second) of the forward pass on parsed graphs with
   1 and 2 threads (``predict_graphs(workers=)``), and end to end from ``.tflite``
   bytes on one.
Run it on a quiet machine: timings of both cores are taken.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time

import numpy as np


SPACES = ("keyword_spotting", "image_classification", "object_detection", "super_resolution")


def _times(fn, repeats):
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def _best_rate(fn, count, repeats=3):
    return count / min(_times(fn, repeats))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--predictor", default="perfsage-ethos-u55-128")
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--per-space", type=int, default=8, help="random networks of each task space")
    parser.add_argument("--batch", type=int, default=10_000, help="graphs in the throughput test")
    parser.add_argument("--seed", type=int, default=0, help="which search-space samples")
    args = parser.parse_args(argv)

    import torch

    import search_spaces
    from hwnas.cli import format_table
    from hwnas.export import to_tflite
    from predictors import targets
    from predictors.graph import from_tflite
    from predictors.predictor import load_predictor
    from search_spaces import import_keras
    from search_spaces import zoo

    keras = import_keras()
    predictor = load_predictor(args.predictor)
    named = [
        ("DS-CNN (KWS)", zoo.ds_cnn()),
        ("ResNet-8 (CIFAR)", zoo.resnet8()),
        ("MobileNetV1-0.25 (96)", zoo.mobilenet_v1_025()),
        ("MobileNetV2-0.5 (96)", keras.applications.MobileNetV2(weights=None, input_shape=(96, 96, 3),
                                                                alpha=0.5, classes=10)),
    ]
    named = [(label, to_tflite(model, num_samples=2)) for label, model in named]
    sampled = []
    rng = np.random.default_rng(args.seed)
    for space_name in SPACES:
        space = search_spaces.get(space_name)
        for _ in range(args.per_space):
            arch = space.sample(rng)
            sampled.append((space_name, to_tflite(space.build(arch), num_samples=2)))
    u55, cpu = targets.get("ethos-u55-128"), targets.get("cpu-litert")
    predictor.predict(named[0][1])
    u55.measure(named[0][1])
    print(f"predictor: {predictor.name} ({predictor.manifest['ensemble']} members, "
          f"{predictor.manifest['model']['layers']} layers x {predictor.manifest['model']['hidden']}), "
          f"torch threads {torch.get_num_threads()}\n")

    rows = []
    for label, tflite in named:
        p = _times(lambda: predictor.predict(tflite), args.repeats)
        v = _times(lambda: u55.measure(tflite), max(3, args.repeats // 5))
        c = _times(lambda: cpu.measure(tflite), 3)
        p50, p95 = np.percentile(p, 50) * 1000, np.percentile(p, 95) * 1000
        vela, lite = statistics.median(v) * 1000, statistics.median(c) * 1000
        rows.append((label, f"{p50:.2f}", f"{p95:.2f}", f"{vela:.0f}", f"{vela / p50:.1f}x", f"{lite:.0f}",
                     f"{lite / p50:.0f}x"))
    print(format_table(rows, ("network (int8)", "predict p50 ms", "p95 ms", "Vela ms", "vs Vela",
                              "LiteRT ms", "vs LiteRT")))

    rows = []
    for space_name in SPACES:
        files = [t for s, t in sampled if s == space_name]
        pred, vela, ratio, ops = [], [], [], []
        for tflite in files:
            p = statistics.median(_times(lambda: predictor.predict(tflite), max(5, args.repeats // 3)))
            v = statistics.median(_times(lambda: u55.measure(tflite), 3))
            pred.append(p * 1000)
            vela.append(v * 1000)
            ratio.append(v / p)
            ops.append(from_tflite(tflite).num_nodes)
        rows.append((space_name, len(files), f"{statistics.median(ops):.0f}", f"{statistics.median(pred):.2f}",
                     f"{statistics.median(vela):.0f}", f"{statistics.median(ratio):.1f}x", f"{min(ratio):.1f}x",
                     f"{sum(r >= 10 for r in ratio)}/{len(ratio)}"))
    print(f"\ntypical networks: {args.per_space} random samples of each task space (seed {args.seed})\n")
    print(format_table(rows, ("space", "n", "operators", "predict ms (median)", "Vela ms (median)",
                              "vs Vela (median)", "vs Vela (worst)", ">= 10x")))

    graphs = [from_tflite(t) for _, t in named + sampled]
    batch = [graphs[i % len(graphs)] for i in range(args.batch)]
    many = [t for _, t in named + sampled] * max(1, 2000 // len(graphs))
    rows = []
    for threads in (1, 2):
        predictor.predict_graphs(batch[:512], workers=threads)
        forward = _best_rate(lambda: predictor.predict_graphs(batch, workers=threads), len(batch))
        rows.append((threads, f"{forward:,.0f}"))
    end_to_end = _best_rate(lambda: predictor.predict(many), len(many), repeats=1)
    print(f"\nbatched: {args.batch:,} parsed graphs cycling over the {len(graphs)} above "
          f"(mean {np.mean([g.num_nodes for g in graphs]):.0f} operators); best of 3\n")
    print(format_table(rows, ("threads (workers)", "forward on parsed graphs, graphs/s")))
    print(f"\nfrom .tflite bytes (parse + forward), one thread: {end_to_end:,.0f} graphs/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
