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
import struct
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from math import prod
from pathlib import Path
from typing import Union

from search_spaces.errors import InvalidModelError

ModelSource = Union[str, os.PathLike, bytes, bytearray, memoryview]

TFLITE_IDENTIFIER = b"TFL3"
CUSTOM_CODE = 32
MAX_ELEMENTS = 2**62
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


# Plain (not frozen) dataclasses: a frozen one's __init__ costs 5x more, and a large
# model has thousands of tensors to read on every prediction.  Treat them as read-only.
@dataclass
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

    @cached_property
    def is_dynamic(self) -> bool:
        return any(d < 0 for d in self.shape_signature) or any(d < 0 for d in self.shape)

    @cached_property
    def num_elements(self) -> int:
        n = 1
        for d in self.shape:
            n = min(n * max(int(d), 1), MAX_ELEMENTS)  # a corrupt shape must not overflow floats
        return n

    @cached_property
    def nbytes(self) -> float:
        return self.num_elements * TYPE_BYTES.get(self.dtype, 4.0)


@dataclass
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
    buffer_bytes: list[int] = field(default_factory=list)  # stored bytes of each buffer (sparse: the packed size)
    # where subgraph 0's shapes come from: "" (the file: every shape static), "run time"
    # (LiteRT's after one inference, graph.model_arrays) or "placeholders: <why not>"
    shapes_from: str = ""

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
    except Exception:  # flatbuffers raises IndexError, struct.error, ValueError, ...
        raise InvalidModelError(
            f"{label}: corrupt or truncated TFLite flatbuffer (an offset or length points outside the file)"
        ) from None


_U8 = struct.Struct("<B").unpack_from
_I8 = struct.Struct("<b").unpack_from
_U16 = struct.Struct("<H").unpack_from
_I32 = struct.Struct("<i").unpack_from
_U32 = struct.Struct("<I").unpack_from
_U64 = struct.Struct("<Q").unpack_from


class _Flatbuffer:
    """A minimal, bounds-checked flatbuffer table reader (the TFLite schema's slots).

    The generic ``flatbuffers`` accessors cost a dozen Python calls per field; this
    reads the few fields we need with one ``struct`` call each, about 5x faster, and
    checks every position against the buffer (``struct`` itself rejects reads past
    the end; negative positions are refused here).
    """

    __slots__ = ("buf", "size")

    def __init__(self, buf: bytes):
        self.buf, self.size = buf, len(buf)

    def table(self, pos: int) -> tuple[int, int, int]:
        if pos < 0 or pos + 4 > self.size:
            raise InvalidModelError("corrupt TFLite flatbuffer (table out of range)")
        vt = pos - _I32(self.buf, pos)[0]
        if vt < 0 or vt + 4 > self.size:
            raise InvalidModelError("corrupt TFLite flatbuffer (vtable out of range)")
        return pos, vt, _U16(self.buf, vt)[0]

    def field(self, table: tuple[int, int, int], voffset: int) -> int:
        """Absolute position of a field, or 0 when absent."""
        pos, vt, vt_len = table
        if voffset + 2 > vt_len:
            return 0
        off = _U16(self.buf, vt + voffset)[0]
        return pos + off if off else 0

    def scalar(self, table, voffset: int, unpack, default=0):
        at = self.field(table, voffset)
        return unpack(self.buf, at)[0] if at else default

    def ref(self, table, voffset: int) -> int:
        """Position of a referenced table/vector/string, or 0 when absent."""
        at = self.field(table, voffset)
        return at + _U32(self.buf, at)[0] if at else 0

    def vector(self, table, voffset: int, elem_bytes: int, what: str) -> tuple[int, int]:
        """(start, length) of a vector field; (0, 0) when absent."""
        at = self.ref(table, voffset)
        if not at:
            return 0, 0
        length = _U32(self.buf, at)[0]
        start = at + 4
        if start + length * elem_bytes > self.size:
            raise InvalidModelError(f"corrupt TFLite flatbuffer ({what} claims {length} entries)")
        return start, length

    def tables(self, table, voffset: int, what: str) -> list[tuple[int, int, int]]:
        start, length = self.vector(table, voffset, 4, what)
        buf = self.buf
        return [self.table(start + 4 * i + _U32(buf, start + 4 * i)[0]) for i in range(length)]

    def ints(self, table, voffset: int, what: str) -> tuple[int, ...]:
        start, length = self.vector(table, voffset, 4, what)
        return struct.unpack_from(f"<{length}i", self.buf, start) if length else ()

    def string(self, table, voffset: int) -> bytes:
        start, length = self.vector(table, voffset, 1, "string")
        return self.buf[start:start + length] if length else b""


_SLOTS: dict[int, object] = {}


def _vtable_slots(buf: bytes, size: int, pos: int, cache: dict | None = None) -> tuple[int, ...]:
    """The field offsets of the table at ``pos`` (slot ``i`` is vtable offset ``4 + 2i``).

    ``cache`` maps vtable positions to their slots: a flatbuffer builder writes each
    distinct vtable once and its tables share it, so a model's tensors and operators
    use a handful between them.
    """
    if pos < 0 or pos + 4 > size:
        raise InvalidModelError("corrupt TFLite flatbuffer (table out of range)")
    vt = pos - _I32(buf, pos)[0]
    if cache is not None:
        slots = cache.get(vt)
        if slots is not None:
            return slots
    if vt < 0 or vt + 4 > size:
        raise InvalidModelError("corrupt TFLite flatbuffer (vtable out of range)")
    n = (_U16(buf, vt)[0] - 4) // 2
    if n <= 0:
        slots = ()
    else:
        unpack = _SLOTS.get(n)
        if unpack is None:
            unpack = _SLOTS[n] = struct.Struct(f"<{n}H").unpack_from
        slots = unpack(buf, vt + 4)
    if cache is not None:
        cache[vt] = slots
    return slots


def _vector_at(buf: bytes, size: int, at: int, elem_bytes: int, what: str) -> tuple[int, int]:
    """(start, length) of the vector referenced from position ``at``."""
    at += _U32(buf, at)[0]
    length = _U32(buf, at)[0]
    start = at + 4
    if start + length * elem_bytes > size:
        raise InvalidModelError(f"corrupt TFLite flatbuffer ({what} claims {length} entries)")
    return start, length


_INTS: dict[int, object] = {}


def _ints_at(buf: bytes, size: int, at: int, what: str) -> tuple[int, ...]:
    start, length = _vector_at(buf, size, at, 4, what)
    if not length:
        return ()
    unpack = _INTS.get(length)
    if unpack is None:
        unpack = struct.Struct(f"<{length}i").unpack_from
        if length <= 64:  # shapes and operator inputs: a few distinct lengths
            _INTS[length] = unpack
    return unpack(buf, start)


def _walk(data: bytes, with_options: bool) -> ModelInfo:
    fb = _Flatbuffer(data)
    size = len(data)
    model = fb.table(_U32(data, 0)[0])
    names = builtin_operator_names()
    tnames = tensor_type_names()

    vtables: dict[int, tuple[int, ...]] = {}  # vtable position -> its slots
    opcodes, codes = [], []
    for oc in fb.tables(model, 6, "operator_codes"):
        code = max(fb.scalar(oc, 10, _I32), fb.scalar(oc, 4, _I8))
        codes.append(code)
        if code == CUSTOM_CODE:
            custom = fb.string(oc, 6)
            opcodes.append("CUSTOM:" + custom.decode("utf-8", "replace") if custom else "CUSTOM")
        else:
            opcodes.append(names.get(code, f"BUILTIN_{code}"))
    n_codes = len(codes)

    buffer_has_data, buffer_bytes = [], []
    start, count = fb.vector(model, 12, 4, "buffers")
    for i in range(count):
        # Buffer {data: [ubyte], offset: ulong, size: ulong}, read from its vtable slots
        at = start + 4 * i
        pos = at + _U32(data, at)[0]
        offs = _vtable_slots(data, size, pos, vtables)
        n = len(offs)
        o = offs[0] if n > 0 else 0
        length = _vector_at(data, size, pos + o, 1, f"buffer {i}")[1] if o else 0
        o = offs[1] if n > 1 else 0
        offset = _U64(data, pos + o)[0] if o else 0
        o = offs[2] if n > 2 else 0
        extern = _U64(data, pos + o)[0] if o else 0
        if offset > 1 and offset + extern > size:
            raise InvalidModelError(f"corrupt TFLite flatbuffer (buffer {i} points past the end of the file)")
        buffer_has_data.append(length > 0 or (offset > 1 and extern > 0))
        buffer_bytes.append(length if length > 0 else (extern if offset > 1 else 0))
    n_buffers = len(buffer_has_data)

    subgraphs = fb.tables(model, 8, "subgraphs")
    n_sub = len(subgraphs)
    if n_sub == 0:
        raise InvalidModelError("TFLite model has no subgraphs")
    info = ModelInfo(size_bytes=size, num_subgraphs=n_sub, buffer_bytes=buffer_bytes)
    buf = data
    for sg in subgraphs:
        tensors = []
        start, count = fb.vector(sg, 4, 4, "tensors")
        positions = [start + 4 * i + _U32(buf, start + 4 * i)[0] for i in range(count)]
        n_tensors = count
        for t, pos in enumerate(positions):
            # one read of the vtable, then each field straight from its slot (this loop is
            # most of a prediction's parsing time: ~5 tensors per operator)
            offs = _vtable_slots(buf, size, pos, vtables)
            if len(offs) < 8:
                offs = offs + (0,) * (8 - len(offs))
            shape_o, type_o, buffer_o, name_o, quant_o, variable_o, _, signature_o = offs[:8]
            b = _U32(buf, pos + buffer_o)[0] if buffer_o else 0
            if b >= n_buffers and b != 0:
                raise InvalidModelError(f"corrupt TFLite flatbuffer (tensor {t} names buffer {b} of {n_buffers})")
            scales = 0
            if quant_o:
                q = pos + quant_o + _U32(buf, pos + quant_o)[0]
                qoffs = _vtable_slots(buf, size, q, vtables)
                o = qoffs[2] if len(qoffs) > 2 else 0  # scale
                if o:
                    scales = _vector_at(buf, size, q + o, 4, "quantisation scales")[1]
            type_code = _I8(buf, pos + type_o)[0] if type_o else 0
            if name_o:
                s0, ln = _vector_at(buf, size, pos + name_o, 1, "string")
                name = buf[s0:s0 + ln].decode("utf-8", "replace")
            else:
                name = ""
            shape = _ints_at(buf, size, pos + shape_o, "tensor shape") if shape_o else ()
            signature = _ints_at(buf, size, pos + signature_o, "tensor shape signature") if signature_o else ()
            dtype = tnames.get(type_code) or f"TYPE_{type_code}"
            info_t = TensorInfo(t, name, dtype, shape, b, b < n_buffers and buffer_has_data[b], scales > 0,
                                signature, scales > 1, bool(_U8(buf, pos + variable_o)[0]) if variable_o else False)
            # the cached properties, filled here (a property call per tensor was a tenth
            # of a prediction's parsing time)
            lowest = min(shape) if shape else 1
            if lowest >= 1 and len(shape) <= 8:  # the usual case: one product, no bignum growth
                elems = prod(shape)
                if elems > MAX_ELEMENTS:
                    elems = MAX_ELEMENTS
            else:
                elems = 1
                for d in shape:
                    elems = min(elems * (d if d > 1 else 1), MAX_ELEMENTS)
            d_ = info_t.__dict__
            d_["num_elements"] = elems
            d_["nbytes"] = elems * TYPE_BYTES.get(dtype, 4.0)
            d_["is_dynamic"] = lowest < 0 or bool(signature and min(signature) < 0)
            tensors.append(info_t)
        operators = []
        start, count = fb.vector(sg, 10, 4, "operators")
        for o_index in range(count):
            # Operator {opcode_index, inputs, outputs, builtin_options_type, builtin_options,
            # ..., builtin_options_2_type (slot 11), builtin_options_2 (12)}, from its slots
            at = start + 4 * o_index
            pos = at + _U32(buf, at)[0]
            offs = _vtable_slots(buf, size, pos, vtables)
            if len(offs) < 13:
                offs = offs + (0,) * (13 - len(offs))
            o = offs[0]
            idx = _U32(buf, pos + o)[0] if o else 0
            if idx >= n_codes:
                raise InvalidModelError(
                    f"corrupt TFLite flatbuffer (operator {o_index} uses opcode {idx} of {n_codes})")
            o = offs[1]
            ins = _indices(_ints_at(buf, size, pos + o, "operator inputs") if o else (), n_tensors, o_index)
            o = offs[2]
            outs = _indices(_ints_at(buf, size, pos + o, "operator outputs") if o else (), n_tensors, o_index)
            options = _options(buf, size, pos, offs, vtables) if with_options else {}
            if with_options and offs[5] and opcodes[idx] in CUSTOM_OPTION_READERS:
                options = CUSTOM_OPTION_READERS[opcodes[idx]](_bytes_at(buf, size, pos + offs[5]))
            called = () if SUBGRAPH_FIELDS.isdisjoint(options) else tuple(
                int(v) for k, v in options.items() if k in SUBGRAPH_FIELDS and 0 <= int(v) < n_sub
            )
            operators.append(OperatorInfo(o_index, opcodes[idx], ins, outs, codes[idx], options, called))
        sg_inputs = _indices(fb.ints(sg, 6, "subgraph inputs"), n_tensors, -1)
        sg_outputs = _indices(fb.ints(sg, 8, "subgraph outputs"), n_tensors, -1)
        info.subgraphs.append(SubgraphInfo(operators, tensors, sg_inputs, sg_outputs))
    if sum(info.operators_per_subgraph) == 0:
        raise InvalidModelError("TFLite model has no operators")
    return info


@lru_cache(maxsize=None)
def option_fields(union: str, type_code: int) -> tuple[tuple[str, int, str, float], ...]:
    """The numeric scalar fields of one options-union member: ``(name, vtable slot, struct
    format, default)`` from the explicit table :data:`predictors._option_slots.OPTION_SLOTS`.
    A member the table lacks (a newer schema) has none."""
    from predictors._option_slots import OPTION_SLOTS

    entry = OPTION_SLOTS[union].get(int(type_code))
    return entry[1] if entry else ()


@lru_cache(maxsize=None)
def _unpacker(fmt: str):
    return struct.Struct(fmt).unpack_from


def _options(buf: bytes, size: int, op: int, op_slots: tuple[int, ...], vtables: dict | None = None) -> dict[str, float]:
    """Every numeric scalar field of an operator's builtin options (both unions).

    ``op`` is the operator table's position and ``op_slots`` its field offsets.
    """
    values: dict[str, float] = {}
    n_slots = len(op_slots)  # (a field past the buffer raises struct.error: inspect_model's corrupt-file error)
    for union, type_slot, table_slot in (("BuiltinOptions", 3, 4), ("BuiltinOptions2", 11, 12)):
        o = op_slots[type_slot] if type_slot < n_slots else 0
        type_code = _U8(buf, op + o)[0] if o else 0
        fields = option_fields(union, int(type_code)) if type_code else ()
        o = op_slots[table_slot] if table_slot < n_slots else 0
        if not fields or not o:
            continue
        at = op + o + _U32(buf, op + o)[0]
        offs = _vtable_slots(buf, size, at, vtables)  # bounds-checks the table and its vtable
        n = len(offs)
        for name, slot, fmt, default in fields:
            k = (slot - 4) >> 1
            o = offs[k] if k < n else 0
            values[name] = float(_unpacker(fmt)(buf, at + o)[0]) if o else default
    return values


def _bytes_at(buf: bytes, size: int, at: int) -> bytes:
    start, length = _vector_at(buf, size, at, 1, "custom options")
    return bytes(buf[start:start + length])


def _transpose_conv_params(raw: bytes) -> dict[str, float]:
    """MediaPipe's ``Convolution2DTransposeBias`` options: the raw bytes of TFLite's C struct
    ``TfLiteTransposeConvParams`` {padding (1 same, 2 valid), stride_width, stride_height},
    as ``TransposeConvOptions`` fields (padding 0 same, 1 valid). Other bytes: no options."""
    if len(raw) < 12:
        return {}
    padding, stride_w, stride_h = struct.unpack_from("<3i", raw)
    if padding not in (1, 2) or not (0 < stride_w < 1 << 16 and 0 < stride_h < 1 << 16):
        return {}
    return {"FusedActivationFunction": 0.0, "Padding": float(padding - 1), "QuantizedBiasType": 0.0,
            "StrideH": float(stride_h), "StrideW": float(stride_w)}


# Custom operators whose options are a known layout (not FlexBuffers), by opcode name.
CUSTOM_OPTION_READERS = {"CUSTOM:Convolution2DTransposeBias": _transpose_conv_params}


def _indices(values: tuple[int, ...], n_tensors: int, op: int) -> tuple[int, ...]:
    out = tuple(values)
    if out and (min(out) < -1 or max(out) >= n_tensors):
        v = next(v for v in out if v < -1 or v >= n_tensors)
        where = f"operator {op}" if op >= 0 else "subgraph"
        raise InvalidModelError(f"corrupt TFLite flatbuffer ({where} names tensor {v} of {n_tensors})")
    return out


def strip_constant_buffers(data: bytes) -> bytes:
    """The same flatbuffer with its payload zeroed: constant buffers, tensor names and
    quantisation values (scales, zero points, ranges).

    Everything the graph features read is kept (structure, shapes, types, options,
    which tensors are quantised and per-channel), so features are identical, and the
    zeros compress to almost nothing.  Used for dataset storage, where the original
    is recovered by exporting the same arch and seed again.
    """
    inspect_model(data)  # validates every offset we are about to follow
    fb = _Flatbuffer(data)
    out = bytearray(data)
    model = fb.table(_U32(data, 0)[0])
    for buf in fb.tables(model, 12, "buffers"):
        start, length = fb.vector(buf, 4, 1, "buffer")
        if length:
            out[start:start + length] = bytes(length)
        offset, extern = fb.scalar(buf, 6, _U64), fb.scalar(buf, 8, _U64)
        if offset > 1 and extern:
            out[offset:offset + extern] = bytes(extern)
    for sg in fb.tables(model, 8, "subgraphs"):
        for tensor in fb.tables(sg, 4, "tensors"):
            start, length = fb.vector(tensor, 10, 1, "tensor name")
            out[start:start + length] = bytes(length)
            q = fb.ref(tensor, 12)
            if q:
                quant = fb.table(q)
                # min, max, scale (4-byte floats), zero_point (int64); keep the lengths
                for slot, width in ((4, 4), (6, 4), (8, 4), (10, 8)):
                    start, length = fb.vector(quant, slot, width, "quantisation")
                    out[start:start + length * width] = bytes(length * width)
    return bytes(out)
