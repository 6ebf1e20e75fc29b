"""Events out of a run: each frame's record, or only some frames', POSTed to a webhook or published on MQTT.

The record is the JSON Lines record (:mod:`rtseg.sinks.jsonl`) with ``"source"`` set to the source's tag and,
with ``on_change``, a ``"change"`` field. One :class:`EventSink` per source decides which frames leave (its
:class:`EventFilter`) and hands each chosen record, serialised once, to the outputs that
:func:`open_event_outputs` started (shared by every source). An output never blocks the pipeline: it keeps at
most ``maxsize`` records and drops (and counts) the rest while its receiver is slow or away; a thread of its
own delivers them, in order.

Example:
    >>> outputs = open_event_outputs(webhook=server.url)
    >>> sink = EventSink(outputs, names=("person", "cat"), on_change=True, tag="clip")
    >>> sink.write(frame, None, result)           # a person appeared: its record goes out
    >>> sink.close()
    >>> for output in outputs:                     # at the end of the run: deliver what is left
    ...     output.close(timeout=2.0)
    >>> outputs[0].stats()
    {'sent': 1, 'dropped': 0, 'failed': 0, 'retries': 0, 'queued': 0}
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace

import numpy as np
from numpy.typing import NDArray

from rtseg.errors import ConfigError
from rtseg.sinks.mqtt import MqttOutput
from rtseg.sinks.webhook import EventOutput, WebhookOutput
from rtseg.types import Frame, FrameResult

__all__ = ["EventFilter", "EventOutput", "EventSink", "MqttOutput", "WebhookOutput", "open_event_outputs"]


class EventFilter:
    """Which of one source's frames become events.

    - Neither option: every frame.
    - ``every=N``: the first frame, then each frame N frames after the last one sent.
    - ``on_change=True``: the frames where an instance class or a track id (with tracking) appeared or left
      since the last frame sent; a frame as empty as the one before sends nothing. The record tells what
      changed: ``"change": {"appeared": {"classes": [...], "track_ids": [...]}, "left": {...}}`` (class
      names; ``track_ids`` only with tracking). Semantic classes do not count as changes.
    - Both: the changes, plus a heartbeat when N frames passed without one (the first frame included), so
      that a receiver that started late, or missed a message, learns the current state within N frames.

    A detection that flickers (found in one frame, missed in the next) is a change each time: track ids,
    which outlive a missed frame or two, flicker less than classes.

    Example:
        >>> import numpy as np
        >>> empty = FrameResult.empty(0, (48, 64), names=("person", "cat"))
        >>> cat = replace(empty, boxes_xyxy=np.zeros((1, 4)), scores=np.ones(1), class_ids=np.ones(1), masks=None)
        >>> f = EventFilter(on_change=True)
        >>> f.admit(empty), f.admit(cat), f.admit(cat), f.admit(empty)["change"]["left"]
        (None, {'change': {'appeared': {'classes': ['cat']}, 'left': {'classes': []}}}, None, {'classes': ['cat']})
    """

    def __init__(self, *, every: int | None = None, on_change: bool = False, names: Sequence[str] = ()) -> None:
        if every is not None and (isinstance(every, bool) or not isinstance(every, (int, np.integer)) or every < 1):
            raise ConfigError(f"every={every!r}: expected a whole number, 1 or more")
        self.every, self.on_change = (int(every) if every is not None else None), bool(on_change)
        self.names = tuple(names)  # class names by id; none given: the result's own (its id as text if unknown)
        self._since = None if every is None else int(every)  # frames since the last one sent: the first goes
        self._classes: frozenset[str] = frozenset()
        self._tracks: frozenset[int] = frozenset()

    def admit(self, result: FrameResult) -> dict | None:
        """None when this frame sends nothing; else the fields its record gets on top of the JSON Lines
        record: ``{}``, or ``{"change": {...}}`` with ``on_change``. Call it once per frame, in order."""
        due = self.every is None and not self.on_change
        if self._since is not None:
            due = self._since >= self.every  # type: ignore[operator]
            self._since += 1
        fields: dict = {}
        if self.on_change:
            names = self.names or result.names
            classes = frozenset(names[k] if 0 <= k < len(names) else str(int(k)) for k in result.class_ids)
            tracks = frozenset() if result.track_ids is None else frozenset(int(t) for t in result.track_ids)
            if classes != self._classes or tracks != self._tracks:
                appeared: dict = {"classes": sorted(classes - self._classes)}
                left: dict = {"classes": sorted(self._classes - classes)}
                if result.track_ids is not None:
                    appeared["track_ids"] = sorted(tracks - self._tracks)
                    left["track_ids"] = sorted(self._tracks - tracks)
                fields["change"] = {"appeared": appeared, "left": left}
                due = True
            self._classes, self._tracks = classes, tracks
        if not due:
            return None
        if self._since is not None:
            self._since = 1
        return fields


def semantic_areas(labels: NDArray[np.uint8], names: Sequence[str]) -> list[dict]:
    """Each class of a label map with its share of the frame, without masks: the ``"semantic"`` entries of a
    record sent with ``masks=False``."""
    counts = np.bincount(labels.ravel(), minlength=256)
    return [{"class_id": int(c), "class_name": names[c] if c < len(names) else str(int(c)),
             "area_fraction": round(float(counts[c]) / labels.size, 6)} for c in np.flatnonzero(counts)]


class EventSink:
    """One source's events: the frames its :class:`EventFilter` admits, as JSON records, to every output.

    Args:
        outputs: started outputs (:func:`open_event_outputs`), shared by the sinks of every source; closing
            this sink leaves them open.
        names, semantic_names: class names of the instance and semantic models.
        every, on_change: which frames are sent (:class:`EventFilter`).
        tag: the record's ``"source"`` (the source's short name, as in per-source output files); None keeps
            the source's path or URL as in the JSON Lines.
        masks: include each instance's mask and each semantic class's mask as COCO RLE. Off by default:
            masks make a record several times larger and slower to build, on the pipeline's thread (the
            bundled model on two people at 720p: 3.5 KB and 1.4 ms a record with masks, 0.4 KB and 0.1 ms
            without), for receivers that mostly want what, where and which track; the JSON Lines keep
            everything. Without masks, semantic classes keep their ``area_fraction``.
    """

    needs_image = False

    def __init__(self, outputs: Sequence[EventOutput], *, names: tuple[str, ...], semantic_names: tuple[str, ...] = (),
                 every: int | None = None, on_change: bool = False, tag: str | None = None,
                 masks: bool = False) -> None:
        self.outputs = list(outputs)
        self.names, self.semantic_names = tuple(names), tuple(semantic_names)
        self.filter = EventFilter(every=every, on_change=on_change, names=self.names)
        self.tag, self.masks = tag, masks
        self.sent = 0  # records handed to the outputs

    def record(self, frame: Frame, result: FrameResult) -> dict:
        """The frame's record as sent (without the filter's fields)."""
        shown = result if self.masks else replace(result, masks=None, semantic=None)
        record = shown.to_dict(frame, names=self.names, semantic_names=self.semantic_names)
        if not self.masks and result.semantic is not None:
            record["semantic"] = semantic_areas(result.semantic, self.semantic_names)
        if self.tag is not None:
            record["source"] = self.tag
        return record

    def write(self, frame: Frame, annotated: NDArray[np.uint8] | None, result: FrameResult) -> None:
        fields = self.filter.admit(result)
        if fields is None or not self.outputs:
            return
        record = self.record(frame, result)
        record.update(fields)
        payload = json.dumps(record, separators=(",", ":")).encode("utf-8")
        for output in self.outputs:
            output.offer(payload)
        self.sent += 1

    def close(self) -> None:
        pass  # the outputs are shared by every source's sink: whoever opened them closes them


def open_event_outputs(*, webhook: str | None = None, mqtt: str | None = None,
                       maxsize: int | None = None) -> list[EventOutput]:
    """Start the outputs asked for, each checked to reach its peer before the run starts.

    Args:
        webhook: ``http(s)://[user:password@]host[:port]/path``: each record POSTed as ``application/json``
            (:class:`~rtseg.sinks.webhook.WebhookOutput`).
        mqtt: ``mqtt(s)://[user:password@]host[:port]/topic[?qos=0|1|2]``: each record published on the topic
            (:class:`~rtseg.sinks.mqtt.MqttOutput`).
        maxsize: records each output holds while its peer is slow (default 256); beyond, records are dropped.

    Returns:
        The started outputs (none when neither is given); close each with ``close(timeout=...)``.

    Raises:
        ConfigError: a malformed URL (``webhook=ftp://x: expected an http:// or https:// URL``).
        SinkError: the receiver or broker cannot be reached; the outputs already started are closed first.
    """
    extra = {} if maxsize is None else {"maxsize": maxsize}
    started: list[EventOutput] = []
    try:
        if webhook is not None:
            started.append(WebhookOutput(webhook, **extra))
        if mqtt is not None:
            started.append(MqttOutput(mqtt, **extra))
    except BaseException:
        for output in started:
            output.close(timeout=0.0)
        raise
    return started
