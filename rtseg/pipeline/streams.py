"""The sources of a pipeline: what each stream brings, its run-time state, and what a run reports."""

from __future__ import annotations

import collections
import queue
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from rtseg.overlay.annotator import Annotator
from rtseg.sinks.base import Sink
from rtseg.sources.base import Source
from rtseg.tracking import Tracker

OUT_KEPT = 64  # frames whose time out RunSummary.out_s keeps: the first 63 and the latest


@dataclass
class Stream:
    """One source of a pipeline and what belongs to it alone.

    Attributes:
        source: where its frames come from.
        sinks: where its results go.
        annotator: draws its results (its own HUD FPS and trails); None writes raw frames to image sinks.
        tracker: gives its instances persistent ids; one per stream, as tracks never cross videos.
        analytics: what the stream's results are used for (zones, lines, heatmaps, privacy blur; see
            :mod:`rtseg.analytics`): updated after the tracker, drawn with the annotator.
        panoptic: fuses each result's instances and semantic labels into its ``panoptic`` map
            (:class:`rtseg.postprocess.panoptic.PanopticFuser`), after the analytics, before drawing; or None.
    """

    source: Source
    sinks: Sequence[Sink] = ()
    annotator: Annotator | None = None
    tracker: Tracker | None = None
    analytics: Any = None
    panoptic: Callable[[Any], Any] | None = None


@dataclass
class StreamSummary:
    """Frames one stream delivered; ``elapsed_s`` runs from the start of the run to its last frame.
    ``reconnects``: times a live stream was reopened after it dropped or stalled; ``gave_up``: it stayed down
    for the number of attempts ``reconnect`` allows (the run ended for it early); ``skipped``: frames a live
    source had buffered before the run began (while the model loaded), dropped unnumbered to start at the
    live edge, while ``dropped`` frames left gaps in the frame indices."""

    source: str
    frames: int = 0
    dropped: int = 0
    skipped: int = 0
    elapsed_s: float = 0.0
    reconnects: int = 0
    gave_up: bool = False

    @property
    def fps(self) -> float:
        return self.frames / self.elapsed_s if self.elapsed_s > 0 else 0.0


@dataclass
class RunSummary(StreamSummary):
    """What a run did: frames, throughput and per-stage latency percentiles (milliseconds).

    ``frames``, ``dropped`` and ``fps`` add up every stream; ``streams`` has one entry per source.

    Example:
        >>> import rtseg
        >>> summary = rtseg.run(clip, jsonl=tmp / "s.jsonl", max_frames=3)   # clip: a video file's path
        >>> summary.frames, summary.interrupted, sorted(summary.stages_ms["infer"])
        (3, False, ['mean', 'p50', 'p95', 'p99'])
    """

    interrupted: bool = False  # ended early: a stop request or the window was closed
    user_quit: bool = False  # the window was closed (q, Esc)
    stages_ms: dict[str, dict[str, float]] = field(default_factory=dict)
    streams: list[StreamSummary] = field(default_factory=list)
    # when the first OUT_KEPT frames and the latest one left the sinks (s from the start), and how many did:
    # a run of days keeps no per-frame list
    out_s: list[float] = field(default_factory=list, repr=False)
    out_count: int = 0  # 0: len(out_s) (a summary built by hand)
    cpu_ms: dict[str, float] = field(default_factory=dict)  # CPU ms per frame by stage: flow.cpu_ms_per_frame
    outputs: list[str] = field(default_factory=list)  # files and folders written (rtseg.run fills it in)
    events: dict[str, dict[str, int]] = field(default_factory=dict)  # per event output: sent, dropped, failed

    def frame_out(self, at_s: float) -> None:
        """One more frame has left the sinks ``at_s`` seconds after the start."""
        if len(self.out_s) < OUT_KEPT:
            self.out_s.append(at_s)
        else:
            self.out_s[-1] = at_s
        self.out_count += 1

    @property
    def first_out_s(self) -> float:
        """From the start of the run to the first frame through the sinks: the time the pipeline takes to fill."""
        return self.out_s[0] if self.out_s else 0.0

    @property
    def steady_fps(self) -> float:
        """Frames per second once the pipeline has filled: over the frames after the first quarter (at most
        the first 32, more than its queues hold), so neither the fill time nor the frames already in flight
        when the first one leaves bias it. The whole run's rate when it is too short for that."""
        n = self.out_count or len(self.out_s)
        k = min(n // 4, 32)  # < OUT_KEPT - 1: out_s[k] is the k-th frame's
        span = self.out_s[-1] - self.out_s[k] if n - k >= 2 else 0.0
        return (n - 1 - k) / span if span > 0 else self.fps


class Lane:
    """A stream's run-time state: its decoded-frame queue, drawing flag, HUD FPS and counts."""

    def __init__(self, stream: Stream, queue_size: int) -> None:
        self.stream, self.source, self.sinks = stream, stream.source, list(stream.sinks)
        self.live = bool(stream.source.live)
        # a live source keeps at most 2 frames queued: older ones are dropped, latency stays bounded
        self.decoded: queue.Queue = queue.Queue(maxsize=2 if self.live else queue_size)
        self.needs_image = any(s.needs_image for s in self.sinks)
        self.draw = stream.annotator is not None and self.needs_image
        self.recent: collections.deque[int] = collections.deque(maxlen=30)
        self.fps_ema = 0.0
        self.summary = StreamSummary(source=stream.source.name)
        # Source.interrupt's no-op default reaches only the sources that subclass Source; the ones that
        # implement it structurally (ImageSource, ArraySource, bench's sources) get it here
        self.interrupt: Callable[[], None] = getattr(stream.source, "interrupt", _nothing)


def _nothing() -> None:
    return None
