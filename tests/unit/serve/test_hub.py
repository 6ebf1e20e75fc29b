"""The browser view's hub: only the latest frame is kept, publishing is O(1) and never encodes, a JPEG is made
once per frame and height whatever the number of viewers, live index gaps count as drops, and an /events
subscriber's queue is bounded."""

from __future__ import annotations

import asyncio
import gc
import json
import statistics
import threading
import time
import weakref

import cv2
import numpy as np
import pytest

from rtseg.serve.hub import Hub, safe_tag
from rtseg.types import Frame, FrameResult, InstanceMasks


def frame_and_result(index: int, hw: tuple[int, int] = (48, 64), *, classes: tuple[int, ...] = (0,),
                     source: str = "/home/me/secret/clip.mp4") -> tuple[Frame, np.ndarray, FrameResult]:
    """A frame (decoded now), its 'annotated' image (value = index) and a result with one box per class."""
    image = np.full((*hw, 3), index % 256, np.uint8)
    frame = Frame(index, image, index / 30, source, path="/home/me/secret/frames/0001.jpg")
    frame.timings.capture_ns = time.perf_counter_ns()
    n = len(classes)
    masks = InstanceMasks(tuple(np.ones((4, 4), bool) for _ in range(n)), [[2, 2]] * n)
    result = FrameResult(index, hw, np.array([[2, 2, 6, 6]] * n, np.float32).reshape(-1, 4),
                         np.full(n, 0.9, np.float32), np.array(classes, np.int32), masks, timings=frame.timings)
    return frame, image, result


def publish(channel, index: int, **kwargs) -> np.ndarray:  # noqa: ANN001 - a Channel
    frame, image, result = frame_and_result(index, **kwargs)
    channel.publish(frame, image, result)
    return image


def test_only_the_latest_frame_is_kept() -> None:
    channel = Hub().add("clip")
    refs = [weakref.ref(publish(channel, i)) for i in range(10)]
    gc.collect()
    assert channel.latest().index == 9 and channel.latest().seq == 10
    assert [r() is not None for r in refs] == [False] * 9 + [True]  # earlier frames are not held


def test_publishing_is_cheap_and_encodes_nothing_without_viewers() -> None:
    channel = Hub().add("clip")
    image = np.random.default_rng(0).integers(0, 255, (720, 1280, 3), np.uint8)
    times = []
    for i in range(100):
        frame, _, result = frame_and_result(i)
        t0 = time.perf_counter_ns()
        channel.publish(frame, image, result)
        times.append(time.perf_counter_ns() - t0)
    assert channel.encodes == 0
    assert channel.latest().image is image  # a reference, not a copy
    # a 720p JPEG takes ~10 ms to encode; publishing is a reference swap and a few counters
    assert statistics.median(times) < 1e6, f"median publish {statistics.median(times) / 1e6:.2f} ms"


def test_a_jpeg_is_encoded_once_per_frame_and_height_for_any_number_of_viewers() -> None:
    channel = Hub().add("clip")
    publish(channel, 0, hw=(240, 320))

    async def viewers() -> tuple[list[bytes], list[bytes], bytes]:
        latest = channel.latest()
        full = await asyncio.gather(*(channel.jpeg(latest) for _ in range(8)))
        small = await asyncio.gather(*(channel.jpeg(latest, 120) for _ in range(5)))
        same_as_full = await channel.jpeg(latest, 240)  # no upscaling: its own height is full size
        return full, small, same_as_full

    full, small, same = asyncio.run(viewers())
    assert channel.encodes == 2
    assert len(set(full)) == 1 and len(set(small)) == 1 and same == full[0]
    assert cv2.imdecode(np.frombuffer(full[0], np.uint8), cv2.IMREAD_COLOR).shape == (240, 320, 3)
    assert cv2.imdecode(np.frombuffer(small[0], np.uint8), cv2.IMREAD_COLOR).shape == (120, 160, 3)
    publish(channel, 1, hw=(240, 320))
    asyncio.run(channel.jpeg(channel.latest()))
    assert channel.encodes == 3  # a new frame is a new JPEG


def test_a_waiting_viewer_wakes_when_another_thread_publishes_and_when_the_source_ends() -> None:
    channel = Hub().add("clip")

    async def wait() -> tuple[int | None, object, float]:
        t0 = time.perf_counter()
        threading.Timer(0.1, publish, (channel, 7)).start()
        first = await channel.next_after(0, timeout=5)
        threading.Timer(0.1, channel.end).start()
        ended = await channel.next_after(first.seq, timeout=5)
        return first.index, ended, time.perf_counter() - t0

    index, ended, elapsed = asyncio.run(wait())
    assert index == 7 and ended is None and elapsed < 2


@pytest.mark.parametrize(("live", "dropped"), [(True, 2 + 3), (False, 0)])
def test_index_gaps_of_a_live_source_count_as_dropped(live: bool, dropped: int) -> None:
    channel = Hub().add("cam", live=live)
    for i in (0, 1, 2, 5, 6, 10):
        publish(channel, i)
    assert channel.stats()["dropped"] == dropped


def test_an_events_queue_is_bounded_and_records_are_made_once_only_for_taken_frames() -> None:
    hub = Hub()
    channel = hub.add("clip", names=("person", "cat"))
    for i in range(5):  # nobody subscribed: nothing queued, nothing computed
        publish(channel, i)
    slow, fast = hub.subscribe(maxlen=4), hub.subscribe("clip", maxlen=100)
    other = hub.subscribe("other-source")
    for i in range(5, 15):
        publish(channel, i)
    items, lost = slow.take()
    assert [frame.index for _, frame in items] == [11, 12, 13, 14] and lost == 6 and slow.lost == 6
    assert slow.take() == ([], 0)
    assert other.take() == ([], 0)
    assert hub.records == 0  # queued frames are references: records are made when a subscriber takes them

    async def records() -> list[str]:
        mine = [await hub.record(ch, frame) for ch, frame in items]
        theirs = [await hub.record(ch, frame) for ch, frame in fast.take()[0]]
        return mine + theirs

    lines = asyncio.run(records())
    assert hub.records == 10  # frames 5..14 once each, though frames 11..14 went to two subscribers
    record = json.loads(lines[0])
    assert record["frame"] == 11 and record["detections"][0]["class_name"] == "person"
    assert record["source"] == "clip" and "path" not in record  # the tag, never a path or URL
    assert "secret" not in "".join(lines)
    hub.unsubscribe(slow)
    assert hub.stats()["events"]["lost"] == 6


def test_a_subscriber_that_never_reads_never_blocks_the_publisher() -> None:
    hub = Hub()
    channel = hub.add("clip")
    sub = hub.subscribe(maxlen=2)
    t0 = time.perf_counter()
    for i in range(1000):
        publish(channel, i)
    assert time.perf_counter() - t0 < 2
    items, lost = sub.take()
    assert [frame.index for _, frame in items] == [998, 999] and lost == 998


def test_stats_report_rate_latency_stage_times_classes_and_reconnects() -> None:
    class Camera:
        live, fps, reconnects = True, 30.0, 3

    channel = Hub().add("cam0", live=True, source=Camera(), names=("person", "cat", "dog"))
    for i in range(12):
        frame, image, result = frame_and_result(i, classes=(0, 0, 2) if i == 11 else (1,))
        frame.timings.capture_ns -= 40_000_000  # decoded 40 ms before it is published
        frame.timings.infer_ns = 20_000_000
        channel.publish(frame, image, result)
        frame.timings.encode_ns = 5_000_000  # the pipeline's later stages: folded in with the next frame
        time.sleep(0.01)
    stats = channel.stats()
    assert stats["frames"] == 12 and stats["frame"] == 11 and stats["image_hw"] == [48, 64]
    assert 40 <= stats["latency_ms"] < 60
    assert stats["stages_ms"]["infer"] == pytest.approx(20, abs=0.1)
    assert stats["stages_ms"]["encode"] == pytest.approx(5, abs=0.1)
    assert 20 < stats["fps"] < 110
    assert stats["classes_now"] == {"person": 2, "dog": 1}
    assert stats["classes_seen"] == {"cat": 11, "person": 1, "dog": 1}
    assert stats["reconnects"] == 3 and stats["viewers"] == 0 and not stats["ended"]


def test_semantic_classes_are_reported_by_area() -> None:
    channel = Hub().add("aerial", semantic_names=("background", "road", "water"))
    frame, image, result = frame_and_result(0)
    labels = np.zeros((48, 64), np.uint8)
    labels[:12] = 2
    channel.publish(frame, image, FrameResult.empty(0, (48, 64), semantic=labels))
    stats = channel.stats()
    assert stats["semantic_now"] == {"background": 0.75, "water": 0.25}
    assert set(stats["classes_seen"]) == {"background", "water"}


def test_tags_are_url_safe_and_unique() -> None:
    hub = Hub()
    tags = [hub.add(t).tag for t in ("clip", "clip", "rtsp://user:pw@cam/x", "../../etc", "", "caméra 1")]
    assert tags == ["clip", "clip-2", "rtsp___user_pw_cam_x", "etc", "source", "cam_ra_1"]
    assert safe_tag("a" * 100) == "a" * 40
