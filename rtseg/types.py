"""The types that cross stage boundaries: :class:`Frame`, :class:`InstanceMasks`, :class:`FrameResult`."""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace

import numpy as np
from numpy.typing import NDArray
from pycocotools import mask as mask_utils

STAGES = ("decode", "preprocess", "infer", "postprocess", "overlay", "encode")
# stages finished before the sinks run: a frame's record carries these (encoding and latency end later)
RECORDED_STAGES = ("decode", "preprocess", "infer", "semantic", "postprocess", "overlay", "queue_wait")


@dataclass
class StageTimings:
    """Per-frame time spent in each stage, and waiting in the queue before it, in nanoseconds."""

    decode_ns: int = 0
    preprocess_ns: int = 0
    infer_ns: int = 0
    semantic_ns: int = 0  # semantic model (prepare + infer + labels), on its own thread in combined mode
    postprocess_ns: int = 0
    overlay_ns: int = 0
    encode_ns: int = 0
    serve_ns: int = 0  # the browser view's sink (--serve): its own stage, not part of encode
    queue_wait_ns: int = 0
    capture_ns: int = 0  # perf_counter_ns() when the frame left the decoder
    done_ns: int = 0  # perf_counter_ns() when every sink had the frame
    mark_ns: int = 0  # when the last stage let go of the frame

    def arrive(self, now_ns: int) -> None:
        """A stage takes the frame: the time since the previous stage let go of it was spent queued."""
        if self.mark_ns:
            self.queue_wait_ns += now_ns - self.mark_ns
            self.mark_ns = 0

    def leave(self, now_ns: int) -> None:
        """A stage is done with the frame."""
        self.mark_ns = now_ns

    def as_ms(self) -> dict[str, float]:
        """Stage durations in milliseconds, keyed by stage name (``infer``, ``encode``, ...)."""
        out = {name: getattr(self, f"{name}_ns") / 1e6 for name in STAGES}
        if self.semantic_ns:
            out["semantic"] = self.semantic_ns / 1e6
        if self.serve_ns:
            out["serve"] = self.serve_ns / 1e6
        out["queue_wait"] = self.queue_wait_ns / 1e6
        if self.done_ns and self.capture_ns:
            out["latency"] = (self.done_ns - self.capture_ns) / 1e6
        return out


@dataclass
class Frame:
    """One decoded frame.

    Attributes:
        index: 0-based position in the source.
        image: (H, W, 3) uint8 BGR pixels, as OpenCV decodes them.
        timestamp_s: position in the source in seconds (index / fps for files, time since start for live sources).
        source: the source's name (path, URL or camera index).
        timings: filled in as the frame moves through the stages.
        stream: position of its source among the sources of a multi-stream run (0 with one source).
        path: the image file this frame was read from, for image folders and globs (the source's name is
            then the folder or pattern); None for videos, streams and cameras.

    Example:
        >>> import numpy as np
        >>> frame = Frame(12, np.zeros((720, 1280, 3), np.uint8), 0.48, "clip.mp4")
        >>> frame.image_hw
        (720, 1280)
    """

    index: int
    image: NDArray[np.uint8]
    timestamp_s: float
    source: str = ""
    timings: StageTimings = field(default_factory=StageTimings)
    stream: int = 0
    path: str | None = None

    @property
    def image_hw(self) -> tuple[int, int]:
        return int(self.image.shape[0]), int(self.image.shape[1])


@dataclass(frozen=True, eq=False)
class InstanceMasks:
    """Binary instance masks kept box-local: one crop per instance and where it sits in the frame.

    Keeping crops instead of (N, H, W) full-frame masks makes memory and drawing cost scale with mask
    area, not with instances x frame size.

    Attributes:
        crops: N bool arrays; crop ``i`` has shape (h_i, w_i).
        origins_xy: (N, 2) int32 frame coordinates (x, y) of each crop's top-left pixel.
        device_crops: the same crops as bool tensors still on the model's device, when the frame path runs
            there (:mod:`rtseg.preprocess.device`: the overlay blends them without a round trip); else None.

    Example:
        >>> import numpy as np
        >>> masks = InstanceMasks((np.ones((2, 3), bool),), [[5, 1]])   # a 3x2 mask at x=5, y=1
        >>> len(masks), masks.areas().tolist(), int(masks.to_dense(0, (4, 10)).sum())
        (1, [6], 6)
    """

    crops: tuple[NDArray[np.bool_], ...]
    origins_xy: NDArray[np.int32]
    device_crops: tuple | None = None

    def __post_init__(self) -> None:
        origins = np.asarray(self.origins_xy, dtype=np.int32).reshape(-1, 2)
        object.__setattr__(self, "origins_xy", origins)
        object.__setattr__(self, "crops", tuple(self.crops))
        if len(self.crops) != len(origins):
            raise ValueError(f"InstanceMasks: {len(self.crops)} crops but {len(origins)} origins")
        if self.device_crops is not None:
            object.__setattr__(self, "device_crops", tuple(self.device_crops))
            if len(self.device_crops) != len(origins):
                raise ValueError(f"InstanceMasks: {len(self.device_crops)} device crops but {len(origins)} origins")
        for i, crop in enumerate(self.crops):
            if crop.ndim != 2 or crop.dtype != np.bool_:
                raise ValueError(f"InstanceMasks.crops[{i}]: expected a 2-D bool array, got {crop.dtype} {crop.shape}")

    def __len__(self) -> int:
        return len(self.crops)

    @classmethod
    def empty(cls) -> InstanceMasks:
        return cls((), np.zeros((0, 2), np.int32))

    def select(self, keep: NDArray[np.bool_] | NDArray[np.intp]) -> InstanceMasks:
        idx = np.flatnonzero(keep) if np.asarray(keep).dtype == np.bool_ else np.asarray(keep, dtype=np.intp)
        device = None if self.device_crops is None else tuple(self.device_crops[i] for i in idx)
        return InstanceMasks(tuple(self.crops[i] for i in idx), self.origins_xy[idx], device)

    def areas(self) -> NDArray[np.int64]:
        """Pixel count of each mask."""
        return np.array([int(c.sum()) for c in self.crops], dtype=np.int64)

    def to_dense(self, i: int, image_hw: tuple[int, int]) -> NDArray[np.bool_]:
        """Mask ``i`` as a full (H, W) bool array. For tests and export, not for the per-frame path."""
        out = np.zeros(image_hw, dtype=np.bool_)
        crop = self.crops[i]
        x, y = (int(v) for v in self.origins_xy[i])
        out[y : y + crop.shape[0], x : x + crop.shape[1]] = crop
        return out


@dataclass(frozen=True, eq=False)
class PanopticResult:
    """A frame's panoptic segmentation: every pixel belongs to exactly one segment, or to none (void, id 0).

    Made by :func:`rtseg.postprocess.panoptic.fuse_panoptic` from a result's instances (things) and semantic
    labels (stuff). Struct-of-arrays over the K segments, in id order (ids 1..K).

    Attributes:
        ids: (H, W) int32 segment id per pixel, 0 = void.
        category_ids: (K,) int32 panoptic category of each segment (:func:`rtseg.postprocess.panoptic.categories`).
        category_names: (K,) each segment's category name.
        isthing: (K,) bool, True for an instance (thing), False for a stuff region.
        areas: (K,) int64 pixels of each segment.
        boxes_xywh: (K, 4) int32 tight box (x, y, width, height) of each segment.
        instances: (K,) int32 index of the instance a thing segment comes from in its FrameResult, -1 for stuff.
    """

    ids: NDArray[np.int32]
    category_ids: NDArray[np.int32]
    category_names: tuple[str, ...]
    isthing: NDArray[np.bool_]
    areas: NDArray[np.int64]
    boxes_xywh: NDArray[np.int32]
    instances: NDArray[np.int32]

    def __len__(self) -> int:
        return len(self.category_ids)

    def segments_info(self) -> list[dict]:
        """COCO panoptic ``segments_info`` (``id``, ``category_id``, ``area``, ``bbox``, ``iscrowd``), with the
        category's name, ``isthing`` and the instance index (``detection``, things only) added."""
        out = []
        for k in range(len(self)):
            seg = {"id": k + 1, "category_id": int(self.category_ids[k]), "category_name": self.category_names[k],
                   "isthing": bool(self.isthing[k]), "area": int(self.areas[k]),
                   "bbox": [int(v) for v in self.boxes_xywh[k]], "iscrowd": 0}
            if self.instances[k] >= 0:
                seg["detection"] = int(self.instances[k])
            out.append(seg)
        return out


@dataclass(frozen=True, eq=False)
class FrameResult:
    """Detections for one frame, in source-pixel coordinates (N instances).

    Attributes:
        frame_index: 0-based index of the frame in its source.
        image_hw: (height, width) of the source frame.
        boxes_xyxy: (N, 4) float32 boxes (x1, y1, x2, y2) in frame pixels.
        scores: (N,) float32 confidences.
        class_ids: (N,) int32 class indices into the model's names.
        masks: box-local instance masks, or None for a detection-only result.
        semantic: (H, W) uint8 class id per pixel from a semantic model, or None.
        track_ids: (N,) int64 persistent track id of each instance when tracking, or None.
        timestamp_s: position of the frame in its source, in seconds.
        timings: per-stage timings of this frame.
        names, semantic_names: class names of the models that made it (``class_names``, ``to_dict``).
        analytics: the frame's zone counts, line totals and events (:mod:`rtseg.analytics`), or None.
        panoptic: the fused panoptic map of a combined run (:class:`PanopticResult`), or None.

    Example:
        >>> import numpy as np
        >>> r = FrameResult(0, (480, 640), np.array([[10, 20, 110, 220]]), np.array([0.8]), np.array([0]),
        ...                 names=("person", "cat", "dog"))
        >>> len(r), r.class_names, r.boxes_xyxy[0].tolist()
        (1, ['person'], [10.0, 20.0, 110.0, 220.0])
    """

    frame_index: int
    image_hw: tuple[int, int]
    boxes_xyxy: NDArray[np.float32]
    scores: NDArray[np.float32]
    class_ids: NDArray[np.int32]
    masks: InstanceMasks | None = None
    semantic: NDArray[np.uint8] | None = None
    track_ids: NDArray[np.int64] | None = None
    timestamp_s: float = 0.0
    timings: StageTimings = field(default_factory=StageTimings)
    names: tuple[str, ...] = ()
    semantic_names: tuple[str, ...] = ()
    analytics: dict | None = None
    panoptic: PanopticResult | None = None

    def __post_init__(self) -> None:
        for name, dtype, tail in (("boxes_xyxy", np.float32, (4,)), ("scores", np.float32, ()),
                                  ("class_ids", np.int32, ())):
            value = np.asarray(getattr(self, name), dtype=dtype)
            if value.ndim != 1 + len(tail) or value.shape[1:] != tail:
                raise ValueError(f"FrameResult.{name}: expected shape {('N', *tail)}, got {value.shape}")
            object.__setattr__(self, name, value)
        n = len(self.boxes_xyxy)
        for f in fields(self):
            if f.name in ("scores", "class_ids") and len(getattr(self, f.name)) != n:
                raise ValueError(f"FrameResult.{f.name}: expected {n} entries, got {len(getattr(self, f.name))}")
        if self.masks is not None and len(self.masks) != n:
            raise ValueError(f"FrameResult.masks: expected {n} masks, got {len(self.masks)}")
        if self.track_ids is not None:
            ids = np.asarray(self.track_ids, dtype=np.int64)
            if ids.shape != (n,):
                raise ValueError(f"FrameResult.track_ids: expected shape ({n},), got {ids.shape}")
            object.__setattr__(self, "track_ids", ids)
        if self.semantic is not None and (self.semantic.shape != tuple(self.image_hw)
                                          or self.semantic.dtype != np.uint8):
            raise ValueError(f"FrameResult.semantic: expected uint8 {tuple(self.image_hw)}, got "
                             f"{self.semantic.dtype} {self.semantic.shape}")

    def __len__(self) -> int:
        return len(self.boxes_xyxy)

    def __getitem__(self, keep: int | slice | NDArray[np.bool_] | NDArray[np.intp] | list) -> FrameResult:
        """The instances picked by a boolean mask, an index array or list, a slice or one index, as a result.

        Example:
            >>> import numpy as np
            >>> r = FrameResult(0, (10, 10), np.array([[0, 0, 5, 5], [1, 1, 9, 9]]), np.array([0.9, 0.3]),
            ...                 np.array([0, 2]), names=("person", "cat", "dog"))
            >>> confident = r[r.scores > 0.5]
            >>> len(confident), confident.class_names
            (1, ['person'])
        """
        if isinstance(keep, (int, np.integer)):
            if not -len(self) <= int(keep) < len(self):
                raise IndexError(f"instance {keep} of {len(self)}")
            keep = np.array([int(keep) % len(self)], dtype=np.intp)
        elif isinstance(keep, slice):
            keep = np.arange(len(self), dtype=np.intp)[keep]
        keep = np.asarray(keep)
        if keep.dtype == np.bool_ and keep.shape != (len(self),):
            raise IndexError(f"boolean mask of shape {keep.shape} for {len(self)} instances")
        return self.select(keep if keep.dtype == np.bool_ else keep.astype(np.intp))

    @property
    def class_names(self) -> list[str]:
        """Each instance's class name (its id as text when the names are unknown)."""
        return [self.names[k] if 0 <= k < len(self.names) else str(int(k)) for k in self.class_ids]

    def to_dict(self, frame: Frame | None = None, *, source: str | None = None, path: str | None = None,
                names: tuple[str, ...] | None = None, semantic_names: tuple[str, ...] | None = None) -> dict:
        """The frame's JSON Lines record (what ``rtseg run --jsonl`` writes): boxes, scores, class ids and
        names, track ids, masks as COCO compressed RLE, semantic classes with their area and RLE, the
        analytics record when there is one, timings.

        Example:
            >>> import json, numpy as np
            >>> r = FrameResult(3, (10, 10), np.array([[0, 0, 5, 5]]), np.array([0.9]), np.array([1]),
            ...                 InstanceMasks((np.ones((5, 5), bool),), [[0, 0]]), names=("person", "cat"))
            >>> d = r.to_dict(source="clip.mp4")
            >>> d["frame"], d["detections"][0]["class_name"], d["detections"][0]["mask"]["size"]
            (3, 'cat', [10, 10])
            >>> len(json.dumps(d)) > 0
            True
        """
        if frame is not None:  # the frame knows its source, file, time and stage timings
            source = frame.source if source is None else source
            path = frame.path if path is None else path
        timestamp_s = frame.timestamp_s if frame is not None else self.timestamp_s
        timings = frame.timings if frame is not None else self.timings
        names = self.names if names is None else names
        semantic_names = self.semantic_names if semantic_names is None else semantic_names
        detections = []
        for i in range(len(self)):
            cls = int(self.class_ids[i])
            det: dict = {"class_id": cls, "class_name": names[cls] if 0 <= cls < len(names) else str(cls),
                         "score": round(float(self.scores[i]), 5),
                         "box_xyxy": [round(float(v), 2) for v in self.boxes_xyxy[i]]}
            if self.track_ids is not None:
                det["track_id"] = int(self.track_ids[i])
            if self.masks is not None:
                det["mask"] = encode_crop(self.masks.crops[i], self.masks.origins_xy[i], self.image_hw)
            detections.append(det)
        record: dict = {"frame": self.frame_index, "timestamp_s": round(timestamp_s, 4), "source": source or ""}
        if path is not None:
            record["path"] = path
        record.update({"image_hw": list(self.image_hw), "detections": detections})
        if self.semantic is not None:
            record["semantic"] = semantic_record(self.semantic, semantic_names)
        if self.analytics is not None:
            record["analytics"] = self.analytics
        if self.panoptic is not None:
            record["panoptic"] = self.panoptic.segments_info()
        record["timings_ms"] = {k: round(v, 3) for k, v in timings.as_ms().items() if k in RECORDED_STAGES}
        return record

    @classmethod
    def empty(cls, frame_index: int, image_hw: tuple[int, int], **kwargs: object) -> FrameResult:
        return cls(frame_index, image_hw, np.zeros((0, 4), np.float32), np.zeros(0, np.float32),
                   np.zeros(0, np.int32), InstanceMasks.empty(), **kwargs)  # type: ignore[arg-type]

    def select(self, keep: NDArray[np.bool_] | NDArray[np.intp]) -> FrameResult:
        """A result with only the instances picked by a boolean mask or an index array."""
        return replace(self, boxes_xyxy=self.boxes_xyxy[keep], scores=self.scores[keep],
                       class_ids=self.class_ids[keep], masks=None if self.masks is None else self.masks.select(keep),
                       track_ids=None if self.track_ids is None else self.track_ids[keep],
                       panoptic=None)  # its segments point at instances by index: fuse again after a selection


def semantic_record(labels: NDArray[np.uint8], names: tuple[str, ...]) -> list[dict]:
    """Per-class area fraction and COCO RLE of a label map."""
    counts = np.bincount(labels.ravel(), minlength=256)
    total = labels.size
    fortran = np.asfortranarray(labels)
    out = []
    for cls in np.flatnonzero(counts):
        rle = mask_utils.encode(np.asfortranarray(fortran == cls, dtype=np.uint8))
        out.append({"class_id": int(cls), "class_name": names[cls] if cls < len(names) else str(int(cls)),
                    "area_fraction": round(float(counts[cls]) / total, 6),
                    "mask": {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")}})
    return out


def encode_crop(crop: NDArray[np.bool_], origin_xy: tuple[int, int], image_hw: tuple[int, int]) -> dict:
    """COCO RLE (``{"size": [h, w], "counts": str}``) of a crop placed at ``origin_xy`` in an image."""
    h, w = image_hw
    x0, y0 = int(origin_xy[0]), int(origin_xy[1])
    ch, cw = crop.shape
    if ch == 0 or cw == 0 or not crop.any():
        counts = [h * w]
    else:
        band = np.zeros((h, cw), dtype=np.uint8)
        band[y0 : y0 + ch] = crop
        flat = band.ravel(order="F")
        change = np.flatnonzero(np.diff(flat)) + 1
        edges = np.concatenate(([0], change, [flat.size]))
        runs = np.diff(edges)
        if flat[0]:  # COCO RLE starts with a background run, possibly empty
            runs = np.concatenate(([0], runs))
        runs[0] += x0 * h
        tail = (w - x0 - cw) * h  # background columns right of the crop
        if len(runs) % 2 == 1:  # ends in background: extend that run
            runs[-1] += tail
        elif tail:
            runs = np.concatenate((runs, [tail]))
        counts = runs.tolist()
    rle = mask_utils.frPyObjects({"size": [h, w], "counts": counts}, h, w)
    return {"size": [int(h), int(w)], "counts": rle["counts"].decode("ascii")}
