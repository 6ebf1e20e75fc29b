"""The MQTT output against a real broker (amqtt in a subprocess) and a real subscriber (paho): records on the
topic in order, QoS 0 and 1, a broker outage (QoS 1 holds and resends), and the one-line errors at start."""

from __future__ import annotations

import json
import re
import socket

import pytest

from rtseg.errors import ConfigError, SinkError
from rtseg.sinks.events import EventSink
from rtseg.sinks.mqtt import MqttOutput, parse_mqtt_url
from tests.events_support import MqttBroker, MqttSubscriber, detections, frame_of, wait_until
from tests.support import free_port


@pytest.fixture(scope="module")
def broker(tmp_path_factory):  # noqa: ANN201 - yields a running MqttBroker, shared by the module's tests
    with MqttBroker(tmp_path_factory.mktemp("broker")) as running:
        yield running


def payload(i: int) -> bytes:
    return json.dumps({"frame": i}).encode()


@pytest.mark.parametrize("qos", [0, 1])
def test_records_arrive_on_the_topic_in_order(broker, qos) -> None:
    topic = f"rtseg/frames{qos}"
    with MqttSubscriber(broker.port, topic, qos=1) as subscriber:
        output = MqttOutput(broker.url(topic, qos=qos))
        sink = EventSink([output], names=("person", "cat"), tag="cam")
        for i in range(50):
            result = detections(i, [0])
            sink.write(frame_of(result), None, result)
        messages = subscriber.wait_for(50)
        output.close(timeout=5)
    assert [m["frame"] for m in messages] == list(range(50))
    assert {m["source"] for m in messages} == {"cam"} and messages[0]["detections"][0]["class_name"] == "person"
    assert output.stats() == {"sent": 50, "dropped": 0, "failed": 0, "retries": 0, "queued": 0}
    assert output.name == "mqtt" and output.qos == qos


def test_qos1_holds_records_while_the_broker_is_away_and_sends_them_after(tmp_path) -> None:
    broker = MqttBroker(tmp_path)
    try:
        output = MqttOutput(broker.url("t", qos=1))
        broker.stop()
        wait_until(lambda: not output._client.is_connected(), 10, "paho to notice the broker left")
        for i in range(5):
            assert output.offer(payload(i))  # held, not refused
        assert output.stats()["queued"] == 5
        broker.start()
        with MqttSubscriber(broker.port, "t") as subscriber:
            wait_until(lambda: output.stats()["sent"] == 5, 20, "the held records to be acknowledged")
            output.offer(payload(5))
            wait_until(lambda: subscriber.messages and subscriber.messages[-1]["frame"] == 5, 10, "frame 5")
        output.close()
        # acknowledged by the broker (sent == 6 below) and delivered in order; the held ones reach this
        # subscriber when it subscribed before paho reconnected (about 1 s after the broker came back)
        frames = [m["frame"] for m in subscriber.messages]
        assert frames == sorted(set(frames)) and frames[-1] == 5
        assert output.stats() == {"sent": 6, "dropped": 0, "failed": 0, "retries": 1, "queued": 0}
    finally:
        broker.stop()


def test_qos0_records_fail_while_the_broker_is_away_and_the_run_goes_on(tmp_path) -> None:
    broker = MqttBroker(tmp_path)
    try:
        output = MqttOutput(broker.url("t"))
        broker.stop()
        wait_until(lambda: not output._client.is_connected(), 10, "paho to notice the broker left")
        results = [output.offer(payload(i)) for i in range(300)]  # publishing never waits
        assert not any(results)
        output.close(timeout=0.5)
        assert output.stats() == {"sent": 0, "dropped": 0, "failed": 300, "retries": 0, "queued": 0}
    finally:
        broker.stop()


def test_beyond_its_bound_an_output_drops_rather_than_waits(tmp_path) -> None:
    broker = MqttBroker(tmp_path)
    try:
        output = MqttOutput(broker.url("t", qos=1), maxsize=4)
        broker.stop()  # QoS 1: records are held until the broker is back, at most 4 of them
        wait_until(lambda: not output._client.is_connected(), 10, "paho to notice the broker left")
        assert [output.offer(payload(i)) for i in range(10)] == [True] * 4 + [False] * 6
        assert output.stats() == {"sent": 0, "dropped": 6, "failed": 0, "retries": 0, "queued": 4}
        output.close(timeout=0.2)  # the broker does not come back in time: the held ones are dropped too
        assert output.stats() == {"sent": 0, "dropped": 10, "failed": 0, "retries": 0, "queued": 0}
    finally:
        broker.stop()


def test_qos0_records_lost_with_the_connection_are_counted_and_free_their_place(tmp_path) -> None:
    """paho drops the QoS 0 records still waiting to be written when the connection breaks, without a callback:
    they count as failed, and the output takes records again once the broker is back."""
    broker = MqttBroker(tmp_path)
    try:
        output = MqttOutput(broker.url("t"), maxsize=4)
        big = b"x" * (8 << 20)  # more than the socket buffers hold: some are still waiting when the broker dies
        assert all(output.offer(big) for _ in range(4))
        broker.stop()
        broker.start()
        wait_until(lambda: output._client.is_connected(), 20, "paho to reconnect")
        assert output.offer(payload(1))  # not dropped as "full"
        output.close(timeout=5)
        stats = output.stats()
        assert stats["failed"] >= 1 and stats["sent"] + stats["failed"] == 5, stats
        assert stats["dropped"] == 0 and stats["queued"] == 0 and stats["retries"] == 1
    finally:
        broker.stop()


def test_an_absent_broker_at_start_is_one_line() -> None:
    port = free_port()
    with pytest.raises(SinkError) as info:
        MqttOutput(f"mqtt://127.0.0.1:{port}/rtseg/frames")
    message = str(info.value)
    assert message.startswith(f"mqtt=mqtt://127.0.0.1:{port}/rtseg/frames: cannot connect to the broker at "
                              f"127.0.0.1:{port}: ")
    assert "Connection refused" in message and "\n" not in message


def test_a_broker_that_refuses_the_client_is_one_line(tmp_path) -> None:
    with MqttBroker(tmp_path, anonymous=False) as broker:
        with pytest.raises(SinkError) as info:
            MqttOutput(broker.url("t"))
    assert str(info.value) == (f"mqtt=mqtt://127.0.0.1:{broker.port}/t: the broker at 127.0.0.1:{broker.port} "
                               "refused the connection: Not authorized")


def test_a_server_that_is_no_broker_is_one_line() -> None:
    """A port that accepts connections but never speaks MQTT (a web server, say): no CONNACK in time."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        expected = (rf"^mqtt=mqtt://127\.0\.0\.1:{port}/t: 127\.0\.0\.1:{port} took the connection but sent no "
                    r"MQTT answer \(CONNACK\) within 0\.5 s: is it an MQTT broker\?$")
        with pytest.raises(SinkError, match=expected):
            MqttOutput(f"mqtt://127.0.0.1:{port}/t", connect_timeout_s=0.5)


@pytest.mark.parametrize(("url", "expected"), [
    ("mqtt://127.0.0.1/rtseg/frames", ("mqtt", "127.0.0.1", 1883, "rtseg/frames", 0)),
    ("mqtt://broker:1999/a%20b?qos=1", ("mqtt", "broker", 1999, "a b", 1)),
    ("mqtts://u:p@broker/t?qos=2", ("mqtts", "broker", 8883, "t", 2)),
])
def test_url(url, expected) -> None:
    assert parse_mqtt_url(url) == expected


@pytest.mark.parametrize(("url", "match"), [
    ("http://127.0.0.1/t", "expected mqtt://host"),
    ("mqtt://127.0.0.1", "no topic"),
    ("mqtt://127.0.0.1/", "no topic"),
    ("mqtt://127.0.0.1/a/#", "has a wildcard"),
    ("mqtt://127.0.0.1/+/b", "has a wildcard"),
    ("mqtt:///t", "no host"),
    ("mqtt://127.0.0.1/t?qos=3", "qos '3': expected 0, 1 or 2"),
    ("mqtt://127.0.0.1/t?qos=", "qos '': expected 0, 1 or 2"),
    ("mqtt://127.0.0.1/t?retain=1", "unknown option 'retain'"),
])
def test_a_malformed_url_is_a_config_error(url, match) -> None:
    with pytest.raises(ConfigError, match=rf"^mqtt={re.escape(url)}: .*{re.escape(match)}") as info:
        MqttOutput(url)
    assert "\n" not in str(info.value)


def test_a_password_in_the_url_is_never_shown() -> None:
    port = free_port()
    with pytest.raises(SinkError) as info:
        MqttOutput(f"mqtt://user:hunter2@127.0.0.1:{port}/t")
    assert "hunter2" not in str(info.value) and "user:***@" in str(info.value)
