"""From a table of your own device's measurements to a predictor that a search uses.

    python examples/retrain_predictor.py [--csv FILE --arch-column C --column C --device NAME]
        [--rows 200] [--init perfsage-ethos-u55-128] [--out DIR] [--quick]

"Your device" here is a Raspberry Pi 4: the latency of NAS-Bench-201 cells measured by
HW-NAS-Bench (GATECH-EIC/HW-NAS-Bench, MIT), as collected in HELP's table
(HayeonLee/HELP, MIT) under ``../shared/data/nb201/``. Replace the table, the columns
and the space with yours. Three steps, each an ``hwnas`` command you can also type:

1. ``hwnas dataset import``: build every arch of the table with the space, export it
   to TFLite, store its graph with the measured latency (resumable, parallel);
2. ``hwnas train``: a PerfSAGE predictor for the new device, from scratch or
   fine-tuned from a shipped predictor (``--init``); it prints its accuracy on the
   tenth of the networks it did not train on (``hwnas evaluate`` scores it on others);
3. ``hwnas search --predictor DIR``: a latency-constrained search on the new device.
"""
from __future__ import annotations

import argparse
import csv
import hashlib
import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HELP_CSV = os.path.join(os.environ.get("HWNAS_SHARED_DATA", os.path.join(os.path.dirname(REPO), "shared", "data")),
                        "nb201", "help_nb201_latency_ms.csv")


def hwnas(*args: str) -> None:
    """Runs one hwnas command as a user would, echoing it; stops the example if it fails."""
    print("$ hwnas " + " ".join(args), flush=True)
    proc = subprocess.run([sys.executable, "-m", "hwnas", *args])
    if proc.returncode:
        sys.exit(proc.returncode)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--csv", default=HELP_CSV, help="your measurements, one row per network")
    parser.add_argument("--space", default="nasbench201")
    parser.add_argument("--arch-column", default="arch_str")
    parser.add_argument("--column", default="raspi4_ms", help="the measured latency column (ms)")
    parser.add_argument("--device", default="raspi4", help="the name your device gets")
    parser.add_argument("--rows", type=int, default=200, help="rows of the table to use (a fixed random draw)")
    parser.add_argument("--init", default=None, help="fine-tune from this predictor (e.g. perfsage-ethos-u55-128)")
    parser.add_argument("--epochs", type=int, default=150)
    parser.add_argument("--max-latency-ms", type=float, default=None, help="search budget (default: the median)")
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0, help="search sampler seed (a rerun draws the same candidates)")
    parser.add_argument("--out", default="out/retrain")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="a small table and short runs (CI)")
    args = parser.parse_args(argv)
    if args.quick:
        args.rows, args.epochs, args.trials = min(args.rows, 12), 20, 8
    if not os.path.isfile(args.csv):
        print(f"error: {args.csv}: no such table (the public data lives in ../shared/data)", file=sys.stderr)
        return 1
    os.makedirs(args.out, exist_ok=True)

    # a fixed random draw of the table's rows, so that reruns resume the same import
    with open(args.csv, newline="") as f:
        reader = csv.DictReader(f)
        rows = sorted(reader, key=lambda r: hashlib.sha1(r[args.arch_column].encode()).hexdigest())[:args.rows]
        fields = reader.fieldnames
    table = os.path.join(args.out, "measurements.csv")
    with open(table, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    latencies = sorted(float(r[args.column]) for r in rows)
    budget = args.max_latency_ms or latencies[len(latencies) // 2]

    data, predictor = os.path.join(args.out, "data"), os.path.join(args.out, "predictor")
    hwnas("dataset", "import", "--space", args.space, "--csv", table, "--arch-column", args.arch_column,
          "--metric", f"latency_ms={args.column}", "--target-name", args.device, "--out", data,
          "--workers", str(args.workers))
    hwnas("train", "--data", data, "--target", args.device, "--out", predictor, "--epochs", str(args.epochs),
          "--quiet", *(["--init", args.init] if args.init else []))
    hwnas("search", "--space", args.space, "--target", args.device, "--predictor", predictor,
          "--max-latency-ms", f"{budget:.4g}", "--trials", str(args.trials), "--seed", str(args.seed),
          "--out", os.path.join(args.out, "search"))
    print(f"\npredictor for {args.device}: {predictor} (use it with `hwnas search --predictor {predictor}` "
          f"or predictors.load_predictor)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
