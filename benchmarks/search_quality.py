"""How good are the searches the surrogate drives? Hypervolume, measurements needed, budgets met.

    python benchmarks/search_quality.py [--trials 100] [--seed 0] [--metric energy_mj]
        [--predictor perfsage-ethos-u55-128 | PATH] [--budget-trials 100] [--max-latency-ms 0.1]
        [--margins 0,1,2] [--skip-a] [--skip-b]

A. nasbench201 (CIFAR-10), maximise the NATS-Bench test accuracy
   (``../shared/data/nb201/nats_bench_accuracy.csv``) and minimise the Ethos-U55-128
   ``--metric`` (energy or latency), ``--trials`` trials each:

   * ``NSGA-II, surrogate``: the study sees PerfSAGE predictions; its chosen candidates
     are its predicted Pareto front, which is then measured with Vela (those are its
     true measurements);
   * ``NSGA-II, measured``: the same search on Vela's labels (every distinct candidate
     measured);
   * ``random, measured`` and ``random, surrogate``: random sampling at the same trial
     count, choosing in the same two ways.

   For each: the hypervolume of the *true* (Vela-measured) Pareto front of the
   candidates it chose, as a share of the box between the reference point (accuracy
   0, 1.05x the largest measured value) and the ideal point, and relative to the front of
   every measured candidate of every search (the best front known); and how many Vela
   measurements it needed.

B. keyword_spotting with a latency budget (``--max-latency-ms``), TPE maximising MACs (the
   capacity proxy) with the surrogate, once per margin ``k`` (over budget when
   predicted + k std > budget): every candidate it found within budget is measured
   with Vela; the share that really meets the budget (of all of them, and of the
   ``--top`` biggest, the ones a user would pick), and the best MACs among those.

Exports are shared between the searches (one per distinct arch). Progress goes to stderr.
"""
from __future__ import annotations

import argparse
import os
import sys
import time


REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NATS_CSV = os.path.join(os.environ.get("HWNAS_SHARED_DATA", os.path.join(os.path.dirname(REPO), "shared", "data")),
                        "nb201", "nats_bench_accuracy.csv")
TARGET = "ethos-u55-128"


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class Labels:
    """One export per distinct arch; predicted and measured labels cached by arch_id."""

    def __init__(self, predictor, target: str):
        from hwnas.search import TargetOracle

        self.predictor = predictor
        self.oracle = TargetOracle(target)
        self.target = target
        self.records: dict[tuple[str, str], dict] = {}  # (space, arch_id) -> {"macs", "pred", "true"}
        self.export_s = 0.0
        self.exports = 0

    def get(self, space, arch, kind: str) -> dict:
        from hwnas.export import to_tflite
        from predictors.graph import summarize

        key = (space.name, space.arch_id(arch))
        rec = self.records.setdefault(key, {})
        if kind not in rec:
            if "tflite" not in rec:
                started = time.perf_counter()
                rec["tflite"] = to_tflite(space.build(arch), quantize="int8")
                rec["macs"] = summarize(rec["tflite"])["totals"]["total_macs"]
                self.export_s += time.perf_counter() - started
                self.exports += 1
            source = self.predictor if kind == "pred" else self.oracle
            rec[kind] = source.predict(rec["tflite"])[self.target]
            if "pred" in rec and "true" in rec:
                rec.pop("tflite")  # keep memory small: nb201 exports are ~1.5 MB
        return rec


def objective_class():
    from hwnas.search import HardwareObjective

    class BenchObjective(HardwareObjective):
        """A HardwareObjective whose labels come from the shared :class:`Labels` (kind pred/true)."""

        def __init__(self, *args, labels: Labels, kind: str, **kwargs):
            super().__init__(*args, **kwargs)
            self.labels, self.kind = labels, kind
            self.measured: set[str] = set()  # arch_ids whose Vela label this search asked for

        def evaluate_arch(self, arch):
            rec = self.labels.get(self.space, arch, self.kind)
            if self.kind == "true":
                self.measured.add(self.space.arch_id(arch))
            return b"", dict(rec[self.kind]), float(rec["macs"])

        def _upload(self, trial, candidate):  # no artifacts in the benchmark
            return None

    return BenchObjective


def hypervolume_2d(points, ref) -> float:
    """Area dominated by ``points`` (maximise x[0], minimise x[1]) up to ``ref``."""
    pts = sorted({(a, e) for a, e in points if a > ref[0] and e < ref[1]}, key=lambda p: (-p[0], p[1]))
    area, best_e = 0.0, ref[1]
    for a, e in pts:  # by accuracy, descending
        if e < best_e:
            area += (a - ref[0]) * (best_e - e)
            best_e = e
    return area


def pareto(points):
    return [p for p in points if not any(q[0] >= p[0] and q[1] <= p[1] and q != p for q in points)]


def part_a(args, predictor, labels) -> None:

    import search_spaces
    from hwnas.search import accuracy_from_table, best_candidates, make_study, run_search

    if not os.path.isfile(args.accuracy_csv):
        log(f"part A skipped: {args.accuracy_csv} not found (set HWNAS_SHARED_DATA or --accuracy-csv)")
        return
    space = search_spaces.get("nasbench201")
    accuracy = accuracy_from_table(args.accuracy_csv, space, column=args.accuracy_column)
    Bench = objective_class()
    metric = args.metric
    runs = {}
    for name, sampler, kind in (("NSGA-II, surrogate", "nsga2", "pred"), ("NSGA-II, measured", "nsga2", "true"),
                                ("random, surrogate", "random", "pred"), ("random, measured", "random", "true")):
        started = time.perf_counter()
        objective = Bench(space, TARGET, predictor, objectives=["accuracy", metric], accuracy=accuracy,
                          labels=labels, kind=kind)
        study = make_study(objective, None, sampler=sampler, seed=args.seed, n_trials=args.trials)
        run_search(objective, args.trials, study=study)
        chosen = [t.user_attrs["arch_id"] for t in best_candidates(study)]
        if kind == "pred":  # measure the predicted front: those are the surrogate search's measurements
            for t in best_candidates(study):
                labels.get(space, t.user_attrs["arch"], "true")
            measured = set(chosen)
        else:
            measured = objective.measured
            chosen = sorted(measured)  # every measured candidate: its true front is taken below
        points = [(accuracy.table[a], labels.records[(space.name, a)]["true"][metric]) for a in chosen]
        distinct = len({t.user_attrs["arch_id"] for t in study.trials})
        runs[name] = {"points": points, "measured": len(measured), "distinct": distinct,
                      "seconds": time.perf_counter() - started}
        log(f"A: {name}: {distinct} distinct archs, {len(measured)} measured, {time.perf_counter() - started:.0f} s "
            f"(exports so far {labels.exports})")
    every = [(accuracy.table[a], rec["true"][metric]) for (s, a), rec in labels.records.items()
             if s == space.name and "true" in rec]
    worst = max(p[1] for p in every)
    ref = (0.0, 1.05 * worst)
    ideal = (max(p[0] for p in every), min(p[1] for p in every))
    box = (ideal[0] - ref[0]) * (ref[1] - ideal[1])
    known = hypervolume_2d(pareto(every), ref)
    from hwnas.cli import format_table

    rows = []
    for name, r in runs.items():
        front = pareto(r["points"])
        hv = hypervolume_2d(front, ref)
        rows.append((name, args.trials, r["distinct"], r["measured"], len(front), f"{100 * hv / box:.2f}",
                     f"{100 * hv / known:.1f}", f"{max(p[0] for p in front):.2f}" if front else "-"))
    print(f"\nA. nasbench201 (CIFAR-10), NATS-Bench accuracy vs {TARGET} {metric}; {args.trials} trials each, "
          f"seed {args.seed}; predictor {getattr(predictor, 'name', '?')}")
    print(format_table(rows, ("search", "trials", "distinct archs", "Vela measurements", "true front",
                              "HV % of box", "HV % of best known", "best accuracy")))
    both = [(rec["pred"], rec["true"]) for (s, _), rec in labels.records.items()
            if s == space.name and "pred" in rec and "true" in rec]
    if both:
        import numpy as np

        err = [abs(p[metric] - t[metric]) / t[metric] * 100 for p, t in both]
        from scipy.stats import spearmanr

        rho = spearmanr([p[metric] for p, _ in both], [t[metric] for _, t in both]).statistic
        print(f"surrogate on the {len(both)} archs with both labels: {metric} MAPE {np.mean(err):.1f} %, "
              f"Spearman {rho:.3f}; reference point (0, {ref[1]:.4g}); best known front: {len(pareto(every))} "
              f"archs of {len(every)} measured")


def part_b(args, predictor, labels) -> None:
    import search_spaces
    from hwnas.cli import format_table
    from hwnas.search import is_feasible, make_study, run_search

    space = search_spaces.get("keyword_spotting")
    Bench = objective_class()
    rows = []
    for k in args.margins:
        started = time.perf_counter()
        objective = Bench(space, TARGET, predictor, budgets={"latency_ms": args.max_latency_ms}, margin_std=k,
                          objectives=["macs"], labels=labels, kind="pred")
        study = make_study(objective, None, sampler="tpe", seed=args.seed)
        run_search(objective, args.budget_trials, study=study, give_up_after=None)
        feasible = sorted((t for t in study.trials if is_feasible(t)), key=lambda t: -t.value)
        chosen = {t.user_attrs["arch_id"]: t.user_attrs["arch"] for t in feasible}
        met, best_macs, top_met = 0, 0.0, 0
        for rank, (arch_id, arch) in enumerate(chosen.items()):
            rec = labels.get(space, arch, "true")
            if rec["true"]["latency_ms"] <= args.max_latency_ms:
                met += 1
                top_met += rank < args.top
                best_macs = max(best_macs, rec["macs"])
        over = sum(1 for t in study.trials if t.user_attrs.get("feasible") is False)
        share = f"{100 * met / len(chosen):.1f}" if chosen else "-"
        top = min(args.top, len(chosen))
        rows.append((k, args.budget_trials, over, len(chosen), met, share, f"{top_met}/{top}", best_macs))
        log(f"B: k={k}: {len(chosen)} chosen, {met} within budget, {time.perf_counter() - started:.0f} s")
    print(f"\nB. keyword_spotting, {TARGET} latency budget {args.max_latency_ms} ms, TPE maximising MACs, "
          f"{args.budget_trials} trials per margin, seed {args.seed}")
    print(format_table(rows, ("margin k (std)", "trials", "pruned (pred. over)", "chosen (pred. within)",
                              "measured within", "share %", f"top {args.top} by MACs within",
                              "best measured-within MACs")))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--predictor", default=f"perfsage-{TARGET}")
    parser.add_argument("--trials", type=int, default=100, help="trials per search in part A")
    parser.add_argument("--metric", default="energy_mj", choices=("energy_mj", "latency_ms"))
    parser.add_argument("--accuracy-csv", default=NATS_CSV)
    parser.add_argument("--accuracy-column", default="CIFAR10TestAccuracy200Epochs")
    parser.add_argument("--budget-trials", type=int, default=100, help="trials per margin in part B")
    parser.add_argument("--max-latency-ms", type=float, default=0.1)
    parser.add_argument("--top", type=int, default=5, help="part B: also the share among the top K by MACs")
    parser.add_argument("--margins", default="0,1,2", help="comma-separated k values for part B")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-a", action="store_true")
    parser.add_argument("--skip-b", action="store_true")
    args = parser.parse_args(argv)
    args.margins = [float(k) for k in args.margins.split(",") if k.strip()]
    os.environ.setdefault("HWNAS_TORCH_THREADS", "1")

    import optuna

    from predictors.predictor import load_predictor

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    started = time.perf_counter()
    predictor = load_predictor(args.predictor)
    labels = Labels(predictor, TARGET)
    if not args.skip_a:
        part_a(args, predictor, labels)
    if not args.skip_b:
        part_b(args, predictor, labels)
    print(f"\n{labels.exports} exports ({labels.export_s:.0f} s), {labels.oracle.calls} Vela measurements; "
          f"{time.perf_counter() - started:.0f} s in all")
    return 0


if __name__ == "__main__":
    sys.exit(main())
