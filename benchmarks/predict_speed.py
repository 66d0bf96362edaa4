"""Speed of a PerfSAGE prediction against the ground truth it replaces.

    python benchmarks/predict_speed.py [--predictor NAME|PATH] [--repeats 30]

One run prints: for typical networks, one prediction from a ``.tflite`` file
(parse + forward, p50/p95) against one Vela call (in-process) and one LiteRT
measurement, and the ratio; then batched throughput (graphs per second) for the
forward pass on parsed graphs and end to end from files.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _times(fn, repeats):
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--predictor", default="perfsage-ethos-u55-128")
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--batch", type=int, default=10_000, help="graphs in the throughput test")
    parser.add_argument("--seed", type=int, default=0, help="which search-space samples")
    args = parser.parse_args(argv)

    from hwnas.cli import format_table
    from hwnas.export import to_tflite
    from predictors import targets
    from predictors.graph import from_tflite
    from predictors.predictor import load_predictor
    from search_spaces import import_keras
    from tests import zoo

    keras = import_keras()
    predictor = load_predictor(args.predictor)
    nets = [
        ("DS-CNN (KWS)", zoo.ds_cnn()),
        ("ResNet-8 (CIFAR)", zoo.resnet8()),
        ("MobileNetV1-0.25 (96)", zoo.mobilenet_v1_025()),
        ("MobileNetV2-0.5 (96)", keras.applications.MobileNetV2(weights=None, input_shape=(96, 96, 3),
                                                                alpha=0.5, classes=10)),
    ]
    import numpy as _np

    import search_spaces

    for space_name in ("keyword_spotting", "image_classification", "object_detection", "super_resolution"):
        space = search_spaces.get(space_name)
        arch = space.sample(_np.random.default_rng(args.seed))
        nets.append((f"{space_name} sample", space.build(arch)))
    files = [(label, to_tflite(model, num_samples=2)) for label, model in nets]
    u55, cpu = targets.get("ethos-u55-128"), targets.get("cpu-litert")
    predictor.predict(files[0][1])
    u55.measure(files[0][1])
    rows = []
    for label, tflite in files:
        p = _times(lambda: predictor.predict(tflite), args.repeats)
        v = _times(lambda: u55.measure(tflite), max(3, args.repeats // 5))
        c = _times(lambda: cpu.measure(tflite), 3)
        p50, p95 = np.percentile(p, 50) * 1000, np.percentile(p, 95) * 1000
        vela, lite = statistics.median(v) * 1000, statistics.median(c) * 1000
        rows.append((label, f"{p50:.1f}", f"{p95:.1f}", f"{vela:.0f}", f"{vela / p50:.1f}x", f"{lite:.0f}",
                     f"{lite / p50:.0f}x"))
    print(f"predictor: {predictor.name} ({predictor.manifest['ensemble']} members, "
          f"{predictor.manifest['model']['layers']} layers x {predictor.manifest['model']['hidden']})\n")
    print(format_table(rows, ("network (int8)", "predict p50 ms", "p95 ms", "Vela ms", "vs Vela",
                              "LiteRT ms", "vs LiteRT")))

    graphs = [from_tflite(t) for _, t in files]
    print(f"\nbatched: {args.batch:,} graphs cycling over the {len(graphs)} above "
          f"(mean {np.mean([g.num_nodes for g in graphs]):.0f} operators), torch threads "
          f"{__import__('torch').get_num_threads()}")
    batch = [graphs[i % len(graphs)] for i in range(args.batch)]
    predictor.predict_graphs(batch[:256])
    t0 = time.perf_counter()
    predictor.predict_graphs(batch)
    forward = args.batch / (time.perf_counter() - t0)
    many = [t for _, t in files] * 50
    t0 = time.perf_counter()
    predictor.predict(many)
    end_to_end = len(many) / (time.perf_counter() - t0)
    print()
    print(format_table([
        ("forward on parsed graphs (batched)", f"{forward:,.0f}"),
        ("from .tflite bytes (parse + batched forward)", f"{end_to_end:,.0f}"),
    ], ("throughput", "graphs/s")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
