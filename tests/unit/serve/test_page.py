"""The index page in a real browser (headless Chromium through Playwright): the live image plays, the numbers
move, the snapshot downloads, it fits a phone, and a token link works for the page's own requests."""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from rtseg.serve.view import LiveView
from rtseg.types import Frame, FrameResult

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]

playwright_api = pytest.importorskip("playwright.sync_api", reason="needs Playwright's python package")
pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists() and shutil.which("chromium") is None,
                                reason=f"needs Chromium at {CHROMIUM}")


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with playwright_api.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium"),
                                     args=ARGS)
        yield chromium
        chromium.close()


def feed(sink, stop: threading.Event, hw: tuple[int, int] = (240, 320)) -> None:  # noqa: ANN001 - a ServeSink
    """Writes frames (their index drawn big, one 'person' box) into ``sink`` at about 25 fps."""
    i = 0
    while not stop.is_set():
        image = np.full((*hw, 3), (i * 7) % 200, np.uint8)
        cv2.putText(image, str(i), (20, hw[0] // 2), cv2.FONT_HERSHEY_SIMPLEX, 3, (255, 255, 255), 6)
        frame = Frame(i, image, i / 25, "/home/me/clip.mp4")
        frame.timings.capture_ns = time.perf_counter_ns()
        sink.write(frame, image, FrameResult(i, hw, np.array([[5, 5, 50, 50]]), np.array([0.9]), np.array([0])))
        i += 1
        time.sleep(0.04)


@pytest.fixture
def view(request: pytest.FixtureRequest) -> Iterator[LiveView]:
    token = getattr(request, "param", None)
    live = LiveView("127.0.0.1:0", token=token).start()
    sink = live.sink("camera0", names=("person",))
    stop = threading.Event()
    threading.Thread(target=feed, args=(sink, stop), daemon=True).start()
    yield live
    stop.set()
    live.stop()


def frame_number(page) -> int:  # noqa: ANN001 - a Playwright page
    text = page.locator('[data-tag="camera0"] [data-field="frame"]').inner_text()
    return int(text) if text.isdigit() else -1


def test_the_page_plays_the_live_view_and_its_numbers_move(view: LiveView, browser) -> None:  # noqa: ANN001
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(view.url)
    image = page.locator('[data-tag="camera0"] img')
    image.wait_for(state="attached", timeout=10_000)
    page.wait_for_function("() => document.querySelector('[data-tag=camera0] img').naturalWidth > 0", timeout=10_000)
    assert image.evaluate("img => [img.naturalWidth, img.naturalHeight]") == [320, 240]
    first_shot, first = image.screenshot(), frame_number(page)
    page.wait_for_function(f"() => Number(document.querySelector('[data-tag=camera0] [data-field=frame]')"
                           f".textContent) > {first}", timeout=10_000)
    time.sleep(0.3)
    assert image.screenshot() != first_shot  # the picture itself moves, not only the numbers
    fps = float(page.locator('[data-tag="camera0"] [data-field="fps"]').inner_text())
    assert 5 < fps < 60
    assert "person" in page.locator('[data-tag="camera0"] .chips').inner_text()
    assert view.stats()["sources"]["camera0"]["viewers"] == 1
    snap = page.locator('[data-tag="camera0"] a.snap')
    with page.expect_download() as download:
        snap.click()
    path = download.value.path()
    assert download.value.suggested_filename.startswith("camera0_")
    assert cv2.imread(str(path)).shape == (240, 320, 3)
    assert "/home/me" not in page.content()
    assert errors == []
    page.close()


def test_the_page_fits_a_phone(view: LiveView, browser) -> None:  # noqa: ANN001
    context = browser.new_context(viewport={"width": 390, "height": 844}, device_scale_factor=3, is_mobile=True,
                                  has_touch=True)
    page = context.new_page()
    page.goto(view.url)
    page.wait_for_function("() => document.querySelector('[data-tag=camera0] img')?.naturalWidth > 0",
                           timeout=10_000)
    widths = page.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth, "
                           "document.querySelector('[data-tag=camera0]').getBoundingClientRect().right]")
    assert widths[0] <= widths[1] == 390 and widths[2] <= 390, widths
    box = page.locator('[data-tag="camera0"] img').bounding_box()
    assert box["width"] > 300  # the view fills the phone's width
    snap = page.locator('[data-tag="camera0"] a.snap').bounding_box()
    assert snap["height"] >= 24 and snap["x"] + snap["width"] <= 390  # a button a thumb can press, on screen
    context.close()


@pytest.mark.parametrize("view", ["t0ken"], indirect=True)
def test_a_token_link_opens_the_page_and_its_streams(view: LiveView, browser) -> None:  # noqa: ANN001
    context = browser.new_context()
    page = context.new_page()
    assert page.goto(view.url).status == 401
    page.goto(view.link)
    page.wait_for_function("() => document.querySelector('[data-tag=camera0] img')?.naturalWidth > 0",
                           timeout=10_000)
    assert view.stats()["sources"]["camera0"]["viewers"] == 1  # the MJPEG request carried the cookie
    context.close()
