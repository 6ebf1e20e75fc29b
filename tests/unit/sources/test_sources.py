from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from rtseg.errors import SourceError
from rtseg.sources import open_source
from rtseg.sources.video import VideoSource
from tests.fakes import FakeCapture
from tests.support import write_video


@pytest.mark.parametrize(("spec", "message"), [
    ("missing.mp4", "no such file"),
    ("ftp://host/video.mp4", "unsupported URL"),
    ("file:///tmp/x.mp4", "unsupported URL"),
    ("nothing/*.jpg", "no images match"),
])
def test_bad_specs(spec, message, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SourceError, match=message):
        open_source(spec)


def test_empty_folder(tmp_path) -> None:
    with pytest.raises(SourceError, match="no images"):
        open_source(str(tmp_path))


def test_video_file_reads_every_frame(tmp_path) -> None:
    source = open_source(str(write_video(tmp_path / "v.avi", frames=17, fps=12.5)))
    assert not source.live and source.fps == pytest.approx(12.5) and source.frame_count == 17
    frames = []
    while (f := source.read()) is not None:
        frames.append(f)
    assert len(frames) == 17 and frames[0].shape == (240, 320, 3)


def test_images_in_name_order_skipping_unreadable(tmp_path) -> None:
    for name, value in (("b.png", 20), ("a.jpg", 10), ("c.jpg", 30)):
        cv2.imwrite(str(tmp_path / name), np.full((8, 9, 3), value, np.uint8))
    (tmp_path / "d.jpg").write_text("broken")
    source = open_source(str(tmp_path))
    values = []
    while (f := source.read()) is not None:
        values.append(int(f[0, 0, 0]))
    assert values == [10, 20, 30]
    assert open_source(str(tmp_path / "*.png")).frame_count == 1


def test_stream_reconnects_with_backoff_then_gives_up(caplog) -> None:
    plan = [FakeCapture(3), FakeCapture(0, opened=False), FakeCapture(2), FakeCapture(0, opened=False),
            FakeCapture(0, opened=False)]
    opened = iter(plan)
    source = VideoSource("rtsp://cam", lambda: next(opened), live=True, reconnect=True, max_reconnects=2,
                         backoff_s=0.001, what="stream")
    frames = 0
    while source.read() is not None:
        frames += 1
    assert frames == 5 and source.reconnects == 1 and source.gave_up
    text = caplog.text
    assert "reconnecting" in text and "is back after" in text and "gave up after 2" in text


def test_stream_that_never_opens_is_an_error() -> None:
    with pytest.raises(SourceError, match="cannot open stream"):
        VideoSource("rtsp://down", lambda: FakeCapture(0, opened=False), live=True, reconnect=True, what="stream")


def test_http_urls_are_decided_by_the_server_not_the_name(monkeypatch) -> None:
    """A name says nothing (``live.ts``, ``clip.mp4``, ``cam.mjpg``): the capture decides, once open (live unless
    its server gives a length: tests/unit/sources/test_video_reconnect.py)."""
    seen = {}

    def fake_stream(url, *, live, **_):  # noqa: ANN001, ANN003, ANN202
        seen[url] = live

    monkeypatch.setattr(VideoSource, "stream", staticmethod(fake_stream))
    for url in ("http://127.0.0.1:8000/clip.mp4", "https://127.0.0.1/live.ts", "rtsp://127.0.0.1/live"):
        open_source(url)
    assert seen == {"http://127.0.0.1:8000/clip.mp4": None, "https://127.0.0.1/live.ts": None,
                    "rtsp://127.0.0.1/live": True}


def test_http_stream_from_local_server(tmp_path) -> None:
    """A real network read through OpenCV's FFmpeg, from a server on loopback."""
    import functools
    import http.server
    import threading

    write_video(tmp_path / "clip.avi", frames=12)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        source = open_source(f"http://127.0.0.1:{server.server_address[1]}/clip.avi")
        n = 0
        while source.read() is not None:
            n += 1
        assert n == 12 and not source.live and source.frame_count == 12  # a file on a web server: read once
    finally:
        server.shutdown()


def test_unreadable_file(tmp_path: Path) -> None:
    path = tmp_path / "x.mkv"
    path.write_bytes(b"\x00" * 1000)
    with pytest.raises(SourceError, match="cannot decode"):
        open_source(str(path))
