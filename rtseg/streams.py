"""The sources of a pipeline: what each stream brings, its run-time state, and what a run reports."""

from __future__ import annotations

import collections
import queue
from collections.abc import Sequence
from dataclasses import dataclass, field

from rtseg.overlay.annotator import Annotator
from rtseg.sinks.base import Sink
from rtseg.sources.base import Source
from rtseg.tracking import Tracker


@dataclass
class Stream:
    """One source of a pipeline and what belongs to it alone.

    Attributes:
        source: where its frames come from.
        sinks: where its results go.
        annotator: draws its results (its own HUD FPS and trails); None writes raw frames to image sinks.
        tracker: gives its instances persistent ids; one per stream, as tracks never cross videos.
    """

    source: Source
    sinks: Sequence[Sink] = ()
    annotator: Annotator | None = None
    tracker: Tracker | None = None


@dataclass
class StreamSummary:
    """Frames one stream delivered; ``elapsed_s`` runs from the start of the run to its last frame."""

    source: str
    frames: int = 0
    dropped: int = 0
    elapsed_s: float = 0.0

    @property
    def fps(self) -> float:
        return self.frames / self.elapsed_s if self.elapsed_s > 0 else 0.0


@dataclass
class RunSummary(StreamSummary):
    """What a run did: frames, throughput and per-stage latency percentiles (milliseconds).

    ``frames``, ``dropped`` and ``fps`` add up every stream; ``streams`` has one entry per source.
    """

    interrupted: bool = False  # ended early: a stop request or the window was closed
    user_quit: bool = False  # the window was closed (q, Esc)
    stages_ms: dict[str, dict[str, float]] = field(default_factory=dict)
    streams: list[StreamSummary] = field(default_factory=list)
    first_out_s: float = 0.0  # from the start of the run to the first frame through the sinks
    last_out_s: float = 0.0  # ... and to the last one

    @property
    def steady_fps(self) -> float:
        """Frames per second from the first frame out to the last: the rate a long run settles at, without
        the time the pipeline takes to fill (that shows as latency)."""
        span = self.last_out_s - self.first_out_s
        return (self.frames - 1) / span if self.frames > 1 and span > 0 else self.fps


class Lane:
    """A stream's run-time state: its decoded-frame queue, drawing flag, HUD FPS and counts."""

    def __init__(self, stream: Stream, queue_size: int) -> None:
        self.stream, self.source, self.sinks = stream, stream.source, list(stream.sinks)
        self.live = bool(stream.source.live)
        # a live source keeps at most 2 frames queued: older ones are dropped, latency stays bounded
        self.decoded: queue.Queue = queue.Queue(maxsize=2 if self.live else queue_size)
        self.draw = stream.annotator is not None and any(s.needs_image for s in self.sinks)
        self.recent: collections.deque[int] = collections.deque(maxlen=30)
        self.fps_ema = 0.0
        self.summary = StreamSummary(source=stream.source.name)
