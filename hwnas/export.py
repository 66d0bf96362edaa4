"""Keras -> TFLite export (public name; the code lives in :mod:`search_spaces.export`)."""
from __future__ import annotations

from search_spaces.export import QUANTIZE_MODES, to_tflite

__all__ = ["QUANTIZE_MODES", "to_tflite"]
