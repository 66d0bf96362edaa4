"""Worker pools for dataset building: local processes, or a Ray cluster.

Both keep TensorFlow loaded in long-lived workers and isolate every task: a worker
that dies (the TFLite converter or Vela can segfault on odd graphs) or overruns the
task timeout is replaced, and its task comes back as a failure, so one bad network
never ends a long build.
"""
from __future__ import annotations

import multiprocessing as mp
import time
from multiprocessing.connection import wait
from typing import Any, Callable, Iterable, Iterator

Task = dict[str, Any]
Result = dict[str, Any]


DEFAULT_WORKER = "predictors.dataset._work:label_network"


def _resolve(path: str) -> Callable[[Task], Result]:
    import importlib

    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


def _worker_main(conn, worker: str) -> None:
    run = _resolve(worker)
    if worker == DEFAULT_WORKER:
        from predictors.dataset._work import warm_up

        try:
            warm_up()
        except Exception:
            pass  # each task will report its own import failure
    while True:
        try:
            task = conn.recv()
        except (EOFError, OSError):  # the parent is gone
            return
        if task is None:
            return
        result = run(task)
        try:
            conn.send(result)
        except OSError:  # the parent is gone (killed mid-task): nothing to report to
            return


class LocalPool:
    """``workers`` processes (spawned, not forked: TensorFlow is not fork-safe)."""

    def __init__(self, workers: int = 1, timeout_s: float = 900.0, worker: str = DEFAULT_WORKER):
        self.size = max(1, int(workers))
        self.timeout_s = timeout_s
        self.worker = worker
        self.ctx = mp.get_context("spawn")
        self.workers: list[dict[str, Any]] = []

    def _start(self) -> dict[str, Any]:
        parent, child = self.ctx.Pipe()
        proc = self.ctx.Process(target=_worker_main, args=(child, self.worker), daemon=True)
        proc.start()
        child.close()
        return {"proc": proc, "conn": parent, "task": None, "started": 0.0}

    def map_unordered(self, tasks: Iterable[Task]) -> Iterator[tuple[Task, Result]]:
        """Runs tasks, yielding ``(task, result)`` as each finishes (any order)."""
        pending = iter(tasks)
        exhausted = False
        self.workers = [self._start() for _ in range(self.size)]
        try:
            while True:
                for w in self.workers:
                    if w["task"] is None and not exhausted:
                        task = next(pending, None)
                        if task is None:
                            exhausted = True
                            break
                        w["conn"].send(task)
                        w["task"], w["started"] = task, time.monotonic()
                busy = [w for w in self.workers if w["task"] is not None]
                if not busy:
                    return
                ready = wait([w["conn"] for w in busy] + [w["proc"].sentinel for w in busy], timeout=5.0)
                now = time.monotonic()
                for i, w in enumerate(self.workers):
                    if w["task"] is None:
                        continue
                    task = w["task"]
                    crashed = w["proc"].sentinel in ready
                    if w["conn"] in ready:
                        try:
                            result = w["conn"].recv()
                        except (EOFError, OSError):  # the pipe closed: the worker is gone
                            crashed = True
                        else:
                            w["task"] = None
                            yield task, result
                            continue
                    if crashed or not w["proc"].is_alive():
                        w["proc"].join(10)
                        code = w["proc"].exitcode
                        self._replace(i)
                        yield task, {"status": "failed", "labels": {},
                                     "reason": f"worker crashed: exit code {code} (native code died on this network)"}
                    elif now - w["started"] > self.timeout_s:
                        self._replace(i)
                        yield task, {"status": "failed", "labels": {},
                                     "reason": f"timeout: over {self.timeout_s:.0f} s"}
        finally:
            self.close()

    def _replace(self, i: int) -> None:
        w = self.workers[i]
        if w["proc"].is_alive():
            w["proc"].kill()
        w["proc"].join(5)
        w["conn"].close()
        self.workers[i] = self._start()

    def close(self) -> None:
        for w in self.workers:
            try:
                w["conn"].send(None)
            except (OSError, ValueError):
                pass
        for w in self.workers:
            w["proc"].join(2)
            if w["proc"].is_alive():
                w["proc"].kill()
                w["proc"].join(2)
            w["conn"].close()
        self.workers = []


class RayPool:
    """The same work on a Ray cluster: one long-lived actor per worker slot.

    Args:
        address: ``ray.init(address=...)``: ``"auto"`` or ``"ray://host:10001"`` for a
            cluster; None starts a local Ray instance.
    """

    def __init__(self, workers: int = 2, address: str | None = None, timeout_s: float = 900.0,
                 worker: str = DEFAULT_WORKER):
        try:
            import ray
        except ImportError:
            from search_spaces.errors import HwnasError

            raise HwnasError("--backend ray needs Ray: pip install 'ray[default]'") from None
        self.ray = ray
        if not ray.is_initialized():
            ray.init(address=address, include_dashboard=False, log_to_driver=False,
                     ignore_reinit_error=True, logging_level="ERROR")
        self.size = max(1, int(workers))
        self.timeout_s = timeout_s
        self.worker = worker

        @ray.remote(num_cpus=1, max_restarts=-1, max_task_retries=0)
        class _Worker:
            def __init__(self, worker: str):
                self.run_task = _resolve(worker)
                if worker == DEFAULT_WORKER:
                    from predictors.dataset._work import warm_up

                    warm_up()

            def run(self, task):
                return self.run_task(task)

        self._actor_class = _Worker

    def map_unordered(self, tasks: Iterable[Task]) -> Iterator[tuple[Task, Result]]:
        ray = self.ray
        pending = iter(tasks)
        actors = [self._actor_class.remote(self.worker) for _ in range(self.size)]
        inflight: dict[Any, tuple[int, Task, float]] = {}

        def submit(slot: int) -> None:
            task = next(pending, None)
            if task is not None:
                inflight[actors[slot].run.remote(task)] = (slot, task, time.monotonic())

        for slot in range(self.size):
            submit(slot)
        try:
            while inflight:
                done, _ = ray.wait(list(inflight), num_returns=1, timeout=5.0)
                now = time.monotonic()
                for ref in done:
                    slot, task, _ = inflight.pop(ref)
                    try:
                        result = ray.get(ref)
                    except Exception as exc:  # the actor died (native crash) or the task errored
                        result = {"status": "failed", "labels": {},
                                  "reason": f"worker crashed: {type(exc).__name__}"}
                    yield task, result
                    submit(slot)
                for ref, (slot, task, started) in list(inflight.items()):
                    if now - started > self.timeout_s:
                        inflight.pop(ref)
                        ray.kill(actors[slot], no_restart=True)
                        actors[slot] = self._actor_class.remote(self.worker)
                        yield task, {"status": "failed", "labels": {},
                                     "reason": f"timeout: over {self.timeout_s:.0f} s"}
                        submit(slot)
        finally:
            for actor in actors:
                ray.kill(actor, no_restart=True)


def make_pool(backend: str, workers: int, address: str | None = None, timeout_s: float = 900.0):
    from search_spaces.errors import unknown_name

    if backend == "local":
        return LocalPool(workers, timeout_s)
    if backend == "ray":
        return RayPool(workers, address, timeout_s)
    raise unknown_name("backend", backend, ["local", "ray"])

