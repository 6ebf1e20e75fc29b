"""The web app of the browser view (``rtseg run SRC --serve PORT``): the page, MJPEG streams, snapshots,
statistics and events of a :class:`~rtseg.serve.hub.Hub`.

======================  =========================================================================================
``GET /``               the page: every source's live view, FPS, latency, classes, a snapshot button
``/stream/<tag>.mjpg``  ``multipart/x-mixed-replace`` MJPEG of the newest annotated frames; ``?fps=`` caps the rate
                        (0 < fps <= 120; default 30), ``?height=`` scales down (16..4320 pixels; never up).
                        Each part carries ``X-Frame-Index``, ``X-Capture-Ns`` (the server's ``perf_counter_ns``
                        at decode), ``X-Age-Ms`` (decode to sent) and ``X-Timestamp`` (seconds into the source)
``/frame/<tag>.jpg``    the latest annotated frame (``?height=`` too); 503 with ``Retry-After`` before the first
``/stats.json``         :meth:`Hub.stats`: per source FPS, latency, stage times, drops, reconnects, viewers, classes
``/events``             Server-Sent Events: each frame's JSON Lines record (``?source=<tag>`` for one source);
                        ``event: lost`` says how many records a slow client lost, ``event: end`` ends the run
======================  =========================================================================================

Every error is one line of text: an unknown source or page 404, a bad ``?fps=`` / ``?height=`` 400, a missing
token 401 (:class:`~rtseg.serve.access.TokenMiddleware`). A failing request never reaches the run, and a client
that goes away ends its stream quietly.

A stream sends its next part only once the previous one has left this machine (the connection's send queue
is empty), and then the newest frame: a slow client or network gets fewer frames, never older ones.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import math
import struct
import sys
import time
from collections.abc import Awaitable, Callable
from functools import lru_cache
from importlib.resources import files
from typing import Any

import anyio
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from rtseg.serve.access import COOKIE, TokenMiddleware
from rtseg.serve.hub import Channel, Hub, Published, Subscriber

LOGGER = logging.getLogger(__name__)
BOUNDARY = "rtsegframe"
MAX_FPS = 120.0
# parts per second a stream sends unless ?fps= says otherwise: what a screen shows of a camera; a run going
# faster (a file, a fast GPU) would otherwise JPEG-encode every frame for nothing (measured: 5 viewers at
# 720p cost 17% of a 98 FPS run's FPS encoding each frame)
DEFAULT_FPS = 30.0
HEIGHTS = (16, 4320)
KEEPALIVE_S = 15.0  # an idle event stream sends a comment this often, so proxies keep it open
TRANSPORT = "rtseg.transport"  # scope key: the connection's asyncio transport (uvicorn), to see its send queue
SIOCOUTQNSD = 0x894B  # linux/sockios.h: bytes in a TCP socket's send queue not yet sent
NO_STORE = {"Cache-Control": "no-store"}


def build_app(hub: Hub, token: str | None = None) -> ASGIApp:
    """The ASGI app serving ``hub``; every route asks for ``token`` when it is not None."""
    routes = _Routes(hub, token)
    app = Starlette(routes=[Route("/", routes.index), Route("/stats.json", routes.stats),
                            Route("/events", routes.events), Route("/stream/{name}", routes.stream),
                            Route("/frame/{name}", routes.frame)],
                    exception_handlers={HTTPException: _http_error, Exception: _server_error})
    return _Guard(TokenMiddleware(app, token))


@lru_cache(maxsize=1)
def page() -> str:
    """The index page (``page.html``: plain HTML and JavaScript, nothing from outside)."""
    return files("rtseg.serve").joinpath("page.html").read_text(encoding="utf-8")


def text(status: int, message: str, headers: dict[str, str] | None = None) -> PlainTextResponse:
    """A one-line plain-text answer: ``404: no source 'x'``."""
    return PlainTextResponse(f"{status}: {message}\n", status_code=status, headers={**NO_STORE, **(headers or {})})


class BadQuery(ValueError):
    """A query parameter out of its range (a 400)."""


def number(request: Request, name: str, *, whole: bool, low: float, high: float,
           low_open: bool = False) -> float | None:
    """The query parameter ``name`` as a number in ``low..high`` (``(low, high]`` with ``low_open``), or None
    when absent.

    Raises:
        BadQuery: not a (whole) number, not finite, or out of range.
    """
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return None
    span = f"{'(' if low_open else ''}{low:g}{', ' if low_open else '..'}{high:g}{']' if low_open else ''}"
    what = f"a whole number in {span}" if whole else f"a number in {span}"
    try:
        value = int(raw) if whole else float(raw)
    except ValueError:
        raise BadQuery(f"{name}={_show(raw)}: expected {what}") from None
    if not math.isfinite(value) or value > high or value < low or (low_open and value == low):
        raise BadQuery(f"{name}={_show(raw)}: expected {what}")
    return value


def _show(raw: str) -> str:
    """A client's text, quoted on one line and short."""
    return repr(raw[:40] + ("..." if len(raw) > 40 else ""))


class _Routes:
    def __init__(self, hub: Hub, token: str | None) -> None:
        self.hub, self.token = hub, token

    async def index(self, request: Request) -> Response:
        response = HTMLResponse(page(), headers={**NO_STORE, "Referrer-Policy": "no-referrer",
                                                 "X-Content-Type-Options": "nosniff"})
        given = request.query_params.get("token", "")
        if self.token is not None and given and hmac.compare_digest(given.encode(), self.token.encode()):
            # the page's own requests (img, fetch) then carry it without repeating it in every URL
            response.set_cookie(COOKIE, given, httponly=True, samesite="strict", path="/",
                                secure=request.url.scheme == "https")
        return response

    async def stats(self, request: Request) -> Response:
        return JSONResponse(self.hub.stats(), headers=NO_STORE)

    def _channel(self, request: Request, suffix: str) -> Channel | Response:
        name = request.path_params["name"]
        tag = name[: -len(suffix)] if name.endswith(suffix) else None
        channel = self.hub.channel(tag) if tag else None
        if channel is None:
            known = ", ".join(ch.tag for ch in self.hub.channels()) or "none yet"
            return text(404, f"no source {_show(name)}; sources: {known} (as /stream/<source>.mjpg, "
                             "/frame/<source>.jpg)")
        return channel

    async def stream(self, request: Request) -> Any:
        channel = self._channel(request, ".mjpg")
        if isinstance(channel, Response):
            return channel
        try:
            fps = number(request, "fps", whole=False, low=0, high=MAX_FPS, low_open=True)
            height = number(request, "height", whole=True, low=HEIGHTS[0], high=HEIGHTS[1])
        except BadQuery as exc:
            return text(400, str(exc))
        if request.method == "HEAD":  # the headers alone, not a stream with nothing in it
            return Response(media_type=f"multipart/x-mixed-replace; boundary={BOUNDARY}", headers=NO_STORE)
        return MJPEGStream(channel, max_fps=fps or DEFAULT_FPS, height=int(height or 0))

    async def frame(self, request: Request) -> Response:
        channel = self._channel(request, ".jpg")
        if isinstance(channel, Response):
            return channel
        try:
            height = number(request, "height", whole=True, low=HEIGHTS[0], high=HEIGHTS[1])
        except BadQuery as exc:
            return text(400, str(exc))
        latest = channel.latest()
        if latest is None:
            return text(503, f"no frame from {channel.tag} yet; try again in a moment", {"Retry-After": "1"})
        jpeg = await channel.jpeg(latest, int(height or 0))
        return Response(jpeg, media_type="image/jpeg", headers={
            **NO_STORE, "X-Frame-Index": str(latest.index),
            "Content-Disposition": f'inline; filename="{channel.tag}_{latest.index:06d}.jpg"'})

    async def events(self, request: Request) -> Any:
        tag = request.query_params.get("source") or None
        channel = self.hub.channel(tag) if tag else None
        if tag and channel is None:
            known = ", ".join(ch.tag for ch in self.hub.channels()) or "none yet"
            return text(404, f"no source {_show(tag)}; sources: {known}")
        if self.hub.closed or (channel is not None and channel.ended):
            return Response(status_code=204)  # EventSource does not reconnect after a 204
        if request.method == "HEAD":
            return Response(media_type="text/event-stream", headers=NO_STORE)
        return EventStream(self.hub, channel)


class MJPEGStream:
    """An ASGI response: the newest frames of a channel, one part at a time, while the client reads.

    Args:
        channel: the source.
        max_fps: at most this many parts per second (None: every new frame).
        height: scale frames down to this height (0: full size).
    """

    def __init__(self, channel: Channel, *, max_fps: float | None = None, height: int = 0) -> None:
        self.channel, self.height = channel, height
        self.period_ns = int(1e9 / max_fps) if max_fps else 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.channel.viewers += 1
        try:
            await send({"type": "http.response.start", "status": 200, "headers": _headers(
                f"multipart/x-mixed-replace; boundary={BOUNDARY}")})
            await while_connected(receive, lambda: self._parts(send, scope.get(TRANSPORT)))
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            self.channel.viewers -= 1

    async def _parts(self, send: Send, transport: Any) -> None:
        seq, sent_ns = 0, 0
        opening = f"--{BOUNDARY}\r\n".encode()
        while True:
            if self.period_ns:
                wait_ns = sent_ns + self.period_ns - time.perf_counter_ns()
                if wait_ns > 0:
                    await asyncio.sleep(wait_ns / 1e9)
            frame = await self.channel.next_after(seq)
            if frame is None:  # the source ended
                return
            jpeg = await self.channel.jpeg(frame, self.height)
            sent_ns = time.perf_counter_ns()
            # the boundary right after each JPEG: a browser shows a part once it sees the next boundary
            await send({"type": "http.response.body", "more_body": True,
                        "body": opening + _part_head(frame, len(jpeg), sent_ns) + jpeg + b"\r\n--" +
                        BOUNDARY.encode() + b"\r\n"})
            opening, seq = b"", frame.seq
            await drained(transport)


def _part_head(frame: Published, size: int, now_ns: int) -> bytes:
    return (f"Content-Type: image/jpeg\r\nContent-Length: {size}\r\nX-Frame-Index: {frame.index}\r\n"
            f"X-Capture-Ns: {frame.capture_ns}\r\nX-Age-Ms: {(now_ns - frame.capture_ns) / 1e6:.1f}\r\n"
            f"X-Timestamp: {frame.result.timestamp_s:.3f}\r\n\r\n").encode()


class EventStream:
    """An ASGI response: Server-Sent Events carrying each frame's JSON Lines record, from one channel or all.

    The records are computed only for this client's frames, on the hub's pool; the client's queue is
    bounded (:class:`~rtseg.serve.hub.Subscriber`): when it falls behind, its oldest records are dropped and
    an ``event: lost`` with their number is sent instead.
    """

    def __init__(self, hub: Hub, channel: Channel | None) -> None:
        self.hub, self.channel = hub, channel

    def _over(self) -> bool:
        return self.hub.closed or (self.channel is not None and self.channel.ended)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        sub = self.hub.subscribe(None if self.channel is None else self.channel.tag)
        try:
            await send({"type": "http.response.start", "status": 200, "headers": _headers("text/event-stream")})
            await send({"type": "http.response.body", "body": b"retry: 2000\n\n", "more_body": True})
            await while_connected(receive, lambda: self._events(send, sub))
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            self.hub.unsubscribe(sub)

    async def _events(self, send: Send, sub: Subscriber) -> None:
        while True:
            await sub.signal.wait(lambda: sub.pending() or self._over(), KEEPALIVE_S)
            over = self._over()
            items, lost = sub.take()
            chunks = [f"event: lost\ndata: {json.dumps({'lost': lost})}\n\n"] if lost else []
            for channel, frame in items:
                record = await self.hub.record(channel, frame)
                chunks.append(f"id: {channel.tag}:{frame.index}\ndata: {record}\n\n")
            if over:
                chunks.append("event: end\ndata: {}\n\n")
            elif not chunks:
                chunks.append(": keep-alive\n\n")
            await send({"type": "http.response.body", "body": "".join(chunks).encode(), "more_body": True})
            if over:
                return


def _headers(content_type: str) -> list[tuple[bytes, bytes]]:
    return [(b"content-type", content_type.encode()), (b"cache-control", b"no-store, no-cache"),
            (b"pragma", b"no-cache"), (b"x-accel-buffering", b"no"), (b"x-content-type-options", b"nosniff")]


async def while_connected(receive: Receive, work: Callable[[], Awaitable[None]]) -> None:
    """Run ``work()`` until it returns or the client disconnects (then it is cancelled)."""
    async with anyio.create_task_group() as group:

        async def watch() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass
            group.cancel_scope.cancel()

        group.start_soon(watch)
        await work()
        group.cancel_scope.cancel()


async def drained(transport: Any) -> None:
    """Wait until what was written to ``transport`` has left this machine: the event loop's buffer and the
    kernel's queue of unsent bytes are empty (Linux; elsewhere the loop's buffer only). Sending the next part
    only then keeps at most one part on its way to a slow client, so it never falls behind."""
    if transport is None:
        return
    sock = transport.get_extra_info("socket")
    delay = 0.002
    while not transport.is_closing() and (transport.get_write_buffer_size() or unsent_bytes(sock)):
        await asyncio.sleep(delay)
        delay = min(2 * delay, 0.05)


def unsent_bytes(sock: Any) -> int:
    """Bytes a TCP socket holds that it has not sent yet (Linux ``SIOCOUTQNSD``; 0 where unknown)."""
    if sock is None or not sys.platform.startswith("linux"):
        return 0
    import fcntl

    try:
        return int(struct.unpack("i", fcntl.ioctl(sock.fileno(), SIOCOUTQNSD, b"\0\0\0\0"))[0])
    except (OSError, ValueError):
        return 0


class _Guard:
    """The outermost layer: hands the connection's transport to the streams, and keeps what goes wrong in a
    request out of the run (a client gone is no error; anything else is one warning line)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        transport = getattr(getattr(send, "__self__", None), "transport", None)  # uvicorn's connection
        if hasattr(transport, "get_write_buffer_size"):
            scope[TRANSPORT] = transport
        state = {"started": False, "done": False}

        async def tracked(message: Message) -> None:
            state["started"] = True
            state["done"] = message["type"] == "http.response.body" and not message.get("more_body", False)
            await send(message)

        try:
            await self.app(scope, receive, tracked)
        except asyncio.CancelledError:  # the server stops with this stream still open: end it properly
            if state["started"] and not state["done"]:
                with contextlib.suppress(Exception, asyncio.CancelledError, asyncio.TimeoutError):
                    await asyncio.wait_for(send({"type": "http.response.body", "body": b"", "more_body": False}),
                                           0.2)
            return
        except Exception as exc:  # noqa: BLE001 - a request's failure is never the run's
            if _client_gone(exc):
                return
            LOGGER.warning("browser view: %s %s failed: %s", scope.get("method", ""), scope.get("path", ""),
                           str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
            LOGGER.debug("browser view: request failed", exc_info=exc)


def _client_gone(exc: BaseException) -> bool:
    if isinstance(exc, (ConnectionError, anyio.BrokenResourceError, anyio.ClosedResourceError)):
        return True
    if type(exc).__name__ == "ClientDisconnect":
        return True
    group = getattr(exc, "exceptions", None)
    return bool(group) and all(_client_gone(e) for e in group)


async def _http_error(request: Request, exc: Exception) -> Response:
    status = getattr(exc, "status_code", 500)
    message = {404: "not found; the sources are listed at /", 405: "method not allowed"}.get(status, "bad request")
    return text(status, message)


async def _server_error(request: Request, exc: Exception) -> Response:
    with contextlib.suppress(Exception):
        LOGGER.debug("browser view: %s failed", request.url.path, exc_info=exc)
    return text(500, "internal error (the run goes on)")
