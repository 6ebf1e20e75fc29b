"""Live streams that drop, stall and come back: :class:`rtseg.sources.video.VideoSource`'s reconnects, stall
watchdog, give-up and safe close, with scripted captures; then FFmpeg's own read timeout on real loopback
streams (a frozen TCP server, a vanished UDP sender), which is what makes a blocked read return."""

from __future__ import annotations

import doctest
import logging
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import rtseg.sources.base
from rtseg.errors import ConfigError
from rtseg.sources import open_source
from rtseg.sources.video import MAX_WAIT_S, VideoSource
from tests.streams_support import StreamServer


class ScriptedCapture:
    """A capture that gives ``frames`` frames then fails; ``opened=False``: it never opened. ``block`` (an
    Event): a read waits for it first, as a read blocked in FFmpeg does. Counts its releases."""

    def __init__(self, frames: int, opened: bool = True, block: threading.Event | None = None,
                 read_s: float = 0.0, count: float = 0.0) -> None:
        self.frames, self.opened, self.block, self.read_s, self.count = frames, opened, block, read_s, count
        self.released, self.reading = 0, False

    def isOpened(self) -> bool:  # noqa: N802 - OpenCV's name
        return self.opened

    def read(self):  # noqa: ANN201
        self.reading = True
        try:
            if self.block is not None:
                self.block.wait(10)
            time.sleep(self.read_s)
            if self.released:
                raise AssertionError("read from a released capture")
            if self.frames <= 0:
                return False, None
            self.frames -= 1
            return True, np.zeros((4, 4, 3), np.uint8)
        finally:
            self.reading = False

    def get(self, prop: int) -> float:
        import cv2

        return {cv2.CAP_PROP_FPS: 25.0, cv2.CAP_PROP_FRAME_COUNT: self.count}.get(prop, 0.0)

    def release(self) -> None:
        if self.reading:
            raise AssertionError("released while another thread reads it")
        self.released += 1


def _stream(plan: list[ScriptedCapture], **options: object) -> VideoSource:
    opened = iter(plan)
    options = {"backoff_s": 0.001, "max_backoff_s": 0.002, **options}
    return VideoSource("rtsp://cam", lambda: next(opened), live=True, reconnect=True, what="stream", **options)


def _drain(source: VideoSource) -> int:
    n = 0
    while source.read() is not None:
        n += 1
    return n


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


def test_reconnects_forever_by_default_with_one_line_each_way_per_outage(caplog: pytest.LogCaptureFixture) -> None:
    """25 failed attempts, then back; a second outage; then given up only because the script ends (cap 40)."""
    plan = [ScriptedCapture(3)] + [ScriptedCapture(0, opened=False)] * 25 + [ScriptedCapture(2)]
    plan += [ScriptedCapture(0, opened=False)] * 4 + [ScriptedCapture(1)] + [ScriptedCapture(0, opened=False)] * 40
    source = _stream(plan, max_reconnects=40)
    caplog.set_level(logging.INFO, logger="rtseg.sources.video")
    assert _drain(source) == 6
    assert source.reconnects == 2 and source.gave_up and source.outage_s > 0
    warnings = _warnings(caplog)
    assert [w.split(" ", 2)[2].split(";")[0].split(" after")[0] for w in warnings] == [
        "dropped", "is back", "dropped", "is back", "dropped", "gave up"]  # not a line per attempt
    assert "is back after" in warnings[1] and "(26 attempts)" in warnings[1]
    infos = [r for r in caplog.records if r.levelno == logging.INFO]
    assert len(infos) <= 3 * 3  # the first few attempts of each outage, then quiet


def test_never_gives_up_without_a_cap() -> None:
    plan = [ScriptedCapture(1)] + [ScriptedCapture(0, opened=False)] * 200 + [ScriptedCapture(1)]
    source = _stream(plan)  # max_reconnects=None
    source.read()
    assert source.read() is not None and source.reconnects == 1 and not source.gave_up


@pytest.mark.parametrize("cap", [0, 1, 3])
def test_gives_up_after_the_cap_and_says_so(cap: int, caplog: pytest.LogCaptureFixture) -> None:
    plan = [ScriptedCapture(2)] + [ScriptedCapture(0, opened=False)] * 10
    source = _stream(plan, max_reconnects=cap)
    assert _drain(source) == 2
    assert source.gave_up and source.reconnects == 0
    assert f"gave up after {cap} reconnect attempts" in caplog.text


def test_a_server_that_accepts_then_closes_is_the_same_outage(caplog: pytest.LogCaptureFixture) -> None:
    """Opened, but no frame (a server still starting): one more failed attempt, not a reconnect and a drop."""
    plan = [ScriptedCapture(1), ScriptedCapture(0), ScriptedCapture(0), ScriptedCapture(1)]
    source = _stream(plan + [ScriptedCapture(0, opened=False)] * 5, max_reconnects=5)
    assert _drain(source) == 2
    assert source.reconnects == 1
    assert sum("dropped" in w for w in _warnings(caplog)) == 2  # the last drop: the script's end


def test_backoff_starts_small_grows_with_the_outage_and_is_capped() -> None:
    source = VideoSource("rtsp://cam", lambda: ScriptedCapture(1), live=True, reconnect=True, what="stream")
    assert source._wait_s(1, 0.0, 0.1) == pytest.approx(0.1)
    assert source._wait_s(2, 0.2, 0.1) == pytest.approx(0.1)
    assert source._wait_s(5, 5.0, 0.1) == pytest.approx(1.0)  # a fifth of the time down
    assert source._wait_s(50, 3600.0, 0.1) == MAX_WAIT_S <= 3.0


def test_a_read_that_ends_at_the_stall_timeout_is_a_stall_and_reopens_at_once(
        caplog: pytest.LogCaptureFixture) -> None:
    stalled = ScriptedCapture(2)
    stalled.read_s = 0.0
    plan = [stalled, ScriptedCapture(3)]
    source = _stream(plan, stall_timeout_s=0.3, max_reconnects=1)
    assert source.read() is not None and source.read() is not None
    stalled.read_s = 0.3  # FFmpeg's read timeout: the read returns after it, with nothing
    t0 = time.monotonic()
    assert source.read() is not None  # reopened with no wait: a stall is not a refused connection
    assert time.monotonic() - t0 < 0.5
    assert source.reconnects == 1 and source.outage_s >= 0.3
    assert "no frame for 0.3 s; reopening" in caplog.text and "dropped" not in caplog.text


def test_close_from_another_thread_never_releases_under_a_read() -> None:
    """The stop path: close() while the decode thread is inside FFmpeg's read leaves the release to it."""
    gate = threading.Event()
    capture = ScriptedCapture(5)
    source = _stream([capture])
    assert source.read() is not None  # the frame read at open
    capture.block = gate
    results: list[object] = []
    reader = threading.Thread(target=lambda: results.append(source.read()))
    reader.start()
    while not capture.reading:
        time.sleep(0.001)
    source.interrupt()
    source.close()  # the read is still blocked: no release here (ScriptedCapture would raise)
    assert capture.released == 0
    gate.set()
    reader.join(5)
    assert results == [None] and capture.released == 1


def test_interrupt_ends_a_backoff_at_once() -> None:
    plan = [ScriptedCapture(1)] + [ScriptedCapture(0, opened=False)] * 1000
    source = _stream(plan, backoff_s=5.0, max_backoff_s=5.0)
    source.read()
    ended = threading.Event()
    threading.Thread(target=lambda: (source.read(), ended.set()), daemon=True).start()
    time.sleep(0.2)
    t0 = time.monotonic()
    source.interrupt()
    assert ended.wait(2) and time.monotonic() - t0 < 0.5


@pytest.mark.parametrize(("options", "message"), [
    ({"reconnect": -1}, r"^reconnect=-1: expected"),
    ({"reconnect": 1.5}, r"^reconnect=1.5: expected a whole number"),
    ({"stall_timeout": 0}, r"^stall_timeout=0: expected above 0"),
    ({"stall_timeout": float("nan")}, r"^stall_timeout=nan: expected"),
])
def test_open_source_checks_its_options(options: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        open_source("rtsp://127.0.0.1:1/live", **options)


def test_open_source_passes_the_options_and_lets_http_decide(monkeypatch: pytest.MonkeyPatch) -> None:
    seen = []

    def fake_stream(url, **kwargs):  # noqa: ANN001, ANN003, ANN202
        seen.append((url, kwargs))

    monkeypatch.setattr(VideoSource, "stream", staticmethod(fake_stream))
    open_source("http://127.0.0.1:8000/live.ts", reconnect=3, stall_timeout=2.5)
    open_source("udp://127.0.0.1:5000")
    assert seen == [("http://127.0.0.1:8000/live.ts", {"live": None, "max_reconnects": 3, "stall_timeout_s": 2.5}),
                    ("udp://127.0.0.1:5000", {"live": True, "max_reconnects": None, "stall_timeout_s": 10.0})]


@pytest.mark.parametrize(("count", "live"), [(-1.5e15, True), (0.0, True), (float("nan"), True), (120.0, False)])
def test_an_http_url_is_live_unless_its_capture_has_a_length(count: float, live: bool) -> None:
    source = VideoSource("http://host/x.ts", lambda: ScriptedCapture(3, count=count), live=None, reconnect=True,
                         what="stream")
    assert source.live is live and source.frame_count == (None if live else 120)


def test_open_source_example_runs(video30: Path) -> None:
    finder, runner = doctest.DocTestFinder(), doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    for test in finder.find(rtseg.sources.base.open_source, globs={"clip": str(video30)}):
        runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.attempted > 0 and result.failed == 0


# --- FFmpeg's read timeout on real loopback streams ------------------------------------------------------------


@pytest.mark.parametrize("how", ["tcp_frozen", "udp_vanished"])
def test_a_blocked_read_returns_at_the_stall_timeout(how: str, video30: Path,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    """Without the timeout a read blocks in FFmpeg (30 s: OpenCV's default); with it, it returns and the stream
    is reopened: at once when the server is back."""
    protocol = how.split("_")[0]
    with StreamServer(video30, protocol) as server:
        source = open_source(server.url, stall_timeout=1.0)
        try:
            for _ in range(10):
                assert source.read() is not None
            server.freeze() if how == "tcp_frozen" else server.kill()
            t0 = time.monotonic()
            thawed = threading.Timer(2.0, server.restart)  # the frozen TCP server has its one client: restart
            thawed.start()
            frame = source.read()
            while frame is not None and time.monotonic() - t0 < 1.5:  # what was buffered before the freeze
                frame = source.read()
            thawed.join()
            assert frame is not None, "the stream did not come back"
            assert "no frame for 1 s; reopening" in caplog.text
            assert source.reconnects == 1 and 1.0 <= source.outage_s < 6
        finally:
            source.interrupt()
            source.close()
