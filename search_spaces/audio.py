"""Audio networks with the signal processing inside the graph: waveform in, classes out.

Audio models that ship as TFLite files often take the raw waveform and compute their
own features in the graph (BirdNET, Spotify's basic-pitch, openWakeWord's front end, the
word-activation classifiers): frames, a window, an FFT (``RFFT2D``, ``COMPLEX_ABS``) or a
convolution with fixed Fourier kernels, a mel filter bank as a matrix product, a log,
a normalisation, then a small CNN, a temporal convolution stack or an MLP.  The task
spaces start from MFCCs (``keyword_spotting``) and no training graph had any of it.
This space draws them for the CPU predictor's training set; like ``breadth`` it is not
a search space for a task (``kind = "breadth"``).

A network is a front end and a back end:

* front ends:
  ``stft``: ``tf.signal.stft`` (frames as the converter writes them: slices, a
  gather, a window multiply; ``RFFT2D``; ``COMPLEX_ABS``), magnitude or power;
  ``conv``: a 1-D convolution whose kernels are the frame length wide and strided by the
  hop (the Fourier basis as weights, as basic-pitch and openWakeWord write their STFT),
  real and imaginary halves sliced, squared and added;
  ``raw``: strided 1-D convolutions straight on the waveform (wav2vec-like encoders).
  ``stft`` and ``conv`` then apply a mel filter bank (a constant matrix: a
  ``FULLY_CONNECTED`` or a ``BATCH_MATMUL``) and a log (``log(x + eps)``, or decibels
  through ``MAXIMUM``, ``LOG``, ``MUL``).  Every front end may normalise its features:
  standardise (``MEAN``, ``SQUARED_DIFFERENCE``, ``RSQRT``) or min-max
  (``REDUCE_MIN``, ``REDUCE_MAX``, ``SUB``, ``DIV``).
* back ends over the ``[frames, features]`` map:
  ``cnn``: 3x3 convolutions and 2x2 max pooling on it as an image;
  ``dscnn``: a strided stem and depthwise-separable blocks (DS-CNN);
  ``tcn``: dilated 1-D convolutions over time with residual adds;
  ``mlp``: the map (average-pooled to at most 16 frames) flattened into dense layers with layer norms (openWakeWord's heads).
  Then a global average pooling (not ``mlp``), a dense classifier, softmax or sigmoid.

An int8 export keeps the FFT in float (the converter writes ``DEQUANTIZE``,
``RFFT2D``, ``COMPLEX_ABS``, ``QUANTIZE``): the FFT has no integer kernel.  The Ethos-U runs
the FFT and the complex magnitude on its CPU: the space is drawn for the CPU target.
"""
from __future__ import annotations

import functools
from typing import Any

from search_spaces import _blocks
from search_spaces._base import Chooser, SearchSpace, register_space

FRONTENDS = ("stft", "conv", "raw")
SAMPLES = (4000, 8000, 16000, 24000, 32000, 48000)  # waveform length (0.25-3 s at 16 kHz)
FRAMES = (256, 400, 512, 1024)  # frame length (stft, conv); raw: its first kernel is a tenth of it
HOPS = (2, 4)  # frame length over hop
MAGNITUDES = ("magnitude", "power")
MELS = (32, 40, 64, 80, 128)  # mel bands (stft, conv); raw: the encoder's channels
MEL_OPS = ("dense", "matmul")  # FULLY_CONNECTED or BATCH_MATMUL
LOGS = ("log", "db")
NORMS = ("none", "standardize", "minmax")
BACKENDS = ("cnn", "dscnn", "tcn", "mlp")
CHANNELS = (8, 16, 32, 64, 128)
BLOCKS = (1, 5)  # inclusive range
ACTIVATIONS = ("relu", "relu6", "leaky_relu", "gelu")
CLASSES = (1, 2, 12, 35, 527)
MLP_FRAMES = 16  # the mlp back end average-pools longer maps down to at most this many frames
EPS = 1e-6


def _fft_length(frame: int) -> int:
    return 1 << (frame - 1).bit_length()


def _raw_plan(arch: dict) -> list[tuple[int, int]]:
    """The raw encoder's convolutions, (kernel, stride) each, until the total stride
    reaches the hop (or fewer than 8 frames are left)."""
    hop = arch["frame"] // arch["hop"]
    kernel = max(10, arch["frame"] // 10)
    stride = kernel // 2
    length = arch["samples"]
    plan, total = [], 1
    while True:
        length = (length - kernel) // stride + 1
        total *= stride
        plan.append((kernel, stride))
        if total * 2 > hop or length < 8:
            return plan
        kernel, stride = 3, 2


@functools.lru_cache(maxsize=None)
def _layers(keras: Any):
    import numpy as np

    class Stft(keras.layers.Layer):
        """``tf.signal.stft`` (a Hann window, the FFT length the power of two at or above the
        frame length: LiteRT's RFFT2D takes no other), then its magnitude or power."""

        def __init__(self, frame: int, hop: int, power: bool, **kwargs):
            super().__init__(**kwargs)
            self.frame, self.hop, self.power = int(frame), int(hop), bool(power)

        def call(self, x):
            import tensorflow as tf

            s = tf.abs(tf.signal.stft(x, self.frame, self.hop, _fft_length(self.frame)))
            return s * s if self.power else s

        def compute_output_shape(self, input_shape):
            return (input_shape[0], 1 + (input_shape[1] - self.frame) // self.hop, _fft_length(self.frame) // 2 + 1)

    class PowerOfHalves(keras.layers.Layer):
        """Real and imaginary halves of a Fourier convolution: ``re^2 + im^2`` (optionally its root)."""

        def __init__(self, bins: int, root: bool, **kwargs):
            super().__init__(**kwargs)
            self.bins, self.root = int(bins), bool(root)

        def call(self, x):
            ops = keras.ops
            re, im = x[..., :self.bins], x[..., self.bins:]
            p = re * re + im * im
            return ops.sqrt(p) if self.root else p

        def compute_output_shape(self, input_shape):
            return (*input_shape[:-1], self.bins)

    class MelLog(keras.layers.Layer):
        """A mel filter bank (a constant matrix, as FULLY_CONNECTED or BATCH_MATMUL), then a log."""

        def __init__(self, bins: int, mels: int, matmul: bool, db: bool, **kwargs):
            super().__init__(**kwargs)
            self.bins, self.mels, self.matmul, self.db = int(bins), int(mels), bool(matmul), bool(db)
            import tensorflow as tf

            self.matrix = tf.signal.linear_to_mel_weight_matrix(self.mels, self.bins, 16000, 20.0, 7600.0).numpy()

        def call(self, x):
            import tensorflow as tf

            m = tf.constant(self.matrix)
            mel = tf.linalg.matmul(x, tf.broadcast_to(m, [1, *self.matrix.shape])) if self.matmul \
                else tf.tensordot(x, m, 1)
            if self.db:
                return 10.0 / np.log(10.0) * tf.math.log(tf.maximum(mel, EPS))
            return tf.math.log(mel + EPS)

        def compute_output_shape(self, input_shape):
            return (*input_shape[:-1], self.mels)

    class Normalize(keras.layers.Layer):
        """Per-utterance standardisation or min-max scaling of the features."""

        def __init__(self, mode: str, **kwargs):
            super().__init__(**kwargs)
            self.mode = mode

        def call(self, x):
            ops = keras.ops
            if self.mode == "standardize":
                mean = ops.mean(x, axis=(1, 2), keepdims=True)
                var = ops.mean(ops.square(x - mean), axis=(1, 2), keepdims=True)
                return (x - mean) * ops.rsqrt(var + EPS)
            lo = ops.min(x, axis=(1, 2), keepdims=True)
            hi = ops.max(x, axis=(1, 2), keepdims=True)
            return (x - lo) / (hi - lo + EPS)

        def compute_output_shape(self, input_shape):
            return input_shape

    return Stft, PowerOfHalves, MelLog, Normalize


def _fourier_kernels(frame: int) -> Any:
    """``[frame, 1, 2 * bins]``: windowed cosines then sines (a convolution that is an STFT)."""
    import numpy as np

    bins = frame // 2 + 1
    t = np.arange(frame)[:, None]
    k = np.arange(bins)[None, :]
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(frame) / frame)
    angle = 2 * np.pi * t * k / frame
    basis = np.concatenate([np.cos(angle), -np.sin(angle)], axis=1) * window[:, None]
    return basis[:, None, :].astype("float32")


@register_space
class AudioSpace(SearchSpace):
    name = "audio"
    kind = "breadth"
    param_prefix = "au_"
    description = (
        "Audio networks with the signal processing in the graph (waveform in): STFT (RFFT2D), Fourier "
        "convolutions or raw strided encoders, mel matrix, log, normalisation; CNN, DS-CNN, TCN or MLP back "
        "ends: CPU training breadth"
    )
    option_specs: dict = {}
    npu_first = False  # the FFT and the complex magnitude run on the Ethos-U's CPU

    def _draw(self, ch: Chooser) -> None:
        frontend = ch.choice("frontend", FRONTENDS)
        ch.choice("samples", SAMPLES)
        ch.choice("frame", FRAMES)
        ch.choice("hop", HOPS)
        ch.choice("mels", MELS)
        if frontend != "raw":
            ch.choice("magnitude", MAGNITUDES)
            ch.choice("mel_op", MEL_OPS)
            ch.choice("log", LOGS)
        ch.choice("norm", NORMS)
        ch.choice("backend", BACKENDS)
        ch.choice("channels", CHANNELS)
        ch.integer("blocks", *BLOCKS)
        ch.choice("activation", ACTIVATIONS)
        ch.choice("classes", CLASSES)

    def input_shape(self, arch: Any = None) -> tuple[int, ...]:
        arch = self._input_dependent(arch, "samples")
        return (arch["samples"],)

    def output_shapes(self, arch: Any) -> list[tuple[int, ...]]:
        return [(1, self.decode(arch)["classes"])]

    def _build(self, arch: dict, inputs: Any, keras: Any) -> Any:
        layers = keras.layers
        conv1d = layers.Conv1D  # (the lowering's stand-in has no Conv1D: such networks are exported)
        Stft, PowerOfHalves, MelLog, Normalize = _layers(keras)
        frame, hop, mels = arch["frame"], arch["frame"] // arch["hop"], arch["mels"]
        bins = (_fft_length(frame) if arch["frontend"] == "stft" else frame) // 2 + 1
        act = arch["activation"]
        if arch["frontend"] == "stft":
            x = Stft(frame, hop, arch["magnitude"] == "power")(inputs)
        elif arch["frontend"] == "conv":
            x = layers.Reshape((arch["samples"], 1))(inputs)
            fourier = conv1d(2 * bins, frame, strides=hop, use_bias=False, trainable=False)
            x = fourier(x)
            fourier.set_weights([_fourier_kernels(frame)])
            x = PowerOfHalves(bins, arch["magnitude"] == "magnitude")(x)
        else:
            x = layers.Reshape((arch["samples"], 1))(inputs)
            for kernel, stride in _raw_plan(arch):
                x = self._act(keras, conv1d(mels, kernel, strides=stride)(x), act)
        if arch["frontend"] != "raw":
            x = MelLog(bins, mels, arch["mel_op"] == "matmul", arch["log"] == "db")(x)
        if arch["norm"] != "none":
            x = Normalize(arch["norm"])(x)
        return getattr(self, f"_{arch['backend']}")(arch, x, keras)

    _act = staticmethod(_blocks.activation)

    def _head(self, arch: dict, x: Any, keras: Any) -> Any:
        classes = arch["classes"]
        last = "sigmoid" if classes <= 2 else "softmax"
        return keras.layers.Dense(classes, activation=last, name="scores")(x)

    def _cnn(self, arch: dict, x: Any, keras: Any) -> Any:
        layers, act = keras.layers, arch["activation"]
        x = layers.Reshape((*x.shape[1:], 1))(x)
        c = arch["channels"]
        for _ in range(arch["blocks"]):
            x = self._act(keras, layers.Conv2D(c, 3, padding="same")(x), act)
            if min(int(x.shape[1]), int(x.shape[2])) >= 4:
                x = layers.MaxPooling2D(2)(x)
            c = min(2 * c, 256)
        return self._head(arch, layers.GlobalAveragePooling2D()(x), keras)

    def _dscnn(self, arch: dict, x: Any, keras: Any) -> Any:
        layers, act = keras.layers, arch["activation"]
        x = layers.Reshape((*x.shape[1:], 1))(x)
        c = arch["channels"]
        x = _blocks.conv_bn(keras, x, c, (10, 4), 2, act)
        for _ in range(arch["blocks"]):
            x = _blocks.dw_bn(keras, x, 3, 1, act=act)
            x = _blocks.conv_bn(keras, x, c, 1, act=act)
        return self._head(arch, layers.GlobalAveragePooling2D()(x), keras)

    def _tcn(self, arch: dict, x: Any, keras: Any) -> Any:
        layers, act = keras.layers, arch["activation"]
        c = arch["channels"]
        x = self._act(keras, layers.Conv1D(c, 3, padding="same")(x), act)
        for i in range(arch["blocks"]):
            y = self._act(keras, layers.Conv1D(c, 3, padding="same", dilation_rate=2 ** i)(x), act)
            y = layers.Conv1D(c, 1)(y)
            x = self._act(keras, layers.Add()([x, y]), act)
        return self._head(arch, layers.GlobalAveragePooling1D()(x), keras)

    def _mlp(self, arch: dict, x: Any, keras: Any) -> Any:
        layers, act = keras.layers, arch["activation"]
        frames = int(x.shape[1])
        if frames > MLP_FRAMES:  # a window of embeddings, as a wake-word head reads
            x = layers.AveragePooling1D(-(-frames // MLP_FRAMES))(x)
        x = layers.Flatten()(x)
        for _ in range(arch["blocks"]):
            x = layers.Dense(4 * arch["channels"])(x)
            x = self._act(keras, layers.LayerNormalization()(x), act)
        return self._head(arch, x, keras)
