"""How accurate can any predictor be on a public device table? Its own noise floor.

    python benchmarks/device_noise.py

A NAS-Bench-201 cell whose edge 1->2 is ``none`` computes exactly what the cell with
nodes 1 and 2 swapped computes (edges 0->1 <-> 0->2 and 1->3 <-> 2->3): the same
operators on the same tensors, in either convention of the ``zero_edges`` option.
HELP's table (../shared/data/nb201/help_nb201_latency_ms.csv; HELP, MIT; the raspi4,
pixel3, eyeriss and fpga columns from HW-NAS-Bench, MIT) times both twins of 1,500
such pairs separately, so their difference is the measurement's own spread.  Per
device this prints:

* twin MAPE: predicting one twin's latency by the other's measurement;
* noise per measurement, about twin MAPE / sqrt(2) (two independent errors): a
  predictor of the true latency, however good, scores about this MAPE;
* twin Spearman over the pairs, and the ceiling of a perfect predictor's Spearman,
  about sqrt(twin Spearman) (its error is one measurement's noise, not two);
* distinct values: columns timed in whole milliseconds carry a rounding floor.

Cells whose output is not reached from the input (all paths through ``none``) are
left out: some devices timed them at ~0.01 ms.  For the Raspberry Pi 5 table
(HW-NAS-Bench-360, no licence: testing only) only one representative of each
isomorphism class was measured, so there are no twins; its own reported variance of
repeated runs gives the within-run spread instead.  Its energy has no repeated
readings; what bounds it is how far energy strays from the (precise) latency: a
power law ``energy = a * latency ** b`` fitted on every row, and its MAPE.
"""
from __future__ import annotations

import csv
import os
import sys

import numpy as np


SHARED = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "..", "shared", "data")
NB201_CSV = os.path.join(SHARED, "nb201", "help_nb201_latency_ms.csv")
PI5_CSV = os.path.join(SHARED, "nb201", "pi5_onnx_torchmobile_latency_energy.csv")
DEVICES = ("raspi4", "pixel3", "eyeriss", "fpga", "titan_rtx_1", "gold_6240", "samsung_a50", "pixel2")
# arch-string order of the six edges: 1<-0, 2<-0, 2<-1, 3<-0, 3<-1, 3<-2
SWAP = (1, 0, 2, 3, 5, 4)  # nodes 1 and 2 exchanged (valid when edge 2<-1 is none)


def twin_pairs(arch_strings) -> list[tuple[str, str]]:
    """Pairs of distinct arch strings of cost-identical cells (nodes 1 and 2 swapped)."""
    from search_spaces.nasbench201 import arch_string, parse_arch_str

    known = set(arch_strings)
    pairs = set()
    for s in known:
        ops = parse_arch_str(s)
        if ops[2] != "none":
            continue
        twin = arch_string([ops[i] for i in SWAP])
        if twin != s and twin in known:
            pairs.add(tuple(sorted((s, twin))))
    return sorted(pairs)


def connected(arch_str: str) -> bool:
    """Whether the cell's output is reached from its input through non-``none`` edges."""
    from search_spaces.nasbench201 import parse_arch_str

    ops = iter(parse_arch_str(arch_str))
    reached = [True]
    for j in (1, 2, 3):
        reached.append(any([op != "none" and reached[i] for i, op in zip(range(j), ops)]))
    return reached[-1]


def main() -> int:
    from scipy.stats import spearmanr

    from hwnas.cli import format_table

    with open(NB201_CSV, newline="") as f:
        rows = {r["arch_str"]: r for r in csv.DictReader(f)}
    pairs = [p for p in twin_pairs(rows) if connected(p[0])]
    table = []
    for device in DEVICES:
        a = np.array([[float(rows[s][f"{device}_ms"]), float(rows[t][f"{device}_ms"])] for s, t in pairs])
        mape = float(np.mean(np.abs(a[:, 0] - a[:, 1]) / a[:, 0]) * 100)
        rho = float(spearmanr(a[:, 0], a[:, 1]).correlation)
        distinct = len(np.unique(np.array([float(r[f"{device}_ms"]) for r in rows.values()])))
        table.append((device, len(a), f"{np.median(a):.2f}", f"{mape:.2f}", f"{mape / np.sqrt(2):.1f}",
                      f"{rho:.3f}", f"{np.sqrt(max(rho, 0.0)):.3f}", f"{distinct:,}"))
    print(f"HELP NB201 table: {len(pairs)} pairs of cost-identical twin cells (connected cells only)\n")
    print(format_table(table, ("device", "pairs", "median ms", "twin MAPE %", "noise per measurement %",
                               "twin Spearman", "Spearman ceiling", "distinct values (15,625 cells)")))

    if os.path.exists(PI5_CSV):
        spread: dict[str, list[float]] = {}
        lat_energy: dict[str, list[tuple[float, float]]] = {}
        with open(PI5_CSV, newline="") as f:
            for r in csv.DictReader(f):
                if r["task"] == "cifar100":
                    median, var = float(r["lat_ms_median"]), float(r["lat_ms_var"])
                    spread.setdefault(r["framework"], []).append(np.sqrt(max(var, 0.0)) / median * 100)
                    lat_energy.setdefault(r["framework"], []).append((median, float(r["energy_mj"])))
        rows = []
        for k, v in sorted(spread.items()):
            lat, energy = np.array(lat_energy[k]).T
            a = np.c_[np.log(lat), np.ones(len(lat))]
            w, *_ = np.linalg.lstsq(a, np.log(energy), rcond=None)
            fit = np.exp(a @ w)
            rows.append((f"pi5_{k}", len(v), f"{np.median(v):.2f}", f"{np.percentile(v, 90):.2f}",
                         f"{np.mean(np.abs(fit - energy) / energy) * 100:.2f}"))
        print("\nRaspberry Pi 5 (HW-NAS-Bench-360, cifar100): within-run spread of repeated timings, and\n"
              "energy predicted from the measured latency alone (a power law fitted on all rows)\n")
        print(format_table(rows, ("device", "networks", "median std/median %", "p90 %",
                                  "energy from latency MAPE %")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
