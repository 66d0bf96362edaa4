from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def int8_model() -> bytes:
    from hwnas.export import to_tflite
    from tests.models import tiny_cnn

    return to_tflite(tiny_cnn(), quantize="int8")


@pytest.fixture(scope="session")
def float_model() -> bytes:
    from hwnas.export import to_tflite
    from tests.models import tiny_cnn

    return to_tflite(tiny_cnn(), quantize="float32")


@pytest.fixture(scope="session")
def int16_model() -> bytes:
    """The same network in int16x8: another graph every Ethos-U target (and predictor) takes."""
    from hwnas.export import to_tflite
    from tests.models import tiny_cnn

    return to_tflite(tiny_cnn(), quantize="int16x8")


@pytest.fixture(scope="session")
def int8_model_path(int8_model, tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("models") / "tiny_int8.tflite"
    path.write_bytes(int8_model)
    return str(path)


@pytest.fixture(scope="session")
def float_model_path(float_model, tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("models") / "tiny_float.tflite"
    path.write_bytes(float_model)
    return str(path)
