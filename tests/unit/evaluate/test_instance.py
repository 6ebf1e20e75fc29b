"""COCO mAP of rtseg.evaluate.instance against pycocotools' COCOeval on synthetic scenes."""

from __future__ import annotations

import contextlib
import io
import math

import numpy as np
import pytest
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from rtseg.evaluate.instance import ImageInstances, box_iou, coco_map

CLASSES = (0, 3, 7)
TOL = 1e-3


def draw(h: int, w: int, shape: tuple) -> np.ndarray:
    """Bool (h, w) mask of a rectangle (kind 0) or an ellipse (kind 1) ``(kind, cx, cy, rx, ry)``."""
    kind, cx, cy, rx, ry = shape
    yy, xx = np.mgrid[:h, :w]
    if kind == 0:
        return (np.abs(xx - cx) <= rx) & (np.abs(yy - cy) <= ry)
    return ((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2 <= 1


def encode(mask: np.ndarray) -> dict:
    return mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))


def random_shape(rng: np.random.Generator, h: int, w: int) -> tuple:
    return (int(rng.integers(2)), rng.uniform(4, w - 4), rng.uniform(4, h - 4), rng.uniform(2, w / 4),
            rng.uniform(2, h / 4))


def jitter(rng: np.random.Generator, shape: tuple, h: int, w: int, amount: float) -> tuple:
    kind, cx, cy, rx, ry = shape
    kind = 1 - kind if rng.random() < 0.1 else kind
    return (kind, float(np.clip(cx + rng.normal(0, amount * rx), 1, w - 2)),
            float(np.clip(cy + rng.normal(0, amount * ry), 1, h - 2)),
            max(1.5, rx * (1 + rng.normal(0, amount))), max(1.5, ry * (1 + rng.normal(0, amount))))


def instances(image_id: int, h: int, w: int, shapes: list, classes: list, rng: np.random.Generator,
              box_noise: float, **extra) -> ImageInstances:
    """Instances of the given shapes; boxes = tight mask boxes plus uniform noise of +-box_noise pixels."""
    masks = [encode(draw(h, w, s)) for s in shapes]
    boxes = np.array([mask_utils.toBbox(m) for m in masks]).reshape(-1, 4)
    boxes[:, 2:] += boxes[:, :2]
    boxes += rng.uniform(-box_noise, box_noise, boxes.shape)
    return ImageInstances(image_id, h, w, boxes, np.array(classes, dtype=int), masks, **extra)


def make_scene(seed: int, n_images: int = 8) -> tuple[list[ImageInstances], list[ImageInstances]]:
    """Ground truth (with crowds) and predictions: jittered copies, duplicates, misses, wrong classes, FPs."""
    rng = np.random.default_rng(seed)
    gts, preds = [], []
    for image_id in rng.permutation(n_images) * 7 + 1:  # unsorted, non-contiguous ids
        h, w = (int(v) for v in rng.integers(40, 90, size=2))
        shapes = [random_shape(rng, h, w) for _ in range(int(rng.integers(0, 8)))]
        shapes += shapes[:1] if rng.random() < 0.3 else []  # an exact duplicate: IoU ties in the matching
        n = len(shapes)
        classes = [int(c) for c in rng.choice(CLASSES, n)]
        gts.append(instances(int(image_id), h, w, shapes, classes, rng, 0.5, iscrowd=rng.random(n) < 0.15))
        p_shapes, p_classes = [], []
        for shape, cls in zip(shapes, classes):
            for _ in range(int(rng.random() < 0.8) + int(rng.random() < 0.2)):  # 0, 1 or 2 detections
                p_shapes.append(jitter(rng, shape, h, w, rng.uniform(0.01, 0.2)))
                p_classes.append(cls if rng.random() < 0.9 else int(rng.choice(CLASSES)))
        for _ in range(int(rng.integers(0, 4))):  # false positives
            p_shapes.append(random_shape(rng, h, w))
            p_classes.append(int(rng.choice(CLASSES)))
        if p_shapes and image_id != 1:  # the image with id 1 has no prediction entry
            order = rng.permutation(len(p_shapes))
            scores = np.round(rng.random(len(order)), 1)  # coarse: many ties
            preds.append(instances(int(image_id), h, w, [p_shapes[i] for i in order],
                                   [p_classes[i] for i in order], rng, 1.5, scores=scores))
    return gts, preds


def xywh(box: np.ndarray) -> list[float]:
    return [float(box[0]), float(box[1]), float(box[2] - box[0]), float(box[3] - box[1])]


def pycoco(gts: list[ImageInstances], preds: list[ImageInstances], iou_type: str, class_ids=CLASSES,
           max_dets: int = 100) -> COCOeval:
    """COCOeval (evaluated, accumulated, summarized) of the same data; ``max_dets`` replaces maxDets 100."""
    anns = []
    for g in gts:
        for i in range(len(g.classes)):
            anns.append({"id": len(anns) + 1, "image_id": g.image_id, "category_id": int(g.classes[i]),
                         "bbox": xywh(g.boxes[i]), "area": float(mask_utils.area(g.masks[i])),
                         "iscrowd": int(g.crowd[i]), "segmentation": dict(g.masks[i])})
    results = []
    for p in preds:
        for i in range(len(p.classes)):
            r = {"image_id": p.image_id, "category_id": int(p.classes[i]), "score": float(p.scores[i])}
            if iou_type == "bbox":
                r["bbox"] = xywh(p.boxes[i])
            else:
                r["segmentation"] = dict(p.masks[i])
            results.append(r)
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = {"images": [{"id": g.image_id, "height": g.height, "width": g.width} for g in gts],
                           "annotations": anns, "categories": [{"id": c, "name": str(c)} for c in class_ids]}
        coco_gt.createIndex()
        ev = COCOeval(coco_gt, coco_gt.loadRes(results), iou_type)
        ev.params.maxDets = [1, 10, max_dets]
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev


def coco_value(ev: COCOeval, iou_index: int | None = None, class_index: int | None = None) -> float:
    """Mean of COCOeval's precision (area all, last maxDets) over valid entries, NaN if none (its -1)."""
    s = ev.eval["precision"][:, :, :, 0, -1]
    s = s if iou_index is None else s[[iou_index]]
    s = s if class_index is None else s[:, :, [class_index]]
    return float(s[s > -1].mean()) if (s > -1).any() else math.nan


def assert_close(a: float, b: float) -> None:
    assert (math.isnan(a) and math.isnan(b)) or abs(a - b) <= TOL, (a, b)


def assert_matches(ours: dict, ev: COCOeval) -> None:
    for key, t in (("mAP50_95", None), ("mAP50", 0), ("mAP75", 5)):
        assert_close(ours[key], coco_value(ev, t))
    for k, cls in enumerate(ev.params.catIds):
        for key, t in (("AP50_95", None), ("AP50", 0), ("AP75", 5)):
            assert_close(ours["per_class"][cls][key], coco_value(ev, t, k))


@pytest.mark.parametrize("iou_type", ["bbox", "segm"])
@pytest.mark.parametrize("seed", range(5))
def test_matches_pycocotools_on_random_scenes(seed: int, iou_type: str) -> None:
    gts, preds = make_scene(seed)
    ours = coco_map(gts, preds, iou_type=iou_type)
    ev = pycoco(gts, preds, iou_type)
    for stat, key in zip(ev.stats[:3], ("mAP50_95", "mAP50", "mAP75")):
        assert abs(ours[key] - stat) <= TOL, (key, ours[key], stat)
    assert_matches(ours, ev)
    assert 0.05 < ours["mAP50_95"] < 0.95  # a scene that exercises both hits and misses
    assert ours["images"] == len(gts)
    assert sum(v["gt"] for v in ours["per_class"].values()) == sum(int((~g.crowd).sum()) for g in gts)


def test_box_iou_matches_pycocotools() -> None:
    rng = np.random.default_rng(0)
    dets, gts = (np.sort(rng.uniform(0, 50, (n, 2, 2)), axis=1).reshape(n, 4)[:, [0, 2, 1, 3]] for n in (7, 5))
    crowd = np.array([0, 1, 0, 0, 1], dtype=bool)
    want = mask_utils.iou([xywh(b) for b in dets], [xywh(b) for b in gts], crowd.astype(np.uint8).tolist())
    np.testing.assert_allclose(box_iou(dets, gts, crowd), want, rtol=0, atol=1e-12)


def perfect(gts: list[ImageInstances]) -> list[ImageInstances]:
    """Predictions equal to the non-crowd ground truth, score 1."""
    out = []
    for g in gts:
        keep = np.flatnonzero(~g.crowd)
        out.append(ImageInstances(g.image_id, g.height, g.width, g.boxes[keep], g.classes[keep],
                                  [g.masks[i] for i in keep], scores=np.ones(len(keep))))
    return out


@pytest.mark.parametrize("iou_type", ["bbox", "segm"])
def test_perfect_predictions_give_one(iou_type: str) -> None:
    gts, _ = make_scene(1)
    ours = coco_map(gts, perfect(gts), iou_type=iou_type)
    assert ours["mAP50_95"] == pytest.approx(1.0) and ours["mAP50"] == pytest.approx(1.0)
    assert_matches(ours, pycoco(gts, perfect(gts), iou_type))


def test_no_predictions_give_zero() -> None:
    gts, _ = make_scene(2)
    empty = [ImageInstances(g.image_id, g.height, g.width, np.zeros((0, 4)), np.zeros(0, int), [], scores=np.zeros(0))
             for g in gts]
    for preds in ([], empty):
        ours = coco_map(gts, preds, iou_type="segm")
        assert ours["mAP50_95"] == 0.0 and ours["mAP50"] == 0.0 and ours["mAP75"] == 0.0
        assert all(v["AP50_95"] == 0.0 for v in ours["per_class"].values() if v["gt"])


def test_class_without_ground_truth_is_left_out() -> None:
    gts, preds = make_scene(3)
    rng = np.random.default_rng(3)
    g = gts[0]  # class 11: crowd ground truth only; class 9: predictions only
    gts[0] = instances(g.image_id, g.height, g.width, [random_shape(rng, g.height, g.width)], [11], rng, 0,
                       iscrowd=[True])
    preds.append(instances(g.image_id, g.height, g.width, [random_shape(rng, g.height, g.width)] * 2, [9, 11], rng,
                           0, scores=[0.9, 0.8]))
    preds = [p for p in preds if p.image_id != g.image_id or 9 in p.classes]
    classes = (*CLASSES, 9, 11)
    ours = coco_map(gts, preds, iou_type="bbox", class_ids=classes)
    for cls in (9, 11):
        assert ours["per_class"][cls]["gt"] == 0 and math.isnan(ours["per_class"][cls]["AP50_95"])
    assert ours["mAP50_95"] == pytest.approx(np.mean([ours["per_class"][c]["AP50_95"] for c in CLASSES]))
    assert_matches(ours, pycoco(gts, preds, "bbox", class_ids=classes))
    only = coco_map(gts, preds, iou_type="bbox", class_ids=[3])
    assert list(only["per_class"]) == [3] and only["mAP50_95"] == ours["per_class"][3]["AP50_95"]


def test_no_ground_truth_gives_nan() -> None:
    gts = [ImageInstances(1, 20, 20, np.zeros((0, 4)), np.zeros(0, int), [])]
    preds = [ImageInstances(1, 20, 20, [[1, 1, 5, 5]], [0], [encode(np.ones((20, 20)))], scores=[0.5])]
    ours = coco_map(gts, preds, iou_type="bbox", class_ids=[0])
    assert math.isnan(ours["mAP50_95"]) and math.isnan(ours["mAP50"])
    assert pycoco(gts, preds, "bbox", class_ids=[0]).stats[0] == -1


@pytest.mark.parametrize("max_dets", [100, 150])
def test_max_dets_truncates_like_pycocotools(max_dets: int) -> None:
    rng = np.random.default_rng(4)
    h = w = 64
    shapes = [(0, 8 + 12 * i, 32, 5, 5) for i in range(5)]
    gts = [instances(1, h, w, shapes, [0] * 5, rng, 0)]
    # high-scored false positives above the objects push the hits past the 100th detection
    fps = [(int(rng.integers(2)), rng.uniform(4, 60), rng.uniform(3, 12), rng.uniform(2, 5), rng.uniform(2, 5))
           for _ in range(145)]
    scores = np.concatenate([rng.uniform(0.5, 1, 145).round(2), np.linspace(0.4, 0.1, 5)])
    preds = [instances(1, h, w, fps + shapes, [0] * 150, rng, 0, scores=scores)]
    ours = coco_map(gts, preds, iou_type="bbox", max_dets=max_dets)
    assert_matches(ours, pycoco(gts, preds, "bbox", class_ids=[0], max_dets=max_dets))
    assert (ours["mAP50"] == 0.0) == (max_dets == 100)


def test_image_order_does_not_matter() -> None:
    gts, preds = make_scene(5)
    want = coco_map(gts, preds, iou_type="segm")
    got = coco_map(gts[::-1], preds[::-1], iou_type="segm")
    assert got["mAP50_95"] == want["mAP50_95"] and got["per_class"] == want["per_class"]


def shifted(preds: list[ImageInstances], dx: float) -> list[ImageInstances]:
    return [ImageInstances(p.image_id, p.height, p.width, p.boxes + dx, p.classes, p.masks, p.scores) for p in preds]


def test_shifting_boxes_changes_bbox_map() -> None:
    gts, preds = make_scene(0)
    assert coco_map(gts, shifted(perfect(gts), 3.0), iou_type="bbox")["mAP50_95"] < 0.99
    base = coco_map(gts, preds, iou_type="bbox")["mAP50_95"]
    assert abs(coco_map(gts, shifted(preds, 3.0), iou_type="bbox")["mAP50_95"] - base) > 10 * TOL


def test_invalid_inputs_raise() -> None:
    gts, preds = make_scene(0)
    with pytest.raises(ValueError, match="iou_type"):
        coco_map(gts, preds, iou_type="keypoints")
    stray = ImageInstances(999, 10, 10, [[0, 0, 5, 5]], [0], scores=[0.5])
    with pytest.raises(ValueError, match="without ground truth"):
        coco_map(gts, [*preds, stray], iou_type="bbox")
    no_masks = [ImageInstances(p.image_id, p.height, p.width, p.boxes, p.classes, scores=p.scores) for p in preds]
    assert coco_map(gts, no_masks, iou_type="bbox")["mAP50_95"] == coco_map(gts, preds, iou_type="bbox")["mAP50_95"]
    with pytest.raises(ValueError, match="needs masks"):
        coco_map(gts, no_masks, iou_type="segm")
