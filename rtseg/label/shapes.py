"""Pre-labels of one frame: each object's class, simplified outline polygons, score and review flag."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
from numpy.typing import NDArray

from rtseg.data.convert import IGNORE, instances_from_mask_png
from rtseg.types import FrameResult

MIN_PIECE_AREA = 4.0  # px: outline pieces smaller than this (a stray pixel or two) are not worth a polygon


@dataclass(frozen=True)
class PreLabel:
    """One object a person is asked to check.

    Attributes:
        class_id: index into the model's class names.
        label: the class name.
        polygons: one (N, 2) float32 polygon per separate piece of the object, (x, y) in frame pixels; several
            pieces share one instance (LabelMe ``group_id``, one COCO annotation, one CVAT group).
        score: the model's confidence; None for semantic regions (a label map carries no score).
        review: the score is below ``review_below``: check this one first.
    """

    class_id: int
    label: str
    polygons: tuple[NDArray[np.float32], ...]
    score: float | None = None
    review: bool = False


@dataclass(frozen=True)
class LabelledFrame:
    """A sampled frame and its pre-labels. ``name`` is the file stem its image and label files share."""

    name: str
    image_hw: tuple[int, int]
    objects: tuple[PreLabel, ...]


def mask_polygons(mask: NDArray[np.bool_], *, tolerance: float = 1.0, origin_xy: Sequence[int] = (0, 0)
                  ) -> tuple[NDArray[np.float32], ...]:
    """The outer outlines of a binary mask, simplified with Douglas-Peucker (``cv2.approxPolyDP``).

    Args:
        mask: (h, w) bool, box-local or full frame.
        tolerance: largest distance in pixels between the simplified outline and the mask's own
            (0 keeps every corner of the pixel outline).
        origin_xy: where the mask's top-left pixel sits in the frame.

    Returns:
        One (N, 2) float32 (x, y) polygon per piece of at least 3 points and :data:`MIN_PIECE_AREA` px,
        largest piece first. Coordinates are pixel centres, as ``cv2.findContours`` gives them.

    Example:
        >>> m = np.zeros((20, 20), bool); m[5:15, 4:12] = True
        >>> mask_polygons(m)[0].tolist()
        [[4.0, 5.0], [4.0, 14.0], [11.0, 14.0], [11.0, 5.0]]
    """
    contours, _ = cv2.findContours(np.ascontiguousarray(mask, dtype=np.uint8), cv2.RETR_EXTERNAL,
                                   cv2.CHAIN_APPROX_SIMPLE)
    pieces = []
    for c in sorted(contours, key=cv2.contourArea, reverse=True):
        if cv2.contourArea(c) < MIN_PIECE_AREA:
            continue
        poly = cv2.approxPolyDP(c, float(tolerance), True).reshape(-1, 2) if tolerance > 0 else c.reshape(-1, 2)
        if len(poly) >= 3:
            pieces.append((poly + np.asarray(origin_xy, np.int32)).astype(np.float32))
    return tuple(pieces)


def instance_prelabels(result: FrameResult, names: Sequence[str], *, tolerance: float = 1.0,
                       review_below: float = 0.5) -> tuple[PreLabel, ...]:
    """Pre-labels from an instance model's result: its box-local masks outlined, scores kept; objects whose
    mask has no piece worth a polygon are left out."""
    out = []
    if result.masks is None:
        return ()
    for i in range(len(result)):
        polys = mask_polygons(result.masks.crops[i], tolerance=tolerance, origin_xy=result.masks.origins_xy[i])
        if not polys:
            continue
        cls, score = int(result.class_ids[i]), float(result.scores[i])
        out.append(PreLabel(cls, str(names[cls]), polys, score, score < review_below))
    return tuple(out)


def semantic_prelabels(labels: NDArray[np.uint8], names: Sequence[str], *, tolerance: float = 1.0,
                       min_area: int = 16) -> tuple[PreLabel, ...]:
    """Pre-labels from a semantic label map: one object per connected region of each class but the
    background (class 0 named ``background``); no score, so none is flagged for review."""
    background = 0 if names and str(names[0]).lower() == "background" else -1
    out = []
    for cls, mask in instances_from_mask_png(labels, ignore=IGNORE, background=background, min_area=min_area):
        polys = mask_polygons(mask, tolerance=tolerance)
        if polys:
            out.append(PreLabel(int(cls), str(names[cls]), polys))
    return tuple(out)
