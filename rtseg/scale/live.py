"""A live source on a worker: a stream never completes, so its outputs are not held back until it ends. They are written
in parts of ``segment_s`` seconds (``rtseg run --segment``), and each part is moved into the out dir (or uploaded to it)
as soon as it is finished, while the stream goes on.

The parts are those :class:`rtseg.sinks.segments.SegmentedSink` writes (``cam_000.mp4``, ``cam_000.jsonl``,
``cam_001.mp4``, ...; a part's video and JSONL hold the same frames), in the attempt's own folder; a part is finished
once the next one exists (the sink closes a part before it opens the next), which :class:`PartPublisher` checks after
each frame. A part goes out once both its video and its JSONL are finished (the video's next file appears only with its
first encoded packet, a frame or more after the JSONL's), the video first: a part's JSONL in the out dir means its video
is there too. In the out dir the parts are numbered after every part of the source already there: a retry after its
worker died, or a rerun of the command, goes on with the next number and never writes over an earlier attempt's parts.
The part being written when a worker dies is lost with its attempt folder (at most ``segment_s`` of the stream); the
parts before it stay. Each attempt numbers its frames from 0 (a new run of the stream), so a retry's first part starts
again at frame 0.
"""

from __future__ import annotations

import logging
import queue
import re
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from rtseg.errors import SinkError
from rtseg.scale import storage
from rtseg.scale.plan import SourceTask
from rtseg.sinks.atomic import partial_path
from rtseg.sinks.segments import segment_path

LOGGER = logging.getLogger(__name__)


def part_location(location: str, index: int) -> str:
    """The ``index``-th part of an output in the out dir: ``.../cam.mp4``, 3 -> ``.../cam_003.mp4``.

    Example:
        >>> part_location("s3://b/out/cam.mp4", 12), part_location("/out/cam.jsonl", 1000)
        ('s3://b/out/cam_012.mp4', '/out/cam_1000.jsonl')
    """
    head, dot, suffix = location.rpartition(".")
    return f"{head}_{index:03d}{dot}{suffix}" if dot and "/" not in suffix else f"{location}_{index:03d}"


def next_part(out_dir: str | Path, outputs: Mapping[str, str]) -> int:
    """The number the next part of these outputs gets in ``out_dir``: one above the highest already there, of
    any kind (so that a part's video and JSONL keep one number), 0 when there is none."""
    patterns = []
    for location in outputs.values():
        name = storage.name_of(location)
        stem, dot, suffix = name.rpartition(".")
        patterns.append(re.compile(re.escape(stem) + r"_(\d{3,})" + re.escape(dot + suffix)))
    numbers = [int(m.group(1)) for name in storage.listdir(out_dir) for pattern in patterns
               if (m := pattern.fullmatch(name))]
    return max(numbers, default=-1) + 1


class PartPublisher:
    """Moves (or uploads) each finished part of a live source's outputs into the out dir, on a thread of its
    own so that an upload never holds up the stream.

    Args:
        staged: per kind, the name the run writes in the attempt folder (``work/cam.mp4``); its parts are
            ``work/cam_000.mp4``, ...
        finals: per kind, the name in the out dir (``s3://b/out/cam.mp4``); part ``i`` goes to
            :func:`part_location` ``(final, first + i)``.
        first: the number of this attempt's first part in the out dir (:func:`next_part`).

    Attributes:
        published: the parts in the out dir so far, ``{name: size in bytes}``.
        upload_s: the seconds spent moving or uploading them.
    """

    def __init__(self, staged: Mapping[str, Path], finals: Mapping[str, str], first: int) -> None:
        self.staged, self.finals, self.first = dict(staged), dict(finals), first
        self.published: dict[str, int] = {}
        self.upload_s = 0.0
        self._next = 0  # the local number of the next part to go out
        self._queue: queue.Queue[int | None] = queue.Queue()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._loop, name="rtseg-parts", daemon=True)
        self._thread.start()

    def on_frame(self, *_: object) -> None:
        """After each frame (on the pipeline's thread): hand every part finished since to the thread. A part
        that could not be published fails the run here, rather than parts piling up on the worker's disk."""
        if self._error is not None:
            raise SinkError(f"cannot put a part into the out dir: {storage.why(self._error)}")
        self._scan()

    def _scan(self) -> None:
        # every kind's sink opened the next part: this one is closed, in each
        while all(_started(segment_path(base, self._next + 1)) for base in self.staged.values()):
            self._queue.put(self._next)
            self._next += 1

    def finish(self) -> dict[str, int]:
        """Once the run has ended (every part closed): publish the last parts and wait for every upload.

        Raises:
            SinkError: a part could not be moved or uploaded.
        """
        self._scan()
        while any(segment_path(base, self._next).exists() for base in self.staged.values()):  # the last, closed
            self._queue.put(self._next)
            self._next += 1
        self._queue.put(None)
        self._thread.join()
        if self._error is not None:
            raise SinkError(f"cannot put a part into the out dir: {storage.why(self._error)}")
        return dict(self.published)

    def abandon(self) -> None:
        """The run failed: publish what is already queued (finished parts), leave the part being written."""
        self._queue.put(None)
        self._thread.join(timeout=60)

    def _loop(self) -> None:
        while (index := self._queue.get()) is not None:
            for kind in sorted(self.staged, key=lambda k: k == "jsonl"):  # the video first, the JSONL last
                local = segment_path(self.staged[kind], index)
                final = part_location(self.finals[kind], self.first + index)
                if self._error is not None or not local.exists():
                    continue
                try:
                    size = local.stat().st_size
                    self.upload_s += storage.publish(local, final)
                except Exception as exc:  # noqa: BLE001 - a full disk, lost credentials: the run fails at its next frame
                    LOGGER.warning("publishing %s failed", final, exc_info=True)
                    self._error = exc
                    continue
                self.published[storage.name_of(final)] = size
                LOGGER.info("part finished: %s", final)


def _started(path: Path) -> bool:
    # a live stream's video is written under its name from its first frame; a file's (an http(s) URL that turned
    # out to have a length) under its partial name until it is closed
    return path.exists() or partial_path(path).exists()


def run_live(segmenter: Any, task: SourceTask, work: Path, out_dir: str, *, run_options: Mapping[str, Any],
             on_frame: Callable[..., None]) -> tuple[Any, PartPublisher]:
    """Run a live source with :func:`rtseg.run` into ``work`` in parts of ``task.segment_s`` seconds, each put
    into ``out_dir`` once finished. Returns the run's summary and the publisher (``published``, ``upload_s``).

    Raises:
        What :func:`rtseg.run` raises (the parts already published stay), or SinkError from a failed upload.
    """
    import rtseg

    staged = {kind: work / storage.name_of(final) for kind, final in task.outputs.items()}
    publisher = PartPublisher(staged, task.outputs, next_part(out_dir, task.outputs))

    def each(*args: object) -> None:
        on_frame(*args)
        publisher.on_frame()

    try:
        summary = rtseg.run([task.source], segmenter, out=staged.get("video"), jsonl=staged.get("jsonl"),
                            segment=task.segment_s, on_frame=each, **run_options)
    except BaseException:
        publisher.abandon()
        raise
    publisher.finish()
    return summary, publisher
