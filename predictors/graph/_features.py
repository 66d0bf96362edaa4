"""The fixed layout of PerfSAGE node and graph features.

The layout is frozen here, independent of the installed ``tflite`` package, so that
a schema upgrade cannot silently shift columns under a trained predictor.  Any
change to the names below, or to how a value is computed, must bump
``FEATURE_SCHEMA``; :data:`FEATURE_VERSION` also carries a hash of the names.
"""
from __future__ import annotations

import hashlib

FEATURE_SCHEMA = 9
# 9: arena_plan_bytes gives every buffer the room LiteRT's arena gives it, a multiple of 64
#    bytes (each allocation starts 64-byte aligned): the streaming space's arenas of a few
#    hundred bytes were 0.68x the interpreter's (benchmarks/arena_estimate.py: 3.80 ->
#    0.95 % there, 1.19 -> 1.17 % over 1,800 committed networks).  No feature changes.
# 8: shapes a file leaves open (shape_signature -1, stored as placeholders) are LiteRT's
#    after one inference (graph.model_arrays); arena_plan_bytes keeps the tensors the
#    kernels size at run time outside the plan.  A conversion made every inference (a
#    densified float16 weight to float32: sparse float16 files) is in arena_plan_bytes
#    only, no longer in its consumer's scratch_bytes.  Graphs with static shapes and
#    dense weights (every committed one) are unchanged.
# 7: the hybrid kernels' scratch (dynamic range: int8 input copies, per-row scales and
#    zero points, int32 accumulators; weight row sums for the model's lifetime) in
#    scratch_bytes / persistent_scratch_bytes: graphs of other regimes are unchanged.
#    New, beside the features: ESTIMATES, arena_plan_bytes (LiteRT's arena plan).
# 6: a weight conversion's output, which the interpreter keeps in its arena: the
#    persistent_scratch_bytes of its first consumer where the conversion's input is a
#    constant of the file (a float16 weight's float32 copy, a sparse weight densified,
#    made once at load), its scratch_bytes where it is another conversion's output (a
#    densified float16 weight to float32, every inference); MediaPipe's
#    Convolution2DTransposeBias is read as the TRANSPOSE_CONV it is. Int8 graphs are unchanged.
# 5: live_activation_bytes, the bytes of every activation alive while an operator runs
#    (the per-operator term of peak_activation_bytes: what a memory planner must hold).
# 4: weight conversions (DEQUANTIZE / DENSIFY of a constant) folded into their consumer's
#    weights; MACs of PRELU (one per element), recurrent ops only for the per-token weight
#    rule, MediaPipe's Convolution2DTransposeBias. Same columns; every graph of the
#    committed dataset has the same features as under schema 3 (benchmarks/graph_extract.py).

# Operator-type vocabulary: the builtin code itself (0..254; CUSTOM is 32, one bucket
# for every custom op); codes the schema does not know yet share the last bucket.
NUM_OP_TYPES = 256
UNKNOWN_OP_TYPE = NUM_OP_TYPES - 1

DTYPES = ("FLOAT32", "FLOAT16", "INT8", "UINT8", "INT16", "INT32", "INT64", "BOOL")  # + other
ACTIVATIONS = ("NONE", "RELU", "RELU_N1_TO_1", "RELU6", "TANH", "SIGN_BIT")  # schema enum order
PADDINGS = ("SAME", "VALID")
CHANNEL_BLOCKS = (8, 16, 32)

# Every numeric scalar field of the builtin options of TFLite schema 2.18 (both
# option unions), by field name: ops that share a field (StrideW of conv, depthwise,
# pooling, transpose conv) share its column.  Subgraph indices and random seeds are
# identifiers, not quantities, and are left out (called subgraphs get cost columns).
OPTION_FIELDS = (
    "AdjX", "AdjY", "Algorithm", "AlignCorners", "Alpha", "Approximate", "AsymmetricQuantizeInputs",
    "Axis", "BatchDim", "BatchDims", "BatchGroupCount", "BeginMask", "Beta", "Bias", "BlockSize",
    "CellClip", "Combiner", "CompareType", "ComparisonDirection", "CompositeAttributesFormat",
    "DepthMultiplier", "DiagonalRecurrentTensors", "DilationDFactor", "DilationHFactor",
    "DilationWFactor", "Dimension", "EllipsisMask", "EndMask", "Exclusive", "FeatureGroupCount",
    "FilterHeight", "FilterWidth", "FusedActivationFunction", "HalfPixelCenters", "HasSideEffect",
    "IdxOutType", "InDataType", "IncludeAllNgrams", "IndexVectorDim", "IndicesAreSorted",
    "InputBatchDimension", "InputFeatureDimension", "IotaDimension", "IsStable", "KeepDims",
    "KeepNumDims", "KernelInputFeatureDimension", "KernelOutputFeatureDimension", "KernelType",
    "KeyDtype", "Max", "MaxSkipSize", "MergeOutputs", "Min", "Mode", "NarrowRange", "NewAxisMask",
    "NgramSize", "Num", "NumBits", "NumChannels", "NumSplits", "Offset", "OutDataType", "OutType",
    "OutputBatchDimension", "OutputFeatureDimension", "OutputType", "Padding", "PotScaleInt16",
    "ProjClip", "QuantizedBiasType", "Radius", "Rank", "ReduceFunction", "Reverse", "SeqDim",
    "ShrinkAxisMask", "StrideD", "StrideH", "StrideW", "TimeMajor", "Type", "UniqueIndices",
    "ValidateIndices", "ValueDtype", "ValuesCount", "WeightsFormat",
)


def _shape(prefix: str) -> list[str]:
    return [f"{prefix}_d{i}" for i in range(4)] + [f"{prefix}_rank"]


def _onehot(prefix: str, values) -> list[str]:
    return [f"{prefix}_{v.lower()}" for v in values] + [f"{prefix}_other"]


NODE_FEATURES: tuple[str, ...] = tuple(
    _shape("out_shape")  # first output, padded to 4-D (leading dims folded into d0)
    + _shape("in_shape")  # first non-constant input
    + _shape("weight_shape")  # first constant input
    + [
        "macs",  # multiply-accumulates (conv, depthwise, FC, matmul, transpose conv, LSTM, ...)
        "elementwise_ops",  # max(input, output) elements of every other op
        "out_elements",
        "weight_bytes",  # all constant inputs
        "in_activation_bytes",  # all non-constant inputs
        "out_activation_bytes",
        "num_inputs",
        "num_constant_inputs",
        "num_outputs",
        "quantized_input",
        "quantized_output",
        "per_channel_weights",
        "reads_graph_input",
        "writes_graph_output",
        "dynamic_shape",  # some input/output has a -1 dimension
        "called_subgraph_ops",  # control flow: the cost of the subgraphs an op calls
        "called_subgraph_macs",
        "called_subgraph_weight_bytes",
    ]
    # Channel alignment (schema 2): accelerators and SIMD kernels work on channels in
    # blocks (Ethos-U55-128: 16 output channels a block, so 24 channels cost what 32
    # do); c / ceil(c / k) * k of the last dimension, and the MACs (elementwise ops
    # where there are none) with the channels padded to multiples of k.
    + [f"{side}_channel_fill{k}" for side in ("out", "in") for k in CHANNEL_BLOCKS]
    + [f"work_pad{k}" for k in CHANNEL_BLOCKS]
    # Kernel scratch memory (schema 3): what a CPU kernel allocates beside the tensors
    # for one operator, by TFLite's reference/optimised kernels' rules (im2col of a
    # strided or non-1x1 conv, a transpose conv's col2im and int32 accumulators, a
    # reduction's int32 sums), and what it keeps for the model's lifetime (a transpose
    # conv's re-laid-out weights).  In a 96x96 super-resolution network these buffers
    # are 10x the activations.
    + ["scratch_bytes", "persistent_scratch_bytes"]
    # Liveness (schema 5): the bytes of the non-constant tensors alive while the operator
    # runs, in execution order (produced at or before it, read at or after it; graph
    # inputs from the start, outputs to the end).  Its maximum is peak_activation_bytes;
    # per operator it lets a readout find where the memory peak is and what runs there.
    + ["live_activation_bytes"]
    + _onehot("out_dtype", DTYPES)
    + _onehot("in_dtype", DTYPES)
    + _onehot("weight_dtype", DTYPES)
    + [f"activation_{a.lower()}" for a in ACTIVATIONS]
    + [f"padding_{p.lower()}" for p in PADDINGS]
    + [f"opt_{name}" for name in OPTION_FIELDS]
)

GRAPH_FEATURES: tuple[str, ...] = (
    "total_macs",
    "total_weight_bytes",
    "peak_activation_bytes",  # max over execution order of live non-constant tensors
    "peak_activation_scratch_bytes",  # the same with each operator's scratch_bytes live at it
    "persistent_scratch_bytes",
    "total_activation_bytes",
    "num_operators",
    "num_edges",
    "input_bytes",
    "output_bytes",
    "model_bytes",
    "num_subgraphs",
    "subgraph_operators",  # operators in the other subgraphs
    "subgraph_macs",
)

# Analytic estimates the extractor computes beside the features (``arrays["est"]``,
# ``Data.est``): no predictor's input, what a metric can be learnt against
# (``Target.priors``). ``arena_plan_bytes``: LiteRT's arena as its planner lays it out
# (``ArenaPlanner``): graph inputs held to the end, operators that run in place (ADD,
# SUB, MUL, DIV, SOFTMAX; RESHAPE, SQUEEZE, EXPAND_DIMS) sharing their input's buffer,
# each kernel's temporaries live while it runs, plus what lives as long as the model
# (converted weights, re-laid-out weights, a transposed convolution's buffers); on
# the committed networks within 1.5 % of the interpreter's own arena
# (benchmarks/arena_estimate.py), on MediaPipe's files 0.2 %.
ESTIMATES: tuple[str, ...] = ("arena_plan_bytes",)

NODE_INDEX = {name: i for i, name in enumerate(NODE_FEATURES)}
GRAPH_INDEX = {name: i for i, name in enumerate(GRAPH_FEATURES)}

FEATURE_VERSION = "perfsage-{}.{}".format(
    FEATURE_SCHEMA,
    hashlib.sha1(
        "|".join((str(NUM_OP_TYPES),) + NODE_FEATURES + ("#",) + GRAPH_FEATURES + ("#",) + ESTIMATES).encode()
    ).hexdigest()[:8],
)
