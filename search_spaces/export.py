"""Keras -> TFLite export, the one path every candidate network takes.

Public as :func:`hwnas.export.to_tflite`; the code lives here, beside the Keras
builders, so that ``predictors`` (the dataset builder) can use it without importing
``hwnas``.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Iterable

import numpy as np

from search_spaces._quiet import import_tensorflow, native_output_captured
from search_spaces.errors import ExportError, HwnasError

if TYPE_CHECKING:  # pragma: no cover
    import keras

# int8: full integer, int8 I/O (what Ethos-U runs); int16x8: int16 activations, int8 weights,
# int16 I/O (Ethos-U too); float32: none; float16: float16 weights (dequantised at load);
# dynamic: int8 weights, float activations (the hybrid kernels)
QUANTIZE_MODES = ("int8", "int16x8", "float32", "float16", "dynamic")
_CALIBRATED = ("int8", "int16x8")
DEFAULT_CALIBRATION_SAMPLES = 8

def _input_shapes(model: "keras.Model") -> list[tuple[int, ...]]:
    try:
        inputs = model.inputs
    except (AttributeError, ValueError) as exc:  # a Sequential that was never built
        raise ExportError(
            "the Keras model has no defined inputs; build it with keras.Input(shape, batch_size=1)"
        ) from exc
    if not inputs:
        raise ExportError("the Keras model has no inputs; build it with keras.Input(shape, batch_size=1)")
    shapes = []
    for tensor in inputs:
        shape = tuple(tensor.shape)
        if any(d is None for d in shape[1:]):
            raise ExportError(
                f"input {getattr(tensor, 'name', '?')!r} has a dynamic dimension {shape}; "
                "give every non-batch dimension a fixed size"
            )
        shapes.append((1,) + tuple(int(d) for d in shape[1:]))
    return shapes


def _with_batch_one(model: "keras.Model", shapes: list[tuple[int, ...]]) -> "keras.Model":
    """Returns ``model`` itself if its inputs have batch 1, else a batch-1 wrapper."""
    import keras

    if all(tensor.shape[0] == 1 for tensor in model.inputs):
        return model
    inputs = [keras.Input(shape=s[1:], batch_size=1, dtype=t.dtype) for s, t in zip(shapes, model.inputs)]
    outputs = model(inputs if len(inputs) > 1 else inputs[0], training=False)
    return keras.Model(inputs, outputs, name=model.name)


def _calibration_data(
    representative: Any, shapes: list[tuple[int, ...]], seed: int, num_samples: int
) -> Callable[[], Iterable[list[np.ndarray]]]:
    """Normalises ``representative`` into the generator the converter expects."""
    if representative is None:
        rng = np.random.default_rng(seed)
        samples = [
            [rng.standard_normal(shape).astype(np.float32) for shape in shapes] for _ in range(num_samples)
        ]
    elif callable(representative):
        return lambda: ([np.asarray(x, np.float32) for x in _as_list(item)] for item in representative())
    else:
        arrays = _as_list(representative)
        if len(arrays) != len(shapes):
            raise ExportError(f"representative data has {len(arrays)} inputs, the model {len(shapes)}")
        arrays = [np.asarray(a, np.float32) for a in arrays]
        count = arrays[0].shape[0]
        samples = []
        for i in range(count):
            sample = []
            for a, shape in zip(arrays, shapes):
                try:
                    sample.append(a[i].reshape(shape))
                except ValueError as exc:
                    raise ExportError(
                        f"representative sample of shape {a[i].shape} does not fit the input shape {shape[1:]}"
                    ) from exc
            samples.append(sample)
    return lambda: iter(samples)


def _as_list(item: Any) -> list:
    return list(item) if isinstance(item, (list, tuple)) else [item]


def to_tflite(
    model: "keras.Model",
    quantize: str = "int8",
    representative: Any = None,
    *,
    seed: int = 0,
    num_samples: int = DEFAULT_CALIBRATION_SAMPLES,
) -> bytes:
    """Converts a Keras model to a TFLite flatbuffer with a fixed batch of 1.

    Args:
        model: a functional or built Keras 3 model.
        quantize: ``"int8"`` (default): full-integer quantisation with int8 inputs and
            outputs, what Ethos-U NPUs (Vela) need; ``"int16x8"``: int16 activations and
            int8 weights, int16 inputs and outputs (Ethos-U runs these too); ``"float32"``:
            no quantisation; ``"float16"``: float16 weights; ``"dynamic"``: dynamic-range
            quantisation (int8 weights, float activations).
        representative: calibration data for ``"int8"``: an array ``(N, *input_shape)``
            (a list of them for several inputs) or a callable returning an iterable of
            input lists.  Default: ``num_samples`` standard-normal samples drawn with
            ``seed`` (enough to place every operator; use real data for accuracy).
        seed: seed of the default calibration data; the same model and seed give the
            same bytes.
        num_samples: number of default calibration samples.

    Returns:
        The ``.tflite`` flatbuffer.

    Raises:
        ExportError: the model has no fixed input shape or the converter rejected it
            (the message quotes the converter's reason).
    """
    if quantize not in QUANTIZE_MODES:
        raise ExportError(f"unknown quantize mode {quantize!r}; choose one of: {', '.join(QUANTIZE_MODES)}")
    tf = import_tensorflow()
    shapes = _input_shapes(model)
    if quantize in _CALIBRATED:
        _refuse_known_converter_crashes(model)
    fixed = _with_batch_one(model, shapes)
    calibration = None
    if quantize in _CALIBRATED:
        calibration = _calibration_data(representative, shapes, seed, num_samples)
    with native_output_captured() as captured:
        error: BaseException | None = None
        flatbuffer = None
        # Fast path: trace once, freeze the variables into constants, convert the graph
        # (about 4x faster than from_keras_model, which writes a SavedModel first).
        # The SavedModel path stays as the fallback for models that do not freeze.
        for make_converter in (_frozen_converter, _keras_converter):
            try:
                import warnings

                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    converter = make_converter(tf, fixed, shapes)
                    if quantize == "int8":
                        converter.optimizations = [tf.lite.Optimize.DEFAULT]
                        converter.representative_dataset = calibration
                        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
                        converter.inference_input_type = tf.int8
                        converter.inference_output_type = tf.int8
                        # a streaming model's state (resource variables) in int8 too, as
                        # microWakeWord's files have it; no effect on a model without state
                        converter._experimental_variable_quantization = True
                    elif quantize == "int16x8":
                        converter.optimizations = [tf.lite.Optimize.DEFAULT]
                        converter.representative_dataset = calibration
                        converter.target_spec.supported_ops = [
                            tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8]
                        converter.inference_input_type = tf.int16
                        converter.inference_output_type = tf.int16
                    elif quantize == "float16":
                        converter.optimizations = [tf.lite.Optimize.DEFAULT]
                        converter.target_spec.supported_types = [tf.float16]
                    elif quantize == "dynamic":
                        converter.optimizations = [tf.lite.Optimize.DEFAULT]
                    flatbuffer = converter.convert()
                error = None
                break
            except HwnasError:
                raise
            except Exception as exc:  # the converter raises many types; all mean "cannot convert"
                error = error or exc
    if error is not None:
        reason = _converter_reason(error, captured.text)
        raise ExportError(f"TFLite conversion ({quantize}) failed: {reason}") from error
    return bytes(flatbuffer)


def _refuse_known_converter_crashes(model) -> None:
    """Raises before the TFLite converter can kill the process on a known bad case.

    TensorFlow 2.21's converter segfaults while calibrating the WHILE loop of a
    recurrent layer (LSTM, GRU, SimpleRNN with ``unroll=False``) for int8.
    """
    import keras

    layers = model._flatten_layers(include_self=False) if hasattr(model, "_flatten_layers") else model.layers
    for layer in layers:
        if isinstance(layer, keras.layers.RNN) and not getattr(layer, "unroll", False):
            raise ExportError(
                f"int8 export of the looped recurrent layer {layer.name!r} ({type(layer).__name__}) crashes "
                "TensorFlow's TFLite converter; build it with unroll=True (a fixed sequence length) "
                "or export with quantize='float32'"
            )


def _frozen_converter(tf, model, shapes):
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    specs = [tf.TensorSpec(shape, tf.float32, name=f"input_{i}") for i, shape in enumerate(shapes)]
    if len(specs) == 1:
        function = tf.function(lambda x: model(x, training=False), input_signature=specs)
    else:
        function = tf.function(lambda *xs: model(list(xs), training=False), input_signature=specs)
    frozen = convert_variables_to_constants_v2(function.get_concrete_function())
    return tf.lite.TFLiteConverter.from_concrete_functions([frozen])


def _keras_converter(tf, model, shapes):
    return tf.lite.TFLiteConverter.from_keras_model(model)


def _converter_reason(error: BaseException, native_text: str) -> str:
    """The most telling single line of a converter failure."""
    candidates = [ln.strip() for ln in str(error).splitlines() if "error" in ln.lower()]
    candidates += [ln.strip() for ln in native_text.splitlines() if "error:" in ln.lower()]
    if candidates:
        line = candidates[0]
    else:
        line = (str(error).strip().splitlines() or [type(error).__name__])[0]
    return line[:300]
