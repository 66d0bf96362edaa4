"""A stand-in for the part of Keras the search spaces build with: it records a graph.

The spaces' ``_build`` code takes the ``keras`` module as an argument; given an
instance of :class:`StandinKeras` instead, the same code runs in microseconds and
leaves a :class:`KerasGraph`: one :class:`Node` per layer call (or ``keras.ops``
call inside a custom layer), with static shapes, in the order the calls were made.
:mod:`._lower` turns that graph into the operators the TFLite converter would emit.

Anything the stand-in does not implement raises :class:`LoweringError`, so a
builder that uses more of Keras (a user's own space) is recognised and exported
the usual way instead.
"""
from __future__ import annotations

import functools
import math
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Iterator, Sequence

from search_spaces.errors import HwnasError


class LoweringError(HwnasError):
    """The lowering cannot reproduce this network: export it instead."""


@dataclass(eq=False)
class SymbolicTensor:
    shape: tuple[int, ...]
    node: "Node | None" = None  # None: a model input

    @property
    def dtype(self) -> str:
        return "float32"

    def __repr__(self) -> str:
        return f"<tensor {self.shape}>"


@dataclass(eq=False)
class Node:
    kind: str  # "Conv2D", "Dense", ..., or "ops.reshape" for a keras.ops call
    config: dict[str, Any]
    inputs: list[SymbolicTensor]
    output: SymbolicTensor | None = None
    order: int = 0
    layer: Any = None  # the layer object called (a keras.ops call: the custom layer it runs in)
    layer_name: str = ""  # its Keras name ("conv2d_3", "logits")
    layer_kind: str = "layer"  # "layer", or "ops" for a keras.ops call inside a custom layer

    def __repr__(self) -> str:
        return f"<{self.kind} #{self.order} {[t.shape for t in self.inputs]} -> {self.output.shape if self.output else None}>"


@dataclass
class KerasGraph:
    nodes: list[Node] = field(default_factory=list)
    inputs: list[SymbolicTensor] = field(default_factory=list)
    outputs: list[SymbolicTensor] = field(default_factory=list)
    model_name: str = "model"

    uids: dict[str, int] = field(default_factory=dict)  # Keras' auto-name counters (object_name_uids)
    layer_stack: list = field(default_factory=list)  # the custom layers whose call is running

    def auto_name(self, prefix: str) -> str:
        """Keras 3's ``auto_name``: ``prefix``, ``prefix_1``, ``prefix_2``, ..."""
        n = self.uids.get(prefix, 0)
        self.uids[prefix] = n + 1
        return prefix if n == 0 else f"{prefix}_{n}"

    def record(self, kind: str, config: dict, inputs: list[SymbolicTensor], shape: tuple[int, ...],
               layer: Any = None) -> SymbolicTensor:
        for t in inputs:
            if not isinstance(t, SymbolicTensor):
                raise LoweringError(f"{kind}: input {t!r} is not a tensor of this graph")
        node = Node(kind, config, list(inputs), order=len(self.nodes))
        if layer is None:
            if not self.layer_stack:
                raise LoweringError(f"keras.ops call ({kind}) outside a layer: not supported by the lowering")
            node.layer, node.layer_kind = self.layer_stack[-1], "ops"
        else:
            node.layer = layer
        node.layer_name = node.layer.name
        node.output = SymbolicTensor(tuple(int(d) for d in shape), node)
        self.nodes.append(node)
        return node.output


def _pair(value: Any, name: str) -> tuple[int, int]:
    if isinstance(value, int):
        return (value, value)
    if isinstance(value, (tuple, list)) and len(value) == 2 and all(isinstance(v, int) for v in value):
        return (int(value[0]), int(value[1]))
    raise LoweringError(f"{name} {value!r}: the lowering takes an int or a pair of ints")


def _conv_size(size: int, kernel: int, stride: int, padding: str, dilation: int = 1) -> int:
    if padding == "same":
        return -(-size // stride)
    if padding == "valid":
        return (size - dilation * (kernel - 1) - 1) // stride + 1
    raise LoweringError(f"padding {padding!r}: the lowering takes 'same' or 'valid'")


def _broadcast(shapes: Sequence[tuple[int, ...]]) -> tuple[int, ...]:
    rank = max(len(s) for s in shapes)
    out = []
    for i in range(rank):
        dims = {s[i - rank + len(s)] for s in shapes if i - rank + len(s) >= 0} - {1}
        if len(dims) > 1:
            raise LoweringError(f"shapes {list(shapes)} do not broadcast")
        out.append(dims.pop() if dims else 1)
    return tuple(out)


def _resolve(shape: Sequence[int], elements: int, what: str) -> tuple[int, ...]:
    shape = [int(d) for d in shape]
    if shape.count(-1) > 1:
        raise LoweringError(f"{what}: more than one -1 in {shape}")
    known = math.prod(d for d in shape if d != -1)
    if -1 in shape:
        if known == 0 or elements % known:
            raise LoweringError(f"{what}: cannot reshape {elements} values to {shape}")
        shape[shape.index(-1)] = elements // known
    if math.prod(shape) != elements:
        raise LoweringError(f"{what}: cannot reshape {elements} values to {shape}")
    return tuple(shape)


_CURRENT = threading.local()


def _graph() -> KerasGraph:
    graph = getattr(_CURRENT, "graph", None)
    if graph is None:
        raise LoweringError("the Keras stand-in is used outside lowering.recording()")
    return graph


@contextmanager
def recording() -> Iterator[KerasGraph]:
    """Records what the stand-in builds (in this thread) into a new graph."""
    previous = getattr(_CURRENT, "graph", None)
    _CURRENT.graph = KerasGraph()
    try:
        yield _CURRENT.graph
    finally:
        _CURRENT.graph = previous


class _Layer:
    """Base of the stand-in layers: ``layer(x)`` records a node and returns its output."""

    kind = "Layer"

    def __init__(self, **kwargs):
        unknown = set(kwargs) - set(self._accepts)
        if unknown:
            raise LoweringError(f"{self.kind}({', '.join(sorted(unknown))}=...): not supported by the lowering")
        self.config = kwargs
        self.name = kwargs.get("name") or _graph().auto_name(_snake_case(type(self).__name__))

    _accepts: tuple[str, ...] = ("name",)

    def __call__(self, x):
        inputs = list(x) if isinstance(x, (list, tuple)) else [x]
        for t in inputs:
            if not isinstance(t, SymbolicTensor):
                raise LoweringError(f"{self.kind}: input {t!r} is not a tensor of this graph")
        return _graph().record(self.kind, dict(self.config), inputs, self.output_shape([t.shape for t in inputs]),
                               layer=self)

    def output_shape(self, shapes: list[tuple[int, ...]]) -> tuple[int, ...]:
        raise NotImplementedError


def _layer_classes() -> dict[str, type]:
    """The stand-in layer classes."""

    class Base(_Layer):
        pass

    class Conv2D(Base):
        kind = "Conv2D"
        _accepts = ("name", "strides", "padding", "use_bias", "groups", "activation", "dilation_rate")

        def __init__(self, filters, kernel_size, **kwargs):
            super().__init__(**kwargs)
            self.config.update(filters=int(filters), kernel_size=_pair(kernel_size, "kernel_size"))
            self.config["strides"] = _pair(kwargs.get("strides", 1), "strides")
            self.config.setdefault("padding", "valid")
            self.config.setdefault("use_bias", True)
            self.config.setdefault("groups", 1)
            self.config.setdefault("activation", None)
            if _pair(kwargs.get("dilation_rate", 1), "dilation_rate") != (1, 1):
                raise LoweringError("Conv2D(dilation_rate != 1): not supported by the lowering")

        def output_shape(self, shapes):
            (b, h, w, c), = shapes
            if c % self.config["groups"]:
                raise LoweringError(f"Conv2D: {c} channels in {self.config['groups']} groups")
            (kh, kw), (sh, sw) = self.config["kernel_size"], self.config["strides"]
            pad = self.config["padding"]
            return (b, _conv_size(h, kh, sh, pad), _conv_size(w, kw, sw, pad), self.config["filters"])

    class DepthwiseConv2D(Base):
        kind = "DepthwiseConv2D"
        _accepts = ("name", "strides", "padding", "use_bias", "activation", "depth_multiplier")

        def __init__(self, kernel_size, **kwargs):
            super().__init__(**kwargs)
            self.config["kernel_size"] = _pair(kernel_size, "kernel_size")
            self.config["strides"] = _pair(kwargs.get("strides", 1), "strides")
            self.config.setdefault("padding", "valid")
            self.config.setdefault("use_bias", True)
            self.config.setdefault("activation", None)
            if kwargs.get("depth_multiplier", 1) != 1:
                raise LoweringError("DepthwiseConv2D(depth_multiplier != 1): not supported by the lowering")

        def output_shape(self, shapes):
            (b, h, w, c), = shapes
            (kh, kw), (sh, sw) = self.config["kernel_size"], self.config["strides"]
            pad = self.config["padding"]
            return (b, _conv_size(h, kh, sh, pad), _conv_size(w, kw, sw, pad), c)

    class Conv2DTranspose(Base):
        kind = "Conv2DTranspose"
        _accepts = ("name", "strides", "padding", "use_bias", "activation")

        def __init__(self, filters, kernel_size, **kwargs):
            super().__init__(**kwargs)
            self.config.update(filters=int(filters), kernel_size=_pair(kernel_size, "kernel_size"))
            self.config["strides"] = _pair(kwargs.get("strides", 1), "strides")
            self.config.setdefault("padding", "valid")
            self.config.setdefault("use_bias", True)
            self.config.setdefault("activation", None)
            if self.config["padding"] != "same":
                raise LoweringError("Conv2DTranspose(padding='valid'): not supported by the lowering")

        def output_shape(self, shapes):
            (b, h, w, _), = shapes
            sh, sw = self.config["strides"]
            return (b, h * sh, w * sw, self.config["filters"])

    class Dense(Base):
        kind = "Dense"
        _accepts = ("name", "activation", "use_bias")

        def __init__(self, units, **kwargs):
            super().__init__(**kwargs)
            self.config["units"] = int(units)
            self.config.setdefault("activation", None)
            self.config.setdefault("use_bias", True)

        def output_shape(self, shapes):
            (shape,) = shapes
            if len(shape) != 2:
                raise LoweringError(f"Dense on a rank-{len(shape)} input: not supported by the lowering")
            return (*shape[:-1], self.config["units"])

    class Same(Base):
        def output_shape(self, shapes):
            return shapes[0]

    class BatchNormalization(Same):
        kind = "BatchNormalization"
        _accepts = ("name", "epsilon", "momentum", "axis")

    class ReLU(Same):
        kind = "ReLU"
        _accepts = ("name", "max_value")

        def __init__(self, max_value=None, **kwargs):
            super().__init__(**kwargs)
            self.config["max_value"] = None if max_value is None else float(max_value)
            if self.config["max_value"] not in (None, 6.0):
                raise LoweringError(f"ReLU(max_value={max_value}): not supported by the lowering")

    class Activation(Same):
        kind = "Activation"

        def __init__(self, activation, **kwargs):
            super().__init__(**kwargs)
            if activation not in ("relu", "relu6", "hard_swish", "swish", "sigmoid", "linear"):
                raise LoweringError(f"Activation({activation!r}): not supported by the lowering")
            self.config["activation"] = activation

    class PReLU(Same):
        kind = "PReLU"
        _accepts = ("name", "shared_axes")

        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            if list(kwargs.get("shared_axes") or []) != [1, 2]:
                raise LoweringError("PReLU without shared_axes=[1, 2]: not supported by the lowering")

    class Merge(Base):
        def output_shape(self, shapes):
            if len(shapes) < 2:
                raise LoweringError(f"{self.kind} of {len(shapes)} tensor(s)")
            return _broadcast(shapes)

    class Add(Merge):
        kind = "Add"

    class Multiply(Merge):
        kind = "Multiply"

    class Concatenate(Base):
        kind = "Concatenate"
        _accepts = ("name", "axis")

        def output_shape(self, shapes):
            rank = len(shapes[0])
            axis = self.config.get("axis", -1) % rank
            if any(len(s) != rank or any(a != b for i, (a, b) in enumerate(zip(s, shapes[0])) if i != axis)
                   for s in shapes):
                raise LoweringError(f"Concatenate: shapes {shapes} do not match off axis {axis}")
            out = list(shapes[0])
            out[axis] = sum(s[axis] for s in shapes)
            return tuple(out)

    class GlobalAveragePooling2D(Base):
        kind = "GlobalAveragePooling2D"
        _accepts = ("name", "keepdims")

        def output_shape(self, shapes):
            (b, _, _, c), = shapes
            return (b, 1, 1, c) if self.config.get("keepdims") else (b, c)

    class Pooling2D(Base):
        _accepts = ("name", "strides", "padding")

        def __init__(self, pool_size=2, strides=None, padding="valid", **kwargs):
            super().__init__(**kwargs)
            self.config.update(pool_size=_pair(pool_size, "pool_size"), padding=padding,
                               strides=_pair(strides if strides is not None else pool_size, "strides"))

        def output_shape(self, shapes):
            (b, h, w, c), = shapes
            (kh, kw), (sh, sw) = self.config["pool_size"], self.config["strides"]
            pad = self.config["padding"]
            return (b, _conv_size(h, kh, sh, pad), _conv_size(w, kw, sw, pad), c)

    class MaxPooling2D(Pooling2D):
        kind = "MaxPooling2D"

    class AveragePooling2D(Pooling2D):
        kind = "AveragePooling2D"

    class ZeroPadding2D(Base):
        kind = "ZeroPadding2D"

        def __init__(self, padding=1, **kwargs):
            super().__init__(**kwargs)
            if isinstance(padding, int):
                pads = ((padding, padding), (padding, padding))
            elif isinstance(padding, (tuple, list)) and len(padding) == 2 and all(isinstance(p, int) for p in padding):
                pads = ((padding[0], padding[0]), (padding[1], padding[1]))
            elif isinstance(padding, (tuple, list)) and len(padding) == 2:
                pads = (tuple(padding[0]), tuple(padding[1]))
            else:
                raise LoweringError(f"ZeroPadding2D(padding={padding!r}): not supported by the lowering")
            self.config["padding"] = tuple(tuple(int(v) for v in p) for p in pads)

        def output_shape(self, shapes):
            (b, h, w, c), = shapes
            (t, bo), (le, r) = self.config["padding"]
            return (b, h + t + bo, w + le + r, c)

    class Reshape(Base):
        kind = "Reshape"

        def __init__(self, target_shape, **kwargs):
            super().__init__(**kwargs)
            self.config["target_shape"] = tuple(int(d) for d in target_shape)

        def output_shape(self, shapes):
            (shape,) = shapes
            rest = _resolve(self.config["target_shape"], math.prod(shape[1:]), "Reshape")
            return (shape[0], *rest)

    class Flatten(Base):
        kind = "Flatten"

        def output_shape(self, shapes):
            (shape,) = shapes
            return (shape[0], math.prod(shape[1:]))

    class Permute(Base):
        kind = "Permute"

        def __init__(self, dims, **kwargs):
            super().__init__(**kwargs)
            self.config["dims"] = tuple(int(d) for d in dims)

        def output_shape(self, shapes):
            (shape,) = shapes
            if sorted(self.config["dims"]) != list(range(1, len(shape))):
                raise LoweringError(f"Permute{self.config['dims']} of a rank-{len(shape)} tensor")
            return (shape[0], *(shape[d] for d in self.config["dims"]))

    class Layer(Base):
        """Base for a space's custom layers: ``call`` runs on the stand-in's ``keras.ops``."""

        kind = "Layer"

        def __init__(self, **kwargs):
            self.config = {k: v for k, v in kwargs.items() if k == "name"}
            self.name = kwargs.get("name") or _graph().auto_name(_snake_case(type(self).__name__))

        def __call__(self, x):
            if not isinstance(x, SymbolicTensor):
                raise LoweringError(f"{type(self).__name__}: one tensor input expected")
            graph = _graph()
            graph.layer_stack.append(self)
            try:
                return self.call(x)
            finally:
                graph.layer_stack.pop()

        def call(self, x):  # pragma: no cover - subclasses define it
            raise LoweringError(f"{type(self).__name__}.call is missing")

    return {cls.__name__: cls for cls in (
        Conv2D, DepthwiseConv2D, Conv2DTranspose, Dense, BatchNormalization, ReLU, Activation, PReLU, Add,
        Multiply, Concatenate, GlobalAveragePooling2D, MaxPooling2D, AveragePooling2D, ZeroPadding2D, Reshape,
        Flatten, Permute, Layer,
    )}


def _ops_call(kind: str, op_name: str, config: dict, inputs: list, shape: tuple[int, ...]) -> SymbolicTensor:
    # (Keras infers a custom layer's output shape by running call() on TensorFlow
    # placeholders, where keras.ops calls name no Keras operation: no name is taken)
    return _graph().record(kind, config, inputs, shape)


@functools.lru_cache(maxsize=None)
def _snake_case(name: str) -> str:
    import re

    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


class _Namespace:
    def __init__(self, owner: str, members: dict[str, Any]):
        self._owner = owner
        self.__dict__.update(members)

    def __getattr__(self, name: str):
        raise LoweringError(f"keras.{self._owner}.{name}: not supported by the lowering; export the model instead")


class StandinKeras:
    """What the search spaces use of the ``keras`` module; it records into the graph of
    the enclosing :func:`recording`.  One instance, :data:`STANDIN`, serves every build
    (the spaces cache their custom layer classes per ``keras`` module)."""

    def __init__(self):
        self.layers = _Namespace("layers", _layer_classes())

        def reshape(x, new_shape):
            if not isinstance(x, SymbolicTensor):
                raise LoweringError("keras.ops.reshape of a non-tensor")
            shape = _resolve(new_shape, math.prod(x.shape), "keras.ops.reshape")
            return _ops_call("ops.reshape", "reshape", {"shape": shape}, [x], shape)

        def transpose(x, axes):
            axes = tuple(int(a) for a in axes)
            if sorted(axes) != list(range(len(x.shape))):
                raise LoweringError(f"keras.ops.transpose{axes} of a rank-{len(x.shape)} tensor")
            return _ops_call("ops.transpose", "transpose", {"axes": axes}, [x], tuple(x.shape[a] for a in axes))

        def multiply(x, y):
            if isinstance(y, (int, float)) and isinstance(x, SymbolicTensor):
                return _ops_call("ops.multiply_scalar", "multiply", {"value": float(y)}, [x], x.shape)
            if isinstance(x, SymbolicTensor) and isinstance(y, SymbolicTensor):
                return _ops_call("Multiply", "multiply", {}, [x, y], _broadcast([x.shape, y.shape]))
            raise LoweringError("keras.ops.multiply: tensors or a tensor and a number")

        self.ops = _Namespace("ops", {"reshape": reshape, "transpose": transpose, "multiply": multiply})
        self.utils = _Namespace("utils", {"set_random_seed": lambda seed: None})
        self.backend = _Namespace("backend", {"clear_session": lambda: None})

    def Input(self, shape, batch_size=None, name=None):  # noqa: N802 - Keras' name
        if batch_size is None:
            raise LoweringError("the lowering needs a static batch size")
        tensor = SymbolicTensor((int(batch_size), *(int(d) for d in shape)))
        _graph().inputs.append(tensor)
        return tensor

    def Model(self, inputs, outputs, name=None):  # noqa: N802 - Keras' name
        outs = list(outputs) if isinstance(outputs, (list, tuple)) else [outputs]
        for t in outs:
            if not isinstance(t, SymbolicTensor):
                raise LoweringError(f"model output {t!r} is not a tensor of this graph")
        graph = _graph()
        graph.outputs = outs
        graph.model_name = name or "functional"
        return graph

    def __getattr__(self, name: str):
        raise LoweringError(f"keras.{name}: not supported by the lowering; export the model instead")


STANDIN = StandinKeras()
