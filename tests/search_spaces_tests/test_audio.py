"""The audio space: signal processing inside the graph, as audio files ship it."""
from __future__ import annotations

import collections

import numpy as np
import pytest

import search_spaces
from search_spaces.audio import _fourier_kernels
from search_spaces.export import to_tflite
from tests.search_spaces_tests.helpers import litert_outputs

SPACE = search_spaces.get("audio")
ARCHS = {  # small archs, each front end; the operators the converter must make of them
    "stft, magnitude, matmul, standardised, mlp": (
        {"frontend": "stft", "samples": 8000, "frame": 400, "hop": 2, "mels": 40, "magnitude": "magnitude",
         "mel_op": "matmul", "log": "log", "norm": "standardize", "backend": "mlp", "channels": 16, "blocks": 2,
         "activation": "gelu", "classes": 12},
        {"RFFT2D", "COMPLEX_ABS", "BATCH_MATMUL", "LOG", "MEAN", "SQUARED_DIFFERENCE", "RSQRT", "GELU",
         "AVERAGE_POOL_2D", "SOFTMAX"}),
    "conv, power, dB, min-max, tcn": (
        {"frontend": "conv", "samples": 4000, "frame": 256, "hop": 4, "mels": 32, "magnitude": "power",
         "mel_op": "dense", "log": "db", "norm": "minmax", "backend": "tcn", "channels": 8, "blocks": 3,
         "activation": "leaky_relu", "classes": 1},
        {"CONV_2D", "STRIDED_SLICE", "FULLY_CONNECTED", "MAXIMUM", "LOG", "REDUCE_MIN", "REDUCE_MAX", "DIV",
         "LEAKY_RELU", "LOGISTIC"}),
    "raw, dscnn": (
        {"frontend": "raw", "samples": 8000, "frame": 512, "hop": 4, "mels": 32, "norm": "none",
         "backend": "dscnn", "channels": 16, "blocks": 2, "activation": "relu", "classes": 35},
        {"CONV_2D", "DEPTHWISE_CONV_2D", "MEAN", "SOFTMAX"}),
}


def _arch(name: str) -> dict:
    return SPACE.decode(dict(ARCHS[name][0], space="audio"))


@pytest.mark.parametrize("name", list(ARCHS))
def test_each_front_end_exports_its_operators_and_litert_computes_what_keras_does(name):
    from predictors.tflite_model import inspect_model

    arch = _arch(name)
    model = SPACE.build(arch, seed=0)
    assert [tuple(o.shape) for o in model.outputs] == SPACE.output_shapes(arch)
    tflite = to_tflite(model, quantize="float32")
    ops = collections.Counter(inspect_model(tflite).opcodes)
    assert ARCHS[name][1] <= set(ops), ARCHS[name][1] - set(ops)
    x = np.random.default_rng(0).uniform(-1, 1, size=(1, *SPACE.input_shape(arch))).astype(np.float32)
    want = np.asarray(model(x, training=False))
    (got,) = litert_outputs(tflite, x)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-4 * float(np.abs(want).max() + 1))


def test_the_fourier_convolution_is_the_power_spectrum_numpy_computes():
    """The ``conv`` front end's kernels: re^2 + im^2 of a frame's convolution with them is
    |rfft(window * frame)|^2 (NumPy's FFT, not ours)."""
    frame = 400
    kernels = _fourier_kernels(frame)[:, 0, :]
    bins = frame // 2 + 1
    x = np.random.default_rng(1).normal(size=frame)
    y = x @ kernels
    window = np.hanning(frame + 1)[:-1]  # periodic Hann, as tf.signal.hann_window
    np.testing.assert_allclose(y[:bins] ** 2 + y[bins:] ** 2, np.abs(np.fft.rfft(window * x)) ** 2,
                               rtol=1e-4, atol=1e-6)


def test_int8_keeps_the_fft_in_float_and_vela_runs_it_on_the_cpu():
    """The FFT has no integer kernel: an int8 export dequantises around RFFT2D and
    COMPLEX_ABS; the input stays int8, and Vela compiles the model with those two on its CPU."""
    from predictors import targets
    from predictors.tflite_model import inspect_model

    arch = _arch("stft, magnitude, matmul, standardised, mlp")
    tflite = to_tflite(SPACE.build(arch, seed=0), quantize="int8", num_samples=4)
    info = inspect_model(tflite)
    order = [op for op in info.opcodes if op in ("DEQUANTIZE", "RFFT2D", "COMPLEX_ABS", "QUANTIZE")]
    i = order.index("RFFT2D")
    assert order[i - 1:i + 3] == ["DEQUANTIZE", "RFFT2D", "COMPLEX_ABS", "QUANTIZE"], order
    assert info.is_integer_quantized
    measured = targets.get("ethos-u55-128").measure(tflite)
    assert measured["cpu_operators"] >= 2 and measured["npu_operators"] > 0
