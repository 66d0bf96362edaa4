"""Lossless, position-independent compaction of payload-zeroed TFLite flatbuffers.

A stored graph is the exported file with its payload zeroed
(:func:`predictors.tflite_model.strip_constant_buffers`): megabytes of zeros around a
few kilobytes of structure.  zstd squeezes the zeros, but what is left does not
compress well *across* networks: a flatbuffer's offsets are relative byte distances,
and every zeroed weight buffer of another size moves every offset that spans it, so
two networks of one space that differ in a channel count share few long matches.

:func:`encode` removes the zero content of every all-zero vector (weight buffers,
tensor names, quantisation arrays), records the vectors' lengths in a side column
and rewrites every offset of the flatbuffer as if those vectors were empty.  The
*residual* left is itself a well-formed flatbuffer whose offsets depend only on the
structure, so a shard's residuals compress together into a fraction of the
per-file cost.  With it go where the residual's offset words and vectors are (the
schema walk done once, when the shard is written; a few dozen bytes a network once
compressed), so :func:`decode` puts the zeros and the original offsets back, byte
for byte, in NumPy, with no walk.

Offsets the schema table below does not know (a vector inside an options table it
does not list, an external buffer) would come back wrong; :func:`encode` therefore
decodes its own output and compares, and a file that does not round-trip is kept
whole instead (``encode`` returns ``None``).
"""
from __future__ import annotations

import struct
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from search_spaces.errors import HwnasError

_U16 = struct.Struct("<H").unpack_from
_I32 = struct.Struct("<i").unpack_from
_U32 = struct.Struct("<I").unpack_from

# The TFLite schema's reference fields, by table: vtable offset -> kind.
#   ("t", T): a table of type T;  ("T", T): a vector of tables of type T;
#   ("v", width): a vector of scalars of ``width`` bytes;  ("s",): a string;
#   ("u", type_voffset, union): a union, its member type read from ``type_voffset``.
# Fields not listed are inline scalars.  Field numbers follow tensorflow/lite/schema/schema.fbs.
_SCHEMA: dict[str, dict[int, tuple]] = {
    "Model": {6: ("T", "OperatorCode"), 8: ("T", "SubGraph"), 10: ("s",), 12: ("T", "Buffer"),
              14: ("v", 4), 16: ("T", "Metadata"), 18: ("T", "SignatureDef")},
    "OperatorCode": {6: ("s",)},
    "SubGraph": {4: ("T", "Tensor"), 6: ("v", 4), 8: ("v", 4), 10: ("T", "Operator"), 12: ("s",)},
    "Tensor": {4: ("v", 4), 10: ("s",), 12: ("t", "QuantizationParameters"), 16: ("t", "SparsityParameters"),
               18: ("v", 4), 22: ("T", "VariantSubType")},
    "VariantSubType": {4: ("v", 4)},
    "QuantizationParameters": {4: ("v", 4), 6: ("v", 4), 8: ("v", 4), 10: ("v", 8),
                               14: ("u", 12, "QuantizationDetails")},
    "CustomQuantization": {4: ("v", 1)},
    "SparsityParameters": {4: ("v", 4), 6: ("v", 4), 8: ("T", "DimensionMetadata")},
    "DimensionMetadata": {10: ("u", 8, "SparseIndexVector"), 14: ("u", 12, "SparseIndexVector")},
    "Int32Vector": {4: ("v", 4)},
    "Uint16Vector": {4: ("v", 2)},
    "Uint8Vector": {4: ("v", 1)},
    "Operator": {6: ("v", 4), 8: ("v", 4), 12: ("u", 10, "BuiltinOptions"), 14: ("v", 1), 18: ("v", 1),
                 20: ("v", 4), 28: ("u", 26, "BuiltinOptions2")},
    "Buffer": {4: ("v", 1)},
    "Metadata": {4: ("s",)},
    "SignatureDef": {4: ("T", "TensorMap"), 6: ("T", "TensorMap"), 8: ("s",), 10: ("s",)},
    "TensorMap": {4: ("s",)},
    # options tables with reference fields; every other options table is scalars only
    "ReshapeOptions": {4: ("v", 4)},
    "SqueezeOptions": {4: ("v", 4)},
    "BucketizeOptions": {4: ("v", 4)},
    "ConcatEmbeddingsOptions": {6: ("v", 4), 8: ("v", 4)},
}
_UNIONS = {
    "QuantizationDetails": {1: "CustomQuantization"},
    "SparseIndexVector": {1: "Int32Vector", 2: "Uint16Vector", 3: "Uint8Vector"},
}


@lru_cache(maxsize=None)
def _union_members(union: str) -> dict[int, str]:
    if union in _UNIONS:
        return _UNIONS[union]
    import tflite

    enum = getattr(tflite, union)  # the member names of the builtin options unions
    return {v: k for k, v in vars(enum).items() if not k.startswith("_") and isinstance(v, int)}


_KIND = {"t": 0, "T": 1, "v": 2, "s": 3, "u": 4}


@lru_cache(maxsize=None)
def _fields(name: str) -> tuple[tuple[int, int, object, int], ...]:
    """A table's reference fields as ``(slot, kind, argument, union type slot)``, slot = (voffset - 4) / 2."""
    out = []
    for vo, kind in _SCHEMA.get(name, {}).items():
        k = _KIND[kind[0]]
        if k == 4:
            out.append(((vo - 4) // 2, k, kind[2], (kind[1] - 4) // 2))
        elif k == 3:
            out.append(((vo - 4) // 2, 2, 1, -1))  # a string is a vector of bytes
        else:
            out.append(((vo - 4) // 2, k, kind[1], -1))
    return tuple(out)


_SLOT_READERS: dict[int, object] = {}


def _read_u32(arr: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """Little-endian 32-bit words at byte ``positions`` of ``arr`` (uint8), as int64."""
    return (arr[positions].astype(np.int64) | (arr[positions + 1].astype(np.int64) << 8)
            | (arr[positions + 2].astype(np.int64) << 16) | (arr[positions + 3].astype(np.int64) << 24))


class _Layout:
    """Every offset word and every scalar vector of a flatbuffer, found by the schema.

    ``tables``: table positions (each starts with a signed offset to its vtable);
    ``refs``: the unsigned offset words (the root, table and union fields, the
    elements of vectors of tables); ``vector_refs``/``widths``: the offset words of
    scalar vectors and strings, in walk order, and their element sizes.
    """

    __slots__ = ("buf", "tables", "refs", "vector_refs", "widths", "_arr")

    def __init__(self, buf: bytes):
        size = len(buf)
        root = _U32(buf, 0)[0]
        tables, refs, vector_refs, widths = [], [0], [], []
        seen: set[int] = set()
        slot_cache: dict[int, tuple[int, ...]] = {}
        unpack_u32, unpack_i32 = _U32, _I32
        stack = [(root, "Model")]
        pop, push = stack.pop, stack.append
        add_ref, add_vector, add_width = refs.append, vector_refs.append, widths.append
        while stack:
            pos, name = pop()
            if pos in seen:
                continue
            seen.add(pos)
            if pos < 0 or pos + 4 > size:
                raise HwnasError("corrupt stored graph (table out of range)")
            tables.append(pos)
            fields = _fields(name)
            if not fields:
                continue
            vt = pos - unpack_i32(buf, pos)[0]
            slots = slot_cache.get(vt)
            if slots is None:
                if vt < 0 or vt + 4 > size:
                    raise HwnasError("corrupt stored graph (vtable out of range)")
                n = (_U16(buf, vt)[0] - 4) // 2
                reader = _SLOT_READERS.get(n)
                if reader is None:
                    reader = _SLOT_READERS[n] = struct.Struct(f"<{max(n, 0)}H").unpack_from
                slots = slot_cache[vt] = reader(buf, vt + 4) if n > 0 else ()
            n_slots = len(slots)
            for slot, kind, arg, type_slot in fields:
                if slot >= n_slots:
                    continue
                fo = slots[slot]
                if not fo:
                    continue
                at = pos + fo
                if kind == 2:  # a scalar vector or a string
                    add_vector(at)
                    add_width(arg)
                    continue
                target = at + unpack_u32(buf, at)[0]
                if kind == 1:  # a vector of tables: each element is an offset
                    if target < 0 or target + 4 > size:
                        raise HwnasError("corrupt stored graph (vector out of range)")
                    n = unpack_u32(buf, target)[0]
                    first = target + 4
                    if first + 4 * n > size:
                        raise HwnasError("corrupt stored graph (vector out of range)")
                    add_ref(at)
                    elems = range(first, first + 4 * n, 4)
                    refs.extend(elems)
                    push_all = [(e + v, arg) for e, v in zip(elems, struct.unpack_from(f"<{n}I", buf, first))]
                    push_all.reverse()
                    stack.extend(push_all)
                elif kind == 0:
                    add_ref(at)
                    push((target, arg))
                else:  # a union: the member's type from its type field
                    code = buf[pos + slots[type_slot]] if type_slot < n_slots and slots[type_slot] else 0
                    if code:
                        add_ref(at)
                        push((target, _union_members(arg).get(code, "")))
        self.buf, self.tables, self.refs, self.vector_refs, self.widths = buf, tables, refs, vector_refs, widths
        self._arr = None

    @property
    def arr(self) -> np.ndarray:
        if self._arr is None:
            self._arr = np.frombuffer(self.buf, dtype=np.uint8)
        return self._arr

    @property
    def vectors(self) -> list[int]:
        """Positions of the scalar vectors (their length prefixes), in walk order."""
        refs = np.asarray(self.vector_refs, dtype=np.int64)
        return (refs + _read_u32(self.arr, refs)).tolist()

    def offsets(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(word positions, targets, signed): the tables' vtable offsets, then every unsigned offset."""
        arr = self.arr
        tables = np.asarray(self.tables, dtype=np.int64)
        unsigned = np.asarray(self.refs + self.vector_refs, dtype=np.int64)
        raw = _read_u32(arr, tables)
        vtables = tables - np.where(raw >= 1 << 31, raw - (1 << 32), raw)
        words = np.concatenate((tables, unsigned))
        targets = np.concatenate((vtables, unsigned + _read_u32(arr, unsigned)))
        signed = np.zeros(len(words), dtype=bool)
        signed[:len(tables)] = True
        return words, targets, signed


def _patch(out: bytearray | np.ndarray, positions: np.ndarray, values: np.ndarray) -> None:
    """Writes little-endian 32-bit ``values`` at byte ``positions`` (any alignment)."""
    arr = out if isinstance(out, np.ndarray) else np.frombuffer(out, dtype=np.uint8)
    v = values.astype(np.int64) & 0xFFFFFFFF
    for k in range(4):
        arr[positions + k] = (v >> (8 * k)) & 0xFF


@dataclass
class Compact:
    """One compacted flatbuffer: the residual and where to put the zeros and offsets back.

    ``words``: residual positions of the offset words, ascending, ``signed`` marking a
    table's offset to its vtable; ``vectors``: positions of the scalar vectors' length
    prefixes, ascending, ``widths`` their element sizes; ``lengths``: the original
    length of every vector that is empty in the residual, in ``vectors`` order.
    """

    residual: bytes
    lengths: np.ndarray
    words: np.ndarray
    signed: np.ndarray
    vectors: np.ndarray
    widths: np.ndarray


def encode(data: bytes) -> Compact | None:
    """The compaction of a payload-zeroed flatbuffer, or None where it would not round-trip."""
    try:
        lay = _Layout(data)
    except (HwnasError, struct.error, IndexError):
        return None
    vectors = lay.vectors
    if len(set(vectors)) != len(vectors):
        return None  # a vector shared by two fields: keep the file whole
    order = sorted(range(len(vectors)), key=vectors.__getitem__)
    vectors = [vectors[i] for i in order]
    widths = [lay.widths[i] for i in order]
    # all-zero, non-empty vectors: their content goes
    cut_starts, cut_sizes, prefixes = [], [], []
    zero_check = np.frombuffer(data, dtype=np.uint8)
    original = [_U32(data, p)[0] for p in vectors]
    for prefix, width, n in zip(vectors, widths, original):
        nbytes = n * width
        if nbytes and not zero_check[prefix + 4:prefix + 4 + nbytes].any():
            cut_starts.append(prefix + 4)
            cut_sizes.append(nbytes)
            prefixes.append(prefix)
    starts = np.asarray(cut_starts, dtype=np.int64)
    removed = np.concatenate(([0], np.cumsum(cut_sizes, dtype=np.int64)))

    def new(p: np.ndarray) -> np.ndarray:  # position once the cut content is gone
        return p - removed[np.searchsorted(starts, p, side="right")]

    pieces, prev = [], 0
    for s, n in zip(cut_starts, cut_sizes):
        pieces.append(data[prev:s])
        prev = s + n
    pieces.append(data[prev:])
    out = bytearray(b"".join(pieces))
    words, targets, signed = lay.offsets()
    nw, nt = new(words), new(targets)
    _patch(out, nw, np.where(signed, nw - nt, nt - nw))
    cut = set(prefixes)
    if cut:
        _patch(out, new(np.asarray(prefixes, dtype=np.int64)), np.zeros(len(prefixes), dtype=np.int64))
    word_order = np.argsort(nw, kind="stable")
    compact = Compact(
        residual=bytes(out),
        lengths=np.asarray([n for p, n in zip(vectors, original) if p in cut or n == 0], dtype=np.uint32),
        words=nw[word_order],
        signed=signed[word_order],
        vectors=new(np.asarray(vectors, dtype=np.int64)),
        widths=np.asarray(widths, dtype=np.uint8),
    )
    if len(np.unique(compact.words)) != len(compact.words):
        return None  # a word reached twice (a shared table): keep the file whole
    try:
        if decode(compact) != data:
            return None
    except (HwnasError, ValueError, IndexError):
        return None
    return compact


def decode(c: Compact) -> bytes:
    """The flatbuffer :func:`encode` compacted, byte for byte."""
    residual = c.residual
    size = len(residual)
    arr = np.frombuffer(residual, dtype=np.uint8)
    vectors = c.vectors.astype(np.int64, copy=False)
    words = c.words.astype(np.int64, copy=False)
    if len(vectors) and (vectors.min() < 0 or vectors.max() + 4 > size) or \
            len(words) and (words.min() < 0 or words.max() + 4 > size):
        raise HwnasError("corrupt stored graph (a position outside the residual)")
    empty = _read_u32(arr, vectors) == 0
    if int(empty.sum()) != len(c.lengths):
        raise HwnasError("corrupt stored graph (vector lengths do not match the empty vectors)")
    counts = np.zeros(len(vectors), dtype=np.int64)
    counts[empty] = c.lengths
    grow = counts > 0
    points = vectors[grow] + 4  # ascending: the vectors are
    sizes = counts[grow] * c.widths[grow].astype(np.int64)
    added = np.concatenate(([0], np.cumsum(sizes)))

    def orig(r: np.ndarray) -> np.ndarray:
        return r + added[np.searchsorted(points, r, side="right")]

    raw = _read_u32(arr, words)
    signed = c.signed.astype(bool, copy=False)
    targets = np.where(signed, words - np.where(raw >= 1 << 31, raw - (1 << 32), raw), words + raw)
    ow, ot = orig(words), orig(targets)
    # every residual byte moves up by the zeros inserted before it; the offset words and
    # length prefixes (outside the zeros) are written over at their new places
    segments = np.diff(np.concatenate(([0], points, [size])))
    out = np.zeros(size + int(added[-1]), dtype=np.uint8)
    out[np.arange(size, dtype=np.int64) + np.repeat(added, segments)] = arr
    _patch(out, ow, np.where(signed, ow - ot, ot - ow))
    _patch(out, orig(vectors[grow]), counts[grow])
    return out.tobytes()


__all__ = ["Compact", "decode", "encode"]
