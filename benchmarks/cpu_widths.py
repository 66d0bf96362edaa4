"""How a dense layer's widths move its CPU latency: the same MLP in round and in odd widths.

A real file's MLP has the widths its author chose (MoskaEngine's: 430 features into
600, 550, 500 and 450 units); the `generic` space drew only powers of two until its
`widths=any` option. This builds one MLP in several width sets of about the same
weight count, exports it in each regime and measures it with the cpu-litert target
(LiteRT with its default delegates, min of 10 rounds), so what the widths alone cost
is in the table. Pin it to a quiet core: ``taskset -c 1 python benchmarks/cpu_widths.py``.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

WIDTH_SETS = {
    "odd (MoskaEngine's)": (430, 600, 550, 500, 450),
    "multiples of 16": (432, 608, 560, 512, 448),
    "multiples of 64": (448, 576, 576, 512, 448),
    "powers of two": (512, 512, 512, 512, 512),
}


def mlp(keras, widths: tuple[int, ...]):
    x = inputs = keras.Input((widths[0],), batch_size=1)
    for units in widths[1:]:
        x = keras.layers.Dense(units, activation="relu")(x)
    return keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid")(x))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quantize", nargs="+", default=["float32", "float16", "int8", "dynamic"])
    args = parser.parse_args(argv)

    import keras

    from hwnas.cli import format_table
    from predictors import targets
    from search_spaces.export import to_tflite

    cpu = targets.get("cpu-litert")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for label, widths in WIDTH_SETS.items():
            weights = sum(a * b for a, b in zip(widths, widths[1:])) + widths[-1]
            row = [label, " ".join(map(str, widths)), f"{weights / 1e6:.2f}"]
            for regime in args.quantize:
                path = Path(tmp) / f"{len(rows)}-{regime}.tflite"
                path.write_bytes(to_tflite(mlp(keras, widths), quantize=regime))
                row.append(f"{cpu.measure(path)['latency_ms'] * 1000:.1f}")
            rows.append(row)
    print(format_table(rows, ["widths", "features -> units", "M weights",
                              *(f"{q} us" for q in args.quantize)]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
