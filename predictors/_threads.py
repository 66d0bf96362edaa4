"""How many threads PyTorch gets for predictor work, set only while that work runs."""
from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Iterator


def torch_threads() -> int:
    """Threads for PyTorch (env ``HWNAS_TORCH_THREADS``, default 1).

    These graphs are small: a second intra-op thread gains little, and on a busy
    machine (a search running beside the training, or two cores shared with the
    dataset builder) OpenMP's spinning made a forward pass 150x slower (measured:
    0.78 s instead of 5 ms for a batch of 64 graphs).
    """
    try:
        return max(1, int(os.environ.get("HWNAS_TORCH_THREADS", "1")))
    except ValueError:
        return 1


@contextmanager
def torch_thread_scope(threads: int | None = None) -> Iterator[None]:
    """``torch.set_num_threads`` for the duration of a block, then the caller's setting back.

    A process that loads a predictor keeps its own thread count everywhere else.
    """
    import torch

    previous = torch.get_num_threads()
    wanted = torch_threads() if threads is None else max(1, int(threads))
    if wanted != previous:
        torch.set_num_threads(wanted)
    try:
        yield
    finally:
        if wanted != previous:
            torch.set_num_threads(previous)
