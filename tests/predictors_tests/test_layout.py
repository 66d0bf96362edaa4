"""The flatbuffer layout arithmetic (``predictors.graph._layout``) against the writer itself.

Truth we did not produce: the converter's files (stored payload-zeroed graphs keep every
length, so their sizes are the exported files'), and TensorFlow's own ``ModelT.Pack`` on a
real ``flatbuffers.Builder``, which is the converter's last writer.
"""
from __future__ import annotations

import inspect
import random
import re
from pathlib import Path

import numpy as np
import pytest

import search_spaces
from predictors.dataset import DatasetStore
from predictors.graph import _layout as L

COMMITTED = Path(__file__).parents[2] / "data" / "edgedlperf"
SPACES = ["keyword_spotting", "image_classification", "object_detection", "super_resolution", "generic",
          "breadth", "keyword_transformer", "mobile", "audio"]  # (streaming files have two subgraphs and
# variables: beyond the one-subgraph arithmetic, which only the lowering uses, and streaming is not lowered)
EXACT_SPACES = ("keyword_spotting", "super_resolution")  # every tensor name is the converter's
_SIZES = {"Bool": 1, "Int8": 1, "Uint8": 1, "Int16": 2, "Uint16": 2, "Int32": 4, "Uint32": 4, "Float32": 4,
          "Int64": 8, "Uint64": 8, "Float64": 8, "UOffsetTRelative": 4}


@pytest.fixture(scope="module")
def schema():
    from tensorflow.lite.python import schema_py_generated

    return schema_py_generated


@pytest.fixture(scope="module")
def stored():
    """Three stored int8 networks of each space (seeded), with their files' sizes."""
    rng = random.Random(7)
    out = []
    with DatasetStore(COMMITTED) as store:
        sizes = {r["arch_id"]: r["tflite_bytes"] for r in store.network_rows()}
        for space in SPACES:
            rows = [r for r in store.rows([space], with_tflite=False) if r["quantize"] == "int8"]
            picked = {r["arch_id"]: r for r in rng.sample(rows, 3)}
            for arch_id, data in store.graphs(picked):  # only these are decoded
                picked[arch_id]["tflite"] = data
            out += [(space, r, sizes[r["arch_id"]]) for r in rows if r["arch_id"] in picked]
    return out


def _options_fields(schema, obj) -> tuple:
    """The present fields of a builtin-options object, read off its generated Pack/Add code."""
    table = type(obj).__name__[:-1]
    fields = []
    for name in re.findall(rf"\b{table}Add(\w+)\(builder", inspect.getsource(type(obj).Pack)):
        add = inspect.getsource(getattr(schema, f"{table}Add{name}")).strip().splitlines()[-1]
        kind, slot, default = re.search(r"Prepend(\w+)Slot\((\d+), .*, ([^,]+)\)$", add).groups()
        value = getattr(obj, name[0].lower() + name[1:])
        if kind == "UOffsetTRelative":
            present = value is not None
        else:
            present = value != {"False": False, "True": True}.get(default, None if default == "None" else
                                                                  float(default))
        if present:
            fields.append((int(slot), _SIZES[kind]))
    return tuple(fields)


def describe(schema, m) -> dict:
    """``packed_size``'s arguments for a ``ModelT`` (one subgraph, the fields the converter writes)."""
    (sg,) = m.subgraphs
    codes = [L.operator_code_fields(c.builtinCode, c.version, c.customCode is not None) for c in m.operatorCodes]
    tensors = []
    for t in sg.tensors:
        assert t.shapeSignature is None and t.sparsity is None and not t.isVariable
        q = t.quantization
        quant = None
        if q is not None:
            assert q.min is None and q.max is None and q.details is None
            quant = (None if q.scale is None else len(q.scale), None if q.zeroPoint is None else len(q.zeroPoint),
                     L.quantization_fields(q.scale is not None, q.zeroPoint is not None, q.quantizedDimension))
        tensors.append((len(t.shape), len(t.name), L.tensor_fields(t.type, t.buffer, q is not None, t.hasRank), quant))
    ops = []
    for o in sg.operators:
        assert o.customOptions is None and o.builtinOptions2 is None and o.intermediates is None
        options = None if o.builtinOptions is None else L.layout(_options_fields(schema, o.builtinOptions))
        ops.append((len(o.inputs), len(o.outputs), options, L.operator_fields(o.opcodeIndex, o.builtinOptionsType)))
    return dict(codes=codes, tensors=tensors, operators=ops,
                buffers=[None if b.data is None else len(b.data) for b in m.buffers],
                n_inputs=len(sg.inputs), n_outputs=len(sg.outputs),
                metadata=[(len(md.name), md.buffer) for md in m.metadata], description=len(m.description),
                subgraph_name=len(sg.name), signature_defs=m.signatureDefs is not None)


def test_packed_size_is_the_writers_on_stored_graphs(schema, stored):
    """The arithmetic on offsets gives the bytes ModelT.Pack writes, which are the file's."""
    import flatbuffers

    assert len(stored) == 3 * len(SPACES)
    for space, row, size in stored:
        m = schema.ModelT.InitFromPackedBuf(bytearray(row["tflite"]), 0)
        builder = flatbuffers.Builder(1024)
        builder.Finish(m.Pack(builder), file_identifier=b"TFL3")
        assert len(builder.Output()) == size, space  # the converter's last writer: Pack again is the file
        assert L.packed_size(**describe(schema, m)) == size, (space, row["arch_id"])


def test_a_changed_field_changes_the_size_as_the_writer_does(schema, stored):
    """Not only totals: one operator's version and one tensor's name moved, both ways agree."""
    import flatbuffers

    space, row, size = stored[0]
    m = schema.ModelT.InitFromPackedBuf(bytearray(row["tflite"]), 0)
    m.operatorCodes[0].version = 1  # the default: the field is left out
    m.subgraphs[0].tensors[3].name = m.subgraphs[0].tensors[3].name + b"xyz"
    builder = flatbuffers.Builder(1024)
    builder.Finish(m.Pack(builder), file_identifier=b"TFL3")
    real = len(builder.Output())
    assert real != size
    assert L.packed_size(**describe(schema, m)) == real


def test_lowered_size_is_the_files(stored):
    """The lowering's model size: to the byte where every name is the converter's, and within
    the few bytes of an arith.constant<N> a digit off elsewhere."""
    from predictors.graph import lower

    for space, row, size in stored:
        if space in ("breadth", "keyword_transformer", "mobile", "audio"):  # not lowered
            continue
        got = lower(*search_spaces.from_encoded(row["arch"])).size_bytes
        if space in EXACT_SPACES:
            assert got == size, (space, row["arch_id"], got - size)
        else:
            assert abs(got - size) <= 64, (space, row["arch_id"], got - size)


@pytest.mark.parametrize("name", EXACT_SPACES)
def test_lowered_size_is_a_fresh_exports_to_the_byte(name):
    from hwnas.export import to_tflite
    from predictors.graph import lower

    space = search_spaces.get(name)
    arch = space.sample(np.random.default_rng([3, 31]))
    tflite = to_tflite(space.build(arch, seed=2), quantize="int8", seed=2)
    assert lower(space, arch).size_bytes == len(tflite)


def test_vtables_are_shared_as_the_builder_shares_them():
    """Two equal tables: the second points at the first's vtable (4 bytes, not 4 + its vtable)."""
    import flatbuffers

    lay = L.layout(((0, 4), (1, 1)))
    p = L.Packer()
    p.table(lay)
    one = p.used
    p.table(lay)
    b = flatbuffers.Builder(0)
    for _ in range(2):
        b.StartObject(2)
        b.PrependInt32Slot(0, 7, 0)
        b.PrependInt8Slot(1, 1, 0)
        b.EndObject()
        if _ == 0:
            assert b.Offset() == one
    assert b.Offset() == p.used
