"""Multi-object tracking with Ultralytics' own ByteTrack and BoT-SORT (rtseg does not write a tracker).

A :class:`Tracker` takes each frame's :class:`FrameResult` in order and returns it with ``track_ids``,
keeping only the detections that belong to a track (as Ultralytics' ``track`` mode does). Boxes, masks
and scores of the kept detections are unchanged.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from numpy.typing import NDArray

from rtseg.errors import ConfigError
from rtseg.types import FrameResult

TRACKERS = ("bytetrack", "botsort")


class _Detections:
    """The Results-like view Ultralytics' trackers read: ``conf``, ``cls``, ``xywh``, boolean indexing."""

    def __init__(self, boxes_xyxy: NDArray[np.float32], scores: NDArray[np.float32], cls: NDArray) -> None:
        self.xyxy, self.conf, self.cls = boxes_xyxy, scores, cls.astype(np.float32)

    @property
    def xywh(self) -> NDArray[np.float32]:
        xy = (self.xyxy[:, :2] + self.xyxy[:, 2:]) / 2
        return np.concatenate([xy, self.xyxy[:, 2:] - self.xyxy[:, :2]], 1)

    def __len__(self) -> int:
        return len(self.conf)

    def __getitem__(self, keep: NDArray) -> _Detections:
        return _Detections(self.xyxy[keep], self.conf[keep], self.cls[keep])


class Tracker:
    """Assigns persistent track ids to detections, frame after frame.

    Args:
        kind: ``bytetrack`` (motion and box overlap) or ``botsort`` (adds camera-motion compensation, better
            for moving cameras such as drones; slower).
        frame_rate: the source's frame rate; sets how long a lost track is kept (``track_buffer`` frames at
            30 FPS).
        min_score: lowest detection score that may start or extend a track. Ultralytics' configs use 0.25;
            pass the run's ``--conf`` so weaker detections that were asked for can be tracked too.
    """

    def __init__(self, kind: str = "bytetrack", *, frame_rate: float = 30.0, min_score: float | None = None) -> None:
        if kind not in TRACKERS:
            raise ConfigError(f"track={kind!r}: expected one of {', '.join(TRACKERS)}")
        from ultralytics.trackers import BOTSORT, BYTETracker
        from ultralytics.utils import ROOT, YAML, IterableSimpleNamespace

        cfg = YAML.load(ROOT / "cfg" / "trackers" / f"{kind}.yaml")
        if min_score is not None and min_score < cfg["track_high_thresh"]:
            cfg["track_high_thresh"] = cfg["new_track_thresh"] = float(min_score)
            cfg["track_low_thresh"] = min(cfg["track_low_thresh"], float(min_score) / 2)
            # fusing IoU with scores this low (1 - IoU x 0.15 > match_thresh) would never match a track
            cfg["fuse_score"] = False
        # track_buffer is in frames at 30 FPS in Ultralytics' configs
        cfg["track_buffer"] = max(1, int(round(cfg["track_buffer"] * frame_rate / 30.0)))
        self.kind = kind
        self._tracker = (BYTETracker if kind == "bytetrack" else BOTSORT)(IterableSimpleNamespace(**cfg))

    def update(self, result: FrameResult, image: NDArray[np.uint8] | None = None) -> FrameResult:
        """The result with ``track_ids``, restricted to the detections that belong to a track."""
        dets = _Detections(result.boxes_xyxy, result.scores, result.class_ids)
        tracks = self._tracker.update(dets, image)
        if len(tracks) == 0:
            return replace(result.select(np.zeros(len(result), dtype=bool)), track_ids=np.zeros(0, np.int64))
        idx = tracks[:, -1].astype(np.intp)
        return replace(result.select(idx), track_ids=tracks[:, 4].astype(np.int64))
