"""Do labels of a stored network hold for its re-export made here?

    python benchmarks/reexport_labels.py [--data data/edgedlperf] --space S [--num 20]
        [--target ethos-u55-128 --target ethos-u65-256]

Re-exports the space's first ``num`` stored networks from their arch and weight seed,
and compares, per network: the file's SHA-256 with the stored one, the payload-zeroed
graph with the stored graph, and every numeric metric of the stored labels of each
target (measured again on the re-export) with the stored value.  Prints one table row
per space: the truth is the stored labels, made by the machine that built the dataset.
"""
from __future__ import annotations

import argparse
import hashlib
import itertools

from predictors import targets as registry
from predictors.dataset import DatasetStore
from hwnas.cli import format_table
from predictors.tflite_model import strip_constant_buffers
from search_spaces import from_encoded
from search_spaces.export import to_tflite


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="data/edgedlperf")
    parser.add_argument("--space", action="append", required=True)
    parser.add_argument("--num", type=int, default=20)
    parser.add_argument("--target", action="append")
    args = parser.parse_args()
    names = args.target or ["ethos-u55-128", "ethos-u65-256"]
    rows = []
    with DatasetStore(args.data) as store:
        for space in args.space:
            shas = {r["arch_id"]: r["tflite_sha256"] for r in store.network_rows(space, "ok")}
            stored = [r for r in itertools.islice(store.rows([space]), 4 * args.num) if r["quantize"] == "int8"]
            same_file = same_graph = compared = differing = 0
            worst = 0.0
            for row in stored[:args.num]:
                s, arch = from_encoded(row["arch"])
                tflite = to_tflite(s.build(arch, seed=int(row["seed"])), seed=int(row["seed"]))
                same_file += hashlib.sha256(tflite).hexdigest() == shas[row["arch_id"]]
                same_graph += strip_constant_buffers(tflite) == row["tflite"]
                for name in names:
                    if name not in row["labels"]:
                        continue
                    again = registry.get(name).measure(tflite)
                    for k, v in row["labels"][name].items():
                        if isinstance(v, (int, float)) and not isinstance(v, bool) and k in again:
                            compared += 1
                            differing += again[k] != v
                            if v:
                                worst = max(worst, abs(again[k] - v) / abs(v) * 100)
            n = min(args.num, len(stored))
            rows.append((space, n, same_file, same_graph, compared, differing, f"{worst:.4f}"))
    print(format_table(rows, ("space", "networks", "same file", "same graph", "metrics compared",
                              "metrics differing", "largest difference %")))


if __name__ == "__main__":
    main()
