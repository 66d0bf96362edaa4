"""Quality of every search space: export success, NPU share, and how wide it is.

    python benchmarks/spaces.py [--samples 30] [--spaces a,b] [--seed 0] [--target ethos-u55-128]
                                [--space-option SPACE:K=V]...

For each registered space, draws ``--samples`` random archs (``space.sample``), and
for each: build -> int8 TFLite export -> one LiteRT inference (output shapes
checked against ``space.output_shapes``) -> Vela.  Prints, per space: samples tried,
export success rate, LiteRT success rate, NPU operator share (Vela's NPU operators
over all operators, summed over the samples), the range of MACs (Vela's
``nn_macs``) and of the target's latency, with max/min ratios, and the median
export time (``to_tflite`` only) and Vela time.  Progress goes to stderr.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
import traceback



def run_litert(tflite: bytes) -> list[tuple[int, ...]]:
    """One inference on random int8 input; returns the output shapes."""
    import numpy as np
    from ai_edge_litert.interpreter import Interpreter

    from search_spaces._quiet import native_output_captured

    with native_output_captured():  # LiteRT announces its XNNPACK delegate on stderr
        interpreter = Interpreter(model_content=tflite, num_threads=1)
        interpreter.allocate_tensors()
        rng = np.random.default_rng(0)
        for detail in interpreter.get_input_details():
            data = rng.integers(-128, 128, size=detail["shape"], dtype=np.int64).astype(detail["dtype"])
            interpreter.set_tensor(detail["index"], data)
        interpreter.invoke()
        outputs = [interpreter.get_tensor(o["index"]) for o in interpreter.get_output_details()]
    return [tuple(int(d) for d in out.shape) for out in outputs]


def format_table(rows, headers) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(headers, *rows)]
    line = lambda cells: "| " + " | ".join(str(c).rjust(w) for c, w in zip(cells, widths)) + " |"  # noqa: E731
    return "\n".join([line(headers), "|" + "|".join("-" * (w + 2) for w in widths) + "|"] + [line(r) for r in rows])


def si(value: float) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if value >= scale:
            return f"{value / scale:.3g}{unit}"
    return f"{value:.3g}"


def measure_space(name: str, samples: int, seed: int, target_name: str, verbose: bool, options=None) -> dict:
    import numpy as np

    import search_spaces
    from predictors import targets
    from search_spaces.export import to_tflite

    space = search_spaces.get(name, **(options or {}))
    target = targets.get(target_name)
    rng = np.random.default_rng(seed)
    result = {"tried": 0, "exported": 0, "ran": 0, "measured": 0, "npu": 0, "cpu": 0, "macs": [], "latency": [],
              "export_s": [], "vela_s": [], "failures": {}}
    for i in range(samples):
        arch = space.sample(rng)
        result["tried"] += 1
        stage = "build"
        try:
            model = space.build(arch, seed=i)
            stage = "export"
            t0 = time.perf_counter()
            tflite = to_tflite(model, quantize="int8")
            result["export_s"].append(time.perf_counter() - t0)
            result["exported"] += 1
            stage = "litert"
            shapes = run_litert(tflite)
            expected = [tuple(s) for s in space.output_shapes(arch)]
            if shapes != expected:
                raise AssertionError(f"LiteRT output shapes {shapes}, expected {expected}")
            result["ran"] += 1
            stage = "vela"
            t0 = time.perf_counter()
            measured = target.measure(tflite)
            result["vela_s"].append(time.perf_counter() - t0)
            result["measured"] += 1
            result["npu"] += measured["npu_operators"]
            result["cpu"] += measured["cpu_operators"]
            result["macs"].append(measured["nn_macs"])
            result["latency"].append(measured["latency_ms"])
            status = (f"macs={si(measured['nn_macs'])} latency={measured['latency_ms']:.3f}ms "
                      f"npu={measured['npu_operators']} cpu={measured['cpu_operators']} "
                      f"export={result['export_s'][-1]:.2f}s")
        except Exception as exc:  # a benchmark counts failures instead of stopping
            reason = f"{stage}: {type(exc).__name__}: {str(exc).splitlines()[0][:160] if str(exc) else ''}"
            result["failures"][reason] = result["failures"].get(reason, 0) + 1
            status = f"FAILED {reason}"
            if verbose:
                traceback.print_exc()
        print(f"[{name} {i + 1}/{samples}] {space.arch_id(arch)} {status}", file=sys.stderr, flush=True)
        if verbose:
            print(f"    {space.encode(arch)}", file=sys.stderr)
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=30, help="random archs per space (default 30)")
    parser.add_argument("--spaces", default="", help="comma-separated space names (default: all)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the arch sampler (default 0)")
    parser.add_argument("--target", default="ethos-u55-128", help="Vela target (default ethos-u55-128)")
    parser.add_argument("--space-option", action="append", default=[], metavar="SPACE:K=V",
                        help="a space option, e.g. image_classification:num_classes=1000 (repeatable)")
    parser.add_argument("--verbose", action="store_true", help="print archs and tracebacks")
    args = parser.parse_args(argv)
    options: dict = {}
    for item in args.space_option:
        space_name, _, assignment = item.partition(":")
        key, sep, value = assignment.partition("=")
        if not sep:
            parser.error(f"--space-option {item!r}: expected SPACE:K=V")
        options.setdefault(space_name, {})[key] = value

    import search_spaces

    chosen = [s.strip() for s in args.spaces.split(",") if s.strip()] or search_spaces.names()
    rows, failures = [], []
    for name in chosen:
        r = measure_space(name, args.samples, args.seed, args.target, args.verbose, options.get(name))
        pct = lambda n: f"{100.0 * n / r['tried']:.0f}%" if r["tried"] else "-"  # noqa: E731
        total_ops = r["npu"] + r["cpu"]
        if r["macs"]:
            macs = (min(r["macs"]), max(r["macs"]))
            lat = (min(r["latency"]), max(r["latency"]))
            ranges = [si(macs[0]), si(macs[1]), f"{macs[1] / max(macs[0], 1):.0f}x",
                      f"{lat[0]:.3f}", f"{lat[1]:.2f}", f"{lat[1] / lat[0]:.0f}x"]
        else:
            ranges = ["-"] * 6
        rows.append((
            name + "".join(f" {k}={v}" for k, v in options.get(name, {}).items()),
            search_spaces.get(name).kind, r["tried"], pct(r["exported"]), pct(r["ran"]),
            f"{100.0 * r['npu'] / total_ops:.1f}%" if total_ops else "-", *ranges,
            f"{statistics.median(r['export_s']):.2f}" if r["export_s"] else "-",
            f"{statistics.median(r['vela_s']):.2f}" if r["vela_s"] else "-",
        ))
        failures += [(name, reason, count) for reason, count in r["failures"].items()]
    print(f"{args.samples} random archs per space (seed {args.seed}), target {args.target}\n")
    print(format_table(rows, (
        "space", "kind", "samples", "export ok", "LiteRT ok", "NPU ops", "MACs min", "MACs max", "MACs ratio",
        "latency ms min", "latency ms max", "latency ratio", "median export s", "median vela s",
    )))
    if failures:
        print("\nFailures")
        print(format_table(failures, ("space", "reason", "count")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
