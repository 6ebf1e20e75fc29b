"""LiveView, the API the run wires in: binding errors as one ConfigError line, the token, the sink, and a stop
that ends every viewer's stream, also one that stopped reading, without an error in the logs."""

from __future__ import annotations

import doctest
import http.client
import logging
import socket
import threading
import time

import numpy as np
import pytest

import rtseg.serve.view
from rtseg.errors import ConfigError
from rtseg.serve.view import LiveView
from rtseg.types import Frame, FrameResult


def test_examples_run() -> None:
    finder, runner = doctest.DocTestFinder(), doctest.DocTestRunner()
    for test in finder.find(rtseg.serve.view):
        runner.run(test)
    assert runner.summarize(verbose=False).failed == 0 and runner.summarize(verbose=False).attempted > 0


def test_a_port_in_use_or_a_bad_address_is_one_config_error_line() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ConfigError, match=rf"^serve=127.0.0.1:{port}: port {port} is in use") as err:
            LiveView(f"127.0.0.1:{port}")
        assert "\n" not in str(err.value)
    with pytest.raises(ConfigError, match="expected PORT or HOST:PORT"):
        LiveView("localhost:http")
    with pytest.raises(ConfigError, match="not an address of this machine"):
        LiveView("192.0.2.1:0")  # TEST-NET-1: never this machine's


def test_the_token_comes_from_the_argument_or_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RTSEG_SERVE_TOKEN", "from env")
    view = LiveView("0", token=None)
    try:
        assert view.token == "from env" and view.link == f"{view.url}?token=from%20env"
        assert "token" not in view.url and view.url == f"http://127.0.0.1:{view.port}/"
    finally:
        view.stop()
    monkeypatch.delenv("RTSEG_SERVE_TOKEN")
    view = LiveView("127.0.0.1:0")
    assert view.token is None and view.link == view.url
    view.stop()


def feed(sink, stop: threading.Event) -> None:  # noqa: ANN001 - a ServeSink
    """Writes 240x320 frames into ``sink`` at about 30 fps, as the pipeline would."""
    i = 0
    while not stop.is_set():
        image = np.random.default_rng(i).integers(0, 255, (240, 320, 3), np.uint8)
        frame = Frame(i, image, i / 30, "rtsp://user:secret@camera/stream")
        frame.timings.capture_ns = time.perf_counter_ns()
        sink.write(frame, None if i % 2 else image, FrameResult.empty(i, (240, 320)))
        i += 1
        time.sleep(1 / 30)


def test_stop_ends_every_stream_even_one_that_stopped_reading(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)

    class Camera:
        live, fps, reconnects = True, 30.0, 0

    view = LiveView("127.0.0.1:0").start()
    sink = view.sink("camera0", Camera(), names=("person",))
    assert sink.needs_image and sink.stage == "serve" and sink.tag == "camera0"
    stop = threading.Event()
    threading.Thread(target=feed, args=(sink, stop), daemon=True).start()
    reader = http.client.HTTPConnection("127.0.0.1", view.port, timeout=10)
    reader.request("GET", "/stream/camera0.mjpg")
    resp = reader.getresponse()
    assert resp.status == 200 and resp.readline().startswith(b"--rtsegframe")
    stuck = socket.socket()  # asks for a stream, then never reads: its window fills, the server's send waits
    stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stuck.connect(("127.0.0.1", view.port))
    stuck.sendall(b"GET /stream/camera0.mjpg HTTP/1.1\r\nHost: x\r\n\r\n")
    time.sleep(1.0)
    assert view.stats()["sources"]["camera0"]["viewers"] == 2
    t0 = time.perf_counter()
    view.stop()
    stopped_s = time.perf_counter() - t0
    stop.set()
    body = resp.read()  # the rest of the stream, to its end
    assert body.endswith(b"\r\n--rtsegframe\r\n")
    assert stopped_s < 5
    assert view.stats()["sources"]["camera0"]["ended"]  # the page says the run is over
    stuck.close()
    reader.close()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", view.port), timeout=2)
    noisy = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert noisy == [], [r.getMessage() for r in noisy]
