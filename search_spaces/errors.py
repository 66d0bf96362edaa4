"""The project's exception hierarchy.

It lives in the lowest layer (``search_spaces``) so that every package can raise it
without importing upwards; ``hwnas`` and ``predictors`` re-export it.  Every error a
user can cause is a :class:`HwnasError`; the command line prints its message as one
line and exits non-zero.
"""
from __future__ import annotations


class HwnasError(Exception):
    """Base class of every error a user can cause (bad file, unknown name, ...)."""


class UnknownNameError(HwnasError, KeyError):
    """An unknown target, search space or predictor name."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class InvalidModelError(HwnasError, ValueError):
    """A file that is missing, empty, truncated, corrupt or not a TFLite flatbuffer."""


class UnsupportedModelError(HwnasError, ValueError):
    """A valid TFLite model that a target cannot handle (e.g. a float model for Vela)."""


class ExportError(HwnasError, RuntimeError):
    """The TFLite converter rejected a Keras model."""


class TargetError(HwnasError, RuntimeError):
    """A hardware target (Vela, LiteRT) failed on a model that passed validation."""


def unknown_name(kind: str, name: object, known: list[str] | tuple[str, ...]) -> UnknownNameError:
    """Builds the error for an unknown registry name, listing the valid ones."""
    return UnknownNameError(f"unknown {kind} {name!r}; choose one of: {', '.join(known)}")
