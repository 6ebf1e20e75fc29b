"""The webhook output (each event record POSTed as JSON), and :class:`EventOutput`, what every output shares:
a bound on the records it holds, counters and throttled warnings.

Delivery is at least once, in order: a record is retried (after 0.5 s, then 1 s, ...) when the receiver
cannot be reached, times out or answers 408, 429 or 5xx, so a record whose answer was lost can arrive twice
(``source`` and ``frame`` identify it). Any other answer but 2xx (a 400, a 404, a redirect) fails it at once.
"""

from __future__ import annotations

import base64
import http.client
import logging
import queue
import ssl
import threading
import time
from urllib.parse import SplitResult, unquote, urlsplit

from rtseg.errors import ConfigError, SinkError
from rtseg.sinks.atomic import reason

QUEUE_SIZE = 256  # records an output holds while its peer is slow: ~10 s of video at 25 fps
CONNECT_TIMEOUT_S = 3.0
WARN_EVERY_S = 10.0  # at most one warning of a kind per output in this time; the others are counted
RETRIED_STATUS = (408, 429)  # and every 5xx
_END = object()


def shown_url(url: str) -> str:
    """The URL as logs and errors show it: a password replaced by ``***``."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username}:***@{parts.netloc.rpartition('@')[2]}"
    return SplitResult(parts.scheme, netloc, parts.path, parts.query, parts.fragment).geturl()


def url_host_port(param: str, url: str, parts: SplitResult, default_port: int) -> tuple[str, int]:
    """Host and port of a URL, or a :class:`ConfigError` naming ``param``."""
    try:
        port = parts.port
    except ValueError:
        raise ConfigError(f"{param}={shown_url(url)}: the port is not a number from 0 to 65535") from None
    if not parts.hostname:
        raise ConfigError(f"{param}={shown_url(url)}: no host in the URL")
    return parts.hostname, port or default_port


class EventOutput:
    """What the event outputs share: at most ``maxsize`` records held, counters, throttled warnings.

    Attributes:
        name: ``webhook`` or ``mqtt``.
        url: the URL as logs show it (no password).
    """

    name = "output"

    def __init__(self, url: str, maxsize: int) -> None:
        if isinstance(maxsize, bool) or not isinstance(maxsize, int) or maxsize < 1:
            raise ConfigError(f"maxsize={maxsize!r}: expected a whole number, 1 or more")
        self.url, self.maxsize = shown_url(url), maxsize
        self._lock = threading.Lock()
        self._counts = {"sent": 0, "dropped": 0, "failed": 0, "retries": 0}
        self._pending = 0  # records offered and not yet sent, failed or dropped
        self._closed = False
        self._warned: dict[str, tuple[float, int]] = {}  # kind -> (when last logged, how many held back since)

    def stats(self) -> dict[str, int]:
        """``sent``, ``dropped`` (never sent: the output was full or closing), ``failed`` (sent and refused, or
        given up on), ``retries`` and ``queued`` (held now)."""
        with self._lock:
            return {**self._counts, "queued": self._pending}

    def offer(self, payload: bytes) -> bool:
        """Hand over one serialised record without waiting; False when it was dropped."""
        raise NotImplementedError

    def close(self, timeout: float = 2.0) -> None:
        """Deliver what can be within ``timeout`` seconds, count the rest as dropped, and let go of the peer."""
        raise NotImplementedError

    def _reserve(self) -> bool:
        """Take a place for one record; when full (or closed), count it dropped and warn."""
        with self._lock:
            if not self._closed and self._pending < self.maxsize:
                self._pending += 1
                return True
            self._counts["dropped"] += 1
            closed = self._closed
        if not closed:
            self._warn("full", f"{self.name} {self.url}: {self.maxsize} records waiting, the receiver is slower "
                               "than the video: dropping records; the run goes on")
        return False

    def _settle(self, outcome: str, n: int = 1) -> None:
        """``n`` held records were sent, failed or dropped."""
        with self._lock:
            self._counts[outcome] += n
            self._pending -= n

    def _warn(self, kind: str, message: str) -> None:
        """Log at once, then at most once every WARN_EVERY_S per kind, saying how many were held back."""
        now = time.monotonic()
        with self._lock:
            last, held = self._warned.get(kind, (None, 0))
            if last is not None and now - last < WARN_EVERY_S:
                self._warned[kind] = (last, held + 1)
                return
            self._warned[kind] = (now, 0)
        more = f" ({held} more like it in the last {WARN_EVERY_S:g} s)" if held else ""
        logging.getLogger(type(self).__module__).warning("%s%s", message, more)


class WebhookOutput(EventOutput):
    """POSTs each record as ``application/json`` to ``url`` from a thread of its own, in order.

    Args:
        url: ``http(s)://[user:password@]host[:port]/path[?query]``; a user and password are sent as HTTP
            basic authentication.
        maxsize: records held while the receiver is slow or away; beyond, new records are dropped.
        timeout_s: how long one request may take (connect, send, answer).
        tries: attempts per record, ``backoff_s`` apart, doubling up to ``max_backoff_s`` (a 429 or 503's
            ``Retry-After`` in seconds is honoured up to that cap).

    Raises:
        ConfigError: not an http(s) URL, no host, a bad port.
        SinkError: no connection to the receiver within a few seconds.
    """

    name = "webhook"

    def __init__(self, url: str, *, maxsize: int = QUEUE_SIZE, timeout_s: float = 5.0, tries: int = 3,
                 backoff_s: float = 0.5, max_backoff_s: float = 8.0,
                 connect_timeout_s: float = CONNECT_TIMEOUT_S) -> None:
        super().__init__(url, maxsize)
        parts = urlsplit(url)
        if parts.scheme.lower() not in ("http", "https"):
            raise ConfigError(f"webhook={self.url}: expected an http:// or https:// URL")
        self.host, self.port = url_host_port("webhook", url, parts, 443 if parts.scheme.lower() == "https" else 80)
        self.https = parts.scheme.lower() == "https"
        self.timeout_s, self.tries = timeout_s, max(1, tries)
        self.backoff_s, self.max_backoff_s = backoff_s, max_backoff_s
        self._target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self._headers = {"Content-Type": "application/json", "User-Agent": "rtseg"}
        if parts.username is not None:
            token = f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()
            self._headers["Authorization"] = "Basic " + base64.b64encode(token).decode("ascii")
        self._conn = self._connection(connect_timeout_s)
        try:  # the receiver must be there now: a typo in the URL fails the run before it starts
            self._conn.connect()
        except OSError as exc:
            self._conn.close()
            raise SinkError(f"webhook={self.url}: cannot connect to {self.host}:{self.port}: {reason(exc)}; check "
                            "that the receiver runs and the URL") from None
        self._queue: queue.Queue = queue.Queue()  # bounded by _reserve
        self._deadline: float | None = None  # set by close: no attempt starts after it
        self._wake = threading.Event()  # cuts a back-off short when closing
        self._abandoned = False
        self._thread = threading.Thread(target=self._run, name="webhook", daemon=True)
        self._thread.start()

    def offer(self, payload: bytes) -> bool:
        if not self._reserve():
            return False
        self._queue.put(payload)
        return True

    def close(self, timeout: float = 2.0) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._deadline = time.monotonic() + max(0.0, timeout)
        self._queue.put(_END)
        self._wake.set()
        # the request in flight times out by the deadline (_attempt): a short grace covers its last bytes
        self._thread.join(timeout=max(0.0, timeout) + 0.5)
        with self._lock:  # what is left: stuck in a call that ignores its timeout (the thread is left to end on
            self._abandoned = True  # its own), or offered while closing
            self._counts["dropped"] += self._pending
            self._pending = 0

    def _settle(self, outcome: str, n: int = 1) -> None:
        with self._lock:
            if self._abandoned:
                return
        super()._settle(outcome, n)

    def _connection(self, timeout_s: float) -> http.client.HTTPConnection:
        if self.https:
            return http.client.HTTPSConnection(self.host, self.port, timeout=timeout_s,
                                               context=ssl.create_default_context())
        return http.client.HTTPConnection(self.host, self.port, timeout=timeout_s)

    def _run(self) -> None:
        try:
            while (payload := self._queue.get()) is not _END:
                self._settle(self._deliver(payload))
        finally:
            self._conn.close()

    def _time_left(self) -> float | None:
        return None if self._deadline is None else self._deadline - time.monotonic()

    def _deliver(self, payload: bytes) -> str:
        """Send one record, retrying; ``sent``, ``failed``, or ``dropped`` when closing cut it short."""
        delay, why, wait_s = self.backoff_s, "", None
        for attempt in range(self.tries):
            if attempt:
                with self._lock:
                    self._counts["retries"] += 1
                if not self._pause(min(max(delay, wait_s or 0.0), self.max_backoff_s)):
                    return "dropped"
                delay *= 2
            left = self._time_left()
            if left is not None and left <= 0:
                return "dropped"
            status, why, wait_s = self._attempt(payload, left)
            if status is not None and 200 <= status < 300:
                return "sent"
            if status is not None and status not in RETRIED_STATUS and status < 500:
                break  # the receiver refuses this record: sending it again would not help
        tries = f"after {attempt + 1} tries" if attempt else "at once"
        self._warn("failed", f"webhook {self.url}: a record was not delivered {tries} ({why}); the run goes on")
        return "failed"

    def _pause(self, seconds: float) -> bool:
        """Wait out a back-off; False when closing and the deadline comes first."""
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            if self._deadline is not None:
                if end > self._deadline:
                    return False
                time.sleep(left)
            else:
                self._wake.wait(left)
        return True

    def _attempt(self, payload: bytes, left: float | None) -> tuple[int | None, str, float | None]:
        """One POST: (status or None, why it failed, Retry-After seconds or None)."""
        timeout = self.timeout_s if left is None else max(0.05, min(self.timeout_s, left))
        for again in (False, True):
            kept = self._conn.sock is not None  # a connection kept alive since the last record
            self._conn.timeout = timeout
            if kept:
                self._conn.sock.settimeout(timeout)
            try:
                self._conn.request("POST", self._target, body=payload, headers=self._headers)
                response = self._conn.getresponse()
                response.read()
            except (OSError, http.client.HTTPException) as exc:
                self._conn.close()
                if kept and not again and isinstance(exc, (ConnectionResetError, BrokenPipeError,
                                                           ConnectionAbortedError)):
                    continue  # the receiver closed an idle kept-alive connection: a new one, at once
                return None, reason(exc) or type(exc).__name__, None
            retry_after = response.getheader("Retry-After", "")
            wait_s = float(retry_after) if retry_after.strip().isdigit() else None
            return response.status, f"HTTP {response.status} {response.reason}".strip(), wait_s
        return None, "connection lost", None  # not reached: the second pass returns
