"""The media side of ``rtseg serve --webrtc`` (:mod:`rtseg.serve.webrtc`): the one-frame mailboxes between
aiortc's event loop and the pipeline's threads, the camera track as a live :class:`~rtseg.sources.base.Source`,
and the annotated track handed back to aiortc's encoder."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import fractions
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Generic, Protocol, TypeVar

import numpy as np
from aiortc import MediaStreamTrack
from aiortc.mediastreams import MediaStreamError
from av import VideoFrame
from numpy.typing import NDArray

from rtseg.overlay.annotator import Annotator
from rtseg.sources.base import Source
from rtseg.types import Frame, FrameResult

__all__ = ["AnnotatedTrack", "Latest", "Overlay", "StreamingModel", "TrackSource"]

T = TypeVar("T")
CLOCK = fractions.Fraction(1, 90_000)  # RTP video clock


class StreamingModel(Protocol):
    """What the service needs of a model: :class:`rtseg.Segmenter` is one (names, palettes, ``stream``)."""

    names: Sequence[str]

    def stream(self, source: Source, *, stop: threading.Event | None = None
               ) -> Iterator[tuple[Frame, FrameResult]]: ...


class Latest(Generic[T]):
    """A one-item mailbox between threads and an event loop: :meth:`put` replaces an item not taken yet
    (counted in :attr:`replaced`), so a taker always gets the newest and nothing piles up behind a slow one.

    Example:
        >>> box = Latest()
        >>> box.put("old"), box.put("new")
        (True, True)
        >>> box.get(), box.replaced
        ('new', 1)
        >>> box.close()
        >>> box.get() is None, box.put("late")
        (True, False)
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._item: T | None = None
        self._full = self._closed = False
        self._wakeup: tuple[asyncio.AbstractEventLoop, asyncio.Event] | None = None
        self.puts = self.replaced = 0

    def put(self, item: T) -> bool:
        """Offer ``item`` (any thread, never blocks); False once closed."""
        with self._cond:
            if self._closed:
                return False
            self.replaced += self._full
            self._item, self._full = item, True
            self.puts += 1
            self._cond.notify_all()
            wakeup, self._wakeup = self._wakeup, None
        _wake(wakeup)
        return True

    def close(self) -> None:
        """Wake every taker; from now on they get None."""
        with self._cond:
            self._closed, self._item, self._full = True, None, False
            self._cond.notify_all()
            wakeup, self._wakeup = self._wakeup, None
        _wake(wakeup)

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until there is an item, without taking it: False once closed (or after ``timeout`` seconds)."""
        with self._cond:
            self._cond.wait_for(lambda: self._full or self._closed, timeout)
            return self._full and not self._closed

    def get(self, timeout: float | None = None) -> T | None:
        """The newest item, waiting for one; None once closed (or after ``timeout`` seconds)."""
        with self._cond:
            self._cond.wait_for(lambda: self._full or self._closed, timeout)
            return self._take()

    async def next(self) -> T | None:
        """:meth:`get` for a task on an event loop (one task at a time)."""
        loop = asyncio.get_running_loop()
        while True:
            with self._cond:
                if self._full or self._closed:
                    return self._take()
                event = asyncio.Event()
                self._wakeup = (loop, event)
            await event.wait()

    @property
    def closed(self) -> bool:
        return self._closed

    def _take(self) -> T | None:
        item, self._item, self._full = self._item, None, False
        return item


def _wake(wakeup: tuple[asyncio.AbstractEventLoop, asyncio.Event] | None) -> None:
    if wakeup is not None:
        with contextlib.suppress(RuntimeError):  # the loop has closed: nobody waits any more
            wakeup[0].call_soon_threadsafe(wakeup[1].set)


class TrackSource:
    """A browser's camera as a live :class:`~rtseg.sources.base.Source` that the model pulls from.

    :meth:`read` waits for a decoded frame and for a free slot among the frames in flight (read, not yet sent
    back or replaced: :meth:`done`), then takes the newest frame; the ones not taken in time are dropped. So
    the model only starts frames it can finish and send, always the freshest, and no frame waits in a queue.
    None once the connection closes.

    Args:
        name: the source's name (``webrtc-<peer id>``).
        slots: the frames in flight, shared by every peer of a service (see the module docstring); default: 2
            of its own.

    Attributes:
        arrived_ns: when each frame read so far (by pipeline frame index) arrived, for its latency.
    """

    live = True
    frame_count: int | None = None

    def __init__(self, name: str, *, slots: threading.Semaphore | None = None, fps: float = 30.0) -> None:
        self.name, self.fps = name, float(fps)
        self.inbox: Latest[tuple[Any, int]] = Latest()
        self.arrived_ns: dict[int, int] = {}
        self._credits = slots if slots is not None else threading.Semaphore(2)
        self._lock = threading.Lock()
        self._held = 0  # slots taken by frames read and not yet done
        self._reads = 0

    def push(self, frame: Any) -> None:
        """A decoded frame (an ``av.VideoFrame``, or a BGR array) from the event loop; never blocks."""
        self.inbox.put((frame, time.perf_counter_ns()))

    def done(self) -> None:
        """A frame read earlier has left (sent back, or replaced by a newer one before it was): its slot is free."""
        with self._lock:
            if not self._held:
                return
            self._held -= 1
        self._credits.release()

    def release(self) -> None:
        """The model run has ended: the slots of the frames it still held go back to the other peers."""
        with self._lock:
            held, self._held = self._held, 0
        for _ in range(held):
            self._credits.release()

    def read(self) -> NDArray[np.uint8] | None:
        while True:  # a frame first, then a slot: a peer whose camera is slow must not hold a slot others could use
            if not self.inbox.wait():
                return None  # closed
            if self._credits.acquire(timeout=0.05):
                break
        item = self.inbox.get(timeout=0)  # the newest by now; only this thread takes frames
        if item is None:  # closed meanwhile
            self._credits.release()
            return None
        with self._lock:
            self._held += 1
        frame, arrived = item
        self.arrived_ns[self._reads] = arrived
        self.arrived_ns.pop(self._reads - 256, None)  # bounded: a frame is drawn long before 256 more arrive
        self._reads += 1
        # YUV -> BGR here, on the pipeline's decode thread, not on the event loop that carries every peer's packets
        return frame if isinstance(frame, np.ndarray) else frame.to_ndarray(format="bgr24")

    def interrupt(self) -> None:
        self.inbox.close()

    def close(self) -> None:
        self.inbox.close()  # a read waiting for a slot sees it within 0.05 s


class AnnotatedTrack(MediaStreamTrack):
    """The video sent back: the newest annotated frame of ``outbox`` each time the encoder asks, stamped with
    the time it left; ends when ``outbox`` closes. ``on_sent(latency_ns)`` is called for each frame."""

    kind = "video"

    def __init__(self, outbox: Latest[tuple[VideoFrame, int]], on_sent: Callable[[int | None], None]) -> None:
        super().__init__()
        self.outbox, self.on_sent = outbox, on_sent
        self._t0: int | None = None
        self._pts = -1

    async def recv(self) -> VideoFrame:
        item = await self.outbox.next()
        if item is None:
            self.stop()
            raise MediaStreamError
        frame, arrived_ns = item
        now = time.perf_counter_ns()
        self._t0 = now if self._t0 is None else self._t0
        self._pts = max(self._pts + 1, (now - self._t0) * 90_000 // 1_000_000_000)
        frame.pts, frame.time_base = self._pts, CLOCK
        self.on_sent(now - arrived_ns if arrived_ns else None)
        return frame


class Overlay:
    """A peer's frame transform: the frame with its result drawn (masks, boxes, labels, semantic colours and,
    with ``hud``, frame index, the peer's FPS and object count top left), as the ``av.VideoFrame`` to encode.

    Example:
        >>> overlay = Overlay(("person",), hud=True)
        >>> frame = Frame(0, np.full((48, 64, 3), 200, np.uint8), 0.0)
        >>> out = overlay(frame, FrameResult.empty(0, (48, 64)))
        >>> out.width, out.height, int(out.to_ndarray(format="bgr24")[2, 2, 0]) < 200   # the HUD's dark box
        (64, 48, True)
    """

    def __init__(self, names: Sequence[str], *, hud: bool = True, alpha: float = 0.45,
                 semantic_names: Sequence[str] = (), semantic_palette: Sequence = (),
                 palette: Sequence | None = None) -> None:
        self.annotator = Annotator(tuple(names), hud=hud, alpha=alpha, semantic_names=tuple(semantic_names),
                                   semantic_palette=tuple(semantic_palette),
                                   palette=tuple(palette) if palette else None)
        self._recent: collections.deque[int] = collections.deque(maxlen=30)
        self.fps = 0.0

    @classmethod
    def of(cls, model: StreamingModel, *, hud: bool = True) -> Overlay:
        return cls(model.names, hud=hud, semantic_names=getattr(model, "semantic_names", ()),
                   semantic_palette=getattr(model, "semantic_palette", ()), palette=getattr(model, "palette", None))

    def rate(self) -> float:
        """Frames per second drawn lately (over the last 30); 0 when none came for 2 s (a stalled peer)."""
        recent = self._recent
        return self.fps if len(recent) > 1 and time.perf_counter_ns() - recent[-1] < 2e9 else 0.0

    def __call__(self, frame: Frame, result: FrameResult) -> VideoFrame:
        # the rate over the last 30 frames, as the pipeline's HUD: results come in bursts, one frame's rate lies
        self._recent.append(time.perf_counter_ns())
        if len(self._recent) > 1:
            self.fps = (len(self._recent) - 1) * 1e9 / max(self._recent[-1] - self._recent[0], 1)
        image = self.annotator.draw(frame.image, result, fps=self.fps or None, inplace=True)
        return VideoFrame.from_ndarray(image, format="bgr24")
