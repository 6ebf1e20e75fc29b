"""Events out of a real run: the threaded pipeline reads a real video and sends its events to a real webhook
receiver and a real MQTT broker (subscribed to by a real client), on 127.0.0.1.

The detector is :class:`tests.fakes.BlobBackend` (it finds the white square that
:func:`tests.events_support.write_blinking_video` shows in frames 10-19, so each event's frame is known), and
once the bundled person/cat/dog model on a clip of a real photo."""

from __future__ import annotations

import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from pycocotools import mask as mask_utils

import rtseg
from rtseg.models.yolo_seg import YoloSegModel
from rtseg.pipeline.core import Pipeline
from rtseg.pipeline.streams import Stream
from rtseg.sinks.events import EventSink, open_event_outputs
from rtseg.sources.base import open_source
from rtseg.tracking import Tracker
from tests.events_support import MqttBroker, MqttSubscriber, WebhookServer, wait_until, write_blinking_video
from tests.fakes import BlobBackend


@pytest.fixture(scope="module")
def broker(tmp_path_factory):  # noqa: ANN201 - yields a running MqttBroker
    with MqttBroker(tmp_path_factory.mktemp("broker")) as running:
        yield running


@pytest.fixture
def webhook_server():  # noqa: ANN201 - yields a running WebhookServer
    with WebhookServer() as server:
        yield server


def blob_model() -> YoloSegModel:
    return YoloSegModel(BlobBackend(), conf=0.25)


def close_all(outputs: list) -> list[dict]:
    for output in outputs:
        output.close(timeout=5)
    return [output.stats() for output in outputs]


def test_on_change_events_of_a_run_reach_a_webhook_and_an_mqtt_topic(tmp_path, broker, webhook_server) -> None:
    video = write_blinking_video(tmp_path / "blink.avi", frames=30, shown=range(10, 20))
    with MqttSubscriber(broker.port, "rtseg/events") as subscriber:
        outputs = open_event_outputs(webhook=webhook_server.url, mqtt=broker.url("rtseg/events", qos=1))
        sink = EventSink(outputs, names=("blob",), on_change=True, tag="blink")
        summary = Pipeline(open_source(str(video)), blob_model(), [sink]).run()
        stats = close_all(outputs)
        messages = subscriber.wait_for(2)
    assert summary.frames == 30
    records = webhook_server.wait_for(2)
    assert len(webhook_server.records) == 2 and messages == records  # the same records on both
    appeared, left = records
    assert (appeared["frame"], appeared["source"]) == (10, "blink")
    assert appeared["change"] == {"appeared": {"classes": ["blob"]}, "left": {"classes": []}}
    assert appeared["timestamp_s"] == pytest.approx(10 / 15, abs=1e-3)
    (det,) = appeared["detections"]
    assert det["class_name"] == "blob" and "mask" not in det
    x1, y1, x2, y2 = det["box_xyxy"]  # the square drawn at (53, 40)-(83, 70)
    assert abs(x1 - 53) <= 3 and abs(y1 - 40) <= 3 and abs(x2 - 84) <= 3 and abs(y2 - 71) <= 3
    assert (left["frame"], left["detections"]) == (20, [])
    assert left["change"] == {"appeared": {"classes": []}, "left": {"classes": ["blob"]}}
    assert stats == [{"sent": 2, "dropped": 0, "failed": 0, "retries": 0, "queued": 0}] * 2


def test_several_sources_share_the_outputs_each_with_its_own_filter(tmp_path, webhook_server) -> None:
    a = write_blinking_video(tmp_path / "a.avi", frames=20, shown=range(5, 12))
    b = write_blinking_video(tmp_path / "b.avi", frames=20, shown=range(0, 0))  # never a blob
    outputs = open_event_outputs(webhook=webhook_server.url)
    streams = [Stream(open_source(str(video)), [EventSink(outputs, names=("blob",), every=5, on_change=True, tag=tag)])
               for video, tag in ((a, "a"), (b, "b"))]
    summary = Pipeline.multi(streams, blob_model()).run()
    close_all(outputs)
    assert summary.frames == 40
    sent = {tag: [(r["frame"], "change" in r) for r in webhook_server.records if r["source"] == tag] for tag in "ab"}
    # a: heartbeats at 0 and 17 (5 quiet frames after the last record), changes at 5 and 12
    assert sent["a"] == [(0, False), (5, True), (10, False), (12, True), (17, False)]
    assert sent["b"] == [(0, False), (5, False), (10, False), (15, False)]  # only heartbeats: nothing changes


def test_with_tracking_a_change_names_the_track_ids(tmp_path, webhook_server) -> None:
    video = write_blinking_video(tmp_path / "blink.avi", frames=30, shown=range(10, 20))
    outputs = open_event_outputs(webhook=webhook_server.url)
    sink = EventSink(outputs, names=("blob",), on_change=True)
    source = open_source(str(video))
    Pipeline(source, blob_model(), [sink], tracker=Tracker("bytetrack", frame_rate=source.fps)).run()
    close_all(outputs)
    records = webhook_server.records
    assert [r["frame"] for r in records][-1] == 20 and records[0]["frame"] in (10, 11)  # a track is confirmed
    track = records[0]["change"]["appeared"]["track_ids"]
    assert len(track) == 1 and records[0]["detections"][0]["track_id"] == track[0]
    assert records[-1]["change"]["left"] == {"classes": ["blob"], "track_ids": track}
    assert records[0]["source"] == str(video)  # no tag: the source's path, as in the JSONL


def test_a_receiver_that_goes_away_mid_run_costs_the_run_nothing(tmp_path) -> None:
    video = write_blinking_video(tmp_path / "blink.avi", frames=60, shown=range(0, 60))
    server = WebhookServer()
    outputs = open_event_outputs(webhook=server.url)
    server.stop()  # gone before the first frame: every record fails or is dropped
    t0 = time.monotonic()
    summary = Pipeline(open_source(str(video)), blob_model(), [EventSink(outputs, names=("blob",))]).run()
    run_s = time.monotonic() - t0
    t0 = time.monotonic()
    (stats,) = close_all(outputs)
    assert summary.frames == 60 and not summary.interrupted
    assert stats["sent"] == 0 and stats["failed"] + stats["dropped"] == 60 and stats["queued"] == 0
    assert time.monotonic() - t0 < 6 and run_s < 60


@pytest.mark.slow
def test_the_bundled_model_on_real_people_sends_events_with_masks(tmp_path, broker) -> None:
    from ultralytics.utils import ASSETS

    photo = cv2.resize(cv2.imread(str(Path(ASSETS) / "zidane.jpg")), (640, 360))
    path = tmp_path / "people.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (640, 360))
    for i in range(16):  # nobody, two people (frames 4-11), nobody
        writer.write(photo if 4 <= i < 12 else np.full_like(photo, 114))
    writer.release()
    model = rtseg.load_model(backend="torch").instance
    with MqttSubscriber(broker.port, "rtseg/people") as subscriber:
        outputs = open_event_outputs(mqtt=broker.url("rtseg/people"))
        sink = EventSink(outputs, names=model.names, on_change=True, tag="people", masks=True)
        Pipeline(open_source(str(path)), model, [sink]).run()
        close_all(outputs)
        wait_until(lambda: subscriber.messages and subscriber.messages[-1]["frame"] == 12, 10, "the last event")
    records = subscriber.messages
    assert records[0]["frame"] == 4 and "person" in records[0]["change"]["appeared"]["classes"]
    assert records[-1]["frame"] == 12 and "person" in records[-1]["change"]["left"]["classes"]
    assert all(4 <= r["frame"] <= 12 for r in records)
    people = [d for d in records[0]["detections"] if d["class_name"] == "person"]
    assert len(people) >= 2
    for det in people:  # each mask decodes and covers most of its own box
        mask = mask_utils.decode({"size": det["mask"]["size"], "counts": det["mask"]["counts"].encode()})
        x1, y1, x2, y2 = (int(round(v)) for v in det["box_xyxy"])
        assert mask.shape == (360, 640) and mask[y1:y2, x1:x2].sum() > 0.3 * (x2 - x1) * (y2 - y1)
