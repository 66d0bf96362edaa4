"""The size of a TFLite flatbuffer as TensorFlow's Python writer lays it out, without writing it.

``TFLiteConverter`` ends by unpacking its model into the schema's object API and
writing it again (``ModelT.Pack`` on a ``flatbuffers.Builder``: ``deduplicate_readonly_buffers``,
``modify_model_io_type``), so an exported file's size is a function of what that
writer is given: every table's present fields, every vector's length, every string's
length, in ``Pack``'s order, with the builder's alignment padding and its shared vtables
(an object whose vtable equals an earlier one points at it instead of writing its own).
:func:`packed_size` follows the builder's arithmetic (``flatbuffers/builder.py``:
``Prep``, ``StartVector``/``EndVector``, ``CreateString``, ``WriteVtable``, ``Finish``)
on offsets alone: no bytes, no objects.  Tests check it against ``ModelT.Pack`` on a
real ``flatbuffers.Builder`` and against exported files.

A table is given as the :class:`Layout` of its present fields, ``((slot, bytes), ...)`` in
``Pack``'s order (a field equal to its default is not written; an offset to a vector,
string or sub-table is 4 bytes).
"""
from __future__ import annotations

from typing import Iterable, Sequence

Fields = tuple  # ((slot, bytes), ...)

_VTABLE_IDS: dict[tuple, int] = {}  # a vtable's contents -> a small number (sets of ints hash fast)


class Layout:
    """One kind of table: its present fields, and where they land for each start offset mod 8.

    ``at[start % 8]`` is ``(object bytes from start, vtable id, vtable bytes, alignment)``;
    the fields' offsets inside the object, hence the vtable, depend on nothing else.
    """

    __slots__ = ("fields", "at")

    def __init__(self, fields: Fields):
        self.fields = tuple(fields)
        self.at = [self._place(start) for start in range(8)]

    def _place(self, start: int) -> tuple[int, int, int, int]:
        used, offs, align = start, {}, 4
        for slot, size in self.fields:
            used += (-used) & (size - 1)
            used += size
            offs[slot] = used
            if size > align:
                align = size
        used += (-used) & 3
        used += 4  # the offset to the vtable
        top = max(offs) if offs else -1
        key = tuple(used - offs[s] if s in offs else 0 for s in range(top, -1, -1)) + (used - start,)
        vid = _VTABLE_IDS.setdefault(key, len(_VTABLE_IDS))
        return used - start, vid, 2 * (len(key) + 1), align


_LAYOUTS: dict[Fields, Layout] = {}


def layout(fields: Fields) -> Layout:
    """The (shared) :class:`Layout` of a table with these present fields."""
    lay = _LAYOUTS.get(fields)
    if lay is None:
        lay = _LAYOUTS[fields] = Layout(fields)
    return lay


class Packer:
    """The running offset of a ``flatbuffers.Builder`` (``Offset()``), its largest
    alignment and its vtables: enough to know where the next object lands."""

    __slots__ = ("used", "minalign", "vtables")

    def __init__(self) -> None:
        self.used = 0
        self.minalign = 1
        self.vtables: set = set()

    def table(self, lay: Layout) -> None:
        """``StartObject`` .. the ``Prepend*Slot`` calls .. ``EndObject`` (with its vtable)."""
        size, vid, vbytes, align = lay.at[self.used & 7]
        self.used += size
        if align > self.minalign:
            self.minalign = align
        if vid not in self.vtables:  # a new vtable: 2 bytes a field kept, plus its two sizes
            self.vtables.add(vid)
            self.used += vbytes

    def vector(self, n: int, width: int = 4) -> None:
        """``StartVector(width, n, width)`` .. ``EndVector``: a vector of scalars or offsets."""
        nbytes = n * width
        used = self.used
        used += (-(used + nbytes)) & 3
        if width > 4:
            used += (-(used + nbytes)) & (width - 1)
            if width > self.minalign:
                self.minalign = width
        elif self.minalign < 4:
            self.minalign = 4
        self.used = used + nbytes + 4

    def string(self, length: int) -> None:
        """``CreateString`` of ``length`` bytes (a NUL follows them)."""
        used = self.used
        used += (-(used + length + 1)) & 3
        self.used = used + length + 5
        if self.minalign < 4:
            self.minalign = 4

    def bytes(self, n: int) -> None:
        """``CreateNumpyVector`` of ``n`` bytes (a buffer's data)."""
        used = self.used
        used += (-(used + n)) & 3
        self.used = used + n + 4
        if self.minalign < 4:
            self.minalign = 4

    def finish(self, file_identifier: bool = True) -> int:
        """``Finish(root, file_identifier)``: the file's size."""
        used = self.used
        used += (-(used + 8 if file_identifier else used + 4)) & (self.minalign - 1)
        if file_identifier:
            used += (-(used + 4)) & 3
            used += 4
        used += (-used) & 3
        return used + 4


# fields of the schema's tables, as (slot, bytes): what ModelT.Pack writes for them
def _opt(flag: bool, slot: int, size: int) -> tuple:
    return ((slot, size),) if flag else ()


def operator_code_fields(builtin: int, version: int, custom: bool = False) -> Layout:
    """``OperatorCode``: deprecated_builtin_code (int8), custom_code, version (default 1), builtin_code."""
    deprecated = min(builtin, 127)
    return layout(_opt(deprecated != 0, 0, 1) + _opt(custom, 1, 4) + _opt(version != 1, 2, 4)
                  + _opt(builtin != 0, 3, 4))


def quantization_fields(scale: bool, zero_point: bool, quantized_dimension: int) -> Layout:
    """``QuantizationParameters`` without min/max or details: scale, zero_point, quantized_dimension."""
    return layout(_opt(scale, 2, 4) + _opt(zero_point, 3, 4) + _opt(quantized_dimension != 0, 6, 4))


def tensor_fields(type_code: int, buffer: int, quantization: bool, has_rank: bool = True) -> Layout:
    """``Tensor``: shape, type (int8), buffer, name, quantization, has_rank (bool)."""
    return layout(((0, 4),) + _opt(type_code != 0, 1, 1) + _opt(buffer != 0, 2, 4) + ((3, 4),)
                  + _opt(quantization, 4, 4) + _opt(has_rank, 8, 1))


def operator_fields(opcode_index: int, options_type: int) -> Layout:
    """``Operator``: opcode_index, inputs, outputs, builtin_options_type (uint8), builtin_options."""
    return layout(_opt(opcode_index != 0, 0, 4) + ((1, 4), (2, 4)) + _opt(options_type != 0, 3, 1)
                  + _opt(options_type != 0, 4, 4))


_BUFFER_DATA = layout(((0, 4),))
_BUFFER_EMPTY = layout(())
_METADATA = layout(((0, 4), (1, 4)))
_METADATA_NO_BUFFER = layout(((0, 4),))
_SUBGRAPH = layout(((0, 4), (1, 4), (2, 4), (3, 4), (4, 4)))
_MODEL = layout(((0, 4), (1, 4), (2, 4), (3, 4), (4, 4), (6, 4), (7, 4)))
_MODEL_NO_SIGNATURES = layout(((0, 4), (1, 4), (2, 4), (3, 4), (4, 4), (6, 4)))


def packed_size(codes: Sequence[Layout], tensors: Iterable[tuple], operators: Iterable[tuple],
                buffers: Iterable[int | None], n_inputs: int, n_outputs: int,
                metadata: Sequence[tuple[int, int]], description: int = 15, subgraph_name: int = 4,
                signature_defs: bool = True) -> int:
    """The bytes ``ModelT.Pack`` + ``Finish(..., b"TFL3")`` writes for one subgraph.

    ``codes``: each operator code's :class:`Layout` (:func:`operator_code_fields`);
    ``tensors``: ``(rank, name bytes, tensor layout, quantization)``, quantization None (no
    table) or ``(n scales, n zero points, layout)`` (``None`` for an absent vector);
    ``operators``: ``(n inputs, n outputs, options layout or None, operator layout)``;
    ``buffers``: each buffer's data bytes, None where it has none; ``metadata``: ``(name
    bytes, buffer)`` each; ``description``, ``subgraph_name``: string lengths;
    ``signature_defs``: an empty signature vector is written (the converter's).
    """
    p = Packer()
    table, vector, string = p.table, p.vector, p.string
    for lay in codes:
        table(lay)
    vector(len(codes))
    # the tensors, the bulk of the work: Packer's arithmetic inlined
    used, vtables, minalign = p.used, p.vtables, max(p.minalign, 4)
    n_tensors = 0
    for rank, name, lay, quant in tensors:
        n_tensors += 1
        used += ((-used) & 3) + 4 * rank + 4  # shape: int32 vector
        used += ((-(used + name + 1)) & 3) + name + 5  # name
        if quant is not None:
            n_scale, n_zero, qlay = quant
            if n_scale is not None:
                used += ((-used) & 3) + 4 * n_scale + 4  # float32 vector
            if n_zero is not None:  # int64 vector: aligned to 4, then to 8, before its data
                used += (-used) & 3
                used += (-(used + 8 * n_zero)) & 7
                used += 8 * n_zero + 4
                minalign = 8
            size, vid, vbytes, align = qlay.at[used & 7]
            used += size
            if align > minalign:
                minalign = align
            if vid not in vtables:
                vtables.add(vid)
                used += vbytes
        size, vid, vbytes, align = lay.at[used & 7]
        used += size
        if align > minalign:
            minalign = align
        if vid not in vtables:
            vtables.add(vid)
            used += vbytes
    p.used, p.minalign = used, minalign
    vector(n_tensors)
    vector(n_inputs)
    vector(n_outputs)
    n_ops = 0
    for n_in, n_out, options, lay in operators:
        n_ops += 1
        vector(n_in)
        vector(n_out)
        if options is not None:
            table(options)
        table(lay)
    vector(n_ops)
    string(subgraph_name)
    table(_SUBGRAPH)
    vector(1)
    string(description)
    n_buffers = 0
    for data in buffers:
        n_buffers += 1
        if data is None:
            table(_BUFFER_EMPTY)
        else:
            p.bytes(data)
            table(_BUFFER_DATA)
    vector(n_buffers)
    for name, buffer in metadata:
        string(name)
        table(_METADATA if buffer else _METADATA_NO_BUFFER)
    vector(len(metadata))
    if signature_defs:
        vector(0)
    table(_MODEL if signature_defs else _MODEL_NO_SIGNATURES)
    return p.finish()


__all__ = ["Layout", "Packer", "layout", "operator_code_fields", "operator_fields", "packed_size", "quantization_fields",
           "tensor_fields"]
