"""The browser view on a real run: a video decoded by rtseg's source, segmented by the bundled model, drawn by
the annotator, served by LiveView while the pipeline runs; read by http.client (MJPEG, events, stats) and by a
real browser, and ended with the run."""

from __future__ import annotations

import http.client
import json
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

import rtseg
from rtseg.overlay.annotator import Annotator
from rtseg.pipeline.core import Pipeline
from rtseg.serve.view import LiveView
from rtseg.sources.base import open_source
from tests.support import write_video

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
FRAMES = 90


@pytest.fixture(scope="module")
def model() -> rtseg.Segmenter:
    return rtseg.load_model(backend="torch", device="cpu", imgsz=320)


class Run:
    """A pipeline run on its own thread, its frames served by a LiveView."""

    def __init__(self, video: Path, model: rtseg.Segmenter) -> None:
        self.view = LiveView("127.0.0.1:0").start()
        source = open_source(str(video))
        self.sink = self.view.sink(video.stem, source, names=model.names)
        self.pipeline = Pipeline(source, model.instance, [self.sink], annotator=Annotator(model.names))
        self.summary = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        self.summary = self.pipeline.run()

    def get(self, path: str) -> tuple[int, bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.view.port, timeout=30)
        conn.request("GET", path)
        resp = conn.getresponse()
        body = resp.read()
        conn.close()
        return resp.status, body


@pytest.fixture
def run(tmp_path: Path, model: rtseg.Segmenter) -> Iterator[Run]:
    # a file runs as fast as the model goes: a slow decode-free pace is not needed, the run lasts a few seconds
    video = write_video(tmp_path / "street.avi", frames=FRAMES, size_wh=(320, 240), fps=15)
    served = Run(video, model)
    yield served
    served.view.stop()


def test_a_run_is_served_while_it_runs_and_its_streams_end_with_it(run: Run) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", run.view.port, timeout=30)
    conn.request("GET", "/stream/street.mjpg")
    stream = conn.getresponse()
    events_conn = http.client.HTTPConnection("127.0.0.1", run.view.port, timeout=30)
    events_conn.request("GET", "/events?source=street")
    events = events_conn.getresponse()
    run.thread.start()
    indices, body = [], stream.read()  # the whole stream, until the run's end closes it
    run.thread.join(60)
    assert run.summary is not None and run.summary.frames == FRAMES
    for part in body.split(b"--rtsegframe\r\n")[1:-1]:  # the stream ends on a boundary
        head, _, rest = part.partition(b"\r\n\r\n")
        headers = dict(line.split(": ", 1) for line in head.decode().split("\r\n"))
        jpeg = rest[: int(headers["Content-Length"])]
        assert cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR).shape == (240, 320, 3)
        indices.append(int(headers["X-Frame-Index"]))
    assert len(indices) >= 5 and indices == sorted(set(indices)) and indices[-1] == FRAMES - 1
    records = []
    for line in events.read().decode().splitlines():  # the events stream also ends with the run
        if line.startswith("data: {\"frame\""):
            records.append(json.loads(line[6:]))
    frames = [r["frame"] for r in records]
    assert frames == sorted(set(frames)) and len(frames) >= 10
    assert all(r["source"] == "street" and "timings_ms" in r for r in records)
    stats = run.view.stats()["sources"]["street"]
    assert stats["frames"] == FRAMES and stats["ended"] and stats["dropped"] == 0 and stats["viewers"] == 0
    assert stats["stages_ms"]["infer"] > 0 and "serve" in stats["stages_ms"]  # the pipeline's own stage
    assert stats["stages_ms"]["serve"] < 5  # the sink only swaps references
    assert run.get("/frame/street.jpg")[0] == 200
    conn.close()
    events_conn.close()


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"needs Chromium at {CHROMIUM}")
def test_a_browser_watches_the_run(run: Run) -> None:
    sync_api = pytest.importorskip("playwright.sync_api", reason="needs Playwright's python package")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=shutil.which(CHROMIUM) or CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 390, "height": 844})
        page.goto(run.view.url)
        run.thread.start()
        page.wait_for_function("() => document.querySelector('[data-tag=street] img')?.naturalWidth > 0",
                               timeout=30_000)
        first = page.locator('[data-tag="street"] [data-field="frame"]').inner_text()
        page.wait_for_function(f"() => document.querySelector('[data-tag=street] [data-field=frame]')"
                               f".textContent !== '{first}'", timeout=30_000)
        run.thread.join(60)
        page.wait_for_function("() => document.querySelector('[data-tag=street] .badge').textContent === 'ended'",
                               timeout=10_000)
        assert page.evaluate("() => document.documentElement.scrollWidth") <= 390
        browser.close()
    assert run.summary is not None and run.summary.frames == FRAMES
