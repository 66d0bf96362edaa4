"""Tensor shapes that only the run time knows: the interpreter's, after one inference.

A file converted with an unknown batch or length (``shape_signature`` -1) stores a
placeholder (1) wherever the converter could not infer a dimension, so a 144,000-sample
audio classifier's spectrogram reads as one frame: its MACs, activations and arena from
the flatbuffer are a fraction of what runs.  LiteRT resolves those shapes when it
prepares each operator; this asks it, in a child process (native code may abort on an
odd file), with the file's own input shapes and cpu-litert's seeded random inputs, and returns every
main-subgraph tensor's shape after one inference.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile

from search_spaces.errors import HwnasError

_CHILD = r"""
import json, sys
from ai_edge_litert.interpreter import Interpreter, OpResolverType
from predictors.targets.litert import _fill_inputs

path, count = sys.argv[1], int(sys.argv[2])
errors = []
for kwargs in ({"experimental_op_resolver_type": OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES}, {}):
    try:
        it = Interpreter(model_path=path, num_threads=1, **kwargs)
        it.allocate_tensors()
        _fill_inputs(it, 0)  # the inputs cpu-litert measures with
        it.invoke()
        raw, shapes = it._interpreter, {}
        for i in range(count):
            try:
                shapes[i] = [int(v) for v in raw.TensorSize(i, 0)]
            except (ValueError, RuntimeError):
                pass
        print(json.dumps(shapes))
        sys.exit(0)
    except Exception as exc:
        errors.append((str(exc).strip().splitlines() or [type(exc).__name__])[0])
print(json.dumps({"error": errors[-1]}))
"""


class ShapeResolutionError(HwnasError):
    """LiteRT could not run the model to tell its run-time shapes."""


def runtime_shapes(data: bytes, num_tensors: int, timeout_s: float = 120.0) -> dict[int, tuple[int, ...]]:
    """The shapes of the main subgraph's first ``num_tensors`` tensors after one inference.

    Raises:
        ShapeResolutionError: LiteRT cannot load or run the model (the reason), crashed,
            or ran past ``timeout_s``.
    """
    fd, path = tempfile.mkstemp(prefix="hwnas-shapes-", suffix=".tflite")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        try:
            proc = subprocess.run([sys.executable, "-c", _CHILD, path, str(num_tensors)], capture_output=True,
                                  text=True, timeout=timeout_s)
        except subprocess.TimeoutExpired:
            raise ShapeResolutionError(f"LiteRT ran past {timeout_s:.0f} s") from None
    finally:
        os.unlink(path)
    lines = proc.stdout.strip().splitlines()
    if proc.returncode not in (0, 1) or not lines:
        raise ShapeResolutionError(f"LiteRT stopped the process (exit {proc.returncode})")
    try:
        out = json.loads(lines[-1])
    except ValueError:
        raise ShapeResolutionError("LiteRT's answer was unreadable") from None
    if "error" in out:
        raise ShapeResolutionError(str(out["error"])[:300])
    return {int(k): tuple(v) for k, v in out.items()}
