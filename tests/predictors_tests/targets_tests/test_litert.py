from __future__ import annotations

import numpy as np
import pytest

from predictors.targets import LiteRTCPUTarget
from predictors.tflite_model import inspect_model
from search_spaces.errors import TargetError


@pytest.fixture(scope="module")
def fast_target():
    return LiteRTCPUTarget(min_runs=50, min_time_s=0.0, round_time_s=0.0, gap_s=0.0)


def test_latency_is_the_fastest_of_at_least_50_runs_in_rounds(fast_target, int8_model):
    result = fast_target.measure(int8_model)
    assert result["runs"] >= 50 and result["timing"] == "min-of-10-rounds"
    assert result["latency_ms"] == result["latency_min_ms"]
    assert result["latency_ms"] <= result["latency_p10_ms"] <= result["latency_median_ms"] <= result["latency_p90_ms"]
    assert result["cpu_cores"] >= 1 and result["cpu_model"]
    assert result["model_kib"] == len(int8_model) / 1024
    assert not fast_target.stale(result)


def test_the_host_name_tells_two_machines_of_one_model_name_apart():
    from predictors.targets.litert import cpu_model

    block = ("processor\t: {p}\nvendor_id\t: AuthenticAMD\ncpu family\t: 25\nmodel\t\t: {m}\n"
             "model name\t: AMD EPYC\nstepping\t: 1\ncache size\t: 1024 KB\nbogomips\t: 5192.28\n\n")
    genoa = block.format(p=0, m=17) + block.format(p=1, m=17)
    assert cpu_model(genoa) == "AMD EPYC [family 25, model 17, stepping 1, cache 1024 KB, bogomips 5192]"
    assert cpu_model(block.format(p=0, m=1)) != cpu_model(genoa)
    assert cpu_model("processor\t: 0\nmodel name\t: Some CPU\n") == "Some CPU"  # nothing else known


def test_the_median_timing_of_older_labels_is_kept_and_called_stale(fast_target, int8_model):
    legacy = LiteRTCPUTarget(min_runs=50, min_time_s=0.0, timing="median")
    result = legacy.measure(int8_model)
    assert result["timing"] == "median" and result["latency_ms"] == result["latency_median_ms"]
    assert result["latency_min_ms"] <= result["latency_ms"] <= result["latency_p90_ms"]
    assert fast_target.stale(result) and fast_target.stale({"latency_ms": 1.0})  # no `timing`: before rounds
    assert not legacy.stale({"latency_ms": 1.0})
    with pytest.raises(ValueError, match="timing must be one of"):
        LiteRTCPUTarget(timing="mean")


def test_rounds_are_spread_in_time(int8_model):
    import time

    target = LiteRTCPUTarget(min_runs=10, rounds=5, round_time_s=0.0, gap_s=0.05)
    t0 = time.perf_counter()
    result = target.measure(int8_model)
    assert time.perf_counter() - t0 >= 4 * 0.05  # four gaps between five rounds
    assert result["runs"] >= 10 and result["timing"] == "min-of-5-rounds"


def test_arena_is_deterministic_and_bounded_by_tensor_lifetimes(fast_target, int8_model, float_model):
    for model in (int8_model, float_model):
        arenas = {fast_target.measure(model)["arena_kib"] for _ in range(3)}
        assert len(arenas) == 1
        arena = arenas.pop() * 1024
        info = inspect_model(model)
        nbytes = {"INT8": 1, "FLOAT32": 4, "INT32": 4}
        size = lambda t: int(np.prod(info.tensors[t].shape)) * nbytes[info.tensors[t].dtype]  # noqa: E731
        # every operator needs its non-constant inputs and outputs live at once
        live = max(
            sum(size(t) for t in op.inputs + op.outputs if t >= 0 and not info.tensors[t].is_constant)
            for op in info.operators
        )
        everything = sum(size(t.index) for t in info.tensors if not t.is_constant)
        assert live <= arena
        # scratch buffers (im2col) come on top, but the plan reuses memory: far from the naive sum x 3
        assert arena < 3 * everything


def test_float_models_are_measured_too(fast_target, int8_model, float_model):
    f, q = fast_target.measure(float_model), fast_target.measure(int8_model)
    assert f["model_kib"] > q["model_kib"]
    assert f["arena_kib"] > q["arena_kib"]  # 4-byte activations


def test_unresolved_custom_operator_is_a_target_error(fast_target, int8_model):
    """Rename an opcode to an unknown custom op: LiteRT cannot run it, and says so."""
    import flatbuffers
    from tensorflow.lite.python import schema_py_generated as schema

    model = schema.ModelT.InitFromObj(schema.Model.GetRootAs(int8_model, 0))
    model.operatorCodes[0].builtinCode = 32  # CUSTOM
    model.operatorCodes[0].deprecatedBuiltinCode = 32
    model.operatorCodes[0].customCode = b"NotARealOp"
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    with pytest.raises(TargetError, match="LiteRT cannot run this model"):
        fast_target.measure(bytes(builder.Output()))


def test_a_custom_op_the_default_delegate_runs_is_timed_and_its_arena_says_why_not(fast_target):
    """MediaPipe's selfie segmentation (tests/data/thirdparty): Convolution2DTransposeBias is
    XNNPACK's, so the interpreter with its default delegates runs the file as a user would;
    the arena's set-up (built-in kernels alone) cannot, and the label says so instead of a number."""
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "data" / "thirdparty" / "selfie_segmentation.tflite"
    measured = fast_target.measure(path)
    assert measured["latency_ms"] > 0 and measured["model_kib"] == pytest.approx(path.stat().st_size / 1024)
    assert "arena_kib" not in measured
    assert "no delegates" in measured["arena_error"] and "Convolution2DTransposeBias" in measured["arena_error"]


@pytest.mark.parametrize("name", ["ds_cnn", "resnet8"])
def test_float16_weights_float32_copies_are_what_the_arena_holds_more(fast_target, name):
    """The interpreter dequantises a float16 weight once, into a tensor of its arena: the arena
    of a float16 export exceeds the float32 export's by the extractor's persistent bytes
    (the same network, the same activations), to the byte on these two."""
    from hwnas.export import to_tflite
    from predictors.graph import GRAPH_FEATURES, graph_arrays
    from search_spaces import zoo

    persistent = GRAPH_FEATURES.index("persistent_scratch_bytes")
    arena, extra = {}, {}
    for q in ("float32", "float16"):
        data = to_tflite(zoo.KERAS_ZOO[name](), quantize=q, num_samples=2)
        arena[q] = fast_target.measure(data)["arena_kib"] * 1024
        extra[q] = graph_arrays(data)["u"][0, persistent]
    assert extra["float32"] == 0 and extra["float16"] > 0
    assert arena["float16"] - arena["float32"] == extra["float16"]


def _every_kernel_rule():
    """One small network through every rule of the arena arithmetic: im2col (3x3, strided
    1x1), an in-place MUL (swish) and ADD, a depthwise and dense layer big enough for
    dynamic-range quantisation's hybrid kernels, a transposed convolution, a reshape,
    attention's two batch matmuls and softmax, and a graph input read again late."""
    import keras

    L, K = keras.layers, keras.ops
    x = keras.Input((12, 12, 16))
    a = L.Conv2D(32, 3, padding="same")(x)
    a = a * K.sigmoid(a)
    b = L.Conv2D(128, 1, strides=2)(a)
    b = L.DepthwiseConv2D(3, padding="same")(b)
    c = L.Conv2DTranspose(16, 3, strides=2, padding="same")(b)
    c = c + L.Conv2D(16, 1)(a)
    r = L.Reshape((144, 16))(c)
    o = K.matmul(K.softmax(K.matmul(r, K.transpose(r, (0, 2, 1))), axis=-1), r)
    return keras.Model(x, L.Dense(10)(L.Flatten()(o)))


@pytest.mark.parametrize("quantize", ["float32", "float16", "dynamic", "int8"])
def test_the_extractors_arena_arithmetic_is_the_interpreters_plan(fast_target, quantize):
    """The extractor's ``arena_plan_bytes`` against LiteRT's own arena,
    to the byte, in every regime: the kernels' scratch (the hybrid kernels' quantised
    inputs, scales and accumulators; batch matmul's transposed operands; a transposed
    convolution's buffers outside the plan), in-place operators sharing a buffer, graph
    inputs kept to the end."""
    from hwnas.export import to_tflite
    from predictors.graph import ESTIMATES, graph_arrays

    data = to_tflite(_every_kernel_rule(), quantize=quantize, num_samples=2)
    estimate = graph_arrays(data)["est"][0, ESTIMATES.index("arena_plan_bytes")]
    assert estimate == fast_target.measure(data)["arena_kib"] * 1024


@pytest.mark.parametrize("quantize", ["int8", "float32"])
def test_tiny_buffers_take_the_arenas_64_byte_slots(fast_target, quantize):
    """A streaming network's arena is a few hundred bytes of 8-120-byte tensors, each given a
    64-byte-aligned slot by LiteRT's planner: the estimate is within one slot of the
    interpreter's arena (the bytes alone would be hundreds short)."""
    from predictors.graph import ESTIMATES, graph_arrays
    from search_spaces.export import to_tflite
    from tests.search_spaces_tests.test_streaming import SPACE, _arch

    data = to_tflite(SPACE.build(_arch("channels: gru, conv; average"), seed=0), quantize=quantize, num_samples=2)
    estimate = graph_arrays(data)["est"][0, ESTIMATES.index("arena_plan_bytes")]
    arena = fast_target.measure(data)["arena_kib"] * 1024
    assert arena < 2048 and abs(estimate - arena) <= 64, (estimate, arena)


@pytest.mark.parametrize("name", ["face_detection_short_range", "hand_recrop", "face_detection_full_range_sparse"])
def test_mediapipes_arena_is_the_extractors_peak_and_persistent_bytes(fast_target, name):
    """Third-party float16 files (tests/data/thirdparty), one with sparse weights: the
    extractor's ``arena_plan_bytes`` is the interpreter's planned arena within 0.1 %."""
    from pathlib import Path

    from predictors.graph import ESTIMATES, graph_arrays

    data = (Path(__file__).resolve().parents[2] / "data" / "thirdparty" / f"{name}.tflite").read_bytes()
    estimate = graph_arrays(data)["est"][0, ESTIMATES.index("arena_plan_bytes")]
    arena = fast_target.measure(data)["arena_kib"] * 1024
    assert estimate == pytest.approx(arena, rel=1e-3)


def _stft_unknown_batch() -> bytes:
    """``tests/data/stft_unknown_batch.tflite``: ``log(|stft(x, 256, 128)| @ ones(129, 16))``
    converted from a ``tf.function`` with input signature ``[None, 4096]``; the converter
    leaves every dimension after the unknown batch open (placeholders of 1 in the file)."""
    from pathlib import Path

    return (Path(__file__).resolve().parents[2] / "data" / "stft_unknown_batch.tflite").read_bytes()


def test_a_run_time_shaped_models_arena_is_read_after_an_inference(fast_target):
    """Where the kernels size tensors only when they run (31 frames of 256 samples here, 1 in
    the file), the arena is what the interpreter holds after an inference, not after
    ``allocate_tensors``; the extractor's plan, on LiteRT's run-time shapes, tensors sized
    at run time kept outside it, comes within 15 % (the interpreter re-plans per segment)."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    from predictors.graph import ESTIMATES, graph_arrays
    from predictors.targets.litert import arena_bytes

    data = _stft_unknown_batch()
    info = inspect_model(data)
    constants = {t.index for t in info.tensors if t.is_constant}
    plain = Interpreter(model_content=data, num_threads=1,
                        experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    plain.allocate_tensors()
    before = arena_bytes(plain, constants)
    arena = fast_target.measure(data)["arena_kib"] * 1024
    assert arena > 3 * before
    estimate = graph_arrays(data)["est"][0, ESTIMATES.index("arena_plan_bytes")]
    assert estimate == pytest.approx(arena, rel=0.15)
