"""The order the TFLite converter gives the operators of a lowered graph.

The converter writes operators in the order its GraphDef importer created them,
and that order is ``tensorflow::TopologicalOrdering`` (tf2xla/internal/node_order.cc)
over the frozen TensorFlow graph: a DFS from the graph's source assigns each node a
post-order position (children visited by descending name: they are pushed on a
stack in ascending order), then a Kahn walk emits the ready node of highest
position first.  Names decide it, so this module rebuilds the frozen graph's node
names and edges from the recorded Keras graph exactly as Keras 3 and TensorFlow
name them (layer names ``conv2d``, ``conv2d_1``, ...; name scopes made unique by
``tf.Graph.unique_name``; every layer's ops, constants and variable reads), runs
the same ordering, and reports each TensorFlow node's place.  A fused TFLite
operator takes the place of the last TensorFlow node it absorbed.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Iterable

from predictors.graph._standin import KerasGraph, LoweringError, Node

_SOURCE, _SINK = "_SOURCE", "_SINK"  # TF's own names (no frozen graph's node starts with "_")


def snake_case(name: str) -> str:
    """Keras 3's ``to_snake_case`` (a class name as its layer-name prefix)."""
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


class _UniqueNames:
    """``tf.Graph.unique_name`` (its ``_names_in_use`` bookkeeping)."""

    def __init__(self):
        self.in_use: dict[str, int] = {}

    def __call__(self, name: str) -> str:
        key = name.lower()
        i = self.in_use.get(key, 0)
        self.in_use[key] = i + 1
        if i > 0:
            base = key
            while key in self.in_use:
                key = f"{base}_{i}"
                i += 1
            self.in_use[key] = 1
            name = f"{name}_{i - 1}"
        return name


@dataclass
class TFGraph:
    """Node name -> its inputs (data inputs, then ``^control`` ones)."""

    inputs: dict[str, list[str]] = field(default_factory=dict)
    variable_reads: list[str] = field(default_factory=list)  # what the output's NoOp waits for

    def add(self, name: str, inputs: Iterable[str] = ()) -> str:
        if name in self.inputs:
            raise LoweringError(f"two TensorFlow nodes named {name!r}")
        self.inputs[name] = list(inputs)
        return name

    def read(self, name: str) -> str:
        """A variable read: ``NAME/resource`` (a constant once frozen) -> ``NAME`` (Identity)."""
        self.add(name + "/resource")
        self.variable_reads.append(name)
        return self.add(name, [name + "/resource"])


def topological_order(graph: TFGraph) -> list[str]:
    """``tensorflow::TopologicalOrdering`` with one device group (see the module docstring).

    A trial's lowering spends a fifth of its time here (object detection: 6,000 nodes), so
    the loops skip the sort of a single child and bind their methods once.
    """
    ins = graph.inputs
    outs: dict[str, list[str]] = {n: [] for n in ins}
    for n, sources in ins.items():
        for s in sources:
            outs[s[1:] if s[0] == "^" else s].append(n)
    roots = [n for n, v in ins.items() if not v]
    remaining = {n: len(v) or 1 for n, v in ins.items()}  # a root waits for the source
    leaves = 0
    for v in outs.values():
        if not v:
            v.append(_SINK)
            leaves += 1
    outs[_SOURCE] = [_SINK, *roots]
    outs[_SINK] = []
    remaining[_SINK] = 1 + leaves
    # the DFS: children sorted ascending by name, pushed on a stack (so the largest runs first)
    position: dict[str, int] = {}
    visited: set[str] = set()
    seen, mark = visited.__contains__, visited.add
    stack: list[tuple[str, bool]] = [(_SOURCE, False)]
    pop, push = stack.pop, stack.append
    i = 0
    while stack:
        n, leave = pop()
        if leave:
            position[n] = i
            i += 1
            continue
        if seen(n):
            continue
        mark(n)
        push((n, True))
        children = outs[n]
        if len(children) == 1:
            if not seen(children[0]):
                push((children[0], False))
        else:
            for child in sorted(children):
                if not seen(child):
                    push((child, False))
    # Kahn's walk: a node's children become ready in ascending position (the highest pops first)
    ready = [_SOURCE]
    pop, push = ready.pop, ready.append
    order: list[str] = []
    emit, at = order.append, position.__getitem__
    while ready:
        n = pop()
        emit(n)
        children = outs[n]
        if len(children) > 1:
            children = sorted(children, key=at)
        for child in children:
            k = remaining[child] - 1
            remaining[child] = k
            if k == 0:
                push(child)
    return [n for n in order if n not in (_SOURCE, _SINK)]


class TFNames:
    """The frozen TensorFlow graph of a recorded Keras graph, and each layer's node names.

    ``roles[id(node)]`` maps the roles of one layer call (``"out"``: the node holding
    the layer's output; ``"conv"``, ``"bias"``, ``"mul_1"``, ...) to TF node names.
    """

    def __init__(self, graph: KerasGraph, model_name: str):
        self.graph = graph
        self.tf = TFGraph()
        self.roles: dict[int, dict[str, str]] = {}
        self.tensor: dict[int, str] = {}  # id(SymbolicTensor) -> TF node producing it
        unique = _UniqueNames()
        unique(model_name)  # Keras marks a name before it opens its scope: "m" -> "m_1"
        self.model_scope = unique(model_name)
        (inp,) = graph.inputs
        self.tensor[id(inp)] = self.tf.add("input_0")
        scopes = _UniqueNames()
        for node in _execution_order(graph):
            layer = node.layer_name
            if id(node.layer) not in self._scope_of:
                scopes(f"{self.model_scope}/{layer}")
                self._scope_of[id(node.layer)] = scopes(f"{self.model_scope}/{layer}")
            self._emit(node, self._scope_of[id(node.layer)])
        noop = self.tf.add("NoOp", ["^" + r for r in sorted(self.tf.variable_reads)])
        for k, t in enumerate(graph.outputs):
            self.tf.add("Identity" if k == 0 else f"Identity_{k}", [self.tensor[id(t)], "^" + noop])

    _scope_of: dict[int, str]

    def __new__(cls, *args, **kwargs):
        self = super().__new__(cls)
        self._scope_of = {}
        self._op_names: dict[str, _UniqueNames] = {}
        return self

    # -- one layer call ------------------------------------------------------------

    def _op(self, scope: str, name: str) -> str:
        """A uniquely named op in ``scope`` (``Reshape``, ``Reshape_1``, ...)."""
        names = self._op_names.setdefault(scope, _UniqueNames())
        return f"{scope}/{names(name)}"

    def _emit(self, node: Node, scope: str) -> None:
        tf = self.tf
        x = [self.tensor[id(t)] for t in node.inputs]
        c = node.config
        roles: dict[str, str] = {}
        kind = node.kind

        def const(local: str) -> str:
            return tf.add(f"{scope}/{local}")

        if kind in ("Conv2D", "DepthwiseConv2D", "Conv2DTranspose"):
            if kind == "Conv2D" and c["groups"] > 1:
                weights = const("0")  # a captured constant, numbered: the number never decides the order
                out = tf.add(f"{scope}/StatefulPartitionedCall", [weights, x[0]])
                tf.variable_reads.append(out)  # a stateful call: the output waits for it
            elif kind == "Conv2D":
                out = tf.add(f"{scope}/convolution", [x[0], tf.read(f"{scope}/convolution/ReadVariableOp")])
            elif kind == "DepthwiseConv2D":
                out = tf.add(f"{scope}/depthwise", [x[0], tf.read(f"{scope}/depthwise/ReadVariableOp")])
            else:
                out = tf.add(f"{scope}/conv_transpose", [const("conv_transpose/input_sizes"),
                                                         tf.read(f"{scope}/conv_transpose/ReadVariableOp"), x[0]])
            roles["conv"] = out
            if c["use_bias"] and kind != "DepthwiseConv2D":
                bias = tf.add(f"{scope}/Reshape", [tf.read(f"{scope}/Reshape/ReadVariableOp"), const("Reshape/shape")])
                if c.get("filters", 0) == 1:  # a [1] bias would squeeze to a scalar: added as it is
                    out = tf.add(f"{scope}/Add", [out, bias])
                else:
                    out = tf.add(f"{scope}/BiasAdd", [out, tf.add(f"{scope}/Squeeze", [bias])])
                roles["bias"] = out
            elif c["use_bias"]:
                raise LoweringError("DepthwiseConv2D(use_bias=True): not supported by the lowering")
            if c["activation"] == "relu":
                out = tf.add(f"{scope}/Relu", [out])
            elif c["activation"] == "sigmoid":
                out = tf.add(f"{scope}/Sigmoid", [out])
                roles["sigmoid"] = out
            roles["out"] = out
        elif kind == "Dense":
            out = tf.add(f"{scope}/MatMul", [x[0], tf.read(f"{scope}/Cast/ReadVariableOp")])
            roles["matmul"] = out
            if c["use_bias"]:
                out = tf.add(f"{scope}/BiasAdd", [out, tf.read(f"{scope}/BiasAdd/ReadVariableOp")])
            if c["activation"] == "relu":
                out = tf.add(f"{scope}/Relu", [out])
            roles["out"] = out
        elif kind == "BatchNormalization":
            variance = tf.read(f"{scope}/Cast_1/ReadVariableOp")
            gamma = tf.read(f"{scope}/Cast_2/ReadVariableOp")
            beta = tf.read(f"{scope}/Cast_3/ReadVariableOp")
            mean = tf.read(f"{scope}/Cast/ReadVariableOp")
            add = tf.add(f"{scope}/batchnorm/add", [variance, const("batchnorm/add/y")])
            mul = tf.add(f"{scope}/batchnorm/mul", [tf.add(f"{scope}/batchnorm/Rsqrt", [add]), gamma])
            mul_1 = tf.add(f"{scope}/batchnorm/mul_1", [x[0], mul])
            sub = tf.add(f"{scope}/batchnorm/sub", [beta, tf.add(f"{scope}/batchnorm/mul_2", [mean, mul])])
            roles["mul_1"] = mul_1
            roles["out"] = tf.add(f"{scope}/batchnorm/add_1", [mul_1, sub])
        elif kind == "ReLU":
            roles["out"] = tf.add(f"{scope}/{'Relu' if c['max_value'] is None else 'Relu6'}", x)
        elif kind == "Activation":
            a = c["activation"]
            if a in ("relu", "relu6", "sigmoid"):
                roles["out"] = tf.add(f"{scope}/{ {'relu': 'Relu', 'relu6': 'Relu6', 'sigmoid': 'Sigmoid'}[a]}", x)
            elif a == "hard_swish":
                add = tf.add(f"{scope}/add", [x[0], const("Const")])
                div = tf.add(f"{scope}/truediv", [tf.add(f"{scope}/Relu6", [add]), const("Const_1")])
                roles["out"] = tf.add(f"{scope}/mul", [x[0], div])
            elif a == "swish":
                beta = const("beta")
                sig = tf.add(f"{scope}/Sigmoid", [tf.add(f"{scope}/mul", [beta, x[0]])])
                roles["sigmoid"] = sig
                mul_1 = tf.add(f"{scope}/mul_1", [x[0], sig])
                roles["mul"] = mul_1
                roles["out"] = tf.add(f"{scope}/IdentityN", [mul_1, x[0], beta])
            else:  # linear
                roles["out"] = x[0]
        elif kind == "PReLU":
            relu = tf.add(f"{scope}/Relu", [x[0]])
            neg = tf.add(f"{scope}/Neg", [tf.read(f"{scope}/ReadVariableOp")])
            mul = tf.add(f"{scope}/mul", [neg, tf.add(f"{scope}/Relu_1", [tf.add(f"{scope}/Neg_1", [x[0]])])])
            roles["out"] = tf.add(f"{scope}/add", [relu, mul])
        elif kind == "Add":
            out = tf.add(f"{scope}/Add", x[:2])
            adds = [out]
            for k, t in enumerate(x[2:], start=1):
                out = tf.add(f"{scope}/Add_{k}", [out, t])
                adds.append(out)
            roles["adds"] = adds  # type: ignore[assignment]
            roles["out"] = out
        elif kind == "Multiply":
            if node.layer_kind == "ops":  # keras.ops.multiply inside a custom layer
                roles["out"] = tf.add(self._op(scope, "Mul"), x)
            else:
                roles["out"] = tf.add(f"{scope}/Mul", x)
        elif kind == "Concatenate":
            if len(x) == 1:  # tf.concat of one tensor is an identity
                roles["out"] = tf.add(f"{scope}/concat/concat", x)
            else:
                roles["out"] = tf.add(f"{scope}/concat", x + [const("concat/axis")])
        elif kind == "GlobalAveragePooling2D":
            roles["out"] = tf.add(f"{scope}/Mean", [x[0], const("Mean/reduction_indices")])
        elif kind == "MaxPooling2D":
            roles["out"] = tf.add(f"{scope}/MaxPool2d", x)
        elif kind == "AveragePooling2D":
            roles["out"] = tf.add(f"{scope}/AvgPool", x)
        elif kind == "ZeroPadding2D":
            roles["out"] = tf.add(f"{scope}/Pad", [x[0], const("Const")])
        elif kind in ("Reshape", "Flatten"):
            roles["out"] = tf.add(f"{scope}/Reshape", [x[0], const("Reshape/shape")])
        elif kind == "Permute":
            roles["out"] = tf.add(f"{scope}/transpose", [x[0], const("transpose/perm")])
        elif kind == "ops.reshape":
            name = self._op(scope, "Reshape")
            roles["out"] = tf.add(name, [x[0], tf.add(name + "/shape")])
        elif kind == "ops.transpose":
            name = self._op(scope, "transpose")
            roles["out"] = tf.add(name, [x[0], tf.add(name + "/perm")])
        elif kind == "ops.multiply_scalar":
            name = self._op(scope, "Mul")
            constant = self._op(scope, "Const")
            roles["out"] = tf.add(name, [x[0], tf.add(constant)])
        else:
            raise LoweringError(f"{kind}: no TensorFlow graph for it in the lowering")
        self.roles[id(node)] = roles
        self.tensor[id(node.output)] = roles["out"]


def _execution_order(graph: KerasGraph) -> list[Node]:
    """The order Keras 3's ``Functional`` calls its layers (``ops/function.py``: by depth, then insertion)."""
    finished: set[int] = set()
    in_decreasing_depth: list[Node] = []
    stack_guard: set[int] = set()

    def visit(node: Node | None) -> None:  # _build_map_helper
        if node is None or id(node) in finished:
            return
        if id(node) in stack_guard:
            raise LoweringError("the recorded graph has a cycle")
        stack_guard.add(id(node))
        for t in node.inputs:
            visit(t.node)
        finished.add(id(node))
        stack_guard.discard(id(node))
        in_decreasing_depth.append(node)

    import sys

    limit = sys.getrecursionlimit()
    if limit < 10_000:
        sys.setrecursionlimit(10_000)
    try:
        for t in graph.outputs:
            visit(t.node)
    finally:
        sys.setrecursionlimit(limit)
    depths: dict[int, int] = {}
    order_seen: dict[int, Node] = {}
    for node in reversed(in_decreasing_depth):
        depth = depths.setdefault(id(node), 0)
        order_seen.setdefault(id(node), node)
        for t in node.inputs:
            parent = t.node
            if parent is None:
                continue
            depths[id(parent)] = max(depth + 1, depths.get(id(parent), 0))
            order_seen.setdefault(id(parent), parent)
    by_depth: dict[int, list[Node]] = {}
    for key, depth in depths.items():
        by_depth.setdefault(depth, []).append(order_seen[key])
    out = []
    for depth in sorted(by_depth, reverse=True):
        out.extend(by_depth[depth])
    return out
