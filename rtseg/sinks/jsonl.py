"""JSON Lines: one record per frame, flushed as it is written, so an interrupted run keeps every frame so far.

Record::

    {"frame": 12, "timestamp_s": 0.48, "source": "in.mp4", "image_hw": [720, 1280],
     "detections": [{"class_id": 0, "class_name": "person", "score": 0.91,
                     "box_xyxy": [x1, y1, x2, y2],
                     "mask": {"size": [720, 1280], "counts": "<COCO compressed RLE>"}}],
     "timings_ms": {"decode": 1.2, "preprocess": 0.8, "infer": 35.1, "postprocess": 2.0,
                    "overlay": 0.9, "queue_wait": 0.3}}

With ``--track`` each detection also has ``"track_id"``. ``mask`` decodes with
``pycocotools.mask.decode`` (``counts`` encoded to bytes). With a semantic model the record also has
``"semantic": [{"class_id", "class_name", "area_fraction", "mask"}]``, one entry per class present in the
frame, the mask being that class's pixels as COCO RLE.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from pycocotools import mask as mask_utils

from rtseg.postprocess.rle import encode_crop
from rtseg.sinks.base import check_writable
from rtseg.types import Frame, FrameResult

# Stages finished before sinks run; encode time and end-to-end latency are known only after every sink.
_RECORDED = ("decode", "preprocess", "infer", "semantic", "postprocess", "overlay", "queue_wait")


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


def result_record(frame: Frame, result: FrameResult, names: tuple[str, ...],
                  semantic_names: tuple[str, ...] = ()) -> dict:
    """The JSON-ready record of one frame."""
    detections = []
    masks = result.masks
    for i in range(len(result)):
        cls = int(result.class_ids[i])
        det = {"class_id": cls, "class_name": names[cls] if 0 <= cls < len(names) else str(cls),
               "score": round(float(result.scores[i]), 5),
               "box_xyxy": [round(float(v), 2) for v in result.boxes_xyxy[i]]}
        if result.track_ids is not None:
            det["track_id"] = int(result.track_ids[i])
        if masks is not None:
            det["mask"] = encode_crop(masks.crops[i], masks.origins_xy[i], result.image_hw)
        detections.append(det)
    record = {"frame": result.frame_index, "timestamp_s": round(frame.timestamp_s, 4), "source": frame.source,
              "image_hw": list(result.image_hw), "detections": detections}
    if result.semantic is not None:
        record["semantic"] = semantic_record(result.semantic, semantic_names)
    record["timings_ms"] = {k: round(v, 3) for k, v in frame.timings.as_ms().items() if k in _RECORDED}
    return record


class JsonlSink:
    """Writes one JSON record per frame to ``path``."""

    needs_image = False

    def __init__(self, path: Path, names: tuple[str, ...], semantic_names: tuple[str, ...] = ()) -> None:
        self.path = check_writable(Path(path), what="JSONL")
        self.names, self.semantic_names = names, semantic_names
        self._file = self.path.open("w", encoding="utf-8")

    def write(self, frame: Frame, annotated: NDArray[np.uint8] | None, result: FrameResult) -> None:
        record = result_record(frame, result, self.names, self.semantic_names)
        self._file.write(json.dumps(record, separators=(",", ":")) + "\n")
        self._file.flush()

    def close(self) -> None:
        if not self._file.closed:
            self._file.close()
