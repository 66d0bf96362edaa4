"""Keep native libraries (TensorFlow, the TFLite converter, Vela) out of the terminal.

TensorFlow and the MLIR converter log from C++ straight to file descriptor 2, and
Vela prints to stdout; ``--json`` output and a user's terminal must stay clean.  The
context manager below redirects the process-level descriptors 1 and 2 into a
temporary file and hands the captured text back, so an error message can still
quote what the native code said.
"""
from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from typing import Iterator


class Captured:
    """Text written to stdout/stderr inside :func:`native_output_captured`."""

    text: str = ""

    def last_line(self, default: str = "") -> str:
        lines = [ln.strip() for ln in self.text.splitlines() if ln.strip()]
        return lines[-1] if lines else default


@contextlib.contextmanager
def native_output_captured() -> Iterator[Captured]:
    """Redirects file descriptors 1 and 2 (C and Python writers alike) to a buffer."""
    captured = Captured()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    try:
        saved = (os.dup(1), os.dup(2))
    except OSError:  # no real descriptors (embedded interpreters): capture Python only
        import io

        buf = io.StringIO()
        with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf):
            yield captured
        captured.text = buf.getvalue()
        return
    with tempfile.TemporaryFile(mode="w+b") as sink:
        # Python-level writers too: sys.stdout may not be fd 1 (pytest, notebooks).
        text = open(os.dup(sink.fileno()), "w", encoding="utf-8", errors="replace", closefd=True)
        try:
            os.dup2(sink.fileno(), 1)
            os.dup2(sink.fileno(), 2)
            with contextlib.redirect_stdout(text), contextlib.redirect_stderr(text):
                yield captured
        finally:
            for stream in (sys.stdout, sys.stderr):
                with contextlib.suppress(Exception):
                    stream.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])
            with contextlib.suppress(Exception):
                text.close()
            sink.seek(0)
            captured.text = sink.read().decode("utf-8", "replace")


def import_tensorflow():
    """Imports TensorFlow once, silently (no oneDNN/absl banners), and returns it."""
    if "tensorflow" in sys.modules:
        return sys.modules["tensorflow"]
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    with native_output_captured():
        import tensorflow as tf  # noqa: WPS433 (heavy import on purpose, here only)

        tf.get_logger().setLevel("ERROR")
        with contextlib.suppress(Exception):
            import absl.logging

            absl.logging.set_verbosity(absl.logging.ERROR)
    return tf


def import_keras():
    """Imports Keras 3 (TensorFlow backend) silently and returns it."""
    if "keras" not in sys.modules:
        import_tensorflow()
        with native_output_captured():
            import keras  # noqa: F401
    return sys.modules["keras"]
