"""Speed of the TFLite -> graph feature extractor, against the export it follows.

    python benchmarks/graph_extract.py [--repeats 20]

For small, mid-sized and large networks: operator count, one int8 export (seconds),
one ``predictors.graph.from_tflite`` (parse + features + tensors, milliseconds, median
of the repeats), graphs per second, and how many extractions fit in one export.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time



def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args(argv)

    from hwnas.cli import format_table
    from hwnas.export import to_tflite
    from predictors.graph import from_tflite
    from predictors.tflite_model import inspect_model
    from search_spaces import import_keras
    from search_spaces import zoo

    keras = import_keras()
    networks = [
        ("DS-CNN (KWS)", zoo.ds_cnn),
        ("MobileNetV1-0.25 (96x96)", zoo.mobilenet_v1_025),
        ("MobileNetV2-0.5 (96x96)", lambda: keras.applications.MobileNetV2(
            weights=None, input_shape=(96, 96, 3), alpha=0.5, classes=10)),
        ("EfficientNetB0 (96x96)", lambda: keras.applications.EfficientNetB0(
            weights=None, input_shape=(96, 96, 3), classes=10)),
        ("Deep residual chain", lambda: zoo.deep_chain(350)),
    ]
    from_tflite(to_tflite(zoo.fc_autoencoder()))  # pay torch / PyG imports once
    rows = []
    for label, build in networks:
        model = build()
        t0 = time.perf_counter()
        tflite = to_tflite(model, quantize="int8", num_samples=2)
        export_s = time.perf_counter() - t0
        times = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            from_tflite(tflite)
            times.append(time.perf_counter() - t0)
        ms = statistics.median(times) * 1000
        ops = len(inspect_model(tflite).operators)
        rows.append((label, ops, f"{export_s:.2f}", f"{ms:.1f}", f"{1000 / ms:.0f}", f"{ops / ms * 1000:,.0f}",
                     f"{export_s * 1000 / ms:.0f}x"))
    print(format_table(rows, ("network (int8)", "operators", "export s", "extract ms", "graphs/s",
                              "operators/s", "export / extract")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
