"""Read and validate TFLite flatbuffers before any native code sees them.

The TFLite converter, Vela and the LiteRT interpreter are native code that can crash
the whole process on a malformed file.  Every path into them goes through
:func:`load_model`, which reads the bytes, checks the flatbuffer's structure with
bounds checks on every offset and vector length (so a corrupt length cannot make us
loop for ever), and returns a small summary of what it found.

The ``tflite`` package's schema lags one opcode behind the converter; an operator's
code is ``max(builtin_code, deprecated_builtin_code)`` as the schema itself prescribes.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Union

from search_spaces.errors import InvalidModelError

ModelSource = Union[str, os.PathLike, bytes, bytearray, memoryview]

TFLITE_IDENTIFIER = b"TFL3"
CUSTOM_CODE = 32
# Tensor types that carry quantised integer activations (what Vela accepts).
QUANTIZED_TYPES = frozenset({"INT8", "UINT8", "INT16"})
# Operators that only move data between float and integer domains.
CONVERSION_OPS = frozenset({"QUANTIZE", "DEQUANTIZE"})


@lru_cache(maxsize=1)
def builtin_operator_names() -> dict[int, str]:
    """Builtin operator code -> name, from the ``tflite`` package's schema."""
    import tflite

    return {
        value: name
        for name, value in vars(tflite.BuiltinOperator).items()
        if not name.startswith("_") and isinstance(value, int)
    }


@lru_cache(maxsize=1)
def tensor_type_names() -> dict[int, str]:
    import tflite

    return {
        value: name
        for name, value in vars(tflite.TensorType).items()
        if not name.startswith("_") and isinstance(value, int)
    }


# Bytes per element of each TFLite tensor type (INT4 packs two per byte).
TYPE_BYTES = {
    "FLOAT32": 4.0, "FLOAT16": 2.0, "INT32": 4.0, "UINT8": 1.0, "INT64": 8.0, "STRING": 1.0,
    "BOOL": 1.0, "INT16": 2.0, "COMPLEX64": 8.0, "INT8": 1.0, "FLOAT64": 8.0, "COMPLEX128": 16.0,
    "UINT64": 8.0, "RESOURCE": 0.0, "VARIANT": 0.0, "UINT32": 4.0, "UINT16": 2.0, "INT4": 0.5,
    "BFLOAT16": 2.0, "INT2": 0.25,
}
# Option fields that name other subgraphs (control flow, StableHLO regions).
SUBGRAPH_FIELDS = frozenset({
    "BodySubgraphIndex", "CondSubgraphIndex", "ThenSubgraphIndex", "ElseSubgraphIndex",
    "InitSubgraphIndex", "DecompositionSubgraphIndex", "ComparatorSubgraphIndex",
    "UpdateComputationSubgraphIndex", "Subgraph",
})


@dataclass(frozen=True)
class TensorInfo:
    index: int
    name: str
    dtype: str
    shape: tuple[int, ...]
    buffer: int
    is_constant: bool
    quantized: bool
    shape_signature: tuple[int, ...] = ()
    per_channel: bool = False
    is_variable: bool = False

    @property
    def is_dynamic(self) -> bool:
        return any(d < 0 for d in self.shape_signature) or any(d < 0 for d in self.shape)

    @property
    def num_elements(self) -> int:
        n = 1
        for d in self.shape:
            n *= max(int(d), 1)
        return n

    @property
    def nbytes(self) -> float:
        return self.num_elements * TYPE_BYTES.get(self.dtype, 4.0)


@dataclass(frozen=True)
class OperatorInfo:
    index: int
    opcode: str
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    code: int = -1
    options: dict = field(default_factory=dict, compare=False, hash=False)
    called_subgraphs: tuple[int, ...] = ()


@dataclass
class SubgraphInfo:
    operators: list[OperatorInfo] = field(default_factory=list)
    tensors: list[TensorInfo] = field(default_factory=list)
    inputs: tuple[int, ...] = ()
    outputs: tuple[int, ...] = ()


@dataclass
class ModelInfo:
    """What a validated flatbuffer contains; ``operators``/``tensors``/... are subgraph 0's."""

    size_bytes: int
    num_subgraphs: int
    subgraphs: list[SubgraphInfo] = field(default_factory=list)

    @property
    def operators(self) -> list[OperatorInfo]:
        return self.subgraphs[0].operators

    @property
    def tensors(self) -> list[TensorInfo]:
        return self.subgraphs[0].tensors

    @property
    def inputs(self) -> tuple[int, ...]:
        return self.subgraphs[0].inputs

    @property
    def outputs(self) -> tuple[int, ...]:
        return self.subgraphs[0].outputs

    @property
    def operators_per_subgraph(self) -> tuple[int, ...]:
        return tuple(len(sg.operators) for sg in self.subgraphs)

    @property
    def opcodes(self) -> list[str]:
        return [op.opcode for op in self.operators]

    @property
    def is_integer_quantized(self) -> bool:
        """True if some compute operator (not QUANTIZE/DEQUANTIZE) runs on int8/int16 data."""
        for op in self.operators:
            if op.opcode in CONVERSION_OPS:
                continue
            for t in op.inputs + op.outputs:
                if t >= 0 and self.tensors[t].dtype in QUANTIZED_TYPES and not self.tensors[t].is_constant:
                    return True
        return False


def read_model_bytes(source: ModelSource) -> bytes:
    """Returns the bytes of a model given as a path or as bytes.

    Raises:
        InvalidModelError: the file is missing, unreadable or empty.
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        label = "model bytes"
    else:
        path = Path(source)
        label = str(path)
        if not path.exists():
            raise InvalidModelError(f"{path}: no such file")
        if path.is_dir():
            raise InvalidModelError(f"{path}: is a directory, not a .tflite file")
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise InvalidModelError(f"{path}: cannot read ({exc.strerror})") from exc
    if not data:
        raise InvalidModelError(f"{label}: empty file, not a TFLite model")
    return data


def load_model(source: ModelSource, with_options: bool = False) -> tuple[bytes, ModelInfo]:
    """Reads and validates a TFLite model; returns its bytes and a summary.

    Raises:
        InvalidModelError: missing, empty, truncated, corrupt or non-TFLite input.
    """
    data = read_model_bytes(source)
    label = "model bytes" if isinstance(source, (bytes, bytearray, memoryview)) else str(source)
    return data, inspect_model(data, label=label, with_options=with_options)


def inspect_model(data: bytes, label: str = "model bytes", with_options: bool = False) -> ModelInfo:
    """Validates ``data`` as a TFLite flatbuffer and summarises it.

    Args:
        data: the flatbuffer.
        label: how error messages name the input (a path).
        with_options: also read every operator's builtin options (the graph features).
    """
    if len(data) < 8 or data[4:8] != TFLITE_IDENTIFIER:
        raise InvalidModelError(
            f"{label}: not a TFLite flatbuffer (missing the 'TFL3' identifier; "
            f"got {bytes(data[4:8])!r})"
        )
    try:
        return _walk(data, with_options)
    except InvalidModelError as exc:
        raise InvalidModelError(f"{label}: {exc}") from None
    except Exception as exc:  # flatbuffers raises IndexError, struct.error, ValueError, ...
        raise InvalidModelError(
            f"{label}: corrupt or truncated TFLite flatbuffer (an offset or length points outside the file)"
        ) from None


def _check_len(n: int, data_len: int, what: str, elem_bytes: int = 1) -> int:
    if n < 0 or n * elem_bytes > data_len:
        raise InvalidModelError(f"corrupt TFLite flatbuffer ({what} claims {n} entries)")
    return n


def _walk(data: bytes, with_options: bool) -> ModelInfo:
    import tflite

    size = len(data)
    root = int.from_bytes(data[0:4], "little")
    if root + 4 > size:
        raise InvalidModelError("corrupt or truncated TFLite flatbuffer (root offset out of range)")
    model = tflite.Model.GetRootAsModel(data, 0)
    names = builtin_operator_names()
    tnames = tensor_type_names()

    n_codes = _check_len(model.OperatorCodesLength(), size, "operator_codes", 4)
    opcodes, codes = [], []
    for i in range(n_codes):
        oc = model.OperatorCodes(i)
        code = max(oc.BuiltinCode(), oc.DeprecatedBuiltinCode())
        codes.append(code)
        if code == CUSTOM_CODE:
            custom = oc.CustomCode()
            opcodes.append("CUSTOM:" + custom.decode("utf-8", "replace") if custom else "CUSTOM")
        else:
            opcodes.append(names.get(code, f"BUILTIN_{code}"))

    n_buffers = _check_len(model.BuffersLength(), size, "buffers", 4)
    buffer_has_data = []
    for i in range(n_buffers):
        buf = model.Buffers(i)
        length = buf.DataLength()
        _check_len(length, size, f"buffer {i}")
        offset, extern = buf.Offset(), buf.Size()
        if offset > 1 and offset + extern > size:
            raise InvalidModelError(f"corrupt TFLite flatbuffer (buffer {i} points past the end of the file)")
        buffer_has_data.append(length > 0 or (offset > 1 and extern > 0))

    n_sub = _check_len(model.SubgraphsLength(), size, "subgraphs", 4)
    if n_sub == 0:
        raise InvalidModelError("TFLite model has no subgraphs")
    info = ModelInfo(size_bytes=size, num_subgraphs=n_sub)
    for s in range(n_sub):
        sg = model.Subgraphs(s)
        n_tensors = _check_len(sg.TensorsLength(), size, "tensors", 4)
        tensors = []
        for t in range(n_tensors):
            tensor = sg.Tensors(t)
            shape_len = _check_len(tensor.ShapeLength(), size, "tensor shape", 4)
            shape = tuple(int(d) for d in tensor.ShapeAsNumpy()) if shape_len else ()
            b = tensor.Buffer()
            if b >= max(n_buffers, 1) and b != 0:
                raise InvalidModelError(f"corrupt TFLite flatbuffer (tensor {t} names buffer {b} of {n_buffers})")
            sig_len = _check_len(tensor.ShapeSignatureLength(), size, "tensor shape signature", 4)
            signature = tuple(int(d) for d in tensor.ShapeSignatureAsNumpy()) if sig_len else ()
            q = tensor.Quantization()
            scales = _check_len(q.ScaleLength(), size, "quantisation scales", 4) if q is not None else 0
            dtype = tnames.get(tensor.Type(), f"TYPE_{tensor.Type()}")
            name = tensor.Name()
            tensors.append(
                TensorInfo(
                    index=t,
                    name=name.decode("utf-8", "replace") if name else "",
                    dtype=dtype,
                    shape=shape,
                    buffer=b,
                    is_constant=bool(b < n_buffers and buffer_has_data[b]),
                    quantized=scales > 0,
                    shape_signature=signature,
                    per_channel=scales > 1,
                    is_variable=bool(tensor.IsVariable()),
                )
            )
        n_ops = _check_len(sg.OperatorsLength(), size, "operators", 4)
        operators = []
        for o in range(n_ops):
            op = sg.Operators(o)
            idx = op.OpcodeIndex()
            if idx >= n_codes:
                raise InvalidModelError(f"corrupt TFLite flatbuffer (operator {o} uses opcode {idx} of {n_codes})")
            ins = _indices(op.InputsAsNumpy() if op.InputsLength() else (), n_tensors, o, size)
            outs = _indices(op.OutputsAsNumpy() if op.OutputsLength() else (), n_tensors, o, size)
            options = _options(op) if with_options else {}
            called = tuple(
                int(v) for k, v in options.items() if k in SUBGRAPH_FIELDS and 0 <= int(v) < n_sub
            )
            operators.append(
                OperatorInfo(
                    index=o, opcode=opcodes[idx], inputs=ins, outputs=outs, code=codes[idx],
                    options=options, called_subgraphs=called,
                )
            )
        sg_inputs = _indices(sg.InputsAsNumpy() if sg.InputsLength() else (), n_tensors, -1, size)
        sg_outputs = _indices(sg.OutputsAsNumpy() if sg.OutputsLength() else (), n_tensors, -1, size)
        info.subgraphs.append(SubgraphInfo(operators, tensors, sg_inputs, sg_outputs))
    if sum(info.operators_per_subgraph) == 0:
        raise InvalidModelError("TFLite model has no operators")
    return info


@lru_cache(maxsize=None)
def _option_readers(union: str, type_code: int) -> tuple[type | None, tuple[str, ...]]:
    """The options class of a union member and its numeric scalar accessors."""
    import inspect

    import tflite

    enum = getattr(tflite, union)
    name = next((k for k, v in vars(enum).items() if v == type_code and not k.startswith("_")), None)
    cls = getattr(tflite, name, None) if name and name != "NONE" else None
    if cls is None:
        return None, ()
    fields = []
    for attr, fn in vars(cls).items():
        if attr.startswith("_") or attr == "Init" or attr.startswith("GetRootAs") or not callable(fn):
            continue
        if attr.endswith(("AsNumpy", "Length", "IsNone", "BufferHasIdentifier")):
            continue
        try:
            if len(inspect.signature(fn).parameters) != 1:
                continue
            source = inspect.getsource(fn)
        except (TypeError, ValueError, OSError):
            continue
        if "String(" in source or "Indirect(" in source or "Table()" in source:
            continue  # strings and sub-tables: not numeric features
        fields.append(attr)
    return cls, tuple(sorted(fields))


def _options(op) -> dict[str, float]:
    """Every numeric scalar field of an operator's builtin options (both unions)."""
    values: dict[str, float] = {}
    for union, type_of, table_of in (
        ("BuiltinOptions", op.BuiltinOptionsType, op.BuiltinOptions),
        ("BuiltinOptions2", op.BuiltinOptions2Type, op.BuiltinOptions2),
    ):
        type_code = type_of()
        if not type_code:
            continue
        cls, fields = _option_readers(union, int(type_code))
        table = table_of()
        if cls is None or table is None:
            continue
        options = cls()
        options.Init(table.Bytes, table.Pos)
        for name in fields:
            values[name] = float(getattr(options, name)())
    return values


def _indices(values, n_tensors: int, op: int, size: int) -> tuple[int, ...]:
    _check_len(len(values), size, "operator inputs/outputs", 4)
    out = tuple(int(v) for v in values)
    for v in out:
        if v < -1 or v >= n_tensors:
            where = f"operator {op}" if op >= 0 else "subgraph"
            raise InvalidModelError(f"corrupt TFLite flatbuffer ({where} names tensor {v} of {n_tensors})")
    return out
