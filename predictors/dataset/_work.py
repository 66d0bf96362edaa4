"""The unit of dataset work, run inside a worker process: build -> export -> label.

Everything a network can do wrong (an export error, a Vela failure, an unsupported
operator) comes back as a recorded failure with its reason; only a crash of native
code kills the worker, and the pool records that sample as failed and carries on.
"""
from __future__ import annotations

import hashlib
import time
from typing import Any


def warm_up() -> None:
    """Imports the heavy libraries once per worker, so each task pays none of it."""
    from search_spaces import import_keras

    import_keras()
    import predictors.targets  # noqa: F401


def label_network(task: dict[str, Any]) -> dict[str, Any]:
    """Exports one arch and measures it on the requested targets.

    Args:
        task: ``encoded`` (SearchSpace.encode record), ``seed`` (weights), ``quantize``
            (the export regime, default int8), ``targets`` (names), ``expected_sha256`` and
            ``expected_graph_sha256`` (when re-exporting a stored network to add labels: the
            SHA-256 of the stored file and of its stored graph, the file with its payload
            zeroed), ``store`` (return the graph).

    A re-export must be the stored file, or at least its graph: the converter's float
    calibration rounds differently on another CPU (the committed KWS, image-classification,
    object-detection and generic files were made on an Intel Xeon; an AMD EPYC gives the
    same graphs with other weight and quantisation bytes, docs/datasets.md).  A label
    measured on such a re-export records its file's hash as ``reexport_sha256``.

    Returns:
        ``{"status": "ok"|"failed", "reason", "tflite_compact", "tflite_sha256",
        "tflite_bytes", "export_s", "labels": {target: {"metrics": ...}|{"error": ...}}}``
    """
    from search_spaces.export import to_tflite  # the core never imports the plugin (hwnas)
    from predictors import targets as target_registry
    from predictors.tflite_model import strip_constant_buffers
    from search_spaces import from_encoded
    from search_spaces.errors import HwnasError

    result: dict[str, Any] = {"status": "failed", "labels": {}}
    t0 = time.perf_counter()
    try:
        space, arch = from_encoded(task["encoded"])
        model = space.build(arch, seed=int(task["seed"]))
        tflite = to_tflite(model, quantize=task.get("quantize", "int8"), seed=int(task["seed"]))
    except HwnasError as exc:
        result["reason"] = f"export error: {str(exc)[:300]}"
        return result
    except Exception as exc:  # a bug in a space: record it, keep the run going
        result["reason"] = f"build error: {type(exc).__name__}: {str(exc)[:300]}"
        return result
    result["export_s"] = time.perf_counter() - t0
    sha = hashlib.sha256(tflite).hexdigest()
    expected = task.get("expected_sha256")
    reexport = bool(expected) and sha != expected
    if reexport:
        graph_sha = hashlib.sha256(strip_constant_buffers(tflite)).hexdigest()
        if graph_sha != task.get("expected_graph_sha256"):
            result["reason"] = ("not reproducible: re-exporting the stored arch and seed gave another graph "
                                f"(file sha256 {sha[:12]} != {expected[:12]}, and the graph differs too); "
                                "a TensorFlow or Keras version change?")
            return result
    result.update(status="ok", tflite_sha256=sha, tflite_bytes=len(tflite))
    if task.get("store", True):
        result["tflite_compact"] = strip_constant_buffers(tflite)
    for name in task["targets"]:
        try:
            metrics = target_registry.get(name).measure(tflite)
            if reexport:
                metrics["reexport_sha256"] = sha
            result["labels"][name] = {"metrics": metrics}
        except HwnasError as exc:
            result["labels"][name] = {"error": f"{type(exc).__name__}: {str(exc)[:300]}"}
        except Exception as exc:
            result["labels"][name] = {"error": f"target crash: {type(exc).__name__}: {str(exc)[:300]}"}
    return result
