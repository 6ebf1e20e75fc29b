"""Semantic metrics against a plain per-class Python computation and a hand-worked example."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rtseg.evaluate.semantic import confusion_matrix, semantic_metrics


def reference(pred: np.ndarray, gt: np.ndarray, num_classes: int, ignore: int | None) -> dict:
    """Straightforward per-class counting over pixel lists, no confusion matrix."""
    p, g = pred.ravel().tolist(), gt.ravel().tolist()
    pairs = [(a, b) for a, b in zip(p, g) if ignore is None or b != ignore]
    ious, dices, precisions, recalls, present, in_gt = [], [], [], [], [], []
    for c in range(num_classes):
        tp = sum(1 for a, b in pairs if a == c and b == c)
        fp = sum(1 for a, b in pairs if a == c and b != c)
        fn = sum(1 for a, b in pairs if a != c and b == c)
        nan = float("nan")
        ious.append(tp / (tp + fp + fn) if tp + fp + fn else nan)
        dices.append(2 * tp / (2 * tp + fp + fn) if tp + fp + fn else nan)
        precisions.append(tp / (tp + fp) if tp + fp else nan)
        recalls.append(tp / (tp + fn) if tp + fn else nan)
        present.append(tp + fp + fn > 0)
        in_gt.append(tp + fn > 0)
    correct = sum(1 for a, b in pairs if a == b)
    return {
        "pixel_accuracy": correct / len(pairs),
        "mean_pixel_accuracy": float(np.mean([r for r, k in zip(recalls, in_gt) if k])),
        "mIoU": float(np.mean([v for v, k in zip(ious, present) if k])),
        "mDice": float(np.mean([v for v, k in zip(dices, present) if k])),
        "iou": ious, "dice": dices, "precision": precisions, "recall": recalls, "pixels": len(pairs),
    }


def assert_same(got: dict, want: dict) -> None:
    assert got.keys() == want.keys()
    for key, value in want.items():
        if isinstance(value, list):
            np.testing.assert_allclose(got[key], value, rtol=1e-12, equal_nan=True, err_msg=key)
        else:
            assert got[key] == pytest.approx(value, rel=1e-12), key


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("ignore", [None, 2, 255])
def test_matches_reference_on_random_maps(seed: int, ignore: int | None) -> None:
    rng = np.random.default_rng(seed)
    num_classes = 6
    # classes 4 and 5 never appear in gt; class 5 appears in pred, class 4 nowhere
    gt = rng.integers(0, 4, (37, 53)).astype(np.uint8)
    pred = np.where(rng.random(gt.shape) < 0.6, gt, rng.choice([0, 1, 2, 3, 5], gt.shape)).astype(np.uint8)
    if ignore == 255:
        gt[rng.random(gt.shape) < 0.1] = 255
    conf = confusion_matrix(pred, gt, num_classes, ignore_index=ignore)
    assert conf.shape == (num_classes, num_classes) and conf.dtype == np.int64
    want = reference(pred, gt, num_classes, ignore)
    got = semantic_metrics(conf)
    assert_same(got, want)
    assert math.isnan(got["iou"][4]) and got["iou"][5] == 0.0  # absent: NaN, left out; predicted only: 0, in
    if ignore == 2:
        assert conf[2].sum() == 0


def test_confusion_accumulates_over_images() -> None:
    rng = np.random.default_rng(7)
    a_pred, a_gt, b_pred, b_gt = (rng.integers(0, 3, (8, 9)) for _ in range(4))
    both = confusion_matrix(np.concatenate([a_pred.ravel(), b_pred.ravel()]),
                            np.concatenate([a_gt.ravel(), b_gt.ravel()]), 3)
    np.testing.assert_array_equal(confusion_matrix(a_pred, a_gt, 3) + confusion_matrix(b_pred, b_gt, 3), both)


def test_hand_worked_example() -> None:
    gt = np.array([[0, 0, 1],
                   [1, 1, 9]])
    pred = np.array([[0, 1, 1],
                     [1, 0, 0]])
    conf = confusion_matrix(pred, gt, 3, ignore_index=9)
    # rows gt, cols pred: gt 0 -> {0, 1}; gt 1 -> {1, 1, 0}; the 9 is ignored
    np.testing.assert_array_equal(conf, [[1, 1, 0], [1, 2, 0], [0, 0, 0]])
    m = semantic_metrics(conf)
    assert m["pixel_accuracy"] == pytest.approx(3 / 5)
    # class 0: TP 1, FP 1, FN 1 -> IoU 1/3, Dice 2/4; class 1: TP 2, FP 1, FN 1 -> IoU 2/4, Dice 4/6
    np.testing.assert_allclose(m["iou"], [1 / 3, 1 / 2, np.nan], equal_nan=True)
    np.testing.assert_allclose(m["dice"], [1 / 2, 2 / 3, np.nan], equal_nan=True)
    np.testing.assert_allclose(m["precision"], [1 / 2, 2 / 3, np.nan], equal_nan=True)
    np.testing.assert_allclose(m["recall"], [1 / 2, 2 / 3, np.nan], equal_nan=True)
    assert m["mIoU"] == pytest.approx((1 / 3 + 1 / 2) / 2)  # class 2 absent everywhere: not averaged
    assert m["mDice"] == pytest.approx((1 / 2 + 2 / 3) / 2)
    assert m["mean_pixel_accuracy"] == pytest.approx((1 / 2 + 2 / 3) / 2)
    assert m["pixels"] == 5


def test_perfect_and_empty() -> None:
    labels = np.array([[0, 2], [2, 2]])
    m = semantic_metrics(confusion_matrix(labels, labels, 3))
    assert m["pixel_accuracy"] == m["mIoU"] == m["mDice"] == m["mean_pixel_accuracy"] == 1.0
    empty = semantic_metrics(np.zeros((3, 3), np.int64))
    assert all(math.isnan(empty[k]) for k in ("pixel_accuracy", "mIoU", "mDice", "mean_pixel_accuracy"))


@pytest.mark.parametrize(("pred", "gt", "match"), [
    (np.zeros((2, 2)), np.zeros((2, 3)), "same shape"),
    (np.full((2, 2), 3), np.zeros((2, 2)), "pred: expected class ids"),
    (np.zeros((2, 2)), np.full((2, 2), -1), "gt: expected class ids"),
])
def test_bad_input(pred: np.ndarray, gt: np.ndarray, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        confusion_matrix(pred, gt, 3)


def test_bad_conf_shape() -> None:
    with pytest.raises(ValueError, match="square"):
        semantic_metrics(np.zeros((2, 3)))
