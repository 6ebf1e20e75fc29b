"""``rtseg serve --webrtc``: a browser's camera in over WebRTC, the annotated video back, so that the model can
run on a GPU box that is not the laptop with the camera.

The page (``webrtc.html``, served at ``/``) asks for the camera (``getUserMedia``), sends it as a WebRTC video
track with an offer POSTed to ``/offer`` (no trickle ICE: offer and answer carry every candidate) and shows the
video sent back. Each browser connection is a :class:`Peer` (at most ``max_peers``, 503 beyond):

* aiortc, on the web server's event loop, receives and decodes the camera (on its own thread) into a
  :class:`Latest`, a one-frame mailbox whose frame, when not taken yet, the next one replaces;
* one long-lived pipeline run per peer (``model.stream(source)``, :meth:`rtseg.Segmenter.stream`) pulls the
  newest frame through a live :class:`TrackSource` whenever one of ``in_flight`` slots (2, all peers together)
  is free: conversion and letterboxing, inference and post-processing overlap in the pipeline's threads;
* the peer's thread draws each result (:class:`Overlay`: masks, boxes, labels, the HUD) into a second mailbox,
  from which :class:`AnnotatedTrack` hands the newest frame to aiortc's encoder (VP8 or H.264, on an executor
  thread), which frees its slot.

So a slow model skips camera frames, a slow encoder skips annotated ones, and nothing queues. Measured on the
2-core CPU, bundled model, Chromium's fake 640x480 30 FPS camera on the same machine (``/stats.json``'s server
latency: frame decoded -> annotated frame to the encoder): imgsz 320, all 30 FPS back, p50 28-31 ms; imgsz 640,
16 FPS, 137 ms; 2 browsers at 320, 19 FPS each, 70-73 ms. The pipeline per peer beat one thread calling the
model's stages (1 peer: 29 against 18 FPS at the same latency) once its slots were shared by all peers (2 slots
per peer: 176 against 105 ms for 2 peers), and brings semantic and combined models along.

Networking: the browser and the server exchange ICE candidates in the offer and the answer, then send
media to each other over UDP directly. On one machine or a LAN their host candidates (the machines' own
addresses) suffice, so no ICE server is configured by default (none is reachable offline either; aiortc
would otherwise ask Google's STUN server). Across NAT (a browser at home, the server in a cloud) give a STUN
server (``ice_servers=["stun:stun.l.google.com:19302"]``) so both learn their public addresses; behind a
symmetric NAT or a firewall that drops UDP only a TURN relay helps, which this module does not configure.
WebRTC needs a network interface with an address: loopback alone carries no WebRTC (aiortc and Chrome both
skip 127.0.0.1 candidates). Browsers allow ``getUserMedia`` only in a secure context: ``http://localhost``
or ``http://127.0.0.1`` on the same machine, else HTTPS (``WebServer(certfile=..., keyfile=...)``).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import json
import logging
import threading
import time
from collections.abc import Callable, Sequence
from importlib import resources
from typing import Any

import numpy as np
from aiortc import MediaStreamTrack, RTCConfiguration, RTCIceServer, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError
from av import VideoFrame
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from rtseg.serve.access import TokenMiddleware
from rtseg.serve.rtc_media import AnnotatedTrack, Latest, Overlay, StreamingModel, TrackSource

__all__ = ["AnnotatedTrack", "Latest", "OfferError", "Overlay", "TrackSource", "WebRtcService", "read_offer"]

LOGGER = logging.getLogger(__name__)
MAX_OFFER_BYTES = 64 * 1024  # a browser's offer is a few kB
IDLE_S = 30.0  # a peer whose camera sent nothing for this long is closed (a tab closed without a goodbye)


class OfferError(Exception):
    """A request the service refuses: ``status`` (4xx, or 503 when full) and one line for the browser."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class Peer:
    """One browser connection: its peer connection, camera source, model run (a thread of its own) and counts."""

    def __init__(self, peer_id: str, pc: RTCPeerConnection, model: StreamingModel, overlay: Overlay, *,
                 slots: threading.Semaphore | None = None) -> None:
        self.id, self.pc, self.model, self.overlay = peer_id, pc, model, overlay
        self.source = TrackSource(f"webrtc-{peer_id}", slots=slots)
        self.outbox: Latest[tuple[VideoFrame, int]] = Latest()
        self.track = AnnotatedTrack(self.outbox, self._sent)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._work, name=f"webrtc-peer{peer_id}", daemon=True)
        self.pump: asyncio.Task | None = None
        self.closing: asyncio.Future | None = None
        self.on_end: Callable[[], None] | None = None  # the model run ended by itself (it failed)
        self.state, self.error = "new", ""
        self.frames_in = self.frames_out = self.frames_sent = 0
        self.size_wh = (0, 0)
        self.objects: dict[str, int] = {}
        self.latency_ns: collections.deque[int] = collections.deque(maxlen=120)
        self.started_ns = time.perf_counter_ns()

    def _work(self) -> None:
        """The model run: frames from the camera, annotated frames to the outbox, until the source ends."""
        names = list(self.model.names)
        try:
            for frame, result in self.model.stream(self.source, stop=self.stop):
                replaced = self.outbox.replaced
                self.outbox.put((self.overlay(frame, result), self.source.arrived_ns.pop(frame.index, 0)))
                if self.outbox.replaced > replaced:  # the encoder did not take the one before: it left unsent
                    self.source.done()
                self.frames_out += 1
                self.size_wh = (frame.image.shape[1], frame.image.shape[0])
                self.objects = dict(collections.Counter(
                    names[c] if 0 <= c < len(names) else str(c) for c in result.class_ids.tolist()))
        except Exception as exc:  # noqa: BLE001 - one peer's failure closes that peer, never the server
            self.error = next((line for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
            LOGGER.error("peer %s: the model run failed: %s", self.id, self.error)
        finally:
            self.outbox.close()
            if not self.stop.is_set() and self.on_end is not None:
                self.on_end()

    def _sent(self, latency_ns: int | None) -> None:
        self.source.done()
        self.frames_sent += 1
        if latency_ns is not None:
            self.latency_ns.append(latency_ns)

    def stats(self) -> dict[str, Any]:
        """What ``/stats.json`` says of this peer."""
        latency = np.array(list(self.latency_ns), np.float64) / 1e6
        return {"id": self.id, "state": self.state, "frames_in": self.frames_in, "frames_out": self.frames_out,
                "frames_sent": self.frames_sent, "skipped": max(0, self.frames_in - self.frames_out),
                "fps": round(self.overlay.rate(), 2),
                "latency_ms": {k: round(float(np.percentile(latency, q)), 1) if latency.size else 0.0
                               for k, q in (("p50", 50), ("p95", 95))}
                | {"last": round(float(latency[-1]), 1) if latency.size else 0.0},
                "size": list(self.size_wh), "objects": self.objects,
                "seconds": round((time.perf_counter_ns() - self.started_ns) / 1e9, 1), "error": self.error}


def read_offer(content_type: str, body: bytes) -> str:
    """The SDP of an offer request (JSON ``{"sdp": ..., "type": "offer"}``), or :class:`OfferError` saying why not.

    Example:
        >>> read_offer("application/json", b'{"sdp": "v=0 ... m=video ...", "type": "offer"}')
        'v=0 ... m=video ...'
        >>> read_offer("text/plain", b"v=0")
        Traceback (most recent call last):
        rtseg.serve.webrtc.OfferError: offer: expected Content-Type: application/json, got 'text/plain'
    """
    kind = content_type.split(";", 1)[0].strip().lower()
    if kind != "application/json":
        raise OfferError(415, f"offer: expected Content-Type: application/json, got {kind or 'none'!r}")
    if len(body) > MAX_OFFER_BYTES:
        raise OfferError(413, f"offer: {len(body)} bytes, expected at most {MAX_OFFER_BYTES}")
    try:
        offer = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise OfferError(400, "offer: not JSON; expected {\"sdp\": \"...\", \"type\": \"offer\"}") from None
    if not isinstance(offer, dict) or not isinstance(offer.get("sdp"), str) or offer.get("type") != "offer":
        raise OfferError(400, "offer: expected {\"sdp\": \"...\", \"type\": \"offer\"}")
    if "m=video" not in offer["sdp"]:
        raise OfferError(400, "offer: no video in the SDP; the page sends the camera's video track")
    return offer["sdp"]


class WebRtcService:
    """The WebRTC webcam service as a Starlette app (:attr:`app`, with the token check): ``/`` the page,
    ``POST /offer`` a browser's offer -> the answer, ``/stats.json`` per-peer counts.

    Args:
        model: runs every peer's frames (:class:`rtseg.Segmenter`, or anything with ``names`` and ``stream``).
        token: every request must carry it (:class:`~rtseg.serve.access.TokenMiddleware`); None: open.
        ice_servers: STUN URLs for both ends (``"stun:host:port"``); none by default (see the module docstring).
        hud: draw frame index, FPS and object count on the video.
        max_peers: browsers served at once; one more gets 503.
        in_flight: frames in the model at once, all peers together (:class:`TrackSource`'s ``slots``): 2 suits
            ONNX Runtime's two sessions on a CPU and overlaps a GPU's inference with the CPU's pre- and
            post-processing.
        on_peer: called with ``("connected" | "left", peer, reason)`` on the event loop (the CLI prints it).

    Use (``rtseg serve --webrtc`` does this)::

        service = WebRtcService(rtseg.load_model())
        server = WebServer(service.app, "127.0.0.1", 8080).start()   # rtseg.serve.server
        ...                                                          # browsers connect, until Ctrl-C
        service.close()
        server.stop()
    """

    def __init__(self, model: StreamingModel, *, token: str | None = None, ice_servers: Sequence[str] = (),
                 hud: bool = True, max_peers: int = 4, in_flight: int = 2, idle_s: float = IDLE_S,
                 on_peer: Callable[[str, Peer, str], None] | None = None) -> None:
        self.model, self.hud, self.max_peers, self.idle_s = model, hud, int(max_peers), float(idle_s)
        self._slots = threading.Semaphore(in_flight)
        self.ice_servers = list(ice_servers)
        self.on_peer = on_peer
        self.peers: dict[str, Peer] = {}
        self.served = self.frames_served = 0
        self._ids = itertools.count(1)
        self._closing: set[asyncio.Future] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        routes = [Route("/", self._page), Route("/offer", self._offer, methods=["POST"]),
                  Route("/stats.json", self._stats), Route("/favicon.ico", lambda _: Response(status_code=204))]
        self.app = TokenMiddleware(Starlette(routes=routes), token)
        self._page_html = resources.files("rtseg.serve").joinpath("webrtc.html").read_text(encoding="utf-8")

    async def _page(self, request: Request) -> Response:
        config = json.dumps({"iceServers": [{"urls": url} for url in self.ice_servers]}).replace("</", "<\\/")
        return HTMLResponse(self._page_html.replace("__RTSEG_CONFIG__", config), headers={"Cache-Control": "no-store"})

    async def _stats(self, request: Request) -> Response:
        return JSONResponse(self.stats(), headers={"Cache-Control": "no-store"})

    def stats(self) -> dict[str, Any]:
        """``/stats.json``: every connected peer's :meth:`Peer.stats`, and totals."""
        return {"peers": [peer.stats() for peer in list(self.peers.values())], "max_peers": self.max_peers,
                "served": self.served, "classes": list(self.model.names)}

    async def _offer(self, request: Request) -> Response:
        try:
            sdp = read_offer(request.headers.get("content-type", ""), await request.body())
            answer, peer = await self.answer(sdp)
        except OfferError as exc:
            return PlainTextResponse(f"{exc.status}: {exc}\n", status_code=exc.status)
        return JSONResponse({"sdp": answer.sdp, "type": answer.type, "id": peer.id})

    async def answer(self, sdp: str) -> tuple[RTCSessionDescription, Peer]:
        """Accept a browser's offer: a new peer whose model run starts now; its answer (every candidate in it).

        Raises:
            OfferError: 503 with ``max_peers`` connected; 400 for an offer aiortc cannot use (no video, no
                codec in common, malformed SDP).
        """
        self._loop = asyncio.get_running_loop()
        if len(self.peers) >= self.max_peers:
            raise OfferError(503, f"busy: {len(self.peers)} browsers connected, the most this server takes "
                                  f"(--max-peers {self.max_peers}); try again later")
        config = RTCConfiguration(iceServers=[RTCIceServer(urls=url) for url in self.ice_servers])
        peer = Peer(str(next(self._ids)), RTCPeerConnection(config), self.model, Overlay.of(self.model, hud=self.hud),
                    slots=self._slots)
        self.peers[peer.id] = peer  # before any await: concurrent offers count it
        camera: list[MediaStreamTrack] = []

        @peer.pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            if track.kind == "video" and not camera:
                camera.append(track)
                peer.pc.addTrack(peer.track)  # answers on the camera's own transceiver: sendrecv

        @peer.pc.on("connectionstatechange")
        async def on_state() -> None:
            peer.state = peer.pc.connectionState
            if peer.state == "connected" and self.on_peer is not None:
                self.on_peer("connected", peer, "")
            elif peer.state in ("failed", "closed"):
                self._close(peer, "the connection failed" if peer.state == "failed" else "the browser left")

        try:
            await peer.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
            if not camera:
                raise OfferError(400, "offer: no video track to receive; the page sends the camera's")
            await peer.pc.setLocalDescription(await peer.pc.createAnswer())
        except Exception as exc:
            await asyncio.shield(self._close(peer, "", announce=False))
            if isinstance(exc, OfferError):
                raise
            first = next((line for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
            raise OfferError(400, f"offer: not an SDP offer this server can answer ({first[:200]})") from None
        peer.on_end = lambda: self._call_soon(self._close, peer, "the model run ended")
        peer.thread.start()
        peer.pump = asyncio.ensure_future(self._pump(peer, camera[0]))
        return peer.pc.localDescription, peer

    async def _pump(self, peer: Peer, track: MediaStreamTrack) -> None:
        """The camera's decoded frames into the peer's source, until the track ends or stays silent."""
        reason = "the browser left"
        try:
            while True:
                try:
                    frame = await asyncio.wait_for(track.recv(), self.idle_s)
                except asyncio.TimeoutError:
                    reason = f"no video for {self.idle_s:.0f} s"
                    break
                peer.source.push(frame)
                peer.frames_in += 1
        except MediaStreamError:
            pass
        self._close(peer, reason)

    def _close(self, peer: Peer, reason: str, *, announce: bool = True) -> asyncio.Future:
        """Close ``peer`` once (later calls return the same task): its connection, model run and counts."""
        if peer.closing is None:
            self.peers.pop(peer.id, None)
            peer.closing = asyncio.ensure_future(self._shut(peer, reason, announce))
            self._closing.add(peer.closing)
            peer.closing.add_done_callback(self._closing.discard)
        return peer.closing

    async def _shut(self, peer: Peer, reason: str, announce: bool) -> None:
        peer.stop.set()
        peer.source.close()
        if peer.pump is not None:
            peer.pump.cancel()
        await peer.pc.close()
        if peer.thread.is_alive():  # the pipeline winds down within a second; not on the event loop
            await asyncio.get_running_loop().run_in_executor(None, peer.thread.join, 5.0)
        peer.outbox.close()
        peer.source.release()
        if announce:
            self.served += 1
            self.frames_served += peer.frames_sent
            if self.on_peer is not None:
                self.on_peer("left", peer, peer.error or reason)

    async def close_all(self, reason: str = "the server stopped") -> None:
        """Close every peer (their browsers see the video end), and wait for those closing already."""
        for peer in list(self.peers.values()):
            self._close(peer, reason)
        await asyncio.gather(*self._closing, return_exceptions=True)

    def _call_soon(self, *call: Any) -> None:
        """``call`` on the event loop, from another thread; nothing once the loop has closed."""
        with contextlib.suppress(RuntimeError, AttributeError):
            self._loop.call_soon_threadsafe(*call)  # type: ignore[union-attr]

    def close(self, timeout: float = 5.0) -> None:
        """:meth:`close_all` from another thread (the CLI's, at Ctrl-C), waiting up to ``timeout`` seconds."""
        loop = self._loop
        if loop is None or loop.is_closed() or not (self.peers or self._closing):
            return
        try:
            asyncio.run_coroutine_threadsafe(self.close_all(), loop).result(timeout)
        except Exception as exc:  # noqa: BLE001 - stopping goes on: the process is about to end
            LOGGER.warning("closing the WebRTC connections: %s", exc or type(exc).__name__)
