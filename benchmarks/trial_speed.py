"""What a trial's hardware evaluation costs, and what the lowering makes possible.

    python benchmarks/trial_speed.py [--archs 8] [--nsga-trials 10000] [--verify-trials 100] [--skip ...]
        [--device-budget 0.03]

A. Per space, the median time of one trial's hardware evaluation over ``--archs``
   sampled archs, in one run: the lowered path (``arch_arrays`` + the shipped
   ethos-u55-128 predictor) right after each arch's export and Vela compile, and again
   as a search runs it (the archs' lowered trials one after another, three passes),
   build + export + predict (the path before the lowering), and build + export + Vela
   (searching on exact labels).
B. All 15,625 NAS-Bench-201 cells screened on the lowered path (two worker
   processes lower, the predictor predicts in batches): wall time.
C. A ``--nsga-trials`` NSGA-II study on nasbench201 maximising the NATS-Bench CIFAR-10
   accuracy and minimising predicted U55 energy, on the lowered path: wall time, and
   the hypervolume of its front against the exhaustive front of B (same objectives).
D. Measure when unsure: TPE maximising MACs under a tight U55 latency budget, on
   keyword_spotting and image_classification, three ways with the same seed: no
   verification, ``verify="uncertain"``, and on Vela's labels (``TargetOracle``).
   Every candidate each search chose (within budget) is measured with Vela: the
   violations, and the measurements each search needed.
E. A device the predictor was not trained on: the U55's predictor searching for an
   Ethos-U65 (its Vela measures; ``--device-budget`` on its latency), no verification,
   verifying the uncertain, the same with a few-shot update of the predictor every 5
   measurements (``update_every``), and the U65's own labels.
"""
from __future__ import annotations

import argparse
import csv
import os
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NATS_CSV = os.path.join(os.environ.get("HWNAS_SHARED_DATA", os.path.join(os.path.dirname(REPO), "shared", "data")),
                        "nb201", "nats_bench_accuracy.csv")
TARGET = "ethos-u55-128"
SPACES = ["keyword_spotting", "image_classification", "object_detection", "super_resolution", "nasbench201",
          "fbnet", "generic"]


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def part_a(predictor, n: int) -> list[tuple]:
    import search_spaces
    from hwnas.export import to_tflite
    from predictors import targets
    from predictors.graph import arch_arrays

    vela = targets.get(TARGET)
    rows = []
    for name in SPACES:
        space = search_spaces.get(name)
        lowered, exported, measured = [], [], []
        for i in range(n):
            arch = space.sample(np.random.default_rng([11, i]))
            t0 = time.perf_counter()
            predictor.predict_arrays([arch_arrays(space, arch)])
            t1 = time.perf_counter()
            tflite = to_tflite(space.build(arch), quantize="int8")
            t2 = time.perf_counter()
            predictor.predict(tflite)
            t3 = time.perf_counter()
            vela.measure(tflite)
            t4 = time.perf_counter()
            lowered.append(t1 - t0)
            exported.append(t3 - t1)
            measured.append((t2 - t1) + (t4 - t3))
        # as a search runs them: the same archs' lowered trials one after another, three passes
        # (above, each one came right after a TensorFlow export and a Vela compile)
        archs = [space.sample(np.random.default_rng([11, i])) for i in range(n)]
        consecutive = []
        for _ in range(3):
            for arch in archs:
                t0 = time.perf_counter()
                predictor.predict_arrays([arch_arrays(space, arch)])
                consecutive.append(time.perf_counter() - t0)
        m = [statistics.median(v) for v in (lowered, exported, measured)]
        rows.append((name, f"{1000 * m[0]:.2f} ms", f"{1000 * statistics.median(consecutive):.2f} ms",
                     f"{m[1]:.2f} s", f"{m[2]:.2f} s", f"{m[1] / m[0]:,.0f}x"))
        log(f"  A {name}: {rows[-1][1:]}")
    return rows


def _lower_chunk(arch_strings: list[str]) -> list[dict]:
    import search_spaces
    from predictors.graph import arch_arrays

    space = search_spaces.get("nasbench201")
    return [arch_arrays(space, space.decode(a)) for a in arch_strings]


def nats_accuracy() -> dict[str, float]:
    with open(NATS_CSV, newline="") as f:
        rows = list(csv.DictReader(f))
    column = next(c for c in rows[0] if "cifar10" in c.lower() and "100" not in c and "acc" in c.lower())
    arch_column = next(c for c in rows[0] if "arch" in c.lower())
    return {r[arch_column]: float(r[column]) for r in rows}


def part_b(predictor, workers: int) -> tuple[float, dict[str, float]]:
    archs = sorted(nats_accuracy())
    started = time.perf_counter()
    chunks = [archs[i:i + 250] for i in range(0, len(archs), 250)]
    energy: dict[str, float] = {}
    import multiprocessing as mp

    with ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn")) as pool:
        for chunk, arrays in zip(chunks, pool.map(_lower_chunk, chunks)):
            for a, r in zip(chunk, predictor.predict_arrays(arrays, targets=[TARGET])):
                energy[a] = r[TARGET]["energy_mj"]
    return time.perf_counter() - started, energy


def front(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Maximise [0], minimise [1]."""
    pts = sorted(set(points), key=lambda p: (-p[0], p[1]))
    out, best = [], float("inf")
    for a, e in pts:
        if e < best:
            out.append((a, e))
            best = e
    return out


def hypervolume(points, ref) -> float:
    area, best_e = 0.0, ref[1]
    for a, e in front(points):
        if a > ref[0] and e < best_e:
            area += (a - ref[0]) * (best_e - e)
            best_e = e
    return area


def part_c(predictor, trials: int, exhaustive: dict[str, float]) -> tuple:
    import optuna

    from hwnas.search import HardwareObjective, make_study, run_search

    acc = nats_accuracy()
    objective = HardwareObjective("nasbench201", TARGET, predictor, objectives=["accuracy", "energy"],
                                  accuracy=lambda c: acc[c.arch["arch_str"]])
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = make_study(objective, None, None, "nsga2", seed=0)
    started = time.perf_counter()
    run_search(objective, trials, study=study)
    wall = time.perf_counter() - started
    found = [(t.values[0], t.values[1]) for t in study.trials if t.values]
    everything = [(acc[a], e) for a, e in exhaustive.items()]
    ref = (0.0, 1.05 * max(e for _, e in everything))
    share = hypervolume(found, ref) / hypervolume(everything, ref)
    distinct = len({t.user_attrs["arch_id"] for t in study.trials})
    return wall, share, distinct, objective.predictions, objective.exported_predictions


def part_d(predictor, space_name: str, budget: float, trials: int, device: str = TARGET,
           modes: tuple[str, ...] = ("none", "uncertain", "oracle"), update_every: int = 5) -> list[tuple]:
    """Rows of a TPE search maximising MACs under a latency budget on ``device`` (its Vela
    measures every chosen candidate afterwards), one per mode: the surrogate unverified,
    verifying the uncertain, verifying with updates every ``update_every`` measurements,
    or the device's own labels (TargetOracle)."""
    import optuna

    from hwnas.search import HardwareObjective, TargetOracle, make_study, run_search
    from predictors import targets

    vela = targets.get(device)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    truth: dict[str, float] = {}
    rows = []
    for mode in modes:
        oracle = TargetOracle(device) if mode == "oracle" else None
        if oracle:
            objective = HardwareObjective(space_name, device, oracle, budgets={"latency_ms": budget})
        else:
            objective = HardwareObjective(space_name, TARGET, predictor, budgets={"latency_ms": budget},
                                          verify="uncertain" if mode == "update" else mode, measure=vela.measure,
                                          update_every=update_every if mode == "update" else 0)
        study = make_study(objective, None, None, "tpe", seed=0)
        started = time.perf_counter()
        run_search(objective, trials, study=study, give_up_after=None)
        wall = time.perf_counter() - started
        chosen = {t.user_attrs["arch_id"]: t for t in study.trials if t.user_attrs.get("feasible")}
        for arch_id, t in chosen.items():
            if arch_id not in truth:
                truth[arch_id] = vela.measure(objective.export(objective.space.decode(t.user_attrs["arch"])))[
                    "latency_ms"]
        violations = sum(1 for a in chosen if truth[a] > budget)
        measurements = oracle.calls if oracle else objective.measurements
        best = max((t.user_attrs["macs"] for a, t in chosen.items() if truth[a] <= budget), default=0)
        label = {"none": "surrogate, no verification", "uncertain": "surrogate, verify uncertain",
                 "update": f"surrogate, verify uncertain, update every {update_every}",
                 "oracle": "Vela labels (TargetOracle)"}[mode]
        updates = getattr(objective, "updates", 0)
        rows.append((space_name, device, f"{budget:g}", label, len(chosen), violations, measurements, updates,
                     f"{best:,.0f}", f"{wall:.0f} s"))
        log(f"  {rows[-1]}")
    return rows


D_HEADER = ("space", "device (Vela)", "latency budget ms", "search", "chosen (within budget)", "over budget on Vela",
            "Vela measurements", "predictor updates", "best true-within MACs", "wall")


def main(argv=None) -> int:
    from hwnas.cli import format_table
    from predictors import load_predictor

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--archs", type=int, default=8)
    ap.add_argument("--nsga-trials", type=int, default=10_000)
    ap.add_argument("--verify-trials", type=int, default=100)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--skip", default="", help="parts to skip, e.g. a,d")
    ap.add_argument("--device-budget", type=float, default=0.03, help="part E's U65 latency budget (ms)")
    args = ap.parse_args(argv)
    skip = set(args.skip.split(",")) if args.skip else set()
    predictor = load_predictor(f"perfsage-{TARGET}")
    if "a" not in skip:
        log("A: one trial's hardware evaluation")
        print(format_table(part_a(predictor, args.archs),
                           ("space", "lowered + predict (after an export)", "lowered + predict (consecutive)",
                            "build + export + predict", "build + export + Vela", "export path / lowered")))
        print()
    exhaustive = None
    if "b" not in skip or "c" not in skip:
        log("B: every NAS-Bench-201 cell")
        seconds, exhaustive = part_b(predictor, args.workers)
        print(f"B. all {len(exhaustive):,} NAS-Bench-201 cells lowered and predicted ({args.workers} processes): "
              f"{seconds:.0f} s\n")
    if "c" not in skip:
        log(f"C: NSGA-II, {args.nsga_trials} trials")
        wall, share, distinct, predictions, exported = part_c(predictor, args.nsga_trials, exhaustive)
        print(f"C. NSGA-II, {args.nsga_trials:,} trials on nasbench201 (NATS-Bench CIFAR-10 accuracy vs predicted "
              f"U55 energy): {wall:.0f} s, {distinct:,} distinct archs, {predictions:,} predictions "
              f"({exported} from exported files); hypervolume {100 * share:.2f} % of the exhaustive front's\n")
    if "d" not in skip:
        log("D: measure when unsure")
        rows = part_d(predictor, "keyword_spotting", 0.1, args.verify_trials)
        rows += part_d(predictor, "image_classification", 0.5, args.verify_trials)
        print(format_table(rows, D_HEADER))
        print()
    if "e" not in skip:
        log("E: a device the predictor was not trained on (the U55's predictor, the U65's measurements)")
        rows = part_d(predictor, "keyword_spotting", args.device_budget, args.verify_trials, device="ethos-u65-256",
                      modes=("none", "uncertain", "update", "oracle"))
        print(format_table(rows, D_HEADER))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
