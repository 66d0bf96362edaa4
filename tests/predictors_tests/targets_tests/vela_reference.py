"""Runs the real ``vela`` command (a separate process) as the reference for labels."""
from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

from predictors.targets import energy_mj


def vela_cli_summary(model_path: str, target_name: str, workdir: Path) -> dict[str, float]:
    """The summary CSV row that the ``vela`` console script writes for the target's settings."""
    spec = json.loads(
        (Path(__file__).parents[3] / "predictors" / "targets" / "data" / f"{target_name}.json").read_text()
    )
    out = workdir / f"vela-{target_name}"
    vela = shutil.which("vela") or str(Path(sys.executable).with_name("vela"))
    subprocess.run([vela, model_path, "--output-dir", str(out), *spec["vela_args"]], check=True,
                   capture_output=True)
    (csv_path,) = out.glob("*_summary_*.csv")
    with open(csv_path, newline="") as f:
        row = next(csv.DictReader(f))
    summary = {}
    for key, value in row.items():
        try:
            summary[key] = float(value)
        except ValueError:
            pass
    summary["energy_mj_formula"] = energy_mj(summary, spec["energy_model"])
    return summary


def expected_metrics(summary: dict[str, float]) -> dict[str, float]:
    """DESIGN.md's definitions, written out independently of the target's code."""
    return {
        "latency_ms": summary["inference_time"] * 1000,
        "sram_kib": summary["sram_memory_used"],
        "offchip_kib": summary["dram_memory_used"]
        + summary["on_chip_flash_memory_used"]
        + summary["off_chip_flash_memory_used"],
    }
