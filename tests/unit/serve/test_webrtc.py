"""The WebRTC webcam service's pieces: the one-frame mailboxes, the camera source the model pulls from, offer
checks, the frame transform, the HTTP routes and the token; and both ends of a real WebRTC connection in this
process (aiortc), a synthetic camera of bright squares in, annotated frames back, with a known-answer model."""

from __future__ import annotations

import asyncio
import doctest
import fractions
import threading
import time

import numpy as np
import pytest

pytest.importorskip("aiortc", reason="needs aiortc (pip install 'rtseg[webrtc]')")

from aiortc import RTCConfiguration, RTCPeerConnection, VideoStreamTrack  # noqa: E402
from av import VideoFrame  # noqa: E402
from starlette.testclient import TestClient  # noqa: E402

import rtseg  # noqa: E402
from rtseg.serve import webrtc  # noqa: E402
from rtseg.serve.webrtc import Latest, OfferError, Overlay, TrackSource, WebRtcService, read_offer  # noqa: E402
from rtseg.types import Frame, FrameResult, InstanceMasks  # noqa: E402
from tests.fakes import BlobBackend  # noqa: E402

HW = (240, 320)
SQUARE = (slice(80, 160), slice(120, 200))  # where the synthetic camera's bright square is (rows, columns)


def test_module_examples_run() -> None:
    finder, runner = doctest.DocTestFinder(), doctest.DocTestRunner()
    for test in finder.find(webrtc):
        runner.run(test)
    assert runner.summarize(verbose=False).failed == 0


# --- the mailboxes ----------------------------------------------------------------------------------------------


def test_latest_keeps_only_the_newest_and_counts_what_it_replaced() -> None:
    box: Latest[int] = Latest()
    for i in range(5):
        box.put(i)
    assert (box.get(), box.replaced, box.puts) == (4, 4, 5)
    assert box.get(timeout=0.05) is None  # taken: empty again


def test_latest_wakes_a_waiting_thread_on_put_and_on_close() -> None:
    box: Latest[str] = Latest()
    got: list = []
    reader = threading.Thread(target=lambda: got.extend([box.get(), box.get()]), daemon=True)
    reader.start()
    time.sleep(0.05)
    box.put("frame")
    time.sleep(0.05)
    box.close()
    reader.join(2)
    assert not reader.is_alive() and got == ["frame", None]
    assert box.put("late") is False


def test_latest_wakes_an_event_loop_task_from_another_thread() -> None:
    async def main() -> list:
        box: Latest[int] = Latest()
        threading.Timer(0.05, box.put, (7,)).start()
        first = await asyncio.wait_for(box.next(), 2)
        threading.Timer(0.05, box.close).start()
        return [first, await asyncio.wait_for(box.next(), 2)]

    assert asyncio.run(main()) == [7, None]


def test_track_source_gives_the_newest_frame_and_only_as_many_as_its_slots() -> None:
    source = TrackSource("cam", slots=threading.Semaphore(2))
    frames = [np.full((4, 4, 3), i, np.uint8) for i in range(4)]
    source.push(frames[0])
    source.push(frames[1])  # replaces frame 0, not read in time
    assert source.read()[0, 0, 0] == 1
    source.push(frames[2])
    assert source.read()[0, 0, 0] == 2
    assert sorted(source.arrived_ns) == [0, 1]
    source.push(frames[3])
    third: list = []
    reader = threading.Thread(target=lambda: third.append(source.read()), daemon=True)
    reader.start()
    time.sleep(0.2)
    assert reader.is_alive(), "a third frame was read with two in flight"
    source.done()  # one of them was sent back
    reader.join(2)
    assert third[0][0, 0, 0] == 3


def test_track_source_ends_when_closed_even_while_waiting() -> None:
    source = TrackSource("cam", slots=threading.Semaphore(1))
    source.push(np.zeros((4, 4, 3), np.uint8))
    source.read()
    waiting = threading.Thread(target=source.read, daemon=True)
    waiting.start()
    source.close()
    waiting.join(2)
    assert not waiting.is_alive() and source.read() is None


def test_peers_share_the_slots_and_an_ended_run_gives_its_slots_back() -> None:
    slots = threading.Semaphore(2)
    a, b = TrackSource("a", slots=slots), TrackSource("b", slots=slots)
    frame = np.zeros((4, 4, 3), np.uint8)
    a.push(frame)
    assert a.read() is not None
    waiting: list = []
    reader = threading.Thread(target=lambda: waiting.append(b.read()), daemon=True)
    reader.start()  # b's camera has sent nothing yet: b waits without a slot, so a can take the other one
    time.sleep(0.1)
    a.push(frame)
    assert a.read() is not None
    b.push(frame)
    time.sleep(0.2)
    assert not waiting, "b read a frame with both slots in a's hands"
    a.done()  # one of a's frames went out: b gets its slot
    reader.join(2)
    assert waiting and waiting[0] is not None
    a.release()  # a's run ended with a frame in flight: its slot goes back
    a.done()  # and a late goodbye for it frees nothing twice
    b.push(frame)
    assert _read_within(b, 1.0) is not None, "a's slot did not come back"
    b.push(frame)
    with pytest.raises(TimeoutError):
        _read_within(b, 0.2)  # more than 2 frames in flight
    b.close()


def _read_within(source: TrackSource, seconds: float) -> np.ndarray | None:
    got: list = []
    reader = threading.Thread(target=lambda: got.append(source.read()), daemon=True)
    reader.start()
    reader.join(seconds)
    if not got:
        raise TimeoutError(f"read() waited over {seconds} s")
    return got[0]


def test_track_source_converts_video_frames_to_bgr() -> None:
    source = TrackSource("cam")
    image = np.zeros((32, 48, 3), np.uint8)
    image[..., 2] = 200  # red in BGR
    source.push(VideoFrame.from_ndarray(image, format="bgr24").reformat(format="yuv420p"))
    out = source.read()
    assert out.shape == (32, 48, 3) and abs(int(out[..., 2].mean()) - 200) < 8 and out[..., 0].mean() < 20


# --- offers -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("content_type", "body", "status", "words"), [
    ("text/plain", b'{"sdp": "m=video", "type": "offer"}', 415, "Content-Type: application/json"),
    ("", b"{}", 415, "got 'none'"),
    ("application/json", b"x" * (webrtc.MAX_OFFER_BYTES + 1), 413, "expected at most"),
    ("application/json", b"{not json", 400, "not JSON"),
    ("application/json", b'["sdp"]', 400, "expected {"),
    ("application/json", b'{"sdp": 3, "type": "offer"}', 400, "expected {"),
    ("application/json", b'{"sdp": "m=video", "type": "answer"}', 400, "expected {"),
    ("application/json", b'{"sdp": "v=0\\r\\nm=audio 9", "type": "offer"}', 400, "no video"),
    ("application/json", b"\xff\xfe", 400, "not JSON"),
])
def test_a_bad_offer_is_refused_with_its_reason(content_type: str, body: bytes, status: int, words: str) -> None:
    with pytest.raises(OfferError) as caught:
        read_offer(content_type, body)
    assert caught.value.status == status and words in str(caught.value)


def test_an_offer_with_a_charset_is_read() -> None:
    assert read_offer("application/json; charset=utf-8", b'{"sdp": "m=video", "type": "offer"}') == "m=video"


# --- the frame transform ----------------------------------------------------------------------------------------


def _result(hw: tuple[int, int] = HW) -> FrameResult:
    mask = np.ones((80, 80), bool)
    return FrameResult(0, hw, np.array([[120, 80, 200, 160]], np.float32), np.array([0.9], np.float32),
                       np.array([0], np.int32), masks=InstanceMasks((mask,), np.array([[120, 80]], np.int32)))


def test_overlay_draws_the_mask_the_box_and_the_hud_and_keeps_the_size() -> None:
    image = np.full((*HW, 3), 128, np.uint8)
    out = Overlay(("blob",), hud=True)(Frame(0, image.copy(), 0.0), _result()).to_ndarray(format="bgr24")
    assert out.shape == (*HW, 3)
    inside = out[100:140, 140:180].reshape(-1, 3).mean(0)
    assert np.abs(inside - 128).max() > 20, "no mask colour where the instance is"
    assert out[200:230, 20:100].std() < 3 and abs(out[200:230, 20:100].mean() - 128) < 3, "drawn outside the box"
    assert out[2:10, 2:40].mean() < 100, "no HUD box top left"


def test_overlay_without_hud_leaves_the_corner_alone() -> None:
    image = np.full((*HW, 3), 128, np.uint8)
    out = Overlay(("blob",), hud=False)(Frame(0, image.copy(), 0.0), _result()).to_ndarray(format="bgr24")
    assert abs(out[2:10, 2:40].mean() - 128) < 3


# --- the HTTP routes --------------------------------------------------------------------------------------------


class _NoModel:
    names = ("person",)

    def stream(self, source, *, stop=None):  # noqa: ANN001, ANN201
        raise AssertionError("no offer should get this far")


def test_page_stats_and_bad_offers_over_http() -> None:
    service = WebRtcService(_NoModel(), ice_servers=["stun:stun.example.org:3478"])
    with TestClient(service.app) as client:
        page = client.get("/")
        assert page.status_code == 200 and "getUserMedia" in page.text
        assert '"urls": "stun:stun.example.org:3478"' in page.text  # the page uses the server's ICE servers
        assert client.get("/stats.json").json() == {"peers": [], "max_peers": 4, "served": 0, "classes": ["person"]}
        for headers, body, status in [({"content-type": "text/plain"}, "v=0", 415),
                                      ({"content-type": "application/json"}, "{", 400),
                                      ({"content-type": "application/json"},
                                       '{"sdp": "v=0\\r\\nm=video garbage", "type": "offer"}', 400)]:
            reply = client.post("/offer", content=body, headers=headers)
            assert reply.status_code == status and reply.text.count("\n") == 1, reply.text
            assert reply.text.startswith(f"{status}: offer: ")
        assert client.get("/offer").status_code == 405
    assert service.peers == {}  # the malformed offer's peer connection was closed


def test_the_token_guards_every_route() -> None:
    service = WebRtcService(_NoModel(), token="s3cret")
    with TestClient(service.app) as client:
        assert client.get("/").status_code == 401
        assert client.post("/offer", json={"sdp": "m=video", "type": "offer"}).status_code == 401
        assert client.get("/stats.json").status_code == 401
        assert client.get("/?token=s3cret").status_code == 200
        client.cookies.set("rtseg_token", "s3cret")  # what the page sets from ?token=
        assert client.get("/stats.json").status_code == 200


# --- both ends in this process ----------------------------------------------------------------------------------


def _has_network_interface() -> bool:
    from aioice.ice import get_host_addresses

    return bool(get_host_addresses(use_ipv4=True, use_ipv6=True))


class SquareCamera(VideoStreamTrack):
    """A 30 FPS camera: a bright square on a mid-grey textured background."""

    def __init__(self) -> None:
        super().__init__()
        rng = np.random.default_rng(0)
        self.image = rng.integers(100, 140, (*HW, 3), dtype=np.uint8)
        self.image[SQUARE] = 250
        self.k = 0

    async def recv(self) -> VideoFrame:
        await asyncio.sleep(1 / 30)
        frame = VideoFrame.from_ndarray(self.image, format="bgr24")
        frame.pts, frame.time_base = self.k * 3000, fractions.Fraction(1, 90_000)
        self.k += 1
        return frame


async def _connect(service: WebRtcService, received: list) -> RTCPeerConnection:
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    pc.addTransceiver(SquareCamera(), direction="sendrecv")

    @pc.on("track")
    def on_track(track) -> None:  # noqa: ANN001
        async def drain() -> None:
            while True:
                try:
                    received.append((await track.recv()).to_ndarray(format="bgr24"))
                except Exception:  # noqa: BLE001 - the track ended
                    return

        asyncio.ensure_future(drain())

    await pc.setLocalDescription(await pc.createOffer())
    answer, _ = await service.answer(pc.localDescription.sdp)
    await pc.setRemoteDescription(answer)
    return pc


@pytest.mark.skipif(not _has_network_interface(), reason="WebRTC needs a network interface with an address "
                    "(aiortc skips loopback)")
def test_annotated_frames_come_back_over_a_real_webrtc_connection() -> None:
    """A synthetic camera in, through aiortc both ways; the blob model finds the square, so the frames that come
    back carry its mask colour there and the HUD top left; a second browser beyond max_peers gets 503."""
    seg = rtseg.load_model(BlobBackend())
    events: list[tuple[str, str]] = []
    service = WebRtcService(seg, max_peers=1, on_peer=lambda event, peer, reason: events.append((event, reason)))

    async def main() -> tuple[list, dict, int]:
        received: list = []
        pc = await _connect(service, received)
        deadline = time.monotonic() + 30
        while len(received) < 15 and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        with pytest.raises(OfferError) as busy:
            await _connect(service, [])
        stats = service.stats()
        await pc.close()
        deadline = time.monotonic() + 10
        while service.peers and time.monotonic() < deadline:  # the server notices the browser left
            await asyncio.sleep(0.1)
        await service.close_all()
        return received, stats, busy.value.status

    received, stats, busy = asyncio.run(main())
    assert len(received) >= 15, f"only {len(received)} frames came back"
    frame = received[-1]
    assert frame.shape == (*HW, 3)
    inside = frame[100:140, 140:180].reshape(-1, 3).mean(0)
    assert np.abs(inside - 250).max() > 25, f"no mask colour on the square: {inside}"
    hud = frame[2:12, 2:60].max(axis=2)  # the background is 100..140: the HUD's box is darker, its text brighter
    assert (hud < 80).mean() > 0.3 and (hud > 180).mean() > 0.03, "no HUD top left"
    [peer] = stats["peers"]
    assert peer["frames_out"] >= 15 and peer["objects"] == {"blob": 1} and peer["size"] == [HW[1], HW[0]]
    assert 0 < peer["latency_ms"]["p50"] < 2000 and peer["fps"] > 0
    assert busy == 503
    assert service.peers == {} and service.served == 1 and events[0] == ("connected", "")
    assert events[-1][0] == "left"
    assert not [t for t in threading.enumerate() if t.name.startswith(("webrtc-peer", "rtseg-"))]


class _FailingModel:
    names = ("blob",)

    def stream(self, source, *, stop=None):  # noqa: ANN001, ANN201
        source.read()  # the first frame arrives, then the model breaks
        raise RuntimeError("the model broke\nits traceback")
        yield  # a generator, as Segmenter.stream


@pytest.mark.skipif(not _has_network_interface(), reason="WebRTC needs a network interface with an address "
                    "(aiortc skips loopback)")
def test_a_failing_model_run_closes_its_peer_and_says_why() -> None:
    events: list[tuple[str, str]] = []
    service = WebRtcService(_FailingModel(), on_peer=lambda event, peer, reason: events.append((event, reason)))

    async def main() -> bool:
        pc = await _connect(service, [])
        deadline = time.monotonic() + 20
        while (service.peers or not events or events[-1][0] != "left") and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        closed_by_itself = not service.peers  # before the browser leaves
        await pc.close()
        await service.close_all()
        return closed_by_itself

    assert asyncio.run(main()), "the peer stayed open after its model run failed"
    assert events and events[-1] == ("left", "the model broke") and service.peers == {}
