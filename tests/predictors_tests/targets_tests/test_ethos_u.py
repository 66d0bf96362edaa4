from __future__ import annotations

import json

import pytest

from predictors import targets
from predictors.targets import EthosUTarget
from search_spaces.errors import UnsupportedModelError
from tests.predictors_tests.targets_tests.vela_reference import expected_metrics, vela_cli_summary

ETHOS = [n for n in targets.names() if n.startswith("ethos-u")]


def _hand_energy_mj(summary, static_mw):
    """DESIGN.md's formula with its published coefficients, typed in by hand."""
    pj = (
        0.23 * summary["nn_macs"]
        + 12.5 * summary["sram_total_bytes"]
        + 40.0 * summary["dram_total_bytes"]
        + 20.0 * summary["on_chip_flash_total_bytes"]
        + 100.0 * summary["off_chip_flash_total_bytes"]
        + static_mw * 1e-3 * summary["inference_time"] * 1e12
    )
    return pj * 1e-9


STATIC_MW = [("ethos-u55-128", 15.0), ("ethos-u65-256", 60.0), ("ethos-u85-256", 50.0)]


def test_every_ethos_u_target_is_checked_here():
    assert sorted(ETHOS) == sorted(n for n, _ in STATIC_MW)


@pytest.fixture(scope="module")
def int16_model_path(tmp_path_factory):
    from hwnas.export import to_tflite
    from tests.models import tiny_cnn

    path = tmp_path_factory.mktemp("int16") / "tiny_int16x8.tflite"
    path.write_bytes(to_tflite(tiny_cnn(), quantize="int16x8"))
    return str(path)


@pytest.mark.parametrize("regime", ["int8", "int16x8"])
@pytest.mark.parametrize("name, static_mw", STATIC_MW)
def test_labels_equal_a_direct_vela_run(name, static_mw, regime, int8_model_path, int16_model_path, tmp_path):
    model = int8_model_path if regime == "int8" else int16_model_path
    got = targets.get(name).measure(model)
    summary = vela_cli_summary(model, name, tmp_path)
    for metric, value in expected_metrics(summary).items():
        assert got[metric] == pytest.approx(value, rel=1e-12, abs=1e-12), metric
    assert got["energy_mj"] == pytest.approx(_hand_energy_mj(summary, static_mw), rel=1e-9)
    assert got["nn_macs"] == int(summary["nn_macs"])
    assert got["npu_operators"] > 0 and got["cpu_operators"] == 0


@pytest.mark.parametrize("name", ETHOS)
def test_vela_labels_are_deterministic(name, int8_model):
    target = targets.get(name)
    assert target.measure(int8_model) == target.measure(int8_model)


@pytest.mark.parametrize("name", ETHOS)
def test_float_model_is_refused_with_advice(name, float_model):
    with pytest.raises(UnsupportedModelError, match="Vela needs an int8.*quantize='int8'"):
        targets.get(name).measure(float_model)


def test_cpu_fallback_is_labelled_and_counted():
    from hwnas.export import to_tflite
    from tests.models import gather_cnn

    result = targets.get("ethos-u55-128").measure(to_tflite(gather_cnn()))
    assert result["cpu_operators"] == 1  # the GATHER
    assert result["npu_operators"] >= 2
    assert result["latency_ms"] > 0


def test_energy_coefficients_come_from_the_data_file(tmp_path, int8_model):
    spec = json.loads(json.dumps(targets.get("ethos-u55-128").describe()["settings"]))
    shipped = targets.get("ethos-u55-128").measure(int8_model)
    custom = {
        "name": "my-u55",
        "vela_args": spec["vela_args"],
        "energy_model": {**spec["energy_model"], "static_power_mw": 0.0, "mac_pj": 0.0,
                         "pj_per_byte": {"sram": 0.0, "dram": 0.0, "on_chip_flash": 0.0,
                                         "off_chip_flash": 1000.0}},
    }
    path = tmp_path / "my-u55.json"
    path.write_text(json.dumps(custom))
    mine = EthosUTarget.from_file(path).measure(int8_model)
    assert mine["latency_ms"] == shipped["latency_ms"]
    assert mine["energy_mj"] == pytest.approx(1000.0 * shipped["off_chip_flash_total_bytes"] * 1e-9)


def test_vela_output_does_not_reach_stdout(capfd, int8_model):
    targets.get("ethos-u65-256").measure(int8_model)
    out, err = capfd.readouterr()
    assert out == "" and err == ""


KERAS_APPLICATIONS = ["MobileNetV2", "EfficientNetB0", "ResNet50"]


@pytest.mark.slow
@pytest.mark.parametrize("arch", KERAS_APPLICATIONS)
def test_keras_applications_equal_a_direct_vela_run(arch, tmp_path):
    """Networks we did not write, int8 at 96x96, against the vela command itself."""
    from hwnas.export import to_tflite
    from search_spaces import import_keras

    keras = import_keras()
    model = getattr(keras.applications, arch)(weights=None, input_shape=(96, 96, 3), classes=10)
    path = tmp_path / f"{arch}.tflite"
    path.write_bytes(to_tflite(model, num_samples=2))
    for name in ETHOS:
        got = targets.get(name).measure(str(path))
        summary = vela_cli_summary(str(path), name, tmp_path)
        for metric, value in expected_metrics(summary).items():
            assert got[metric] == pytest.approx(value, rel=1e-12), (arch, name, metric)
        assert got["energy_mj"] == pytest.approx(summary["energy_mj_formula"], rel=1e-12)
