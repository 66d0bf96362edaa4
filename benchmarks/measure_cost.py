"""Cost of one ground-truth measurement per target, and of one TFLite export.

    python benchmarks/measure_cost.py [--repeats 5] [--networks small,mid,large]

Prints two tables: wall-clock cost of export (float32, int8) and of one
``Target.measure`` per target (median over repeats, after one warm-up call that pays
the imports), and the repeatability of the cpu-litert latency label (spread of the
repeated medians).  Numbers are for the machine it runs on; the README quotes them.
"""
from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time



def networks():
    from search_spaces import import_keras

    keras = import_keras()
    layers = keras.layers

    def ds_cnn():  # MLPerf Tiny keyword spotting (DS-CNN small), 49x10 MFCC
        keras.utils.set_random_seed(0)
        inputs = keras.Input((49, 10, 1), batch_size=1)
        x = layers.Conv2D(64, (10, 4), strides=2, padding="same", activation="relu")(inputs)
        for _ in range(4):
            x = layers.DepthwiseConv2D(3, padding="same", activation="relu")(x)
            x = layers.Conv2D(64, 1, activation="relu")(x)
        x = layers.GlobalAveragePooling2D()(x)
        return keras.Model(inputs, layers.Dense(12)(x), name="ds_cnn")

    return {
        "small": ("DS-CNN (KWS, 49x10)", ds_cnn),
        "mid": ("MobileNetV2-0.5 (96x96)",
                lambda: keras.applications.MobileNetV2(weights=None, input_shape=(96, 96, 3), alpha=0.5,
                                                       classes=10)),
        "large": ("ResNet50 (96x96)",
                  lambda: keras.applications.ResNet50(weights=None, input_shape=(96, 96, 3), classes=10)),
    }


def timed(fn, repeats):
    times, result = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--networks", default="small,mid,large")
    args = parser.parse_args(argv)

    from hwnas.cli import format_table
    from hwnas.export import to_tflite
    from predictors import targets

    chosen = [n.strip() for n in args.networks.split(",")]
    nets = networks()
    # pay the one-off imports (TensorFlow, Vela, LiteRT) before timing anything
    warm = to_tflite(nets["small"][1]())
    for name in targets.names():
        targets.get(name).measure(warm)

    export_rows, measure_rows, repeat_rows = [], [], []
    for key in chosen:
        label, build = nets[key]
        model = build()
        params = model.count_params()
        t_f32, _ = timed(lambda: to_tflite(model, quantize="float32"), max(1, args.repeats // 2))
        t_i8, tflite = timed(lambda: to_tflite(model, quantize="int8"), max(1, args.repeats // 2))
        export_rows.append((label, f"{params / 1e6:.2f}M", f"{len(tflite) / 1024:.0f}", f"{t_f32:.2f}",
                            f"{t_i8:.2f}"))
        for name in targets.names():
            target = targets.get(name)
            t, result = timed(lambda: target.measure(tflite), args.repeats)
            latency = result["latency_ms"]
            measure_rows.append((label, name, f"{t * 1000:.0f}", f"{latency:.3f}"))
            if name == "cpu-litert":
                medians = [target.measure(tflite)["latency_ms"] for _ in range(args.repeats)]
                spread = (max(medians) - min(medians)) / statistics.median(medians) * 100
                repeat_rows.append((label, f"{statistics.median(medians):.3f}", f"{spread:.1f}",
                                    f"{result['arena_kib']:.0f}"))

    cpu = targets.get("cpu-litert").measure(warm)
    print(f"machine: {cpu['cpu_model']}, {cpu['cpu_cores']} cores, Python {platform.python_version()}\n")
    print("Export (seconds per call, median)")
    print(format_table(export_rows, ("network", "params", "int8 KiB", "float32 s", "int8 s")))
    print("\nOne measurement (ms per call, median of", args.repeats, "calls)")
    print(format_table(measure_rows, ("network", "target", "cost ms", "label latency_ms")))
    print(f"\ncpu-litert repeatability ({args.repeats} independent measurements)")
    print(format_table(repeat_rows, ("network", "median latency_ms", "max-min spread %", "arena_kib")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
