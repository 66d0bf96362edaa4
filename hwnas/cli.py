"""The ``hwnas`` command line.

Every sub-command imports what it needs when it runs, so ``hwnas --help`` starts
fast.  Errors a user can cause print one line (``hwnas: error: ...``) on stderr and
exit with status 1; ``--json`` output goes to stdout and nothing else does.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable, Sequence

from search_spaces.errors import HwnasError, unknown_name

EXIT_ERROR = 1
EXIT_INTERRUPTED = 130


def _print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2, sort_keys=False) + "\n")


def _format_value(value: Any) -> str:
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        if value.is_integer() and abs(value) < 1e15:
            return str(int(value))
        return f"{value:.1f}" if abs(value) >= 1000 else f"{value:.4g}"
    return str(value)


def format_table(rows: Sequence[Sequence[Any]], header: Sequence[str]) -> str:
    """A plain left-aligned text table."""
    cells = [[str(h) for h in header]] + [[_format_value(v) for v in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


# --- sub-commands -----------------------------------------------------------------


def cmd_targets(args: argparse.Namespace) -> int:
    from predictors import targets
    from predictors.predictor import list_predictors

    shipped = set(list_predictors())
    described = {name: targets.get(name).describe() for name in targets.names()}
    for name, d in described.items():  # what `hwnas predict` covers without --predictor
        d["predictor"] = f"perfsage-{name}" if f"perfsage-{name}" in shipped else None
    if args.json:
        _print_json({name: {k: v for k, v in d.items() if k != "name"} for name, d in described.items()})
        return 0
    rows = [(name, ", ".join(d["metrics"]), d["predictor"] or "-", d["description"]) for name, d in described.items()]
    print(format_table(rows, ("target", "metrics", "shipped predictor", "how")))
    return 0


def cmd_measure(args: argparse.Namespace) -> int:
    from predictors import targets

    target = targets.get(args.target)
    result = target.measure(args.model)
    missing = [m for m in target.metrics if m not in result]
    if missing:  # e.g. an arena set-up that cannot run a custom operator the latency run could
        reason = next((result[k] for k in result if k.endswith("_error")), "not measured")
        print(f"warning: {', '.join(missing)} not measured: {reason}", file=sys.stderr)
    if args.json:
        _print_json(result)
        return 0
    rows = [(k, v) for k, v in result.items() if k in target.metrics]
    rows += [(k, v) for k, v in result.items() if k not in target.metrics]
    print(f"{args.model} on {target.name}")
    print(format_table(rows, ("metric", "value")))
    return 0


def cmd_graph(args: argparse.Namespace) -> int:
    from predictors.graph import summarize

    summary = summarize(args.model)
    if args.json:
        _print_json(summary)
        return 0
    folded = summary["file_operators"] - summary["nodes"]
    nodes = f"{summary['nodes']} nodes" + (
        f" ({summary['file_operators']} operators in the file: {folded} weight conversions are part of their "
        f"consumers)" if folded else " (operators)")
    print(f"{args.model}: {nodes}, {summary['edges']} edges, "
          f"{summary['subgraphs']} subgraph(s); features {summary['feature_version']} "
          f"({summary['node_feature_dim']} per node, {summary['graph_feature_dim']} per graph)")
    if summary["shapes"] == "run time":
        print("shapes: LiteRT's after one inference (the file leaves some open)")
    elif summary["shapes"] != "file":
        print(f"shapes: the file's placeholders ({summary['shapes'].removeprefix('placeholders: ')}): sizes are "
              "likely too small")
    print()
    print(format_table(list(summary["operators"].items()), ("operator", "count")))
    print()
    print(format_table([(k, v) for k, v in summary["totals"].items()], ("total", "value")))
    print()
    print(format_table([(k, v) for k, v in summary["estimates"].items()], ("estimate", "value")))
    return 0


def _space_options(pairs: list[str] | None) -> dict[str, str]:
    options = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise HwnasError(f"--space-option expects KEY=VALUE, got {pair!r}")
        options[key.strip()] = value.strip()
    return options


def cmd_dataset_build(args: argparse.Namespace) -> int:
    from predictors.dataset import build_dataset

    stats = build_dataset(
        args.out, args.space, args.num, args.target, workers=args.workers, backend=args.backend,
        seed=args.seed, address=args.address, space_options=_space_options(args.space_option),
        timeout_s=args.timeout, progress=not args.quiet, quantize=args.quantize or ["int8"],
        command={k: v for k, v in vars(args).items() if k != "func"}, retime=args.retime,
    )
    more = f" (and {stats['added_samples']} samples in other regimes)" if stats["added_samples"] else ""
    print(f"{args.space}: {stats['added']} networks added{more}, {stats['failed']} failed, "
          f"{stats['labelled']} relabelled; {stats['total']} in {args.out}")
    return 0


def cmd_dataset_import(args: argparse.Namespace) -> int:
    from predictors.dataset.importer import import_table, report_skipped

    stats = import_table(
        args.out, args.space, args.csv, args.arch_column, args.metric, args.target_name,
        space_options=_space_options(args.space_option), workers=args.workers, backend=args.backend,
        limit=args.limit, progress=not args.quiet, command={k: v for k, v in vars(args).items() if k != "func"},
        lowering=not args.export,
    )
    report_skipped(stats)
    print(f"{args.target_name}: {stats['imported']} networks imported ({stats['reused_exports']} reused an "
          f"existing export), {stats['already']} already there, {stats['failed']} failed to export, "
          f"{sum(v['count'] for v in stats['skipped'].values())} rows skipped; {args.out}")
    return 0


def cmd_dataset_seal(args: argparse.Namespace) -> int:
    from predictors.dataset import DatasetStore

    if args.shard_networks < 1:
        raise HwnasError(f"--shard-networks must be at least 1, got {args.shard_networks}")
    with DatasetStore(args.dir) as store:  # refuses a folder with no dataset
        pass
    with DatasetStore(args.dir, create=True) as store:
        written = store.seal(shard_networks=args.shard_networks)
    for path in written:
        print(f"sealed {path}")
    if not written:
        print(f"{args.dir}: nothing to seal")
    return 0


def cmd_dataset_merge(args: argparse.Namespace) -> int:
    from predictors.dataset import DatasetStore

    sources = []
    for src in args.src:  # every source readable before anything is written
        with DatasetStore(src):
            sources.append(src)
    with DatasetStore(args.out, create=True) as store:
        for src in sources:
            with DatasetStore(src) as source:
                stats = store.merge(source)
            print(f"{src}: {stats['networks']} networks, {stats['labels']} labels and {stats['runs']} run(s) merged "
                  f"into {args.out}" + (f" ({stats['kept']} networks it had already kept)" if stats["kept"] else "")
                  + (f"; {stats['older']} labels older than its own left out" if stats["older"] else ""))
        for path in store.seal():
            print(f"sealed {path}")
    return 0


def cmd_dataset_info(args: argparse.Namespace) -> int:
    from predictors.dataset import DatasetStore

    with DatasetStore(args.dir) as store:
        info = store.info()
    if args.json:
        _print_json(info)
        return 0
    unsealed = f", {info['unsealed_networks']} not sealed yet" if info["unsealed_networks"] else ""
    print(f"{args.dir}: {sum(info['networks_by_space'].values())} networks ({info['samples']} samples), "
          f"{info['runs']} run(s), {info['shards']} shard(s){unsealed}, {info['size_bytes'] / 1e6:.1f} MB")
    regimes = info["regimes"]  # the other regimes' samples: one row each, all spaces together
    targets = sorted({t for c in [*info["by_space"].values(), *(r["labels"] for r in regimes.values())] for t in c})
    rows = [(space, info["networks_by_space"].get(space, 0), *[counts.get(t, 0) for t in targets])
            for space, counts in info["by_space"].items()]
    rows += [(f"(all, {q})", sum(r["samples"].values()), *[r["labels"].get(t, 0) for t in targets])
             for q, r in regimes.items()]  # per space: --json
    if rows:
        print(format_table(rows, ("space", "networks", *targets)))
    if info["failures"]:
        print()
        print(format_table(sorted(info["failures"].items()), ("failure", "count")))
    for target, counts in info.get("timings", {}).items():  # labels timed another way are measured again
        stale = info["stale_labels"].get(target, 0)
        hosts = info.get("timing_hosts", {}).get(target, {})
        parts = [f"{how} {n}" + (f" ({', '.join(f'{h} {k}' for h, k in hosts[how].items())})"
                                 if len(hosts.get(how, {})) > 1 else "") for how, n in counts.items()]
        print(f"\n{target} timing: {', '.join(parts)}" + (
            f" ({stale} stale: `hwnas dataset build ... --target {target}` measures them again)" * bool(stale)))
        n_hosts = len({h for per in hosts.values() for h in per})
        if n_hosts > 1:
            print(f"{target} labels come from {n_hosts} hosts: a predictor trained on all of them learns a mix")
    print()
    for key, value in info["versions"].items():
        print(f"{key}: {value}")
    for m in info["machines"]:
        print(f"machine: {m.get('cpu_model')} ({m.get('cpu_cores')} cores)")
    return 0


def _archs(args: argparse.Namespace) -> list:
    """The archs of ``--arch JSON`` (repeatable) and ``--archs FILE.jsonl``, in order."""
    from search_spaces import read_archs

    archs = read_archs(args.arch or [], args.archs)
    if not archs:
        raise HwnasError("give the archs to predict: --arch JSON (repeatable) or --archs FILE.jsonl")
    return archs


def cmd_predict(args: argparse.Namespace) -> int:
    import warnings

    from predictors.predictor import PredictionWarning, load_predictor, shipped_predictors

    by_arch = args.space is not None
    if by_arch and args.models:
        raise HwnasError("give .tflite files or --space with --arch/--archs, not both")
    if not by_arch and (args.arch or args.archs):
        raise HwnasError("--arch and --archs need --space S (the space the archs belong to)")
    if not by_arch and not args.models:
        raise HwnasError("give .tflite files, or --space S with --arch JSON / --archs FILE.jsonl")
    if by_arch:
        import search_spaces

        space = search_spaces.get(args.space, **_space_options(args.space_option))
        archs = [space.decode(a) for a in _archs(args)]  # a bad arch: the field it names
        items: list = archs
        labels = [space.arch_id(a) for a in archs]
    else:
        items = list(args.models)
        labels = items
    predictors = [load_predictor(args.predictor)] if args.predictor else shipped_predictors(args.target)
    results: list[dict] = [{} for _ in items]
    arrays = None
    if by_arch:
        from predictors.graph import arch_arrays
        from predictors.graph._lowered import LoweringError

        try:
            arrays = [arch_arrays(space, a) for a in archs]
        except LoweringError as exc:
            raise HwnasError(f"space {space.name!r}: {exc} (hwnas predict MODEL.tflite)") from None
    notes: list[str] = []
    for p in predictors:
        targets = [t for t in (args.target or p.targets) if t in p.targets] or None
        if args.target and args.predictor and not targets:
            p._check_targets(args.target)  # raises the unknown-target error
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", PredictionWarning)
            found = p.predict_arrays(arrays, targets=targets) if by_arch else p.predict(items, targets=targets)
        notes += [str(w.message) for w in caught if issubclass(w.category, PredictionWarning)]
        for i, r in enumerate(found):
            results[i].update(r)
    refused = [(label, t, r["error"]) for label, result in zip(labels, results) for t, r in result.items()
               if "error" in r]
    if refused and all("error" in r for result in results for r in result.values()):
        raise HwnasError(refused[0][2])  # nothing could be predicted
    for line in [*dict.fromkeys(notes), *(f"{label}: not predicted: {why}" for label, _, why in refused)]:
        print(f"warning: {line}", file=sys.stderr)  # one line each: stdout stays the table or the JSON
    if args.json:
        _print_json(results[0] if len(items) == 1 and not by_arch else results)
        return 0
    rows = []
    for label, result in zip(labels, results):
        for target, metrics in result.items():
            for metric, value in metrics.items():
                if not metric.endswith("_std") and metric != "error":
                    rows.append((label, target, metric, value, metrics.get(f"{metric}_std", float("nan"))))
    print(format_table(rows, ("arch_id" if by_arch else "model", "target", "metric", "predicted", "std")))
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from predictors.model import PUBLISHED
    from predictors.train import train_predictor

    config = dict(PUBLISHED) if args.config == "published" else {}
    if args.ensemble:
        config["ensemble"] = args.ensemble
    _, report = train_predictor(
        args.data, args.out, config=config, epochs=args.epochs, seed=args.seed, targets=args.target,
        spaces=args.space, test_spaces=args.test_space, init=args.init, progress=not args.quiet,
        few_shot=args.few_shot, device=args.device, host=args.host, workers=args.workers,
    )
    rows = []
    for target, metrics in report["test"].items():
        if target in ("by_space", "by_regime"):
            continue
        for metric, s in metrics.items():
            rows.append((target, metric, s["mape"], s["acc10"], s["spearman"], s["n"], s.get("within_2std", "")))
    print(f"trained in {report['train_seconds']:.0f} s on {report['split']['train']} networks "
          f"(val {report['split']['val']}, test {report['split']['test']}); saved to {args.out}")
    print(format_table(rows, ("target", "metric", "MAPE %", "acc10 %", "spearman", "n", "in 2 std %")))
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from predictors.evaluate import evaluate_predictor
    from predictors.predictor import json_safe, load_predictor

    report = evaluate_predictor(load_predictor(args.predictor), args.data, plot=args.plot)
    if args.json:
        _print_json(json_safe(report))
        return 0
    rows = []
    for target, metrics in report.items():
        if target in ("by_space", "by_regime"):
            continue
        for metric, s in metrics.items():
            rows.append((target, metric, s["mape"], s["acc10"], s["spearman"], s["n"]))
    print(format_table(rows, ("target", "metric", "MAPE %", "acc10 %", "spearman", "n")))
    if args.plot:
        print(f"plot: {args.plot}")
    return 0


def _budget_args(args: argparse.Namespace) -> dict[str, float]:
    budgets: dict[str, float] = {}
    for metric, value in (("latency", args.max_latency_ms), ("energy", args.max_energy_mj),
                          ("memory", args.max_memory_kib)):
        if value is not None:
            budgets[metric] = value
    for pair in args.max or []:
        key, sep, value = pair.partition("=")
        try:
            budgets[key.strip()] = float(value)
        except ValueError:
            sep = ""
        if not sep or not key.strip():
            raise HwnasError(f"--max expects METRIC=VALUE (e.g. offchip_kib=512), got {pair!r}")
    return budgets


def cmd_search(args: argparse.Namespace) -> int:
    import search_spaces
    from predictors import targets

    from hwnas import search

    # names first: a typo is reported before TensorFlow and torch load
    space = search_spaces.get(args.space, **_space_options(args.space_option))
    if args.target not in targets.names() and not args.predictor:  # else: a device the predictor knows
        raise unknown_name("target", args.target, targets.names())
    objectives = args.objective or (["accuracy"] if args.accuracy_csv else None)
    budgets = _budget_args(args)
    search.check_setup(sampler=args.sampler, n_trials=args.trials, budgets=budgets, objectives=objectives,
                       has_accuracy=bool(args.accuracy_csv))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    storage = args.storage or f"sqlite:///{out / 'study.db'}"
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # the summary says it all; --json keeps stdout clean
    storage_obj = search.open_storage(storage)  # a bad URL fails before the heavy imports

    accuracy = None
    if args.accuracy_csv:
        accuracy = search.accuracy_from_table(args.accuracy_csv, space, column=args.accuracy_column,
                                              arch_column=args.arch_column)
    from optuna.artifacts import FileSystemArtifactStore

    artifact_dir = out / "artifacts"
    artifact_dir.mkdir(exist_ok=True)
    objective = search.HardwareObjective(
        space, args.target, args.predictor, budgets=budgets, objectives=objectives, accuracy=accuracy,
        margin_std=args.margin_std, artifact_store=None if args.no_artifacts else FileSystemArtifactStore(artifact_dir),
        seed=0, verify=args.verify, verify_std=args.verify_std, update_every=args.update_every,
    )
    study = search.make_study(objective, storage_obj, args.study_name, args.sampler, seed=args.seed,
                              n_trials=args.trials)
    if not args.json:
        budget_text = ", ".join(f"{b.metric} <= {b.limit:g}" for b in objective.budgets) or "none"
        print(f"study {study.study_name!r} ({storage}): {args.trials} trials, {args.sampler}; "
              f"{space.name} on {args.target}, objectives {', '.join(f'{d[:3]} {n}' for n, d in zip(objective.objective_names, objective.directions))}; "
              f"budget {budget_text}", flush=True)
    started = time.perf_counter()
    search.run_search(objective, args.trials, study=study, give_up_after=args.give_up_after,
                      show_progress_bar=not args.quiet and not args.json and sys.stderr.isatty())
    verified = search.verify_best(study, objective, top=min(args.top, 5)) if args.verify != "none" else []
    elapsed = time.perf_counter() - started
    plots = search.plot_search(study, out, {b.metric: b.limit for b in objective.budgets})
    best = search.best_candidates(study, limit=args.top)
    trials = study.get_trials(deepcopy=False)
    counts = {"trials": len(trials),
              "feasible": sum(1 for t in trials if search.is_feasible(t)),
              "over_budget": sum(1 for t in trials if t.user_attrs.get("feasible") is False)}
    if args.json:
        _print_json({
            "study": study.study_name, "storage": storage, "objectives": objective.objective_names,
            "directions": objective.directions, "counts": counts, "plots": plots,
            "best": [search.trial_record(t, objective.objective_names) for t in best],
            "measurements": objective.measurements, "predictor_updates": objective.updates, "verified": verified,
        })
        return 0
    metrics = objective.metrics
    header = ["trial", "arch_id", *objective.objective_names,
              *[f"pred {m}" for m in metrics if m not in objective.objective_names]]
    rows = []
    for t in best:
        cells = [t.number, t.user_attrs.get("arch_id", "")]
        cells += list(t.values)
        for m in metrics:
            if m in objective.objective_names:
                continue
            v, s = t.user_attrs.get(f"predicted_{m}"), t.user_attrs.get(f"predicted_{m}_std", 0.0)
            cells.append(f"{_format_value(v)} +- {_format_value(s)}" if v is not None else "")
        rows.append(cells)
    print(f"{counts['trials']} trials in the study ({counts['feasible']} within budget, {counts['over_budget']} "
          f"over budget, not trained); this run {elapsed:.0f} s")
    if rows:
        kind = "Pareto front" if len(objective.objectives) > 1 else "best"
        print(f"{kind} of the feasible candidates (predicted by {getattr(objective.predictor, 'name', '?')}):")
        print(format_table(rows, header))
        first = best[0]
        print(f"arch of trial {first.number}: {json.dumps({k: v for k, v in first.user_attrs['arch'].items() if k not in ('space', 'options')})}")
    else:
        print("no feasible candidate yet")
    if verified:
        updates = f", {objective.updates} predictor updates" if objective.updates else ""
        print(f"measured on {args.target} ({objective.measurements} measurements in all{updates}): " + "; ".join(
            f"trial {v['trial']} " + ", ".join(f"{m} {val:.4g}" for m, val in v["measured"].items()
                                                if any(b.metric == m for b in objective.budgets))
            + ("" if v["within_budget"] else " OVER BUDGET") for v in verified))
    print(f"plots: {plots['pareto']}, {plots['history']}; artifacts: {artifact_dir if not args.no_artifacts else 'none'}")
    return 0


# --- parser -----------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    from hwnas import __version__

    parser = argparse.ArgumentParser(
        prog="hwnas",
        description="Hardware-aware neural architecture search: measure and predict the latency, "
        "energy and memory of TFLite models on edge targets.",
    )
    parser.add_argument("--version", action="version", version=f"hwnas {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    def add(name: str, func: Callable[[argparse.Namespace], int], help: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, description=help)
        p.set_defaults(func=func)
        return p

    p = add("targets", cmd_targets, "list the hardware targets and their metrics")
    p.add_argument("--json", action="store_true", help="machine-readable output on stdout")

    p = add("graph", cmd_graph, "the graph PerfSAGE reads: nodes, edges, operator histogram, totals")
    p.add_argument("model", metavar="MODEL.tflite")
    p.add_argument("--json", action="store_true", help="machine-readable output on stdout")

    p = add("measure", cmd_measure, "ground-truth metrics of a .tflite model from the target itself")
    p.add_argument("model", metavar="MODEL.tflite")
    p.add_argument("--target", "-t", required=True, metavar="T", help="target name (see `hwnas targets`)")
    p.add_argument("--json", action="store_true", help="machine-readable output on stdout")
    p = add("predict", cmd_predict, "predicted latency, energy and memory of .tflite models, or of a "
                                    "search space's archs without exporting them (PerfSAGE)")
    p.add_argument("models", nargs="*", metavar="MODEL.tflite")
    p.add_argument("--space", metavar="S", help="predict archs of this space from the lowered graph (no export)")
    p.add_argument("--space-option", action="append", metavar="K=V", help="search-space option (repeatable)")
    p.add_argument("--arch", action="append", metavar="JSON", help="an arch of --space (repeatable)")
    p.add_argument("--archs", metavar="FILE.jsonl", help="archs of --space, one JSON object a line")
    p.add_argument("--target", "-t", action="append", metavar="T", help="target (repeatable; default: all)")
    p.add_argument("--predictor", metavar="NAME|PATH", help="a shipped predictor or a directory from `hwnas train`")
    p.add_argument("--json", action="store_true", help="machine-readable output on stdout")

    p = add("train", cmd_train, "train a PerfSAGE predictor on one or more dataset directories")
    p.add_argument("--data", nargs="+", required=True, metavar="DIR")
    p.add_argument("--out", required=True, metavar="PATH", help="predictor directory to write")
    p.add_argument("--epochs", type=int, default=None, metavar="E")
    p.add_argument("--seed", type=int, default=0, metavar="X")
    p.add_argument("--init", metavar="NAME|PATH", help="fine-tune from this predictor")
    p.add_argument("--few-shot", action="store_true",
                   help="with --init, for tens to hundreds of measured networks: keep its graph network "
                        "frozen and train only the readout heads")
    p.add_argument("--target", action="append", metavar="T", help="only these targets' labels")
    p.add_argument("--space", action="append", metavar="S", help="only networks of these spaces")
    p.add_argument("--test-space", action="append", metavar="S", help="hold these spaces out as the test set")
    p.add_argument("--host", metavar="CPU|this",
                   help="of the labels that name the host that timed them (cpu-litert's), only this host's "
                        "(`hwnas dataset info` lists them; this: the host you run on)")
    p.add_argument("--config", choices=("default", "published"), default="default",
                   help="our configuration, or the published PerfSAGE one (baseline)")
    p.add_argument("--ensemble", type=int, default=None, metavar="K", help="ensemble members (uncertainty)")
    p.add_argument("--device", default="cpu", metavar="D",
                   help="where to train: cpu (default), cuda, cuda:N, or auto (CUDA if PyTorch sees one); "
                        "the predictor saved runs on the CPU either way")
    p.add_argument("--workers", type=int, default=1, metavar="N",
                   help="ensemble members trained at once on the CPU, a process each (default 1); "
                        "the weights are the same either way")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    _skip_bad_shards(p)

    p = add("evaluate", cmd_evaluate, "score a predictor on a dataset: MAPE, acc10, Spearman, n")
    p.add_argument("--predictor", required=True, metavar="NAME|PATH")
    p.add_argument("--data", nargs="+", required=True, metavar="DIR")
    p.add_argument("--plot", metavar="FILE.png", help="predicted-vs-measured plot per metric")
    p.add_argument("--json", action="store_true", help="machine-readable output on stdout")
    _skip_bad_shards(p)

    p = add("search", cmd_search, "an Optuna NAS study with hardware budgets and predicted metrics (PerfSAGE)")
    p.add_argument("--space", required=True, metavar="S", help="search space (see search_spaces.names())")
    p.add_argument("--space-option", action="append", metavar="K=V", help="search-space option (repeatable)")
    p.add_argument("--target", "-t", required=True, metavar="T", help="target whose metrics are predicted")
    p.add_argument("--predictor", metavar="NAME|PATH", help="default: the shipped perfsage-<target>")
    p.add_argument("--max-latency-ms", type=float, metavar="X", help="latency budget (ms)")
    p.add_argument("--max-energy-mj", type=float, metavar="Y", help="energy budget (mJ)")
    p.add_argument("--max-memory-kib", type=float, metavar="Z",
                   help="memory budget (KiB): sram_kib on Ethos-U, arena_kib on cpu-litert")
    p.add_argument("--max", action="append", metavar="METRIC=VALUE", help="a budget on any metric (repeatable)")
    p.add_argument("--margin-std", type=float, default=0.0, metavar="K",
                   help="over budget when predicted + K * std > budget (default 0)")
    p.add_argument("--objective", action="append", metavar="O",
                   help="accuracy, latency, energy, memory, macs, params or a metric (repeatable; default: "
                   "accuracy with --accuracy-csv, else macs, the biggest network within budget)")
    p.add_argument("--accuracy-csv", metavar="FILE", help="table of measured accuracies (e.g. NATS-Bench)")
    p.add_argument("--accuracy-column", metavar="C", help="its accuracy column")
    p.add_argument("--arch-column", metavar="C", help="its architecture column (default ArchitectureString, arch_str)")
    p.add_argument("--trials", type=int, required=True, metavar="N", help="trials this process runs")
    p.add_argument("--storage", metavar="URL", help="sqlite:///FILE, postgresql://..., journal:FILE "
                   "(default: sqlite in --out)")
    p.add_argument("--study-name", metavar="NAME", help="default hwnas-<space>-<target>; joined if it exists")
    p.add_argument("--sampler", default="tpe", metavar="tpe|nsga2|gp|random", help="default tpe")
    p.add_argument("--seed", type=int, default=None, metavar="X", help="sampler seed (one per worker)")
    p.add_argument("--out", default="hwnas-search", metavar="DIR", help="plots, artifacts, default storage")
    p.add_argument("--no-artifacts", action="store_true", help="do not store the .tflite files")
    p.add_argument("--give-up-after", type=int, default=20, metavar="N",
                   help="stop when N trials were over budget and none within (default 20)")
    p.add_argument("--verify", default="none", metavar="none|uncertain|best",
                   help="measure on the target: candidates whose prediction +- K std straddles a budget, and the "
                        "best at the end (uncertain), only the best at the end (best), or none (default)")
    p.add_argument("--verify-std", type=float, default=2.0, metavar="K", help="the straddle width (default 2)")
    p.add_argument("--update-every", type=int, default=0, metavar="M",
                   help="with --verify uncertain: after every M measurements, fit the predictor's readout to them "
                        "(few-shot) and predict on with that; for a device it was not trained on (default 0: never)")
    p.add_argument("--top", type=int, default=10, metavar="K", help="rows of the summary (single objective)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--json", action="store_true", help="machine-readable output on stdout")

    dataset = sub.add_parser("dataset", help="build and inspect EdgeDLPerf-style datasets")
    dsub = dataset.add_subparsers(dest="dataset_command", metavar="SUBCOMMAND")
    dsub.required = True
    p = dsub.add_parser("build", help="sample networks from a space, export and label them (resumable)")
    p.set_defaults(func=cmd_dataset_build)
    p.add_argument("--space", required=True, metavar="S", help="search space (see search_spaces.names())")
    p.add_argument("--space-option", action="append", metavar="K=V", help="search-space option (repeatable)")
    p.add_argument("--num", type=int, required=True, metavar="N", help="healthy networks the space should reach")
    p.add_argument("--target", action="append", required=True, metavar="T", help="target (repeatable)")
    p.add_argument("--out", required=True, metavar="DIR", help="dataset directory (created or extended)")
    p.add_argument("--workers", type=int, default=1, metavar="K", help="parallel workers (default 1)")
    p.add_argument("--backend", default="local", choices=("local", "ray"), help="local processes or Ray")
    p.add_argument("--address", default=None, help="Ray cluster address (ray.init(address=...)); default: local")
    p.add_argument("--seed", type=int, default=0, metavar="X", help="sampling seed (default 0)")
    p.add_argument("--timeout", type=float, default=900.0, metavar="S", help="per-network limit in seconds")
    p.add_argument("--quantize", nargs="+", metavar="Q", help="export regimes, each network in each (int8 always; "
                   "int16x8, float32, float16, dynamic: samples <arch_id>@<regime>)")
    p.add_argument("--retime", action="store_true", help="measure again the labels another machine timed "
                   "(cpu-litert labels name theirs): one host's timings in the space's first N networks")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p = dsub.add_parser("import", help="a CSV of measured networks (your device) as a dataset")
    p.set_defaults(func=cmd_dataset_import)
    p.add_argument("--space", required=True, metavar="S", help="the space that builds the table's archs")
    p.add_argument("--space-option", action="append", metavar="K=V", help="search-space option (repeatable)")
    p.add_argument("--csv", required=True, metavar="FILE")
    p.add_argument("--arch-column", required=True, metavar="C", help="column holding the architecture")
    p.add_argument("--metric", action="append", required=True, metavar="NAME=COLUMN[*FACTOR]",
                   help="a label and its column, optionally scaled (latency_ms=latency_s*1000); repeatable")
    p.add_argument("--target-name", required=True, metavar="T", help="name of the measured device")
    p.add_argument("--out", required=True, metavar="DIR")
    p.add_argument("--workers", type=int, default=1, metavar="K")
    p.add_argument("--backend", default="local", choices=("local", "ray"))
    p.add_argument("--limit", type=int, default=None, metavar="N", help="import at most N distinct archs")
    p.add_argument("--export", action="store_true",
                   help="export every network with TensorFlow (default: the lowered graph where the space has one)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")

    p = dsub.add_parser("info", help="counts per space and target, failures, versions")
    p.set_defaults(func=cmd_dataset_info)
    p.add_argument("dir", metavar="DIR")
    p.add_argument("--json", action="store_true", help="machine-readable output on stdout")
    _skip_bad_shards(p)
    p = dsub.add_parser("merge", help="add other dataset folders' networks, labels and runs to one "
                                      "(labels made elsewhere, e.g. a copy labelled on another core or machine)")
    p.set_defaults(func=cmd_dataset_merge)
    p.add_argument("src", nargs="+", metavar="SRC", help="dataset folders to merge, in order")
    p.add_argument("--out", required=True, metavar="DIR", help="the dataset they are merged into (created or extended)")
    p = dsub.add_parser("seal", help="move a folder's working store (a killed build, an older hwnas's "
                                     "dataset.sqlite) into shards")
    p.set_defaults(func=cmd_dataset_seal)
    p.add_argument("dir", metavar="DIR")
    p.add_argument("--shard-networks", type=int, default=5000, metavar="N", help="networks per shard (default 5000)")
    return parser


def _skip_bad_shards(p: argparse.ArgumentParser) -> None:
    p.add_argument("--skip-bad-shards", action="store_true",
                   help="read the other shards of a folder with a corrupt or truncated one (with a warning)")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    import warnings

    warnings.formatwarning = lambda message, *_, **__: f"hwnas: warning: {message}\n"  # one line, no source
    if getattr(args, "skip_bad_shards", False):
        os.environ["HWNAS_SKIP_BAD_SHARDS"] = "1"  # read where the datasets are opened
    try:
        return int(args.func(args) or 0)
    except HwnasError as exc:
        message = str(exc).replace("\n", " ").strip() or type(exc).__name__
        print(f"hwnas: error: {message}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("hwnas: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # `hwnas ... | head`
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
