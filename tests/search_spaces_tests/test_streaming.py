"""The streaming space: state kept in the model between inferences, as wake-word files ship it."""
from __future__ import annotations

import collections

import numpy as np
import pytest

import search_spaces
from search_spaces.export import to_tflite

SPACE = search_spaces.get("streaming")
STATE_OPS = {"CALL_ONCE", "VAR_HANDLE", "READ_VARIABLE", "ASSIGN_VARIABLE"}
BLOCK = {"type": None, "kernel": None, "kernel2": None, "dilation": None, "channels": None, "residual": None}
ARCHS = {  # small archs covering every block type and both layouts; the operators each must have
    "channels: ds, mix, dilated; flatten": (
        {"layout": "channels", "features": 40, "stride": 3, "stem_kernel": 5, "stem_channels": 16,
         "blocks": [dict(BLOCK, type="ds", kernel=5, channels=16, residual=True),
                    dict(BLOCK, type="mix", kernel=9, kernel2=3, channels=24, residual=False),
                    dict(BLOCK, type="dilated", dilation=4, channels=24, residual=True)],
         "head": "flatten", "head_frames": 4, "activation": "relu", "classes": 1},
        {"RESHAPE", "CONCATENATION", "STRIDED_SLICE", "SPLIT_V", "DEPTHWISE_CONV_2D", "CONV_2D", "ADD",
         "FULLY_CONNECTED", "LOGISTIC"}),
    "channels: gru, conv; average": (
        {"layout": "channels", "features": 20, "stride": 1, "stem_kernel": 3, "stem_channels": 8,
         "blocks": [dict(BLOCK, type="gru", channels=16), dict(BLOCK, type="conv", kernel=3, channels=16,
                                                              residual=True)],
         "head": "average", "head_frames": 2, "activation": "relu6", "classes": 12},
        {"FULLY_CONNECTED", "LOGISTIC", "TANH", "MUL", "SUB", "ADD", "CONV_2D", "MEAN", "SOFTMAX"}),
    "image: conv, mix, dilated, gru, ds": (
        {"layout": "image", "features": 32, "stride": 2, "stem_kernel": 3, "freq_stride": 2, "stem_channels": 8,
         "blocks": [dict(BLOCK, type="conv", kernel=3, channels=8, residual=True),
                    dict(BLOCK, type="mix", kernel=5, kernel2=3, channels=16, residual=False),
                    dict(BLOCK, type="dilated", dilation=2, channels=16, residual=True),
                    dict(BLOCK, type="gru", channels=16),
                    dict(BLOCK, type="ds", kernel=7, channels=16, residual=False)],
         "head": "flatten", "head_frames": 1, "activation": "relu", "classes": 4},
        {"PAD", "CONV_2D", "SPLIT_V", "DEPTHWISE_CONV_2D", "ADD", "TANH", "FULLY_CONNECTED", "SOFTMAX"}),
}


def _arch(name: str) -> dict:
    arch = ARCHS[name][0]
    blocks = arch["blocks"]
    flat = dict(arch, blocks=len(blocks), **{k: [b[k] for b in blocks] for k in BLOCK})
    return SPACE.decode(dict(flat, space="streaming"))


def _litert_stream(tflite: bytes, frames: list[np.ndarray]) -> list[np.ndarray]:
    """The interpreter's first output after each of ``frames``, fed one after the other to
    one interpreter (its variables carry over)."""
    from ai_edge_litert.interpreter import Interpreter

    from search_spaces._quiet import native_output_captured

    with native_output_captured():
        interpreter = Interpreter(model_content=tflite, num_threads=1)
        interpreter.allocate_tensors()
        (inp,), (out,) = interpreter.get_input_details(), interpreter.get_output_details()
        outputs = []
        for x in frames:
            interpreter.set_tensor(inp["index"], x)
            interpreter.invoke()
            outputs.append(interpreter.get_tensor(out["index"]).copy())
    return outputs


@pytest.mark.parametrize("name", list(ARCHS))
def test_each_block_keeps_its_state_in_variables_and_litert_streams_what_keras_does(name):
    """Six inferences in a row on one interpreter equal six calls of the Keras model (whose
    variables carry the state the same way), and the file has the state operators and the
    initialisation subgraph."""
    from predictors.tflite_model import inspect_model

    arch = _arch(name)
    model = SPACE.build(arch, seed=0)
    assert [tuple(o.shape) for o in model.outputs] == SPACE.output_shapes(arch)
    tflite = to_tflite(model, quantize="float32")
    info = inspect_model(tflite)
    ops = collections.Counter(info.opcodes)
    assert (STATE_OPS | ARCHS[name][1]) <= set(ops), (STATE_OPS | ARCHS[name][1]) - set(ops)
    rng = np.random.default_rng(0)
    frames = [rng.uniform(-1, 1, size=(1, *SPACE.input_shape(arch))).astype(np.float32) for _ in range(6)]
    model = SPACE.build(arch, seed=0)  # fresh state (the export's tracing ran the model)
    want = [np.asarray(model(x, training=False)) for x in frames]
    got = _litert_stream(tflite, frames)
    for step, (g, w) in enumerate(zip(got, want)):
        np.testing.assert_allclose(g, w, rtol=1e-3, atol=1e-5, err_msg=f"step {step}")
    assert not np.allclose(got[0], got[1]) or not np.allclose(got[1], got[2])  # the state moves the output


def test_the_stream_is_the_convolution_of_the_whole_sequence():
    """NumPy's reading of a stem and one convolution block over the whole sequence so far (the
    history before the first frame zero) is what LiteRT computes one hop at a time."""
    arch = SPACE.decode({
        "space": "streaming", "layout": "channels", "features": 10, "stride": 2, "stem_kernel": 5,
        "stem_channels": 8, "blocks": 1, "type": ["conv"], "kernel": [3], "kernel2": [None], "dilation": [None],
        "channels": [16], "residual": [False], "head": "flatten", "head_frames": 1, "activation": "relu",
        "classes": 4})
    model = SPACE.build(arch, seed=3)
    tflite = to_tflite(model, quantize="float32")
    convs = [layer for layer in model.layers if type(layer).__name__ == "Conv2D"]
    (w1, b1), (w2, b2) = (layer.get_weights() for layer in convs)
    dense = model.get_layer("scores").get_weights()
    steps = 7
    x = np.random.default_rng(1).normal(size=(steps * 2, 10)).astype(np.float32)
    padded = np.concatenate([np.zeros((3, 10), np.float32), x])  # stem: 5 frames, 2 new a hop
    stem = np.stack([np.maximum(np.einsum("kf,kfc->c", padded[2 * t:2 * t + 5], w1[:, 0]) + b1, 0)
                     for t in range(steps)])
    stem = np.concatenate([np.zeros((2, 8), np.float32), stem])  # the block's 3 frames
    block = np.stack([np.maximum(np.einsum("kf,kfc->c", stem[t:t + 3], w2[:, 0]) + b2, 0) for t in range(steps)])
    logits = block @ dense[0] + dense[1]
    want = np.exp(logits - logits.max(1, keepdims=True))
    want /= want.sum(1, keepdims=True)
    got = _litert_stream(tflite, [x[2 * t:2 * t + 2][None] for t in range(steps)])
    np.testing.assert_allclose(np.concatenate(got), want, rtol=1e-4, atol=1e-6)


def test_int8_keeps_the_state_in_int8_and_vela_runs_the_variables_on_the_cpu():
    """As microWakeWord's files: the variables are int8 (no DEQUANTIZE around them), and the
    Ethos-U compiles the convolutions for its NPU and the variable operators for its CPU."""
    from predictors import targets
    from predictors.tflite_model import inspect_model

    arch = _arch("channels: ds, mix, dilated; flatten")
    tflite = to_tflite(SPACE.build(arch, seed=0), quantize="int8", num_samples=4)
    info = inspect_model(tflite)
    assert not {"DEQUANTIZE", "QUANTIZE"} & set(info.opcodes), info.opcodes
    assert {info.tensors[op.outputs[0]].dtype for op in info.operators if op.opcode == "READ_VARIABLE"} == {"INT8"}
    assert info.num_subgraphs == 2  # the variables' initialisation, run by CALL_ONCE
    measured = targets.get("ethos-u55-128").measure(tflite)
    assert measured["cpu_operators"] >= 4 and measured["npu_operators"] > 0


def test_the_lowering_refuses_it_so_a_search_exports_every_candidate():
    from predictors.graph import lower
    from predictors.graph._lowered import LoweringError

    with pytest.raises(LoweringError, match="keras.ops.concatenate"):
        lower(SPACE, _arch("image: conv, mix, dilated, gru, ds"))
