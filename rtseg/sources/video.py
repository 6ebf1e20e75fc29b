"""Video files, cameras and network streams, read through OpenCV's FFmpeg / V4L2 back ends.

A live network stream is meant to run for days: when it drops (the server went away: a read fails) or stalls
(connected, but no frame for ``stall_timeout`` seconds) it is reopened, after a wait that starts at 0.1 s and
grows with the outage (a fifth of the time down so far, at most 3 s), forever unless ``max_reconnects``
attempts in a row fail. Each outage is logged twice: a warning when it begins and one when the stream is back,
with how long it was down (and a reminder after 1 min, 10 min, then every hour while it stays down).

A file that ends early (fewer frames than its header promised) is reported once, with the count, so a
truncated file is noticed.

Stopping: a read can block inside FFmpeg, and nothing can interrupt it from outside but FFmpeg's own timeout
(``CAP_PROP_READ_TIMEOUT_MSEC``, set to ``stall_timeout`` on every stream, so a blocked read always returns).
A capture is never released while another thread reads it: :meth:`VideoSource.close` from another thread
during a read leaves the release to the reading thread, once its read returns (releasing under FFmpeg's read
frees what it is using: a crash seconds later, when the read wakes up).
"""

from __future__ import annotations

import atexit
import logging
import math
import threading
import time
import weakref
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
from numpy.typing import NDArray

from rtseg.errors import SourceError

LOGGER = logging.getLogger(__name__)

CaptureFactory = Callable[[], "cv2.VideoCapture"]
FIRST_WAIT_S = 0.1  # a blip is over at once: retry quickly
WAIT_SHARE = 0.2  # then wait a fifth of the time down so far ...
MAX_WAIT_S = 3.0  # ... at most this: a server back after a long outage is seen within 3 s
REMIND_S = (60.0, 600.0, 3600.0)  # "still down" after these, then every hour
STALL_WINDOW_S = 2.0  # a read that ended at the stall timeout is followed by the decoder's last frames, then a failure
INFO_ATTEMPTS = 3  # attempts logged one by one (INFO), before the outage goes quiet


def open_capture(url: str, timeout_s: float | None = None) -> cv2.VideoCapture:
    """An FFmpeg capture whose open and each read give up after ``timeout_s`` (OpenCV's default: 30 s)."""
    if timeout_s is None:
        return cv2.VideoCapture(url, cv2.CAP_FFMPEG)
    ms = max(1, round(timeout_s * 1000))
    return cv2.VideoCapture(url, cv2.CAP_FFMPEG,
                            [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, ms, cv2.CAP_PROP_READ_TIMEOUT_MSEC, ms])


class VideoSource:
    """One OpenCV capture. Use the :meth:`file`, :meth:`camera` and :meth:`stream` constructors.

    Args:
        name: what the user passed.
        open_capture: opens (or reopens) the capture; injectable for tests.
        live: camera or live stream. ``None``: decided once open, from the capture: live unless it reports a
            length (an ``http(s)`` URL may be a file on a web server or a live stream, whatever its name).
        reconnect: reopen the capture when it drops or stalls (network streams).
        max_reconnects: give up after this many failed reopen attempts in a row; ``None``: never give up.
        stall_timeout_s: the capture's read timeout (``open_capture`` sets it); a read that ends after about
            this long without a frame is a stall, logged as such.
        backoff_s: first wait before reopening; then a fifth of the time down, up to ``max_backoff_s``.

    Attributes:
        reconnects: times the stream came back after an outage.
        gave_up: it stayed down for ``max_reconnects`` attempts; the source then ended.
        outage_s: seconds spent down, over every outage (the current one included).
    """

    def __init__(self, name: str, open_capture: CaptureFactory, *, live: bool | None, reconnect: bool = False,
                 max_reconnects: int | None = None, stall_timeout_s: float | None = None,
                 backoff_s: float = FIRST_WAIT_S, max_backoff_s: float = MAX_WAIT_S, what: str = "video") -> None:
        self.name = name
        self._open_capture = open_capture
        self._max_reconnects = max_reconnects
        self._stall_timeout_s = stall_timeout_s
        self._backoff_s, self._max_backoff_s = backoff_s, max_backoff_s
        self._closed = threading.Event()
        self._reading = threading.Lock()  # held while FFmpeg uses the capture: close() never releases under it
        self.reconnects = 0
        self.gave_up = False
        self._outage_total_s = 0.0
        self._down_since: float | None = None
        self._stall_read: tuple[float, float] | None = None  # (start, end) of the last read that hit the timeout
        self._what = what
        self._read_since: float | None = None  # when the read in progress began (None: none)
        _SOURCES.add(self)
        self._cap = open_capture()
        if self._cap is None or not self._cap.isOpened():
            raise SourceError(self._open_error(what))
        ok, first = self._cap.read()
        if not ok or first is None:
            self._cap.release()
            raise SourceError(self._open_error(what, opened=True))
        self._pending: NDArray[np.uint8] | None = first
        self._next: NDArray[np.uint8] | None = None  # a second frame read ahead (skip_backlog)
        self._opened_s = time.monotonic()
        self.frame_hw: tuple[int, int] = (int(first.shape[0]), int(first.shape[1]))
        fps = float(self._cap.get(cv2.CAP_PROP_FPS) or 0.0)
        self.fps = fps if 0.5 < fps < 1000 else 30.0
        count = self._cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0.0
        count = int(count) if math.isfinite(count) else 0
        self.live = count <= 0 if live is None else live
        self._reconnect = reconnect and self.live
        self.frame_count: int | None = count if count > 0 and not self.live else None
        self.frames_read = 0

    def _open_error(self, what: str, opened: bool = False) -> str:
        if what == "camera":
            return f"cannot open camera {self.name}: no camera at that index, or it is in use"
        if what == "stream":
            return f"cannot open stream {self.name}: check the URL and that the server is up"
        if opened:
            return f"cannot decode {self.name}: no frame could be read (unreadable or truncated video)"
        return f"cannot decode {self.name}: not a video FFmpeg can read, or the file is truncated"

    @classmethod
    def file(cls, path: Path) -> VideoSource:
        return cls(str(path), lambda: cv2.VideoCapture(str(path), cv2.CAP_FFMPEG), live=False, what="video")

    @classmethod
    def camera(cls, index: int) -> VideoSource:
        return cls(str(index), lambda: cv2.VideoCapture(index), live=True, what="camera")

    @classmethod
    def stream(cls, url: str, *, live: bool | None = True, max_reconnects: int | None = None,
               stall_timeout_s: float = 10.0) -> VideoSource:
        """A network stream, reopened when it drops or stalls while live (``live=None``: see the class)."""
        return cls(url, lambda: open_capture(url, stall_timeout_s), live=live, reconnect=True,
                   max_reconnects=max_reconnects, stall_timeout_s=stall_timeout_s, what="stream")

    @property
    def outage_s(self) -> float:
        down = self._down_since
        return self._outage_total_s + (time.monotonic() - down if down is not None else 0.0)

    def read(self) -> NDArray[np.uint8] | None:
        if self._pending is not None:
            frame, self._pending, self._next = self._pending, self._next, None
            self.frames_read += 1
            return frame
        with self._reading:
            self._read_since = time.monotonic()
            try:
                frame = self._read_locked()
            finally:
                self._read_since = None
            if self._closed.is_set():  # closed while FFmpeg was reading: the release was left to this thread
                self._cap.release()
                return None
        if frame is not None:
            self.frames_read += 1
            return frame
        if self.frame_count and self.frames_read < 0.9 * self.frame_count and not self._closed.is_set():
            LOGGER.warning("%s ended after %d of the %d frames its header announces; the file may be truncated",
                           self.name, self.frames_read, self.frame_count)
        return None

    def skip_backlog(self) -> int:
        """Drop the frames a live source buffered since it was opened (while the model loaded, say): they are
        behind real time, and a pipeline that ran them would start late and then drop frames to catch up.

        Frames that arrive much faster than the source's rate (in under a third of a frame interval) come
        from a buffer: they are read and dropped, at most as many as the time since opening holds (plus a
        camera driver's few). The last buffered frame (less than a frame interval old) and the first one that
        had to be waited for are kept for the next reads. Returns how many were dropped; 0 for a file, or
        when a read fails (the next read deals with it)."""
        if not self.live or self._pending is None or self._closed.is_set():
            return 0
        budget = math.ceil((time.monotonic() - self._opened_s) * self.fps) + 4
        fast_s = 1.0 / (3.0 * self.fps)
        skipped = 0
        with self._reading:
            while skipped < budget and not self._closed.is_set():
                t0 = time.monotonic()
                ok, frame = self._cap.read()
                if not ok or frame is None:
                    break  # the pending frame stays: the next read reconnects if it must
                if time.monotonic() - t0 >= fast_s:  # waited for: the live edge
                    self._next = frame  # after the pending one, the last of the buffer (less than a frame old)
                    break
                self._pending = frame
                skipped += 1
            if self._closed.is_set():  # closed meanwhile: the release was left to this thread (see close)
                self._cap.release()
        return skipped

    def _read_locked(self) -> NDArray[np.uint8] | None:
        while not self._closed.is_set():
            t0 = time.monotonic()
            ok, frame = self._cap.read()
            now = time.monotonic()
            if self._stall_timeout_s is not None and now - t0 >= 0.8 * self._stall_timeout_s:
                self._stall_read = (t0, now)  # FFmpeg's read timeout ended it: the capture is spent
            if ok and frame is not None:
                return frame
            if not self._reconnect or self._closed.is_set():
                break
            stall = self._stall_read
            if stall is not None and now - stall[1] < STALL_WINDOW_S:
                LOGGER.warning("stream %s: no frame for %g s; reopening", self.name, self._stall_timeout_s)
                return self._reopen(since=stall[0], first_wait_s=0.0)
            LOGGER.warning("stream %s dropped; reconnecting%s", self.name, self._plan())
            return self._reopen(since=now, first_wait_s=self._backoff_s)
        return None

    def _plan(self) -> str:
        if self._max_reconnects is None:
            return f" (every {self._max_backoff_s:g} s at most, until it is back)"
        return f" (up to {self._max_reconnects} attempts)"

    def _wait_s(self, attempt: int, down_s: float, first_wait_s: float) -> float:
        if attempt == 1:
            return first_wait_s
        return min(self._max_backoff_s, max(self._backoff_s, WAIT_SHARE * down_s))

    def _reopen(self, since: float, first_wait_s: float) -> NDArray[np.uint8] | None:
        """Reopen a stream that dropped or stalled; its first frame, or None when it was given up or closed.

        The capture is replaced only once the new one has delivered a frame: a server that accepts and then
        closes (still starting) is one more failed attempt of the same outage, not an outage of its own."""
        self._cap.release()
        self._down_since = since
        attempt, reminders = 0, list(REMIND_S)
        try:
            while True:
                if self._max_reconnects is not None and attempt >= self._max_reconnects:
                    self.gave_up = True
                    LOGGER.error("stream %s: gave up after %d reconnect attempts (down %.1f s)", self.name, attempt,
                                 time.monotonic() - since)
                    return None
                attempt += 1
                if self._closed.wait(self._wait_s(attempt, time.monotonic() - since, first_wait_s)):
                    return None
                cap = self._open_capture()
                frame = None
                if cap is not None and cap.isOpened():
                    ok, frame = cap.read()
                    frame = frame if ok else None
                if frame is not None and cap is not None:
                    self._cap, self._stall_read = cap, None
                    self.reconnects += 1
                    LOGGER.warning("stream %s is back after %.1f s down (%d attempt%s)", self.name,
                                   time.monotonic() - since, attempt, "" if attempt == 1 else "s")
                    return frame
                if cap is not None:
                    cap.release()
                if self._closed.is_set():
                    return None
                down_s = time.monotonic() - since
                if attempt <= INFO_ATTEMPTS:
                    LOGGER.info("stream %s: reconnect attempt %d failed", self.name, attempt)
                if reminders and down_s >= reminders[0]:
                    LOGGER.warning("stream %s still down after %s (%d attempts)", self.name, _duration(down_s),
                                   attempt)
                    reminders = reminders[1:] or [reminders[0] + 3600.0]
        finally:
            self._outage_total_s += time.monotonic() - since
            self._down_since = None

    def interrupt(self) -> None:
        """Stop reconnecting and end the stream at the next read (safe from another thread)."""
        self._closed.set()

    def close(self) -> None:
        """Release the capture; safe from another thread while a read blocks (that read releases it instead)."""
        self._closed.set()
        if self._reading.acquire(blocking=False):
            try:
                self._cap.release()
            finally:
                self._reading.release()


_SOURCES: weakref.WeakSet[VideoSource] = weakref.WeakSet()


@atexit.register
def _let_reads_return() -> None:
    """At interpreter exit, wait (at most the read timeout) for a read still inside FFmpeg on a closed source.

    A stop leaves a blocked read to end on its own (a daemon thread); should the interpreter tear down around
    it, the thread would be killed the moment its read returns, inside OpenCV's C++ frames: an abort. The CLI
    ends with ``os._exit`` instead and never gets here with a read in flight; a script that ran a pipeline
    does."""
    for source in list(_SOURCES):
        since = source._read_since
        if since is None or not source._closed.is_set():
            continue
        left_s = (source._stall_timeout_s or 30.0) + 1.0 - (time.monotonic() - since)
        if left_s > 0 and source._reading.acquire(timeout=left_s):
            source._reading.release()


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
