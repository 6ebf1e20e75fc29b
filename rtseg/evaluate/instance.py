"""COCO box / mask mAP of instance predictions: the pycocotools ``COCOeval`` definition, in numpy.

The definition (``COCOeval`` defaults: IoU thresholds 0.50:0.05:0.95, 101 recall points 0:0.01:1, area
range "all", at most ``max_dets`` = 100 detections per image and class, one class at a time):

1. Per image and class, detections are sorted by score, descending and stable (mergesort), and cut to
   ``max_dets``; ground truths are ordered non-crowd first (stable). IoU is the COCO box IoU (boxes as
   x, y, w = x2 - x1, h = y2 - y1, no +1) or the IoU of the RLE masks; against a crowd ground truth it is
   ``intersection / area(detection)``.
2. Greedy matching per IoU threshold t, detections in score order: a detection takes the not yet
   matched non-crowd ground truth of highest IoU >= t (of equal ones the later); only when there is none,
   the crowd ground truth of highest IoU >= t (crowds can be matched again and again). A detection matched
   to a crowd is ignored (neither TP nor FP); an unmatched one is a false positive. Positives are the
   non-crowd ground truths.
3. Per class, the detections of all images (images in sorted id order) are sorted by score (mergesort)
   and TP / FP cumulated; precision is made non-increasing from the right and read at the 101 recall
   thresholds (at the first detection whose recall >= r; 0 past the highest recall reached). AP is the
   mean of those 101 values (and of the 10 IoU thresholds for AP50:95).
4. mAP is the mean AP over the classes with at least one non-crowd ground truth. The other classes have
   AP NaN (pycocotools: -1) and are left out; a mean over no class at all is NaN (pycocotools: -1).
   Predictions on images without any ground truth of a class are false positives of that class.

Only the IoU of masks is left to ``pycocotools.mask.iou``; matching and accumulation are done here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from pycocotools import mask as mask_utils

IOU_THRESHOLDS = np.linspace(0.5, 0.95, int(np.round((0.95 - 0.5) / 0.05)) + 1)  # as COCOeval.Params
RECALL_THRESHOLDS = np.linspace(0.0, 1.0, int(np.round((1.0 - 0.0) / 0.01)) + 1)
IOU_TYPES = ("bbox", "segm")
_T50, _T75 = 0, 5  # indices of IoU 0.50 and 0.75 in IOU_THRESHOLDS


@dataclass
class ImageInstances:
    """Ground truth or predictions of one image.

    Attributes:
        image_id: identifies the image; predictions are paired with ground truth by it.
        height: image height in pixels.
        width: image width in pixels.
        boxes: (N, 4) float boxes x1, y1, x2, y2 in pixels.
        classes: (N,) int class ids.
        masks: one COCO RLE dict ``{"size": [h, w], "counts": str | bytes | list}`` per instance, or None
            (box-only; then only ``iou_type="bbox"`` works).
        scores: (N,) confidences of predictions; None for ground truth.
        iscrowd: (N,) bool crowd flags of ground truth; None means no crowd.
    """

    image_id: int | str
    height: int
    width: int
    boxes: np.ndarray
    classes: np.ndarray
    masks: list[dict] | None = None
    scores: np.ndarray | None = None
    iscrowd: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.boxes = np.asarray(self.boxes, dtype=np.float64).reshape(-1, 4)
        self.classes = np.asarray(self.classes, dtype=np.int64).reshape(-1)
        n = len(self.classes)
        if self.scores is not None:
            self.scores = np.asarray(self.scores, dtype=np.float64).reshape(-1)
        if self.iscrowd is not None:
            self.iscrowd = np.asarray(self.iscrowd, dtype=bool).reshape(-1)
        for name in ("boxes", "masks", "scores", "iscrowd"):
            value = getattr(self, name)
            if value is not None and len(value) != n:
                raise ValueError(f"image {self.image_id!r}: {name} has {len(value)} entries, classes has {n}")

    @property
    def crowd(self) -> np.ndarray:
        """(N,) bool crowd flags, all False when ``iscrowd`` is None."""
        return np.zeros(len(self.classes), dtype=bool) if self.iscrowd is None else self.iscrowd


def _gt_indices(gt: ImageInstances, cls: int) -> np.ndarray:
    """Indices of the ground truths of class ``cls``, non-crowd first (stable, as COCOeval)."""
    idx = np.flatnonzero(gt.classes == cls)
    return idx[np.argsort(gt.crowd[idx], kind="mergesort")]


def _det_indices(pred: ImageInstances | None, cls: int, max_dets: int) -> np.ndarray:
    """Indices of the ``max_dets`` best-scored predictions of class ``cls`` (stable sort by score)."""
    if pred is None:
        return np.zeros(0, dtype=np.int64)
    idx = np.flatnonzero(pred.classes == cls)
    return idx[np.argsort(-pred.scores[idx], kind="mergesort")][:max_dets]


def box_iou(dets: np.ndarray, gts: np.ndarray, crowd: np.ndarray) -> np.ndarray:
    """COCO box IoU (as ``pycocotools.mask.iou`` on xywh boxes) of (D, 4) and (G, 4) xyxy boxes.

    Args:
        dets: (D, 4) detection boxes x1, y1, x2, y2.
        gts: (G, 4) ground-truth boxes x1, y1, x2, y2.
        crowd: (G,) bool; for a crowd ground truth the IoU is intersection / area(detection).

    Returns:
        (D, G) float64 IoU matrix.
    """
    d = np.concatenate([dets[:, :2], dets[:, 2:] - dets[:, :2]], axis=1)  # xywh, as COCO stores boxes
    g = np.concatenate([gts[:, :2], gts[:, 2:] - gts[:, :2]], axis=1)
    iw = np.minimum((d[:, 2] + d[:, 0])[:, None], g[:, 2] + g[:, 0]) - np.maximum(d[:, None, 0], g[:, 0])
    ih = np.minimum((d[:, 3] + d[:, 1])[:, None], g[:, 3] + g[:, 1]) - np.maximum(d[:, None, 1], g[:, 1])
    overlap = (iw > 0) & (ih > 0)
    inter = np.where(overlap, iw * ih, 0.0)
    det_area = (d[:, 2] * d[:, 3])[:, None]
    union = np.where(crowd[None, :], det_area, det_area + g[:, 2] * g[:, 3] - inter)
    return np.divide(inter, union, out=np.zeros_like(inter), where=overlap)


def _rles(inst: ImageInstances, idx: np.ndarray) -> list[dict]:
    """The RLEs of the instances ``idx``; uncompressed RLEs (list counts) are compressed first."""
    if inst.masks is None:
        raise ValueError(f"image {inst.image_id!r}: iou_type 'segm' needs masks")
    rles = [inst.masks[i] for i in idx]
    return [mask_utils.frPyObjects(r, *r["size"]) if isinstance(r["counts"], list) else r for r in rles]


def _iou_matrix(gt: ImageInstances, pred: ImageInstances, gi: np.ndarray, di: np.ndarray, iou_type: str) -> np.ndarray:
    """(D, G) IoU of the detections ``di`` of ``pred`` and the ground truths ``gi`` of ``gt``."""
    crowd = gt.crowd[gi]
    if iou_type == "bbox":
        return box_iou(pred.boxes[di], gt.boxes[gi], crowd)
    ious = mask_utils.iou(_rles(pred, di), _rles(gt, gi), crowd.astype(np.uint8).tolist())
    return np.asarray(ious, dtype=np.float64).reshape(len(di), len(gi))


def match(ious: np.ndarray, crowd: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Greedy matching of ``COCOeval.evaluateImg``, all IoU thresholds at once.

    Args:
        ious: (D, G) IoU, detections in score order, ground truths non-crowd first.
        crowd: (G,) bool crowd (= ignore) flags of the ground truths.

    Returns:
        ``(tp, fp)``: (T, D) bool per IoU threshold; a detection matched to a crowd is neither.
    """
    n_det, n_gt = ious.shape
    if n_gt == 0:
        return np.zeros((len(IOU_THRESHOLDS), n_det), dtype=bool), np.ones((len(IOU_THRESHOLDS), n_det), dtype=bool)
    thresholds = np.minimum(IOU_THRESHOLDS, 1 - 1e-10)[:, None]
    taken = np.zeros((len(IOU_THRESHOLDS), n_gt), dtype=bool)
    matched = np.full((len(IOU_THRESHOLDS), n_det), -1)
    rows = np.arange(len(IOU_THRESHOLDS))
    for d in range(n_det):
        free = (ious[d] >= thresholds) & (~taken | crowd)  # (T, G) candidates at each threshold
        for group in (~crowd, crowd):  # a crowd only when no regular ground truth qualifies
            cand = free & group & (matched[:, d] < 0)[:, None]
            last_best = n_gt - 1 - np.argmax(np.where(cand, ious[d], -np.inf)[:, ::-1], axis=1)
            hit = cand.any(axis=1)
            matched[hit, d] = last_best[hit]
        hit = matched[:, d] >= 0
        taken[rows[hit], matched[hit, d]] = True
    ignored = (matched >= 0) & crowd[np.maximum(matched, 0)]
    return (matched >= 0) & ~ignored, matched < 0


def _evaluate_image(gt: ImageInstances, pred: ImageInstances | None, cls: int, iou_type: str,
                    max_dets: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Scores (D,), TP and FP (T, D) of the detections of one image and class, and its positive count."""
    gi, di = _gt_indices(gt, cls), _det_indices(pred, cls, max_dets)
    crowd = gt.crowd[gi]
    if len(gi) and len(di):
        ious = _iou_matrix(gt, pred, gi, di, iou_type)
    else:
        ious = np.zeros((len(di), len(gi)))
    tp, fp = match(ious, crowd)
    scores = pred.scores[di] if pred is not None else np.zeros(0)
    return scores, tp, fp, int(np.count_nonzero(~crowd))


def precision_at_recalls(scores: np.ndarray, tp: np.ndarray, fp: np.ndarray, n_pos: int) -> np.ndarray:
    """Interpolated precision (T, 101) of ``COCOeval.accumulate`` for one class.

    Args:
        scores: (D,) scores of the detections of all images, concatenated in image order.
        tp: (T, D) bool true positives per IoU threshold.
        fp: (T, D) bool false positives per IoU threshold.
        n_pos: number of non-crowd ground truths (> 0).

    Returns:
        (T, 101) precision at the recall thresholds 0:0.01:1 (0 where that recall is never reached).
    """
    order = np.argsort(-scores, kind="mergesort")
    tps = np.cumsum(tp[:, order], axis=1).astype(np.float64)
    fps = np.cumsum(fp[:, order], axis=1).astype(np.float64)
    recall = tps / n_pos
    precision = tps / (fps + tps + np.spacing(1))
    precision = np.flip(np.maximum.accumulate(np.flip(precision, axis=1), axis=1), axis=1)
    out = np.zeros((len(tp), len(RECALL_THRESHOLDS)))
    for t in range(len(tp)):
        idx = np.searchsorted(recall[t], RECALL_THRESHOLDS, side="left")
        ok = idx < len(scores)
        out[t, ok] = precision[t, idx[ok]]
    return out


def _by_image(items: Sequence[ImageInstances], what: str) -> dict[int | str, ImageInstances]:
    """``{image_id: instances}``; a repeated image id is an error."""
    out = {}
    for item in items:
        if item.image_id in out:
            raise ValueError(f"{what}: image id {item.image_id!r} given twice")
        out[item.image_id] = item
    return out


def _check_inputs(gts: dict, preds: dict, iou_type: str, max_dets: int) -> None:
    """Raise ValueError on inputs COCOeval would reject or that cannot be evaluated."""
    if iou_type not in IOU_TYPES:
        raise ValueError(f"iou_type: expected one of {IOU_TYPES}, got {iou_type!r}")
    if max_dets < 1:
        raise ValueError(f"max_dets: expected >= 1, got {max_dets}")
    unknown = set(preds) - set(gts)
    if unknown:
        raise ValueError(f"predictions for images without ground truth entry: {sorted(map(str, unknown))[:5]}")
    for pred in preds.values():
        if pred.scores is None:
            raise ValueError(f"image {pred.image_id!r}: predictions need scores")


def _summary(precision: np.ndarray | None, n_pos: int) -> dict:
    """Per-class AP50:95, AP50, AP75 of a (T, R) precision (NaN when the class has no positive)."""
    if precision is None:
        return {"AP50_95": float("nan"), "AP50": float("nan"), "AP75": float("nan"), "gt": n_pos}
    return {"AP50_95": float(precision.mean()), "AP50": float(precision[_T50].mean()),
            "AP75": float(precision[_T75].mean()), "gt": n_pos}


def _nanmean(values: list[float]) -> float:
    """Mean of the non-NaN values, NaN when there is none."""
    kept = [v for v in values if not np.isnan(v)]
    return float(np.mean(kept)) if kept else float("nan")


def coco_map(gts: Sequence[ImageInstances], preds: Sequence[ImageInstances], *, iou_type: str = "segm",
             class_ids: Sequence[int] | None = None, max_dets: int = 100) -> dict:
    """COCO mAP of predictions against ground truth, as pycocotools ``COCOeval`` (see the module docstring).

    Args:
        gts: ground truth, one entry per evaluated image (an image may have no instance).
        preds: predictions, at most one entry per image; images without an entry have no detection.
        iou_type: "bbox" (box IoU) or "segm" (mask IoU; needs ``masks``).
        class_ids: the classes to evaluate; default: every class in ``gts`` or ``preds``.
        max_dets: detections kept per image and class (highest scores).

    Returns:
        ``{"mAP50_95", "mAP50", "mAP75": float, "per_class": {class_id: {"AP50_95", "AP50", "AP75": float,
        "gt": int}}, "images": int}``; ``gt`` counts the non-crowd ground truths. A class without one has
        NaN APs and is left out of the means; a mean over no class is NaN (pycocotools reports -1).

    Raises:
        ValueError: unknown ``iou_type``, ``max_dets`` < 1, a repeated image id, predictions without scores
            or for an image not in ``gts``, or missing masks for "segm".
    """
    gt_by_id, pred_by_id = _by_image(gts, "gts"), _by_image(preds, "preds")
    _check_inputs(gt_by_id, pred_by_id, iou_type, max_dets)
    image_ids = sorted(gt_by_id)  # COCOeval concatenates images in sorted id order (it breaks score ties)
    if class_ids is None:
        class_ids = sorted({int(c) for inst in (*gts, *pred_by_id.values()) for c in inst.classes})
    per_class = {}
    for cls in sorted({int(c) for c in class_ids}):
        per_image = [_evaluate_image(gt_by_id[i], pred_by_id.get(i), cls, iou_type, max_dets) for i in image_ids]
        n_pos = sum(r[3] for r in per_image)
        precision = None
        if n_pos:
            scores = np.concatenate([np.zeros(0)] + [r[0] for r in per_image])
            tp = np.concatenate([np.zeros((len(IOU_THRESHOLDS), 0), bool)] + [r[1] for r in per_image], axis=1)
            fp = np.concatenate([np.zeros((len(IOU_THRESHOLDS), 0), bool)] + [r[2] for r in per_image], axis=1)
            precision = precision_at_recalls(scores, tp, fp, n_pos)
        per_class[cls] = _summary(precision, n_pos)
    return {
        "mAP50_95": _nanmean([v["AP50_95"] for v in per_class.values()]),
        "mAP50": _nanmean([v["AP50"] for v in per_class.values()]),
        "mAP75": _nanmean([v["AP75"] for v in per_class.values()]),
        "per_class": per_class,
        "images": len(gt_by_id),
    }
