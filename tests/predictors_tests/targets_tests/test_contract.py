"""One contract suite, run against every registered target."""
from __future__ import annotations

import json
import math

import pytest

from predictors import targets
from search_spaces.errors import InvalidModelError, UnknownNameError

ALL_TARGETS = targets.names()


def test_the_design_targets_are_registered():
    assert {"ethos-u55-128", "ethos-u65-256", "cpu-litert"} <= set(ALL_TARGETS)


def test_unknown_target_lists_the_known_ones():
    with pytest.raises(UnknownNameError, match="unknown target 'ethos-u99'.*cpu-litert"):
        targets.get("ethos-u99")


@pytest.fixture(scope="module", params=ALL_TARGETS)
def target(request):
    return targets.get(request.param)


@pytest.fixture(scope="module")
def measured(target, int8_model):
    return target.measure(int8_model)


def test_measure_returns_every_metric_finite_and_positive(target, measured):
    assert target.metrics and len(set(target.metrics)) == len(target.metrics)
    for metric in target.metrics:
        value = measured[metric]
        assert isinstance(value, float) and math.isfinite(value) and value > 0, (metric, value)
    json.dumps(measured, allow_nan=False)  # labels are stored as JSON


def test_measure_accepts_a_path(target, int8_model_path, measured):
    again = target.measure(int8_model_path)
    assert set(again) == set(measured)


def test_describe_is_json_and_names_the_metrics(target):
    described = json.loads(json.dumps(target.describe()))
    assert described["name"] == target.name
    assert described["metrics"] == list(target.metrics)
    assert described["settings"]


@pytest.mark.parametrize(
    "bad, message",
    [
        (b"", "empty file"),
        (b"PK\x03\x04 a zip, not a model", "not a TFLite flatbuffer"),
    ],
)
def test_bad_bytes_are_rejected(target, bad, message):
    with pytest.raises(InvalidModelError, match=message):
        target.measure(bad)


def test_truncated_model_is_rejected(target, int8_model):
    with pytest.raises(InvalidModelError, match="corrupt or truncated"):
        target.measure(int8_model[: len(int8_model) // 2])


def test_missing_file_is_rejected(target, tmp_path):
    with pytest.raises(InvalidModelError, match="no such file"):
        target.measure(str(tmp_path / "nope.tflite"))
