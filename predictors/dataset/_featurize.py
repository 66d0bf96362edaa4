"""Graph features of stored networks, computed in worker processes (NumPy only, no torch).

``GraphDataset`` hands each worker runs of one shard's networks; a worker opens the
shard (its checksum is checked again there), decodes the stored flatbuffers and
returns their feature arrays, float32 as the graphs keep them.  Workers are plain
``python -m predictors.dataset._featurize`` processes talking pickles over their
standard input and output: unlike ``multiprocessing``'s spawn, they never re-run the
caller's main script (a user's training script needs no ``__main__`` guard), and
unlike fork they inherit none of torch's threads.
"""
from __future__ import annotations

import os
import pickle
import subprocess
import sys
import threading
from typing import Any, Iterable

import numpy as np

_OPEN: dict[str, Any] = {}


def arrays32(data: bytes) -> dict[str, np.ndarray]:
    from predictors.graph import graph_arrays

    arrays = graph_arrays(data)
    for key in ("x", "edge_attr", "u"):
        arrays[key] = arrays[key].astype(np.float32)
    return arrays


def shard_positions(path: str, positions: list[int]) -> list[tuple[int, dict]]:
    """``(position, arrays)`` of the networks at ``positions`` of the shard at ``path``."""
    from predictors.dataset.shards import Shard

    shard = _OPEN.get(path)
    if shard is None:
        _OPEN.clear()  # one shard open at a time
        shard = _OPEN[path] = Shard(path)
    return [(k, arrays32(data)) for k, data in shard.graphs(positions) if data is not None]


def run_parallel(tasks: Iterable[tuple[Any, str, list[int]]], workers: int) -> Iterable[tuple[Any, int, dict]]:
    """``(key, position, arrays)`` for every task ``(key, shard path, positions)``, in any order.

    Raises the worker's error (a :class:`~predictors.dataset.shards.ShardError` for a
    corrupt shard) as it was raised there.
    """
    todo = list(tasks)
    lock = threading.Lock()
    results: list[tuple[Any, list]] = []
    errors: list[BaseException] = []
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")

    def serve() -> None:
        proc = subprocess.Popen([sys.executable, "-m", "predictors.dataset._featurize"], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, env=env)
        try:
            while not errors:
                with lock:
                    if not todo:
                        break
                    key, path, positions = todo.pop(0)
                pickle.dump((path, positions), proc.stdin, protocol=pickle.HIGHEST_PROTOCOL)
                proc.stdin.flush()
                ok, value = pickle.load(proc.stdout)
                if not ok:
                    errors.append(value)
                    break
                with lock:
                    results.append((key, value))
        except (EOFError, OSError, pickle.UnpicklingError) as exc:
            errors.append(RuntimeError(f"a dataset reader process died ({type(exc).__name__}); "
                                       "set HWNAS_DATASET_WORKERS=1 to read in this process"))
        finally:
            try:
                proc.stdin.close()
            except OSError:
                pass
            proc.wait()

    threads = [threading.Thread(target=serve, daemon=True) for _ in range(max(1, min(workers, len(todo))))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    for key, value in results:
        for k, arrays in value:
            yield key, k, arrays


def _main() -> None:
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # nothing else may write to the result pipe
    while True:
        try:
            path, positions = pickle.load(stdin)
        except EOFError:
            return
        try:
            reply = (True, shard_positions(path, positions))
        except Exception as exc:  # sent back, raised in the parent
            reply = (False, exc)
        pickle.dump(reply, stdout, protocol=pickle.HIGHEST_PROTOCOL)
        stdout.flush()


if __name__ == "__main__":
    _main()
