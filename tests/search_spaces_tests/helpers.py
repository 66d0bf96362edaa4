"""Shared helpers of the search-space tests."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]


def shared_data(*parts: str) -> Path:
    """A file of the project's shared real-device data (``../shared/data``); skips if absent."""
    root = Path(os.environ.get("HWNAS_SHARED_DATA", REPO.parent / "shared" / "data"))
    path = root.joinpath(*parts)
    if not path.is_file():
        pytest.skip(f"shared data {path} not present (set HWNAS_SHARED_DATA)")
    return path


def trainable_params(model) -> int:
    """Parameters as PyTorch counts them: weights, biases, BN gamma/beta (no moving stats)."""
    return int(sum(np.prod(w.shape) for w in model.trainable_weights))


def conv_dense_macs(model) -> int:
    """Multiply-adds of Conv2D (groups honoured) and Dense layers, Dense bias included:
    NAS-Bench-201's FLOPs convention."""
    total = 0
    for layer in model.layers:
        kind = type(layer).__name__
        if kind == "Conv2D":
            _, h, w, c_out = layer.output.shape
            kh, kw, c_in_per_group, _ = layer.kernel.shape
            total += h * w * c_out * kh * kw * c_in_per_group
        elif kind == "Dense":
            n_in, n_out = layer.kernel.shape
            total += n_in * n_out + (n_out if layer.use_bias else 0)
    return int(total)


def run_litert(tflite: bytes, seed: int = 0) -> list[tuple[int, ...]]:
    """One inference on random int8 input; returns the output shapes, in output order."""
    from ai_edge_litert.interpreter import Interpreter

    from search_spaces._quiet import native_output_captured

    with native_output_captured():  # LiteRT announces its XNNPACK delegate on stderr
        interpreter = Interpreter(model_content=tflite, num_threads=1)
        interpreter.allocate_tensors()
        rng = np.random.default_rng(seed)
        for detail in interpreter.get_input_details():
            data = rng.integers(-128, 128, size=detail["shape"]).astype(detail["dtype"])
            interpreter.set_tensor(detail["index"], data)
        interpreter.invoke()
        outputs = [interpreter.get_tensor(o["index"]) for o in interpreter.get_output_details()]
    for out in outputs:
        assert out.dtype == np.int8
    return [tuple(int(d) for d in out.shape) for out in outputs]


def litert_outputs(tflite: bytes, inputs: np.ndarray) -> list[np.ndarray]:
    """The LiteRT interpreter's outputs (1 thread) for ``inputs``, in output order."""
    from ai_edge_litert.interpreter import Interpreter

    from search_spaces._quiet import native_output_captured

    with native_output_captured():
        interpreter = Interpreter(model_content=tflite, num_threads=1)
        interpreter.allocate_tensors()
        interpreter.set_tensor(interpreter.get_input_details()[0]["index"], inputs)
        interpreter.invoke()
        return [interpreter.get_tensor(o["index"]) for o in interpreter.get_output_details()]


def png_size(path, dpi: float = 110) -> tuple[float, float]:
    """The (width, height) in inches of a PNG a command wrote, after checking it decodes and is
    not a blank canvas (it has marks of more than a few colours)."""
    import matplotlib.image

    pixels = matplotlib.image.imread(str(path))
    colours = np.unique(pixels.reshape(-1, pixels.shape[-1]).round(2), axis=0)
    assert len(colours) > 20, f"{path} is nearly blank"
    return pixels.shape[1] / dpi, pixels.shape[0] / dpi
