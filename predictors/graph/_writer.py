"""A TFLite flatbuffer of a lowered graph: payload-zeroed, like every stored graph.

``write_tflite(info)`` writes what a :class:`~predictors.tflite_model.ModelInfo` says
(operators with every numeric option, tensors with their types, shapes and
quantisation lengths, constant buffers of zeros of the right size), so that
``graph_arrays`` of the file equals ``extract_arrays(info)``.  ``size_bytes`` is kept
too: a metadata buffer (``hwnas_lowered``) fills the file up to it.  Datasets store
these for networks imported on the lowered path (``hwnas dataset import``), where
no exported file exists: every reader of stored graphs reads them as it reads the
others.  It is not a runnable model.
"""
from __future__ import annotations

from functools import lru_cache

from predictors.tflite_model import ModelInfo

METADATA_NAME = "hwnas_lowered"


@lru_cache(maxsize=None)
def _type_code(dtype: str) -> int:
    import tflite

    return int(getattr(tflite.TensorType, dtype))


@lru_cache(maxsize=None)
def _options_table(opcode: str):
    """(BuiltinOptions member code, [(slot, struct format, field name)]) of an operator's options."""
    import tflite

    from predictors.graph._lower import _OPTIONS_TYPE
    from predictors.tflite_model import option_fields

    table = _OPTIONS_TYPE.get(opcode)
    if table is None:
        return 0, ()
    code = int(getattr(tflite.BuiltinOptions, table))
    return code, tuple((slot, fmt, name) for name, slot, fmt, _ in option_fields("BuiltinOptions", code))


_PREPEND = {"<?": "PrependBoolSlot", "<b": "PrependInt8Slot", "<B": "PrependUint8Slot", "<h": "PrependInt16Slot",
            "<H": "PrependUint16Slot", "<i": "PrependInt32Slot", "<I": "PrependUint32Slot",
            "<q": "PrependInt64Slot", "<Q": "PrependUint64Slot", "<f": "PrependFloat32Slot",
            "<d": "PrependFloat64Slot"}


def write_tflite(info: ModelInfo) -> bytes:
    """The flatbuffer of ``info`` (subgraph 0 only), ``info.size_bytes`` long where it can be."""
    data = _write(info, pad=0)  # the metadata entry is there already, its buffer empty
    missing = info.size_bytes - len(data)
    if missing > 0:  # filling it adds its bytes and at most 3 of alignment
        data = _write(info, pad=missing)
    return data


def _vector(builder, start, values, prepend) -> int:
    start(builder, len(values))
    for v in reversed(values):
        prepend(v)
    return builder.EndVector()


def _write(info: ModelInfo, pad: int) -> bytes:
    import flatbuffers
    import tflite

    b = flatbuffers.Builder(1024)
    tensors, operators = info.tensors, info.operators
    # buffers: 0 is the empty sentinel; then one per constant tensor; then the metadata
    buffer_offsets = []
    tensor_buffer = {}
    by_length: dict[int, int] = {}  # every buffer is zeros: one per length (the file is no bigger than the real one)
    for t in tensors:
        if t.is_constant:
            n = int(t.nbytes)
            if n not in by_length:
                data = b.CreateByteVector(bytes(n))
                tflite.BufferStart(b)
                tflite.BufferAddData(b, data)
                buffer_offsets.append(tflite.BufferEnd(b))
                by_length[n] = len(buffer_offsets)
            tensor_buffer[t.index] = by_length[n]
    pad_data = b.CreateByteVector(bytes(pad))
    tflite.BufferStart(b)
    tflite.BufferAddData(b, pad_data)
    pad_buffer = tflite.BufferEnd(b)
    tflite.BufferStart(b)
    empty = tflite.BufferEnd(b)
    all_buffers = [empty] + buffer_offsets + [pad_buffer]
    # tensors
    tensor_offsets = []
    for t in tensors:
        quant = 0
        if t.quantized:
            channels = _channels(t) if t.per_channel else 1
            scale = _vector(b, tflite.QuantizationParametersStartScaleVector, [1.0] * channels, b.PrependFloat32)
            zero = _vector(b, tflite.QuantizationParametersStartZeroPointVector, [0] * channels, b.PrependInt64)
            tflite.QuantizationParametersStart(b)
            tflite.QuantizationParametersAddScale(b, scale)
            tflite.QuantizationParametersAddZeroPoint(b, zero)
            if t.per_channel:
                tflite.QuantizationParametersAddQuantizedDimension(b, _quantized_dimension(t))
            quant = tflite.QuantizationParametersEnd(b)
        shape = _vector(b, tflite.TensorStartShapeVector, list(t.shape), b.PrependInt32)
        name = b.CreateString("")
        tflite.TensorStart(b)
        tflite.TensorAddShape(b, shape)
        tflite.TensorAddType(b, _type_code(t.dtype))
        tflite.TensorAddBuffer(b, tensor_buffer.get(t.index, 0))
        tflite.TensorAddName(b, name)
        if quant:
            tflite.TensorAddQuantization(b, quant)
        tensor_offsets.append(tflite.TensorEnd(b))
    # operator codes and operators
    codes: list[str] = []
    for op in operators:
        if op.opcode not in codes:
            codes.append(op.opcode)
    code_offsets = []
    for opcode in codes:
        value = int(getattr(tflite.BuiltinOperator, opcode))
        tflite.OperatorCodeStart(b)
        tflite.OperatorCodeAddDeprecatedBuiltinCode(b, min(value, 127))
        tflite.OperatorCodeAddBuiltinCode(b, value)
        tflite.OperatorCodeAddVersion(b, 1)
        code_offsets.append(tflite.OperatorCodeEnd(b))
    op_offsets = []
    for op in operators:
        union, fields = _options_table(op.opcode)
        options = 0
        if union:
            b.StartObject(max((slot - 4) // 2 for slot, _, _ in fields) + 1 if fields else 0)
            for slot, fmt, name in fields:
                value = op.options.get(name)
                if value is None:
                    continue
                prepend = getattr(b, _PREPEND[fmt])
                value = bool(value) if fmt == "<?" else (float(value) if fmt in ("<f", "<d") else int(value))
                prepend((slot - 4) // 2, value, None)  # None as the default: always written
            options = b.EndObject()
        inputs = _vector(b, tflite.OperatorStartInputsVector, list(op.inputs), b.PrependInt32)
        outputs = _vector(b, tflite.OperatorStartOutputsVector, list(op.outputs), b.PrependInt32)
        tflite.OperatorStart(b)
        tflite.OperatorAddOpcodeIndex(b, codes.index(op.opcode))
        tflite.OperatorAddInputs(b, inputs)
        tflite.OperatorAddOutputs(b, outputs)
        if union:
            tflite.OperatorAddBuiltinOptionsType(b, union)
            tflite.OperatorAddBuiltinOptions(b, options)
        op_offsets.append(tflite.OperatorEnd(b))

    def offsets(start, items):
        start(b, len(items))
        for o in reversed(items):
            b.PrependUOffsetTRelative(o)
        return b.EndVector()

    sg_tensors = offsets(tflite.SubGraphStartTensorsVector, tensor_offsets)
    sg_inputs = _vector(b, tflite.SubGraphStartInputsVector, list(info.inputs), b.PrependInt32)
    sg_outputs = _vector(b, tflite.SubGraphStartOutputsVector, list(info.outputs), b.PrependInt32)
    sg_ops = offsets(tflite.SubGraphStartOperatorsVector, op_offsets)
    sg_name = b.CreateString("main")
    tflite.SubGraphStart(b)
    tflite.SubGraphAddTensors(b, sg_tensors)
    tflite.SubGraphAddInputs(b, sg_inputs)
    tflite.SubGraphAddOutputs(b, sg_outputs)
    tflite.SubGraphAddOperators(b, sg_ops)
    tflite.SubGraphAddName(b, sg_name)
    subgraph = tflite.SubGraphEnd(b)
    meta_name = b.CreateString(METADATA_NAME)
    tflite.MetadataStart(b)
    tflite.MetadataAddName(b, meta_name)
    tflite.MetadataAddBuffer(b, len(all_buffers) - 1)
    metadata = tflite.MetadataEnd(b)
    v_codes = offsets(tflite.ModelStartOperatorCodesVector, code_offsets)
    v_subgraphs = offsets(tflite.ModelStartSubgraphsVector, [subgraph])
    v_buffers = offsets(tflite.ModelStartBuffersVector, all_buffers)
    v_metadata = offsets(tflite.ModelStartMetadataVector, [metadata])
    description = b.CreateString("hwnas lowered graph (not a runnable model)")
    tflite.ModelStart(b)
    tflite.ModelAddVersion(b, 3)
    tflite.ModelAddOperatorCodes(b, v_codes)
    tflite.ModelAddSubgraphs(b, v_subgraphs)
    tflite.ModelAddDescription(b, description)
    tflite.ModelAddBuffers(b, v_buffers)
    tflite.ModelAddMetadata(b, v_metadata)
    model = tflite.ModelEnd(b)
    b.Finish(model, file_identifier=b"TFL3")
    return bytes(b.Output())


def _channels(t) -> int:
    """Scales of a per-channel tensor: the output channels of a weight, the length of a bias."""
    if len(t.shape) == 1:
        return t.shape[0]
    if len(t.shape) == 4 and t.shape[0] == 1:  # depthwise [1, kh, kw, C]
        return t.shape[3]
    return t.shape[0]


def _quantized_dimension(t) -> int:
    return 3 if len(t.shape) == 4 and t.shape[0] == 1 else 0


__all__ = ["METADATA_NAME", "write_tflite"]
