"""Running a Starlette app with uvicorn on a daemon thread, beside the pipeline.

The socket is bound here, before the thread starts, so that a port in use or a host that is not this
machine's is one :class:`~rtseg.errors.ConfigError` line at start-up, not a log line after it. uvicorn's own
logging stays quiet (warnings only, through rtseg's logger); a failing request is its problem, never the
run's.
"""

from __future__ import annotations

import errno
import logging
import socket
import threading
import time
from typing import Any

from rtseg.errors import ConfigError

LOGGER = logging.getLogger(__name__)
DEFAULT_HOST = "127.0.0.1"


def parse_address(text: str | int, *, param: str = "serve") -> tuple[str, int]:
    """``PORT``, ``HOST:PORT`` or ``[IPv6]:PORT`` -> (host, port); the host defaults to 127.0.0.1 (this machine
    only). Port 0 picks a free port.

    Raises:
        ConfigError: not a port, or a port outside 0..65535.
    """
    raw = str(text).strip()
    host, _, port = raw.rpartition(":")
    host = host.strip("[]") or DEFAULT_HOST
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(f"{param}={raw}: expected PORT or HOST:PORT, a port in 0..65535 (e.g. 8080 or "
                          "0.0.0.0:8080)")
    return host, int(port)


def bind(host: str, port: int, *, param: str = "serve") -> socket.socket:
    """A listening TCP socket on (host, port).

    Raises:
        ConfigError: the port is in use, the host is not an address of this machine, or the name does not resolve.
    """
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise ConfigError(f"{param}={host}:{port}: unknown host ({getattr(exc, 'strerror', None) or exc})") from None
    family, _, _, _, address = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
        sock.listen(128)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise ConfigError(f"{param}={host}:{port}: port {port} is in use; pick another (or 0 for any free "
                              "port)") from None
        if exc.errno == errno.EACCES:
            raise ConfigError(f"{param}={host}:{port}: permission denied (ports below 1024 need privileges)") from None
        if exc.errno == errno.EADDRNOTAVAIL:
            raise ConfigError(f"{param}={host}:{port}: {host} is not an address of this machine") from None
        raise ConfigError(f"{param}={host}:{port}: cannot listen: {exc.strerror or exc}") from None
    sock.setblocking(False)
    return sock


class WebServer:
    """An ASGI app served by uvicorn on its own daemon thread.

    Args:
        app: the ASGI application.
        host, port: where to listen (port 0: any free port; :attr:`port` then tells which).
        certfile, keyfile: serve HTTPS with this certificate.
        param: the option named in errors (``serve``).
    """

    def __init__(self, app: Any, host: str = DEFAULT_HOST, port: int = 8080, *, certfile: str | None = None,
                 keyfile: str | None = None, param: str = "serve") -> None:
        self.app, self.host = app, host
        self.certfile, self.keyfile = certfile, keyfile
        self._sock = bind(host, port, param=param)
        self.port = int(self._sock.getsockname()[1])
        self._server: Any = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host = self.host if ":" not in self.host else f"[{self.host}]"
        if host in ("0.0.0.0", "[::]"):
            host = "127.0.0.1" if host == "0.0.0.0" else "[::1]"
        return f"{'https' if self.certfile else 'http'}://{host}:{self.port}/"

    def start(self, timeout: float = 10.0) -> WebServer:
        """Serve from now on; returns once uvicorn accepts connections."""
        import uvicorn

        config = uvicorn.Config(self.app, log_level="warning", access_log=False, lifespan="off",
                                ssl_certfile=self.certfile, ssl_keyfile=self.keyfile, timeout_graceful_shutdown=1,
                                log_config=None)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._serve, name="http", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started and self._thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.01)
        if not self._server.started:
            raise ConfigError(f"serve={self.host}:{self.port}: the web server did not start")
        return self

    def _serve(self) -> None:
        import asyncio

        try:
            asyncio.run(self._server.serve(sockets=[self._sock]))
        except Exception as exc:  # noqa: BLE001 - the run goes on without its view
            LOGGER.error("the web server stopped: %s", exc)

    def stop(self, timeout: float = 3.0) -> None:
        """Close every connection and stop serving (viewers see their streams end)."""
        if self._server is not None:
            self._server.should_exit = True
            self._server.force_exit = True
        if self._thread is not None:
            self._thread.join(timeout)
        self._sock.close()
