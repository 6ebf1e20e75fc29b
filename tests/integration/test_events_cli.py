"""Events out of ``rtseg run`` through the real CLI: records on stdout (``--jsonl -``), to a real webhook
receiver and a real MQTT broker on 127.0.0.1, only on change, and one-line errors for peers that are not there."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.events_support import MqttBroker, MqttSubscriber, WebhookServer
from tests.support import free_port, run_cli


@pytest.fixture(scope="module")
def people_blink(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """20 frames: grey, then Ultralytics' zidane.jpg (two people) in frames 6..13, then grey again; the bundled
    model finds the people exactly there."""
    from rtseg.sources.demo import sample_images

    photo = next(p for p in sample_images() if p.name == "zidane.jpg")
    image = cv2.resize(cv2.imread(str(photo)), (480, 270))
    path = tmp_path_factory.mktemp("blink") / "blink.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (480, 270))
    for i in range(20):
        writer.write(image if 6 <= i < 14 else np.full_like(image, 114))
    writer.release()
    return path


@pytest.fixture
def broker(tmp_path: Path):  # noqa: ANN201 - yields a running MqttBroker
    with MqttBroker(tmp_path) as running:
        yield running


def test_records_go_to_a_webhook_and_an_mqtt_topic_and_the_summary_counts_them(
        people_blink: Path, broker: MqttBroker, tmp_path: Path) -> None:
    with WebhookServer() as hook, MqttSubscriber(broker.port, "cams/blink") as subscriber:
        done = run_cli("run", str(people_blink), "--webhook", hook.url, "--mqtt", broker.url("cams/blink"),
                       cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        posted, published = hook.wait_for(20), subscriber.wait_for(20)
    assert [r["frame"] for r in posted] == [r["frame"] for r in published] == list(range(20))
    assert {r["source"] for r in posted} == {"blink"}  # the source's short name, never its path
    assert all("mask" not in d for r in posted for d in r["detections"])  # masks only with --event-masks
    assert "webhook: 20 records sent, 0 dropped, 0 failed" in done.stderr
    assert "mqtt: 20 records sent, 0 dropped, 0 failed" in done.stderr
    assert list(tmp_path.glob("*.mp4")) == []  # events are outputs: no default video besides them


def test_on_change_sends_only_the_frames_where_people_appear_and_leave(people_blink: Path, tmp_path: Path) -> None:
    with WebhookServer() as hook:
        done = run_cli("run", str(people_blink), "--webhook", hook.url, "--on-change", "--event-masks", "-q",
                       cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        records = hook.wait_for(2)
    assert [r["frame"] for r in records] == [6, 14]
    assert records[0]["change"]["appeared"]["classes"] == ["person"]
    assert records[1]["change"]["left"]["classes"] == ["person"]
    assert all("mask" in d for d in records[0]["detections"]) and len(records[0]["detections"]) >= 2


def test_jsonl_dash_writes_the_records_and_nothing_else_to_stdout(people_blink: Path, tmp_path: Path) -> None:
    done = run_cli("run", str(people_blink), "--jsonl", "-", "--max-frames", "7", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    records = [json.loads(line) for line in done.stdout.splitlines()]
    assert [r["frame"] for r in records] == list(range(7)) and len(records[6]["detections"]) >= 2
    assert "7 frames" in done.stderr and not list(tmp_path.iterdir())  # the summary on stderr; no file


@pytest.mark.parametrize(("flag", "url", "message"), [
    ("--webhook", "http://127.0.0.1:{port}/hook",
     "rtseg: error: --webhook http://127.0.0.1:{port}/hook: cannot connect"),
    ("--mqtt", "mqtt://127.0.0.1:{port}/cams", "rtseg: error: --mqtt mqtt://127.0.0.1:{port}/cams: cannot connect"),
    ("--webhook", "ftp://127.0.0.1/x", "rtseg: error: --webhook ftp://127.0.0.1/x: expected an http:// or https://"),
])
def test_a_peer_that_is_not_there_is_one_line_at_start_up(people_blink: Path, tmp_path: Path, flag: str, url: str,
                                                          message: str) -> None:
    port = free_port()  # nothing listens there
    done = run_cli("run", str(people_blink), flag, url.format(port=port), "--out", str(tmp_path / "o.mp4"))
    assert done.returncode == 2 and done.stderr.startswith(message.format(port=port)), done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and not (tmp_path / "o.mp4").exists()
