"""Where a prediction's time goes, per operator type: the predictor's terms against Vela's cycles.

    python benchmarks/operator_costs.py MODEL.tflite [--target ethos-u85-256] [--predictor NAME|PATH]

The shipped predictors' ``lse`` readout sums one positive cost per operator (and a
graph overhead term); this prints, per TFLite operator type, those costs (the
members' mean, in ms) and their share, beside the share of the cycles that Vela's
``--verbose-performance`` table gives the operators of that type ("Original
Operator", the TFLite operator each NPU operation comes from). An operator type that
the predictor charges much more than Vela does is where an out-of-space error comes
from (docs/predictors.md: NASNetMobile on the U85).
"""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from collections import defaultdict

# Vela's "Original Operator" names -> TFLite builtin operator names, where they differ
VELA_NAMES = {"Conv2D": "CONV_2D", "DepthwiseConv2D": "DEPTHWISE_CONV_2D", "AvgPool": "AVERAGE_POOL_2D",
              "MaxPool": "MAX_POOL_2D", "FullyConnected": "FULLY_CONNECTED", "Concat": "CONCATENATION",
              "ConcatTFLite": "CONCATENATION", "StridedSlice": "STRIDED_SLICE", "ResizeBilinear": "RESIZE_BILINEAR",
              "TransposeConv": "TRANSPOSE_CONV", "BatchMatMul": "BATCH_MATMUL", "HardSwish": "HARD_SWISH"}


def _snake(name: str) -> str:
    return VELA_NAMES.get(name) or re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).upper()


def vela_cycles(path: str, vela_args: list[str]) -> dict[str, float]:
    """Cycles per original operator type, from ``vela --verbose-performance``."""
    with tempfile.TemporaryDirectory(prefix="hwnas-opcost-") as out:
        proc = subprocess.run([os.path.join(os.path.dirname(sys.executable), "vela"), path, "--output-dir", out,
                               "--verbose-performance", *vela_args], capture_output=True, text=True)
    if proc.returncode != 0:
        last = proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else f"exit {proc.returncode}"
        raise SystemExit(f"vela failed: {last}")
    lines = proc.stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("Original Operator"))
    cycles_at = lines[header].index("Op Cycles")
    cycles: dict[str, float] = defaultdict(float)
    for line in lines[header + 2:]:
        if not line.strip() or line.startswith(("#", "-")):
            break
        fields = line.split()
        # the columns are fixed-width: Op Cycles ends where its header ends
        value = line[:cycles_at + len("Op Cycles")].split()[-1]
        cycles[_snake(fields[0])] += float(value)
    return dict(cycles)


def predicted_costs(predictor, path: str) -> tuple[dict[str, float], dict[str, int], float]:
    """The mean member's per-operator latency terms summed per operator type (ms), the counts, the prediction."""
    import numpy as np
    import torch

    from predictors.graph import from_tflite
    from predictors.tflite_model import builtin_operator_names

    graph = from_tflite(path)
    data = predictor.normalizer(graph)
    column = next(i for i, n in enumerate(predictor.label_names) if n.endswith("/latency_ms"))
    terms = []
    for member in predictor.members:
        if not member.lse:
            raise SystemExit("the predictor's readout is not additive (lse): it has no per-operator costs")
        seen = []
        hook = member.node_head.register_forward_hook(lambda _m, _i, out: seen.append(out.detach()))
        with torch.inference_mode():
            member(data.x, data.op_type, data.edge_index, torch.zeros(data.x.shape[0], dtype=torch.long), data.u)
            log_cost = seen[0] + (member.node_linear(data.x) if member.node_linear is not None else 0)
            node = member.label_cap - torch.nn.functional.softplus(member.label_cap - log_cost)
        hook.remove()
        terms.append(torch.exp(node[:, column]).numpy())
    cost = np.mean(terms, axis=0)
    names = builtin_operator_names()
    by_type: dict[str, float] = defaultdict(float)
    count: dict[str, int] = defaultdict(int)
    for code, value in zip(graph.op_type.tolist(), cost):
        by_type[names.get(code, str(code))] += float(value)
        count[names.get(code, str(code))] += 1
    mean, _ = predictor.predict_graphs([graph])
    return dict(by_type), dict(count), float(mean[0, column])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("--target", default="ethos-u85-256")
    parser.add_argument("--predictor", default=None, help="default: perfsage-<target>")
    args = parser.parse_args(argv)

    from hwnas.cli import format_table
    from predictors import targets
    from predictors.predictor import load_predictor

    from search_spaces.errors import HwnasError

    try:
        target = targets.get(args.target)
        if not hasattr(target, "vela_args"):
            raise HwnasError(f"{args.target}: not an Ethos-U target (Vela's per-operator cycles are the reference)")
        predictor = load_predictor(args.predictor or f"perfsage-{args.target}")
        cost, count, predicted = predicted_costs(predictor, args.model)
        measured = target.measure(args.model)["latency_ms"]
        cycles = vela_cycles(args.model, target.vela_args)
    except HwnasError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    total_cost, total_cycles = sum(cost.values()), sum(cycles.values()) or 1.0
    rows = []
    for op in sorted(set(cost) | set(cycles), key=lambda k: -max(cost.get(k, 0.0) / total_cost,
                                                                 cycles.get(k, 0.0) / total_cycles)):
        share_p, share_v = cost.get(op, 0.0) / total_cost, cycles.get(op, 0.0) / total_cycles
        rows.append((op, count.get(op, 0), f"{cost.get(op, 0.0):.3f}", f"{100 * share_p:.1f}",
                     f"{share_v * measured:.3f}", f"{100 * share_v:.1f}"))
    print(f"{os.path.basename(args.model)} on {args.target}: measured {measured:.3f} ms, predicted {predicted:.3f} ms "
          f"({predictor.name}; operator terms {total_cost:.3f} ms, the rest the graph term)")
    print(format_table(rows, ("operator", "n", "predicted ms", "predicted %", "Vela's share of measured ms",
                              "Vela cycles %")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
