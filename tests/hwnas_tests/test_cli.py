"""The command line, run as a user runs it: a separate process."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from predictors import targets

REPO = Path(__file__).resolve().parents[2]


def hwnas(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "hwnas", *args], capture_output=True, text=True, timeout=300)


def test_targets_json_lists_every_target_with_metrics():
    proc = hwnas("targets", "--json")
    assert proc.returncode == 0, proc.stderr
    listed = json.loads(proc.stdout)
    assert set(listed) == set(targets.names())
    assert listed["ethos-u55-128"]["metrics"] == ["latency_ms", "energy_mj", "sram_kib", "offchip_kib"]
    assert listed["cpu-litert"]["metrics"] == ["latency_ms", "arena_kib", "model_kib"]
    from predictors.predictor import list_predictors, load_predictor

    for name, entry in listed.items():  # the shipped predictor named is the one `hwnas predict` loads
        if entry["predictor"] is None:
            assert f"perfsage-{name}" not in list_predictors()
        else:
            assert load_predictor(entry["predictor"]).targets == [name]


def test_targets_table():
    proc = hwnas("targets")
    assert proc.returncode == 0
    assert "ethos-u65-256" in proc.stdout and "latency_ms" in proc.stdout


@pytest.mark.parametrize("name", ["ethos-u55-128", "ethos-u65-256", "ethos-u85-256"])
def test_measure_json_is_clean_and_equals_the_python_api(name, int8_model_path):
    proc = hwnas("measure", int8_model_path, "--target", name, "--json")
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    result = json.loads(proc.stdout)  # nothing but JSON on stdout: Vela's prints are kept out
    assert result == targets.get(name).measure(int8_model_path)


def test_measure_cpu_json(int8_model_path):
    proc = hwnas("measure", int8_model_path, "-t", "cpu-litert", "--json")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert {"latency_ms", "arena_kib", "model_kib"} <= set(result)


def test_measure_table(int8_model_path):
    proc = hwnas("measure", int8_model_path, "-t", "ethos-u55-128")
    assert proc.returncode == 0
    assert "latency_ms" in proc.stdout and "npu_operators" in proc.stdout


def _error(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 1, (proc.returncode, proc.stdout, proc.stderr)
    assert proc.stdout == ""
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("hwnas: error: ")
    return lines[0]


def test_bad_inputs_give_one_line_and_exit_1(tmp_path, int8_model, float_model_path):
    missing = str(tmp_path / "missing.tflite")
    assert "no such file" in _error(hwnas("measure", missing, "-t", "cpu-litert"))

    empty = tmp_path / "empty.tflite"
    empty.write_bytes(b"")
    assert "empty file" in _error(hwnas("measure", str(empty), "-t", "ethos-u55-128", "--json"))

    foreign = tmp_path / "image.tflite"
    foreign.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 100)
    assert "not a TFLite flatbuffer" in _error(hwnas("measure", str(foreign), "-t", "ethos-u55-128"))

    truncated = tmp_path / "truncated.tflite"
    truncated.write_bytes(int8_model[: len(int8_model) // 3])
    assert "corrupt or truncated" in _error(hwnas("measure", str(truncated), "-t", "cpu-litert"))

    line = _error(hwnas("measure", float_model_path, "-t", "ethos-u65-256", "--json"))
    assert "Vela needs an int8" in line and "hwnas.export.to_tflite" in line

    line = _error(hwnas("measure", float_model_path, "-t", "npu-9000"))
    assert "unknown target 'npu-9000'" in line and "ethos-u55-128" in line


def test_usage_errors_exit_non_zero():
    proc = hwnas("measure")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr


def test_help_does_not_import_heavy_libraries():
    code = "import sys; from hwnas.cli import build_parser; build_parser(); " \
           "print(sorted(m for m in ('tensorflow', 'torch', 'ethosu') if m in sys.modules))"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.stdout.strip() == "[]"


def test_graph_json_and_table(int8_model_path, tmp_path):
    proc = hwnas("graph", int8_model_path, "--json")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["nodes"] == summary["file_operators"] == 5 and summary["edges"] == 4
    assert summary["operators"] == {"CONV_2D": 2, "DEPTHWISE_CONV_2D": 1, "FULLY_CONNECTED": 1, "MEAN": 1}
    assert summary["totals"]["total_macs"] > 0 and summary["feature_version"].startswith("perfsage-")
    # LiteRT's arena plan: at least the graph's peak of live activations
    assert summary["estimates"]["arena_plan_bytes"] >= summary["totals"]["peak_activation_bytes"] > 0
    table = hwnas("graph", int8_model_path)
    assert table.returncode == 0 and "DEPTHWISE_CONV_2D" in table.stdout and "arena_plan_bytes" in table.stdout
    # float16 weights (MediaPipe): each DEQUANTIZE of a weight is part of its consumer, not a node
    half = hwnas("graph", str(THIRD_PARTY / "selfie_segmentation.tflite"), "--json")
    summary = json.loads(half.stdout)
    assert (summary["nodes"], summary["file_operators"], summary["operators"]["DEQUANTIZE"]) == (136, 246, 110)
    assert "136 nodes (246 operators in the file: 110 weight conversions" in hwnas(
        "graph", str(THIRD_PARTY / "selfie_segmentation.tflite")).stdout
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(b"\x00\x01")
    assert "not a TFLite flatbuffer" in _error(hwnas("graph", str(bad), "--json"))


THIRD_PARTY = REPO / "tests" / "data" / "thirdparty"


def test_predict_a_float_file_refuses_the_npus_and_warns_what_it_has_never_seen(tmp_path):
    """A real float16 file (MediaPipe, tests/data/thirdparty) with a custom op: the Ethos-U
    predictors refuse it in `measure`'s words, the CPU one predicts it and names the custom
    op; read as the builtin it implements, or (renamed to one nobody knows) a node of unknown
    cost, and the prediction a guess."""
    selfie = (THIRD_PARTY / "selfie_segmentation.tflite").read_bytes()
    proc = hwnas("predict", str(THIRD_PARTY / "selfie_segmentation.tflite"), "--target", "cpu-litert")
    assert proc.returncode == 0, proc.stderr
    assert "custom operators read as the builtin they implement: Convolution2DTransposeBias x1 as TRANSPOSE_CONV" \
        in proc.stderr and "costs not modelled" not in proc.stderr
    assert selfie.count(b"Convolution2DTransposeBias") == 1  # the operator code's name, nothing else
    path = tmp_path / "unknown_custom.tflite"
    path.write_bytes(selfie.replace(b"Convolution2DTransposeBias", b"Convolution2DTransposeBiaZ"))
    path = str(path)
    proc = hwnas("predict", path, "--json")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)  # stdout: the JSON alone
    assert result["cpu-litert"]["latency_ms"] > 0 and result["cpu-litert"]["latency_ms_std"] > 0
    for npu in ("ethos-u55-128", "ethos-u65-256"):
        assert "Vela needs an int8" in result[npu]["error"] and set(result[npu]) == {"error"}
    warnings = proc.stderr.strip().splitlines()
    assert all(w.startswith("warning: ") for w in warnings) and "Traceback" not in proc.stderr
    assert any("costs not modelled: Convolution2DTransposeBiaZ x1" in w for w in warnings)
    guess = [w for w in warnings if "unlike every graph perfsage-cpu-litert was trained on" in w]
    assert guess and "operator CUSTOM" in guess[0] and "cpu-litert/latency_ms" in guess[0]
    from predictors.predictor import list_predictors

    assert sum("not predicted: ethos-u" in w for w in warnings) == len(list_predictors("perfsage-ethos-u*"))

    table = hwnas("predict", path, "--target", "cpu-litert")
    assert table.returncode == 0 and "latency_ms" in table.stdout and "ethos-u" not in table.stdout

    line = _error(hwnas("predict", path, "--target", "ethos-u55-128", "--json"))  # nothing it can predict
    assert "ethos-u55-128: Vela needs an int8" in line


def test_predict_an_in_space_network_warns_nothing(tmp_path):
    import search_spaces
    from hwnas.export import to_tflite

    space = search_spaces.get("keyword_spotting")
    path = tmp_path / "kws.tflite"
    path.write_bytes(to_tflite(space.build(space.sample(3)), num_samples=2))
    proc = hwnas("predict", str(path))
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    from predictors.predictor import list_predictors

    assert proc.stdout.count("latency_ms") == len(list_predictors())  # one row per shipped predictor
