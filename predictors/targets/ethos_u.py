"""Arm Ethos-U NPUs, labelled by Vela's performance estimator, called in-process.

Vela is invoked through its own ``main()`` with exactly the command-line arguments of
the target's data file, so a label equals what ``vela MODEL.tflite <args>`` writes to
its summary CSV.  Energy comes from an access-count model whose coefficients live in
the same data file (``predictors/targets/data/<name>.json``).
"""
from __future__ import annotations

import csv
import json
import math
import os
import re
import tempfile
from functools import lru_cache
from pathlib import Path
from typing import Any

from search_spaces._quiet import native_output_captured
from search_spaces.errors import HwnasError, TargetError, UnsupportedModelError

from predictors.targets._base import Target, register_target
from predictors.tflite_model import ModelSource, load_model

DATA_DIR = Path(__file__).with_name("data")
MEMORY_AREAS = ("sram", "dram", "on_chip_flash", "off_chip_flash")
_OPERATOR_COUNT = re.compile(r"^\s*(CPU|NPU) operators = (\d+)", re.MULTILINE)


@lru_cache(maxsize=1)
def vela_version() -> str:
    from ethosu.vela._version import __version__

    return str(__version__)


def energy_mj(summary: dict[str, float], model: dict[str, Any]) -> float:
    """The access-count energy estimate of DESIGN.md, in millijoules.

    Args:
        summary: Vela's summary CSV row (``nn_macs``, ``<area>_total_bytes``,
            ``inference_time`` in seconds).
        model: the ``energy_model`` section of a target data file.
    """
    pj = model["mac_pj"] * summary["nn_macs"]
    for area, coefficient in model["pj_per_byte"].items():
        pj += coefficient * summary[f"{area}_total_bytes"]
    pj += model["static_power_mw"] * 1e-3 * summary["inference_time"] * 1e12
    return pj * 1e-9


def _sram_cap_kib(vela_args: list[str]) -> float | None:
    """The SRAM size, in KiB, of a ``--memory-mode Dedicated_Sram_<N>KB`` (else None)."""
    mode = next((b for a, b in zip(vela_args, vela_args[1:]) if a == "--memory-mode"), "")
    match = re.fullmatch(r"Dedicated_Sram_(\d+)KB", mode)
    return float(match.group(1)) if match else None


class EthosUTarget(Target):
    """An Ethos-U configuration described by a JSON data file (Vela args + energy model)."""

    metrics = ("latency_ms", "energy_mj", "sram_kib", "offchip_kib")
    # Vela's NPU cycles and its SRAM and DRAM traffic: what latency and energy are made of
    aux_metrics = ("cycles_npu", "sram_total_bytes", "dram_total_bytes")

    def __init__(self, spec: dict[str, Any]):
        try:
            self.name = spec["name"]
            self.vela_args = [str(a) for a in spec["vela_args"]]
            self.energy_model = spec["energy_model"]
            for key in ("mac_pj", "pj_per_byte", "static_power_mw"):
                self.energy_model[key]
        except (KeyError, TypeError) as exc:
            raise HwnasError(f"target spec is missing {exc}; see {DATA_DIR / 'ethos-u55-128.json'}") from None
        unknown = set(self.energy_model["pj_per_byte"]) - set(MEMORY_AREAS)
        if unknown:
            raise HwnasError(f"energy model names unknown memory areas {sorted(unknown)}; use {MEMORY_AREAS}")
        self.description = spec.get("description", "")
        # Vela's SRAM is mostly the feature maps it keeps there: the peak of live
        # activations, up to the SRAM a Dedicated_Sram memory mode dedicates (its size in
        # the mode's name; the rest goes to DRAM). For ``train_config["priors"]``.
        self.priors = {"sram_kib": (("peak_activation_bytes",), 1.0 / 1024.0, _sram_cap_kib(self.vela_args))}

    @classmethod
    def from_file(cls, path: str | os.PathLike) -> "EthosUTarget":
        """Loads a target spec, e.g. a copy of a shipped one with your own energy figures."""
        try:
            spec = json.loads(Path(path).read_text())
        except (OSError, ValueError) as exc:
            raise HwnasError(f"{path}: cannot read target spec ({exc})") from None
        return cls(spec)

    def settings(self) -> dict[str, Any]:
        return {
            "tool": "vela",
            "vela_version": vela_version(),
            "vela_args": list(self.vela_args),
            "energy_model": self.energy_model,
        }

    def refusal(self, model: Any) -> str | None:
        if model.is_integer_quantized:
            return None
        return (f"{self.name}: Vela needs an int8 (or int16) quantised model, this one is float; "
                "export it with hwnas.export.to_tflite(model, quantize='int8')")

    def run_vela(self, tflite: ModelSource) -> tuple[dict[str, float], dict[str, int]]:
        """Compiles the model with Vela; returns its summary CSV row and operator counts."""
        data, info = load_model(tflite)
        refused = self.refusal(info)
        if refused:
            raise UnsupportedModelError(refused)
        from ethosu.vela import vela

        with tempfile.TemporaryDirectory(prefix="hwnas-vela-") as tmp:
            model_path = os.path.join(tmp, "model.tflite")
            out_dir = os.path.join(tmp, "out")
            with open(model_path, "wb") as f:
                f.write(data)
            argv = [model_path, "--output-dir", out_dir, *self.vela_args]
            error: BaseException | None = None
            with native_output_captured() as captured:
                try:
                    rc = vela.main(argv)
                except SystemExit as exc:  # argparse errors
                    rc = exc.code if isinstance(exc.code, int) else 1
                except Exception as exc:  # Vela asserts and raises many types on odd graphs
                    rc, error = 1, exc
            csv_files = list(Path(out_dir).glob("model_summary_*.csv")) if os.path.isdir(out_dir) else []
            if rc != 0 or not csv_files:
                reason = (
                    f"{type(error).__name__}: {error}".splitlines()[0]
                    if error is not None
                    else captured.last_line("no summary written")
                )
                raise TargetError(f"{self.name}: Vela could not compile the model: {reason[:300]}")
            with open(csv_files[0], newline="") as f:
                rows = list(csv.DictReader(f))
        summary = {}
        for key, value in rows[0].items():
            try:
                summary[key] = float(value)
            except (TypeError, ValueError):
                continue
        counts = {kind.lower(): int(n) for kind, n in _OPERATOR_COUNT.findall(captured.text)}
        return summary, counts

    def measure(self, tflite: ModelSource) -> dict[str, Any]:
        summary, counts = self.run_vela(tflite)
        result: dict[str, Any] = {
            "latency_ms": summary["inference_time"] * 1000.0,
            "energy_mj": energy_mj(summary, self.energy_model),
            "sram_kib": summary["sram_memory_used"],
            "offchip_kib": summary["dram_memory_used"]
            + summary["on_chip_flash_memory_used"]
            + summary["off_chip_flash_memory_used"],
            "npu_operators": counts.get("npu", 0),
            "cpu_operators": counts.get("cpu", 0),
            "nn_macs": int(summary["nn_macs"]),
            "cycles_npu": int(summary.get("cycles_npu", 0)),
            "vela_version": vela_version(),
        }
        for area in MEMORY_AREAS:
            result[f"{area}_total_bytes"] = int(summary[f"{area}_total_bytes"])
        for metric in self.metrics:
            if not math.isfinite(result[metric]):
                raise TargetError(f"{self.name}: Vela reported a non-finite {metric}")
        return result


def _register_shipped() -> None:
    for path in sorted(DATA_DIR.glob("*.json")):
        spec = json.loads(path.read_text())
        if "vela_args" in spec:
            register_target(spec["name"], lambda spec=spec: EthosUTarget(json.loads(json.dumps(spec))))


_register_shipped()

__all__ = ["EthosUTarget", "energy_mj", "vela_version"]
