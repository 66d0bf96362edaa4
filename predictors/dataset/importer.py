"""Importing a table of real-device measurements as a dataset (``hwnas dataset import``).

Each row's architecture is built with a search space (for nasbench201 and fbnet the
CSV encodings of ``shared/data/README.md`` are accepted as they are), exported to
TFLite, and stored with the row's measured labels under a target name of the user's
choosing, through the same storage as the builder: resumable (rows already stored
with that target are skipped), parallel, deduplicated by ``arch_id`` (a network
exported for one device is reused for the next).  Bad rows (an arch that does not
parse, a missing, non-numeric or non-positive value) are reported per reason with
the first examples, skipped, and the rest imported.
"""
from __future__ import annotations

import csv
import math
import os
import re
import sys
from typing import Any, Sequence

from search_spaces.errors import HwnasError

from predictors.dataset.builder import _progress, provenance
from predictors.dataset.store import DatasetStore

_METRIC = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.+?)\s*(?:\*\s*([0-9.eE+-]+))?\s*$")


def parse_metric(spec: str) -> tuple[str, str, float]:
    """``NAME=COLUMN`` or ``NAME=COLUMN*FACTOR`` (e.g. ``latency_ms=latency_s*1000``)."""
    m = _METRIC.match(spec)
    if not m:
        raise HwnasError(f"--metric expects NAME=COLUMN or NAME=COLUMN*FACTOR, got {spec!r}")
    name, column, factor = m.group(1), m.group(2), m.group(3)
    try:
        scale = float(factor) if factor else 1.0
    except ValueError:
        raise HwnasError(f"--metric {spec!r}: {factor!r} is not a number") from None
    return name, column, scale


def import_table(
    out: str | os.PathLike,
    space_name: str,
    csv_path: str | os.PathLike,
    arch_column: str,
    metrics: Sequence[str],
    target_name: str,
    *,
    space_options: dict[str, Any] | None = None,
    workers: int = 1,
    backend: str = "local",
    limit: int | None = None,
    progress: bool = True,
    command: dict[str, Any] | None = None,
    lowering: bool = True,
) -> dict[str, Any]:
    """Imports measured rows; returns counts and the per-reason report of skipped rows.

    The graph of each new network comes from the lowering (``lowering=True``, for the
    spaces the stand-in builds: milliseconds, no TensorFlow; stored as a payload-zeroed
    flatbuffer with the converter's graph, ``predictors.graph._writer``) or, where the
    lowering refuses an arch or ``lowering=False``, from exporting it as before.
    """
    import search_spaces
    from predictors.dataset._pool import make_pool

    specs = [parse_metric(m) for m in metrics]
    if not specs:
        raise HwnasError("name at least one --metric NAME=COLUMN")
    space = search_spaces.get(space_name, **(space_options or {}))
    try:
        f = open(csv_path, newline="")
    except OSError as exc:
        raise HwnasError(f"{csv_path}: cannot read ({exc.strerror})") from None
    with f:
        reader = csv.DictReader(f)
        columns = reader.fieldnames or []
        missing = [c for c in [arch_column] + [col for _, col, _ in specs] if c not in columns]
        if missing:
            raise HwnasError(f"{csv_path}: no column {missing[0]!r}; columns: {', '.join(columns[:12])}"
                             + (" ..." if len(columns) > 12 else ""))
        rows = list(reader)

    problems: dict[str, list[str]] = {}

    def skip(reason: str, line: int, detail: str) -> None:
        problems.setdefault(reason, []).append(f"line {line}: {detail}")

    parsed: dict[str, dict[str, Any]] = {}  # arch_id -> arch and labels (first row wins)
    for n, row in enumerate(rows, start=2):
        try:
            arch = space.decode(row[arch_column])
        except HwnasError as exc:
            skip("arch does not parse", n, str(exc)[:160])
            continue
        values, bad = {}, None
        for name, column, scale in specs:
            raw = (row.get(column) or "").strip()
            try:
                value = float(raw) * scale
            except ValueError:
                bad = ("non-numeric value", f"{column}={raw!r}")
                break
            if not math.isfinite(value) or value <= 0:
                bad = ("non-positive or non-finite value", f"{column}={raw!r}")
                break
            values[name] = value
        if bad:
            skip(bad[0], n, bad[1])
            continue
        arch_id = space.arch_id(arch)
        if arch_id in parsed:
            continue
        parsed[arch_id] = {"arch": arch, "metrics": values}
        if limit and len(parsed) >= limit:
            break
    if not parsed:
        summary = "; ".join(f"{k}: {len(v)} (e.g. {v[0]})" for k, v in problems.items()) or "the table is empty"
        raise HwnasError(f"{csv_path}: no usable rows ({summary})")

    store = DatasetStore(out, create=True)
    try:
        run_id = store.start_run("import", command or {"space": space_name, "csv": str(csv_path),
                                                      "target": target_name, "metrics": list(metrics)},
                                 {**provenance([]), "source": str(csv_path), "target_name": target_name})
        labelled = store.labelled(target_name)
        stored = {r["arch_id"] for r in store.network_rows(status="ok")}
        stats = {"rows": len(rows), "imported": 0, "reused_exports": 0, "already": 0, "failed": 0}
        to_export = []
        for arch_id, entry in parsed.items():
            if arch_id in labelled:
                stats["already"] += 1
            elif arch_id in stored:  # exported for another device already: only the labels are new
                store.add_labels(arch_id, {target_name: {"metrics": entry["metrics"]}}, run_id)
                stats["reused_exports"] += 1
                stats["imported"] += 1
            else:
                to_export.append(arch_id)
        if to_export and lowering:
            to_export = _store_lowered(store, space, parsed, to_export, target_name, run_id, stats, progress)
        if to_export:
            pool = make_pool(backend, workers)
            tasks = ({"arch_id": a, "encoded": space.encode(parsed[a]["arch"]), "seed": 0, "targets": [],
                      "store": True} for a in to_export)
            bar = _progress(len(to_export), f"importing {space.name}", progress)
            for task, result in pool.map_unordered(tasks):
                ok = result["status"] == "ok"
                labels = {target_name: {"metrics": parsed[task["arch_id"]]["metrics"]}} if ok else None
                store.add_network(
                    arch_id=task["arch_id"], space=space.name, arch=task["encoded"], seed=0,
                    status=result["status"], reason=result.get("reason"), tflite=result.get("tflite_compact"),
                    tflite_sha256=result.get("tflite_sha256"), tflite_bytes=result.get("tflite_bytes"),
                    export_s=result.get("export_s"), run_id=run_id, labels=labels,
                )
                stats["imported" if ok else "failed"] += 1
                bar.update(1)
                store.seal_if_due()
            bar.close()
        stats["skipped"] = {k: {"count": len(v), "examples": v[:3]} for k, v in problems.items()}
        store.seal()
        return stats
    except HwnasError:
        store.seal()
        raise
    finally:
        store.close()


def _store_lowered(store, space, parsed: dict, arch_ids: list[str], target_name: str, run_id: int,
                   stats: dict, progress: bool) -> list[str]:
    """Stores the networks whose graph the lowering gives; returns the arch_ids it refused."""
    import time

    from predictors.graph._lowered import LoweringError, lower
    from predictors.graph._writer import write_tflite

    refused = []
    bar = _progress(len(arch_ids), f"importing {space.name} (lowered)", progress)
    for arch_id in arch_ids:
        started = time.perf_counter()
        try:
            tflite = write_tflite(lower(space, parsed[arch_id]["arch"]))
        except LoweringError:
            refused.append(arch_id)
            continue
        # no exported file exists: no SHA-256 to check when a target is added later
        store.add_network(arch_id=arch_id, space=space.name, arch=space.encode(parsed[arch_id]["arch"]), seed=0,
                          status="ok", tflite=tflite, tflite_sha256=None, tflite_bytes=len(tflite),
                          export_s=time.perf_counter() - started, run_id=run_id,
                          labels={target_name: {"metrics": parsed[arch_id]["metrics"]}})
        stats["imported"] += 1
        stats["lowered"] = stats.get("lowered", 0) + 1
        bar.update(1)
        store.seal_if_due()
    bar.close()
    return refused


def report_skipped(stats: dict[str, Any]) -> None:
    for reason, info in stats.get("skipped", {}).items():
        print(f"hwnas: skipped {info['count']} rows: {reason} (e.g. {'; '.join(info['examples'])})",
              file=sys.stderr)
