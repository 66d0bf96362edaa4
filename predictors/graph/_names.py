"""The names the TFLite converter gives the tensors of a lowered graph.

A flatbuffer stores every tensor's name, and on a small network the names are a
few per cent of the file, so the lowering's model size is only as good as its
names.  A name is the TensorFlow node names (from :class:`TFNames`) of what the
converter fused into the tensor, joined by ``;``, made unique by the exporter's
``OpOrArgNameMapper`` (a taken name gets the next free count appended), and the
int8 file is written twice: the float model first (pass 1), whose names become the
locations the quantised model (pass 2) is named from.  The rules, each checked
against the files of the committed networks (``benchmarks/lowering.py``):

- a convolution's output: its fused activations, then (depthwise and fully
  connected only) the batch norm's ``mul_1``, then the convolution; a depthwise
  weight carries the same name, and the ``Rsqrt`` of the batch norm whose
  constant it shares (the first in the converter's order with that channel
  count) unless the channel count is a multiple of 8 and more than one such
  depthwise convolution exists (the folder then drops the location);
- a constant the converter deduplicates or makes itself (biases shared by shape
  in pass 1, shapes, permutations, paddings, a MEAN's axes when several layers
  share them) is ``arith.constant<N>``, numbered in pass 1; a bias of its own takes
  its convolution's name with a ``1`` (the weight the plain name), except on the
  first operator, where the two swap;
- hard swish, PReLU, the squeeze and bias-add of two ``[1, 1, 1, C]`` maps and a
  graph output (``Identity``) have fixed patterns.

Names are made unique in the order of the file's tensors (:func:`constant_order`). The
pass-1 numbers follow the operators' order (a shared bias at its last user, the other
constants at their first), which the converter's does not quite (its order looks like a
hash map's): names of the ``arith.constant`` kind can be off by a digit, at most 56
bytes a network (``benchmarks/lowering.py``); every other name is the converter's on the
committed networks.
"""
from __future__ import annotations

from collections import Counter
from typing import Any

ARITH = "arith.constant"
_CONVS = ("Conv2D", "DepthwiseConv2D", "Dense", "Conv2DTranspose")
_WEIGHTED = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "TRANSPOSE_CONV")


class _Namer:
    def __init__(self, ops: list, names: Any, position: dict[str, int], producer: dict[int, Any]):
        self.ops, self.names, self.position, self.producer = ops, names, position, producer
        graph = names.graph
        self.bns = [n for n in graph.nodes if n.kind == "BatchNormalization"]
        self.dws8 = sum(1 for o in ops if o.opcode == "DEPTHWISE_CONV_2D" and len(o.nodes) > 1
                        and o.nodes[1].kind == "BatchNormalization" and o.output.shape[-1] % 8 == 0)
        self.hard_swish = sum(1 for n in graph.nodes
                              if n.kind == "Activation" and n.config.get("activation") == "hard_swish")
        self.transpose_convs = sum(1 for o in ops if o.opcode == "TRANSPOSE_CONV")
        self.means = sum(1 for n in graph.nodes if n.kind == "GlobalAveragePooling2D")
        self.users = Counter(id(t) for o in ops for t in o.inputs if t is not None and t.const)
        self.prelus = Counter(o.output.shape[-1] for o in ops if o.opcode == "PRELU")
        # pass 1: one zero bias per length, shared by every operator with a bias of that length
        self.bias_users = Counter(c for c in (self._float_bias(o) for o in ops) if c is not None)
        # numbered where each is used: a shared bias at its last user, the others at their first
        # (ties: the other constants first); the converter's own order is its constant folder's
        place: dict[Any, tuple[int, int]] = {}
        for i, o in enumerate(ops):
            for k, t in enumerate(o.inputs):
                key = self._pool_key(o, k, t)
                if key is not None and (key[0] == "bias" or key not in place):
                    place[key] = (i, key[0] == "bias")
        self.arith_number: dict[Any, int] = {key: n for n, key in enumerate(sorted(place, key=place.get))}

    def role(self, node: Any, role: str = "out") -> str:
        return self.names.roles[id(node)][role]

    def _scope(self, node: Any) -> str:
        return self.role(node).rsplit("/", 1)[0]

    def _main(self, first: Any) -> str:
        """The TensorFlow name of a convolution or matmul (a grouped convolution's op is its own)."""
        if first.kind == "Conv2D" and first.config.get("groups", 1) > 1:
            return "convolution"
        return self.role(first, "matmul" if first.kind == "Dense" else "conv")

    def _float_bias(self, op: Any) -> int | None:
        """The length of the operator's bias in the float model (None: none)."""
        if op.opcode in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            return op.output.shape[-1]
        if op.opcode == "FULLY_CONNECTED" and (op.nodes[0].config.get("use_bias") or any(
                n.kind == "BatchNormalization" for n in op.nodes[1:])):
            return op.output.shape[-1]
        return None

    def _own_bias(self, op: Any) -> bool:
        """A folded batch norm's bias of a length no other operator has: it keeps a name in pass 1."""
        c = self._float_bias(op)
        return (c is not None and self.bias_users[c] == 1 and not op.nodes[0].config.get("use_bias")
                and op.opcode != "FULLY_CONNECTED")

    def _pool_key(self, op: Any, k: int, t: Any) -> Any:
        """The pass-1 constant behind input ``k`` if the converter names it ``arith.constant<N>``."""
        if t is None or not t.const:
            return None
        if t.key is not None and t.key[0] == "bias":
            return None if self._own_bias(op) else ("bias", op.output.shape[-1])
        if op.opcode == "PRELU" and self.prelus[op.output.shape[-1]] == 1:
            return None  # an alpha of its own keeps the operator's name
        if op.opcode == "RESHAPE" and op.nodes[0].kind == "Add" and self.users[id(t)] == 1:
            return None
        if op.opcode == "MUL" and first_kind(op) == "BatchNormalization":
            return None  # a batch norm's scale: the Rsqrt constant it shares
        if op.opcode in ("PAD", "TRANSPOSE") and first_kind(op) in ("ZeroPadding2D", "Permute") \
                and self.users[id(t)] == 1:
            return None  # a constant of its own keeps its TensorFlow name
        if op.opcode in ("RESHAPE", "TRANSPOSE", "PRELU", "PAD", "MUL") and k == 1:
            return ("tensor", id(t))
        if op.opcode == "MEAN" and self.means > 1:
            return ("tensor", id(t))
        return None

    def _fused(self, op: Any, skip: tuple[str, ...]) -> tuple[list[str], list[str]]:
        """The names of what a weighted operator absorbed: its activations (the layers not
        in ``skip``) and its batch norms' ``mul_1``."""
        later = op.nodes[1:]
        return ([self.role(n) for n in later if n.kind not in skip],
                [self.role(n, "mul_1") for n in later if n.kind == "BatchNormalization"])

    def _rsqrt(self, op: Any) -> list[str]:
        c = op.output.shape[-1]
        if c % 8 == 0 and self.dws8 > 1 and op.opcode == "DEPTHWISE_CONV_2D":
            return []
        rsqrt = [self.role(b, "mul_1").rsplit("/", 1)[0] + "/Rsqrt" for b in self.bns if b.output.shape[-1] == c]
        return [min(rsqrt, key=lambda name: self.position.get(name, 1 << 30))] if rsqrt else []

    def output(self, op: Any, output_index: int | None) -> str:
        if output_index is not None:
            return "Identity" if output_index == 0 else f"Identity_{output_index}"
        nodes, first = op.nodes, op.nodes[0]
        if first.kind in _CONVS and op.opcode in _WEIGHTED:
            own = [self.role(first)] if first.config.get("activation") == "relu" else []
            acts, muls = self._fused(op, skip=("BatchNormalization", "ops.multiply_scalar"))
            if op.opcode == "FULLY_CONNECTED":
                parts = acts[::-1] + own + [self._main(first)] + muls
            elif op.opcode == "DEPTHWISE_CONV_2D":
                parts = acts[::-1] + own + muls[::-1] + [self._main(first)] + (self._rsqrt(op) if muls else [])
            else:
                parts = acts[::-1] + own + [self._main(first)]
            return ";".join(parts)
        scope = self._scope(first)
        if op.opcode == "HARD_SWISH" and first.kind == "Activation":
            if self.hard_swish == 1:  # its constants are its own: their names join in
                return ";".join(f"{scope}/{p}" for p in ("mul", "Const", "Relu6", "add", "truediv", "Const_1"))
            return ";".join(f"{scope}/{p}" for p in ("mul", "Relu6", "add", "truediv"))
        if op.opcode == "PRELU":
            return ";".join(f"{scope}/{p}" for p in ("add", "Relu", "Neg_1", "Relu_1", "mul"))
        if op.opcode == "MUL" and first.kind == "BatchNormalization":  # a batch norm no convolution took
            return ";".join([self.role(n) for n in nodes[1:]][::-1] + [self.role(first, "mul_1")])
        if op.opcode == "RESHAPE" and first.kind == "Add":  # the second of two [1, 1, 1, C] maps, squeezed
            return f"{scope}/Squeeze"
        fused = [self.role(n) for n in nodes[1:]][::-1]
        if op.opcode == "ADD" and op.inputs[1] is not None:
            source = self.producer.get(id(op.inputs[1]))
            if source is not None and source.opcode == "RESHAPE" and source.nodes[0] is first:
                return ";".join(fused + [f"{scope}/BiasAdd"])
        if len(nodes) > 1:
            return ";".join(fused + [self.role(first)])
        return op.anchor

    def constant(self, op: Any, k: int, t: Any, output_name: str) -> str:
        key = self._pool_key(op, k, t)
        if key is not None:
            number = self.arith_number[key]
            return ARITH if number == 0 else f"{ARITH}{number}"
        first = op.nodes[0]
        if t.key is not None and t.key[0] == "bias":  # a bias of its own: its convolution's name,
            return self._main(first) + ("" if op is self.ops[0] else "1")  # second but on the first operator
        if k == 1 and first.kind in _CONVS and op.opcode in _WEIGHTED:
            if op.opcode == "DEPTHWISE_CONV_2D":
                return output_name
            if op.opcode == "FULLY_CONNECTED":
                acts, muls = self._fused(op, skip=("BatchNormalization",))
                if muls:
                    return ";".join(acts[::-1] + muls)
                source = self.producer.get(id(op.inputs[0]))
                return self._main(first) + ("1" if source is not None and source.opcode == "MEAN" else "")
            return self._main(first) + ("1" if op is self.ops[0] and self._own_bias(op) else "")
        if op.opcode == "MEAN":
            return op.anchor + "/reduction_indices"
        if op.opcode == "MUL" and first.kind == "BatchNormalization":
            return (self._rsqrt(op) or [ARITH])[0]
        if op.opcode in ("PRELU", "RESHAPE"):
            return output_name
        inputs = [x for x in self.names.tf.inputs.get(op.anchor, []) if not x.startswith("^")]
        name = inputs[k] if k < len(inputs) else ARITH
        if op.opcode == "TRANSPOSE_CONV" and self.transpose_convs == 1:  # (seen on every file; why, not known)
            name += "1"
        return name


def first_kind(op: Any) -> str:
    return op.nodes[0].kind if op.nodes else ""


def unique(names: list[str]) -> list[str]:
    """``OpOrArgNameMapper``: a name already taken gets the next free count appended."""
    used: set[str] = set()
    count: Counter = Counter()
    out = []
    for name in names:
        if name not in used and count[name] == 0:
            count[name] = 1
            used.add(name)
            out.append(name)
            continue
        c = max(count[name], 1)
        while f"{name}{c}" in used:
            c += 1
        count[name] = c + 1
        used.add(f"{name}{c}")
        out.append(f"{name}{c}")
    return out


def _front(op: Any, k: int) -> bool:
    """A constant the converter lists before the others: one the graph states outright and
    no folding re-creates, it seems: a MEAN's axes, a zero padding's paddings, a Permute's
    permutation, the shape of a flatten, of a Reshape with no ``-1`` or of the squeeze of a
    ``[1, 1, 1, C]`` map, and a transposed convolution's output shape."""
    code, kind = op.opcode, first_kind(op)
    if code == "TRANSPOSE_CONV":
        return k == 0
    if k != 1:
        return False
    if code == "RESHAPE":
        return kind in ("Flatten", "Add") or (kind == "Reshape" and -1 not in op.nodes[0].config["target_shape"])
    return (code == "MEAN" or (code == "PAD" and kind == "ZeroPadding2D")
            or (code == "TRANSPOSE" and kind == "Permute"))


def constant_order(namer: _Namer) -> list:
    """The constants in the order the converter's file lists them (after the input, before
    the activations): first a few kinds (:func:`_front`) in the order of their first use;
    then the float model's other constants in the reverse order of their first use, each
    followed by the int8 copies it was split into (a bias shared by several operators in
    pass 1 is one tensor per operator in pass 2, quantised with each one's scale), those
    in order of use.  Found on the files of the committed networks (``benchmarks/lowering.py``)."""
    front: list = []
    groups: dict[Any, list] = {}
    seen: set[int] = set()
    for op in namer.ops:
        for k, t in enumerate(op.inputs):
            if t is None or not t.const or id(t) in seen:
                continue
            seen.add(id(t))
            if _front(op, k):
                front.append(t)
                continue
            key = namer._pool_key(op, k, t)
            groups.setdefault(("bias", key) if key is not None and key[0] == "bias" else id(t), []).append(t)
    return front + [t for group in reversed(groups.values()) for t in group]


def make_namer(ops: list, names: Any, position: dict[str, int], producer: dict[int, Any]) -> _Namer:
    return _Namer(ops, names, position, producer)


def tensor_names(tensors: list, ops: list, names: Any, position: dict[str, int], producer: dict[int, Any],
                 outputs: list, namer: _Namer | None = None) -> list[str]:
    """The name of every tensor of a lowered graph, in the order of ``tensors``."""
    namer = namer or _Namer(ops, names, position, producer)
    output_index = {id(t): k for k, t in enumerate(outputs)}
    base: dict[int, str] = {id(tensors[0]): "input_0"}
    for op in ops:
        out = namer.output(op, output_index.get(id(op.output)))
        base.setdefault(id(op.output), out)
        for k, t in enumerate(op.inputs):
            if t is not None and t.const and id(t) not in base:
                base[id(t)] = namer.constant(op, k, t, out)
    return unique([base.get(id(t), ARITH) for t in tensors])


def string_bytes(name: str) -> int:
    """What a flatbuffer string takes: its length, the bytes and a NUL, padded to 4."""
    return 4 + (len(name.encode()) + 1 + 3) // 4 * 4
