"""Real peers for the event outputs (rtseg.sinks.events): a webhook receiver, an MQTT broker and a subscriber,
all on 127.0.0.1, and small factories of results. A helper module, not a test module: tests import from here
and wrap these in fixtures, e.g.::

    @pytest.fixture
    def webhook_server():
        with WebhookServer() as server:
            yield server

    @pytest.fixture(scope="module")
    def broker(tmp_path_factory):
        with MqttBroker(tmp_path_factory.mktemp("broker")) as running:
            yield running
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import cv2
import numpy as np

from rtseg.types import Frame, FrameResult, InstanceMasks
from tests.support import free_port


def wait_until(condition: Callable[[], bool], timeout: float = 10.0, what: str = "the condition") -> None:
    """Poll ``condition`` until it holds; AssertionError naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.01)


def listening(port: int) -> bool:
    """Something listens on TCP ``port`` of this machine (read from /proc: no probing connection)."""
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as f:
            next(f)
            for line in f:
                fields = line.split()
                if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                    return True
    return False


# --- a webhook receiver -----------------------------------------------------------------------------------------


class WebhookServer:
    """A real HTTP/1.1 server (keep-alive) on 127.0.0.1, in a thread, that keeps every JSON body POSTed to it.

    Args:
        statuses: the answers to the first requests, in order (``(500, 500)``: two errors); then 200.
        delay_s: how long each answer takes.
        path: the URL path of :attr:`url`.

    Attributes:
        records: the JSON bodies of the requests answered 2xx, in arrival order.
        requests: every request as ``(path, headers, status answered)``.
    """

    def __init__(self, statuses: Sequence[int] = (), delay_s: float = 0.0, path: str = "/hook",
                 port: int | None = None) -> None:
        self.statuses, self.delay_s, self.path = list(statuses), delay_s, path
        self.records: list[dict] = []
        self.requests: list[tuple[str, dict, int]] = []
        self._lock = threading.Lock()
        self._connections: set[socket.socket] = set()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            timeout = 30
            disable_nagle_algorithm = True  # headers and body go in two writes: no 40 ms wait for the ACK

            def setup(self) -> None:
                super().setup()
                with outer._lock:
                    outer._connections.add(self.connection)

            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                time.sleep(outer.delay_s)
                with outer._lock:
                    status = outer.statuses.pop(0) if outer.statuses else 200
                    outer.requests.append((self.path, dict(self.headers), status))
                    if 200 <= status < 300:
                        outer.records.append(json.loads(body))
                answer = b'{"ok": true}' if status < 300 else b'{"error": "scripted"}'
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - http.server's name
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", port or 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}{path}"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)
        self._thread.start()

    def wait_for(self, n: int, timeout: float = 10.0) -> list[dict]:
        """The first ``n`` records, once they arrived."""
        wait_until(lambda: len(self.records) >= n, timeout, f"{n} webhook records (got {len(self.records)})")
        return self.records[:n]

    def drop_connections(self) -> None:
        """Close every kept-alive connection from the server's side, as a receiver's idle timeout does."""
        with self._lock:
            connections, self._connections = list(self._connections), set()
        for conn in connections:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def stop(self) -> None:
        """Stop listening and cut every open connection: the receiver is down (connections are refused)."""
        self._server.shutdown()
        self._server.server_close()
        self.drop_connections()
        self._thread.join(timeout=5)

    def __enter__(self) -> WebhookServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


# --- an MQTT broker and a subscriber ----------------------------------------------------------------------------

_BROKER_CONFIG = """\
listeners:
  default:
    type: tcp
    bind: 127.0.0.1:{port}
plugins:
  amqtt.plugins.authentication.AnonymousAuthPlugin:
    allow_anonymous: {anonymous}
"""


class MqttBroker:
    """A real MQTT 3.1.1 broker (amqtt's ``amqtt -c config`` in a subprocess) on a free 127.0.0.1 port;
    :meth:`stop` and :meth:`start` again restart it on the same port (a broker outage). With
    ``anonymous=False`` it refuses every client (none has a password): CONNACK "Not authorized"."""

    def __init__(self, folder: Path, port: int | None = None, anonymous: bool = True) -> None:
        self.folder, self.port = Path(folder), port or free_port()
        self.config = self.folder / "broker.yaml"
        self.config.write_text(_BROKER_CONFIG.format(port=self.port, anonymous=str(anonymous).lower()))
        self.log = self.folder / "broker.log"
        self._proc: subprocess.Popen | None = None
        self.start()

    def url(self, topic: str = "rtseg/frames", qos: int | None = None) -> str:
        return f"mqtt://127.0.0.1:{self.port}/{topic}" + ("" if qos is None else f"?qos={qos}")

    def start(self, timeout: float = 30.0) -> None:
        script = "import sys; from amqtt.scripts.broker_script import main; sys.argv[0] = 'amqtt'; main()"
        with open(self.log, "ab") as log:
            self._proc = subprocess.Popen([sys.executable, "-c", script, "-c", str(self.config)],
                                          stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while not listening(self.port):
            if self._proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the amqtt broker did not start on port {self.port}: "
                                   f"{self.log.read_text(errors='replace')[-2000:]}")
            time.sleep(0.05)

    def stop(self) -> None:
        if self._proc is not None:
            self._proc.kill()
            self._proc.wait(timeout=10)
            self._proc = None
        wait_until(lambda: not listening(self.port), 10, f"port {self.port} to close")

    def __enter__(self) -> MqttBroker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class MqttSubscriber:
    """A paho client subscribed to ``topic`` that keeps every message's JSON payload, in arrival order."""

    def __init__(self, port: int, topic: str = "rtseg/frames", qos: int = 1, timeout: float = 10.0) -> None:
        import paho.mqtt.client as paho
        from paho.mqtt.enums import CallbackAPIVersion

        self.messages: list[dict] = []
        self.qos_seen: list[int] = []
        subscribed = threading.Event()
        self._client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"test-sub-{port}-{id(self)}")
        self._client.on_connect = lambda c, u, f, rc, p: c.subscribe(topic, qos=qos)
        self._client.on_subscribe = lambda c, u, mid, rcs, p: subscribed.set()
        self._client.on_message = self._on_message
        self._client.connect("127.0.0.1", port)
        self._client.loop_start()
        if not subscribed.wait(timeout):
            self.close()
            raise RuntimeError(f"no SUBACK from the broker on port {port}")

    def _on_message(self, client, userdata, message) -> None:  # noqa: ANN001
        self.qos_seen.append(message.qos)
        self.messages.append(json.loads(message.payload))

    def wait_for(self, n: int, timeout: float = 10.0) -> list[dict]:
        wait_until(lambda: len(self.messages) >= n, timeout, f"{n} MQTT messages (got {len(self.messages)})")
        return self.messages[:n]

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()

    def __enter__(self) -> MqttSubscriber:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --- results and videos -----------------------------------------------------------------------------------------


def detections(index: int, classes: Iterable[int] = (), tracks: Iterable[int] | None = None,
               hw: tuple[int, int] = (48, 64), names: tuple[str, ...] = ("person", "cat", "dog")) -> FrameResult:
    """A result with one 8x8 box-local mask per class id in ``classes`` (and those track ids, if given)."""
    classes = list(classes)
    n = len(classes)
    origins = np.array([[4 * i, 2 * i] for i in range(n)], np.int32).reshape(-1, 2)
    boxes = np.array([[x, y, x + 8, y + 8] for x, y in origins], np.float32).reshape(-1, 4)
    masks = InstanceMasks(tuple(np.ones((8, 8), bool) for _ in range(n)), origins)
    return FrameResult(index, hw, boxes, np.full(n, 0.9, np.float32), np.array(classes, np.int32), masks,
                       track_ids=None if tracks is None else np.array(list(tracks), np.int64), names=names)


def frame_of(result: FrameResult, source: str = "clip.mp4", fps: float = 25.0) -> Frame:
    """The frame a result belongs to (black pixels)."""
    return Frame(result.frame_index, np.zeros((*result.image_hw, 3), np.uint8), result.frame_index / fps, source)


def write_blinking_video(path: Path, frames: int = 30, shown: range = range(10, 20),
                         size_wh: tuple[int, int] = (160, 120), fps: float = 15.0) -> Path:
    """A clip (MJPEG in AVI) of a dark textured background with one white square in the frames ``shown``:
    :class:`tests.fakes.BlobBackend` finds a ``blob`` exactly there, so events have known times."""
    w, h = size_wh
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, size_wh)
    background = np.random.default_rng(0).integers(20, 60, (h, w, 3), dtype=np.uint8)
    for i in range(frames):
        image = background.copy()
        if i in shown:
            cv2.rectangle(image, (w // 3, h // 3), (w // 3 + 30, h // 3 + 30), (255, 255, 255), -1)
        writer.write(image)
    writer.release()
    return path
