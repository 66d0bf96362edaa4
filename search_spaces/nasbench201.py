"""NAS-Bench-201 (Dong & Yang, ICLR 2020; NATS-Bench topology space), built faithfully.

The arch is the benchmark's own string, exactly as in its tables and in
``../shared/data/nb201/*.csv``: ``|op~0|+|op~0|op~1|+|op~0|op~1|op~2|`` lists the
edges into cell nodes 1, 2 and 3 from the earlier nodes.  Ops: ``none`` (zero),
``skip_connect``, ``nor_conv_1x1``, ``nor_conv_3x3`` (ReLU -> Conv -> BN) and
``avg_pool_3x3`` (stride 1, padding 1, padding not counted).

The macro network is NB201's TinyNetwork (C=16, N=5): stem conv3x3 + BN; 5 cells;
ResNet basic block (ReLU-Conv3x3/2-BN, ReLU-Conv3x3-BN, shortcut AvgPool 2x2 +
Conv1x1) to 32 channels; 5 cells; the same to 64; 5 cells; BN-ReLU; global average
pool; linear classifier.  Convolutions have no bias, BN is affine (eps 1e-5), and
stride-2 convolutions pad one pixel on every side as PyTorch does (an explicit PAD,
which Vela folds into the convolution), so the function is the reference's.

Parameter counts equal the reference's (PyTorch: weights + BN gamma/beta; Keras
adds non-trainable moving statistics, so compare ``trainable_weights``): 1,531,546
for the all-``nor_conv_3x3`` cell and 73,306 for cells without convolutions on
CIFAR-10, as published (0.073306-1.531546 MB).

Two graph conventions, the same in every export:

* a node whose incoming edges are all ``none`` is zero: it is built as the cell
  input multiplied by 0 (NB201's ``Zero`` op, a MUL), so the graph stays connected
  and whatever reads the node still runs;
* an op whose result reaches no cell output (a node read only through ``none``
  edges) is not in the graph: Keras, like the TFLite converter, keeps only what
  the outputs depend on.  Such ops still count in the PyTorch reference.

Option ``zero_edges``: ``prune`` (default, the conventions above: what a compiler
that removes dead code runs) or ``compute``: every edge is built, a ``none`` edge as
its source times 0 (PyTorch eager's ``x.mul(0.)``), so every operation of the
reference runs and architectures that differ only in dead operations export
different graphs.  Use ``compute`` for tables measured by running the PyTorch
reference (HW-NAS-Bench's and HELP's NB201 devices): with ``prune``, 1,100 of their
architectures gave 897 distinct graphs, and the eyeriss latency of architectures
sharing one graph differed by 29 % (median).
"""
from __future__ import annotations

import re
from typing import Any

from search_spaces import _blocks
from search_spaces._base import (
    FixedInputClassifier,
    Chooser,
    InvalidArchError,
    InvalidOptionError,
    Option,
    parse_name,
    parse_positive_int,
    parse_shape,
    register_space,
)

OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
ZERO_EDGES = ("prune", "compute")
EDGES = ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))  # (to node, from node), arch-string order
CHANNELS = (16, 32, 64)
CELLS_PER_STAGE = 5
BN_EPSILON = 1e-5
DATASETS = {
    "cifar10": ([32, 32, 3], 10),
    "cifar100": ([32, 32, 3], 100),
    "ImageNet16-120": ([16, 16, 3], 120),
}
_DATASET_ALIASES = {"cifar10-valid": "cifar10"}
_EXAMPLE = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"


def _parse_dataset(value: Any) -> str:
    if isinstance(value, str) and value.strip().lower() in _DATASET_ALIASES:
        return _DATASET_ALIASES[value.strip().lower()]
    return parse_name(tuple(DATASETS))(value)


def parse_arch_str(text: str, space: str = "nasbench201") -> list[str]:
    """``'|op~0|+|op~0|op~1|+|op~0|op~1|op~2|'`` -> the six ops in :data:`EDGES` order.

    Raises:
        InvalidArchError: naming ``'arch_str'`` and what does not parse.
    """

    def bad(why: str) -> InvalidArchError:
        return InvalidArchError(
            f"{space} arch: 'arch_str' {text!r} does not parse: {why}; expected e.g. {_EXAMPLE!r}"
        )

    if not isinstance(text, str):
        raise InvalidArchError(f"{space} arch: 'arch_str' must be a string such as {_EXAMPLE!r}, got {text!r}")
    nodes = text.strip().split("+")
    if len(nodes) != 3:
        raise bad(f"{len(nodes)} node(s) separated by '+', NB201 cells have 3")
    ops: list[str] = []
    for j, node in enumerate(nodes, start=1):
        if not re.fullmatch(r"\|([^|]+\|)+", node):
            raise bad(f"node {j} {node!r} is not of the form '|op~i|...|'")
        edges = node.strip("|").split("|")
        if len(edges) != j:
            raise bad(f"node {j} has {len(edges)} incoming edge(s), expected {j}")
        for i, edge in enumerate(edges):
            op, sep, source = edge.partition("~")
            if not sep or source != str(i):
                raise bad(f"node {j} edge {edge!r} should read from node {i} ('~{i}')")
            if op not in OPS:
                raise bad(f"node {j} edge {edge!r}: unknown op {op!r} (ops: {', '.join(OPS)})")
            ops.append(op)
    return ops


def arch_string(ops: list[str]) -> str:
    """The inverse of :func:`parse_arch_str`."""
    it = iter(ops)
    nodes = ["|" + "|".join(f"{next(it)}~{i}" for i in range(j)) + "|" for j in (1, 2, 3)]
    return "+".join(nodes)


def _edge_key(to: int, source: int) -> str:
    return f"edge_{to}_{source}"


@register_space
class NASBench201Space(FixedInputClassifier):
    name = "nasbench201"
    kind = "benchmark"
    param_prefix = "nb201_"
    description = "NAS-Bench-201 cell space (TinyNetwork C=16, N=5; arch string in and out)"
    option_specs = {
        "dataset": Option(
            None, _parse_dataset, "give cifar10, cifar100 or ImageNet16-120 (sets input_shape and num_classes)"
        ),
        "input_shape": Option(None, parse_shape, "give height x width x channels, e.g. '32x32x3' or '16,16,3'"),
        "num_classes": Option(None, parse_positive_int, "give the number of classes, e.g. 10"),
        "zero_edges": Option("prune", parse_name(ZERO_EDGES), "give prune or compute"),
    }

    def _resolve_options(self, options, given):
        shape, classes = DATASETS[options.pop("dataset") or "cifar10"]
        resolved = {
            "input_shape": options["input_shape"] or list(shape),
            "num_classes": options["num_classes"] or classes,
        }
        if options.get("zero_edges", "prune") != "prune":  # the default stays out of arch ids
            resolved["zero_edges"] = options["zero_edges"]
        height, width, _ = resolved["input_shape"]
        if height % 4 or width % 4:  # the residual blocks' 2x2 pools and stride-2 convs must agree
            raise InvalidOptionError(
                f"search space {self.name!r}: option 'input_shape' {resolved['input_shape']} needs a height and "
                "width divisible by 4 (two stride-2 reduction blocks), e.g. '32x32x3'"
            )
        return resolved

    def _draw(self, ch: Chooser) -> None:
        for to, source in EDGES:
            ch.choice(_edge_key(to, source), OPS)

    def _to_fields(self, data: dict) -> dict:
        extra = [k for k in data if k not in ("space", "options", "arch_str")]
        if extra:
            raise InvalidArchError(f"{self.name} arch: unknown key {extra[0]!r}; the arch is {{'arch_str': '|...|'}}")
        if "arch_str" not in data:
            raise InvalidArchError(f"{self.name} arch: missing key 'arch_str' (e.g. {_EXAMPLE!r})")
        ops = parse_arch_str(data["arch_str"], self.name)
        return {_edge_key(to, source): op for (to, source), op in zip(EDGES, ops)}

    def _from_fields(self, fields: dict) -> dict:
        return {"arch_str": arch_string([fields[_edge_key(to, source)] for to, source in EDGES])}

    def _from_native(self, data: Any) -> dict | None:
        if isinstance(data, str) and data.strip().startswith("|"):
            return {"arch_str": data.strip()}
        return None

    def ops(self, arch: Any) -> list[str]:
        """The six edge ops of an arch, in arch-string order."""
        return parse_arch_str(self.decode(arch)["arch_str"], self.name)

    def _build(self, arch: dict, inputs: Any, keras: Any) -> Any:
        layers = keras.layers
        ops = parse_arch_str(arch["arch_str"], self.name)

        def bn(x):
            return layers.BatchNormalization(epsilon=BN_EPSILON)(x)

        def conv(x, filters, kernel, stride=1):
            if stride == 1:
                return layers.Conv2D(filters, kernel, padding="same", use_bias=False)(x)
            x = layers.ZeroPadding2D(kernel // 2)(x)  # PyTorch padding=1 on every side
            return layers.Conv2D(filters, kernel, strides=stride, padding="valid", use_bias=False)(x)

        def relu_conv_bn(x, filters, kernel, stride=1):
            return bn(conv(layers.ReLU()(x), filters, kernel, stride))

        def apply(op, x, channels):
            if op == "skip_connect":
                return x
            if op == "nor_conv_1x1":
                return relu_conv_bn(x, channels, 1)
            if op == "nor_conv_3x3":
                return relu_conv_bn(x, channels, 3)
            if op == "avg_pool_3x3":
                return layers.AveragePooling2D(3, strides=1, padding="same")(x)
            raise AssertionError(op)

        compute_zeros = self.options.get("zero_edges", "prune") == "compute"

        def cell(x, channels):
            nodes = [x]
            for to in (1, 2, 3):
                terms = [
                    _blocks.times_zero(keras, nodes[source]) if op == "none" else apply(op, nodes[source], channels)
                    for (dst, source), op in zip(EDGES, ops)
                    if dst == to and (op != "none" or compute_zeros)
                ]
                if not terms:
                    nodes.append(_blocks.times_zero(keras, x))
                elif len(terms) == 1:
                    nodes.append(terms[0])
                else:
                    nodes.append(layers.Add()(terms))
            return nodes[3]

        def reduction(x, planes):
            a = relu_conv_bn(x, planes, 3, 2)
            b = relu_conv_bn(a, planes, 3, 1)
            shortcut = layers.AveragePooling2D(2, strides=2)(x)
            shortcut = layers.Conv2D(planes, 1, use_bias=False)(shortcut)
            return layers.Add()([shortcut, b])

        x = bn(conv(inputs, CHANNELS[0], 3))
        for stage, channels in enumerate(CHANNELS):
            if stage:
                x = reduction(x, channels)
            for _ in range(CELLS_PER_STAGE):
                x = cell(x, channels)
        x = layers.ReLU()(bn(x))
        x = layers.GlobalAveragePooling2D()(x)
        return layers.Dense(self.options["num_classes"], name="logits")(x)

