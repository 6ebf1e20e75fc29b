"""Morphological clean-up on synthetic masks and label maps whose clean version is known by construction."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from rtseg.postprocess.morphology import clean_labels, clean_mask

HW = (120, 160)


def shapes() -> np.ndarray:
    """A disc and a rectangle, large compared with every kernel used below."""
    mask = np.zeros(HW, np.uint8)
    cv2.circle(mask, (45, 60), 30, 1, -1)
    cv2.rectangle(mask, (95, 20), (150, 100), 1, -1)
    return mask.astype(bool)


def speckle(rng: np.random.Generator, keep_out: np.ndarray, n: int = 60) -> tuple[np.ndarray, np.ndarray]:
    """``n`` isolated single pixels at least 3 px away from ``keep_out`` and from each other."""
    forbidden = cv2.dilate(keep_out.astype(np.uint8), np.ones((7, 7), np.uint8)).astype(bool)
    ys, xs = [], []
    while len(ys) < n:
        y, x = int(rng.integers(0, HW[0])), int(rng.integers(0, HW[1]))
        if not forbidden[y, x]:
            ys.append(y)
            xs.append(x)
            forbidden[max(y - 3, 0) : y + 4, max(x - 3, 0) : x + 4] = True
    return np.array(ys), np.array(xs)


def test_open_removes_speckle_and_keeps_large_shapes() -> None:
    clean = shapes()
    ys, xs = speckle(np.random.default_rng(0), clean)
    noisy = clean.copy()
    noisy[ys, xs] = True
    out = clean_mask(noisy, open_px=3)
    assert not out[ys, xs].any()
    # the shapes survive: only a few outline pixels (rectangle corners, disc staircase) may go
    assert (out != clean).sum() <= 0.005 * clean.sum() and not (out & ~clean).any()
    np.testing.assert_array_equal(clean_mask(noisy), noisy)  # all knobs at 0: unchanged


def test_close_fills_small_holes_but_not_large_ones() -> None:
    clean = shapes()
    holey = clean.copy()
    holey[58:61, 44:47] = False  # 3x3 hole in the disc
    holey[40:60, 110:130] = False  # 20x20 hole in the rectangle: a real gap, must stay
    out = clean_mask(holey, close_px=7)
    assert out[58:61, 44:47].all()
    assert not out[42:58, 112:128].any()
    assert (out != holey).sum() <= 0.01 * clean.sum() + 9  # nothing else moves much


def test_min_area_drops_small_components_only() -> None:
    mask = np.zeros(HW, bool)
    mask[10:14, 10:14] = True  # 16 px
    mask[50:90, 50:100] = True  # 2000 px
    mask[100:106, 120:126] = True  # 36 px
    out = clean_mask(mask, min_area=30)
    assert not out[10:14, 10:14].any()
    assert out[50:90, 50:100].all() and out[100:106, 120:126].all()
    assert out.sum() == 2000 + 36


def label_scene() -> np.ndarray:
    """Background 0, a class-1 rectangle and a class-2 disc."""
    labels = np.zeros(HW, np.uint8)
    labels[20:100, 10:80] = 1
    cv2.circle(labels, (120, 60), 30, 2, -1)
    return labels


def test_labels_speckle_takes_the_surrounding_class() -> None:
    clean = label_scene()
    noisy = clean.copy()
    rng = np.random.default_rng(1)
    inside = (np.array([30, 50, 70, 90]), np.array([20, 40, 60, 30]))  # in the class-1 rectangle
    noisy[inside] = 2
    ys, xs = speckle(rng, clean > 0, n=30)  # on the background
    noisy[ys, xs] = rng.integers(1, 3, len(ys))
    out = clean_labels(noisy, open_px=3)
    assert (out[inside] == 1).all() and (out[ys, xs] == 0).all()
    assert (out != clean).mean() <= 0.002


def test_labels_close_and_min_area() -> None:
    clean = label_scene()
    holey = clean.copy()
    holey[50:53, 40:43] = 0  # 3x3 background hole in class 1
    holey[60:64, 118:122] = 1  # 4x4 island of class 1 inside the class-2 disc
    closed = clean_labels(holey, close_px=7)
    assert (closed[50:53, 40:43] == 1).all()
    assert (closed != clean).mean() <= 0.002
    small = clean_labels(holey, min_area=20)
    assert (small[50:53, 40:43] == 1).all() and (small[60:64, 118:122] == 2).all()
    np.testing.assert_array_equal(small, clean)


def test_labels_ignore_freezes_a_class() -> None:
    labels = label_scene()
    labels[60:64, 118:122] = 255  # a small "void" patch
    out = clean_labels(labels, open_px=5, min_area=50, ignore=(255,))
    assert (out[60:64, 118:122] == 255).all()
    out = clean_labels(labels, open_px=5, min_area=50)
    assert (out[60:64, 118:122] == 2).all()


def test_labels_everything_removed_falls_back_to_fill() -> None:
    labels = np.zeros((5, 5), np.uint8)
    labels[2, 2] = 3
    labels[0, 0] = 1
    out = clean_labels(labels, min_area=100, fill=7)  # every component is smaller than 100 px
    assert (out == 7).all()


@pytest.mark.parametrize("kwargs", [{"open_px": -1}, {"close_px": -2}, {"min_area": -5}])
def test_negative_sizes_are_rejected(kwargs) -> None:
    with pytest.raises(ValueError):
        clean_mask(np.zeros((4, 4), bool), **kwargs)
    with pytest.raises(ValueError):
        clean_labels(np.zeros((4, 4), np.uint8), **kwargs)


def test_labels_must_be_2d_uint8() -> None:
    with pytest.raises(ValueError, match="uint8"):
        clean_labels(np.zeros((4, 4), np.int32), open_px=3)
