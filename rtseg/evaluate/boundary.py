"""Boundary F-score (BF) of semantic segmentation: how well the predicted class edges follow the true ones.

Csurka et al., "What is a good evaluation measure for semantic segmentation?" (BMVC 2013), as MATLAB's
``bfscore``: for each class, the boundary of its predicted mask and of its true mask (their pixels with a
4-neighbour outside, :func:`rtseg.postprocess.boundaries.mask_boundary`); precision is the fraction of
predicted boundary pixels within ``tolerance`` pixels (Euclidean) of a true boundary pixel, recall the fraction
of true boundary pixels within ``tolerance`` of a predicted one, BF = 2PR / (P + R). mIoU barely moves when an
edge is off by a few pixels along a long border; BF does. The default tolerance is 0.75% of the image
diagonal (Csurka et al.'s choice). Counts are summed over the data set per class before the ratios are taken,
as the confusion matrix is. Unlabelled ground-truth pixels (``ignore_index``) take their nearest labelled
pixel's class, so that the true edge runs through the middle of an unlabelled band (the border of an
Oxford-IIIT Pet trimap) rather than along one side of it.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
from numpy.typing import NDArray

from rtseg.postprocess.boundaries import mask_boundary

DIAGONAL_FRACTION = 0.0075  # Csurka et al. 2013


def default_tolerance(image_hw: tuple[int, int]) -> float:
    """0.75% of the image diagonal, in pixels (at least 1)."""
    return max(1.0, DIAGONAL_FRACTION * math.hypot(*image_hw))


def _near(boundary: NDArray[np.bool_], other: NDArray[np.bool_], tolerance: float) -> int:
    """How many pixels of ``boundary`` lie within ``tolerance`` of a pixel of ``other``."""
    if not boundary.any() or not other.any():
        return 0
    distance = cv2.distanceTransform((~other).view(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    return int(np.count_nonzero(boundary & (distance <= tolerance + 1e-6)))


def boundary_f1(pred: NDArray[np.bool_], gt: NDArray[np.bool_], tolerance: float) -> tuple[float, float, float]:
    """(precision, recall, F1) of one binary mask's boundary against another's, NaN where undefined.

    Example:
        >>> gt = np.zeros((50, 50), bool); gt[10:30, 10:30] = True
        >>> pred = np.roll(gt, 3, axis=1)                                   # 3 px to the right
        >>> boundary_f1(pred, gt, 3.0)
        (1.0, 1.0, 1.0)
    """
    counts = boundary_counts(pred, gt, tolerance)
    return _ratios(*counts)


def boundary_counts(pred: NDArray[np.bool_], gt: NDArray[np.bool_], tolerance: float,
                    valid: NDArray[np.bool_] | None = None) -> tuple[int, int, int, int]:
    """(predicted boundary pixels, of them near a true one, true boundary pixels, of them near a predicted one).
    ``valid``: where the ground truth is labelled; predicted boundary pixels elsewhere are not counted (an
    edge drawn inside an unlabelled band, as Oxford-IIIT Pet trimaps have along every edge, is no false
    positive), though they still match true boundary pixels nearby."""
    pb, gb = mask_boundary(pred), mask_boundary(gt)
    counted = pb if valid is None else pb & valid
    return (int(np.count_nonzero(counted)), _near(counted, gb, tolerance), int(np.count_nonzero(gb)),
            _near(gb, pb, tolerance))


def _ratios(pred_n: int, pred_hit: int, gt_n: int, gt_hit: int) -> tuple[float, float, float]:
    p = pred_hit / pred_n if pred_n else float("nan")
    r = gt_hit / gt_n if gt_n else float("nan")
    if pred_n == 0 and gt_n == 0:
        return p, r, float("nan")
    if not (p > 0 and r > 0):  # NaN (one side has no boundary) or zero: no agreement
        return (0.0 if p != p else p), (0.0 if r != r else r), 0.0
    return p, r, 2 * p * r / (p + r)


def bf_update(counts: NDArray[np.int64], pred: NDArray[np.integer], gt: NDArray[np.integer], *,
              tolerance: float | None = None, ignore_index: int | None = None) -> None:
    """Add one image's per-class boundary counts to ``counts`` ((C, 4) int64, see :func:`boundary_counts`).

    Args:
        pred, gt: (H, W) class ids; ``gt`` may hold ``ignore_index`` (unlabelled: neither side counts there).
        tolerance: pixels; default 0.75% of the image diagonal.
    """
    tol = default_tolerance(gt.shape) if tolerance is None else float(tolerance)
    valid = None if ignore_index is None else gt != ignore_index
    if valid is not None and valid.all():
        valid = None
    if valid is not None and valid.any():
        gt = _nearest_label(gt, valid)
    for c in range(len(counts)):
        p, g = pred == c, gt == c
        if p.any() or g.any():
            # every predicted edge pixel counts, also on unlabelled ground: leaving out those in a trimap's
            # band would keep exactly the predicted edges that are off by more than half its width
            counts[c] += boundary_counts(p, g, tol)


def _nearest_label(gt: NDArray[np.integer], valid: NDArray[np.bool_]) -> NDArray[np.integer]:
    """``gt`` with each unlabelled pixel given its nearest labelled pixel's class: the true edge then runs through
    the middle of an unlabelled band (a trimap's border), not along one side of it."""
    _, nearest = cv2.distanceTransformWithLabels((~valid).view(np.uint8), cv2.DIST_L2, 5,
                                                 labelType=cv2.DIST_LABEL_PIXEL)
    labelled = gt.ravel()[np.flatnonzero(valid.ravel())]  # DIST_LABEL_PIXEL numbers the zero pixels 1.. in scan order
    return labelled[nearest.ravel() - 1].reshape(gt.shape)


def bf_scores(counts: NDArray[np.int64]) -> tuple[list[float], float]:
    """Per-class BF from summed counts (NaN for a class with no boundary on either side) and their mean."""
    per_class = [_ratios(*(int(v) for v in row))[2] for row in counts]
    defined = [f for f in per_class if f == f]
    return per_class, (float(np.mean(defined)) if defined else float("nan"))
