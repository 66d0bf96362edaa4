"""TFLite flatbuffer -> ``torch_geometric.data.Data``.

Nodes are the operators of subgraph 0, in execution order; a directed edge joins
the operator that produces a tensor to every operator that consumes it.  Constant
tensors (weights, biases) and the graph's input tensors are *folded into the
consuming operator's features* (weight shape and bytes, ``reads_graph_input``)
rather than becoming nodes: every node is then something that costs time on the
hardware, and the node count equals the operator count.  Operators that call other
subgraphs (WHILE, IF, CALL_ONCE, StableHLO regions) carry the total cost of what
they call (operators, MACs, weight bytes), recursively.

Weights stored in another form than the kernel reads are folded the same way: a
``DEQUANTIZE`` of a constant (float16 weights, the common way float models ship) or a
``DENSIFY`` of a sparse constant (and the chain of both) is part of its consumer's
weights, recorded with the stored dtype and bytes, and makes no node; the converter
runs such operators once, at load time, so they cost nothing per inference.
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Any

import numpy as np

from predictors.graph._features import (
    ACTIVATIONS,
    CHANNEL_BLOCKS,
    DTYPES,
    ESTIMATES,
    FEATURE_VERSION,
    GRAPH_FEATURES,
    GRAPH_INDEX,
    NODE_FEATURES,
    NODE_INDEX,
    OPTION_FIELDS,
    PADDINGS,
    UNKNOWN_OP_TYPE,
)
from predictors.tflite_model import (
    TYPE_BYTES,
    ModelInfo,
    ModelSource,
    OperatorInfo,
    SubgraphInfo,
    TensorInfo,
    load_model,
)
from search_spaces.errors import InvalidModelError

_OPTION_COLUMN = {name: NODE_INDEX[f"opt_{name}"] for name in OPTION_FIELDS}
_CLIP = 1e30  # well inside float32
_DTYPE_SLOT = {d: i for i, d in enumerate(DTYPES)}
_REDUCE_OVER_WEIGHTS = {"CONV_2D", "TRANSPOSE_CONV", "FULLY_CONNECTED"}  # weights [cout, ..., cin]
_MAC_OPS = {"CONV_2D", "DEPTHWISE_CONV_2D", "CONV_3D", "TRANSPOSE_CONV", "CONV_3D_TRANSPOSE",
            "FULLY_CONNECTED", "BATCH_MATMUL"}
# Operators whose 2-D+ weight matrices are each applied once per output position.
_RECURRENT_OPS = {"LSTM", "UNIDIRECTIONAL_SEQUENCE_LSTM", "BIDIRECTIONAL_SEQUENCE_LSTM", "RNN",
                  "UNIDIRECTIONAL_SEQUENCE_RNN", "BIDIRECTIONAL_SEQUENCE_RNN", "SVDF"}
# Weight conversions the runtime does once, when the model loads (a constant in, a constant out).
_WEIGHT_OPS = {"DEQUANTIZE", "DENSIFY"}
# Custom operators that are a builtin by another name, read as that builtin: MediaPipe's
# transposed convolution with bias (inputs: input, weights [cout, kh, kw, cin], bias; the
# options TFLite's C struct), which LiteRT's default XNNPACK delegate runs as its
# TRANSPOSE_CONV (inputs: output shape, weights, input, bias).
_CUSTOM_TRANSPOSE_CONV = "CUSTOM:Convolution2DTransposeBias"
_TRANSPOSE_CONV_CODE = 67
CUSTOM_AS_BUILTIN = {_CUSTOM_TRANSPOSE_CONV: "TRANSPOSE_CONV"}


def _prod(dims) -> float:
    """Product of dimensions as a float, saturating instead of overflowing."""
    n = 1.0
    for d in dims:
        n = min(n * max(float(d), 1.0), _CLIP)
    return n


def _shape4(shape: tuple[int, ...]) -> tuple[list[float], int]:
    dims = [min(max(float(d), 1.0), _CLIP) for d in shape]
    rank = len(dims)
    if rank > 4:
        dims = [_prod(dims[: rank - 3])] + dims[rank - 3:]
    return [1.0] * (4 - len(dims)) + dims, rank


@functools.lru_cache(maxsize=4096)
def _shape5(shape: tuple[int, ...]) -> tuple[float, ...]:
    """:func:`_shape4` and the rank as one tuple (shapes repeat: memoised)."""
    dims, rank = _shape4(shape)
    return (*dims, float(rank))


_NO_SHAPE = (0.0,) * 5
_NO_WORK = (0.0,) * len(CHANNEL_BLOCKS)
# extract_arrays writes NODE_FEATURES' leading columns, out_shape_d0 .. persistent_scratch_bytes,
# as one dense block (a list per operator, in that order); the rest are one-hots and options.
_DENSE_END = NODE_INDEX["persistent_scratch_bytes"] + 1


def _op_macs(op: OperatorInfo, tensors: list[TensorInfo], act_in: list[TensorInfo],
             consts: list[TensorInfo], out: TensorInfo | None) -> float:
    """Multiply-accumulates of one operator, from its tensor shapes."""
    if out is None:
        return 0.0
    out_elems = float(out.num_elements)
    kind = op.opcode
    weight = consts[0] if consts else None
    if kind == "CONV_2D" and len(op.inputs) > 1 and op.inputs[1] >= 0:
        w = tensors[op.inputs[1]].shape  # [cout, kh, kw, cin / groups]
        return out_elems * float(_prod(w[1:])) if len(w) == 4 else 0.0
    if kind == "DEPTHWISE_CONV_2D" and len(op.inputs) > 1 and op.inputs[1] >= 0:
        w = tensors[op.inputs[1]].shape  # [1, kh, kw, cout]
        return out_elems * _prod(w[1:3]) if len(w) == 4 else 0.0
    if kind == "CONV_3D" and len(op.inputs) > 1 and op.inputs[1] >= 0:
        w = tensors[op.inputs[1]].shape  # [kd, kh, kw, cin, cout]
        return out_elems * float(_prod(w[:4])) if len(w) == 5 else 0.0
    if kind in ("TRANSPOSE_CONV", "CONV_3D_TRANSPOSE") and len(op.inputs) > 2 and op.inputs[1] >= 0:
        w = tensors[op.inputs[1]].shape  # [cout, kh, kw, cin]
        x = tensors[op.inputs[2]]
        return float(x.num_elements) * float(_prod(w[:-1]))
    if kind == "FULLY_CONNECTED" and len(op.inputs) > 1 and op.inputs[1] >= 0:
        w = tensors[op.inputs[1]].shape  # [units, in]
        return out_elems * float(max(w[-1], 1)) if w else 0.0
    if kind == "BATCH_MATMUL" and op.inputs and op.inputs[0] >= 0:
        a = tensors[op.inputs[0]].shape
        adj_x = op.options.get("AdjX", 0.0)
        k = a[-2] if adj_x and len(a) >= 2 else (a[-1] if a else 1)
        return out_elems * float(max(k, 1))
    if kind == "PRELU":  # one multiply per element (alpha broadcast over the shared axes)
        return out_elems if weight is not None else 0.0
    if kind in _RECURRENT_OPS and weight is not None and out.shape:
        # every 2-D+ weight matrix is applied once per output position (tokens = output
        # elements / last dimension)
        tokens = out_elems / float(max(out.shape[-1], 1))
        return tokens * float(sum(c.num_elements for c in consts if len(c.shape) >= 2))
    return 0.0


def fold_weight_ops(sg: SubgraphInfo, buffer_bytes: list[int] | None = None,
                    ) -> tuple[list[OperatorInfo], list[TensorInfo]]:
    """A subgraph's operators without the weight conversions (``DEQUANTIZE``/``DENSIFY`` of
    a constant, chained), and its tensors with each converted weight as a constant of the
    stored dtype and size: what the extractor makes nodes and weights of.

    ``buffer_bytes`` (:attr:`ModelInfo.buffer_bytes`) gives a sparse weight its packed
    size; without it a weight counts its dense size in the stored dtype. A converted
    weight also carries the arena bytes of its conversions: ``converted_bytes`` (made at
    load, kept for the model's lifetime) and ``converted_scratch`` (made every inference).

    A custom operator that is a builtin by another name (MediaPipe's
    ``Convolution2DTransposeBias``) comes out as that builtin, with the inputs the builtin
    takes (an output-shape constant, appended to the tensors, where it has one).
    """
    ops, tensors = _fold_weights(sg, buffer_bytes)
    if any(op.opcode == _CUSTOM_TRANSPOSE_CONV for op in ops):
        tensors = list(tensors)
        ops = [_as_transpose_conv(op, tensors) if op.opcode == _CUSTOM_TRANSPOSE_CONV else op for op in ops]
    return ops, tensors


def _as_transpose_conv(op: OperatorInfo, tensors: list[TensorInfo]) -> OperatorInfo:
    """``Convolution2DTransposeBias(input, weights, bias)`` as ``TRANSPOSE_CONV(output_shape,
    weights, input, bias)``; the output-shape constant (int32 ``[4]``) is appended to
    ``tensors``. An operator of another arity, or without its options, stays custom."""
    if len(op.inputs) != 3 or min(op.inputs) < 0 or not op.outputs or op.outputs[0] < 0 or not op.options:
        return op
    out = tensors[op.outputs[0]]
    shape_t = TensorInfo(len(tensors), "", "INT32", (len(out.shape),), -1, True, False)
    tensors.append(shape_t)
    x, w, bias = op.inputs
    return OperatorInfo(op.index, "TRANSPOSE_CONV", (shape_t.index, w, x, bias), op.outputs,
                        _TRANSPOSE_CONV_CODE, op.options, op.called_subgraphs)


def _fold_weights(sg: SubgraphInfo, buffer_bytes: list[int] | None) -> tuple[list[OperatorInfo], list[TensorInfo]]:
    tensors = sg.tensors
    folded: dict[int, TensorInfo] = {}
    for op in sg.operators:
        if op.opcode not in _WEIGHT_OPS or len(op.outputs) != 1 or op.outputs[0] < 0:
            continue
        ins = [t for t in op.inputs if t >= 0]
        if len(ins) != 1:
            continue
        src = folded.get(ins[0]) or tensors[ins[0]]
        if not src.is_constant:
            continue
        out = tensors[op.outputs[0]]
        stored = src.nbytes
        if buffer_bytes and 0 < src.buffer < len(buffer_bytes) and buffer_bytes[src.buffer] > 0:
            stored = float(buffer_bytes[src.buffer])
        weight = TensorInfo(out.index, out.name, src.dtype, out.shape, src.buffer, True, src.quantized,
                            out.shape_signature, src.per_channel)
        weight.__dict__["nbytes"] = stored
        # The interpreter converts a constant once, at load, into a tensor of its arena that
        # lives as long as the model (a float16 weight's float32 copy, a sparse weight
        # densified); a conversion of that (a densified float16 weight to float32) runs
        # every inference, into a tensor that lives until its consumer has run.
        if ins[0] in folded:
            weight.__dict__["converted_bytes"] = src.__dict__["converted_bytes"]
            weight.__dict__["converted_scratch"] = src.__dict__.get("converted_scratch", 0.0) + float(out.nbytes)
        else:
            weight.__dict__["converted_bytes"] = float(out.nbytes)
        folded[out.index] = weight
    if not folded:
        return sg.operators, tensors
    tensors = list(tensors)
    for index, weight in folded.items():
        tensors[index] = weight
    ops = [op for op in sg.operators
           if not (op.opcode in _WEIGHT_OPS and op.outputs and op.outputs[0] in folded)]
    return ops, tensors


_REDUCTIONS = {"MEAN", "SUM"}


def _kernel_scratch(op: OperatorInfo, tensors: list[TensorInfo], act_in: list[TensorInfo],
                    out: TensorInfo | None) -> tuple[float, float, float, float]:
    """Bytes a CPU kernel allocates for one operator: (temporary, for the model's lifetime)
    as the node features count them, then the same as LiteRT's arena plan holds them.

    TFLite's built-in kernels (checked against the LiteRT interpreter's own scratch
    tensors, ``tests/predictors_tests/targets_tests/test_litert.py``):
    a CONV_2D that is strided, dilated or not 1x1 builds an im2col buffer
    ``[N, H_out, W_out, kh * kw * C_in]`` in the input's type; a TRANSPOSE_CONV a
    col2im buffer ``[H_in * W_in, kh * kw * C_out]`` of int32/float32, a quantised one
    an int32 accumulator of its output, and a re-laid-out copy of its weights that
    lives as long as the model; MEAN and SUM accumulate in 32 bits, one per output.
    The hybrid kernels (float activations, int8 weights: dynamic-range quantisation)
    quantise their input on every inference: an int8 copy of the input, a float scale
    and an int32 zero point per row (an input position of a convolution, a row of a
    fully connected layer's input; one per batch for a depthwise one), an int32
    accumulator of the output (CONV_2D, FULLY_CONNECTED) and, for the model's lifetime,
    the int32 sums of the weights' rows (one per output channel); their im2col is int8.

    The plan differs for two kernels, which the node features (schema 3) count as
    above: a TRANSPOSE_CONV's col2im and accumulator are tensors outside the arena's
    plan that live as long as the model (and a converted weight needs no re-laid-out
    copy beside the conversion's own); BATCH_MATMUL holds a transposed copy of each
    operand, of a constant right operand for the model's lifetime.
    """
    if out is None:
        return 0.0, 0.0, 0.0, 0.0
    kind, opts = op.opcode, op.options
    hybrid = _is_hybrid(op, tensors, act_in)
    if kind == "CONV_2D" and len(op.inputs) > 1 and op.inputs[1] >= 0 and act_in:
        w = tensors[op.inputs[1]].shape  # [cout, kh, kw, cin / groups]
        if len(w) != 4:
            return 0.0, 0.0, 0.0, 0.0
        scratch = persistent = 0.0
        if hybrid:
            x = act_in[0]
            rows = float(x.num_elements) / max(float(x.shape[-1]) if x.shape else 1.0, 1.0)
            scratch = float(x.num_elements) + 8.0 * rows + 4.0 * float(out.num_elements)
            persistent = 4.0 * float(w[0])
        strided = (opts.get("StrideW", 1.0), opts.get("StrideH", 1.0), opts.get("DilationWFactor", 1.0),
                   opts.get("DilationHFactor", 1.0)) != (1.0, 1.0, 1.0, 1.0)
        if strided or w[1] != 1 or w[2] != 1:
            positions = float(out.num_elements) / max(float(w[0]), 1.0)
            scratch += positions * _prod(w[1:]) * (1.0 if hybrid else TYPE_BYTES.get(act_in[0].dtype, 4.0))
        return scratch, persistent, scratch, persistent
    if kind == "TRANSPOSE_CONV" and len(op.inputs) > 2 and min(op.inputs[1:3]) >= 0:
        w_t, x = tensors[op.inputs[1]], tensors[op.inputs[2]]
        w = w_t.shape  # [cout, kh, kw, cin]
        if len(w) != 4 or not x.shape:
            return 0.0, 0.0, 0.0, 0.0
        positions = float(x.num_elements) / max(float(x.shape[-1]), 1.0)
        buffers = positions * _prod(w[:3]) * 4.0
        if x.dtype in ("INT8", "UINT8", "INT16"):
            buffers += float(out.num_elements) * (8.0 if x.dtype == "INT16" else 4.0)
        quantised_input = float(x.num_elements) + 8.0 * positions if hybrid else 0.0
        relaid = 0.0 if "converted_bytes" in w_t.__dict__ else float(w_t.nbytes)
        return buffers + quantised_input, float(w_t.nbytes), quantised_input, buffers + relaid
    if hybrid and kind == "FULLY_CONNECTED":
        x, w = act_in[0], tensors[op.inputs[1]].shape  # [units, depth]
        rows = float(x.num_elements) / max(float(w[-1]) if w else 1.0, 1.0)
        units = float(w[0]) if w else 1.0
        scratch = float(x.num_elements) + 8.0 * rows + 4.0 * rows * units
        return scratch, 4.0 * units, scratch, 4.0 * units
    if hybrid and kind == "DEPTHWISE_CONV_2D":
        x = act_in[0]
        scratch = float(x.num_elements) + 8.0 * float(max(x.shape[0], 1) if x.shape else 1)
        return scratch, 0.0, scratch, 0.0
    if kind == "BATCH_MATMUL" and len(op.inputs) > 1 and min(op.inputs[:2]) >= 0:
        lhs, rhs = tensors[op.inputs[0]], tensors[op.inputs[1]]
        rhs_bytes = float(rhs.num_elements) * TYPE_BYTES.get(rhs.dtype, 4.0)
        return 0.0, 0.0, lhs.nbytes + (0.0 if rhs.is_constant else rhs_bytes), (rhs_bytes if rhs.is_constant else 0.0)
    if kind in _REDUCTIONS:
        return float(out.num_elements) * 4.0, 0.0, float(out.num_elements) * 4.0, 0.0
    return 0.0, 0.0, 0.0, 0.0


_HYBRID_OPS = {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "TRANSPOSE_CONV"}


def _is_hybrid(op: OperatorInfo, tensors: list[TensorInfo], act_in: list[TensorInfo]) -> bool:
    """A float operator whose weights are stored int8, not converted (a DEQUANTIZE folded
    into it feeds it float weights)."""
    if op.opcode not in _HYBRID_OPS or not act_in or act_in[0].dtype != "FLOAT32":
        return False
    if len(op.inputs) < 2 or op.inputs[1] < 0:
        return False
    w = tensors[op.inputs[1]]
    return w.is_constant and w.dtype in ("INT8", "UINT8") and "converted_bytes" not in w.__dict__


# Operators whose LiteRT kernels may write their output into an input's buffer (the
# registration's in-place flags): inputs that may be shared, and whether the operator
# changes the data (then only an input of the output's size that nothing else reads).
_IN_PLACE = {"ADD": ((0, 1), True), "SUB": ((0, 1), True), "MUL": ((0, 1), True), "DIV": ((0, 1), True),
             "SOFTMAX": ((0,), True), "RESHAPE": ((0,), False), "SQUEEZE": ((0,), False),
             "EXPAND_DIMS": ((0,), False)}
_SCALAR_BYTES = 8
# Operators whose LiteRT kernels size their output only when they run where one of these
# inputs (a shape, sizes, paddings, multiples, axes) is not a constant
# (``SetTensorToDynamic``): such an output gets an allocation of its own, held from
# then on, outside the arena plan.  Only graphs with run-time shapes have them.
_DYNAMIC_WHEN = {"RESHAPE": (1,), "STRIDED_SLICE": (1, 2, 3), "SLICE": (1, 2), "PAD": (1,), "PADV2": (1,),
                 "MIRROR_PAD": (1,), "TILE": (1,), "FILL": (0,), "RANGE": (0, 1, 2), "BROADCAST_TO": (1,),
                 "TRANSPOSE": (1,), "SPLIT_V": (1, 2), "SPLIT": (0,), "EXPAND_DIMS": (1,), "MEAN": (1,),
                 "SUM": (1,), "REDUCE_MAX": (1,), "REDUCE_MIN": (1,), "REDUCE_PROD": (1,), "REDUCE_ANY": (1,),
                 "RESIZE_BILINEAR": (1,), "RESIZE_NEAREST_NEIGHBOR": (1,), "RFFT2D": (1,), "ONE_HOT": (1,),
                 "ARG_MAX": (1,), "ARG_MIN": (1,), "WHERE": (0,), "UNIQUE": (0,),
                 "NON_MAX_SUPPRESSION_V4": (0,), "NON_MAX_SUPPRESSION_V5": (0,)}


# Kernels that compute their output while they are prepared when every input is a
# constant or was itself computed then (``SetTensorToPersistentRo``): shape arithmetic.
# SHAPE and RANK always are: an input's shape is known when its consumer is prepared.
_PREPARE_FOLDS = frozenset({"ADD", "SUB", "MUL", "DIV", "FLOOR_DIV", "CONCATENATION", "PACK", "GATHER", "RANGE",
                            "RESHAPE", "STRIDED_SLICE", "SLICE", "SQUEEZE", "EXPAND_DIMS", "CAST", "MAXIMUM",
                            "MINIMUM", "FILL", "SPLIT", "SPLIT_V"})


def _dynamic_outputs(ops: list[OperatorInfo], tensors: list[TensorInfo], alias: dict[int, int]) -> set[int]:
    """The tensors LiteRT allocates one by one at run time (:data:`_DYNAMIC_WHEN`, where
    the shape-giving input is neither a constant nor folded while preparing; a RESHAPE
    that runs in place (``alias``) on an arena tensor keeps its input's buffer instead)."""
    out: set[int] = set()
    folded: set[int] = set()

    def known(t: int) -> bool:
        return t < 0 or tensors[t].is_constant or t in folded

    for op in ops:
        if op.opcode in ("SHAPE", "RANK") or (op.opcode in _PREPARE_FOLDS and all(known(t) for t in op.inputs)):
            folded.update(t for t in op.outputs if t >= 0)
            continue
        rule = _DYNAMIC_WHEN.get(op.opcode)
        if rule and not all(known(op.inputs[k]) for k in rule if k < len(op.inputs)):
            if op.opcode == "RESHAPE" and op.outputs and op.outputs[0] in alias and op.inputs[0] not in out:
                continue
            out.update(t for t in op.outputs if t >= 0)
    return out


def _in_place(ops: list[OperatorInfo], tensors: list[TensorInfo], graph_inputs: set[int],
              graph_outputs: set[int], readers: dict[int, int]) -> dict[int, int]:
    """Output tensor -> the tensor whose buffer it shares, by LiteRT's arena planner
    (``ArenaPlanner::IdentifyInPlaceTensors``): never a graph input's buffer, never for
    a graph output; a data-changing operator only takes an input of the output's size
    whose only reader it is (checked against the interpreter's own tensor addresses,
    ``tests/predictors_tests/targets_tests/test_litert.py``; ``readers``: the operator
    inputs reading each tensor)."""
    refs = dict(readers)  # the planner's reference counts: readers, plus graph inputs and outputs
    for t in graph_inputs | graph_outputs:
        refs[t] = refs.get(t, 0) + 1
    alias: dict[int, int] = {}
    for op in ops:
        rule = _IN_PLACE.get(op.opcode)
        if rule is None or not op.outputs or op.outputs[0] < 0 or op.outputs[0] in graph_outputs:
            continue
        out = tensors[op.outputs[0]]
        shareable, changes = rule
        for k in shareable:
            if k >= len(op.inputs) or op.inputs[k] < 0:
                continue
            t = tensors[op.inputs[k]]
            if t.is_constant or t.index in graph_inputs:
                continue
            if changes and (t.nbytes != out.nbytes or t.nbytes <= _SCALAR_BYTES or refs.get(t.index, 0) > 1):
                continue
            root = alias.get(t.index, t.index)
            if changes and refs.get(root, 0) > 1:
                break
            alias[out.index] = root
            break
    return alias


class _Subgraphs:
    """Per-subgraph cost totals, memoised, with recursion through called subgraphs."""

    def __init__(self, info: ModelInfo):
        self.info = info
        self.memo: dict[int, tuple[float, float, float]] = {}

    def cost(self, index: int, stack: frozenset = frozenset()) -> tuple[float, float, float]:
        if index in self.memo:
            return self.memo[index]
        if index in stack or not 0 <= index < len(self.info.subgraphs):
            return (0.0, 0.0, 0.0)  # recursion (a subgraph calling itself) counts once
        operators, tensors = fold_weight_ops(self.info.subgraphs[index], self.info.buffer_bytes)
        ops = macs = weights = 0.0
        for op in operators:
            act_in, consts, out = _split(op, tensors)
            ops += 1
            macs += _op_macs(op, tensors, act_in, consts, out)
            weights += sum(c.nbytes for c in consts)
            for called in op.called_subgraphs:
                c_ops, c_macs, c_w = self.cost(called, stack | {index})
                ops, macs, weights = ops + c_ops, macs + c_macs, weights + c_w
        self.memo[index] = (ops, macs, weights)
        return self.memo[index]


def _split(op: OperatorInfo, tensors: list[TensorInfo]):
    act_in, consts = [], []
    for t in op.inputs:
        if t < 0:
            continue
        (consts if tensors[t].is_constant else act_in).append(tensors[t])
    out = tensors[op.outputs[0]] if op.outputs and op.outputs[0] >= 0 else None
    return act_in, consts, out


@functools.lru_cache(maxsize=4096)
def _fills(channels: int) -> tuple[float, ...]:
    """``c / (ceil(c / k) * k)`` for every channel block size ``k``."""
    c = max(int(channels), 1)
    return tuple(c / (-(-c // k) * k) for k in CHANNEL_BLOCKS)


_option_columns: dict[tuple[str, ...], tuple[list[int], list[int] | None]] = {}


def _pick_option_columns(names: tuple[str, ...]) -> tuple[list[int], list[int] | None]:
    """The feature columns of an operator's option fields, and which fields have one
    (``None``: all of them, in order)."""
    keep = [k for k, name in enumerate(names) if name in _OPTION_COLUMN]
    cols = [_OPTION_COLUMN[names[k]] for k in keep]
    return cols, (None if len(keep) == len(names) else keep)


def _dtype_slot(dtype: str | None) -> int:
    return _DTYPE_SLOT.get(dtype, len(DTYPES)) if dtype is not None else -1


def extract_arrays(info: ModelInfo) -> dict[str, Any]:
    """Numpy arrays of the graph: ``x``, ``op_type``, ``edge_index``, ``edge_attr``, ``u``."""
    sg: SubgraphInfo = info.subgraphs[0]
    ops, tensors = fold_weight_ops(sg, info.buffer_bytes)
    n = len(ops)
    x = np.zeros((n, len(NODE_FEATURES)), dtype=np.float64)
    op_type = np.empty(n, dtype=np.int64)
    graph_inputs, graph_outputs = set(sg.inputs), set(sg.outputs)
    costs = _Subgraphs(info)
    producer: dict[int, int] = {}
    last_use: dict[int, int] = {}
    readers: dict[int, int] = {}  # operator inputs reading each tensor
    col = NODE_INDEX
    dt_out, dt_in, dt_w = col["out_dtype_float32"], col["in_dtype_float32"], col["weight_dtype_float32"]
    act0, pad0 = col["activation_none"], col["padding_same"]
    c_scratch, c_persistent = col["scratch_bytes"], col["persistent_scratch_bytes"]
    opt_rows: list[int] = []
    opt_cols: list[int] = []
    opt_values: list[float] = []
    total_macs = total_weights = 0.0

    dense, sparse_rows, sparse_cols = [], [], []
    plan_scratch: list[float] = []  # the kernels' buffers as LiteRT's arena plan holds them
    plan_persistent = 0.0
    converted_seen: set[int] = set()
    for i, op in enumerate(ops):
        op_type[i] = op.code if 0 <= op.code < UNKNOWN_OP_TYPE else UNKNOWN_OP_TYPE
        act_in, consts, out = _split(op, tensors)
        outs = [tensors[t] for t in op.outputs if t >= 0]
        macs = _op_macs(op, tensors, act_in, consts, out)
        in_elems = in_bytes = 0
        q_in = from_input = dynamic = False
        for t in act_in:
            in_elems = max(in_elems, t.num_elements)
            in_bytes += t.nbytes
            q_in = q_in or t.quantized
            from_input = from_input or t.index in graph_inputs
            dynamic = dynamic or t.is_dynamic
        out_elems = out_bytes = 0
        q_out = to_output = False
        for t in outs:
            out_elems += t.num_elements
            out_bytes += t.nbytes
            q_out = q_out or t.quantized
            to_output = to_output or t.index in graph_outputs
            dynamic = dynamic or t.is_dynamic
        weight_bytes = converted = converted_scratch = 0.0
        per_channel = False
        for c in consts:
            weight_bytes += c.nbytes
            per_channel = per_channel or c.per_channel
            if "converted_bytes" in c.__dict__ and c.index not in converted_seen:  # its first consumer holds it
                converted_seen.add(c.index)
                converted += c.__dict__["converted_bytes"]
                converted_scratch += c.__dict__.get("converted_scratch", 0.0)
        elementwise = 0.0 if macs else float(max(in_elems, out_elems))
        opcode = op.opcode
        f_out = _fills(out.shape[-1] if out is not None and out.shape else 1)
        if macs and opcode in _REDUCE_OVER_WEIGHTS and len(op.inputs) > 1 and op.inputs[1] >= 0:
            # the reduction runs over the weights' input channels (their last dimension)
            w_shape = tensors[op.inputs[1]].shape
            f_in = _fills(w_shape[-1] if w_shape else 1)
        else:  # depthwise (no reduction over channels), matmul, element-wise: the input's channels
            f_in = _fills(act_in[0].shape[-1] if act_in and act_in[0].shape else 1)
        if macs:
            if opcode == "DEPTHWISE_CONV_2D":
                work = [macs / a for a in f_out]
            else:
                work = [macs / (a * b) for a, b in zip(f_out, f_in)]
        elif elementwise:
            work = [elementwise / a for a in f_out]
        else:
            work = _NO_WORK
        called_ops = called_macs = called_weights = 0.0
        for called in op.called_subgraphs:
            c_ops, c_macs, c_w = costs.cost(called, frozenset({0}))
            called_ops, called_macs, called_weights = called_ops + c_ops, called_macs + c_macs, called_weights + c_w
        # the leading columns (up to _DENSE_END) as one row of Python floats, written once at the end
        row = [
            *(_shape5(out.shape) if out is not None else _NO_SHAPE),
            *(_shape5(act_in[0].shape) if act_in else _NO_SHAPE),
            *(_shape5(consts[0].shape) if consts else _NO_SHAPE),
            macs, elementwise, out_elems, weight_bytes, in_bytes, out_bytes,
            len(op.inputs) - op.inputs.count(-1), len(consts), len(outs),
            float(q_in), float(q_out), float(per_channel), float(from_input), float(to_output), float(dynamic),
            called_ops, called_macs, called_weights,
            *f_out, *f_in, *work,
        ]
        node_scratch, node_persistent, scratch, persistent = _kernel_scratch(op, tensors, act_in, out)
        # a conversion made every inference (a densified float16 weight to float32) is the
        # plain interpreter's, in the arena plan only: a delegate (XNNPACK, how latency is
        # timed) converts static weights once, so it is no per-inference work to learn from
        row += (node_scratch, node_persistent + converted)
        plan_scratch.append(_aligned(scratch) + _aligned(converted_scratch))
        plan_persistent += persistent + converted
        dense.append(row)
        # the one-hot and option columns, a few per operator: (row, column) pairs set to values
        hot = [dt_out + _dtype_slot(out.dtype)] if out is not None else []
        if act_in:
            hot.append(dt_in + _dtype_slot(act_in[0].dtype))
        if consts:
            hot.append(dt_w + _dtype_slot(consts[0].dtype))
        options = op.options
        if options:
            activation = options.get("FusedActivationFunction")
            if activation is not None and 0 <= activation < len(ACTIVATIONS):
                hot.append(act0 + int(activation))
            padding = options.get("Padding")
            if padding is not None and 0 <= padding < len(PADDINGS):
                hot.append(pad0 + int(padding))
            # a handful per operator, of 88 columns; an options type always has the same fields
            names = tuple(options)
            picked = _option_columns.get(names)
            if picked is None:
                picked = _option_columns[names] = _pick_option_columns(names)
            cols, keep = picked
            if cols:
                values = list(options.values())
                opt_rows.extend([i] * len(cols))
                opt_cols.extend(cols)
                opt_values.extend(values if keep is None else [values[k] for k in keep])
        sparse_rows.extend([i] * len(hot))
        sparse_cols.extend(hot)
        total_macs += macs
        total_weights += weight_bytes
        for t in op.inputs:
            if t >= 0:
                last_use[t] = i
                readers[t] = readers.get(t, 0) + 1
        for t in op.outputs:
            if t >= 0:
                producer.setdefault(t, i)
    if n:
        x[:, :_DENSE_END] = dense
        x[sparse_rows, sparse_cols] = 1.0
        if opt_rows:
            x[opt_rows, opt_cols] = opt_values

    # Edges: producer -> every consumer of a tensor (once per pair).
    edges: dict[tuple[int, int], float] = {}
    for i, op in enumerate(ops):
        for t in op.inputs:
            src = producer.get(t)
            if src is not None and src != i and (src, i) not in edges:
                edges[(src, i)] = tensors[t].nbytes
    if edges:
        edge_index = np.array(list(edges.keys()), dtype=np.int64).T
        edge_attr = np.array(list(edges.values()), dtype=np.float64).reshape(-1, 1)
    else:
        edge_index = np.zeros((2, 0), dtype=np.int64)
        edge_attr = np.zeros((0, 1), dtype=np.float64)

    # Peak activation memory in execution order: a tensor lives from its producer
    # (or the start, for graph inputs) to its last consumer (or the end, for outputs).
    delta = np.zeros(n + 1, dtype=np.float64)
    total_activation = 0.0
    # LiteRT's arena planner, what peak_activation_scratch_bytes follows, differs in two
    # rules: it never reuses a graph input's buffer, and an operator that can run in
    # place writes its output into an input's buffer (one buffer for both).
    alias = _in_place(ops, tensors, graph_inputs, graph_outputs, readers)
    dynamic = _dynamic_outputs(ops, tensors, alias)
    buffers: dict[int, list[float]] = {}
    for t in tensors:
        if t.is_constant or (t.index not in producer and t.index not in graph_inputs):
            continue
        start = producer.get(t.index, 0)
        end = n - 1 if t.index in graph_outputs else last_use.get(t.index, start)
        delta[start] += t.nbytes
        delta[max(end, start) + 1] -= t.nbytes
        total_activation += t.nbytes
        if t.index in dynamic:  # its own allocation, kept (outside the plan)
            plan_persistent += t.nbytes
            continue
        root = alias.get(t.index, t.index)
        if root in dynamic:
            root = t.index
        held = n - 1 if t.index in graph_inputs else max(end, start)
        span = buffers.setdefault(root, [start, held, _aligned(tensors[root].nbytes)])
        span[0], span[1] = min(span[0], start), max(span[1], held)
    live = np.cumsum(delta[:n])
    x[:, col["live_activation_bytes"]] = live
    peak = float(live.max()) if n else 0.0
    planned = np.zeros(n + 1, dtype=np.float64)
    for start, end, nbytes in buffers.values():
        planned[int(start)] += nbytes
        planned[int(end) + 1] -= nbytes
    peak_scratch = float((live + x[:, c_scratch]).max()) if n else 0.0
    arena = float((np.cumsum(planned[:n]) + np.asarray(plan_scratch)).max()) + plan_persistent if n else 0.0

    other_ops = other_macs = 0.0
    for s in range(1, len(info.subgraphs)):
        c_ops, c_macs, _ = costs.cost(s, frozenset())
        other_ops += len(info.subgraphs[s].operators)
        other_macs += c_macs
    u = np.zeros((1, len(GRAPH_FEATURES)), dtype=np.float64)
    g = GRAPH_INDEX
    u[0, g["total_macs"]] = total_macs
    u[0, g["total_weight_bytes"]] = total_weights
    u[0, g["peak_activation_bytes"]] = peak
    u[0, g["peak_activation_scratch_bytes"]] = peak_scratch
    u[0, g["persistent_scratch_bytes"]] = float(x[:, c_persistent].sum())
    u[0, g["total_activation_bytes"]] = total_activation
    u[0, g["num_operators"]] = n
    u[0, g["num_edges"]] = edge_index.shape[1]
    u[0, g["input_bytes"]] = sum(tensors[t].nbytes for t in sg.inputs if t >= 0)
    u[0, g["output_bytes"]] = sum(tensors[t].nbytes for t in sg.outputs if t >= 0)
    u[0, g["model_bytes"]] = info.size_bytes
    u[0, g["num_subgraphs"]] = info.num_subgraphs
    u[0, g["subgraph_operators"]] = other_ops
    u[0, g["subgraph_macs"]] = other_macs
    est = np.zeros((1, len(ESTIMATES)), dtype=np.float64)
    est[0, ESTIMATES.index("arena_plan_bytes")] = arena
    return {"x": x, "op_type": op_type, "edge_index": edge_index, "edge_attr": edge_attr, "u": u, "est": est}


def _aligned(nbytes: float) -> float:
    """A buffer's room in LiteRT's arena: every allocation starts at a multiple of 64 bytes
    (``kDefaultTensorAlignment``)."""
    return float(-(-int(nbytes) // 64) * 64)


VALUE_KEYS = ("x", "edge_attr", "u", "est")  # the arrays of values (the others are indices)


def graph_arrays(source: ModelSource) -> dict[str, Any]:
    """:func:`extract_arrays` of a validated model, with every value finite.

    Raises:
        InvalidModelError: missing, empty, truncated, corrupt or non-TFLite input.
    """
    return model_arrays(source)[0]


def model_arrays(source: ModelSource, resolve_shapes: bool = True) -> tuple[dict[str, Any], ModelInfo]:
    """:func:`graph_arrays` and the :class:`ModelInfo` they were extracted from.

    ``resolve_shapes``: a model whose tensors have dimensions unknown until run time
    (``shape_signature`` -1; the file stores placeholders) gets LiteRT's shapes after one
    inference, in a child process (:func:`resolve_runtime_shapes`); ``info.shapes_from``
    says which shapes were used."""
    data, info = load_model(source, with_options=True)
    if not info.operators:  # only other subgraphs have operators: nothing runs
        label = "model bytes" if isinstance(source, (bytes, bytearray, memoryview)) else str(source)
        raise InvalidModelError(f"{label}: the main subgraph of this TFLite model has no operators")
    if resolve_shapes:
        resolve_runtime_shapes(data, info)
    arrays = extract_arrays(info)
    for key in VALUE_KEYS:  # a corrupt-but-parseable file must not yield inf/nan
        a = arrays[key]
        # one reduction: NaN propagates through maximum, so "not <= _CLIP" catches it too
        if not np.maximum.reduce(np.abs(a), axis=None, initial=0.0) <= _CLIP:
            arrays[key] = np.clip(np.nan_to_num(a, nan=0.0, posinf=_CLIP, neginf=-_CLIP), -_CLIP, _CLIP)
    return arrays, info


def resolve_runtime_shapes(data: bytes, info: ModelInfo) -> None:
    """Replaces the placeholder shapes of subgraph 0's run-time-sized tensors by LiteRT's
    (in place; nothing to do for a model whose shapes are all static).  Where LiteRT
    cannot run the model the placeholders stay and ``info.shapes_from`` says why."""
    from predictors.graph._runtime_shapes import ShapeResolutionError, runtime_shapes

    tensors = info.subgraphs[0].tensors
    if not any(t.is_dynamic for t in tensors if not t.is_constant):
        return
    try:
        shapes = runtime_shapes(data, len(tensors))
    except ShapeResolutionError as exc:
        info.shapes_from = f"placeholders: {exc}"
        return
    for i, t in enumerate(tensors):
        shape = shapes.get(i)
        if shape is not None and not t.is_constant and tuple(t.shape) != shape:
            tensors[i] = dataclasses.replace(t, shape=shape)
    info.shapes_from = "run time"


def to_data(arrays: dict[str, Any]):
    """The PyG graph of :func:`graph_arrays`' output."""
    import torch
    from torch_geometric.data import Data

    return Data(
        x=torch.from_numpy(arrays["x"].astype(np.float32)),
        op_type=torch.from_numpy(arrays["op_type"]),
        edge_index=torch.from_numpy(arrays["edge_index"]),
        edge_attr=torch.from_numpy(arrays["edge_attr"].astype(np.float32)),
        u=torch.from_numpy(arrays["u"].astype(np.float32)),
        est=torch.from_numpy(arrays["est"].astype(np.float64)),
        num_nodes=int(arrays["x"].shape[0]),
        feature_version=FEATURE_VERSION,
    )


def from_tflite(source: ModelSource):
    """Reads any TFLite model into a PyG graph (operators as nodes, data flow as edges).

    Returns:
        ``torch_geometric.data.Data`` with ``x`` (float32 ``[N, len(NODE_FEATURES)]``),
        ``op_type`` (int64 ``[N]``, an index below ``NUM_OP_TYPES`` for an embedding),
        ``edge_index`` (int64 ``[2, E]``), ``edge_attr`` (float32 ``[E, 1]``: bytes of
        the tensor on the edge), ``u`` (float32 ``[1, len(GRAPH_FEATURES)]``) and
        ``feature_version``.  Features are raw (bytes, MACs, ...); fit a
        :class:`~predictors.graph.Normalizer` on training graphs to scale them.

    Raises:
        InvalidModelError: missing, empty, truncated, corrupt or non-TFLite input.
    """
    return to_data(graph_arrays(source))
