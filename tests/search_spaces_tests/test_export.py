from __future__ import annotations

import numpy as np
import pytest

from hwnas import ExportError, HwnasError
from hwnas.export import to_tflite
from predictors.tflite_model import inspect_model
from tests.models import tiny_cnn


def _interpreter(tflite: bytes):
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=tflite, num_threads=1)
    interpreter.allocate_tensors()
    return interpreter


def test_int8_export_has_int8_io_and_batch_one(int8_model):
    interpreter = _interpreter(int8_model)
    (inp,), (out,) = interpreter.get_input_details(), interpreter.get_output_details()
    assert inp["dtype"] == np.int8 and out["dtype"] == np.int8
    assert list(inp["shape"]) == [1, 16, 16, 3]
    assert list(out["shape"]) == [1, 5]
    info = inspect_model(int8_model)
    assert info.is_integer_quantized
    # full-integer: no float compute operator anywhere
    assert "QUANTIZE" not in info.opcodes and "DEQUANTIZE" not in info.opcodes


def test_float32_export_matches_keras_outputs(float_model):
    model = tiny_cnn()
    x = np.random.default_rng(1).standard_normal((1, 16, 16, 3)).astype(np.float32)
    expected = np.asarray(model(x, training=False))
    interpreter = _interpreter(float_model)
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x)
    interpreter.invoke()
    got = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)
    assert not inspect_model(float_model).is_integer_quantized


def test_int8_outputs_track_the_float_model(int8_model):
    """The quantised model computes the same function, up to quantisation error."""
    model = tiny_cnn()
    x = np.random.default_rng(2).standard_normal((1, 16, 16, 3)).astype(np.float32)
    expected = np.asarray(model(x, training=False))[0]
    interpreter = _interpreter(int8_model)
    inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    scale, zero = inp["quantization"]
    interpreter.set_tensor(inp["index"], np.clip(np.round(x / scale + zero), -128, 127).astype(np.int8))
    interpreter.invoke()
    oscale, ozero = out["quantization"]
    got = (interpreter.get_tensor(out["index"]).astype(np.float32)[0] - ozero) * oscale
    assert np.corrcoef(got, expected)[0, 1] > 0.9


def test_export_is_deterministic():
    model = tiny_cnn(seed=4)
    first = to_tflite(model, quantize="int8", seed=0)
    assert to_tflite(model, quantize="int8", seed=0) == first
    assert to_tflite(model, quantize="int8", seed=1) != first  # other calibration draw


def test_rebuilt_model_exports_to_the_same_bytes():
    """Same architecture and weights seed in a fresh Keras session: the same file."""
    from search_spaces import import_keras

    keras = import_keras()
    keras.backend.clear_session()
    first = to_tflite(tiny_cnn(seed=5))
    keras.backend.clear_session()
    assert to_tflite(tiny_cnn(seed=5)) == first


def test_dynamic_batch_model_is_fixed_to_batch_one():
    tflite = to_tflite(tiny_cnn(batch_size=None), quantize="int8")
    info = inspect_model(tflite)
    assert info.tensors[info.inputs[0]].shape == (1, 16, 16, 3)


def test_export_is_quiet(capfd):
    to_tflite(tiny_cnn(seed=3), quantize="int8")
    out, err = capfd.readouterr()
    assert out == "" and err == ""


def test_representative_array_is_used():
    data = np.full((4, 16, 16, 3), 0.5, np.float32)
    a = to_tflite(tiny_cnn(), representative=data)
    b = to_tflite(tiny_cnn())
    assert a != b  # other calibration data, other quantisation parameters
    with pytest.raises(ExportError, match="does not fit"):
        to_tflite(tiny_cnn(), representative=np.zeros((2, 8, 8, 3), np.float32))


def test_bad_quantize_mode():
    with pytest.raises(ExportError, match="unknown quantize mode 'int4'"):
        to_tflite(tiny_cnn(), quantize="int4")


def test_model_without_fixed_input_shape_is_an_error():
    from search_spaces import import_keras

    keras = import_keras()
    inputs = keras.Input((None, None, 3))
    model = keras.Model(inputs, keras.layers.Conv2D(4, 3)(inputs))
    with pytest.raises(ExportError, match="dynamic dimension"):
        to_tflite(model)


def test_converter_failure_is_a_project_error():
    """An op without an int8 kernel cannot be fully quantised: a clear error, not a crash."""
    from search_spaces import import_keras

    keras = import_keras()
    inputs = keras.Input((8,), batch_size=1)
    outputs = keras.layers.Lambda(lambda t: keras.ops.erf(t))(inputs)
    with pytest.raises(HwnasError, match="TFLite conversion \\(int8\\) failed"):
        to_tflite(keras.Model(inputs, outputs))


def _wide_mlp():
    """Dense layers big enough (4,096 weights) for the dynamic-range quantiser to take them."""
    from search_spaces import import_keras

    keras = import_keras()
    keras.utils.set_random_seed(0)
    inputs = keras.Input((64,), batch_size=1)
    x = keras.layers.Dense(64, activation="relu")(inputs)
    return keras.Model(inputs, keras.layers.Dense(64)(x))


def test_every_quantisation_regime_exports_what_it_says():
    """The converter's own output graph: the activation and weight types of each regime."""
    from predictors import targets

    def types(data):
        info = inspect_model(data)
        acts = {info.tensors[t].dtype for op in info.operators for t in op.outputs}
        weights = {t.dtype for t in info.tensors if t.is_constant and len(t.shape) >= 2}
        return info, acts, weights

    info, acts, weights = types(to_tflite(tiny_cnn(), quantize="int16x8"))
    assert acts == {"INT16"} and weights == {"INT8"} and info.is_integer_quantized
    assert targets.get("ethos-u55-128").measure(to_tflite(tiny_cnn(), quantize="int16x8"))["latency_ms"] > 0
    info, acts, weights = types(to_tflite(tiny_cnn(), quantize="float16"))
    assert "FLOAT16" in weights and "DEQUANTIZE" in info.opcodes and acts >= {"FLOAT32"}
    info, acts, weights = types(to_tflite(_wide_mlp(), quantize="dynamic"))
    assert weights == {"INT8"} and acts == {"FLOAT32"} and not info.is_integer_quantized
    info, acts, weights = types(to_tflite(_wide_mlp(), quantize="float32"))
    assert weights == {"FLOAT32"} and acts == {"FLOAT32"}
