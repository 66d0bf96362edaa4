"""Lowering: a space's arch -> the operators the TFLite converter makes of it, without TensorFlow.

The space's own ``build`` runs against the Keras stand-in (:mod:`._standin`), which
records the layer graph; the rules below turn it into the graph the converter
(full-integer int8, int8 input and output, TensorFlow 2.19-2.21) writes, as the same
:class:`~predictors.tflite_model.ModelInfo` the flatbuffer reader yields, so one
feature extractor reads both.  What the rules reproduce, each checked against the
converter's own output on the committed networks (``benchmarks/lowering.py``):

- batch normalisation after a convolution or a dense layer folds into it; the
  ReLU/ReLU6 that follows a convolution, depthwise convolution, dense layer or ADD
  fuses into it when nothing else reads the tensor in between;
- convolutions keep a bias (int32, per output channel); a dense layer's and a
  transposed convolution's all-zero bias is dropped;
- weights are int8, per output channel; activations int8, one scale each;
- hard-swish is HARD_SWISH, sigmoid LOGISTIC, swish LOGISTIC and MUL;
  global average pooling MEAN, ZeroPadding2D PAD, Flatten/Reshape RESHAPE, Permute
  TRANSPOSE;
- operators come in the converter's order (see :func:`_schedule`).

A layer or pattern the rules do not cover raises :class:`LoweringError`; callers
then export the network as before.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from predictors.graph._standin import STANDIN, KerasGraph, LoweringError, Node, SymbolicTensor, recording
from predictors.graph._tforder import TFNames, topological_order
from predictors.tflite_model import TYPE_BYTES, ModelInfo, OperatorInfo, SubgraphInfo, TensorInfo

ACT_NONE, ACT_RELU, ACT_RELU6 = 0.0, 1.0, 3.0
_FUSES_ACTIVATION = {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "ADD", "MUL", "AVERAGE_POOL_2D",
                     "MAX_POOL_2D"}
_OPTIONS_TYPE = {  # builtin options table of each operator (for its fields and defaults)
    "CONV_2D": "Conv2DOptions", "DEPTHWISE_CONV_2D": "DepthwiseConv2DOptions",
    "FULLY_CONNECTED": "FullyConnectedOptions", "MEAN": "ReducerOptions", "ADD": "AddOptions",
    "MUL": "MulOptions", "CONCATENATION": "ConcatenationOptions", "MAX_POOL_2D": "Pool2DOptions",
    "AVERAGE_POOL_2D": "Pool2DOptions", "TRANSPOSE_CONV": "TransposeConvOptions",
}


@lru_cache(maxsize=None)
def _builtin_code(opcode: str) -> int:
    import tflite

    return int(getattr(tflite.BuiltinOperator, opcode))


_FIELD_BYTES = {"<?": 1, "<b": 1, "<B": 1, "<h": 2, "<H": 2, "<i": 4, "<I": 4, "<f": 4, "<q": 8, "<Q": 8, "<d": 8}


@lru_cache(maxsize=None)
def _option_sizes(opcode: str) -> tuple[tuple[str, float, int], ...]:
    """(field, default, bytes) of ``opcode``'s builtin options table."""
    table = _OPTIONS_TYPE.get(opcode)
    if table is None:
        return ()
    import tflite

    from predictors.tflite_model import option_fields

    fields = option_fields("BuiltinOptions", int(getattr(tflite.BuiltinOptions, table)))
    return tuple((name, default, _FIELD_BYTES.get(fmt, 4)) for name, _, fmt, default in fields)


@lru_cache(maxsize=None)
def _option_fields(opcode: str) -> tuple[tuple[str, float], ...]:
    """The numeric option fields the flatbuffer reader reports for ``opcode``, with defaults."""
    return tuple((name, default) for name, default, _ in _option_sizes(opcode))


@dataclass(eq=False)
class LTensor:
    shape: tuple[int, ...]
    dtype: str = "INT8"
    const: bool = False
    scales: int = 1  # quantisation scales: 0 none, 1 per tensor, n per channel
    index: int = -1
    key: Any = None  # a constant's value, where two may be equal (the file stores equal data once)
    qdim: int = 0  # a per-channel tensor's quantised dimension


@dataclass(eq=False)
class LOp:
    opcode: str
    inputs: list[LTensor | None]
    output: LTensor
    options: dict[str, float] = field(default_factory=dict)
    node: Node | None = None  # the Keras node it came from
    anchor: str = ""  # the TensorFlow node whose place it takes in the converter's order
    after: bool = False  # inserted by a rewrite just after the operator at the same anchor
    nodes: list = field(default_factory=list)  # the Keras layer calls it absorbed (its tensor's name joins theirs)

    def set(self, **values: float) -> "LOp":
        self.options.update(values)
        return self


def _weight(shape: tuple[int, ...], per_channel_dim: int) -> LTensor:
    return LTensor(tuple(shape), "INT8", True, shape[per_channel_dim], qdim=per_channel_dim if per_channel_dim >= 0 else len(shape) + per_channel_dim)


def _int32(shape: tuple[int, ...], scales: int = 0, key: Any = None) -> LTensor:
    """An int32 constant: a bias (all zero in an untrained network) or a shape, axis or permutation."""
    return LTensor(tuple(shape), "INT32", True, scales, key=key if key is not None else ("bias", tuple(shape)))


class _Lowering:
    def __init__(self, graph: KerasGraph, names: "TFNames"):
        self.graph = graph
        self.names = names
        self.ops: list[LOp] = []
        self.tensor: dict[int, LTensor] = {}  # id(SymbolicTensor) -> its lowered tensor
        self.producer: dict[int, LOp] = {}  # id(LTensor) -> the op writing it
        self.consumers: dict[int, int] = {}  # id(SymbolicTensor) -> Keras nodes reading it
        for node in graph.nodes:
            for t in node.inputs:
                self.consumers[id(t)] = self.consumers.get(id(t), 0) + 1
        self.outputs = {id(t) for t in graph.outputs}
        self.constants: dict[tuple, LTensor] = {}
        self.emitted: dict[tuple, LOp] = {}

    # -- helpers -------------------------------------------------------------------

    def t(self, sym: SymbolicTensor) -> LTensor:
        try:
            return self.tensor[id(sym)]
        except KeyError:
            raise LoweringError(f"a tensor {sym.shape} that no lowered operator produces") from None

    def role(self, node: Node, role: str = "out") -> str:
        return self.names.roles[id(node)][role]

    def emit(self, node: Node, opcode: str, inputs: list[LTensor | None], shape: tuple[int, ...],
             *, anchor: str | None = None, **options: float) -> LOp:
        # equal constants are one tensor (the converter's CSE); a zero bias is a tensor of
        # its own (its scales are the layer's) whose data the file stores once
        inputs = [self.constants.setdefault((t.dtype, t.shape, t.key), t)
                  if t is not None and t.const and t.key is not None and t.key[0] != "bias" else t
                  for t in inputs]
        # an operator on the same inputs as an earlier one is that one (CSE: the partial sums
        # of two multi-input Adds, say); operators with weights of their own never repeat
        key = (opcode, tuple(("c", t.dtype, t.shape, t.key) if t is not None and t.const and t.key is not None
                             else id(t) for t in inputs), tuple(sorted(options.items())))
        if opcode in ("ADD", "MUL") and key in self.emitted:
            return self.emitted[key]
        out = LTensor(tuple(shape))
        op = LOp(opcode, inputs, out, {name: default for name, default in _option_fields(opcode)}, node,
                 anchor or self.role(node), nodes=[node])
        op.set(**options)
        self.emitted[key] = op
        self.ops.append(op)
        self.producer[id(out)] = op
        return op

    def bind(self, node: Node, op_or_tensor: LOp | LTensor) -> None:
        if isinstance(op_or_tensor, LOp) and node not in op_or_tensor.nodes:
            op_or_tensor.nodes.append(node)
        tensor = op_or_tensor.output if isinstance(op_or_tensor, LOp) else op_or_tensor
        self.tensor[id(node.output)] = tensor

    def fusable(self, sym: SymbolicTensor) -> LOp | None:
        """The op writing ``sym`` if an activation after it can fuse into it."""
        op = self.producer.get(id(self.t(sym)))
        if op is None or op.opcode not in _FUSES_ACTIVATION or op.options.get("FusedActivationFunction"):
            return None
        if self.consumers.get(id(sym), 0) != 1 or id(sym) in self.outputs:
            return None
        return op

    def activation(self, node: Node, x: SymbolicTensor, kind: str | None) -> None:
        """``kind`` applied to ``x`` as the output of ``node``."""
        if kind in (None, "linear"):
            self.bind(node, self.t(x))
            return
        if kind in ("relu", "relu6"):
            op = self.fusable(x)
            code = ACT_RELU if kind == "relu" else ACT_RELU6
            if op is not None:
                op.set(FusedActivationFunction=code)
                op.anchor = self.role(node)
                self.bind(node, op)
            else:
                self.bind(node, self.emit(node, "RELU" if kind == "relu" else "RELU6", [self.t(x)], x.shape))
            return
        if kind == "hard_swish":
            self.bind(node, self.emit(node, "HARD_SWISH", [self.t(x)], x.shape))
        elif kind == "sigmoid":
            self.bind(node, self.emit(node, "LOGISTIC", [self.t(x)], x.shape))
        elif kind == "swish":
            gate = self.emit(node, "LOGISTIC", [self.t(x)], x.shape, anchor=self.role(node, "sigmoid"))
            self.bind(node, self.emit(node, "MUL", [self.t(x), gate.output], x.shape, anchor=self.role(node, "mul")))
        else:
            raise LoweringError(f"activation {kind!r}: not supported by the lowering")

    # -- layers --------------------------------------------------------------------

    def run(self, order: list[Node]) -> None:
        for node in order:
            handler = getattr(self, "_" + node.kind.replace(".", "_"), None)
            if handler is None:
                raise LoweringError(f"{node.kind}: not supported by the lowering")
            handler(node)

    def _conv_options(self, c: dict) -> dict[str, float]:
        return {"Padding": 0.0 if c["padding"] == "same" else 1.0, "StrideH": float(c["strides"][0]),
                "StrideW": float(c["strides"][1])}

    def _Conv2D(self, node: Node) -> None:  # noqa: N802 - named after the layer
        c, (x,) = node.config, node.inputs
        kh, kw = c["kernel_size"]
        cin = x.shape[-1] // c["groups"]
        weights = _weight((c["filters"], kh, kw, cin), 0)
        bias = _int32((c["filters"],), c["filters"])
        op = self.emit(node, "CONV_2D", [self.t(x), weights, bias], node.output.shape,
                       anchor=self.role(node, "conv"), **self._conv_options(c))
        self._layer_activation(node, op, c["activation"])

    def _DepthwiseConv2D(self, node: Node) -> None:  # noqa: N802
        c, (x,) = node.config, node.inputs
        kh, kw = c["kernel_size"]
        channels = x.shape[-1]
        op = self.emit(node, "DEPTHWISE_CONV_2D", [self.t(x), _weight((1, kh, kw, channels), 3),
                                                   _int32((channels,), channels)],
                       node.output.shape, anchor=self.role(node, "conv"), DepthMultiplier=1.0,
                       **self._conv_options(c))
        self._layer_activation(node, op, c["activation"])

    def _Conv2DTranspose(self, node: Node) -> None:  # noqa: N802
        c, (x,) = node.config, node.inputs
        kh, kw = c["kernel_size"]
        weights = _weight((c["filters"], kh, kw, x.shape[-1]), 0)
        op = self.emit(node, "TRANSPOSE_CONV", [_int32((4,), key=("shape", node.output.shape)), weights, self.t(x)],
                       node.output.shape,
                       anchor=self.role(node, "conv"), **self._conv_options(c))
        self._layer_activation(node, op, c["activation"])

    def _Dense(self, node: Node) -> None:  # noqa: N802
        c, (x,) = node.config, node.inputs
        weights = _weight((c["units"], x.shape[-1]), 0)
        source = self.t(x)
        flatten = self.producer.get(id(source))
        if (flatten is not None and flatten.opcode == "RESHAPE" and self.consumers.get(id(x)) == 1
                and flatten.inputs[0].shape[-1] == x.shape[-1] and id(x) not in self.outputs):
            # a flatten that only drops 1x1 dimensions: the converter lets FULLY_CONNECTED read the map
            self.ops.remove(flatten)
            source = flatten.inputs[0]
        op = self.emit(node, "FULLY_CONNECTED", [source, weights, None], node.output.shape,
                       anchor=self.role(node, "matmul"))
        self._layer_activation(node, op, c["activation"])

    def _layer_activation(self, node: Node, op: LOp, kind: str | None) -> None:
        # a zero bias (an untrained layer's) is folded away: the operator stays at the
        # convolution's place; a fused activation moves it to the activation's
        if kind in (None, "linear"):
            self.bind(node, op)
        elif kind == "relu" and op.opcode in _FUSES_ACTIVATION:
            op.set(FusedActivationFunction=ACT_RELU)
            op.anchor = self.role(node)
            self.bind(node, op)
        elif kind == "sigmoid":
            self.bind(node, self.emit(node, "LOGISTIC", [op.output], node.output.shape,
                                      anchor=self.role(node, "sigmoid")))
        else:
            raise LoweringError(f"{node.kind}(activation={kind!r}): not supported by the lowering")

    def _BatchNormalization(self, node: Node) -> None:  # noqa: N802
        (x,) = node.inputs
        op = self.producer.get(id(self.t(x)))
        if (op is not None and op.opcode in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")
                and not op.options.get("FusedActivationFunction") and self.consumers.get(id(x)) == 1
                and id(x) not in self.outputs):
            op.anchor = self.role(node, "mul_1")  # its scale folds in there; its zero offset goes
            self.bind(node, op)
            return
        # elsewhere, an untrained batch norm is a scale (its offset is zero, and dropped)
        scale = LTensor((x.shape[-1],), "INT8", True, 1, key=("bn", x.shape[-1], node.config.get("epsilon")))
        self.bind(node, self.emit(node, "MUL", [self.t(x), scale], x.shape, anchor=self.role(node, "mul_1")))

    def _ReLU(self, node: Node) -> None:  # noqa: N802
        self.activation(node, node.inputs[0], "relu" if node.config["max_value"] is None else "relu6")

    def _Activation(self, node: Node) -> None:  # noqa: N802
        self.activation(node, node.inputs[0], node.config["activation"])

    def _PReLU(self, node: Node) -> None:  # noqa: N802
        (x,) = node.inputs
        alpha = LTensor((1, 1, x.shape[-1]), "INT8", True, 1, key=("alpha", x.shape[-1]))
        self.bind(node, self.emit(node, "PRELU", [self.t(x), alpha], x.shape))

    def _Add(self, node: Node) -> None:  # noqa: N802
        adds = self.names.roles[id(node)]["adds"]
        if len(node.inputs) > 2:  # a sum of several: a chain of ADDs, left to right
            total = self.t(node.inputs[0])
            for k, t in enumerate(node.inputs[1:-1]):
                total = self.emit(node, "ADD", [total, self.t(t)], node.output.shape, anchor=adds[k]).output
            a, b = total, self.t(node.inputs[-1])
        else:
            a, b = (self.t(t) for t in node.inputs)
        if _is_vector_like(a.shape) and _is_vector_like(b.shape) and len(b.shape) > 1:
            # two [1, 1, 1, C] maps: the converter adds the second as a [C] vector
            producer = self.producer.get(id(b))
            reshape = self.emit(node, "RESHAPE", [b, _int32((1,), key=("shape", (b.shape[-1],)))], (b.shape[-1],),
                                anchor=producer.anchor if producer is not None else adds[-1])
            reshape.after = producer is not None  # it follows the operator it reshapes
            b = reshape.output
        self.bind(node, self.emit(node, "ADD", [a, b], node.output.shape, anchor=adds[-1]))

    def _Multiply(self, node: Node) -> None:  # noqa: N802
        if len(node.inputs) != 2:
            raise LoweringError(f"Multiply of {len(node.inputs)} tensors: not supported by the lowering")
        self.bind(node, self.emit(node, "MUL", [self.t(t) for t in node.inputs], node.output.shape))

    def _Concatenate(self, node: Node) -> None:  # noqa: N802
        if len(node.inputs) == 1:  # an identity: the converter drops it
            self.bind(node, self.t(node.inputs[0]))
            return
        axis = float(node.config.get("axis", -1))
        self.bind(node, self.emit(node, "CONCATENATION", [self.t(t) for t in node.inputs], node.output.shape,
                                  Axis=axis))

    def _GlobalAveragePooling2D(self, node: Node) -> None:  # noqa: N802
        (x,) = node.inputs
        if node.config.get("keepdims") and x.shape[1] == x.shape[2] == 1:
            self.bind(node, self.t(x))  # the mean of a 1x1 map is the map: the converter drops it
            return
        self.bind(node, self.emit(node, "MEAN", [self.t(x), _int32((2,), key=("axes", (1, 2)))], node.output.shape,
                                  KeepDims=1.0 if node.config.get("keepdims") else 0.0))

    def _pool(self, node: Node, opcode: str) -> None:
        c, (x,) = node.config, node.inputs
        kh, kw = c["pool_size"]
        self.bind(node, self.emit(node, opcode, [self.t(x)], node.output.shape, FilterHeight=float(kh),
                                  FilterWidth=float(kw), **self._conv_options(c)))

    def _MaxPooling2D(self, node: Node) -> None:  # noqa: N802
        self._pool(node, "MAX_POOL_2D")

    def _AveragePooling2D(self, node: Node) -> None:  # noqa: N802
        self._pool(node, "AVERAGE_POOL_2D")

    def _ZeroPadding2D(self, node: Node) -> None:  # noqa: N802
        (x,) = node.inputs
        pads = ((0, 0), *node.config["padding"], (0, 0))
        self.bind(node, self.emit(node, "PAD", [self.t(x), _int32((4, 2), key=("pads", pads))], node.output.shape))

    def _reshape(self, node: Node) -> None:
        (x,) = node.inputs
        shape = node.output.shape
        self.bind(node, self.emit(node, "RESHAPE", [self.t(x), _int32((len(shape),), key=("shape", shape))], shape))

    _Reshape = _Flatten = _ops_reshape = _reshape

    def _transpose(self, node: Node) -> None:
        (x,) = node.inputs
        axes = node.config.get("axes") or (0, *node.config["dims"])
        self.bind(node, self.emit(node, "TRANSPOSE", [self.t(x), _int32((len(x.shape),), key=("perm", axes))],
                                  node.output.shape))

    _Permute = _ops_transpose = _transpose

    def _ops_multiply_scalar(self, node: Node) -> None:
        (x,) = node.inputs
        op = self.producer.get(id(self.t(x)))
        if (op is not None and op.opcode in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "TRANSPOSE_CONV")
                and not op.options.get("FusedActivationFunction") and self.consumers.get(id(x)) == 1
                and id(x) not in self.outputs):
            op.anchor = self.role(node)  # the constant factor folds into its weights and bias
            if node.config["value"] == 0.0:  # all-zero weights now: the file stores equal data once
                for t in op.inputs:
                    if t is not None and t.const and t.key is None:
                        t.key = ("zeros",)
            self.bind(node, op)
            return
        scalar = LTensor((), "INT8", True, 1, key=("scalar", node.config["value"]))
        self.bind(node, self.emit(node, "MUL", [self.t(x), scalar], x.shape))


def _is_vector_like(shape: tuple[int, ...]) -> bool:
    return all(d == 1 for d in shape[:-1])


def _schedule(lowering: _Lowering, position: dict[str, int]) -> list[LOp]:
    """The operators in the converter's order: each at its anchor's place in the TensorFlow
    import order; an operator a rewrite inserted goes just after the one it reads."""
    try:
        return sorted(lowering.ops, key=lambda op: (position[op.anchor], op.after))
    except KeyError as exc:
        raise LoweringError(f"no place in the converter's order for {exc}") from None


# layers whose output is a function of their inputs and configuration alone (no random
# weights): two of them on the same inputs are one operator after the converter's CSE
_WEIGHTLESS = {"BatchNormalization", "ReLU", "Activation", "PReLU", "Add", "Multiply", "Concatenate",
               "GlobalAveragePooling2D", "MaxPooling2D", "AveragePooling2D", "ZeroPadding2D", "Reshape",
               "Flatten", "Permute", "ops.reshape", "ops.transpose", "ops.multiply_scalar"}


def _freeze(value: Any) -> Any:
    if isinstance(value, dict):
        return tuple(sorted((k, _freeze(v)) for k, v in value.items() if k != "name"))
    if isinstance(value, (list, tuple)):
        return tuple(_freeze(v) for v in value)
    return value


def _eliminate_common_subexpressions(graph: KerasGraph, place: dict[int, int]) -> KerasGraph:
    """The graph with repeated weightless layer calls on the same inputs merged (the one
    the converter imports first, ``place[id(node)]``, is kept: CSE keeps the first)."""
    alias: dict[int, SymbolicTensor] = {}
    seen: dict[tuple, Node] = {}
    for node in sorted(graph.nodes, key=lambda n: place[id(n)]):
        node.inputs = [alias.get(id(t), t) for t in node.inputs]
        if node.kind in _WEIGHTLESS:
            key = (node.kind, _freeze(node.config), tuple(id(t) for t in node.inputs))
            first = seen.get(key)
            if first is not None:
                alias[id(node.output)] = first.output
                node.merged = True
                continue
            seen[key] = node
    nodes = [n for n in graph.nodes if not getattr(n, "merged", False)]
    for node in nodes:
        node.inputs = [alias.get(id(t), t) for t in node.inputs]
    return KerasGraph(nodes, graph.inputs, [alias.get(id(t), t) for t in graph.outputs], graph.model_name)


def _eliminate_dead_code(graph: KerasGraph) -> KerasGraph:
    """Only what the outputs need (a Keras model holds only those layers)."""
    live: set[int] = set()
    stack = [t.node for t in graph.outputs if t.node is not None]
    while stack:
        node = stack.pop()
        if id(node) in live:
            continue
        live.add(id(node))
        stack.extend(t.node for t in node.inputs if t.node is not None)
    return KerasGraph([n for n in graph.nodes if id(n) in live], graph.inputs, graph.outputs, graph.model_name)


def lower_graph(graph: KerasGraph) -> ModelInfo:
    """The :class:`ModelInfo` of a recorded Keras graph, as the converter would write it."""
    if len(graph.inputs) != 1:
        raise LoweringError(f"{len(graph.inputs)} model inputs: the lowering takes one")
    graph = _eliminate_dead_code(graph)
    names = TFNames(graph, graph.model_name)
    position = {name: i for i, name in enumerate(topological_order(names.tf))}
    place = {id(n): position[names.roles[id(n)]["out"]] for n in graph.nodes}
    graph = _eliminate_common_subexpressions(graph, place)
    lowering = _Lowering(graph, names)
    (inp,) = graph.inputs
    lowering.tensor[id(inp)] = LTensor(inp.shape)
    lowering.run(sorted(graph.nodes, key=lambda n: place[id(n)]))  # producers first, as imported
    ops = _schedule(lowering, position)
    outputs = [lowering.t(t) for t in graph.outputs]
    # tensors: the input first, the constants (in the converter's order), then the activations
    from predictors.graph._names import constant_order, make_namer, tensor_names

    namer = make_namer(ops, names, position, lowering.producer)
    tensors: list[LTensor] = [lowering.t(inp)]
    seen = {id(tensors[0])}
    for t in constant_order(namer):
        if id(t) not in seen:
            seen.add(id(t))
            tensors.append(t)
    for op in ops:
        if id(op.output) not in seen:
            seen.add(id(op.output))
            tensors.append(op.output)
    for i, t in enumerate(tensors):
        t.index = i
    tensor_name = tensor_names(tensors, ops, names, position, lowering.producer, outputs, namer)
    infos = [_tensor_info(t, i, tensor_name[i]) for i, t in enumerate(tensors)]
    operators = [
        OperatorInfo(i, op.opcode, tuple(t.index if t is not None else -1 for t in op.inputs), (op.output.index,),
                     _builtin_code(op.opcode), dict(op.options))
        for i, op in enumerate(ops)
    ]
    info = ModelInfo(size_bytes=model_size(tensors, ops, tensor_name, len(outputs)),
                     num_subgraphs=1)
    info.subgraphs.append(SubgraphInfo(operators, infos, (tensors[0].index,), tuple(t.index for t in outputs)))
    return info


def _tensor_info(t: LTensor, index: int, name: str = "") -> TensorInfo:
    info = TensorInfo(index, name, t.dtype, tuple(t.shape), index if t.const else 0, t.const, t.scales > 0,
                      tuple(t.shape), t.scales > 1)
    elems = math.prod(t.shape) if t.shape else 1
    info.__dict__["num_elements"] = elems
    info.__dict__["nbytes"] = elems * TYPE_BYTES.get(t.dtype, 4.0)
    info.__dict__["is_dynamic"] = False
    return info


_ZERO_KEYS = ("bias", "alpha", "zeros")  # constants all zero in an untrained network

# what the converter writes besides the graph: its description, the subgraph's name and
# two metadata entries (their names, and their buffers' bytes: "1.14.0" padded to 16,
# and the conversion options' flatbuffer), the same in every int8 export of every space
_DESCRIPTION = len("MLIR Converted.")
_SUBGRAPH_NAME = len("main")
_METADATA = ((len("min_runtime_version"), 16), (len("CONVERSION_METADATA"), 96))
_TYPE_CODE = {"FLOAT32": 0, "FLOAT16": 1, "INT32": 2, "UINT8": 3, "INT64": 4, "INT16": 7, "INT8": 9}


def _version(op: LOp) -> int:
    """The operator's version as the converter sets it for int8 (``tflite::GetBuiltinOperatorVersion``
    in ``tensorflow/lite/tools/versioning/op_version.cc``); an operator code takes its operators' largest."""
    code = op.opcode
    if code == "CONV_2D":  # a grouped convolution: the filter has fewer input channels than the input
        x, w = op.inputs[0], op.inputs[1]
        return 6 if x is not None and w is not None and x.shape[-1] != w.shape[-1] else 3
    if code == "FULLY_CONNECTED":
        if len(op.inputs) == 2:
            return 6
        return 5 if op.options.get("KeepNumDims", 0.0) else 4
    if code == "TRANSPOSE":
        rank = len(op.inputs[0].shape)
        return 6 if rank > 5 else 4 if rank > 4 else 2
    if code == "PAD":
        return 4 if len(op.inputs[0].shape) > 4 else 2
    if code == "TRANSPOSE_CONV":
        if op.options.get("FusedActivationFunction", 0.0):
            return 4
        return 3 if len(op.inputs) == 4 and op.inputs[3] is not None else 2
    return _VERSIONS.get(code, 1)


_VERSIONS = {"DEPTHWISE_CONV_2D": 3, "ADD": 2, "MUL": 2, "MEAN": 2, "CONCATENATION": 2, "MAX_POOL_2D": 2,
             "AVERAGE_POOL_2D": 2, "RELU": 2, "RELU6": 2, "LOGISTIC": 2, "TANH": 2, "SOFTMAX": 2,
             "PRELU": 1, "HARD_SWISH": 1, "RESHAPE": 1}


@lru_cache(maxsize=None)
def _options_fields(opcode: str) -> tuple[int, tuple[tuple[str, float, int, int], ...]]:
    """(BuiltinOptions code, ((field, default, slot, bytes), ...) in the order ``Pack`` writes them)."""
    table = _OPTIONS_TYPE.get(opcode)
    if table is None:
        return 0, ()
    import tflite

    from predictors.tflite_model import option_fields

    code = int(getattr(tflite.BuiltinOptions, table))
    fields = sorted(option_fields("BuiltinOptions", code), key=lambda f: f[1])
    return code, tuple((name, default, (vt - 4) // 2, _FIELD_BYTES.get(fmt, 4)) for name, vt, fmt, default in fields)


def model_size(tensors: list[LTensor], ops: list[LOp], names: list[str], n_outputs: int) -> int:
    """The exported file's bytes: :func:`~predictors.graph._layout.packed_size` of what the
    converter's last writer (``ModelT.Pack``) is given for this graph.

    Every tensor has buffer ``index + 1`` (0 is the empty sentinel); the buffers of the
    constants hold their data, except where equal bytes came earlier: the converter's
    ``deduplicate_readonly_buffers`` points such a tensor at the first and empties its own.
    Every tensor has a quantisation table (empty for an int32 shape or axis); names are
    :mod:`predictors.graph._names`'s.
    """
    from predictors.graph._layout import operator_code_fields, packed_size

    tensor_layout, quant_layout, op_layout = _layouts()
    no_quant = (None, None, quant_layout[None])  # an int32 shape's: an empty table
    buffers: list[int | None] = [None] * (len(tensors) + 1)
    first: dict = {}
    tensor_rows = []
    for i, t in enumerate(tensors):
        if t.const:
            shape = t.shape
            nbytes = 1
            for d in shape:
                nbytes *= d
            nbytes = int(nbytes * TYPE_BYTES.get(t.dtype, 4.0))
            key = t.key
            if key is None:
                key = id(t)
            elif key[0] in _ZERO_KEYS:  # equal bytes, whatever the type
                key = ("zero", nbytes)
            else:
                key = (t.dtype, shape, key)
            if key not in first:
                first[key] = i + 1
                buffers[i + 1] = nbytes
        n = t.scales
        tensor_rows.append((len(t.shape), len(names[i].encode()), tensor_layout[t.dtype],
                            (n, n, quant_layout[n > 1 and t.qdim != 0]) if n else no_quant))
    buffers.extend(nbytes for _, nbytes in _METADATA)
    code_index: dict[str, int] = {}
    versions: list[int] = []
    op_rows = []
    for op in ops:
        k = code_index.get(op.opcode)
        if k is None:
            k = code_index[op.opcode] = len(versions)
            versions.append(0)
        version = _version(op)
        if version > versions[k]:
            versions[k] = version
        union, options = _options_layout(op)
        op_rows.append((len(op.inputs), 1, options, op_layout[k != 0, union != 0]))
    codes = [operator_code_fields(_builtin_code(code), versions[k]) for code, k in code_index.items()]
    n_tensors = len(tensors)
    metadata = [(name, n_tensors + 1 + j) for j, (name, _) in enumerate(_METADATA)]
    return packed_size(codes, tensor_rows, op_rows, buffers, 1, n_outputs, metadata,
                       description=_DESCRIPTION, subgraph_name=_SUBGRAPH_NAME, signature_defs=True)


@lru_cache(maxsize=1)
def _layouts() -> tuple[dict, dict, dict]:
    """The tables every lowered graph writes: a tensor's (by type; its buffer is never 0, it has
    a quantisation table and a rank), a quantisation's (per-channel on an axis other than 0
    or not), an operator's (opcode index 0 or not, options or not)."""
    from predictors.graph._layout import operator_fields, quantization_fields, tensor_fields

    tensor = {dtype: tensor_fields(code, 1, True) for dtype, code in _TYPE_CODE.items()}
    quant = {qdim: quantization_fields(True, True, int(qdim)) for qdim in (False, True)}
    quant[None] = quantization_fields(False, False, 0)
    ops = {(a, b): operator_fields(int(a), int(b)) for a in (False, True) for b in (False, True)}
    return tensor, quant, ops


def _options_layout(op: LOp) -> tuple[int, Any]:
    """(BuiltinOptions code, the layout of the fields it writes: those not at their default)."""
    union, fields = _options_fields(op.opcode)
    if not union:
        return 0, None
    values = op.options
    present = tuple((slot, size) for name, default, slot, size in fields if values.get(name, default) != default)
    from predictors.graph._layout import layout

    return union, layout(present)


def lower_arch(space: Any, arch: Any) -> ModelInfo:
    """The converter's graph of ``space``'s ``arch`` (batch 1, int8), from the space's own build code."""
    with recording() as graph:
        space.build(arch, keras=STANDIN)
    return lower_graph(graph)
