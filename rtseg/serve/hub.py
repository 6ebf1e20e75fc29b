"""The latest frame of each source, shared by every viewer of the browser view (``--serve``).

The pipeline's thread publishes (:meth:`Channel.publish`); the web server's event loop reads. Publishing is
O(1) whatever the number of viewers: it keeps references to the annotated frame and its result, replacing
the previous ones, and wakes the coroutines waiting for a new frame. Nothing is encoded on the pipeline's
thread: a viewer that wants a frame asks for its JPEG (:meth:`Channel.jpeg`), which is encoded on a small
thread pool once per frame and height and shared by every viewer that asks for the same; with no viewer
nothing is encoded at all. A slow viewer only ever gets the newest frame when it is ready for one, so it
never slows the pipeline and never sees a backlog.

The JSON Lines records of ``/events`` are computed the same way: only for the frames an events subscriber
takes, once per frame, off the pipeline's thread. Each subscriber has a bounded queue; one that falls
behind loses its oldest records (counted), never the pipeline's time.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import threading
import time
from collections import Counter, OrderedDict, deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray

from rtseg.types import Frame, FrameResult, StageTimings

LOGGER = logging.getLogger(__name__)
JPEG_QUALITY = 80
FPS_WINDOW_S = 2.0  # the measured FPS is the publishing rate over this last stretch
EMA_ALPHA = 0.1  # latency and stage times: exponential moving average, about the last 10 frames
EVENT_QUEUE = 16  # records an /events subscriber may fall behind before it loses the oldest
RECORD_CACHE = 64  # JSON records kept for subscribers at different points of the stream


class Signal:
    """Wakes the coroutines waiting on it (on any event loop) when any thread calls :meth:`notify`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiters: list[asyncio.Future] = []

    def notify(self) -> None:
        """Wake every waiter; one hand-over per event loop, whatever the number of waiters."""
        with self._lock:
            waiters, self._waiters = self._waiters, []
        by_loop: dict[asyncio.AbstractEventLoop, list[asyncio.Future]] = {}
        for fut in waiters:
            by_loop.setdefault(fut.get_loop(), []).append(fut)
        for loop, futures in by_loop.items():
            with contextlib.suppress(RuntimeError):  # that loop has closed: nobody waits there any more
                loop.call_soon_threadsafe(_wake, futures)

    async def wait(self, ready: Callable[[], bool], timeout: float) -> bool:
        """Wait until ``ready()`` holds (checked after each notification) or ``timeout`` seconds pass.

        Returns:
            ``ready()`` at the end.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            fut = loop.create_future()
            with self._lock:  # registered before the check: a notification in between is not lost
                self._waiters.append(fut)
            try:
                if ready():
                    return True
                left = deadline - loop.time()
                if left <= 0:
                    return False
                await asyncio.wait((fut,), timeout=left)
            finally:
                with self._lock, contextlib.suppress(ValueError):
                    self._waiters.remove(fut)


def _wake(futures: list[asyncio.Future]) -> None:
    for fut in futures:
        if not fut.done():
            fut.set_result(None)


@dataclass(frozen=True, eq=False)
class Published:
    """One frame as the view got it.

    Attributes:
        seq: 1, 2, ... in the order the channel got its frames.
        index: the frame's index in its source.
        image: (H, W, 3) uint8 BGR annotated frame (a reference: never modified, never copied).
        result: the frame's detections.
        capture_ns: ``perf_counter_ns()`` when the frame was decoded.
        published_ns: ``perf_counter_ns()`` when the pipeline handed it to the view.
    """

    seq: int
    index: int
    image: NDArray[np.uint8]
    result: FrameResult
    capture_ns: int
    published_ns: int


class Channel:
    """One source of the view: its latest frame, that frame's JPEGs, and the source's statistics.

    Args:
        tag: the source's name in URLs and on the page.
        live: frames arrive in real time (a camera, a stream): index gaps count as dropped frames.
        source: the source object, read for ``reconnects`` only.
        names, semantic_names: class names of the instance and semantic models.
        pool: where JPEGs are encoded (a function: the pool is made when first needed).
        on_publish: called on the pipeline's thread with each frame (the hub's ``/events`` queues).
    """

    def __init__(self, tag: str, *, live: bool = False, source: Any = None, names: tuple[str, ...] = (),
                 semantic_names: tuple[str, ...] = (), pool: Callable[[], ThreadPoolExecutor],
                 on_publish: Callable[[Channel, Published], None] | None = None) -> None:
        self.tag, self.live, self.source = tag, live, source
        self.names, self.semantic_names = tuple(names), tuple(semantic_names)
        self.signal = Signal()  # a new frame, or the end
        self.ended = False
        self.frames = self.dropped = self.encodes = 0
        self.viewers = 0  # MJPEG clients connected (changed on the event loop only)
        self._pool = pool
        self._on_publish = on_publish
        self._lock = threading.Lock()
        self._latest: Published | None = None
        self._last_index: int | None = None
        self._times: deque[int] = deque(maxlen=256)
        self._latency_ms: float | None = None
        self._stages_ms: dict[str, float] = {}
        self._pending: StageTimings | None = None  # the previous frame's timings, complete once it left the sinks
        self._classes_now: dict[str, int] = {}
        self._seen: Counter[str] = Counter()
        self._semantic: tuple[int, dict[str, float]] = (0, {})  # (seq, class -> area fraction), made on demand
        self._jpegs: dict[int, tuple[int, bytes]] = {}  # height (0: full size) -> (seq, JPEG) of the latest
        self._encoding: dict[tuple[int, int], asyncio.Future] = {}  # (seq, height) -> encode in progress

    # --- the pipeline's side -----------------------------------------------------------------------------

    def publish(self, frame: Frame, image: NDArray[np.uint8], result: FrameResult) -> None:
        """Make ``image`` (the annotated frame) the latest: O(1), no copy, no encoding."""
        now = time.perf_counter_ns()
        capture_ns = frame.timings.capture_ns or now
        ids = result.class_ids
        if len(ids):
            found, counts = np.unique(ids, return_counts=True)
            now_classes = {self._name(int(k)): int(n) for k, n in zip(found, counts)}
        else:
            now_classes = {}
        with self._lock:
            if self.live and self._last_index is not None and frame.index > self._last_index + 1:
                self.dropped += frame.index - self._last_index - 1
            self._last_index = frame.index
            self.frames += 1
            published = Published(self.frames, frame.index, image, result, capture_ns, now)
            self._latest = published
            self._times.append(now)
            latency_ms = (now - capture_ns) / 1e6
            self._latency_ms = latency_ms if self._latency_ms is None else _ema(self._latency_ms, latency_ms)
            if self._pending is not None:
                for stage, ms in self._pending.as_ms().items():
                    old = self._stages_ms.get(stage)
                    self._stages_ms[stage] = ms if old is None else _ema(old, ms)
            self._pending = frame.timings
            self._classes_now = now_classes
            self._seen.update(now_classes.keys())
        self.signal.notify()
        if self._on_publish is not None:
            self._on_publish(self, published)

    def end(self) -> None:
        """No more frames: streams of this source end (the last frame stays for snapshots)."""
        self.ended = True
        self.signal.notify()

    def _name(self, cls: int) -> str:
        return self.names[cls] if 0 <= cls < len(self.names) else str(cls)

    # --- the event loop's side ---------------------------------------------------------------------------

    def latest(self) -> Published | None:
        return self._latest

    async def next_after(self, seq: int, timeout: float = 3600.0) -> Published | None:
        """The latest frame once it is newer than ``seq``; None when the source ended first (or at timeout)."""
        def ready() -> bool:
            latest = self._latest
            return self.ended or (latest is not None and latest.seq > seq)

        await self.signal.wait(ready, timeout)
        latest = self._latest
        return latest if latest is not None and latest.seq > seq and not self.ended else None

    async def jpeg(self, frame: Published, height: int = 0) -> bytes:
        """``frame`` as a JPEG, scaled down to ``height`` pixels (0, or at least the frame's height: full size).

        Encoded on the pool once per frame and height, whatever the number of viewers asking; the latest one
        per height is kept.
        """
        height = 0 if height >= frame.image.shape[0] else max(int(height), 0)
        cached = self._jpegs.get(height)
        if cached is not None and cached[0] == frame.seq:
            return cached[1]
        key = (frame.seq, height)
        fut = self._encoding.get(key)
        if fut is None:
            fut = asyncio.get_running_loop().run_in_executor(self._pool(), self._encode, frame.image, height)
            self._encoding[key] = fut
            fut.add_done_callback(lambda done: self._encoded(key, done))
        return await asyncio.shield(fut)  # a viewer leaving does not cancel what others wait for

    def _encode(self, image: NDArray[np.uint8], height: int) -> bytes:
        if height:
            image = shrink(image, height)
        ok, buffer = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
        if not ok:
            raise RuntimeError(f"source {self.tag}: JPEG encoding failed")
        with self._lock:
            self.encodes += 1
        return buffer.tobytes()

    def _encoded(self, key: tuple[int, int], fut: asyncio.Future) -> None:
        self._encoding.pop(key, None)
        if fut.cancelled() or fut.exception() is not None:
            return
        seq, height = key
        cached = self._jpegs.get(height)
        if cached is None or cached[0] < seq:
            self._jpegs[height] = (seq, fut.result())

    def stats(self) -> dict:
        """What ``/stats.json`` says about this source (see :meth:`Hub.stats`)."""
        now = time.perf_counter_ns()
        with self._lock:
            latest, times = self._latest, list(self._times)
            out = {"tag": self.tag, "live": self.live, "frames": self.frames,
                   "frame": None if latest is None else latest.index,
                   "image_hw": None if latest is None else list(latest.image.shape[:2]),
                   "fps": round(_rate(times, now), 2),
                   "latency_ms": None if self._latency_ms is None else round(self._latency_ms, 1),
                   "age_ms": None if latest is None else round((now - latest.published_ns) / 1e6, 1),
                   "stages_ms": {k: round(v, 2) for k, v in self._stages_ms.items()},
                   "dropped": self.dropped, "encodes": self.encodes, "classes_now": dict(self._classes_now),
                   "classes_seen": dict(self._seen.most_common())}
        out["semantic_now"] = self._semantic_now(latest)
        for name in out["semantic_now"]:
            out["classes_seen"].setdefault(name, 0)  # sampled when asked, not counted per frame
        out.update(reconnects=int(getattr(self.source, "reconnects", 0) or 0), viewers=self.viewers,
                   ended=self.ended)
        return out

    def _semantic_now(self, latest: Published | None) -> dict[str, float]:
        """Area fraction of each class in the latest label map (computed here, once per frame: a bincount of
        a whole frame is not for the pipeline's thread)."""
        if latest is None or latest.result.semantic is None:
            return {}
        seq, classes = self._semantic
        if seq != latest.seq:
            labels = latest.result.semantic
            counts = np.bincount(labels.ravel(), minlength=1)
            names = self.semantic_names
            classes = {(names[k] if k < len(names) else str(int(k))): round(float(counts[k]) / labels.size, 4)
                       for k in np.flatnonzero(counts)}
            self._semantic = (latest.seq, classes)
        return classes


class Subscriber:
    """One ``/events`` client: a bounded queue of the frames it has yet to receive.

    Attributes:
        tag: the source it follows (None: all).
        lost: records dropped because it fell more than ``maxlen`` behind.
    """

    def __init__(self, tag: str | None = None, maxlen: int = EVENT_QUEUE) -> None:
        self.tag, self.maxlen, self.lost = tag, maxlen, 0
        self.signal = Signal()
        self._lock = threading.Lock()
        self._queue: deque[tuple[Channel, Published]] = deque()
        self._unreported = 0

    def put(self, channel: Channel, frame: Published) -> None:
        """Queue a frame (the pipeline's thread): the oldest goes when the queue is full."""
        with self._lock:
            if len(self._queue) >= self.maxlen:
                self._queue.popleft()
                self.lost += 1
                self._unreported += 1
            self._queue.append((channel, frame))
        self.signal.notify()

    def pending(self) -> bool:
        return bool(self._queue) or self._unreported > 0

    def take(self) -> tuple[list[tuple[Channel, Published]], int]:
        """Everything queued, and how many records were lost since the last call."""
        with self._lock:
            items, self._queue = list(self._queue), deque()
            lost, self._unreported = self._unreported, 0
        return items, lost


class Hub:
    """Every source of a view, its ``/events`` subscribers and the JPEG pool.

    Args:
        workers: threads encoding JPEGs and records (default: up to 4, at most the cores).
    """

    def __init__(self, *, workers: int | None = None) -> None:
        self.started_ns = time.perf_counter_ns()
        self.closed = False
        self.records = 0  # JSON records computed, for tests and stats
        self.outputs: list = []  # the run's event outputs (webhook, MQTT): anything with .name and .stats()
        self._workers = workers or max(1, min(4, os.cpu_count() or 1))
        self._lock = threading.Lock()
        self._channels: dict[str, Channel] = {}
        self._subscribers: tuple[Subscriber, ...] = ()  # replaced, never mutated: the pipeline iterates it
        self._events_lost = 0
        self._pool_: ThreadPoolExecutor | None = None
        self._records: OrderedDict[tuple[str, int], asyncio.Future] = OrderedDict()

    def _pool(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._pool_ is None:
                self._pool_ = ThreadPoolExecutor(self._workers, thread_name_prefix="serve-encode")
            return self._pool_

    def add(self, tag: str, *, live: bool = False, source: Any = None, names: tuple[str, ...] = (),
            semantic_names: tuple[str, ...] = ()) -> Channel:
        """A new channel; its tag is made unique (``clip``, ``clip-2``) and URL-safe."""
        base = safe_tag(tag)
        with self._lock:
            unique, n = base, 1
            while unique in self._channels:
                n += 1
                unique = f"{base}-{n}"
            channel = Channel(unique, live=live, source=source, names=names, semantic_names=semantic_names,
                              pool=self._pool, on_publish=self._offer)
            self._channels[unique] = channel
        return channel

    def channel(self, tag: str) -> Channel | None:
        return self._channels.get(tag)

    def channels(self) -> list[Channel]:
        with self._lock:
            return list(self._channels.values())

    # --- /events ----------------------------------------------------------------------------------------

    def subscribe(self, tag: str | None = None, maxlen: int = EVENT_QUEUE) -> Subscriber:
        sub = Subscriber(tag, maxlen)
        with self._lock:
            self._subscribers = (*self._subscribers, sub)
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        with self._lock:
            self._subscribers = tuple(s for s in self._subscribers if s is not sub)
            self._events_lost += sub.lost

    def _offer(self, channel: Channel, frame: Published) -> None:
        for sub in self._subscribers:  # nothing at all to do without subscribers
            if sub.tag is None or sub.tag == channel.tag:
                sub.put(channel, frame)

    async def record(self, channel: Channel, frame: Published) -> str:
        """The frame's JSON Lines record as one line of JSON, computed once on the pool (masks as RLE are
        costly), whatever the number of subscribers. Its ``source`` is the tag: no path or URL leaks."""
        key = (channel.tag, frame.seq)
        fut = self._records.get(key)
        if fut is None:
            fut = asyncio.get_running_loop().run_in_executor(self._pool(), self._record, channel, frame)
            self._records[key] = fut
            while len(self._records) > RECORD_CACHE:
                self._records.popitem(last=False)
        return await asyncio.shield(fut)

    def _record(self, channel: Channel, frame: Published) -> str:
        record = frame.result.to_dict(None, source=channel.tag, names=channel.names or None,
                                      semantic_names=channel.semantic_names or None)
        with self._lock:
            self.records += 1
        return json.dumps(record, separators=(",", ":"))

    # --- the whole view ---------------------------------------------------------------------------------

    def stats(self) -> dict:
        """Per source (by tag): ``fps`` (publishing rate over the last 2 s), ``latency_ms`` (capture to
        published, moving average), ``age_ms`` (since the latest frame), ``stages_ms`` (moving averages of the
        pipeline's per-stage times), ``dropped`` (index gaps of a live source), ``reconnects``, ``viewers``
        (MJPEG clients), ``frames``, ``frame`` (latest index), ``classes_now`` / ``classes_seen`` (instances
        per class in the latest frame / frames each class was seen in), ``semantic_now`` (area fractions),
        ``encodes`` (JPEGs made), ``ended``; plus ``uptime_s``, ``viewers``, ``events`` (the SSE subscribers) and
        ``outputs`` (each event output's ``sent``, ``dropped``, ``failed``... counts: :attr:`outputs`) overall."""
        sources = {ch.tag: ch.stats() for ch in self.channels()}
        subs = self._subscribers
        return {"uptime_s": round((time.perf_counter_ns() - self.started_ns) / 1e9, 1),
                "viewers": sum(s["viewers"] for s in sources.values()),
                "events": {"subscribers": len(subs), "lost": self._events_lost + sum(s.lost for s in subs),
                           "records": self.records},
                "outputs": {o.name: o.stats() for o in self.outputs},
                "sources": sources}

    def close(self) -> None:
        """The run is over: every stream and event stream ends."""
        self.closed = True
        for channel in self.channels():
            channel.end()
        for sub in self._subscribers:
            sub.signal.notify()

    def shutdown(self) -> None:
        """Stop the encoding threads (after :meth:`close`, once the server stopped)."""
        with self._lock:
            pool, self._pool_ = self._pool_, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)


def safe_tag(tag: str) -> str:
    """``tag`` reduced to letters, digits, ``.``, ``_`` and ``-`` (at most 40), for URLs and the page."""
    cleaned = "".join(c if c.isascii() and (c.isalnum() or c in "._-") else "_" for c in str(tag).strip())
    cleaned = cleaned.strip("._")[:40]
    return cleaned or "source"


def shrink(image: NDArray[np.uint8], height: int) -> NDArray[np.uint8]:
    """``image`` scaled down to ``height`` rows, its aspect kept: halved with a Gaussian (``pyrDown``) while at
    least twice too high, then linear. Measured on 720p: 0.9 ms to 480p against 5.4 ms with ``INTER_AREA``,
    which is fast only at whole factors."""
    h0, w0 = image.shape[:2]
    width = max(1, round(w0 * height / h0))
    while image.shape[0] >= 2 * height:
        image = cv2.pyrDown(image)
    if image.shape[:2] == (height, width):
        return image
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_LINEAR)


def _ema(old: float, new: float) -> float:
    return old + EMA_ALPHA * (new - old)


def _rate(times_ns: list[int], now_ns: int) -> float:
    """Events per second over the last :data:`FPS_WINDOW_S` (0 when the last is older)."""
    start = now_ns - int(FPS_WINDOW_S * 1e9)
    recent = [t for t in times_ns if t >= start]
    if len(recent) < 2:
        return 0.0
    return (len(recent) - 1) * 1e9 / max(recent[-1] - recent[0], 1)
