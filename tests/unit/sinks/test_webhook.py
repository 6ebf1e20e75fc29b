"""The webhook output against a real HTTP server on 127.0.0.1: delivery in order, retries and back-off, what
is not retried, a receiver that goes away (never blocking the caller), closing within a timeout, and the
one-line errors at start."""

from __future__ import annotations

import base64
import json
import logging
import time

import pytest

from rtseg.errors import ConfigError, SinkError
from rtseg.sinks.events import EventSink
from rtseg.sinks.webhook import WebhookOutput, shown_url
from tests.events_support import WebhookServer, detections, frame_of, wait_until
from tests.support import free_port


@pytest.fixture
def server():  # noqa: ANN201 - yields a running WebhookServer
    with WebhookServer() as running:
        yield running


def payload(i: int) -> bytes:
    return json.dumps({"frame": i}).encode()


def test_every_record_arrives_in_order_with_its_source(server) -> None:
    output = WebhookOutput(server.url)
    sink = EventSink([output], names=("person", "cat"), tag="cam1")
    for i in range(40):
        result = detections(i, [i % 2])
        sink.write(frame_of(result), None, result)
    output.close(timeout=10)
    assert [r["frame"] for r in server.records] == list(range(40))
    assert {r["source"] for r in server.records} == {"cam1"}
    assert server.records[1]["detections"][0]["class_name"] == "cat"
    path, headers, _ = server.requests[0]
    assert path == "/hook" and headers["Content-Type"] == "application/json"
    assert output.stats() == {"sent": 40, "dropped": 0, "failed": 0, "retries": 0, "queued": 0}
    assert output.name == "webhook"


def test_server_errors_are_retried_with_back_off_then_delivered() -> None:
    with WebhookServer(statuses=(500, 503)) as server:
        output = WebhookOutput(server.url, backoff_s=0.1)
        t0 = time.monotonic()
        output.offer(payload(1))
        output.offer(payload(2))
        server.wait_for(2)
        waited = time.monotonic() - t0
        output.close()
    assert [r["frame"] for r in server.records] == [1, 2]  # in order: the second waited for the first
    assert [status for _, _, status in server.requests] == [500, 503, 200, 200]
    assert output.stats() == {"sent": 2, "dropped": 0, "failed": 0, "retries": 2, "queued": 0}
    assert waited >= 0.1 + 0.2  # backed off 0.1 s, then 0.2 s


@pytest.mark.parametrize("status", [400, 404, 413])
def test_a_client_error_is_not_retried(status, caplog) -> None:
    with WebhookServer(statuses=(status,)) as server:
        output = WebhookOutput(server.url, backoff_s=0.05)
        with caplog.at_level(logging.WARNING, logger="rtseg.sinks.webhook"):
            output.offer(payload(1))
            output.offer(payload(2))
            server.wait_for(1)
            output.close()
    assert [r["frame"] for r in server.records] == [2]
    assert output.stats() == {"sent": 1, "dropped": 0, "failed": 1, "retries": 0, "queued": 0}
    assert f"HTTP {status}" in caplog.text and "not delivered at once" in caplog.text


def test_408_and_429_are_retried() -> None:
    with WebhookServer(statuses=(408, 429)) as server:
        output = WebhookOutput(server.url, backoff_s=0.05)
        output.offer(payload(1))
        server.wait_for(1)
        output.close()
    assert output.stats()["retries"] == 2 and output.stats()["sent"] == 1


def test_gives_up_after_the_tries_and_goes_on() -> None:
    with WebhookServer(statuses=(500, 500, 500)) as server:
        output = WebhookOutput(server.url, backoff_s=0.05, tries=3)
        output.offer(payload(1))
        output.offer(payload(2))
        server.wait_for(1)
        output.close()
    assert [r["frame"] for r in server.records] == [2]
    assert output.stats() == {"sent": 1, "dropped": 0, "failed": 1, "retries": 2, "queued": 0}


def test_a_receiver_down_after_start_never_blocks_the_caller_and_is_counted(caplog) -> None:
    server = WebhookServer()
    output = WebhookOutput(server.url, backoff_s=0.05, maxsize=32)
    server.stop()  # connections are refused from now on
    with caplog.at_level(logging.WARNING, logger="rtseg.sinks.webhook"):
        t0 = time.monotonic()
        accepted = sum(output.offer(payload(i)) for i in range(1000))
        burst_s = time.monotonic() - t0
        held = output.stats()["queued"]
        output.close(timeout=0.3)
    stats = output.stats()
    # the output held at most its bound and dropped the rest at once, rather than making the caller wait
    assert held <= 32 and accepted <= 32 + 2 and stats["dropped"] >= 1000 - accepted
    assert burst_s < 2.0  # 1000 sends would take 1000 x 3 tries: seconds to minutes if offer() waited
    assert stats["sent"] == 0 and stats["failed"] + stats["dropped"] == 1000 and stats["queued"] == 0
    assert stats["failed"] >= 1 and stats["retries"] >= 2
    # rate-limited: a line for the first failure and one for the first drop, not one per record
    lines = [r for r in caplog.records if r.name == "rtseg.sinks.webhook"]
    assert 1 <= len(lines) <= 3, [r.getMessage() for r in lines]
    assert "Connection refused" in caplog.text and "dropping records" in caplog.text


def test_close_delivers_what_it_can_within_the_timeout_and_counts_the_rest() -> None:
    with WebhookServer(delay_s=0.1) as server:
        output = WebhookOutput(server.url)
        for i in range(30):
            output.offer(payload(i))
        t0 = time.monotonic()
        output.close(timeout=0.5)
        took = time.monotonic() - t0
    stats = output.stats()
    assert took < 1.5
    assert 2 <= stats["sent"] <= 8 and stats["sent"] + stats["dropped"] == 30 and stats["queued"] == 0
    assert [r["frame"] for r in server.records] == list(range(len(server.records)))


def test_a_connection_the_receiver_closed_is_reopened_without_a_retry(server) -> None:
    output = WebhookOutput(server.url)
    output.offer(payload(1))
    server.wait_for(1)
    server.drop_connections()  # the receiver's idle timeout closed the kept-alive connection
    time.sleep(0.1)
    output.offer(payload(2))
    server.wait_for(2)
    output.close()
    assert output.stats() == {"sent": 2, "dropped": 0, "failed": 0, "retries": 0, "queued": 0}


def test_credentials_in_the_url_are_sent_as_basic_auth_and_never_shown(server) -> None:
    url = server.url.replace("http://", "http://bob:s%40cret@")
    output = WebhookOutput(url + "?key=1")
    output.offer(payload(1))
    server.wait_for(1)
    output.close()
    path, headers, _ = server.requests[0]
    assert path == "/hook?key=1"
    assert base64.b64decode(headers["Authorization"].split()[1]) == b"bob:s@cret"
    assert "s%40cret" not in output.url and output.url.startswith("http://bob:***@127.0.0.1:")
    assert shown_url("https://h/x") == "https://h/x"


def test_an_unreachable_receiver_at_start_is_one_line() -> None:
    port = free_port()
    with pytest.raises(SinkError) as info:
        WebhookOutput(f"http://user:pw@127.0.0.1:{port}/hook")
    message = str(info.value)
    assert message.startswith(f"webhook=http://user:***@127.0.0.1:{port}/hook: cannot connect to 127.0.0.1:{port}")
    assert "Connection refused" in message and "\n" not in message and "pw" not in message


@pytest.mark.parametrize(("url", "match"), [
    ("ftp://127.0.0.1/x", "expected an http:// or https:// URL"),
    ("127.0.0.1:9000/hook", "expected an http:// or https:// URL"),
    ("http:///hook", "no host in the URL"),
    ("http://127.0.0.1:99999/hook", "the port is not a number"),
])
def test_a_malformed_url_is_a_config_error(url, match) -> None:
    with pytest.raises(ConfigError, match=rf"^webhook={url}: {match}"):
        WebhookOutput(url)


def test_offer_after_close_is_dropped(server) -> None:
    output = WebhookOutput(server.url)
    output.close()
    assert output.offer(payload(1)) is False
    wait_until(lambda: output.stats()["dropped"] == 1, 2)
    output.close()  # twice: nothing more
