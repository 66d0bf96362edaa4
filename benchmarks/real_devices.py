"""PerfSAGE on real devices measured by other people (NAS-Bench-201 and FBNet tables).

    python benchmarks/real_devices.py [--work DIR] [--tables nb201,pi5,fbnet] [--devices ...]
        [--networks 3000] [--train-sizes 100,900] [--test-size 2000] [--workers 2]
        [--modes scratch,fewshot,transfer,linear] [--device cpu|cuda] [--json FILE]

Sources (see ../shared/data/README.md): HELP (HayeonLee/HELP, MIT) latency of all
15,625 NAS-Bench-201 cells on 27 device settings, whose raspi4, pixel3, eyeriss and
fpga columns come from HW-NAS-Bench (GATECH-EIC/HW-NAS-Bench, MIT); the FBNet table
of HELP (its raspi4, pixel3, eyeriss and fpga columns are sums of per-block lookup
tables, the others whole-network measurements); Raspberry Pi 5 latency and energy from
HW-NAS-Bench-360 (roldebijvank/HW-NAS-Bench-360, an unreviewed student benchmark with
no licence: used here for testing only, never shipped).

Per table, ``--networks`` rows are drawn by a fixed hash of the architecture, exported
once (``hwnas dataset import`` into ``--work``; resumable, every device of the table
reuses the exports), and per device a predictor is trained on 100 and on 900 networks
(validation: a tenth more) and tested on 2,000 others that no training run saw.
Training is the long part once the tables are imported: ``--devices``, ``--train-sizes``
and ``--modes`` split it over processes (or machines: a copy of ``--work`` is enough),
``--json`` collects their rows.
"""
from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import sys
import time

import numpy as np


SHARED = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "..", "shared", "data")
NB201_CSV = os.path.join(SHARED, "nb201", "help_nb201_latency_ms.csv")
PI5_CSV = os.path.join(SHARED, "nb201", "pi5_onnx_torchmobile_latency_energy.csv")
FBNET_CSV = os.path.join(SHARED, "fbnet", "help_fbnet_cifar100_latency_ms.csv")
# table -> (space, space options, arch column, {device: [metric=column, ...]})
TABLES = {
    "nb201": ("nasbench201", {}, "arch_str", {
        d: [f"latency_ms={d}_ms"] for d in ("raspi4", "pixel3", "eyeriss", "fpga", "titan_rtx_1", "gold_6240",
                                            "samsung_a50", "pixel2")}),
    # the same networks with every edge computed (PyTorch eager: none = x * 0; see the
    # nasbench201 space's zero_edges option), as the reference the devices ran does
    "nb201-compute": ("nasbench201", {"zero_edges": "compute"}, "arch_str", {
        d: [f"latency_ms={d}_ms"] for d in ("raspi4", "pixel3", "eyeriss", "fpga", "titan_rtx_1", "gold_6240",
                                            "samsung_a50", "pixel2")}),
    "pi5": ("nasbench201", {"dataset": "cifar100"}, "arch_str", {
        "pi5_onnx": ["latency_ms=lat_ms_median", "energy_mj=energy_mj"],
        "pi5_torchmobile": ["latency_ms=lat_ms_median", "energy_mj=energy_mj"]}),
    "pi5-compute": ("nasbench201", {"dataset": "cifar100", "zero_edges": "compute"}, "arch_str", {
        "pi5_onnx": ["latency_ms=lat_ms_median", "energy_mj=energy_mj"],
        "pi5_torchmobile": ["latency_ms=lat_ms_median", "energy_mj=energy_mj"]}),
    "fbnet": ("fbnet", {}, "op_idx_list", {
        d: [f"latency_ms={d}_ms"] for d in ("raspi4", "pixel3", "eyeriss", "fpga", "titan_rtx_1", "gold_6240",
                                            "samsung_a50", "pixel2")}),
}


def _kind(table: str, device: str) -> str:
    if device in ("eyeriss", "fpga"):
        return " (estimated)"
    if table == "fbnet" and device in ("raspi4", "pixel3"):
        return " (LUT sum)"
    return ""


PUBLISHED = [  # Spearman rho, for reference, from the papers (not reproduced here)
    ("HELP, 10 samples, unseen devices (Lee et al., NeurIPS 2021), mean over devices", "0.932"),
    ("BRP-NAS-style GCN predictor, in HELP's comparison", "0.79-0.81"),
]


HEADER = ("table", "device", "train", "mode", "metric", "MAPE %", "MAPE % (connected cells)", "acc10 %",
          "Spearman", "test n (degenerate)")


def _rescaled(init: str, train: list, test: list):
    """Zero-shot baseline: ``init``'s latency prediction times one factor per label (the
    geometric mean ratio on the training networks)."""
    from predictors.predictor import load_predictor

    predictor = load_predictor(init)
    column = next(i for i, n in enumerate(predictor.label_names) if n.endswith("/latency_ms"))
    p_train = predictor.predict_graphs(train)[0][:, column]
    y_train = np.concatenate([g.y.numpy() for g in train]).astype(np.float64)
    factor = np.exp(np.nanmean(np.log(y_train) - np.log(p_train)[:, None], axis=0))
    return predictor.predict_graphs(test)[0][:, column][:, None] * factor[None, :]


def _onehot(space: str, arch: dict) -> np.ndarray:
    """The in-space indicators of an architecture, and a constant: NB201's 6 edges x 5
    operations, FBNet's 22 layers x 9 blocks."""
    if space == "nasbench201":
        from search_spaces.nasbench201 import OPS, parse_arch_str

        choices = [OPS.index(op) for op in parse_arch_str(arch["arch_str"])]
    else:
        from search_spaces.fbnet import OPS

        choices = list(arch["op_idx_list"])
    v = np.zeros(len(choices) * len(OPS) + 1)
    for i, op in enumerate(choices):
        v[i * len(OPS) + op] = 1.0
    v[-1] = 1.0
    return v


def _linear(space: str, archs: dict, train: list, test_ids: list, y_train: np.ndarray):
    """In-space reference (works only inside one space): least squares on the indicators."""
    x_train = np.array([_onehot(space, archs[a]) for a in train])
    x_test = np.array([_onehot(space, archs[a]) for a in test_ids])
    w = np.linalg.solve(x_train.T @ x_train + 1e-3 * np.eye(x_train.shape[1]), x_train.T @ y_train)
    return x_test @ w


def _source_predictor(args, data: str, table: str, device: str, pool: list[str]) -> str:
    """A predictor of the table's other devices, trained on the networks outside the test set
    (HELP's setting: measurements of reference devices, few of the new one); cached."""
    from predictors.train import train_predictor

    path = os.path.join(args.work, "sources", f"{table}-without-{device}-{len(pool)}-{args.ensemble}")
    if not os.path.exists(os.path.join(path, "manifest.json")):
        others = [d for d in TABLES[table][3] if d != device]
        n_val = max(10, len(pool) // 10)
        train_predictor([data], path, targets=others, split=(pool[n_val:], pool[:n_val], []),
                        epochs=args.source_epochs, config={"ensemble": args.ensemble}, progress=False,
                        device=args.device)
    return path


def _connected(arch_str: str | None) -> bool:
    """Whether an NB201 cell's output node is reached from its input (True if not NB201)."""
    if not arch_str:
        return True
    reached = [True]
    for node in arch_str.strip("|").split("|+|"):
        edges = [e.rsplit("~", 1) for e in node.strip("|").split("|")]
        reached.append(any(op != "none" and reached[int(i)] for op, i in edges))
    return reached[-1]


def _rank(key: str) -> str:
    return hashlib.sha1(f"real-devices:{key}".encode()).hexdigest()


def _subset_csv(table: str, networks: int, out_dir: str) -> dict[str, str]:
    """Per device of ``table``, a CSV of ``networks`` rows chosen by a fixed hash of the arch."""
    os.makedirs(out_dir, exist_ok=True)
    # named by the draw's size: a larger draw is a new file (its first rows are the
    # smaller draw's, by rank, so the import resumes instead of starting over)
    paths = {d: os.path.join(out_dir, f"{table}-{d}-{networks}.csv") for d in TABLES[table][3]}
    if all(os.path.exists(p) for p in paths.values()):  # drawn before: the source table is not needed
        return paths
    if table.startswith("pi5"):
        with open(NB201_CSV, newline="") as f:
            arch_of = {row["nb201_index"]: row["arch_str"] for row in csv.DictReader(f)}
        per_device: dict[str, list[dict]] = {}
        measured: set[tuple[str, str]] = set()
        with open(PI5_CSV, newline="") as f:
            for row in csv.DictReader(f):
                # only one representative of each isomorphism class was timed, and every
                # index repeats its numbers: the network measured is the representative's
                # (it differs from a class member's wherever zero edges are computed)
                key = (row["framework"], row["rep_arch_idx"])
                if row["task"] == "cifar100" and key not in measured:
                    measured.add(key)
                    row["arch_str"] = arch_of[row["rep_arch_idx"]]
                    per_device.setdefault(f"pi5_{row['framework']}", []).append(row)
    else:
        with open(FBNET_CSV if table == "fbnet" else NB201_CSV, newline="") as f:
            rows = list(csv.DictReader(f))
        per_device = {d: rows for d in TABLES[table][3]}
    arch_column = TABLES[table][2]
    for device, rows in per_device.items():
        chosen = sorted(rows, key=lambda r: _rank(r[arch_column]))[:networks]
        path = paths[device]
        if not os.path.exists(path):
            with open(path + ".part", "w", newline="") as f:
                writer = csv.DictWriter(f, fieldnames=list(chosen[0]))
                writer.writeheader()
                writer.writerows(chosen)
            os.replace(path + ".part", path)
    return paths


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", default=os.path.join(os.path.expanduser("~"), ".cache", "hwnas", "real_devices"),
                        help="where the imported datasets are kept (resumable)")
    parser.add_argument("--tables", default="nb201,pi5,fbnet")
    parser.add_argument("--devices", help="comma list; default: every device of the chosen tables")
    parser.add_argument("--networks", type=int, default=3000, help="rows drawn per table")
    parser.add_argument("--train-sizes", default="100,900")
    parser.add_argument("--test-size", type=int, default=2000)
    parser.add_argument("--epochs", type=int, default=200)
    parser.add_argument("--ensemble", type=int, default=1)
    parser.add_argument("--init", default="perfsage-cpu-litert",
                        help="the trained predictor (NAME|PATH) the finetune, fewshot and rescaled modes start from")
    parser.add_argument("--modes", default="scratch,fewshot,linear",
                        help="comma list of: scratch (train from nothing), finetune (every weight of --init), "
                             "fewshot (--init's graph network frozen, heads trained: `hwnas train --few-shot`), "
                             "rescaled (--init's own latency prediction times one factor fitted on the "
                             "training networks: a zero-shot baseline), transfer (fewshot from a predictor of "
                             "the table's other devices, trained on the networks outside the test set: "
                             "HELP's setting), linear (least squares on the one-hot choices: NB201's 30 edge x "
                             "operation, FBNet's 198 layer x block indicators; an in-space reference)")
    parser.add_argument("--source-epochs", type=int, default=100,
                        help="epochs of the transfer mode's predictor of the other devices")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--device", default="cpu", help="where the predictors train: cpu, cuda, auto")
    parser.add_argument("--json", metavar="FILE", help="also append each result row to FILE (JSON lines)")
    parser.add_argument("--import-only", action="store_true",
                        help="only draw and import the tables (the slow, resumable part), train nothing")
    args = parser.parse_args(argv)

    from hwnas.cli import format_table
    from predictors.dataset import DatasetStore
    from predictors.dataset.importer import import_table
    from predictors.metrics import scores
    from predictors.train import load_graphs, train_predictor

    wanted = set(args.devices.split(",")) if args.devices else None
    rows = []
    for table in args.tables.split(","):
        space, options, arch_column, devices = TABLES[table]
        data = os.path.join(args.work, table)
        csvs = _subset_csv(table, args.networks, os.path.join(args.work, "csv"))
        for device, metrics in devices.items():
            if wanted and device not in wanted:
                continue
            import_table(data, space, csvs[device], arch_column, metrics, device, space_options=options,
                         workers=args.workers, progress=True)
            if args.import_only:
                continue
            with DatasetStore(data) as store:
                stored = [r for r in store.rows(with_tflite=False) if device in r["labels"]]
            # ordered by the architecture itself, so that tables of the same cells under other
            # export options (nb201, nb201-compute) split into the same test set
            archs = {r["arch_id"]: r["arch"] for r in stored}
            key = {a: arch.get("arch_str") or a for a, arch in archs.items()}
            ids = sorted(key, key=lambda a: _rank(key[a]))
            # NB201 cells whose output no path reaches: the tables time them at ~0.01 ms
            degenerate = {r["arch_id"] for r in stored if not _connected(r["arch"].get("arch_str"))}
            graphs, names = load_graphs([data], targets=[device])
            by_id = {g.arch_id: g for g in graphs}
            test, pool = ids[:args.test_size], ids[args.test_size:]
            test_graphs = [by_id[a] for a in test]
            y = np.concatenate([g.y.numpy() for g in test_graphs]).astype(np.float64)
            connected = np.array([g.arch_id not in degenerate for g in test_graphs])
            for n in map(int, args.train_sizes.split(",")):
                n_val = max(10, n // 10)
                if len(pool) < n + n_val:
                    rows.append((table, device, n, "-", "-", "-", "-", "-", "-", f"only {len(pool)} beside the test set"))
                    continue
                train, val = pool[:n], pool[n:n + n_val]
                for mode in args.modes.split(","):
                    t0 = time.time()
                    if mode == "linear":
                        y_train = np.concatenate([by_id[a].y.numpy() for a in train]).astype(np.float64)
                        pred = _linear(space, archs, train, test, y_train)
                    elif mode == "rescaled":
                        pred = _rescaled(args.init, [by_id[a] for a in train], test_graphs)
                    elif mode == "transfer":
                        source = _source_predictor(args, data, table, device, pool)
                        predictor, _ = train_predictor(
                            [data], None, targets=[device], split=(train, val, test), epochs=args.epochs,
                            config={"ensemble": args.ensemble}, init=source, few_shot=True, progress=False,
                            device=args.device)
                        pred = predictor.predict_graphs(test_graphs)[0]
                    else:
                        predictor, _ = train_predictor(
                            [data], None, targets=[device], split=(train, val, test), epochs=args.epochs,
                            config={"ensemble": args.ensemble}, init=None if mode == "scratch" else args.init,
                            few_shot=mode == "fewshot", progress=False, device=args.device)
                        assert predictor.label_names == names
                        pred = predictor.predict_graphs(test_graphs)[0]
                    for j, name in enumerate(names):
                        s = scores(pred[:, j], y[:, j])
                        s_conn = scores(pred[connected, j], y[connected, j])
                        rows.append((table, device + _kind(table, device), n, mode, name.split("/", 1)[1],
                                     f"{s['mape']:.2f}", f"{s_conn['mape']:.2f}", f"{s['acc10']:.1f}",
                                     f"{s['spearman']:.3f}", f"{s['n']} ({s['n'] - s_conn['n']})"))
                    elapsed = time.time() - t0
                    print(format_table(rows[-len(names):], HEADER), f"({elapsed:.0f} s)", file=sys.stderr)
                    if args.json:
                        with open(args.json, "a") as f:
                            for row in rows[-len(names):]:
                                f.write(json.dumps({**dict(zip(HEADER, row)), "seconds": round(elapsed, 1),
                                                    "trained_on": args.device}) + "\n")
    print(format_table(rows, HEADER))
    print()
    for what, rho in PUBLISHED:
        print(f"published: {what}: Spearman {rho}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
