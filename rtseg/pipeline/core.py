"""The streaming pipeline: decode -> infer -> post-process + overlay -> sinks, overlapped in threads.

With an instance and a semantic model (combined mode) the semantic model runs on a thread of its own,
concurrently with the instance model, and the post-processing stage joins their results frame by frame.

Several sources (:class:`Stream`, :meth:`Pipeline.multi`) share one pipeline: each has its own decode
thread and queue, the inference stage takes frames from the streams in turn and runs them as one batch
(one model call for N cameras), and each frame goes to its own stream's tracker, annotator and sinks.

Stages are joined by bounded queues, so memory stays bounded and a slow stage slows its producers
instead of piling up frames. A file source waits when its queue is full (no frame is lost); a live
source drops its own oldest queued frame instead (latency stays bounded, other streams are untouched).
Sinks run on the calling thread, which OpenCV's window needs, and stop requests (Ctrl-C, SIGTERM, ``q``
in the window) are honoured between frames, so outputs always end on a whole frame and are finalized.
Iterating over a pipeline runs it and yields each frame and its result there, after the sinks.

The pipeline only schedules: the model stages (:mod:`rtseg.models.base`) decide how frames are batched,
how many calls run at once and where they compute.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import queue
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, cast

import numpy as np

from rtseg.models.base import InstanceStage, SemanticStage, as_semantic_stage
from rtseg.overlay.annotator import Annotator
from rtseg.overlay.device import overlay_on_device
from rtseg.pipeline.flow import InOrder, Reservoir, StageThread, cpu_ms_per_frame, percentiles
from rtseg.pipeline.schedule import END, Scheduling
from rtseg.pipeline.streams import Lane, RunSummary, Stream, StreamSummary
from rtseg.sinks.base import Sink, StopRequested
from rtseg.sources.base import Source
from rtseg.tracking import Tracker
from rtseg.types import STAGES, Frame, FrameResult

if TYPE_CHECKING:
    import torch

__all__ = ["Pipeline", "RunSummary", "Stream", "StreamSummary"]

LOGGER = logging.getLogger(__name__)
WIND_DOWN_S = 1.0  # how long a stop waits for the stage threads to finish what they are doing


class _PerThread(threading.local):
    stream: torch.cuda.Stream | None = None  # the CUDA stream this model thread queues its work on


class Pipeline(Scheduling):
    """One source, or several (:meth:`multi`), through one model into sinks.

    ``Pipeline(source, model, sinks, annotator=..., tracker=...)`` runs one source;
    ``Pipeline.multi([Stream(src_a, sinks_a), Stream(src_b, sinks_b)], model, ...)`` runs several in one
    pipeline, batching their frames into shared inference calls. :meth:`run` runs it to the end;
    ``for frame, result in pipeline:`` runs it and hands each frame over as it leaves the sinks.

    Args:
        source: where frames come from (None when ``streams`` is given).
        model: the instance-segmentation stage (:class:`~rtseg.models.base.InstanceStage`), or None for
            semantic-only runs.
        sinks: where results go (none: iterate over the pipeline); the annotated frame is drawn only if
            one of them needs it.
        annotator: draws results; None writes the raw frames to image sinks.
        max_frames: stop each stream after this many frames.
        queue_size: frames each queue holds between two stages.
        stop: set it (from a signal handler, say) to end the run after the current frame.
        on_frame: called on the calling thread after each frame reached every sink.
        semantic: a semantic-segmentation stage (:class:`~rtseg.models.base.SemanticStage`, or a function
            of a list of frames returning their label maps); with ``model`` too, both run concurrently.
        batch: frames per inference call of the instance model, taken from the streams in turn (a file
            fills each batch; a live source gives what has arrived). Default: the number of streams, so each
            call has one frame of every stream, up to the model's ``max_batch`` (1 with tiling, whose tiles
            are the batch).
        tracker: gives instances persistent ids (post-processing stage, in frame order).
        overlap_semantic: run the semantic model on its own thread (default); False runs it before the
            instance model on the same thread (the baseline the overlap gain is measured against).
        streams: several sources, each with its own sinks, annotator and tracker, instead of ``source``,
            ``sinks``, ``annotator`` and ``tracker``.
    """

    def __init__(self, source: Source | None, model: InstanceStage | None,
                 sinks: Sequence[Sink] = (), *, annotator: Annotator | None = None, max_frames: int | None = None,
                 queue_size: int = 4, stop: threading.Event | None = None,
                 on_frame: Callable[[Frame, FrameResult], None] | None = None,
                 semantic: SemanticStage | Callable[[list[np.ndarray]], list[np.ndarray]] | None = None,
                 overlap_semantic: bool = True,
                 batch: int | None = None, tracker: Tracker | None = None,
                 streams: Sequence[Stream] | None = None) -> None:
        if model is None and semantic is None:
            raise ValueError("Pipeline needs an instance model, a semantic model, or both")
        if streams is None:
            if source is None:
                raise ValueError("Pipeline needs a source or streams")
            streams = [Stream(source, sinks, annotator, tracker)]
        elif source is not None or sinks or annotator is not None or tracker is not None:
            raise ValueError("Pipeline: pass one source (with sinks, annotator, tracker) or streams, not both")
        if not streams:
            raise ValueError("Pipeline needs at least one stream")
        self.streams = list(streams)
        self.model = model
        self.semantic = as_semantic_stage(semantic) if semantic is not None else None
        max_batch = model.max_batch if model is not None else None
        if batch is None:
            batch = len(self.streams) if max_batch is None else min(len(self.streams), max_batch)
        if batch < 1 or (max_batch is not None and batch > max_batch):
            most = "" if max_batch is None else f" and at most {max_batch}, the most frames this model takes per call"
            raise ValueError(f"batch={batch}: expected at least 1{most}")
        self.batch = batch
        self._overlap = overlap_semantic and model is not None and semantic is not None
        self._sem_in: queue.Queue = queue.Queue(maxsize=queue_size)
        self._sem_out: queue.Queue = queue.Queue(maxsize=queue_size)
        self.max_frames = max_frames
        self.stop = stop or threading.Event()
        self.on_frame = on_frame
        self._halt = threading.Event()  # stop or failure: every thread winds down
        self._lanes = [Lane(s, queue_size) for s in self.streams]
        self._open = list(range(len(self._lanes)))  # streams whose decoder has not ended
        self._next_turn = 0  # the stream the next batch starts with
        self._ready = threading.Event()  # a decoder queued a frame: wakes an inference stage waiting on live streams
        # inference workers: as many as the model serves at once (ONNX Runtime on a CPU: 2 sessions);
        # they take numbered batches and the post-processing stage receives them back in order
        self.workers = max(1, model.workers) if model is not None else 1
        # PyTorch only post-processes here unless a model runs on it on the CPU: then one intra-op thread.
        # Small per-frame ops split over every core wait on each other and on the decode, encode and ONNX
        # Runtime threads (measured, 2 cores, 720p, 2 ONNX Runtime workers: 26.7 -> 33.5 FPS end to end)
        torch_cpu = any(stage.uses_torch_cpu for stage in (self.model, self.semantic) if stage is not None)
        self._torch_threads = None if torch_cpu else 1
        self._take = threading.Lock()
        self._taken = 0  # batches numbered so far
        self._inferred = InOrder(queue_size, self._halt, closed=END)
        self._drawn: queue.Queue = queue.Queue(maxsize=queue_size)
        self._errors: list[BaseException] = []
        self._local = _PerThread()
        self._started = False
        self.summary = RunSummary(source=", ".join(lane.source.name for lane in self._lanes))

    @classmethod
    def multi(cls, streams: Sequence[Stream], model: InstanceStage | None,
              **options: object) -> Pipeline:
        """Several sources through one model: ``options`` as for :class:`Pipeline` (``batch``, ``semantic``,
        ``max_frames``, ``stop``, ...); each :class:`Stream` brings its own sinks, annotator and tracker."""
        return cls(None, model, streams=streams, **options)  # type: ignore[arg-type]

    def fail(self, exc: BaseException) -> None:
        self._errors.append(exc)
        self._halt.set()

    def _decode(self, stream: int) -> None:
        """One thread per stream, so a camera that blocks in read() never stalls the other streams."""
        lane = self._lanes[stream]
        source = lane.source
        index = 0
        if lane.live:  # frames buffered while the model loaded are stale: start at the live edge
            skip = getattr(source, "skip_backlog", None)
            lane.summary.skipped = skip() if skip is not None else 0
            if lane.summary.skipped:
                LOGGER.info("%s: skipped %d frames buffered before the run started (%.1f s behind live)",
                            source.name, lane.summary.skipped, lane.summary.skipped / source.fps)
        while not self._halt.is_set() and (self.max_frames is None or index < self.max_frames):
            t0 = time.perf_counter_ns()
            image = source.read()
            if image is None or self._halt.is_set():  # a read can take long (a stalled stream): check again
                break
            t1 = time.perf_counter_ns()
            ts = index / source.fps if not lane.live else (t1 - self._t_start) / 1e9
            frame = Frame(index, image, ts, source.name, stream=stream, path=getattr(source, "path", None))
            frame.timings.decode_ns, frame.timings.capture_ns = t1 - t0, t1
            # Letterboxing here keeps the inference thread busy with the model alone (on 2 cores, 720p:
            # +8% end-to-end FPS, measured)
            prepared = self.model.prepare([image]) if self.model is not None else None
            t2 = time.perf_counter_ns()
            frame.timings.preprocess_ns = t2 - t1
            frame.timings.leave(t2)
            item = (frame, prepared)
            if lane.live:
                self._put_latest(lane, item)
            elif not self._put(lane.decoded, item):
                return
            self._ready.set()
            index += 1
        self._put(lane.decoded, END)  # the inference stage ends once every stream has sent its end
        self._ready.set()

    def _warm_up(self) -> None:
        """With a live source, run the models once on a blank frame of its size before the first frame is
        read: a first call is slow (memory plans, kernels picked), and a live source would drop the frames
        that arrive meanwhile."""
        sizes = [getattr(lane.source, "frame_hw", None) for lane in self._lanes if lane.live]
        hw = next((s for s in sizes if s), None)
        if hw is None:
            return
        blank = np.zeros((*hw, 3), np.uint8)
        t0 = time.perf_counter_ns()
        if self.model is not None:
            self._run_model([self.model.prepare([blank])])
        if self.semantic is not None:
            with self._on_own_stream(self.semantic.device):
                self.semantic([blank])
        LOGGER.debug("models warmed up in %.0f ms", (time.perf_counter_ns() - t0) / 1e6)

    def _on_own_stream(self, device: torch.device | None) -> contextlib.AbstractContextManager:
        """On a GPU, each model thread queues its work on a CUDA stream of its own (so the instance and
        semantic models overlap on the device too); a no-op on the CPU."""
        if device is None or device.type != "cuda":
            return contextlib.nullcontext()
        import torch

        stream = self._local.stream
        if stream is None:
            stream = self._local.stream = torch.cuda.Stream(device)
        return torch.cuda.stream(stream)

    def _labels(self, frame: Frame) -> np.ndarray:
        assert self.semantic is not None
        t0 = time.perf_counter_ns()
        with self._on_own_stream(self.semantic.device):
            labels = self.semantic([frame.image])[0]  # returns numpy: synchronised with the stream
        frame.timings.semantic_ns = time.perf_counter_ns() - t0
        return labels

    def _run_model(self, preps: list) -> list:
        """The raw outputs of each frame; the model batches them as it can and splits the outputs back."""
        assert self.model is not None
        device = self.model.device
        with self._on_own_stream(device):
            outputs = self.model.infer_frames(preps)
            if device is not None and device.type == "cuda":
                import torch

                torch.cuda.current_stream(device).synchronize()  # the post thread reads the outputs next
        return outputs

    def _infer(self) -> None:
        """One inference worker; ``self.workers`` of them run at once, each on whole batches."""
        inline = self.model is not None and self.semantic is not None and not self._overlap
        while True:
            seq, items = self._take_batch()
            if not items:
                break
            now = time.perf_counter_ns()
            frames = [frame for frame, _ in items]
            for frame in frames:
                frame.timings.arrive(now)
            if self.model is None:  # semantic only
                done = []
                for frame in frames:
                    labels = self._labels(frame)
                    frame.timings.leave(time.perf_counter_ns())
                    done.append((frame, None, labels))
                if not self._inferred.put(seq, done):
                    return
                continue
            labels = [self._labels(frame) for frame in frames] if inline else [None] * len(frames)
            preps = [prepared for _, prepared in items]
            t0 = time.perf_counter_ns()
            outputs = self._run_model(preps)
            t1 = time.perf_counter_ns()
            for frame in frames:
                frame.timings.infer_ns = t1 - t0
                frame.timings.leave(t1)
            if not self._inferred.put(seq, [(frame, preps[i], (outputs[i], labels[i]))
                                            for i, frame in enumerate(frames)]):
                return

    def _infer_semantic(self) -> None:
        """Combined mode: the semantic model, on its own thread, in the same frame order."""
        while True:
            frame, _ = self._get(self._sem_in)
            if frame is END:
                break
            frame = cast(Frame, frame)
            if not self._put(self._sem_out, ((frame.stream, frame.index), self._labels(frame))):
                return

    def _postprocess(self) -> None:
        while True:
            batch, _ = self._inferred.get()
            if batch is END:
                break
            for item in batch:  # type: ignore[attr-defined]
                if not self._finish_frame(*item):
                    return
        self._put(self._drawn, END)

    def _finish_frame(self, frame: Frame, prepared: object, raw: object) -> bool:
        """Post-process, track and draw one frame; False when the run is halting."""
        lane = self._lanes[frame.stream]
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
                if joined is END:
                    return False
                key, labels = joined  # type: ignore[misc]
                if key != (frame.stream, frame.index):
                    raise RuntimeError(f"semantic result for (stream, frame) {key} joined to "
                                       f"{(frame.stream, frame.index)}")
                frame.timings.queue_wait_ns += wait
                t0 += wait  # waiting for the semantic thread is queue time, not post-processing
                result = replace(result, semantic=labels)
        if self._halt.is_set():  # between the stages of a frame too: a huge frame's masks and drawing take long
            return False
        tracker, annotator = lane.stream.tracker, lane.stream.annotator
        analytics = lane.stream.analytics  # rtseg.analytics.stage documents what is called when
        if tracker is not None:
            result = tracker.update(result, frame.image)
        result = replace(result, timestamp_s=frame.timestamp_s, timings=frame.timings)
        if analytics is not None:  # zone counts, crossings, dwell: they need the tracker's ids
            result = analytics.update(frame, result)
        if lane.stream.panoptic is not None:  # things over stuff, one segment per pixel: drawn and written
            result = lane.stream.panoptic(result)
        t1 = time.perf_counter_ns()
        frame.timings.postprocess_ns = t1 - t0
        annotated = None
        edits = analytics is not None and analytics.edits_image
        if edits:  # privacy blur, background: on the frame itself, drawn or not, so no output shows the original
            frame.image = analytics.before_draw(frame.image, result)
        if lane.draw or (analytics is not None and lane.needs_image):
            if annotator is not None:
                # HUD FPS of this stream over its last 30 frames: frames reach this stage in bursts (a batch
                # at a time), a per-frame rate lies
                lane.recent.append(t1)
                if len(lane.recent) > 1:
                    lane.fps_ema = (len(lane.recent) - 1) * 1e9 / max(lane.recent[-1] - lane.recent[0], 1)
            if annotator is None or (analytics is not None and not analytics.draws_instances):
                annotated = frame.image  # blur-only / background: no masks, boxes, labels or HUD
            else:
                # the device path blends masks into the letterboxed upload: not the edited frame
                on_device = None if edits else overlay_on_device(prepared, result, annotator)
                if on_device is not None:
                    annotated = annotator.draw(on_device, result, fps=lane.fps_ema, inplace=True, masks=False)
                else:
                    annotated = annotator.draw(frame.image, result, fps=lane.fps_ema, inplace=True)
            if analytics is not None:
                annotated = analytics.after_draw(annotated, result)
        if edits or annotated is not None:
            frame.timings.overlay_ns = time.perf_counter_ns() - t1
        frame.timings.leave(time.perf_counter_ns())
        return self._put(self._drawn, (frame, annotated, result))

    def run(self) -> RunSummary:
        """Process every source to its end or ``max_frames``, or until a stop request or an error; close
        every sink and source. The same as a loop over the pipeline with nothing in its body.

        Raises:
            RtsegError: from a stage (an unreadable source, a sink that cannot write, ...), after the sinks
                are closed.
            RuntimeError: the pipeline has already run.
        """
        for _ in self:
            pass
        return self.summary

    def __iter__(self) -> Iterator[tuple[Frame, FrameResult]]:
        """Run the pipeline and yield each ``(frame, result)`` once it reached every sink of its stream, in
        frame order, on the calling thread.

        Decoding, inference and post-processing go on in their threads meanwhile, so a slow loop body holds
        them back as a slow sink would: a file waits, a live source drops its oldest frames. Leaving the loop
        (``break``, an exception, closing the generator) stops the run: the threads wind down and every source
        and sink is closed. :attr:`summary` is complete once the loop is over (``interrupted`` when it was left
        before the sources ended). ``frame.image`` is the decoded frame, drawn on in place when the stream has
        an annotator and an image sink. Until the loop is over, PyTorch keeps one intra-op thread unless a
        model computes with it on the CPU (a measured gain for the stages; it applies to the loop body too).
        A pipeline runs once.

        Example:
            >>> pipeline = Pipeline(source, model, max_frames=3)  # source: e.g. open_source("clip.mp4")
            >>> for frame, result in pipeline:
            ...     print(frame.index, frame.image.shape, len(result), "instance(s)")
            0 (64, 64, 3) 1 instance(s)
            1 (64, 64, 3) 1 instance(s)
            2 (64, 64, 3) 1 instance(s)
            >>> pipeline.summary.frames, pipeline.summary.interrupted
            (3, False)

        Raises:
            RtsegError: from a stage (an unreadable source, a sink that cannot write, ...), after the sinks
                are closed.
            RuntimeError: the pipeline has already run.
        """
        if self._started:
            raise RuntimeError("this Pipeline has already run: build a new one for another run")
        self._started = True
        samples: dict[str, list[float]] = {name: Reservoir() for name in (*STAGES, "semantic", "serve", "queue_wait",
                                                                            "latency")}
        # PyTorch's intra-op threads, where a stage computes with it; a run on ONNX Runtime (NumPy outputs)
        # never imported PyTorch, and does not now
        torch = sys.modules.get("torch")
        torch_threads = torch.get_num_threads() if torch is not None else 0
        if self._torch_threads and torch is not None:
            torch.set_num_threads(self._torch_threads)
        self._t_start = time.perf_counter_ns()
        cpu0, main0 = time.process_time_ns(), time.thread_time_ns()
        loop_ns = 0  # CPU time of the caller's loop body on this thread: not the sinks'
        left = False  # the caller left the loop before the end
        threads = [StageThread(f"decode{i}", lambda i=i: self._decode(i), self, "decode")
                   for i in range(len(self._lanes))]
        threads += [StageThread(f"infer{i}", self._infer, self, "infer") for i in range(self.workers)]
        threads.append(StageThread("post", self._postprocess, self))
        if self._overlap:
            threads.append(StageThread("semantic", self._infer_semantic, self))
        for lane in self._lanes:
            if lane.stream.analytics is not None:
                lane.stream.analytics.hold_until_written()
        # What is alive now (PyTorch, the models: some 200k objects) lives all run long: out of the collector's
        # sight, a full collection takes microseconds instead of 0.2 s, a pause that drops live frames
        froze = gc.get_freeze_count() == 0
        if froze:
            gc.freeze()
        try:
            self._warm_up()
        except Exception as exc:  # noqa: BLE001 - the first real frame meets it again, and fails the run properly
            LOGGER.debug("warm-up failed: %s", exc)
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
                if item is END:
                    break
                frame, annotated, result = item
                lane = self._lanes[frame.stream]
                t0 = time.perf_counter_ns()
                frame.timings.arrive(t0)
                serve_ns = 0
                for sink in lane.sinks:
                    if getattr(sink, "stage", None) == "serve":  # the browser view: a stage of its own
                        s0 = time.perf_counter_ns()
                        sink.write(frame, annotated, result)
                        serve_ns += time.perf_counter_ns() - s0
                    else:
                        sink.write(frame, annotated, result)
                t1 = time.perf_counter_ns()
                frame.timings.encode_ns, frame.timings.serve_ns = t1 - t0 - serve_ns, serve_ns
                frame.timings.done_ns = t1
                if lane.stream.analytics is not None:  # its report counts the frames the outputs hold
                    lane.stream.analytics.written(frame.index)
                self.summary.frames += 1
                lane.summary.frames += 1
                lane.summary.elapsed_s = (t1 - self._t_start) / 1e9
                self.summary.frame_out(lane.summary.elapsed_s)
                for name, ms in frame.timings.as_ms().items():
                    samples[name].add(ms)
                if self.on_frame is not None:
                    self.on_frame(frame, result)
                c0 = time.thread_time_ns()
                try:
                    yield frame, result
                except BaseException:  # GeneratorExit: the caller left the loop
                    left = True
                    raise
                finally:
                    loop_ns += time.thread_time_ns() - c0
        except StopRequested:
            self.summary.user_quit = True
        finally:
            self.summary.interrupted = left or self.stop.is_set() or self.summary.user_quit
            close_errors = self._wind_down(threads, samples, cpu0, main0 + loop_ns)
            if torch is not None:
                torch.set_num_threads(torch_threads)
            if froze:
                gc.unfreeze()  # a process that goes on after the run collects as before
            if left:  # nobody is left to raise to: the caller's loop is over
                for exc in [e for e in self._errors if not isinstance(e, StopRequested)] + close_errors:
                    LOGGER.error("while stopping the pipeline: %s", exc, exc_info=exc)
        errors = [e for e in self._errors if not isinstance(e, StopRequested)] + close_errors
        if errors:
            raise errors[0]

    def _wind_down(self, threads: list[StageThread], samples: dict[str, list[float]], cpu0: int,
                   main0: int) -> list[Exception]:
        """Stop and join every thread, complete :attr:`summary`, close every source and sink; the errors
        raised by closing."""
        self._halt.set()
        for lane in self._lanes:
            lane.interrupt()  # end a reconnect back-off now
        # Every stage checks the halt between frames, so threads end within one frame's work. A thread still
        # inside one native call after the grace (a stalled stream's read, one huge frame's inference) cannot
        # be interrupted: it is left to end on its own (a daemon; it stops at its next check) rather than
        # holding the stop; sources are told to close under a read that is still blocked (VideoSource does).
        deadline = time.monotonic() + WIND_DOWN_S
        for t in threads:
            t.join(timeout=max(0.0, deadline - time.monotonic()))
        left = [t.name for t in threads if t.is_alive()]
        if left:
            LOGGER.info("stopped without waiting for %s, still inside a native call", ", ".join(left))
        self.summary.elapsed_s = (time.perf_counter_ns() - self._t_start) / 1e9
        self.summary.cpu_ms = cpu_ms_per_frame(threads, time.thread_time_ns() - main0,
                                               time.process_time_ns() - cpu0, self.summary.frames)
        self.summary.stages_ms = percentiles(samples)
        for lane in self._lanes:  # a live source's outages (rtseg.sources.video.VideoSource)
            lane.summary.reconnects = int(getattr(lane.source, "reconnects", 0) or 0)
            lane.summary.gave_up = bool(getattr(lane.source, "gave_up", False))
        self.summary.streams = [lane.summary for lane in self._lanes]
        self.summary.dropped = sum(lane.summary.dropped for lane in self._lanes)
        self.summary.skipped = sum(lane.summary.skipped for lane in self._lanes)
        close_errors = []
        for closable in [lane.source for lane in self._lanes] + [s for lane in self._lanes for s in lane.sinks]:
            try:
                closable.close()
            except Exception as exc:  # noqa: BLE001 - close every source and sink, report the first failure
                close_errors.append(exc)
        return close_errors
