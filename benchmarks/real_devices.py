"""PerfSAGE on real devices measured by other people (NAS-Bench-201 and FBNet tables).

    python benchmarks/real_devices.py --data DIR [--devices raspi4,pixel3,...] [--epochs 150]

Sources (see ../shared/data/README.md): HELP (HayeonLee/HELP, MIT) latency of all
15,625 NAS-Bench-201 cells on 27 device settings, whose raspi4, pixel3, eyeriss and
fpga columns come from HW-NAS-Bench (GATECH-EIC/HW-NAS-Bench, MIT); the FBNet table
of HELP; Raspberry Pi 5 latency and energy from HW-NAS-Bench-360
(roldebijvank/HW-NAS-Bench-360, unreviewed student benchmark, no licence: used here
for testing only, never shipped).

``DIR`` is a dataset made by ``hwnas dataset import`` from the NB201 table (any one
device); the script imports the other devices' labels into it (reusing the exports),
then per device trains on 100 and on 900 networks and tests on 2,000 others that no
training run saw: MAPE, acc10, Spearman.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

SHARED = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "..", "shared", "data")
DEVICES = {  # target name -> (csv, column, scale)
    "raspi4": ("nb201/help_nb201_latency_ms.csv", "raspi4_ms"),
    "pixel3": ("nb201/help_nb201_latency_ms.csv", "pixel3_ms"),
    "eyeriss": ("nb201/help_nb201_latency_ms.csv", "eyeriss_ms"),
    "fpga": ("nb201/help_nb201_latency_ms.csv", "fpga_ms"),
    "titan_rtx_1": ("nb201/help_nb201_latency_ms.csv", "titan_rtx_1_ms"),
    "gold_6240": ("nb201/help_nb201_latency_ms.csv", "gold_6240_ms"),
}
PUBLISHED = {  # Spearman rho reported by HELP (Lee et al., NeurIPS 2021), for reference
    "HELP (10 samples, unseen devices, mean)": 0.932,
    "BRP-NAS-style GCN (HELP's comparison)": "0.79-0.81",
}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="dataset from `hwnas dataset import --space nasbench201`")
    parser.add_argument("--devices", default=",".join(DEVICES))
    parser.add_argument("--train-sizes", default="100,900")
    parser.add_argument("--test-size", type=int, default=2000)
    parser.add_argument("--epochs", type=int, default=150)
    parser.add_argument("--ensemble", type=int, default=1)
    args = parser.parse_args(argv)

    from hwnas.cli import format_table
    from predictors.dataset import DatasetStore
    from predictors.dataset.importer import import_table
    from predictors.train import train_predictor

    rows = []
    for device in args.devices.split(","):
        csv_name, column = DEVICES[device]
        import_table(args.data, "nasbench201", os.path.join(SHARED, csv_name), "arch_str",
                     [f"latency_ms={column}"], device, progress=False)
        with DatasetStore(args.data) as store:
            ids = sorted((r["arch_id"] for r in store.rows() if device in r["labels"]),
                         key=lambda a: hashlib.sha1(f"bench:{a}".encode()).hexdigest())
        test = ids[: args.test_size]
        pool = ids[args.test_size:]
        for n in map(int, args.train_sizes.split(",")):
            if len(pool) < n + max(10, n // 10):
                rows.append((device, n, "-", "-", "-", f"only {len(pool)} networks beside the test set"))
                continue
            n_val = max(10, n // 10)
            train, val = pool[:n], pool[n:n + n_val]
            _, report = train_predictor([args.data], None, targets=[device], split=(train, val, test),
                                        epochs=args.epochs, config={"ensemble": args.ensemble}, progress=False)
            s = report["test"][device]["latency_ms"]
            rows.append((device, n, f"{s['mape']:.2f}", f"{s['acc10']:.1f}", f"{s['spearman']:.3f}", s["n"]))
    print(format_table(rows, ("device", "train networks", "MAPE %", "acc10 %", "Spearman", "test n")))
    print()
    for k, v in PUBLISHED.items():
        print(f"published: {k}: Spearman {v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
