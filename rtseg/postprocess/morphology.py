"""Morphological clean-up of semantic label maps and binary masks (OpenCV).

Three knobs, applied in this order:

* ``open_px``: opening (erode, then dilate) with an elliptical kernel ``open_px`` pixels across. Removes
  specks and strands thinner than the kernel; larger shapes keep their outline (up to rounding of corners).
* ``close_px``: closing (dilate, then erode). Fills holes and cracks narrower than the kernel.
* ``min_area``: drops connected components (8-connected) of fewer than ``min_area`` pixels.

For a label map every class is cleaned as its own binary mask. Pixels a class loses, and pixels that two
classes' closings both claim, are then given the majority class of the pixels bordering them (the ring one
pixel outside each connected patch of such pixels). A speck inside a region therefore takes that region's
class, and a speck on the boundary between two regions takes the class with the longer shared border. We
chose the surrounding majority over "background" because a speck inside a road is road, not background.
"""

from __future__ import annotations

from collections.abc import Collection
from functools import lru_cache

import cv2
import numpy as np
from numpy.typing import NDArray

_UNSET = -1


@lru_cache(maxsize=32)
def _ellipse(px: int) -> NDArray[np.uint8]:
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (px, px))


def _check(open_px: int, close_px: int, min_area: int) -> None:
    if open_px < 0 or close_px < 0 or min_area < 0:
        raise ValueError(f"open_px={open_px}, close_px={close_px}, min_area={min_area}: expected values >= 0")


def _small_components(mask: NDArray[np.uint8], min_area: int) -> NDArray[np.bool_]:
    """Pixels of ``mask`` (0/1 uint8) in 8-connected components smaller than ``min_area``."""
    n, comp, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    small = stats[:, cv2.CC_STAT_AREA] < min_area
    small[0] = False  # label 0 is the outside of the mask
    return small[comp] if small.any() else np.zeros(mask.shape, dtype=bool)


def clean_mask(mask: NDArray[np.bool_] | NDArray[np.uint8], *, open_px: int = 0, close_px: int = 0,
               min_area: int = 0) -> NDArray[np.bool_]:
    """Open, close, then drop small components of one binary mask.

    Args:
        mask: (H, W) bool, or uint8 where non-zero is foreground.
        open_px: diameter in pixels of the opening's elliptical kernel; 0 or 1 skips the opening.
        close_px: diameter in pixels of the closing's elliptical kernel; 0 or 1 skips the closing.
        min_area: foreground components with fewer pixels are removed (holes are not filled by it; use
            ``close_px`` for that); 0 keeps all.

    Returns:
        (H, W) bool mask.
    """
    _check(open_px, close_px, min_area)
    m = (np.asarray(mask) != 0).astype(np.uint8)
    if m.ndim != 2:
        raise ValueError(f"mask: expected a 2-D array, got shape {m.shape}")
    if open_px > 1:
        m = cv2.morphologyEx(m, cv2.MORPH_OPEN, _ellipse(open_px))
    if close_px > 1:
        # BORDER_REPLICATE: closing must not invent or erase foreground along the frame edge
        m = cv2.morphologyEx(m, cv2.MORPH_CLOSE, _ellipse(close_px), borderType=cv2.BORDER_REPLICATE)
    if min_area > 1:
        m[_small_components(m, min_area)] = 0
    return m.astype(bool)


def clean_labels(labels: NDArray[np.uint8], *, open_px: int = 0, close_px: int = 0, min_area: int = 0,
                 ignore: Collection[int] = (), fill: int = 0) -> NDArray[np.uint8]:
    """Open, close and drop small components of every class of a label map (see the module docstring).

    Args:
        labels: (H, W) uint8 class ids.
        open_px, close_px, min_area: as in :func:`clean_mask`, applied to each class in turn.
        ignore: class ids left exactly as they are (e.g. a "void" label 255): they are not cleaned, other
            classes' closings cannot take their pixels, and they count as neighbours when gaps are filled.
        fill: class given to a gap with no labelled neighbour at all (only when every pixel was removed).

    Returns:
        A new (H, W) uint8 label map. Cost: two morphology passes and a component labelling per class
        present, each limited to that class's bounding box.
    """
    _check(open_px, close_px, min_area)
    labels = np.asarray(labels)
    if labels.ndim != 2 or labels.dtype != np.uint8:
        raise ValueError(f"labels: expected a 2-D uint8 array, got {labels.dtype} {labels.shape}")
    if open_px <= 1 and close_px <= 1 and min_area <= 1:
        return labels.copy()
    frozen = np.isin(labels, np.asarray(list(ignore), dtype=np.int64)) if ignore else None
    classes = [int(c) for c in np.unique(labels) if int(c) not in set(ignore)]
    out = labels.astype(np.int16)
    h, w = labels.shape
    margin = max(open_px, close_px) + 1
    windows: dict[int, tuple[int, int, int, int]] = {}  # each class's bounding box plus a kernel's margin
    for c in classes:
        mask = (labels == c).astype(np.uint8)
        x, y, bw, bh = cv2.boundingRect(mask)
        y0, y1, x0, x1 = max(y - margin, 0), min(y + bh + margin, h), max(x - margin, 0), min(x + bw + margin, w)
        windows[c] = (y0, y1, x0, x1)
        if open_px > 1:
            m = mask[y0:y1, x0:x1]
            # default border (outside = foreground for the erosion): shapes touching the frame edge stay intact
            kept = cv2.morphologyEx(m, cv2.MORPH_OPEN, _ellipse(open_px))
            out[y0:y1, x0:x1][(m == 1) & (kept == 0)] = _UNSET
    if close_px > 1:
        claims = np.zeros((h, w), dtype=np.int16)
        claimant = np.full((h, w), _UNSET, dtype=np.int16)
        for c, (y0, y1, x0, x1) in windows.items():
            # the closing may reach up to close_px beyond the opened mask: widen the window again
            y0, y1, x0, x1 = max(y0 - close_px, 0), min(y1 + close_px, h), max(x0 - close_px, 0), min(x1 + close_px, w)
            full = (out[y0:y1, x0:x1] == c).astype(np.uint8)
            closed = cv2.morphologyEx(full, cv2.MORPH_CLOSE, _ellipse(close_px), borderType=cv2.BORDER_REPLICATE)
            gained = (closed == 1) & (full == 0)
            if frozen is not None:
                gained &= ~frozen[y0:y1, x0:x1]
            claims[y0:y1, x0:x1] += gained
            claimant[y0:y1, x0:x1][gained] = c
        out[claims == 1] = claimant[claims == 1]
        out[claims > 1] = _UNSET
    if min_area > 1:
        for c in classes:
            mask = (out == c).astype(np.uint8)
            out[_small_components(mask, min_area)] = _UNSET
    _fill_gaps(out, fill)
    return out.astype(np.uint8)


def _fill_gaps(out: NDArray[np.int16], fill: int) -> None:
    """Give each connected patch of unset pixels the majority label of the ring of pixels around it."""
    gaps = (out == _UNSET).astype(np.uint8)
    if not gaps.any():
        return
    n, comp, stats, _ = cv2.connectedComponentsWithStats(gaps, connectivity=8)
    h, w = out.shape
    cross = cv2.getStructuringElement(cv2.MORPH_RECT, (3, 3))
    values = np.empty(n, dtype=np.int16)
    values[0] = 0
    for i in range(1, n):
        x, y, bw, bh = stats[i, :4]
        y0, y1, x0, x1 = max(y - 1, 0), min(y + bh + 1, h), max(x - 1, 0), min(x + bw + 1, w)
        patch = (comp[y0:y1, x0:x1] == i).astype(np.uint8)
        ring = (cv2.dilate(patch, cross) == 1) & (patch == 0)
        around = out[y0:y1, x0:x1][ring]
        around = around[around != _UNSET]  # the ring never holds gaps (8-connected), but stay safe
        values[i] = np.bincount(around.astype(np.int64)).argmax() if len(around) else fill
    sel = comp > 0
    out[sel] = values[comp[sel]]
