"""``rtseg bench --viewers N``: the browser view's cost inside the benchmark.

Each timed run gets a :class:`~rtseg.serve.view.LiveView` sink, and N MJPEG clients (``http.client`` in
threads of this process, as N browsers would be) read ``/stream/<source>.mjpg`` at full size for the whole run.
The pipeline times the view as its own ``serve`` stage; the JPEG encoding (once per frame, shared by the
viewers) and the sending show in the end-to-end FPS and the CPU time per frame.
"""

from __future__ import annotations

import http.client
import threading
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rtseg.serve.sink import ServeSink


class Viewers:
    """N MJPEG readers of a view on 127.0.0.1 (none when ``n`` is 0: then :meth:`sinks` is empty).

    Example:
        >>> with Viewers(0) as viewers:
        ...     viewers.sinks(None, ())
        []
    """

    def __init__(self, n: int) -> None:
        self.n = int(n)
        self.view = None
        if self.n:  # Starlette and uvicorn: only when asked for
            from rtseg.serve.view import LiveView

            self.view = LiveView("127.0.0.1:0").start()
        self.bytes_read = 0
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()

    def sinks(self, source: Any, names: tuple[str, ...], semantic_names: tuple[str, ...] = ()) -> list[ServeSink]:
        """The view's sink for one run, with its N viewers connected before it returns."""
        if self.view is None:
            return []
        sink = self.view.sink("bench", source, names=names, semantic_names=semantic_names)
        for _ in range(self.n):
            thread = threading.Thread(target=self._read, args=(sink.tag,), name="bench-viewer", daemon=True)
            thread.start()
            self._threads.append(thread)
        deadline = time.monotonic() + 10.0
        while sink.channel.viewers < self.n and time.monotonic() < deadline:
            time.sleep(0.01)
        return [sink]

    def _read(self, tag: str) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.view.port, timeout=60)  # type: ignore[union-attr]
        try:
            conn.request("GET", f"/stream/{tag}.mjpg")
            response = conn.getresponse()
            while chunk := response.read1(1 << 16):  # until the run ends its stream
                with self._lock:
                    self.bytes_read += len(chunk)
        except OSError:
            pass
        finally:
            conn.close()

    def close(self) -> None:
        for thread in self._threads:
            thread.join(timeout=5.0)
        if self.view is not None:
            self.view.stop()

    def __enter__(self) -> Viewers:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
