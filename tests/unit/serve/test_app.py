"""The browser view's web app through a real uvicorn server on 127.0.0.1, read with http.client: MJPEG framing,
rates, sizes and freshness for a slow client, snapshots, /stats.json, /events, bad requests and the token."""

from __future__ import annotations

import http.client
import json
import logging
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import cv2
import numpy as np
import pytest

from rtseg.serve.app import BOUNDARY, build_app
from rtseg.serve.hub import Channel, Hub
from rtseg.serve.server import WebServer
from rtseg.types import Frame, FrameResult

FPS = 30.0
HW = (480, 640)


class Feeder:
    """Publishes frames into a channel from a thread at ``fps``, as the pipeline does: a textured frame with
    its index written on it, one 'person' or 'cat' box each."""

    def __init__(self, channel: Channel, fps: float = FPS, hw: tuple[int, int] = HW) -> None:
        self.channel, self.period = channel, 1 / fps
        rng = np.random.default_rng(0)
        ramp = np.linspace(40, 200, hw[1], dtype=np.float32)[None, :, None]
        self.base = np.clip(ramp + rng.normal(0, 10, (*hw, 3)), 0, 255).astype(np.uint8)
        self.index, self.stop = 0, threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        next_t = time.perf_counter()
        while not self.stop.is_set():
            image = self.base.copy()
            cv2.putText(image, str(self.index), (40, 200), cv2.FONT_HERSHEY_SIMPLEX, 4, (255, 255, 255), 8)
            frame = Frame(self.index, image, self.index * self.period, "/private/path/clip.mp4")
            frame.timings.capture_ns = time.perf_counter_ns()
            result = FrameResult(self.index, image.shape[:2], np.array([[10, 10, 100, 100]]), np.array([0.9]),
                                 np.array([self.index % 2]), timestamp_s=frame.timestamp_s, timings=frame.timings)
            self.channel.publish(frame, image, result)
            self.index += 1
            next_t += self.period
            time.sleep(max(0.0, next_t - time.perf_counter()))


@dataclass
class Served:
    hub: Hub
    channel: Channel
    feeder: Feeder
    server: WebServer

    def get(self, path: str, headers: dict[str, str] | None = None, method: str = "GET"
            ) -> tuple[int, dict[str, str], bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.server.port, timeout=10)
        try:
            conn.request(method, path, headers=headers or {})
            resp = conn.getresponse()
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
        finally:
            conn.close()

    def open(self, path: str, rcvbuf: int | None = None) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
        conn = http.client.HTTPConnection("127.0.0.1", self.server.port, timeout=10)
        if rcvbuf:  # a small receive window: the client's pace shows at the server, as over a slow network
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            sock.settimeout(10)
            sock.connect(("127.0.0.1", self.server.port))
            conn.sock = sock
        conn.request("GET", path)
        return conn, conn.getresponse()


def serve(token: str | None = None, feed: bool = True) -> Iterator[Served]:
    hub = Hub()
    channel = hub.add("cam", live=True, names=("person", "cat"))
    feeder = Feeder(channel)
    server = WebServer(build_app(hub, token), "127.0.0.1", 0).start()
    if feed:
        feeder.thread.start()
        deadline = time.monotonic() + 5
        while channel.latest() is None and time.monotonic() < deadline:
            time.sleep(0.01)
    try:
        yield Served(hub, channel, feeder, server)
    finally:
        feeder.stop.set()
        hub.close()
        server.stop()
        hub.shutdown()


@pytest.fixture
def served() -> Iterator[Served]:
    yield from serve()


@pytest.fixture
def guarded() -> Iterator[Served]:
    yield from serve(token="s3cret")


class Parts:
    """Reads an MJPEG response part by part, checking its framing exactly."""

    def __init__(self, resp: http.client.HTTPResponse) -> None:
        self.resp, self.first = resp, True

    def next(self) -> tuple[dict[str, str], bytes]:
        if self.first:
            assert self.resp.readline() == f"--{BOUNDARY}\r\n".encode()
            self.first = False
        headers = {}
        while (line := self.resp.readline()) != b"\r\n":
            if not line:
                raise EOFError("the stream ended")
            key, _, value = line.decode("ascii").partition(":")
            headers[key.strip().lower()] = value.strip()
        body = self.resp.read(int(headers["content-length"]))
        assert self.resp.readline() == b"\r\n"
        assert self.resp.readline() == f"--{BOUNDARY}\r\n".encode()  # sent right away: browsers show the part
        return headers, body


def decode(jpeg: bytes) -> np.ndarray:
    image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None, "not a JPEG"
    return image


def test_mjpeg_stream_is_jpeg_parts_in_frame_order(served: Served) -> None:
    conn, resp = served.open("/stream/cam.mjpg")
    assert resp.status == 200
    assert resp.getheader("content-type") == f"multipart/x-mixed-replace; boundary={BOUNDARY}"
    assert "no-store" in resp.getheader("cache-control")
    parts = Parts(resp)
    indices = []
    for _ in range(6):
        headers, body = parts.next()
        assert headers["content-type"] == "image/jpeg"
        assert decode(body).shape == (*HW, 3)
        indices.append(int(headers["x-frame-index"]))
        assert int(headers["x-capture-ns"]) <= time.perf_counter_ns()
        assert float(headers["x-age-ms"]) >= 0
    conn.close()
    assert indices == sorted(set(indices)), indices  # strictly increasing: never the same frame twice, never back


def test_height_scales_down_and_fps_caps_the_rate(served: Served) -> None:
    conn, resp = served.open("/stream/cam.mjpg?height=120&fps=4")
    parts = Parts(resp)
    assert decode(parts.next()[1]).shape == (120, 160, 3)
    t0, n = time.perf_counter(), 0
    while time.perf_counter() - t0 < 1.5:
        parts.next()
        n += 1
    conn.close()
    assert 3 <= n <= 8, f"{n} parts in 1.5 s at fps=4"
    conn, resp = served.open("/stream/cam.mjpg?height=1000")  # never upscaled: full size
    assert resp.status == 200 and decode(Parts(resp).next()[1]).shape == (*HW, 3)
    conn.close()


def test_a_slow_client_gets_the_newest_frame_never_a_backlog(served: Served) -> None:
    """A client that reads a part, then sleeps 0.5 s, gets each time a frame decoded once it had finished
    reading the previous part (within a frame interval and an encode), never one queued for it meanwhile.
    Its small receive window makes its pace visible to the server as a slow network would; a client program
    that stops reading a large local socket buffer holds whatever its own kernel already received."""
    conn, resp = served.open("/stream/cam.mjpg", rcvbuf=32 * 1024)
    parts = Parts(resp)
    parts.next()
    done_ns, ages_ms, behind = time.perf_counter_ns(), [], []
    for _ in range(5):
        time.sleep(0.5)
        latest_at_wakeup = served.channel.latest().index
        headers, body = parts.next()
        now = time.perf_counter_ns()
        capture_ns, index = int(headers["x-capture-ns"]), int(headers["x-frame-index"])
        # decoded after the previous part was read, give or take a frame interval and an encode
        behind.append((done_ns - capture_ns) / 1e6)
        ages_ms.append((now - capture_ns) / 1e6)
        assert latest_at_wakeup - index <= 0.5 * FPS + 4, (index, latest_at_wakeup)
        done_ns = now
    conn.close()
    assert max(behind) < 1000 / FPS + 100, f"frames decoded up to {max(behind):.0f} ms before they were asked for"
    assert max(ages_ms) < 500 + 1000 / FPS + 250, f"ages at read {ages_ms}"


def test_viewers_are_counted_and_clients_leave_quietly(served: Served, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    streams = [served.open("/stream/cam.mjpg") for _ in range(3)]
    for _, resp in streams:
        Parts(resp).next()
    assert json.loads(served.get("/stats.json")[2])["sources"]["cam"]["viewers"] == 3
    for conn, _ in streams[:2]:
        conn.sock.shutdown(socket.SHUT_RDWR)
        conn.close()
    deadline = time.monotonic() + 5
    while served.channel.viewers != 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert served.channel.viewers == 1
    streams[2][0].close()
    deadline = time.monotonic() + 5
    while served.channel.viewers and time.monotonic() < deadline:
        time.sleep(0.05)
    assert served.channel.viewers == 0
    noisy = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert noisy == [], [r.getMessage() for r in noisy]


def test_snapshot_is_the_latest_frame(served: Served) -> None:
    before = served.channel.latest().index
    status, headers, body = served.get("/frame/cam.jpg")
    assert status == 200 and headers["content-type"] == "image/jpeg"
    assert int(headers["x-frame-index"]) >= before
    assert decode(body).shape == (*HW, 3)
    assert 'filename="cam_' in headers["content-disposition"]
    status, _, body = served.get("/frame/cam.jpg?height=240")
    assert status == 200 and decode(body).shape == (240, 320, 3)


def test_viewers_share_one_jpeg_per_frame(served: Served) -> None:
    streams = [served.open("/stream/cam.mjpg") for _ in range(4)]
    readers = [Parts(resp) for _, resp in streams]
    for parts in readers:
        parts.next()
    frames0, encodes0 = served.channel.frames, served.channel.encodes
    for _ in range(10):
        for parts in readers:
            parts.next()
    frames, encodes = served.channel.frames - frames0, served.channel.encodes - encodes0
    for conn, _ in streams:
        conn.close()
    assert 0 < encodes <= frames + 1, f"{encodes} JPEGs for {frames} frames and 4 viewers"


def test_nothing_is_encoded_while_nobody_watches(served: Served) -> None:
    time.sleep(0.3)
    served.get("/stats.json")
    assert served.channel.frames > 5 and served.channel.encodes == 0 and served.hub.records == 0


@pytest.fixture
def idle() -> Iterator[Served]:
    yield from serve(feed=False)


def test_before_the_first_frame_a_snapshot_is_503_and_the_page_waits(idle: Served) -> None:
    status, headers, body = idle.get("/frame/cam.jpg")
    assert status == 503 and headers["retry-after"] == "1"
    assert body == b"503: no frame from cam yet; try again in a moment\n"
    stats = json.loads(idle.get("/stats.json")[2])
    assert stats["sources"]["cam"]["frames"] == 0 and stats["sources"]["cam"]["frame"] is None


def test_stats_json(served: Served) -> None:
    time.sleep(0.4)
    status, headers, body = served.get("/stats.json")
    assert status == 200 and headers["content-type"] == "application/json"
    stats = json.loads(body)
    assert stats["uptime_s"] >= 0 and stats["viewers"] == 0 and stats["events"]["subscribers"] == 0
    cam = stats["sources"]["cam"]
    assert cam["live"] and cam["frames"] > 5 and cam["image_hw"] == list(HW)
    assert 15 < cam["fps"] < 45
    assert 0 <= cam["latency_ms"] < 100 and cam["dropped"] == 0 and cam["reconnects"] == 0
    assert set(cam["classes_seen"]) == {"person", "cat"} and sum(cam["classes_now"].values()) == 1
    assert {"decode", "infer", "queue_wait"} <= set(cam["stages_ms"])
    assert "private" not in body.decode()  # the source's path never shows


def read_events(resp: http.client.HTTPResponse, n: int) -> list[tuple[str, str]]:
    """Up to ``n`` events as (event name, data) (fewer when the stream ends), skipping comments and retry."""
    events, name, data = [], "message", []
    while len(events) < n:
        raw = resp.readline()
        if not raw:
            break
        line = raw.decode().rstrip("\n")
        if not line:
            if data:
                events.append((name, "\n".join(data)))
            name, data = "message", []
        elif line.startswith("event:"):
            name = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].strip())
    return events


def test_events_carry_each_frames_record(served: Served) -> None:
    conn, resp = served.open("/events?source=cam")
    assert resp.status == 200 and resp.getheader("content-type").startswith("text/event-stream")
    records = [json.loads(data) for name, data in read_events(resp, 8) if name == "message"]
    frames = [r["frame"] for r in records]
    assert frames == sorted(set(frames)) and len(frames) >= 6
    assert all(r["source"] == "cam" and "path" not in r for r in records)
    assert records[0]["detections"][0]["class_name"] in ("person", "cat")
    assert json.loads(served.get("/stats.json")[2])["events"]["subscribers"] == 1
    conn.close()
    deadline = time.monotonic() + 5
    while served.hub.stats()["events"]["subscribers"] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert served.hub.stats()["events"]["subscribers"] == 0
    made = served.hub.records
    time.sleep(0.3)
    assert served.hub.records == made  # nobody listens: no record is computed


def test_an_ended_source_ends_its_streams(served: Served) -> None:
    conn, resp = served.open("/stream/cam.mjpg")
    parts = Parts(resp)
    parts.next()
    events_conn, events = served.open("/events")
    served.feeder.stop.set()
    served.channel.end()
    with pytest.raises(EOFError):
        for _ in range(100):
            parts.next()
    served.hub.close()
    assert ("end", "{}") in read_events(events, 50)
    assert served.get("/events?source=cam")[0] == 204  # EventSource does not reconnect after a 204
    assert served.get("/frame/cam.jpg")[0] == 200  # the last frame stays for snapshots
    conn.close()
    events_conn.close()


@pytest.mark.parametrize(("path", "status", "start"), [
    ("/stream/nope.mjpg", 404, "404: no source 'nope.mjpg'; sources: cam"),
    ("/stream/cam.jpg", 404, "404: no source"),
    ("/frame/cam.png", 404, "404: no source"),
    ("/events?source=nope", 404, "404: no source 'nope'"),
    ("/nope", 404, "404: not found"),
    ("/stream/cam.mjpg?fps=abc", 400, "400: fps='abc': expected a number in (0, 120]"),
    ("/stream/cam.mjpg?fps=0", 400, "400: fps='0'"),
    ("/stream/cam.mjpg?fps=nan", 400, "400: fps='nan'"),
    ("/stream/cam.mjpg?fps=1000", 400, "400: fps='1000'"),
    ("/stream/cam.mjpg?height=8", 400, "400: height='8': expected a whole number in 16..4320"),
    ("/stream/cam.mjpg?height=12.5", 400, "400: height='12.5'"),
    ("/frame/cam.jpg?height=%0Ax", 400, "400: height='\\nx'"),
])
def test_bad_requests_are_one_line(served: Served, path: str, status: int, start: str) -> None:
    got, headers, body = served.get(path)
    text = body.decode()
    assert got == status and headers["content-type"].startswith("text/plain")
    assert text.startswith(start) and text.endswith("\n") and text.count("\n") == 1, text
    assert served.get("/", method="POST")[0] == 405
    assert served.get("/stream/cam.mjpg", method="HEAD")[0] == 200  # headers only, no endless empty stream


def test_token_guards_every_route_and_the_page_sets_its_cookie(guarded: Served) -> None:
    for path in ("/", "/stats.json", "/stream/cam.mjpg", "/frame/cam.jpg", "/events", "/nope"):
        status, _, body = guarded.get(path)
        assert status == 401 and body.count(b"\n") == 1 and b"cam" not in body, path
    assert guarded.get("/stats.json?token=wrong")[0] == 401
    assert guarded.get("/stats.json", {"Authorization": "Bearer s3cret"})[0] == 200
    status, headers, body = guarded.get("/?token=s3cret")
    assert status == 200 and b"viewport" in body
    cookie = headers["set-cookie"]
    assert cookie.startswith("rtseg_token=s3cret;") and "HttpOnly" in cookie and "SameSite=strict" in cookie
    jar = {"Cookie": "rtseg_token=s3cret"}
    assert guarded.get("/frame/cam.jpg", jar)[0] == 200
    conn = http.client.HTTPConnection("127.0.0.1", guarded.server.port, timeout=10)
    conn.request("GET", "/stream/cam.mjpg", headers=jar)
    resp = conn.getresponse()
    assert resp.status == 200 and decode(Parts(resp).next()[1]).shape == (*HW, 3)
    conn.close()
    assert "set-cookie" not in guarded.get("/", {"Authorization": "Bearer s3cret"})[1]


def test_without_fps_a_stream_sends_at_most_the_default_rate() -> None:
    """A run going at 90 FPS is watched at 30 (app.DEFAULT_FPS) unless ?fps= asks for more: each part sent is
    a JPEG encoded, and a screen shows no more of a camera."""
    from rtseg.serve.app import DEFAULT_FPS

    hub = Hub()
    channel = hub.add("fast", live=True, names=("person", "cat"))
    feeder = Feeder(channel, fps=90.0, hw=(120, 160))
    server = WebServer(build_app(hub, None), "127.0.0.1", 0).start()
    feeder.thread.start()
    try:
        served = Served(hub, channel, feeder, server)
        conn, resp = served.open("/stream/fast.mjpg")
        parts = Parts(resp)
        parts.next()
        t0, n = time.perf_counter(), 0
        while time.perf_counter() - t0 < 1.5:
            parts.next()
            n += 1
        conn.close()
        assert 10 <= n <= 1.5 * DEFAULT_FPS + 4, f"{n} parts in 1.5 s from a 90 FPS source"
    finally:
        feeder.stop.set()
        hub.close()
        server.stop()
        hub.shutdown()
