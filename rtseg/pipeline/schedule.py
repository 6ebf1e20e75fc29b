"""How the pipeline's stages hand frames over: bounded queues that give up when the run halts, live sources
that drop their oldest frame rather than wait, and the batches the inference stage takes from the streams in
turn (:class:`Scheduling`, a part of :class:`~rtseg.pipeline.core.Pipeline`)."""

from __future__ import annotations

import queue
import threading
import time

from rtseg.pipeline.flow import InOrder
from rtseg.pipeline.streams import Lane

END = object()  # the end of a stream or of a stage's output


class Scheduling:
    """The hand-over methods of :class:`~rtseg.pipeline.core.Pipeline` (which sets every attribute used here)."""

    batch: int
    model: object
    _halt: threading.Event
    _ready: threading.Event
    _take: threading.Lock
    _taken: int
    _lanes: list[Lane]
    _open: list[int]
    _next_turn: int
    _overlap: bool
    _sem_in: queue.Queue
    _inferred: InOrder

    def _put(self, q: queue.Queue, item: object) -> bool:
        while not self._halt.is_set():
            try:
                q.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def _put_latest(self, lane: Lane, item: object) -> None:
        """Live sources: make room by dropping the stream's own oldest frame rather than waiting."""
        while True:
            try:
                lane.decoded.put_nowait(item)
                return
            except queue.Full:
                try:
                    lane.decoded.get_nowait()
                    lane.summary.dropped += 1
                except queue.Empty:
                    pass

    def _get(self, q: queue.Queue) -> tuple[object, int]:
        t0 = time.perf_counter_ns()
        while not self._halt.is_set():
            try:
                return q.get(timeout=0.05), time.perf_counter_ns() - t0
            except queue.Empty:
                continue
        return END, 0

    def _turns(self) -> list[int]:
        """The open streams in round-robin order, starting with the one whose turn it is."""
        after = [s for s in self._open if s >= self._next_turn]
        return after + [s for s in self._open if s < self._next_turn]

    def _next_batch(self) -> list:
        """Up to ``batch`` decoded frames taken from the open streams in turn; [] once every stream ended.

        A file stream is waited for, so its frames fill each batch; a live stream gives only what has
        already arrived, so batching never adds latency waiting for a camera.
        """
        items: list = []
        while len(items) < self.batch and self._open and not self._halt.is_set():
            self._ready.clear()  # before looking: a frame queued after this sets it again, none is missed
            took = False
            for stream in self._turns():
                if len(items) == self.batch:
                    break
                lane = self._lanes[stream]
                if lane.live:
                    try:
                        item = lane.decoded.get_nowait()
                    except queue.Empty:
                        continue
                else:
                    item, _ = self._get(lane.decoded)
                if item is END:
                    self._open.remove(stream)
                    continue
                items.append(item)
                took = True
                self._next_turn = stream + 1
            if not took:
                if items:
                    break  # only live streams are left and they have nothing yet: do not wait for them
                self._ready.wait(0.05)
        return items

    def _take_batch(self) -> tuple[int, list]:
        """The next batch of frames and its number; [] once every stream ended (to one worker only, which
        then sends the end). The lock keeps frame order: batch n holds earlier frames than batch n + 1."""
        with self._take:
            if self._taken < 0:
                return -1, []
            items = self._next_batch()
            seq, self._taken = self._taken, self._taken + 1
            if not items:
                self._taken = -1  # the other workers stop too
                if self._overlap:
                    self._put(self._sem_in, END)
                self._inferred.put(seq, END)
            elif self._overlap and self.model is not None:  # the semantic thread sees frames in the same order
                for frame, _ in items:
                    if not self._put(self._sem_in, frame):
                        return -1, []
            return seq, items
