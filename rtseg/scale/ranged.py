"""A worker's run over a part of a source (``--split``): frames ``[start, stop)`` of a video file, numbered and
timed as in the whole file, after ``lead`` frames that run through the model and the tracker but are not written.

:func:`rtseg.run` numbers a source's frames from its first, so a part is assembled here from the same pieces
``rtseg.run`` uses (:func:`rtseg.pipeline.assemble.build_streams`, :class:`rtseg.pipeline.core.Pipeline`): the
source skips to the part, and each sink sees the frames with their index and timestamp in the whole file, so the
JSONL part already has global frame numbers and the video part holds exactly the part's frames.

The source seeks to the part (OpenCV decodes from the keyframe before it) and checks the frame it lands on by its
timestamp, which the driver read from the container's packets: a seek is frame-exact in most files but not in
every one, and a frame taken for the wrong one would shift the whole part. When the check fails, the frames
before the part are decoded and dropped instead (``grab``, without colour conversion: 3 against 6.5 ms a frame
at 1080p, measured), the numbering ``rtseg run`` itself uses.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from rtseg.errors import ConfigError, SourceError
from rtseg.types import Frame, FrameResult

LOGGER = logging.getLogger(__name__)

class RangeSource:
    """Frames ``first`` to ``first + count`` (``count`` None: to the end) of a video file, read through the same
    FFmpeg capture :class:`rtseg.sources.video.VideoSource` uses, so the pixels are those of ``rtseg run``.

    The capture seeks to ``first`` and the frame it lands on is checked against ``first_ms``, the timestamp the
    container gives frame ``first`` (:func:`rtseg.scale.split.probe_video`): only a frame with that timestamp is
    taken for it. Without ``first_ms``, or when the check fails (a file whose timestamps the seek misreads), the
    frames before ``first`` are decoded and dropped instead (``grab``: no colour conversion), which is exact but
    costs a decode of everything before the part.

    Args:
        spec: the video file, as the user gave it.
        first: the first frame to read.
        count: frames to read at most.
        first_ms: frame ``first``'s timestamp in ms as OpenCV reports it; negative: unknown.

    Attributes:
        seek: how frame ``first`` was reached: ``"seek"``, ``"decode"``, or ``""`` (``first`` is 0).
        seek_s: the seconds that took.

    Raises:
        SourceError: the file cannot be opened or decoded, or it ends before ``first``.
    """

    live = False

    def __init__(self, spec: str, first: int, count: int | None, first_ms: float = -1.0) -> None:
        from rtseg.sources.base import open_source

        probe = open_source(spec)  # the errors, name and frame rate of a plain run's source
        try:
            if probe.live:
                raise SourceError(f"{spec}: a live stream cannot be split; run it without --split")
            self.name, self.fps = probe.name, probe.fps
        finally:
            probe.close()
        self.frame_count: int | None = count
        self._left = count
        self._lock = threading.Lock()
        self._pending: NDArray[np.uint8] | None = None
        self.seek = ""
        t0 = time.perf_counter_ns()
        self._cap = self._open()
        if first > 0 and first_ms >= 0 and self._seek(first, first_ms):
            self.seek = "seek"
        elif first > 0:
            self._cap.release()
            self._cap = self._open()
            self.seek = "decode"
            for skipped in range(first):
                if not self._cap.grab():
                    self._cap.release()
                    raise SourceError(f"{spec}: ended after {skipped} frames, before frame {first} where this part "
                                      "begins (its header announced more frames than it holds)")
        self.seek_s = (time.perf_counter_ns() - t0) / 1e9

    def _open(self) -> Any:
        import cv2

        return cv2.VideoCapture(self.name, cv2.CAP_FFMPEG)

    def _seek(self, first: int, first_ms: float) -> bool:
        """Seek to frame ``first``; True when the frame landed on has frame ``first``'s timestamp (kept for the
        first read)."""
        import cv2

        if not self._cap.set(cv2.CAP_PROP_POS_FRAMES, first):
            return False
        ok, frame = self._cap.read()
        landed_ms = self._cap.get(cv2.CAP_PROP_POS_MSEC)
        if not ok or frame is None or abs(landed_ms - first_ms) > 250.0 / self.fps:  # a quarter frame
            LOGGER.warning("%s: seeking to frame %d landed at %.1f ms, not %.1f ms: decoding from the start instead",
                           self.name, first, landed_ms, first_ms)
            return False
        self._pending = frame
        return True

    def read(self) -> NDArray[np.uint8] | None:
        if self._left is not None and self._left <= 0:
            return None
        with self._lock:
            frame, self._pending = self._pending, None
            if frame is None:
                ok, frame = self._cap.read()
                frame = frame if ok else None
        if frame is None:
            return None
        if self._left is not None:
            self._left -= 1
        return frame

    def interrupt(self) -> None:
        self._left = 0

    def close(self) -> None:
        with self._lock:
            self._cap.release()


class PartSink:
    """Wraps a part's sinks: frames before the part (the lead) are not written, only their tracks recorded;
    the others reach the sinks renumbered as in the whole file (index ``first + i``, timestamp ``index / fps``,
    the numbering of a plain run)."""

    def __init__(self, sinks: list[Any], *, first: int, lead: int, fps: float, on_written: Callable[[], None],
                 lead_records: list[dict[str, Any]]) -> None:
        self.sinks, self.first, self.lead, self.fps = sinks, first, lead, fps
        self.needs_image = any(getattr(s, "needs_image", False) for s in sinks)
        self.on_written, self.lead_records = on_written, lead_records

    def write(self, frame: Frame, annotated: NDArray[np.uint8] | None, result: FrameResult) -> None:
        index = self.first + frame.index
        timestamp_s = index / self.fps
        if frame.index < self.lead:  # before the part: only what matching its tracks to the previous part needs
            self.lead_records.append(lead_record(index, result))
            return
        frame = replace(frame, index=index, timestamp_s=timestamp_s)
        result = replace(result, frame_index=index, timestamp_s=timestamp_s)
        for sink in self.sinks:
            sink.write(frame, annotated, result)
        self.on_written()

    def close(self) -> None:
        for sink in self.sinks:
            sink.close()


def lead_record(index: int, result: FrameResult) -> dict[str, Any]:
    """``{"frame": i, "tracks": [[track_id, class_id, x1, y1, x2, y2], ...]}``: a lead frame's tracks."""
    tracks = []
    if result.track_ids is not None:
        for tid, cls, box in zip(result.track_ids.tolist(), result.class_ids.tolist(), result.boxes_xyxy.tolist()):
            tracks.append([int(tid), int(cls), *(round(float(v), 2) for v in box)])
    return {"frame": index, "tracks": tracks}


def run_part(segmenter: Any, spec: str, *, start: int, stop: int | None, lead: int, outputs: Mapping[str, Path],
             run_options: Mapping[str, Any], on_written: Callable[[], None],
             first_ms: float = -1.0) -> tuple[Any, RangeSource]:
    """Run frames ``[start - lead, stop)`` of ``spec`` and write ``[start, stop)`` as ``rtseg.run`` would write
    the whole file's: ``outputs["video"]``, ``outputs["jsonl"]``, and with ``lead`` the lead frames' tracks to
    ``outputs["lead"]`` (JSON Lines of :func:`lead_record`).

    Returns:
        The pipeline's :class:`~rtseg.pipeline.streams.RunSummary` (frames counted with the lead) and the
        source (its ``seek`` and ``seek_s``: how it reached the part, and how long that took).
    """
    from rtseg.analytics import AnalyticsOptions, finish_analytics
    from rtseg.overlay.annotator import check_drawing
    from rtseg.pipeline.assemble import Drawing, Outputs, build_streams
    from rtseg.pipeline.core import Pipeline
    from rtseg.sinks.video import auto_preset, check_preset

    opts = dict(run_options)
    unknown = sorted(set(opts) - _PART_OPTIONS)
    if unknown:
        raise ConfigError(f"{unknown[0]}: not supported with split")
    if opts.get("panoptic") and (segmenter.instance is None or segmenter.semantic is None):
        raise ConfigError("panoptic needs an instance model and a semantic model (model=..., semantic=...)")
    track = opts.get("track")
    if track and segmenter.instance is None:
        raise ConfigError("track needs an instance-segmentation model")
    check_drawing(style=opts.get("style", "fill"), boundary_width=opts.get("boundary_width", 2))
    preset = opts.get("video_preset", "auto")
    preset = auto_preset(segmenter.device == "cpu") if preset == "auto" else check_preset(preset)
    analytics_opts = AnalyticsOptions(blur=opts.get("blur"), blur_style=opts.get("blur_style", "blur"),
                                      blur_only=opts.get("blur_only", False))
    analytics_opts.check(segmenter.names, segmenter.semantic_names)
    first = max(0, start - lead)
    lead = start - first
    source = RangeSource(spec, first, None if stop is None else stop - first, first_ms)
    lead_records: list[dict[str, Any]] = []
    try:
        stage = analytics_opts.build(names=segmenter.names, semantic_names=segmenter.semantic_names, fps=source.fps,
                                     tag=Path(outputs["video"]).stem, source=spec)
        drawing = Drawing(hud=bool(opts.get("hud") or False), alpha=opts.get("alpha", 0.45),
                          semantic_alpha=opts.get("semantic_alpha", 0.35), trails=opts.get("trails", 0),
                          palette=segmenter.palette, style=opts.get("style", "fill"),
                          boundary_width=opts.get("boundary_width", 2), panoptic=bool(opts.get("panoptic")),
                          min_area=int(getattr(segmenter.semantic, "min_area", 0) or 0))
        streams = build_streams([spec], [source], Outputs(out=Path(outputs["video"]), jsonl=Path(outputs["jsonl"])),
                                drawing, names=segmenter.names, semantic_names=segmenter.semantic_names,
                                semantic_palette=segmenter.semantic_palette, track=track,
                                min_score=getattr(segmenter.instance, "conf", None), video_preset=preset,
                                analytics=[stage])
    except BaseException:
        source.close()
        raise
    stream = streams[0]
    stream.sinks = [PartSink(list(stream.sinks), first=first, lead=lead, fps=source.fps, on_written=on_written,
                             lead_records=lead_records)]
    pipeline = Pipeline.multi(streams, segmenter.instance, semantic=segmenter.semantic, batch=opts.get("batch"))
    try:
        summary = pipeline.run()  # closes the sinks and the source
    finally:
        finish_analytics([stage])
    if "lead" in outputs:
        Path(outputs["lead"]).write_text("".join(json.dumps(r, separators=(",", ":")) + "\n" for r in lead_records))
    for kind in ("video", "jsonl"):  # a part with no frame (the file shorter than its header said): empty files
        if not Path(outputs[kind]).exists():
            Path(outputs[kind]).write_bytes(b"")
    return summary, source


# rtseg.run options a part honours (rtseg.cli.ray_run.PASSED but max_frames, which the plan turns into the range)
_PART_OPTIONS = {"track", "trails", "batch", "video_preset", "hud", "alpha", "semantic_alpha", "image_fps", "blur",
                 "blur_style", "blur_only", "panoptic", "style", "boundary_width"}
