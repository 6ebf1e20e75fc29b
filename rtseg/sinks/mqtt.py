"""The MQTT output: each event record published on a topic, through paho-mqtt's network thread.

QoS 0 (the default) sends each record once: while the broker is away, records fail (counted) until paho has
reconnected. QoS 1 and 2 hold records while the broker is away (up to the output's bound) and paho sends
them once it is back, so a broker restart loses nothing that fits in the bound.
"""

from __future__ import annotations

import logging
import os
import secrets
import threading
import time
from urllib.parse import parse_qs, unquote, urlsplit

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode

from rtseg.errors import ConfigError, SinkError
from rtseg.sinks.atomic import reason
from rtseg.sinks.webhook import CONNECT_TIMEOUT_S, QUEUE_SIZE, EventOutput, shown_url, url_host_port

LOGGER = logging.getLogger(__name__)

DEFAULT_PORTS = {"mqtt": 1883, "mqtts": 8883}


def parse_mqtt_url(url: str) -> tuple[str, str, int, str, int]:
    """``mqtt(s)://[user:password@]host[:port]/topic[?qos=0|1|2]`` -> (scheme, host, port, topic, qos).

    Example:
        >>> parse_mqtt_url("mqtt://127.0.0.1/rtseg/frames?qos=1")
        ('mqtt', '127.0.0.1', 1883, 'rtseg/frames', 1)

    Raises:
        ConfigError: another scheme, no host or topic, a topic with wildcards, an unknown option or QoS.
    """
    shown = shown_url(url)
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise ConfigError(f"mqtt={shown}: expected mqtt://host[:port]/topic (or mqtts:// for TLS)")
    host, port = url_host_port("mqtt", url, parts, DEFAULT_PORTS[scheme])
    topic = unquote(parts.path[1:])
    if not topic:
        raise ConfigError(f"mqtt={shown}: no topic: expected mqtt://host[:port]/topic")
    if "+" in topic or "#" in url:  # (a # in a URL starts its "fragment": here it can only be a wildcard)
        raise ConfigError(f"mqtt={shown}: the topic has a wildcard (+ or #): name one topic to publish on")
    try:
        options = parse_qs(parts.query, keep_blank_values=True, strict_parsing=bool(parts.query))
    except ValueError:
        raise ConfigError(f"mqtt={shown}: cannot read the options {parts.query!r}: expected ?qos=0, 1 or 2") from None
    unknown = sorted(set(options) - {"qos"})
    if unknown:
        raise ConfigError(f"mqtt={shown}: unknown option {unknown[0]!r}: the only one is qos (?qos=0, 1 or 2)")
    qos_text = options.get("qos", ["0"])[-1]
    if qos_text not in ("0", "1", "2"):
        raise ConfigError(f"mqtt={shown}: qos {qos_text!r}: expected 0, 1 or 2")
    return scheme, host, port, topic, int(qos_text)


class MqttOutput(EventOutput):
    """Publishes each record on one MQTT topic; publishing never waits (paho's thread sends).

    Args:
        url: ``mqtt://[user:password@]host[:port]/topic[?qos=0|1|2]`` (``mqtts://`` for TLS, port 8883 by
            default, checked against the system's certificates).
        maxsize: records held (published and not yet written, or acknowledged with QoS 1/2); beyond, dropped.
        connect_timeout_s: how long the broker has to accept the connection (its CONNACK) at start.

    ``stats()["retries"]`` counts reconnections to the broker (paho retries them with a back-off of 1 to 30 s).

    Raises:
        ConfigError: a malformed URL (:func:`parse_mqtt_url`).
        SinkError: the broker cannot be reached, refuses the connection, or does not answer as a broker.
    """

    name = "mqtt"

    def __init__(self, url: str, *, maxsize: int = QUEUE_SIZE, connect_timeout_s: float = CONNECT_TIMEOUT_S,
                 keepalive_s: int = 30, client_id: str | None = None) -> None:
        super().__init__(url, maxsize)
        scheme, self.host, self.port, self.topic, self.qos = parse_mqtt_url(url)
        parts = urlsplit(url)
        self._outstanding: dict[int, paho.MQTTMessageInfo] = {}  # published, not yet written or acknowledged
        self._early: set[int] = set()  # acknowledged before publish() returned their info
        self._connack = threading.Event()
        self._refused: str | None = None
        self._connections = 0
        self._client = client = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv311,
                                            client_id=client_id or f"rtseg-{os.getpid()}-{secrets.token_hex(3)}")
        if parts.username is not None:
            client.username_pw_set(unquote(parts.username), unquote(parts.password) if parts.password else None)
        if scheme == "mqtts":
            client.tls_set()
        client.max_queued_messages_set(maxsize)
        client.reconnect_delay_set(min_delay=1, max_delay=30)
        client.connect_timeout = connect_timeout_s
        client.on_connect, client.on_disconnect = self._on_connect, self._on_disconnect
        client.on_publish = self._on_publish
        where = f"{self.host}:{self.port}"
        try:
            client.connect(self.host, self.port, keepalive=keepalive_s)
        except (OSError, ValueError) as exc:
            raise SinkError(f"mqtt={self.url}: cannot connect to the broker at {where}: {reason(exc)}; check that "
                            "it runs and the URL") from None
        client.loop_start()
        if not self._connack.wait(connect_timeout_s) or self._refused:
            self._stop()
            if self._refused:
                raise SinkError(f"mqtt={self.url}: the broker at {where} refused the connection: {self._refused}")
            raise SinkError(f"mqtt={self.url}: {where} took the connection but sent no MQTT answer (CONNACK) within "
                            f"{connect_timeout_s:g} s: is it an MQTT broker?")

    def offer(self, payload: bytes) -> bool:
        self._sweep()
        if not self._reserve():
            return False
        try:
            info = self._client.publish(self.topic, payload, qos=self.qos)
        except (ValueError, OSError) as exc:  # a record larger than MQTT's 256 MB, a closed socket
            self._settle("failed")
            self._warn("failed", f"mqtt {self.url}: a record could not be published ({reason(exc)})")
            return False
        rc = info.rc
        if rc == MQTTErrorCode.MQTT_ERR_SUCCESS or (rc == MQTTErrorCode.MQTT_ERR_NO_CONN and self.qos):
            with self._lock:  # (NO_CONN with QoS 1/2: paho holds it and sends it after reconnecting)
                if info.mid in self._early:
                    self._early.discard(info.mid)
                else:
                    self._outstanding[info.mid] = info
            return True
        if rc == MQTTErrorCode.MQTT_ERR_QUEUE_SIZE:
            self._settle("dropped")
            return False
        self._settle("failed")
        self._warn("failed", f"mqtt {self.url}: a record was not published ({paho.error_string(rc)}); the run goes "
                             "on, paho reconnects")
        return False

    def stats(self) -> dict[str, int]:
        self._sweep()
        return super().stats()

    def close(self, timeout: float = 2.0) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        deadline = time.monotonic() + max(0.0, timeout)
        while time.monotonic() < deadline:
            self._sweep()
            with self._lock:
                if not self._pending:
                    break
            time.sleep(0.02)
        with self._lock:
            self._counts["dropped"] += self._pending
            self._pending = 0
            self._outstanding.clear()
        self._stop()

    def _stop(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()  # ends at once, or after a reconnect attempt in progress (connect_timeout_s)

    def _sweep(self) -> None:
        """Count the QoS 0 records that paho gave up on when the connection dropped (it calls no callback)."""
        with self._lock:
            lost = [mid for mid, info in self._outstanding.items() if info.rc == MQTTErrorCode.MQTT_ERR_CONN_LOST]
            for mid in lost:
                del self._outstanding[mid]
        if lost:
            self._settle("failed", len(lost))
            self._warn("failed", f"mqtt {self.url}: {len(lost)} records lost with the connection to the broker")

    # paho's callbacks, on its network thread

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:  # noqa: ANN001
        if reason_code.is_failure:
            self._refused = str(reason_code)
        else:
            self._connections += 1
            if self._connections > 1:
                with self._lock:
                    self._counts["retries"] += 1
                LOGGER.info("mqtt %s: connected to the broker again", self.url)
        self._connack.set()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:  # noqa: ANN001
        if not self._closed and self._connack.is_set():
            self._warn("disconnected", f"mqtt {self.url}: lost the broker ({reason_code}); reconnecting, the run "
                                       "goes on")

    def _on_publish(self, client, userdata, mid, reason_code, properties) -> None:  # noqa: ANN001
        with self._lock:
            if self._outstanding.pop(mid, None) is None:
                if self._closed:
                    return  # counted dropped by close
                self._early.add(mid)  # publish() has not returned its info yet
        self._settle("failed" if reason_code.is_failure else "sent")
