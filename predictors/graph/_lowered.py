"""The lowered path: a search space's arch -> the graph PerfSAGE reads, with no TensorFlow.

``from_arch(space, arch)`` equals ``from_tflite`` of the exported file (the
lowering reproduces the converter's graph; ``benchmarks/lowering.py`` checks every
committed network) and takes a millisecond instead of the seconds the Keras build
and the conversion take.  A network the lowering cannot reproduce raises
:class:`LoweringError` (a :class:`~search_spaces.errors.HwnasError`): export it instead.
"""
from __future__ import annotations

import gc
from contextlib import contextmanager
from typing import Any, Iterator

import numpy as np

from predictors.graph._standin import LoweringError
from predictors.tflite_model import ModelInfo

__all__ = ["LoweringError", "arch_arrays", "from_arch", "lower"]


def _space(space: Any):
    if isinstance(space, str):
        import search_spaces

        return search_spaces.get(space)
    return space


@contextmanager
def gc_paused() -> Iterator[None]:
    """No cyclic garbage collection for the duration (the collector as it was after).

    A lowering makes some ten thousand small objects; each time their count passes the
    collector's threshold it scans the young ones, and now and then every object of the
    process: with TensorFlow loaded (the search's export path loads it), 650,000 objects
    and 400 ms. Paused, the lowering's objects are freed by reference counting or by the
    next collection after it: 120 object-detection trials, TensorFlow loaded, median 8.8
    -> 8.7 ms but mean 12.0 -> 8.6 ms and the slowest 367 -> 13 ms
    (docs/lowering.md). Nested or threaded use is safe: only the outermost pause of an
    enabled collector re-enables it.
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def lower(space: Any, arch: Any) -> ModelInfo:
    """The :class:`~predictors.tflite_model.ModelInfo` the converter would write for ``arch``."""
    from predictors.graph._lower import lower_arch

    with gc_paused():
        return lower_arch(_space(space), arch)


def arch_arrays(space: Any, arch: Any) -> dict[str, Any]:
    """:func:`~predictors.graph.graph_arrays` of the arch's exported model, from the lowering."""
    from predictors.graph._extract import _CLIP, VALUE_KEYS, extract_arrays

    with gc_paused():
        arrays = extract_arrays(lower(space, arch))
    for key in VALUE_KEYS:
        a = arrays[key]
        if not np.maximum.reduce(np.abs(a), axis=None, initial=0.0) <= _CLIP:
            arrays[key] = np.clip(np.nan_to_num(a, nan=0.0, posinf=_CLIP, neginf=-_CLIP), -_CLIP, _CLIP)
    return arrays


def from_arch(space: Any, arch: Any):
    """The PyG graph of ``space``'s ``arch`` (a space object or name): ``from_tflite`` of its export."""
    from predictors.graph._extract import to_data

    return to_data(arch_arrays(space, arch))
