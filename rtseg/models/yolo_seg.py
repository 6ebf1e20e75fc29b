"""YOLO instance segmentation (YOLOv8 / YOLO11 with NMS, YOLO26 end-to-end): frames in, FrameResults out."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from numpy.typing import NDArray

from rtseg.backends.base import Backend
from rtseg.errors import ConfigError
from rtseg.postprocess.masks import box_local_masks
from rtseg.postprocess.morphology import clean_mask
from rtseg.postprocess.nms import boxes_to_frame, select_end2end, select_nms
from rtseg.preprocess import Letterbox, Letterboxer, resolve_imgsz, to_input_batch
from rtseg.types import FrameResult, InstanceMasks


@dataclass(frozen=True)
class Prepared:
    """A network-ready batch and where each frame sits in it."""

    batch: NDArray[np.float32]
    letterboxes: tuple[Letterbox, ...]


class YoloSegModel:
    """Pre-processing, backend call and post-processing for a YOLO-seg model.

    Args:
        backend: a loaded backend.
        imgsz: inference size (height, width) or one int for both; None uses the model's own size.
        conf: minimum score of a kept detection.
        iou: NMS overlap above which the weaker of two same-class boxes is dropped (ignored by YOLO26,
            whose head is NMS-free).
        classes: keep only these class ids; None keeps all.
        max_det: at most this many detections per frame.
        open_px, close_px, min_area: morphological clean-up of each instance mask (inside its box); see
            :func:`rtseg.postprocess.morphology.clean_mask`. Instances whose mask vanishes are dropped.
    """

    def __init__(self, backend: Backend, *, imgsz: int | Sequence[int] | None = None, conf: float = 0.25,
                 iou: float = 0.7, classes: Sequence[int] | None = None, max_det: int = 300, open_px: int = 0,
                 close_px: int = 0, min_area: int = 0) -> None:
        info = backend.info
        if not 0.0 <= conf <= 1.0:
            raise ConfigError(f"--conf {conf}: expected a value between 0 and 1")
        if not 0.0 <= iou <= 1.0:
            raise ConfigError(f"--iou {iou}: expected a value between 0 and 1")
        size = resolve_imgsz(imgsz, model_imgsz=info.imgsz, stride=info.stride, dynamic=info.dynamic)
        bad = [c for c in classes or () if not 0 <= c < len(info.names)]
        if bad:
            raise ConfigError(f"--classes {bad}: this model has class ids 0..{len(info.names) - 1}")
        self.backend = backend
        self.info = info
        self.names = info.names
        self.imgsz: tuple[int, int] = size  # type: ignore[assignment]
        self.conf, self.iou, self.max_det = conf, iou, max_det
        self.classes = list(classes) if classes else None
        if min(open_px, close_px, min_area) < 0:
            raise ConfigError("morphology sizes must be >= 0")
        self.morph = {"open_px": open_px, "close_px": close_px, "min_area": min_area}
        self._letterbox = Letterboxer(size, rect=info.dynamic, stride=info.stride)

    def prepare(self, images: Sequence[NDArray[np.uint8]]) -> Prepared:
        """Letterbox BGR frames into one float32 batch (frames of one batch must share a size)."""
        boxed, lbs = self._letterbox(images)
        return Prepared(to_input_batch(boxed), lbs)

    def infer(self, prepared: Prepared) -> tuple[torch.Tensor, torch.Tensor]:
        return self.backend.infer(prepared.batch)

    def finish(self, raw: tuple[torch.Tensor, torch.Tensor], prepared: Prepared,
               frame_indices: Sequence[int]) -> list[FrameResult]:
        """Detections, box-local masks and frame-pixel boxes for each frame of the batch."""
        preds, protos = raw
        results = []
        for b, (lb, index) in enumerate(zip(prepared.letterboxes, frame_indices)):
            if self.info.end2end:
                det = select_end2end(preds[b], conf=self.conf, classes=self.classes, max_det=self.max_det)
            else:
                det = select_nms(preds[b], nc=len(self.names), conf=self.conf, iou=self.iou,
                                 classes=self.classes, max_det=self.max_det)
            if not len(det):
                results.append(FrameResult.empty(index, lb.image_hw))
                continue
            boxes = boxes_to_frame(det[:, :4], lb)
            masks, nonempty = box_local_masks(protos[b], det[:, 6:], boxes, lb)
            if any(self.morph.values()):
                crops = tuple(clean_mask(c, **self.morph) if c.size else c for c in masks.crops)
                masks = InstanceMasks(crops, masks.origins_xy)
                nonempty = np.array([c.any() for c in crops], dtype=bool)
            result = FrameResult(index, lb.image_hw, boxes.cpu().numpy(), det[:, 4].cpu().numpy(),
                                 det[:, 5].cpu().numpy().astype(np.int32), masks)
            results.append(result if nonempty.all() else result.select(nonempty))
        return results

    def __call__(self, images: Sequence[NDArray[np.uint8]], frame_indices: Sequence[int] | None = None
                 ) -> list[FrameResult]:
        """Run the whole model stage on a list of frames (convenience for tests and scripts)."""
        t0 = time.perf_counter_ns()
        prepared = self.prepare(images)
        raw = self.infer(prepared)
        results = self.finish(raw, prepared, frame_indices or range(len(images)))
        for r in results:
            r.timings.infer_ns = time.perf_counter_ns() - t0
        return results
