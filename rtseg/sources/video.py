"""Video files, cameras and network streams, read through OpenCV's FFmpeg / V4L2 back ends.

A network stream that drops is reopened with exponential backoff; a file that ends early (fewer frames
than its header promised) is reported once, with the count, so a truncated file is noticed.

A read can block inside FFmpeg (a stalled stream waits for OpenCV's read timeout), and a run that stops does
not wait for it: :meth:`VideoSource.close` may come from another thread while that read is still in
progress, and the capture is then released by the reading thread once the read returns, never under it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
from numpy.typing import NDArray

from rtseg.errors import SourceError

LOGGER = logging.getLogger(__name__)

CaptureFactory = Callable[[], "cv2.VideoCapture"]


class VideoSource:
    """One OpenCV capture. Use the :meth:`file`, :meth:`camera` and :meth:`stream` constructors.

    Args:
        name: what the user passed.
        open_capture: opens (or reopens) the capture; injectable for tests.
        live: camera or live stream.
        reconnect: reopen the capture when reading fails (network streams).
        max_reconnects: give up after this many failed reopen attempts in a row.
        backoff_s: first wait before reopening; doubles up to ``max_backoff_s``.
    """

    def __init__(self, name: str, open_capture: CaptureFactory, *, live: bool, reconnect: bool = False,
                 max_reconnects: int = 8, backoff_s: float = 0.5, max_backoff_s: float = 10.0,
                 what: str = "video") -> None:
        self.name = name
        self.live = live
        self._open_capture = open_capture
        self._reconnect = reconnect
        self._max_reconnects = max_reconnects
        self._backoff_s, self._max_backoff_s = backoff_s, max_backoff_s
        self._closed = threading.Event()
        self._reading = threading.Lock()  # held while FFmpeg uses the capture: close() never releases under it
        self.reconnects = 0
        self._cap = open_capture()
        if self._cap is None or not self._cap.isOpened():
            raise SourceError(self._open_error(what))
        ok, first = self._cap.read()
        if not ok or first is None:
            self._cap.release()
            raise SourceError(self._open_error(what, opened=True))
        self._pending: NDArray[np.uint8] | None = first
        fps = float(self._cap.get(cv2.CAP_PROP_FPS) or 0.0)
        self.fps = fps if 0.5 < fps < 1000 else 30.0
        count = int(self._cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        self.frame_count: int | None = count if count > 0 and not live else None
        self.frames_read = 0
        self._what = what

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
    def stream(cls, url: str, *, live: bool = True) -> VideoSource:
        return cls(url, lambda: cv2.VideoCapture(url, cv2.CAP_FFMPEG), live=live, reconnect=live, what="stream")

    def read(self) -> NDArray[np.uint8] | None:
        if self._pending is not None:
            frame, self._pending = self._pending, None
            self.frames_read += 1
            return frame
        with self._reading:
            frame = self._read_locked()
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

    def _read_locked(self) -> NDArray[np.uint8] | None:
        while not self._closed.is_set():
            ok, frame = self._cap.read()
            if ok and frame is not None:
                return frame
            if not self._reconnect or not self._reopen():
                break
        return None

    def _reopen(self) -> bool:
        """Reopen a dropped stream with exponential backoff. False when it stays down."""
        self._cap.release()
        wait = self._backoff_s
        for attempt in range(1, self._max_reconnects + 1):
            LOGGER.warning("stream %s dropped; reconnecting in %.1f s (attempt %d of %d)", self.name, wait,
                           attempt, self._max_reconnects)
            if self._closed.wait(wait):
                return False
            cap = self._open_capture()
            if cap is not None and cap.isOpened():
                self._cap = cap
                self.reconnects += 1
                LOGGER.warning("stream %s reconnected", self.name)
                return True
            wait = min(wait * 2, self._max_backoff_s)
        LOGGER.error("stream %s: gave up after %d reconnect attempts", self.name, self._max_reconnects)
        return False

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
