"""Threading pieces of the pipeline: stage threads, an in-order hand-over, latency percentiles."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from typing import Protocol

import numpy as np


class _Failing(Protocol):
    def fail(self, exc: BaseException) -> None: ...


class StageThread(threading.Thread):
    """A worker that hands its first exception to ``run.fail`` (which stops the run).

    ``stage`` names what it does (decode, infer, ...); ``cpu_ns`` is the CPU time it used, once it ended.
    """

    def __init__(self, name: str, target: Callable[[], None], run: _Failing, stage: str | None = None) -> None:
        super().__init__(name=f"rtseg-{name}", daemon=True)
        self._target_fn, self._run = target, run
        self.stage = stage or name
        self.cpu_ns = 0

    def run(self) -> None:
        try:
            self._target_fn()
        except BaseException as exc:  # noqa: BLE001 - re-raised on the calling thread
            self._run.fail(exc)
        finally:
            self.cpu_ns = time.thread_time_ns()


def cpu_ms_per_frame(threads: list[StageThread], main_ns: int, process_ns: int, frames: int) -> dict[str, float]:
    """CPU milliseconds per frame of each stage's threads, of the calling thread (``sinks``: encoding and the
    other outputs), of ``other`` threads (codec threads, ONNX Runtime / PyTorch thread pools, ...) and in
    ``total``: where the time goes when the cores, not the stages' waits, set the pace."""
    per: dict[str, float] = {}
    for t in threads:
        per[t.stage] = per.get(t.stage, 0.0) + t.cpu_ns
    per["sinks"] = float(main_ns)
    per["other"] = max(0.0, process_ns - sum(per.values()))
    per["total"] = float(process_ns)
    n = max(frames, 1)
    return {k: round(v / n / 1e6, 3) for k, v in per.items()}


class InOrder:
    """Hands items to one consumer in sequence order, whichever producer finishes first.

    Several inference workers take batches numbered 0, 1, 2, ... and finish them in any order; the
    post-processing stage (tracking, sinks) needs them in order. ``put`` waits while its item is
    ``capacity`` or more ahead of the next one due, so memory stays bounded; the producer of the item
    due never waits, so the hand-over cannot deadlock.

    Args:
        capacity: how far ahead of the next item due a producer may put.
        halt: once set, ``put`` returns False and ``get`` returns ``closed`` instead of waiting.
        closed: what ``get`` returns after ``halt``.
    """

    def __init__(self, capacity: int, halt: threading.Event, closed: object = None) -> None:
        if capacity < 1:
            raise ValueError(f"capacity: expected >= 1, got {capacity}")
        self._capacity, self._halt, self._closed = capacity, halt, closed
        self._items: dict[int, object] = {}
        self._next = 0
        self._cond = threading.Condition()

    def put(self, seq: int, item: object) -> bool:
        with self._cond:
            while seq - self._next >= self._capacity:
                if self._halt.is_set():
                    return False
                self._cond.wait(0.05)
            if self._halt.is_set():
                return False
            self._items[seq] = item
            self._cond.notify_all()
            return True

    def get(self) -> tuple[object, int]:
        """The next item in sequence, and the nanoseconds spent waiting for it."""
        t0 = time.perf_counter_ns()
        with self._cond:
            while self._next not in self._items:
                if self._halt.is_set():
                    return self._closed, 0
                self._cond.wait(0.05)
            item = self._items.pop(self._next)
            self._next += 1
            self._cond.notify_all()
        return item, time.perf_counter_ns() - t0


class Reservoir(list):
    """At most ``capacity`` samples of a series of any length, each value equally likely to be kept
    (reservoir sampling): a run of days keeps its per-stage latency table in bounded memory. Up to
    ``capacity`` values it holds every one, so short runs and benchmarks get exact percentiles.

    Example:
        >>> r = Reservoir(capacity=3)
        >>> for x in range(10):
        ...     r.add(float(x))
        >>> len(r), r.seen
        (3, 10)
    """

    def __init__(self, capacity: int = 20_000, seed: int = 0) -> None:
        super().__init__()
        self.capacity, self.seen = capacity, 0
        self._random = random.Random(seed)

    def add(self, value: float) -> None:
        self.seen += 1
        if len(self) < self.capacity:
            self.append(value)
            return
        k = self._random.randrange(self.seen)
        if k < self.capacity:
            self[k] = value


def percentiles(samples: dict[str, list[float]]) -> dict[str, dict[str, float]]:
    """Mean, p50, p95 and p99 of each non-empty list of samples."""
    out = {}
    for name, values in samples.items():
        if values:
            arr = np.asarray(values)
            out[name] = {"mean": float(arr.mean()), "p50": float(np.percentile(arr, 50)),
                         "p95": float(np.percentile(arr, 95)), "p99": float(np.percentile(arr, 99))}
    return out
