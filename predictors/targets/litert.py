"""This host's CPU through the LiteRT interpreter (1 thread, default XNNPACK delegate).

Latency is real but machine-specific and noisy: every label carries the machine
(CPU model, core count), the LiteRT version and the spread of the timed runs.
``latency_ms`` is the fastest of runs spread over ten rounds 50 ms apart (about a
second): interference only adds time, and on a shared 2-core host the median of one
0.25 s window (``timing="median"``, how labels were timed before 2026-12-02) moved by
up to 2x between repeats of the same file while this fastest run stays within a few
per cent (``benchmarks/cpu_timing.py``). ``timing`` in every label says which.
``arena_kib`` is the activation memory that the interpreter itself plans when no
delegate is applied: the span of every non-constant tensor's buffer (model tensors
and the kernels' scratch tensors), read from the interpreter after
``allocate_tensors()``, or, for a model with shapes only known at run time
(``shape_signature`` -1), after one inference, when the kernels have sized them.

Latency is timed the way a user runs the file: the interpreter with its default
delegates, so a custom operator the XNNPACK delegate implements (MediaPipe's
``Convolution2DTransposeBias``) runs. The arena's set-up (the built-in kernels alone)
cannot run such a model: the label then has no ``arena_kib`` and ``arena_error`` says why.
"""
from __future__ import annotations

import gc
import os
import platform
import statistics
import time
from functools import lru_cache
from typing import Any

import numpy as np

from search_spaces._quiet import native_output_captured
from search_spaces.errors import TargetError

from predictors.targets._base import Target, register_target
from predictors.tflite_model import ModelSource, load_model

# Neighbouring tensors in one arena lie at most an alignment step apart
# (TFLite aligns to 64 bytes); a bigger gap means a separate allocation.
_ARENA_GAP_BYTES = 128
# ``rounds``: the fastest of runs spread over about a second (the default), robust to the
# bursts of a shared host; ``median``: the median of one window (labels before 2026-12-02).
TIMINGS = ("rounds", "median")


def cpu_model(cpuinfo: str | None = None) -> str:
    """``model name [family F model M stepping S, cache C, bogomips B]`` of the first CPU of
    ``cpuinfo`` (default: this host's ``/proc/cpuinfo``; elsewhere ``platform``'s name)."""
    if cpuinfo is None:
        try:
            with open("/proc/cpuinfo") as f:
                cpuinfo = f.read()
        except OSError:
            cpuinfo = ""
    fields: dict[str, str] = {}
    for line in cpuinfo.splitlines():
        if not line.strip():
            if fields:
                break  # the first processor's block only
            continue
        key, _, value = line.partition(":")
        fields.setdefault(key.strip().lower(), value.strip())
    name = fields.get("model name") or platform.processor() or platform.machine()
    detail = [f"{label} {fields[key]}" for key, label in (("cpu family", "family"), ("model", "model"),
                                                          ("stepping", "stepping"), ("cache size", "cache"))
              if fields.get(key)]
    if fields.get("bogomips"):
        try:
            detail.append(f"bogomips {float(fields['bogomips']):.0f}")
        except ValueError:
            pass
    return f"{name} [{', '.join(detail)}]" if detail else name


@lru_cache(maxsize=1)
def machine() -> dict[str, Any]:
    """The host that produced a latency label.

    ``cpu_model`` is the CPU's model name and, where ``/proc/cpuinfo`` has them, its
    family, model and stepping, cache size and BogoMIPS: cloud hosts report bare names
    ("AMD EPYC"), and two machines of that one name timed this project's float labels
    1.5x apart (docs/datasets.md), so the name alone does not tell hosts apart.
    """
    return {
        "cpu_model": cpu_model(),
        "cpu_cores": os.cpu_count() or 1,
        "arch": platform.machine(),
        "system": platform.system(),
    }


@lru_cache(maxsize=1)
def litert_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("ai-edge-litert")
    except PackageNotFoundError:  # pragma: no cover
        return "unknown"


def _fill_inputs(interpreter, seed: int) -> None:
    rng = np.random.default_rng(seed)
    for detail in interpreter.get_input_details():
        shape = [max(int(d), 1) for d in detail["shape"]]
        dtype = np.dtype(detail["dtype"])
        if np.issubdtype(dtype, np.integer):
            info = np.iinfo(dtype)
            value = rng.integers(max(info.min, -128), min(info.max, 127), size=shape, endpoint=True)
        elif dtype == np.bool_:
            value = rng.integers(0, 1, size=shape, endpoint=True)
        else:
            value = rng.standard_normal(shape)
        interpreter.set_tensor(detail["index"], value.astype(dtype))


def arena_bytes(interpreter, constant_tensors: set[int]) -> int:
    """Bytes spanned by the interpreter's non-constant tensor buffers.

    Tensors are grouped into allocations (arena, persistent arena) by address; the
    result is the sum of each allocation's span.
    """
    spans = []
    raw = interpreter._interpreter
    for index in range(raw.NumTensors(0)):
        if index in constant_tensors:
            continue
        try:
            # Scratch tensors without a shape crash ``tensor()`` natively: ask first.
            shape = raw.TensorSize(index, 0)
            raw.TensorType(index, 0)
        except (ValueError, RuntimeError):
            continue
        if len(shape) == 0 or int(np.prod(shape)) == 0:
            continue
        try:
            array = interpreter.tensor(index)()
        except (ValueError, RuntimeError):  # no data (unused or optional tensor)
            continue
        if array.nbytes == 0:
            continue
        start = array.ctypes.data
        spans.append((start, start + array.nbytes))
    if not spans:
        return 0
    spans.sort()
    total, lo, hi = 0, spans[0][0], spans[0][1]
    for start, end in spans[1:]:
        if start > hi + _ARENA_GAP_BYTES:
            total += hi - lo
            lo, hi = start, end
        else:
            hi = max(hi, end)
    return total + hi - lo


class LiteRTCPUTarget(Target):
    """LiteRT on this host's CPU."""

    name = "cpu-litert"
    metrics = ("latency_ms", "arena_kib", "model_kib")
    timed_metrics = ("latency_ms",)  # the arena and the file are the model's, whatever the host
    # the arena as LiteRT's planner lays it out (the extractor's ``arena_plan_bytes``,
    # docs/graph.md): within 1.5 % on the committed networks, 0.2 % on MediaPipe's files
    priors = {"arena_kib": (("arena_plan_bytes",), 1.0 / 1024.0)}
    description = "LiteRT interpreter on this host's CPU: 1 thread, default XNNPACK delegate"

    def __init__(
        self,
        num_threads: int = 1,
        min_runs: int = 50,
        min_time_s: float = 0.25,
        max_runs: int = 2000,
        warmup_time_s: float = 0.05,
        seed: int = 0,
        timing: str = "rounds",
        rounds: int = 10,
        round_time_s: float = 0.06,
        gap_s: float = 0.05,
    ):
        if min_runs < 1:
            raise ValueError("min_runs must be at least 1")
        if timing not in TIMINGS:
            raise ValueError(f"timing must be one of {', '.join(TIMINGS)}, got {timing!r}")
        if rounds < 1:
            raise ValueError("rounds must be at least 1")
        self.num_threads = num_threads
        self.min_runs, self.min_time_s, self.max_runs = min_runs, min_time_s, max_runs
        self.warmup_time_s = warmup_time_s
        self.seed = seed
        self.timing = timing
        self.rounds, self.round_time_s, self.gap_s = rounds, round_time_s, gap_s

    @property
    def timing_id(self) -> str:
        """What ``latency_ms`` is, recorded in every label as ``timing``."""
        return "median" if self.timing == "median" else f"min-of-{self.rounds}-rounds"

    def stale(self, metrics: dict[str, Any]) -> bool:
        """A label timed another way than this target times (a label without ``timing`` is ``median``)."""
        return metrics.get("timing", "median") != self.timing_id

    def settings(self) -> dict[str, Any]:
        if self.timing == "median":
            timing = (f"warm-up >= 3 runs and {self.warmup_time_s}s, then the median of >= {self.min_runs} "
                      f"runs and >= {self.min_time_s}s (at most {self.max_runs})")
        else:
            timing = (f"warm-up >= 3 runs and {self.warmup_time_s}s, then {self.rounds} rounds "
                      f"{self.gap_s}s apart, each >= {self.round_time_s}s and >= "
                      f"{self._round_runs()} runs (>= {self.min_runs} in all, at most {self.max_runs}); "
                      "latency_ms is the fastest run")
        return {
            "tool": "ai-edge-litert",
            "litert_version": litert_version(),
            "num_threads": self.num_threads,
            "delegate": "XNNPACK (default)",
            "timing": timing,
            "timing_id": self.timing_id,
            "machine": machine(),
        }

    def _round_runs(self) -> int:
        return max(1, -(-self.min_runs // self.rounds))

    def _time(self, invoke) -> list[int]:
        """Run times in ns: one window (``median``) or ``rounds`` windows ``gap_s`` apart."""
        times: list[int] = []
        if self.timing == "median":
            windows, per_window, window_s, cap = 1, self.min_runs, self.min_time_s, self.max_runs
        else:
            windows, per_window, window_s = self.rounds, self._round_runs(), self.round_time_s
            cap = max(per_window, self.max_runs // self.rounds)
        for w in range(windows):
            if w and self.gap_s > 0:
                time.sleep(self.gap_s)
            start, n = time.perf_counter(), 0
            while n < cap:
                t0 = time.perf_counter_ns()
                invoke()
                times.append(time.perf_counter_ns() - t0)
                n += 1
                if n >= per_window and time.perf_counter() - start >= window_s:
                    break
        return times

    def _interpreter(self, data: bytes, delegates: bool, what: str = "LiteRT cannot run this model"):
        from ai_edge_litert.interpreter import Interpreter, OpResolverType

        kwargs: dict[str, Any] = {"model_content": data, "num_threads": self.num_threads}
        if not delegates:
            kwargs["experimental_op_resolver_type"] = OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
        error: BaseException | None = None
        with native_output_captured() as captured:
            try:
                interpreter = Interpreter(**kwargs)
                interpreter.allocate_tensors()
            except Exception as exc:  # unresolved custom ops, dynamic shapes, ...
                error = exc
        if error is not None:
            reason = (str(error).strip().splitlines() or [captured.last_line(type(error).__name__)])[0]
            raise TargetError(f"{self.name}: {what}: {reason[:300]}")
        return interpreter

    def measure(self, tflite: ModelSource) -> dict[str, Any]:
        data, info = load_model(tflite)
        constants = {t.index for t in info.tensors if t.is_constant}

        # Activation memory, as planned by the interpreter without delegates.
        arena: int | None = None
        arena_error = None
        try:
            plain = self._interpreter(data, delegates=False, what="the arena's set-up (built-in kernels, no "
                                      "delegates) cannot run this model")
        except TargetError as exc:
            arena_error = str(exc)
        else:
            if any(t.is_dynamic for t in info.tensors if not t.is_constant):
                # shapes known only at run time: the kernels size those tensors (and their
                # temporaries) when they run, so the arena is read after one inference
                _fill_inputs(plain, self.seed)
                try:
                    plain.invoke()
                except Exception as exc:
                    arena_error = f"{self.name}: the arena's set-up failed while running the model: {exc}"
            if arena_error is None:
                arena = arena_bytes(plain, constants)
            del plain

        interpreter = self._interpreter(data, delegates=True)
        _fill_inputs(interpreter, self.seed)
        invoke = interpreter.invoke
        try:
            deadline = time.perf_counter() + self.warmup_time_s
            for i in range(1000):
                invoke()
                if i >= 2 and time.perf_counter() > deadline:
                    break
            gc_was_enabled = gc.isenabled()
            gc.disable()
            try:
                times = self._time(invoke)
            finally:
                if gc_was_enabled:
                    gc.enable()
        except Exception as exc:
            raise TargetError(f"{self.name}: LiteRT failed while running the model: {exc}") from None
        times_ms = np.asarray(times, dtype=np.float64) / 1e6
        q10, q25, q50, q75, q90 = np.percentile(times_ms, [10, 25, 50, 75, 90])
        memory = {"arena_kib": arena / 1024.0} if arena is not None else {"arena_error": arena_error}
        median = float(statistics.median(times_ms.tolist()))
        return {
            "latency_ms": median if self.timing == "median" else float(times_ms.min()),
            "timing": self.timing_id,
            "latency_median_ms": median,
            **memory,
            "model_kib": len(data) / 1024.0,
            "latency_p10_ms": float(q10),
            "latency_p90_ms": float(q90),
            "latency_iqr_ms": float(q75 - q25),
            "latency_min_ms": float(times_ms.min()),
            "runs": len(times),
            "litert_version": litert_version(),
            **{k: v for k, v in machine().items()},
        }


register_target(LiteRTCPUTarget.name, LiteRTCPUTarget)
