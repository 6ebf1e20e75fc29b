"""The streaming pipeline: decode -> infer -> post-process + overlay -> sinks, overlapped in threads.

With an instance and a semantic model (combined mode) the semantic model runs on a thread of its own,
concurrently with the instance model, and the post-processing stage joins their results frame by frame.

Stages are joined by bounded queues, so memory stays bounded and a slow stage slows its producers
instead of piling up frames. A file source waits when the queue is full (no frame is lost); a live
source drops its oldest queued frame instead (latency stays bounded). Sinks run on the calling thread,
which OpenCV's window needs, and stop requests (Ctrl-C, SIGTERM, ``q`` in the window) are honoured
between frames, so outputs always end on a whole frame and are finalized.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import torch

from rtseg.models.semantic import SemanticModel
from rtseg.models.yolo_seg import Prepared, YoloSegModel
from rtseg.overlay.annotator import Annotator
from rtseg.sinks.base import Sink, StopRequested
from rtseg.sources.base import Source
from rtseg.tiling import TiledSemantic, TiledYoloSeg
from rtseg.tracking import Tracker
from rtseg.types import STAGES, Frame, FrameResult

LOGGER = logging.getLogger(__name__)
_END = object()


@dataclass
class RunSummary:
    """What a run did: frames, throughput and per-stage latency percentiles (milliseconds)."""

    source: str
    frames: int = 0
    dropped: int = 0
    elapsed_s: float = 0.0
    interrupted: bool = False  # ended early: a stop request or the window was closed
    user_quit: bool = False  # the window was closed (q, Esc)
    stages_ms: dict[str, dict[str, float]] = field(default_factory=dict)

    @property
    def fps(self) -> float:
        return self.frames / self.elapsed_s if self.elapsed_s > 0 else 0.0


def _percentiles(samples: dict[str, list[float]]) -> dict[str, dict[str, float]]:
    out = {}
    for name, values in samples.items():
        if values:
            arr = np.asarray(values)
            out[name] = {"mean": float(arr.mean()), "p50": float(np.percentile(arr, 50)),
                         "p95": float(np.percentile(arr, 95)), "p99": float(np.percentile(arr, 99))}
    return out


class _Stage(threading.Thread):
    """A worker that records the first exception and stops the run."""

    def __init__(self, name: str, target: Callable[[], None], run: Pipeline) -> None:
        super().__init__(name=f"rtseg-{name}", daemon=True)
        self._target_fn, self._run = target, run

    def run(self) -> None:
        try:
            self._target_fn()
        except BaseException as exc:  # noqa: BLE001 - re-raised on the calling thread
            self._run.fail(exc)


class Pipeline:
    """One source through one model into several sinks.

    Args:
        source: where frames come from.
        model: the instance-segmentation stage, or None for semantic-only runs.
        sinks: where results go; the annotated frame is drawn only if one of them needs it.
        annotator: draws results; None writes the raw frames to image sinks.
        max_frames: stop after this many frames.
        queue_size: frames each queue holds between two stages.
        stop: set it (from a signal handler, say) to end the run after the current frame.
        on_frame: called on the calling thread after each frame reached every sink.
        semantic: a semantic-segmentation stage; with ``model`` too, both run concurrently.
        batch: frames per inference call of the instance model (a file fills each batch; a live source
            takes what has arrived).
        tracker: gives instances persistent ids (post-processing stage, in frame order).
        overlap_semantic: run the semantic model on its own thread (default); False runs it before the
            instance model on the same thread (the baseline the overlap gain is measured against).
    """

    def __init__(self, source: Source, model: YoloSegModel | TiledYoloSeg | None, sinks: Sequence[Sink], *,
                 annotator: Annotator | None = None, max_frames: int | None = None, queue_size: int = 4,
                 stop: threading.Event | None = None,
                 on_frame: Callable[[Frame, FrameResult], None] | None = None,
                 semantic: SemanticModel | TiledSemantic | None = None, overlap_semantic: bool = True, batch: int = 1,
                 tracker: Tracker | None = None) -> None:
        if model is None and semantic is None:
            raise ValueError("Pipeline needs an instance model, a semantic model, or both")
        self.source, self.model, self.sinks = source, model, list(sinks)
        self.semantic = semantic
        self.tracker = tracker
        if batch < 1 or (batch > 1 and isinstance(model, TiledYoloSeg)):
            raise ValueError(f"batch: expected >= 1 (1 with tiling, whose tiles are the batch), got {batch}")
        self.batch = batch
        self._overlap = overlap_semantic and model is not None and semantic is not None
        self._sem_in: queue.Queue = queue.Queue(maxsize=queue_size)
        self._sem_out: queue.Queue = queue.Queue(maxsize=queue_size)
        self.annotator = annotator
        self.draw = annotator is not None and any(s.needs_image for s in self.sinks)
        self.max_frames = max_frames
        self.stop = stop or threading.Event()
        self.on_frame = on_frame
        self._decoded: queue.Queue = queue.Queue(maxsize=2 if source.live else queue_size)
        self._inferred: queue.Queue = queue.Queue(maxsize=queue_size)
        self._drawn: queue.Queue = queue.Queue(maxsize=queue_size)
        self._errors: list[BaseException] = []
        self._local = threading.local()
        self._halt = threading.Event()  # stop or failure: every thread winds down
        self.summary = RunSummary(source=source.name)
        self._fps_ema = 0.0

    def fail(self, exc: BaseException) -> None:
        self._errors.append(exc)
        self._halt.set()

    def _put(self, q: queue.Queue, item: object) -> bool:
        while not self._halt.is_set():
            try:
                q.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def _put_latest(self, q: queue.Queue, item: object) -> None:
        """Live sources: make room by dropping the oldest frame rather than waiting."""
        while True:
            try:
                q.put_nowait(item)
                return
            except queue.Full:
                try:
                    q.get_nowait()
                    self.summary.dropped += 1
                except queue.Empty:
                    pass

    def _get(self, q: queue.Queue) -> tuple[object, int]:
        t0 = time.perf_counter_ns()
        while not self._halt.is_set():
            try:
                return q.get(timeout=0.05), time.perf_counter_ns() - t0
            except queue.Empty:
                continue
        return _END, 0

    def _decode(self) -> None:
        index = 0
        while not self._halt.is_set() and (self.max_frames is None or index < self.max_frames):
            t0 = time.perf_counter_ns()
            image = self.source.read()
            if image is None:
                break
            t1 = time.perf_counter_ns()
            ts = index / self.source.fps if not self.source.live else (t1 - self._t_start) / 1e9
            frame = Frame(index, image, ts, self.source.name)
            frame.timings.decode_ns, frame.timings.capture_ns = t1 - t0, t1
            # Letterboxing here keeps the inference thread busy with the model alone (on 2 cores, 720p:
            # +8% end-to-end FPS, measured)
            prepared = self.model.prepare([image]) if self.model is not None else None
            t2 = time.perf_counter_ns()
            frame.timings.preprocess_ns = t2 - t1
            frame.timings.leave(t2)
            item = (frame, prepared)
            if self.source.live:
                self._put_latest(self._decoded, item)
            elif not self._put(self._decoded, item):
                return
            index += 1
        self._put(self._decoded, _END)

    def _on_own_stream(self, device: torch.device | None) -> contextlib.AbstractContextManager:
        """On a GPU, each model thread queues its work on a CUDA stream of its own (so the instance and
        semantic models overlap on the device too); a no-op on the CPU."""
        if device is None or device.type != "cuda":
            return contextlib.nullcontext()
        stream = getattr(self._local, "stream", None)
        if stream is None:
            stream = self._local.stream = torch.cuda.Stream(device)
        return torch.cuda.stream(stream)

    def _labels(self, frame: Frame) -> np.ndarray:
        assert self.semantic is not None
        t0 = time.perf_counter_ns()
        with self._on_own_stream(getattr(self.semantic.backend, "device", None)):
            labels = self.semantic([frame.image])[0]  # returns numpy: synchronised with the stream
        frame.timings.semantic_ns = time.perf_counter_ns() - t0
        return labels

    def _next_batch(self) -> tuple[list, bool]:
        """Up to ``batch`` decoded frames, and whether the source ended. A file waits for a full batch;
        a live source takes what is already there, so batching never adds latency waiting for frames."""
        item, _ = self._get(self._decoded)
        if item is _END:
            return [], True
        items = [item]
        while len(items) < self.batch:
            if self.source.live:
                try:
                    item = self._decoded.get_nowait()
                except queue.Empty:
                    break
            else:
                item, _ = self._get(self._decoded)
            if item is _END:
                return items, True
            items.append(item)
        return items, False

    def _infer(self) -> None:
        concurrent = self._overlap
        inline = self.model is not None and self.semantic is not None and not concurrent
        ended = False
        while not ended:
            items, ended = self._next_batch()
            if not items:
                break
            now = time.perf_counter_ns()
            frames = [frame for frame, _ in items]
            for frame in frames:
                frame.timings.arrive(now)
            if self.model is None:  # semantic only
                for frame in frames:
                    labels = self._labels(frame)
                    frame.timings.leave(time.perf_counter_ns())
                    if not self._put(self._inferred, (frame, None, labels)):
                        return
                continue
            if concurrent and not all(self._put(self._sem_in, frame) for frame in frames):
                return
            labels = [self._labels(frame) for frame in frames] if inline else [None] * len(frames)
            preps = [prepared for _, prepared in items]
            batch = preps[0] if len(preps) == 1 else Prepared(
                np.concatenate([p.batch for p in preps]), tuple(lb for p in preps for lb in p.letterboxes))
            t0 = time.perf_counter_ns()
            device = getattr(self.model.backend, "device", None)
            with self._on_own_stream(device):
                out = self.model.infer(batch)
                if device is not None and device.type == "cuda":
                    torch.cuda.current_stream(device).synchronize()  # the post thread reads the outputs next
            t1 = time.perf_counter_ns()
            if len(frames) == 1:
                outputs = [out]
            else:
                preds, protos = out
                outputs = [(preds[i : i + 1], protos[i : i + 1]) for i in range(len(frames))]
            for i, frame in enumerate(frames):
                frame.timings.infer_ns = t1 - t0
                frame.timings.leave(t1)
                raw = (outputs[i], labels[i])
                if not self._put(self._inferred, (frame, preps[i], raw)):
                    return
        if concurrent:
            self._put(self._sem_in, _END)
        self._put(self._inferred, _END)

    def _infer_semantic(self) -> None:
        """Combined mode: the semantic model, on its own thread, in the same frame order."""
        while True:
            frame, _ = self._get(self._sem_in)
            if frame is _END:
                break
            assert isinstance(frame, Frame)
            if not self._put(self._sem_out, (frame.index, self._labels(frame))):
                return

    def _postprocess(self) -> None:
        recent: collections.deque[int] = collections.deque(maxlen=30)
        while True:
            item, _ = self._get(self._inferred)
            if item is _END:
                break
            frame, prepared, raw = item  # type: ignore[misc]
            t0 = time.perf_counter_ns()
            frame.timings.arrive(t0)
            if self.model is None:
                result = replace(FrameResult.empty(frame.index, frame.image_hw), semantic=raw)
            else:
                raw, labels = raw
                result = self.model.finish(raw, prepared, [frame.index])[0]
                if labels is not None:
                    result = replace(result, semantic=labels)
                elif self._overlap:
                    joined, wait = self._get(self._sem_out)
                    if joined is _END:
                        return
                    index, labels = joined  # type: ignore[misc]
                    if index != frame.index:
                        raise RuntimeError(f"semantic result for frame {index} joined to frame {frame.index}")
                    frame.timings.queue_wait_ns += wait
                    t0 += wait  # waiting for the semantic thread is queue time, not post-processing
                    result = replace(result, semantic=labels)
            if self.tracker is not None:
                result = self.tracker.update(result, frame.image)
            result = replace(result, timestamp_s=frame.timestamp_s, timings=frame.timings)
            t1 = time.perf_counter_ns()
            frame.timings.postprocess_ns = t1 - t0
            annotated = None
            if self.draw and self.annotator is not None:
                # HUD FPS over the last 30 frames: frames reach this stage in bursts, a per-frame rate lies
                recent.append(t1)
                if len(recent) > 1:
                    self._fps_ema = (len(recent) - 1) * 1e9 / max(recent[-1] - recent[0], 1)
                annotated = self.annotator.draw(frame.image, result, fps=self._fps_ema, inplace=True)
                frame.timings.overlay_ns = time.perf_counter_ns() - t1
            frame.timings.leave(time.perf_counter_ns())
            if not self._put(self._drawn, (frame, annotated, result)):
                return
        self._put(self._drawn, _END)

    def run(self) -> RunSummary:
        """Process the source to its end, ``max_frames``, a stop request or an error; close every sink.

        Raises:
            RtsegError: from a stage (an unreadable source, a sink that cannot write, ...), after the sinks
                are closed.
        """
        samples: dict[str, list[float]] = {name: [] for name in (*STAGES, "semantic", "queue_wait", "latency")}
        self._t_start = time.perf_counter_ns()
        threads = [_Stage("decode", self._decode, self), _Stage("infer", self._infer, self),
                   _Stage("post", self._postprocess, self)]
        if self._overlap:
            threads.append(_Stage("semantic", self._infer_semantic, self))
        for t in threads:
            t.start()
        try:
            while not self.stop.is_set():
                try:
                    item = self._drawn.get(timeout=0.05)
                except queue.Empty:
                    if self._halt.is_set():
                        break
                    continue
                if item is _END:
                    break
                frame, annotated, result = item
                t0 = time.perf_counter_ns()
                frame.timings.arrive(t0)
                for sink in self.sinks:
                    sink.write(frame, annotated, result)
                t1 = time.perf_counter_ns()
                frame.timings.encode_ns, frame.timings.done_ns = t1 - t0, t1
                self.summary.frames += 1
                for name, ms in frame.timings.as_ms().items():
                    samples[name].append(ms)
                if self.on_frame is not None:
                    self.on_frame(frame, result)
        except StopRequested:
            self.summary.user_quit = True
        finally:
            self.summary.interrupted = self.stop.is_set() or self.summary.user_quit
            self._halt.set()
            interrupt = getattr(self.source, "interrupt", None)
            if interrupt is not None:  # end a reconnect back-off now; the capture is released after the join
                interrupt()
            for t in threads:
                t.join(timeout=10)
            self.source.close()
            self.summary.elapsed_s = (time.perf_counter_ns() - self._t_start) / 1e9
            self.summary.stages_ms = _percentiles(samples)
            close_errors = []
            for sink in self.sinks:
                try:
                    sink.close()
                except Exception as exc:  # noqa: BLE001 - close every sink, report the first failure
                    close_errors.append(exc)
        errors = [e for e in self._errors if not isinstance(e, StopRequested)] + close_errors
        if errors:
            raise errors[0]
        return self.summary
