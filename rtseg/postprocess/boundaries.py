"""Boundaries: the pixels where a label map changes, for ``--save-boundaries``, contour drawing and the
boundary F-score.

A label map's boundary of width ``w`` is the band of pixels whose ``(w + 1) x (w + 1)`` neighbourhood holds
more than one label (a morphological gradient on the labels): width 1 marks one side of each change, width 2
one pixel on each side, and so on. The frame's edge is no boundary.
"""

from __future__ import annotations

import cv2
import numpy as np
from numpy.typing import NDArray

from rtseg.errors import ConfigError
from rtseg.types import FrameResult

MAX_WIDTH = 64


def check_width(width: int) -> int:
    """``width`` as an int in 1..:data:`MAX_WIDTH`, else :class:`~rtseg.errors.ConfigError`."""
    if isinstance(width, bool) or not isinstance(width, (int, np.integer)) or not 1 <= width <= MAX_WIDTH:
        raise ConfigError(f"boundary_width={width!r}: expected a whole number of pixels, 1..{MAX_WIDTH}")
    return int(width)


def boundary_map(labels: NDArray[np.integer], width: int = 2) -> NDArray[np.bool_]:
    """Pixels where ``labels`` changes, as a band ``width`` pixels wide.

    Args:
        labels: (H, W) class or segment ids (any integer dtype).
        width: band width in pixels (1..64).

    Example:
        >>> labels = np.zeros((3, 6), np.uint8); labels[:, 3:] = 1
        >>> boundary_map(labels, 2).astype(int).tolist()[0]
        [0, 0, 1, 1, 0, 0]
        >>> boundary_map(labels, 1).astype(int).tolist()[0]
        [0, 0, 0, 1, 0, 0]
    """
    width = check_width(width)
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise ValueError(f"labels: expected (H, W), got {labels.shape}")
    if labels.dtype not in (np.uint8, np.uint16, np.int16, np.float32):
        labels = labels.astype(np.float32 if labels.size and labels.max() >= 65536 else np.uint16)
    kernel = np.ones((width + 1, width + 1), np.uint8)
    # OpenCV's default border for dilate/erode never wins, so the frame's edge is not a change
    return cv2.dilate(labels, kernel) != cv2.erode(labels, kernel)


def mask_boundary(mask: NDArray[np.bool_]) -> NDArray[np.bool_]:
    """The inner boundary of a binary mask: its pixels with a 4-neighbour outside it (the frame's edge is not
    outside). One pixel wide; what the boundary F-score matches.

    Example:
        >>> m = np.zeros((5, 5), bool); m[1:4, 1:4] = True
        >>> int(mask_boundary(m).sum())
        8
    """
    mask = np.asarray(mask, np.uint8)
    cross = cv2.getStructuringElement(cv2.MORPH_CROSS, (3, 3))
    return (mask > 0) & (cv2.erode(mask, cross, borderType=cv2.BORDER_REPLICATE) == 0)


def segment_map(result: FrameResult) -> NDArray[np.int32] | None:
    """One id per pixel for a result's boundaries: the panoptic segment ids when fused; else the semantic
    labels with each instance painted over them (lowest score first, so the best one's outline is whole);
    None when the result has neither labels nor masks."""
    if result.panoptic is not None:
        return result.panoptic.ids
    has_masks = result.masks is not None and len(result.masks) > 0
    if result.semantic is None and not has_masks:
        return None
    h, w = result.image_hw
    ids = np.zeros((h, w), np.int32) if result.semantic is None else result.semantic.astype(np.int32)
    if has_masks:
        assert result.masks is not None
        for i in np.argsort(result.scores, kind="stable"):
            crop = result.masks.crops[i]
            x0, y0 = (max(0, int(v)) for v in result.masks.origins_xy[i])
            region = ids[y0 : y0 + crop.shape[0], x0 : x0 + crop.shape[1]]
            region[crop[: region.shape[0], : region.shape[1]]] = 256 + int(i)  # above every class id
    return ids
