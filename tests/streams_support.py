"""Real live streams on 127.0.0.1 that a test can kill, restart and freeze: FFmpeg (the imageio-ffmpeg binary)
plays a clip in a loop, in real time, as MPEG-TS over TCP, HTTP or UDP, as a camera or an encoder on the network
would. A helper module, not a test module: tests import from here.

Example:
    >>> with StreamServer(clip, "tcp") as server:       # clip: a short video file
    ...     source = open_source(server.url)             # rtseg reads it
    ...     server.kill(); server.start()                # an outage: the server goes and comes back
    ...     server.freeze(); server.thaw()               # a stall: connected, no byte for a while

* ``tcp``: ``tcp://127.0.0.1:P?listen=1`` on the server side; it serves one client and ends when that client
  leaves (a reconnecting reader needs it restarted, as after a crash).
* ``http``: FFmpeg's own HTTP server, ``-listen 1 http://127.0.0.1:P/live.ts``: one client, no length, a ``.ts``
  name that looks like a file.
* ``udp``: FFmpeg sends to ``udp://127.0.0.1:P``, where the reader listens; killing it is a sender that vanished
  (no error reaches the reader: it only stops hearing anything).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

from tests.support import free_port

PROTOCOLS = ("tcp", "http", "udp")


def ffmpeg_exe() -> str:
    """The FFmpeg binary of the imageio-ffmpeg wheel (pytest skips the test when it is missing)."""
    import pytest

    module = pytest.importorskip("imageio_ffmpeg", reason="needs imageio-ffmpeg for a loopback stream")
    return module.get_ffmpeg_exe()


def free_udp_port() -> int:
    """A UDP port on 127.0.0.1 that nothing is bound to right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class StreamServer:
    """One FFmpeg process serving ``clip`` in a loop, in real time (``-re``), on a fixed port of 127.0.0.1.

    Args:
        clip: a video file FFmpeg can read.
        protocol: ``tcp``, ``http`` or ``udp`` (module docstring).
        port: the port; default: a free one. It stays the same across :meth:`kill` and :meth:`start`.

    Attributes:
        url: what a reader opens. started_at: :func:`time.monotonic` when the server last began to serve
            (listening, for TCP and HTTP; the process started, for UDP).
    """

    def __init__(self, clip: Path, protocol: str = "tcp", port: int | None = None) -> None:
        if protocol not in PROTOCOLS:
            raise ValueError(f"protocol={protocol!r}: expected one of {PROTOCOLS}")
        self.clip, self.protocol = Path(clip), protocol
        self.port = port or (free_udp_port() if protocol == "udp" else free_port())
        host = f"127.0.0.1:{self.port}"
        self.url = {"tcp": f"tcp://{host}", "http": f"http://{host}/live.ts", "udp": f"udp://{host}"}[protocol]
        self.process: subprocess.Popen | None = None
        self.started_at = 0.0
        self.frozen = False

    def _command(self) -> list[str]:
        output = {"tcp": ["-f", "mpegts", f"{self.url}?listen=1"],
                  "http": ["-f", "mpegts", "-listen", "1", self.url],
                  "udp": ["-f", "mpegts", f"{self.url}?pkt_size=1316"]}[self.protocol]
        # mpeg4 at q 5, a keyframe every 10 frames: cheap to encode on a loaded machine, quick to join mid-stream
        return [ffmpeg_exe(), "-nostdin", "-loglevel", "error", "-re", "-stream_loop", "-1", "-i", str(self.clip),
                "-c:v", "mpeg4", "-q:v", "5", "-g", "10", *output]

    def start(self, wait: bool = True) -> StreamServer:
        """Start serving (again, after :meth:`kill`); with ``wait``, return once it listens (TCP, HTTP)."""
        if self.running:
            raise RuntimeError(f"{self.url}: the server is already running")
        self.process = subprocess.Popen(self._command(), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL)
        self.frozen = False
        if wait and self.protocol != "udp":
            self._wait_up()
        self.started_at = time.monotonic()
        return self

    def _wait_up(self, timeout: float = 20) -> None:
        # listening, or already serving: a reconnecting reader may take the one connection within milliseconds
        assert self.process is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.process.poll() is None:
            if _tcp_states(self.port) & {"0A", "01"}:
                return
            time.sleep(0.005)
        raise RuntimeError(f"the FFmpeg stream server did not start serving on port {self.port} (exit "
                           f"{self.process.poll()})")

    @property
    def running(self) -> bool:
        """The FFmpeg process is alive (frozen or not)."""
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """End the server at once (SIGKILL, which ends a frozen one too), as a crash or a pulled cable would."""
        if self.process is not None:
            if self.process.poll() is None:
                self.process.kill()
            self.process.wait(timeout=10)
        self.frozen = False

    def restart(self, down_s: float = 0.0) -> None:
        """:meth:`kill`, stay down ``down_s`` seconds, :meth:`start`."""
        self.kill()
        time.sleep(down_s)
        self.start()

    def freeze(self) -> None:
        """SIGSTOP: the connection stays open but no byte arrives any more (a hung encoder or camera)."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)
        self.frozen = True

    def thaw(self) -> None:
        """SIGCONT after :meth:`freeze`."""
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)
        self.frozen = False

    def wait_served(self, timeout: float = 20) -> bool:
        """TCP and HTTP: wait until the server has a client (it stopped listening, or ended); True if so."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.running or "0A" not in _tcp_states(self.port):
                return True
            time.sleep(0.05)
        return False

    def __enter__(self) -> StreamServer:
        return self.start() if not self.running else self

    def __exit__(self, *exc: object) -> None:
        self.kill()


def _tcp_states(port: int) -> set[str]:
    """The states (hex, as /proc/net/tcp writes them: 0A listening, 01 established) of the sockets whose local
    port is ``port``. Read from /proc: a probing connection would be the server's one client."""
    states = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        if not os.path.exists(table):
            continue
        with open(table) as f:
            next(f)
            for line in f:
                fields = line.split()
                if int(fields[1].rsplit(":", 1)[1], 16) == port:
                    states.add(fields[3])
    return states
