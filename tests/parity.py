"""Compare rtseg results with Ultralytics' own predictions, instance by instance."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from rtseg.types import FrameResult


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / np.maximum(area_a[:, None] + area_b[None] - inter, 1e-9)


@dataclass
class Comparison:
    matched: int = 0
    box_ious: list[float] = field(default_factory=list)
    mask_ious: list[float] = field(default_factory=list)
    mask_areas: list[int] = field(default_factory=list)  # reference mask pixels, beside each mask IoU
    unmatched_ref: list[float] = field(default_factory=list)  # scores of reference detections we lack
    unmatched_ours: list[float] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)

    def add(self, ref_boxes: np.ndarray, ref_cls: np.ndarray, ref_scores: np.ndarray,
            ref_masks: np.ndarray | None, ours: FrameResult) -> None:
        """Greedy one-to-one matching, best score first, same class, highest box IoU."""
        used = np.zeros(len(ours), dtype=bool)
        iou = box_iou(ref_boxes, ours.boxes_xyxy) if len(ref_boxes) and len(ours) else None
        for i in np.argsort(-ref_scores):
            if iou is None:
                self.unmatched_ref.append(float(ref_scores[i]))
                continue
            cand = np.where((ours.class_ids == ref_cls[i]) & ~used, iou[i], -1.0)
            j = int(cand.argmax())
            if cand[j] < 0.5:
                self.unmatched_ref.append(float(ref_scores[i]))
                continue
            used[j] = True
            self.matched += 1
            self.box_ious.append(float(cand[j]))
            self.scores.append(float(ref_scores[i]))
            if ref_masks is not None:
                assert ours.masks is not None
                rm = ref_masks[i] > 0.5
                om = ours.masks.to_dense(j, ours.image_hw)
                union = (rm | om).sum()
                self.mask_ious.append(float((rm & om).sum() / union) if union else 1.0)
                self.mask_areas.append(int(rm.sum()))
        self.unmatched_ours += [float(s) for s in ours.scores[~used]]

    def add_ultralytics(self, result, ours: FrameResult) -> None:  # noqa: ANN001 - ultralytics Results
        boxes = result.boxes
        masks = result.masks.data.cpu().numpy() if result.masks is not None else np.zeros((0, *ours.image_hw))
        self.add(boxes.xyxy.cpu().numpy(), boxes.cls.cpu().numpy().astype(int), boxes.conf.cpu().numpy(),
                 masks, ours)

    def sized_mask_ious(self, min_score: float = 0.25, min_area: int = 100) -> list[float]:
        """Mask IoUs of matched instances at or above ``min_score`` with at least ``min_area`` pixels: below
        that, one flipped pixel moves the IoU by more than a percent."""
        return [m for m, s, a in zip(self.mask_ious, self.scores, self.mask_areas) if s >= min_score and a >= min_area]

    def add_results(self, ref: FrameResult, ours: FrameResult) -> None:
        masks = np.stack([ref.masks.to_dense(i, ref.image_hw) for i in range(len(ref))]) if len(ref) else None
        self.add(ref.boxes_xyxy, ref.class_ids, ref.scores, masks, ours)


def parity_images(data_dir: Path, n: int = 12) -> list[np.ndarray]:
    """At least 10 real frames: coco128-seg images (the test weights' training set) when the shared data is
    present, else views (crops, flips, scales) of the photos Ultralytics ships."""
    files = sorted((data_dir / "coco128-seg" / "images" / "train2017").glob("*.jpg"))[:n]
    if len(files) >= 10:
        return [cv2.imread(str(f)) for f in files]
    from ultralytics.utils import ASSETS

    images = []
    for f in sorted(Path(ASSETS).glob("*.jpg")):
        im = cv2.imread(str(f))
        h, w = im.shape[:2]
        images += [im, im[:, ::-1].copy(), im[h // 8 :, w // 8 :].copy(), cv2.resize(im, (w // 2, h // 2)),
                   im[: 3 * h // 4, : 3 * w // 4].copy(), cv2.resize(im, (w * 3 // 4, h))]
    return images[:n]
