from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from predictors.tflite_model import inspect_model, load_model
from search_spaces.errors import InvalidModelError


def test_summary_of_a_valid_model(int8_model):
    info = inspect_model(int8_model)
    assert info.opcodes == ["CONV_2D", "DEPTHWISE_CONV_2D", "CONV_2D", "MEAN", "FULLY_CONNECTED"]
    assert info.num_subgraphs == 1
    assert info.tensors[info.inputs[0]].dtype == "INT8"
    assert info.size_bytes == len(int8_model)
    # every operator's tensors exist; the weights are constants
    conv = info.operators[0]
    assert info.tensors[conv.inputs[1]].is_constant
    assert not info.tensors[conv.outputs[0]].is_constant


def test_missing_empty_directory_and_foreign_files(tmp_path):
    with pytest.raises(InvalidModelError, match="no such file"):
        load_model(tmp_path / "missing.tflite")
    empty = tmp_path / "empty.tflite"
    empty.write_bytes(b"")
    with pytest.raises(InvalidModelError, match="empty file"):
        load_model(empty)
    with pytest.raises(InvalidModelError, match="is a directory"):
        load_model(tmp_path)
    text = tmp_path / "notes.tflite"
    text.write_text("this is not a model at all")
    with pytest.raises(InvalidModelError, match="not a TFLite flatbuffer"):
        load_model(text)
    with pytest.raises(InvalidModelError, match="not a TFLite flatbuffer"):
        load_model(b"\x00" * 64)


def test_every_truncation_is_rejected(int8_model):
    step = max(1, len(int8_model) // 400)
    for n in range(0, len(int8_model) - 1, step):
        with pytest.raises(InvalidModelError):
            inspect_model(int8_model[:n])


@settings(max_examples=300, deadline=None, derandomize=True,  # the same cases every run
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_fuzzed_flatbuffers_raise_only_the_project_error(int8_model, data):
    """Random byte edits either still parse or raise InvalidModelError: nothing else."""
    buf = bytearray(int8_model)
    for _ in range(data.draw(st.integers(1, 8))):
        pos = data.draw(st.integers(0, len(buf) - 1))
        buf[pos] = data.draw(st.integers(0, 255))
    try:
        inspect_model(bytes(buf))
    except InvalidModelError:
        pass


def test_the_option_slot_table_is_what_the_installed_schema_generates():
    """Regenerating ``predictors/_option_slots.py`` from the ``tflite`` package changes nothing
    (a schema upgrade without a regenerated table fails here)."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    out = subprocess.run([sys.executable, str(root / "tools" / "gen_option_slots.py")], capture_output=True,
                         text=True, check=True).stdout
    assert out == (root / "predictors" / "_option_slots.py").read_text()
