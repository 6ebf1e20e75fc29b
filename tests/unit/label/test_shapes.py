"""Masks to simplified polygons, scores to review flags."""

from __future__ import annotations

import cv2
import numpy as np

from rtseg.label.shapes import instance_prelabels, mask_polygons, semantic_prelabels
from rtseg.types import FrameResult, InstanceMasks


def _disc(r: int = 30) -> np.ndarray:
    mask = np.zeros((80, 80), np.uint8)
    cv2.circle(mask, (40, 40), r, 1, -1)
    return mask.astype(bool)


def test_tolerance_simplifies_and_keeps_the_area() -> None:
    fine, coarse = mask_polygons(_disc(), tolerance=0)[0], mask_polygons(_disc(), tolerance=3)[0]
    assert len(coarse) < len(fine) / 3
    refill = np.zeros((80, 80), np.uint8)
    cv2.fillPoly(refill, [coarse.astype(np.int32)], 1)
    assert (refill.astype(bool) & _disc()).sum() / (refill.astype(bool) | _disc()).sum() > 0.95


def test_pieces_are_offset_by_the_crop_origin_and_specks_dropped() -> None:
    mask = np.zeros((20, 30), bool)
    mask[2:8, 2:10] = mask[12:18, 15:28] = True
    mask[0, 29] = True  # one pixel: no polygon
    pieces = mask_polygons(mask, origin_xy=(100, 50))
    assert len(pieces) == 2
    assert pieces[0][:, 0].min() == 115 and pieces[0][:, 1].min() == 62  # the larger piece first


def test_scores_below_the_threshold_are_flagged() -> None:
    crops = (_disc(10)[30:51, 30:51], _disc(10)[30:51, 30:51])
    result = FrameResult(0, (80, 80), np.array([[0, 0, 20, 20], [40, 40, 60, 60]], np.float32),
                         np.array([0.9, 0.3], np.float32), np.array([1, 0], np.int32),
                         masks=InstanceMasks(crops, np.array([[0, 0], [40, 40]], np.int32)))
    a, b = instance_prelabels(result, ["person", "dog"], review_below=0.5)
    assert (a.label, a.review, b.label, b.review) == ("dog", False, "person", True)


def test_semantic_regions_skip_the_background() -> None:
    labels = np.zeros((40, 40), np.uint8)
    labels[5:15, 5:15] = 1
    labels[25:35, 25:35] = 1
    labels[20:24, 0:30] = 2
    objects = semantic_prelabels(labels, ["background", "road", "car"])
    assert sorted(o.label for o in objects) == ["car", "road", "road"] and all(o.score is None for o in objects)


def test_docstring_examples_run() -> None:
    import doctest

    import rtseg.label.frames
    import rtseg.label.shapes

    for module in (rtseg.label.shapes, rtseg.label.frames):
        result = doctest.testmod(module, extraglobs={"np": np})
        assert result.failed == 0 and result.attempted > 0, module.__name__
