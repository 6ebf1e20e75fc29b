"""Semantic segmentation metrics from a confusion matrix: pixel accuracy, IoU, Dice, precision, recall.

Accumulate :func:`confusion_matrix` over a data set (the matrices add up), then call
:func:`semantic_metrics` once: per-image averaging would weigh small images as much as large ones.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray


def confusion_matrix(pred: NDArray[np.integer], gt: NDArray[np.integer], num_classes: int,
                     ignore_index: int | None = None) -> NDArray[np.int64]:
    """Pixel counts ``conf[g, p]``: pixels of ground-truth class ``g`` predicted as class ``p``.

    Args:
        pred: predicted class ids, any shape (e.g. (H, W)).
        gt: ground-truth class ids, the same shape.
        num_classes: C; ids must lie in ``0..C-1`` (except ``ignore_index`` in ``gt``).
        ignore_index: ground-truth id whose pixels are left out entirely (e.g. "unlabeled"); it may lie
            outside ``0..C-1`` (255). If it is a class id, its row of the matrix is all zeros.

    Returns:
        (C, C) int64 matrix, rows = ground truth, columns = prediction.

    Raises:
        ValueError: shapes differ, or an id outside ``0..C-1``.
    """
    pred, gt = np.asarray(pred), np.asarray(gt)
    if pred.shape != gt.shape:
        raise ValueError(f"pred and gt: expected the same shape, got {pred.shape} and {gt.shape}")
    if num_classes < 1:
        raise ValueError(f"num_classes: expected >= 1, got {num_classes}")
    pred, gt = pred.ravel().astype(np.int64), gt.ravel().astype(np.int64)
    if ignore_index is not None:
        keep = gt != ignore_index
        pred, gt = pred[keep], gt[keep]
    for name, ids in (("gt", gt), ("pred", pred)):
        if ids.size and (ids.min() < 0 or ids.max() >= num_classes):
            raise ValueError(f"{name}: expected class ids in 0..{num_classes - 1}, got {ids.min()}..{ids.max()}")
    return np.bincount(gt * num_classes + pred, minlength=num_classes**2).reshape(num_classes, num_classes)


def _ratio(num: NDArray[np.int64], den: NDArray[np.int64]) -> NDArray[np.float64]:
    """num / den per class, NaN where den is 0 (the metric is undefined for that class)."""
    out = np.full(num.shape, np.nan)
    np.divide(num, den, out=out, where=den > 0)
    return out


def semantic_metrics(conf: NDArray[np.integer]) -> dict[str, float | list[float]]:
    """Metrics of a (C, C) confusion matrix (rows = ground truth, columns = prediction).

    Per class c, with TP = conf[c, c], FP = column sum - TP, FN = row sum - TP:
    IoU = TP / (TP + FP + FN), Dice (= F1) = 2 TP / (2 TP + FP + FN), precision = TP / (TP + FP),
    recall (= class accuracy) = TP / (TP + FN). A per-class value whose denominator is 0 is NaN.

    The means: ``mIoU``, ``mDice`` are over the classes *present in gt or pred* (TP + FP + FN > 0); a class
    absent from both says nothing about the model and is left out rather than counted as 0 or 1.
    ``mean_pixel_accuracy`` (mean class accuracy) is the mean recall over classes present in gt.
    ``pixel_accuracy`` = trace / total. All means are NaN when no class qualifies.

    Returns:
        ``{"pixel_accuracy", "mean_pixel_accuracy", "mIoU", "mDice": float,
        "iou", "dice", "precision", "recall": per-class lists (NaN where undefined), "pixels": int}``.
    """
    conf = np.asarray(conf, dtype=np.int64)
    if conf.ndim != 2 or conf.shape[0] != conf.shape[1]:
        raise ValueError(f"conf: expected a square (C, C) matrix, got shape {conf.shape}")
    tp = np.diag(conf)
    gt_count, pred_count = conf.sum(1), conf.sum(0)
    union = gt_count + pred_count - tp
    total = int(conf.sum())
    iou = _ratio(tp, union)
    dice = _ratio(2 * tp, gt_count + pred_count)
    precision = _ratio(tp, pred_count)
    recall = _ratio(tp, gt_count)

    def mean(values: NDArray[np.float64], present: NDArray[np.bool_]) -> float:
        return float(values[present].mean()) if present.any() else float("nan")

    return {
        "pixel_accuracy": float(tp.sum() / total) if total else float("nan"),
        "mean_pixel_accuracy": mean(recall, gt_count > 0),
        "mIoU": mean(iou, union > 0),
        "mDice": mean(dice, union > 0),
        "iou": iou.tolist(),
        "dice": dice.tolist(),
        "precision": precision.tolist(),
        "recall": recall.tolist(),
        "pixels": total,
    }
