"""The browser view of a live run (``rtseg run SRC --serve [HOST:]PORT``): a web server beside the pipeline."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import quote

from rtseg.serve.access import resolve_token
from rtseg.serve.app import build_app
from rtseg.serve.hub import Hub
from rtseg.serve.server import WebServer, parse_address
from rtseg.serve.sink import ServeSink


class LiveView:
    """Serves every source of a run to browsers: a page with each source's live annotated view, its FPS,
    latency and classes; MJPEG streams, snapshots, ``/stats.json`` and ``/events`` (see :mod:`rtseg.serve.app`).

    The socket is bound when the view is made, so a bad address or a port in use fails before any work; serving
    starts with :meth:`start`. Give each source its sink (:meth:`sink`); the pipeline writes into it. Nothing is
    encoded while nobody watches, and a slow viewer never slows the run.

    Args:
        address: ``PORT``, ``HOST:PORT`` or ``[IPv6]:PORT``; the host defaults to 127.0.0.1 (this machine only),
            ``0.0.0.0`` serves the network (a phone); port 0 picks a free port.
        token: required from every client (``?token=``, a Bearer header, or the cookie the page sets); None
            falls back to ``$RTSEG_SERVE_TOKEN``, and no token at all leaves the view open to whoever reaches it.
        certfile, keyfile: serve HTTPS with this certificate.
        param: the option named in errors.

    Raises:
        ConfigError: a bad address, a host not of this machine, or a port in use.

    Example:
        >>> view = LiveView("127.0.0.1:0")          # binds now: a port in use is a ConfigError here
        >>> sink = view.sink("clip", names=("person", "cat"))   # give it to the pipeline with the other sinks
        >>> view.start().url.startswith("http://127.0.0.1:")
        True
        >>> sink.tag, sink.stage, view.stats()["sources"]["clip"]["frames"]
        ('clip', 'serve', 0)
        >>> view.stop()
    """

    def __init__(self, address: str | int = "8080", token: str | None = None, *, certfile: str | None = None,
                 keyfile: str | None = None, param: str = "serve") -> None:
        host, port = parse_address(address, param=param)
        self.token = resolve_token(token)
        self.hub = Hub()
        self.server = WebServer(build_app(self.hub, self.token), host, port, certfile=certfile, keyfile=keyfile,
                                param=param)
        self._started = False

    @property
    def url(self) -> str:
        """The page's address (``http://127.0.0.1:8080/``); without the token."""
        return self.server.url

    @property
    def link(self) -> str:
        """The page's address with ``?token=`` when there is one: a link that opens it (mind who sees it)."""
        return self.url if self.token is None else f"{self.url}?token={quote(self.token, safe='')}"

    @property
    def port(self) -> int:
        return self.server.port

    def start(self) -> LiveView:
        """Serve from now on (returns once connections are accepted)."""
        if not self._started:
            self.server.start()
            self._started = True
        return self

    def sink(self, tag: str, source: Any = None, names: tuple[str, ...] = (),
             semantic_names: tuple[str, ...] = ()) -> ServeSink:
        """The sink of one source (before or after :meth:`start`).

        Args:
            tag: the source's short name in URLs and on the page (a file stem, ``camera0``); reduced to letters,
                digits, ``.``, ``_`` and ``-``, and made unique (``clip-2``). Never a path or URL, which may hold
                credentials.
            source: the source object: its ``live`` (index gaps count as dropped frames) and ``reconnects``.
            names, semantic_names: class names of the instance and semantic models.
        """
        channel = self.hub.add(tag, live=bool(getattr(source, "live", False)), source=source,
                               names=tuple(names), semantic_names=tuple(semantic_names))
        return ServeSink(channel)

    def stats(self) -> dict:
        """What ``/stats.json`` returns (:meth:`rtseg.serve.hub.Hub.stats`)."""
        return self.hub.stats()

    def stop(self, timeout: float = 2.0) -> None:
        """End every stream (viewers see it end, the page says so), then stop serving."""
        self.hub.close()
        deadline = time.monotonic() + min(timeout, 1.0)
        stats = self.hub.stats()
        while (stats["viewers"] or stats["events"]["subscribers"]) and time.monotonic() < deadline:
            time.sleep(0.02)  # the streams send their last bytes
            stats = self.hub.stats()
        self.server.stop(timeout)
        self.hub.shutdown()

    def __enter__(self) -> LiveView:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
