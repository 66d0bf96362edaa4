"""Build a small candidate network, export it to int8 TFLite and measure it on every target.

    python examples/measure_candidate.py [--out candidate.tflite]

This is what every search candidate goes through before the predictor replaces the
measurement: Keras model -> ``hwnas.export.to_tflite`` -> ``Target.measure``.
"""
from __future__ import annotations

import argparse
import os
import sys
import time


def build_candidate(input_shape=(96, 96, 3), num_classes=10, width=16, seed=0):
    """A MobileNetV2-style candidate: stem conv, three inverted-residual blocks, classifier."""
    from search_spaces import import_keras

    keras = import_keras()  # quietly: TensorFlow's C++ banners stay out of the terminal
    layers = keras.layers
    keras.utils.set_random_seed(seed)
    inputs = keras.Input(input_shape, batch_size=1)
    x = layers.Conv2D(width, 3, strides=2, padding="same", use_bias=False)(inputs)
    x = layers.BatchNormalization()(x)
    x = layers.ReLU(6.0)(x)
    channels = width
    for expansion, out_channels, stride in ((4, 24, 2), (4, 24, 1), (6, 40, 2)):
        y = layers.Conv2D(channels * expansion, 1, use_bias=False)(x)
        y = layers.BatchNormalization()(y)
        y = layers.ReLU(6.0)(y)
        y = layers.DepthwiseConv2D(3, strides=stride, padding="same", use_bias=False)(y)
        y = layers.BatchNormalization()(y)
        y = layers.ReLU(6.0)(y)
        y = layers.Conv2D(out_channels, 1, use_bias=False)(y)
        y = layers.BatchNormalization()(y)
        x = layers.Add()([x, y]) if stride == 1 and out_channels == channels else y
        channels = out_channels
    x = layers.GlobalAveragePooling2D()(x)
    outputs = layers.Dense(num_classes)(x)
    return keras.Model(inputs, outputs, name="candidate")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="out/candidate.tflite", help="where to write the int8 model")
    args = parser.parse_args(argv)

    from hwnas.cli import format_table
    from hwnas.export import to_tflite
    from predictors import targets

    t0 = time.perf_counter()
    model = build_candidate()
    tflite = to_tflite(model, quantize="int8")
    export_s = time.perf_counter() - t0
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "wb") as f:
        f.write(tflite)
    print(f"candidate: {model.count_params():,} parameters, int8 TFLite {len(tflite) / 1024:.1f} KiB "
          f"-> {args.out} (build + export {export_s:.1f} s)\n")

    rows = []
    for name in targets.names():
        target = targets.get(name)
        t0 = time.perf_counter()
        result = target.measure(tflite)
        cost_ms = (time.perf_counter() - t0) * 1000
        for metric in target.metrics:
            rows.append((name, metric, result[metric]))
        if "npu_operators" in result:
            rows.append((name, "npu/cpu operators", f"{result['npu_operators']}/{result['cpu_operators']}"))
        if "latency_p10_ms" in result:
            rows.append((name, "latency p10-p90 (ms)",
                         f"{result['latency_p10_ms']:.4f}-{result['latency_p90_ms']:.4f} ({result['runs']} runs)"))
        rows.append((name, "measurement cost (ms)", round(cost_ms, 1)))
    print(format_table(rows, ("target", "metric", "value")))
    return 0


if __name__ == "__main__":
    from hwnas import HwnasError

    try:
        sys.exit(main())
    except HwnasError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)
