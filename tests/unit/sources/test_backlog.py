"""A live source starts at the live edge: :meth:`VideoSource.skip_backlog` drops the frames it buffered while
the model loaded, and keeps the rest in order."""

from __future__ import annotations

import time

import cv2
import numpy as np

from rtseg.sources.video import VideoSource

FPS = 25.0  # a frame interval of 40 ms: a read under 13 ms came from a buffer


class BufferedCapture:
    """Frame ``i`` has every pixel ``i % 256``; the first ``buffered`` reads return at once (frames the server
    sent while nobody read), the later ones take ``live_s`` (a live source's pace)."""

    def __init__(self, buffered: int, live_s: float = 0.03, count: float = 0.0) -> None:
        self.buffered, self.live_s, self.count, self.next = buffered, live_s, count, 0

    def isOpened(self) -> bool:  # noqa: N802 - OpenCV's name
        return True

    def read(self):  # noqa: ANN201
        if self.next > self.buffered:  # the frame read at open is not one of the buffered reads
            time.sleep(self.live_s)
        frame = np.full((4, 4, 3), self.next % 256, np.uint8)
        self.next += 1
        return True, frame

    def get(self, prop: int) -> float:
        return {cv2.CAP_PROP_FPS: FPS, cv2.CAP_PROP_FRAME_COUNT: self.count}.get(prop, 0.0)

    def release(self) -> None:
        return None


def _numbers(source: VideoSource, n: int) -> list[int]:
    return [int(source.read()[0, 0, 0]) for _ in range(n)]


def test_the_buffered_frames_are_skipped_and_the_live_ones_kept_in_order() -> None:
    source = VideoSource("rtsp://cam", lambda: BufferedCapture(buffered=8), live=True, reconnect=True,
                         what="stream")
    time.sleep(0.5)  # the model loads: 12 frames' worth of time, 8 of them buffered
    assert source.skip_backlog() == 8  # frame 0 (read at open) and 1-7 dropped
    assert _numbers(source, 4) == [8, 9, 10, 11]  # the last buffered one, then the live edge, with no gap


def test_no_more_is_skipped_than_the_time_since_opening_holds() -> None:
    """A source that is always fast (a file served as a live stream) is not read to its end: the skip stops
    after the frames the time since opening can account for (plus a driver's few)."""
    source = VideoSource("http://host/x.ts", lambda: BufferedCapture(buffered=10_000), live=True, reconnect=True,
                         what="stream")
    time.sleep(0.2)
    skipped = source.skip_backlog()
    assert 4 <= skipped <= int(0.2 * FPS) + 6, skipped


def test_a_source_read_at_once_after_opening_loses_nothing_and_a_file_is_never_skipped(tmp_path) -> None:  # noqa: ANN001
    live = VideoSource("rtsp://cam", lambda: BufferedCapture(buffered=0), live=True, reconnect=True, what="stream")
    assert live.skip_backlog() == 0
    assert _numbers(live, 3) == [0, 1, 2]
    clip = VideoSource("clip.mp4", lambda: BufferedCapture(buffered=50, count=50), live=False)
    assert clip.skip_backlog() == 0
    assert _numbers(clip, 3) == [0, 1, 2]


def test_a_close_during_the_skip_leaves_the_release_to_it() -> None:
    """close() from another thread while the skip reads (inside FFmpeg) must not release the capture under
    it; the skip releases it once its read returns."""
    import threading

    class Slow(BufferedCapture):
        released = 0

        def read(self):  # noqa: ANN201
            time.sleep(0.05)
            return super().read()

        def release(self) -> None:
            Slow.released += 1

    source = VideoSource("rtsp://cam", lambda: Slow(buffered=0, live_s=0.0), live=True, reconnect=True,
                         what="stream")
    time.sleep(0.3)
    closer = threading.Timer(0.02, source.close)
    closer.start()
    source.skip_backlog()
    closer.join()
    assert Slow.released == 1
