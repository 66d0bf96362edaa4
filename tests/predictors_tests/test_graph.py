from __future__ import annotations

import functools
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hwnas.export import to_tflite
from predictors import targets
from predictors.graph import (
    FEATURE_VERSION,
    GRAPH_FEATURES,
    NODE_FEATURES,
    UNKNOWN_OP_TYPE,
    Normalizer,
    from_tflite,
)
from predictors.graph._extract import CUSTOM_AS_BUILTIN
from predictors.tflite_model import inspect_model, option_fields
from search_spaces.errors import HwnasError, InvalidModelError
from search_spaces import zoo

COL = {name: i for i, name in enumerate(NODE_FEATURES)}
GCOL = {name: i for i, name in enumerate(GRAPH_FEATURES)}

# (network, quantisation) pairs that convert; int8 looped RNNs are refused by to_tflite.
CASES = [(name, q) for name in zoo.KERAS_ZOO for q in ("float32", "int8") if (name, q) != ("lstm", "int8")]


@functools.lru_cache(maxsize=None)
def exported(name: str, quantize: str) -> bytes:
    return to_tflite(zoo.KERAS_ZOO[name](), quantize=quantize, num_samples=2)


def check_graph(data, tflite: bytes) -> None:
    """What every extracted graph must satisfy."""
    info = inspect_model(tflite, with_options=True)
    kept = running_operators(info)
    n = len(kept)
    assert data.num_nodes == n and data.x.shape == (n, len(NODE_FEATURES))
    assert data.u.shape == (1, len(GRAPH_FEATURES))
    # a custom operator that is a builtin by another name has the builtin's type (the schema's code)
    import tflite as schema

    assert data.op_type.tolist() == [getattr(schema.BuiltinOperator, CUSTOM_AS_BUILTIN[op.opcode])
                                     if op.opcode in CUSTOM_AS_BUILTIN else min(op.code, UNKNOWN_OP_TYPE)
                                     for op in kept]
    assert torch.isfinite(data.x).all() and torch.isfinite(data.u).all() and torch.isfinite(data.edge_attr).all()
    assert data.edge_index.shape[0] == 2 and data.edge_attr.shape == (data.edge_index.shape[1], 1)
    if data.edge_index.numel():
        assert 0 <= int(data.edge_index.min()) and int(data.edge_index.max()) < n
        # edges follow execution order: a producer runs before its consumer
        assert bool((data.edge_index[0] < data.edge_index[1]).all())
    assert data.feature_version == FEATURE_VERSION
    assert data.u[0, GCOL["num_operators"]] == n
    assert_options_match_the_schema_classes(info, tflite)


def running_operators(info) -> list:
    """The operators that run per inference: all but the weight conversions (a DEQUANTIZE or
    DENSIFY whose input is a constant or another such conversion's output)."""
    constant = {t.index for t in info.tensors if t.is_constant}
    kept = []
    for op in info.operators:
        if op.opcode in ("DEQUANTIZE", "DENSIFY") and len(op.inputs) == 1 and op.inputs[0] in constant:
            constant.update(op.outputs)
        else:
            kept.append(op)
    return kept


def assert_options_match_the_schema_classes(info, tflite: bytes) -> None:
    """The explicit slot table reads what the ``tflite`` package's generated accessors read."""
    import tflite as schema

    model = schema.Model.GetRootAsModel(tflite, 0)
    ops = [model.Subgraphs(g).Operators(i) for g in range(model.SubgraphsLength())
           for i in range(model.Subgraphs(g).OperatorsLength())]
    mine_all = [op for sg in info.subgraphs for op in sg.operators]  # every subgraph
    assert len(ops) == len(mine_all)
    checked = 0
    for op, mine in zip(ops, mine_all):
        for union, type_of, table_of in (("BuiltinOptions", op.BuiltinOptionsType, op.BuiltinOptions),
                                         ("BuiltinOptions2", op.BuiltinOptions2Type, op.BuiltinOptions2)):
            code = type_of()
            table = table_of()
            if not code or table is None:
                continue
            name = next(k for k, v in vars(getattr(schema, union)).items() if v == code)
            options = getattr(schema, name)()
            options.Init(table.Bytes, table.Pos)
            for field, _, _, _ in option_fields(union, code):
                assert mine.options[field] == pytest.approx(float(getattr(options, field)())), (name, field)
                checked += 1
    assert checked or not any(op.BuiltinOptionsType() for op in ops)


@pytest.mark.parametrize("name, quantize", CASES)
def test_networks_from_no_search_space(name, quantize):
    tflite = exported(name, quantize)
    check_graph(from_tflite(tflite), tflite)


def test_lstm_int8_is_refused_before_the_converter_crashes():
    from search_spaces.errors import ExportError

    with pytest.raises(ExportError, match="unroll=True"):
        to_tflite(zoo.lstm(), quantize="int8")


def _no_pool_net():
    from search_spaces import import_keras

    keras = import_keras()
    L = keras.layers
    keras.utils.set_random_seed(0)
    inputs = keras.Input((12, 12, 3), batch_size=1)
    x = L.Conv2D(8, 3, strides=2, padding="same", activation="relu")(inputs)
    x = L.DepthwiseConv2D(3, padding="valid", activation="relu6")(x)
    x = L.Conv2D(16, 1)(x)
    return keras.Model(inputs, L.Dense(5)(L.Flatten()(x)))


def test_node_features_of_a_known_network():
    tflite = to_tflite(_no_pool_net())
    data = from_tflite(tflite)
    x = data.x
    assert [int(t) for t in data.op_type] == [3, 4, 3, 22, 9]  # CONV, DW, CONV, RESHAPE, FC
    conv, dw = x[0], x[1]
    assert conv[COL["opt_StrideW"]] == 2 and conv[COL["opt_StrideH"]] == 2
    assert conv[COL["padding_same"]] == 1 and conv[COL["activation_relu"]] == 1
    assert [float(v) for v in conv[COL["weight_shape_d0"]:COL["weight_shape_d3"] + 1]] == [8, 3, 3, 3]
    assert [float(v) for v in conv[COL["out_shape_d0"]:COL["out_shape_d3"] + 1]] == [1, 6, 6, 8]
    assert conv[COL["macs"]] == 6 * 6 * 8 * 3 * 3 * 3
    assert conv[COL["reads_graph_input"]] == 1 and conv[COL["quantized_input"]] == 1
    assert conv[COL["out_dtype_int8"]] == 1 and conv[COL["weight_dtype_int8"]] == 1
    assert dw[COL["padding_valid"]] == 1 and dw[COL["activation_relu6"]] == 1
    assert dw[COL["opt_DepthMultiplier"]] == 1
    assert dw[COL["macs"]] == 4 * 4 * 8 * 3 * 3
    assert x[4][COL["writes_graph_output"]] == 1
    # a chain: each operator feeds the next
    assert data.edge_index.tolist() == [[0, 1, 2, 3], [1, 2, 3, 4]]


def test_live_activation_bytes_of_a_known_network():
    """Per operator, the activations alive while it runs; their maximum is the graph's peak."""
    data = from_tflite(to_tflite(_no_pool_net()))
    x, u = data.x, data.u[0]
    live = [float(v) for v in x[:, COL["live_activation_bytes"]]]
    # int8 chain input 12x12x3 -> conv 6x6x8 -> dw 4x4x8 -> conv 4x4x16 -> reshape 256 -> FC 5:
    # at each operator its input (the graph input lives from the start) and its output
    assert live[:4] == [12 * 12 * 3 + 6 * 6 * 8, 6 * 6 * 8 + 4 * 4 * 8, 4 * 4 * 8 + 4 * 4 * 16, 256 + 256]
    assert live[4] == 256 + 5
    assert max(live) == float(u[GCOL["peak_activation_bytes"]])
    for name in ("ds_cnn", "resnet8"):  # branches: a skip input stays live across its branch
        g = from_tflite(exported(name, "int8"))
        assert float(g.x[:, COL["live_activation_bytes"]].max()) == float(g.u[0, GCOL["peak_activation_bytes"]])
        assert (g.x[:, COL["live_activation_bytes"]] >= g.x[:, COL["out_activation_bytes"]]).all()


def test_channel_alignment_features_of_a_known_network():
    x = from_tflite(to_tflite(_no_pool_net())).x
    conv, dw, conv1x1, fc = x[0], x[1], x[2], x[4]
    # conv: 3 input channels -> 8 output channels
    assert [float(conv[COL[f"out_channel_fill{k}"]]) for k in (8, 16, 32)] == [1.0, 0.5, 0.25]
    assert float(conv[COL["in_channel_fill16"]]) == pytest.approx(3 / 16)
    assert float(conv[COL["work_pad16"]]) == pytest.approx(6 * 6 * 8 * 3 * 3 * 3 / (0.5 * 3 / 16))
    # depthwise: no reduction over channels, only the output side is padded
    assert float(dw[COL["work_pad16"]]) == pytest.approx(4 * 4 * 8 * 3 * 3 / 0.5)
    # 1x1 conv 8 -> 16 and the classifier 256 -> 5 (reduction over the weights' last dimension)
    assert float(conv1x1[COL["out_channel_fill16"]]) == 1.0 and float(conv1x1[COL["in_channel_fill16"]]) == 0.5
    assert float(fc[COL["in_channel_fill32"]]) == 1.0 and float(fc[COL["out_channel_fill8"]]) == pytest.approx(5 / 8)


def test_channel_blocks_matter_on_the_npu():
    """Why the alignment columns exist, checked on Vela: on the U55-128 a 3x3 convolution
    over 24 input channels takes about as long as one over 32 (and longer, for 16
    outputs), though it has a quarter fewer MACs."""
    from search_spaces import import_keras

    keras = import_keras()

    def net(cin, cout):
        keras.utils.set_random_seed(0)
        inputs = keras.Input((32, 32, cin), batch_size=1)
        return keras.Model(inputs, keras.layers.Conv2D(cout, 3, padding="same")(inputs))

    npu = targets.get("ethos-u55-128")
    lat = {c: npu.measure(to_tflite(net(*c), num_samples=2))["latency_ms"] for c in [(24, 24), (32, 32), (24, 16), (32, 16)]}
    assert lat[24, 24] > 0.9 * lat[32, 32] and lat[24, 16] > lat[32, 16]


def test_total_macs_equal_vela_on_mac_only_networks():
    """Checked against a count we did not write: Vela's nn_macs."""
    tflite = to_tflite(_no_pool_net())
    vela_macs = targets.get("ethos-u55-128").measure(tflite)["nn_macs"]
    assert from_tflite(tflite).u[0, GCOL["total_macs"]].item() == vela_macs


@pytest.mark.parametrize("name", ["ds_cnn", "resnet8", "mobilenet_v1_025"])
def test_total_macs_track_vela(name):
    """Vela also counts pooling as MACs; ours keeps them apart, so allow the pooling share."""
    tflite = exported(name, "int8")
    vela_macs = targets.get("ethos-u55-128").measure(tflite)["nn_macs"]
    ours = from_tflite(tflite).u[0, GCOL["total_macs"]].item()
    assert ours <= vela_macs and ours == pytest.approx(vela_macs, rel=0.02)


def test_edges_join_producers_to_every_consumer():
    data = from_tflite(exported("resnet8", "int8"))
    ops = [int(t) for t in data.op_type]
    indegree = torch.bincount(data.edge_index[1], minlength=data.num_nodes)
    for node, code in enumerate(ops):
        if code == 0:  # ADD joins the residual and the main path
            assert indegree[node] == 2


def test_control_flow_subgraphs_are_costed():
    w = from_tflite(zoo.while_loop_model())
    assert w.num_nodes == 1  # subgraph 0: just the WHILE
    assert w.x[0, COL["called_subgraph_ops"]] >= 2  # cond + body
    assert w.x[0, COL["called_subgraph_macs"]] == 64  # [1,8] x [8,8] in the body
    assert w.u[0, GCOL["num_subgraphs"]] == 3
    i = from_tflite(zoo.if_model())
    if_node = [k for k, t in enumerate(i.op_type.tolist()) if t == 118]
    assert len(if_node) == 1
    assert i.x[if_node[0], COL["called_subgraph_macs"]] == 64  # the then-branch matmul
    assert i.u[0, GCOL["subgraph_operators"]] >= 2


def test_dynamic_shapes():
    data = from_tflite(zoo.dynamic_batch_model())
    assert data.x[0, COL["dynamic_shape"]] == 1
    assert torch.isfinite(data.x).all()


def _rewrite_opcode(tflite: bytes, code: int, custom: bytes | None = None) -> bytes:
    import flatbuffers
    from tensorflow.lite.python import schema_py_generated as schema

    model = schema.ModelT.InitFromObj(schema.Model.GetRootAs(tflite, 0))
    model.operatorCodes[0].builtinCode = code
    model.operatorCodes[0].deprecatedBuiltinCode = min(code, 127)
    model.operatorCodes[0].customCode = custom
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def test_custom_and_unknown_operators_get_their_buckets(int8_model):
    custom = from_tflite(_rewrite_opcode(int8_model, 32, b"MyAccelOp"))
    assert int(custom.op_type[0]) == 32
    future = from_tflite(_rewrite_opcode(int8_model, 400))
    assert int(future.op_type[0]) == UNKNOWN_OP_TYPE
    assert torch.isfinite(future.x).all()


def test_large_graph():
    tflite = to_tflite(zoo.deep_chain(350), quantize="float32")
    data = from_tflite(tflite)
    assert data.num_nodes >= 1000
    check_graph(data, tflite)


def test_normaliser_fits_transforms_and_round_trips(tmp_path):
    graphs = [from_tflite(exported(name, "int8")) for name in ("ds_cnn", "resnet8", "fc_autoencoder")]
    norm = Normalizer.fit(graphs)
    x = torch.cat([norm(g).x for g in graphs])
    assert torch.isfinite(x).all()
    assert x.mean(0).abs().max() < 1e-3  # standardised on the training graphs
    # wide-range columns are log-scaled, flags and small enums are not
    assert norm.node.log[COL["macs"]] and not norm.node.log[COL["activation_relu"]]
    # a column constant in training is dropped, a value far outside it is clipped
    from predictors.graph.normalizer import CLIP

    const = int(np.flatnonzero(norm.node.std == 0)[0])
    odd = graphs[0].clone()
    odd.x = odd.x.clone()
    odd.x[:, const] += 3e5
    odd.x[:, COL["macs"]] = 1e30
    scaled = norm(odd).x
    assert (scaled[:, const] == 0).all() and scaled[:, COL["macs"]].max() == pytest.approx(CLIP)
    path = tmp_path / "norm.json"
    norm.save(path)
    again = Normalizer.load(path)
    assert torch.equal(again(graphs[0]).x, norm(graphs[0]).x)
    assert torch.equal(again(graphs[0]).u, norm(graphs[0]).u)
    stale = json.loads(path.read_text())
    stale["feature_version"] = "perfsage-0.old"
    path.write_text(json.dumps(stale))
    with pytest.raises(HwnasError, match="refit"):
        Normalizer.load(path)
    graphs[0].feature_version = "perfsage-0.old"
    with pytest.raises(HwnasError, match="extract it again"):
        norm(graphs[0])


def test_normaliser_drops_named_columns_for_an_ab():
    graphs = [from_tflite(exported(name, "int8")) for name in ("ds_cnn", "resnet8")]
    norm = Normalizer.fit(graphs)
    before = norm(graphs[0]).x
    assert before[:, COL["live_activation_bytes"]].abs().max() > 0
    norm.drop(["live_activation_bytes", "peak_activation_bytes"])
    after, u = norm(graphs[0]).x, norm(graphs[0]).u
    assert (after[:, COL["live_activation_bytes"]] == 0).all() and (u[:, GCOL["peak_activation_bytes"]] == 0).all()
    keep = [i for i in range(len(NODE_FEATURES)) if i != COL["live_activation_bytes"]]
    assert torch.equal(after[:, keep], before[:, keep])
    with pytest.raises(HwnasError, match="no feature 'nope'"):
        norm.drop(["nope"])


def test_bad_files_raise_the_project_error(tmp_path):
    with pytest.raises(InvalidModelError, match="empty"):
        from_tflite(b"")
    with pytest.raises(InvalidModelError, match="not a TFLite"):
        from_tflite(b"GIF89a" + bytes(100))
    with pytest.raises(InvalidModelError, match="no such file"):
        from_tflite(tmp_path / "x.tflite")


FUZZ_EXAMPLES = int(os.environ.get("HWNAS_FUZZ_EXAMPLES", "200"))


@pytest.mark.parametrize("name", ["resnet8", "attention_block"])
def test_fuzzed_flatbuffers_raise_only_the_project_error(name):
    """Byte edits, truncations and splices of valid models: parse or InvalidModelError, nothing else."""
    original = exported(name, "int8")

    @settings(max_examples=FUZZ_EXAMPLES, deadline=5000, derandomize=FUZZ_EXAMPLES <= 200,
              suppress_health_check=list(HealthCheck))
    @given(data=st.data())
    def fuzz(data):
        buf = bytearray(original)
        kind = data.draw(st.sampled_from(["bytes", "words", "truncate"]))
        if kind == "truncate":
            buf = buf[: data.draw(st.integers(0, len(buf) - 1))]
        else:
            for _ in range(data.draw(st.integers(1, 16))):
                pos = data.draw(st.integers(0, len(buf) - 4))
                if kind == "bytes":
                    buf[pos] = data.draw(st.integers(0, 255))
                else:  # overwrite a 32-bit word: hits offsets and vector lengths
                    word = data.draw(st.sampled_from([0, 1, 0x7FFFFFFF, 0xFFFFFFFF, len(buf), 2**20]))
                    buf[pos:pos + 4] = int(word).to_bytes(4, "little")
        try:
            graph = from_tflite(bytes(buf))
        except InvalidModelError:
            return
        assert torch.isfinite(graph.x).all()

    fuzz()


@pytest.mark.slow
def test_every_keras_application_that_converts():
    """Each keras.applications network (weights=None, small input) yields a valid graph."""
    from search_spaces import import_keras

    keras = import_keras()
    names = sorted(n for n in dir(keras.applications) if n[0].isupper())
    converted, refused = [], []
    for name in names:
        size = 96 if not name.startswith(("Inception", "Xception", "NASNetLarge")) else 96
        try:
            model = getattr(keras.applications, name)(weights=None, input_shape=(size, size, 3), classes=10)
        except Exception as exc:  # some need larger inputs: note and move on
            refused.append((name, str(exc)[:80]))
            continue
        if model.count_params() > 60e6:
            refused.append((name, "over 60M parameters (memory)"))
            continue
        try:
            tflite = to_tflite(model, quantize="float32")
        except HwnasError as exc:
            refused.append((name, str(exc)[:80]))
            continue
        check_graph(from_tflite(tflite), tflite)
        converted.append(name)
    print(f"\nconverted {len(converted)}: {converted}\nnot converted {len(refused)}: {refused}")
    assert len(converted) >= 30


def _scratch_net(stride: int):
    """3x3 conv (im2col), 1x1 conv (none), transpose conv (col2im, accumulator, weights), mean."""
    from search_spaces import import_keras

    keras = import_keras()
    keras.utils.set_random_seed(0)
    inputs = keras.Input((12, 12, 3), batch_size=1)
    x = keras.layers.Conv2D(8, 3, strides=stride, padding="same", activation="relu")(inputs)
    x = keras.layers.Conv2D(16, 1, activation="relu")(x)
    x = keras.layers.Conv2DTranspose(4, 5, strides=2, padding="same")(x)
    outputs = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, outputs)


@pytest.mark.parametrize("stride", [1, 2])
def test_scratch_bytes_equal_the_interpreters_own_scratch_tensors(stride):
    """The kernel-scratch columns against LiteRT: the tensors the interpreter adds to
    the model's (im2col, col2im, accumulators, re-laid-out weights) have, in total,
    the bytes our columns say, and the peak with scratch bounds the planned arena."""
    from predictors.targets.litert import LiteRTCPUTarget, arena_bytes

    tflite = to_tflite(_scratch_net(stride), num_samples=2)
    info = inspect_model(tflite)
    interpreter = LiteRTCPUTarget()._interpreter(tflite, delegates=False)
    raw = interpreter._interpreter
    added = 0
    for index in range(len(info.tensors), raw.NumTensors(0)):
        try:
            shape, dtype = raw.TensorSize(index, 0), raw.TensorType(index, 0)
        except (ValueError, RuntimeError):  # a scratch slot without a shape
            continue
        added += int(np.prod(shape)) * np.dtype(dtype).itemsize if len(shape) else 0
    data = from_tflite(tflite)
    x, u = data.x, data.u[0]
    ours = float(x[:, COL["scratch_bytes"]].sum() + x[:, COL["persistent_scratch_bytes"]].sum())
    assert ours > 0 and abs(ours - added) <= 64, (ours, added)  # the mean's few int32 indices
    assert float(x[1, COL["scratch_bytes"]]) == 0.0  # 1x1, stride 1: no im2col
    planned = arena_bytes(interpreter, {t.index for t in info.tensors if t.is_constant})
    peak = float(u[GCOL["peak_activation_scratch_bytes"]] + u[GCOL["persistent_scratch_bytes"]])
    assert float(u[GCOL["peak_activation_bytes"]]) < 0.5 * planned
    assert peak == pytest.approx(planned, rel=0.1)


# --- every regime a real file comes in (schema 4) -------------------------------------------------

THIRD_PARTY = Path(__file__).resolve().parents[1] / "data" / "thirdparty"
THIRD_PARTY_FILES = sorted(THIRD_PARTY.glob("*.tflite"))


def independent_macs(data: bytes) -> int:
    """MACs counted through the `tflite` package's own schema classes (not our reader):
    convolutions, depthwise, fully connected, transposed convolutions (MediaPipe's custom one
    too), and PReLU's one multiply per element."""
    import tflite

    model = tflite.Model.GetRootAsModel(data, 0)
    sg = model.Subgraphs(0)

    def shape(i):
        t = sg.Tensors(i)
        return [int(d) for d in t.ShapeAsNumpy()] if t.ShapeLength() else []

    total = 0
    for k in range(sg.OperatorsLength()):
        op = sg.Operators(k)
        code = model.OperatorCodes(op.OpcodeIndex())
        builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
        kind = code.CustomCode().decode() if builtin == tflite.BuiltinOperator.CUSTOM else builtin
        ins, out = op.InputsAsNumpy(), int(np.prod(shape(op.Outputs(0))))
        if kind == tflite.BuiltinOperator.CONV_2D:
            total += out * int(np.prod(shape(ins[1])[1:]))
        elif kind == tflite.BuiltinOperator.DEPTHWISE_CONV_2D:
            total += out * int(np.prod(shape(ins[1])[1:3]))
        elif kind == tflite.BuiltinOperator.FULLY_CONNECTED:
            total += out * shape(ins[1])[-1]
        elif kind == tflite.BuiltinOperator.PRELU:
            total += out
        elif kind == "Convolution2DTransposeBias":
            total += int(np.prod(shape(ins[0]))) * int(np.prod(shape(ins[1])[:-1]))
    return total


@pytest.mark.parametrize("path", THIRD_PARTY_FILES, ids=lambda p: p.stem)
def test_third_party_files_fold_weight_conversions_and_count_macs_independently(path):
    """MediaPipe's shipped models (float16 weights, sparse weights, a custom op; see
    tests/data/thirdparty/README.md): every DEQUANTIZE / DENSIFY of a constant is part of its
    consumer's weights, and the MACs equal a count made through the `tflite` package."""
    data = path.read_bytes()
    info = inspect_model(data)
    conversions = sum(op.opcode in ("DEQUANTIZE", "DENSIFY") for op in info.operators)
    graph = from_tflite(data)
    check_graph(graph, data)
    assert graph.num_nodes == len(info.operators) - conversions
    assert graph.u[0, GCOL["total_macs"]].item() == pytest.approx(independent_macs(data), rel=1e-6)
    half = graph.x[:, COL["weight_dtype_float16"]] == 1
    if conversions:  # float16 weights, recorded as such: their stored bytes (the sparse ones packed), which
        # the file holds; at the float32 they are dequantised to they would be twice the file
        assert half.any() and graph.u[0, GCOL["total_weight_bytes"]] <= len(data)
    assert not (graph.op_type == 6).any()  # DEQUANTIZE: no node left


def test_mediapipes_custom_transposed_convolution_reads_as_the_converters_own():
    """MediaPipe's ``Convolution2DTransposeBias`` (selfie segmentation, float16 weights) is
    read as the ``TRANSPOSE_CONV`` the TFLite converter makes of the same layer (Keras
    ``Conv2DTranspose``, 16 -> 1 channels, 2x2, stride 2, same padding, a non-zero bias,
    on 128x128, exported float16): the operator type and every node feature but those of
    its place in the graph."""
    from search_spaces import import_keras

    keras = import_keras()
    keras.utils.set_random_seed(0)
    inputs = keras.Input((128, 128, 16), batch_size=1)
    layer = keras.layers.Conv2DTranspose(1, 2, strides=2, padding="same", bias_initializer="ones")
    ref = from_tflite(to_tflite(keras.Model(inputs, layer(inputs)), quantize="float16"))
    selfie = from_tflite((THIRD_PARTY / "selfie_segmentation.tflite").read_bytes())
    theirs = int((ref.op_type == 67).nonzero()[0, 0])
    assert int(selfie.op_type[-2]) == 67 and not (selfie.op_type == 32).any()  # no CUSTOM node left
    context = {"reads_graph_input", "writes_graph_output", "live_activation_bytes"}  # where it sits
    differ = [name for name, col in COL.items() if name not in context
              and selfie.x[-2, col].item() != pytest.approx(ref.x[theirs, col].item(), rel=1e-6)]
    assert differ == []
    # output shape (int32 [4]), float16 weights 1x2x2x16 and bias [1]
    assert selfie.x[-2, COL["weight_bytes"]].item() == 16 + 128 + 2


def test_one_network_in_every_regime_has_one_graph_structure_and_one_mac_count():
    """float32, float16 weights, dynamic range, int8 and int16x8 exports of one network:
    the same operators in the same order, the same MACs per node; only dtypes differ."""
    model = zoo.KERAS_ZOO["resnet8"]()
    graphs = {q: from_tflite(to_tflite(model, quantize=q, num_samples=2))
              for q in ("float32", "float16", "dynamic", "int8", "int16x8")}
    ref = graphs["int8"]
    for regime, g in graphs.items():
        assert g.op_type.tolist() == ref.op_type.tolist(), regime
        assert torch.equal(g.x[:, COL["macs"]], ref.x[:, COL["macs"]]), regime
        assert torch.equal(g.edge_index, ref.edge_index), regime
    convs = ref.op_type == 3  # CONV_2D
    assert (graphs["float16"].x[convs, COL["weight_dtype_float16"]] == 1).all()
    # dynamic range: int8 weights (the converter leaves those under 1,024 elements float), float activations
    hybrid = graphs["dynamic"].x[convs]
    assert (hybrid[:, COL["weight_dtype_int8"]] == 1).sum() >= 5 and (hybrid[:, COL["in_dtype_float32"]] == 1).all()
    # float16 weights take half the bytes of float32 ones
    ratio = graphs["float16"].u[0, GCOL["total_weight_bytes"]] / graphs["float32"].u[0, GCOL["total_weight_bytes"]]
    assert ratio == pytest.approx(0.5, rel=0.02)


def test_shapes_left_open_in_the_file_are_the_interpreters_at_run_time():
    """A file with an unknown batch stores placeholders (1) for every dimension after it: an
    STFT of 4,096 samples reads as one frame.  LiteRT's shapes after one inference give
    the 31 frames: the FULLY_CONNECTED's MACs are 31 x 129 x 16, not 129 x 16."""
    from pathlib import Path

    from predictors.graph._extract import model_arrays
    from predictors.tflite_model import builtin_operator_names

    path = Path(__file__).resolve().parents[1] / "data" / "stft_unknown_batch.tflite"
    fc = {v: k for k, v in builtin_operator_names().items()}["FULLY_CONNECTED"]
    macs = NODE_FEATURES.index("macs")
    arrays, info = model_arrays(path)
    assert info.shapes_from == "run time"
    assert arrays["x"][arrays["op_type"] == fc, macs].tolist() == [31 * 129 * 16]
    placeholders, info = model_arrays(path, resolve_shapes=False)
    assert info.shapes_from == ""
    assert placeholders["x"][placeholders["op_type"] == fc, macs].tolist() == [129 * 16]


def test_shapes_litert_cannot_resolve_stay_placeholders_and_predict_says_so(monkeypatch):
    from pathlib import Path

    from predictors.graph import _runtime_shapes
    from predictors.predictor import PredictionWarning, load_predictor

    def refuse(data, count, timeout_s=120.0):
        raise _runtime_shapes.ShapeResolutionError("no kernel for it")

    monkeypatch.setattr(_runtime_shapes, "runtime_shapes", refuse)
    path = Path(__file__).resolve().parents[1] / "data" / "stft_unknown_batch.tflite"
    with pytest.warns(PredictionWarning, match="could not run the model to tell them \\(no kernel for it\\)"):
        load_predictor("perfsage-cpu-litert").predict(path)


def test_a_sparse_float16_weights_per_inference_conversion_is_no_nodes_work():
    """MediaPipe's sparse face detector densifies float16 weights and converts them to
    float32 on every inference in the plain interpreter (1.85 MB, counted here from the
    file's DENSIFY -> DEQUANTIZE chains): arena (``arena_plan_bytes``, equal to LiteRT's in
    test_litert), but no node's ``scratch_bytes``: XNNPACK, which latency is timed with,
    converts static weights once."""
    from pathlib import Path

    from predictors.graph import graph_arrays
    from predictors.tflite_model import load_model

    path = Path(__file__).resolve().parents[1] / "data" / "thirdparty" / "face_detection_full_range_sparse.tflite"
    _, info = load_model(path)
    producer = {t: op for op in info.operators for t in op.outputs}
    conversions = sum(info.tensors[op.outputs[0]].nbytes for op in info.operators
                      if op.opcode == "DEQUANTIZE" and getattr(producer.get(op.inputs[0]), "opcode", "") == "DENSIFY")
    assert conversions > 1.8e6
    scratch = graph_arrays(path)["x"][:, NODE_FEATURES.index("scratch_bytes")].sum()
    assert scratch < conversions  # the kernels' own temporaries alone (about 1 MB)
