"""PQ / SQ / RQ: rtseg's computation against an independent re-implementation of panopticapi's ``pq_compute``
(:func:`tests.panoptic_reference.reference_pq_compute`), itself first checked on hand-made cases whose PQ is
known."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import PIL.Image
import pytest

from rtseg.errors import ConfigError
from rtseg.evaluate.panoptic import PQStats, load_panoptic_gt, pq_summary, pq_update
from rtseg.postprocess.panoptic import ids_to_rgb
from tests.panoptic_reference import reference_pq_compute

CATEGORIES = [{"id": 1, "name": "person", "isthing": 1}, {"id": 2, "name": "car", "isthing": 1},
              {"id": 7, "name": "road", "isthing": 0}, {"id": 9, "name": "sky", "isthing": 0}]

# --- writing panoptic sets ---

def _segments(ids: np.ndarray, cats: dict[int, int], crowd: set[int] = frozenset()) -> list[dict]:
    return [{"id": s, "category_id": c, "area": int((ids == s).sum()), "iscrowd": int(s in crowd), "bbox": [0, 0, 0, 0]}
            for s, c in cats.items() if (ids == s).any()]


def write_set(folder: Path, name: str, maps: list[tuple[np.ndarray, dict[int, int], set[int]]]) -> Path:
    (folder / name).mkdir(parents=True)
    anns, images = [], []
    for k, (ids, cats, crowd) in enumerate(maps):
        PIL.Image.fromarray(ids_to_rgb(ids)).save(folder / name / f"{k}.png")
        images.append({"id": k, "file_name": f"{k}.jpg", "height": ids.shape[0], "width": ids.shape[1]})
        anns.append({"image_id": k, "file_name": f"{k}.png", "segments_info": _segments(ids, cats, crowd)})
    path = folder / f"{name}.json"
    path.write_text(json.dumps({"images": images, "annotations": anns, "categories": CATEGORIES}))
    return path


def _both(tmp_path: Path, gt_maps: list, pred_maps: list) -> tuple[dict, dict]:
    """(reference results, rtseg's pq_summary) on the same ground truth and predictions."""
    gt_json, pred_json = write_set(tmp_path, "gt", gt_maps), write_set(tmp_path, "pred", pred_maps)
    ref = reference_pq_compute(gt_json, pred_json, tmp_path / "gt", tmp_path / "pred")
    stats = PQStats()
    for (gt_ids, gt_cats, crowd), (pred_ids, pred_cats, _) in zip(gt_maps, pred_maps):
        segs = {s["id"]: s for s in _segments(gt_ids, gt_cats, crowd)}
        pq_update(stats, gt_ids, segs, pred_ids, pred_cats)
    return ref, pq_summary(stats, {c["id"]: {"isthing": bool(c["isthing"])} for c in CATEGORIES})


def _close(ref: dict, ours: dict) -> None:
    for theirs, mine in (("All", "all"), ("Things", "things"), ("Stuff", "stuff")):
        assert ours[mine]["n"] == ref[theirs]["n"]
        if ref[theirs]["n"]:
            for k in ("pq", "sq", "rq"):
                assert abs(ours[mine][k] - ref[theirs][k]) < 1e-3, (mine, k)
    for cat, row in ours["per_class"].items():
        if row is not None:
            for k in ("pq", "sq", "rq"):
                assert abs(row[k] - ref["per_class"][cat][k]) < 1e-3


def _box(hw, y0, y1, x0, x1) -> np.ndarray:
    m = np.zeros(hw, bool)
    m[y0:y1, x0:x1] = True
    return m


# --- the reference on cases whose PQ is known by hand ---

def test_reference_on_hand_made_cases(tmp_path) -> None:
    hw = (20, 20)
    gt = np.full(hw, 2, np.int32)  # road everywhere ...
    gt[_box(hw, 0, 10, 0, 10)] = 1  # ... but a 100-px person
    pred = np.full(hw, 2, np.int32)
    pred[_box(hw, 0, 10, 0, 8)] = 1  # 80 px of it: IoU 0.8
    ref = reference_pq_compute(write_set(tmp_path / "a", "gt", [(gt, {1: 1, 2: 7}, set())]),
                               write_set(tmp_path / "a", "pred", [(pred, {1: 1, 2: 7}, set())]),
                               tmp_path / "a" / "gt", tmp_path / "a" / "pred")
    assert ref["per_class"][1]["pq"] == pytest.approx(0.8)  # one TP at IoU 0.8
    assert ref["per_class"][7]["pq"] == pytest.approx(300 / 320)  # road: 300 px in common, union 320
    assert ref["Things"]["n"] == 1 and ref["Stuff"]["n"] == 1 and ref["All"]["n"] == 2

    pred2 = np.full(hw, 2, np.int32)
    pred2[_box(hw, 0, 4, 0, 10)] = 1  # 40 px: IoU 0.4, no match -> 1 FN + 1 FP
    ref = reference_pq_compute(write_set(tmp_path / "b", "gt", [(gt, {1: 1, 2: 7}, set())]),
                               write_set(tmp_path / "b", "pred", [(pred2, {1: 1, 2: 7}, set())]),
                               tmp_path / "b" / "gt", tmp_path / "b" / "pred")
    assert ref["per_class"][1] == {"pq": 0.0, "sq": 0, "rq": 0.0}

    gt3 = gt.copy()
    gt3[_box(hw, 10, 20, 10, 20)] = 0  # void in the corner ...
    pred3 = pred.copy()
    pred3[_box(hw, 12, 20, 12, 20)] = 3  # ... where a "car" is predicted: not a false positive
    pred3[_box(hw, 10, 12, 10, 20)] = 4  # another car, half on void, half on road: a false positive
    ref = reference_pq_compute(write_set(tmp_path / "c", "gt", [(gt3, {1: 1, 2: 7}, set())]),
                               write_set(tmp_path / "c", "pred", [(pred3, {1: 1, 2: 7, 3: 2, 4: 2}, set())]),
                               tmp_path / "c" / "gt", tmp_path / "c" / "pred")
    assert ref["per_class"][2] == {"pq": 0.0, "sq": 0, "rq": 0.0}  # one FP (the second car), no TP
    # road: gt 300 - 100 void = 200 px... IoU = 200 - 10 / (pred road area + gt - inter - pred road on void)
    road_pred = int((pred3 == 2).sum())
    inter = int(((gt3 == 2) & (pred3 == 2)).sum())
    on_void = int(((gt3 == 0) & (pred3 == 2)).sum())
    iou = inter / (road_pred + int((gt3 == 2).sum()) - inter - on_void)
    assert ref["per_class"][7]["pq"] == pytest.approx(iou)


def test_rtseg_pq_equals_the_reference_on_hand_made_and_random_sets(tmp_path) -> None:
    rng = np.random.default_rng(0)
    hw = (48, 64)
    gt_maps, pred_maps = [], []
    for k in range(6):
        gt = np.full(hw, 1, np.int32)  # sky
        gt[24:] = 2  # road
        cats = {1: 9, 2: 7}
        crowd = set()
        pred = gt.copy()
        pred_cats = dict(cats)
        shift = int(rng.integers(0, 8))
        pred[24 - shift : 24] = 2  # road creeps up
        for j in range(4):  # people and cars, some matched well, some poorly, one crowd
            y, x = int(rng.integers(0, 36)), int(rng.integers(0, 52))
            h, w = int(rng.integers(6, 12)), int(rng.integers(6, 12))
            seg, cat = 10 + j, 1 if j % 2 else 2
            gt[y : y + h, x : x + w] = seg
            cats[seg] = cat
            if j == 3 and k % 2:
                crowd.add(seg)
            dy, dx = int(rng.integers(-4, 5)), int(rng.integers(-4, 5))
            py, px = max(0, y + dy), max(0, x + dx)
            pred[py : py + h, px : px + w] = 20 + j
            pred_cats[20 + j] = cat if j != 2 else 3 - cat  # one wrong class per image
        gt[0:3, 0:5] = 0  # a void strip
        pred[40:, 0:4] = 0  # an unpredicted strip
        gt_maps.append((gt, {s: c for s, c in cats.items() if (gt == s).any()}, crowd))
        pred_maps.append((pred, {s: c for s, c in pred_cats.items() if (pred == s).any()}, set()))
    ref, ours = _both(tmp_path, gt_maps, pred_maps)
    assert 0 < ref["All"]["pq"] < 1 and ref["Things"]["n"] == 2  # neither trivial nor empty
    _close(ref, ours)


def test_ground_truth_with_a_missing_png_is_one_clear_error(tmp_path) -> None:
    gt = np.ones((8, 8), np.int32)
    path = write_set(tmp_path, "gt", [(gt, {1: 7}, set()), (gt, {1: 7}, set())])
    (tmp_path / "0.jpg").write_bytes(b"")
    (tmp_path / "1.jpg").write_bytes(b"")
    assert len(load_panoptic_gt(path)) == 2
    (tmp_path / "gt" / "1.png").unlink()
    with pytest.raises(ConfigError, match=r"PNG .*1\.png not found"):
        load_panoptic_gt(path)
    with pytest.raises(ConfigError, match="PNG folder .* not found"):
        load_panoptic_gt(path, masks=tmp_path / "nowhere")
    (tmp_path / "0.jpg").unlink()
    with pytest.raises(ConfigError, match="image 0.jpg .* not found and 1 more"):
        load_panoptic_gt(path)


def test_rtseg_pq_equals_torchmetrics_where_their_definitions_agree() -> None:
    """torchmetrics' PanopticQuality (a second, independent implementation) also leaves out of the union the
    true pixels that the prediction leaves void, which panopticapi does not: with no predicted void pixel the
    two definitions coincide, and rtseg must equal it. No crowd (torchmetrics has none)."""
    torchmetrics = pytest.importorskip("torchmetrics", reason="torchmetrics (a test dependency) is not installed")
    import torch

    rng = np.random.default_rng(1)
    isthing = {1: True, 2: True, 7: False, 9: False}
    stats, preds, targets = PQStats(), [], []

    def pairs(ids: np.ndarray, cats: dict[int, int]) -> np.ndarray:  # torchmetrics' (category, instance) pixels
        out = np.zeros((*ids.shape, 2), np.int64)  # category 0: void (not a thing nor a stuff)
        for s, c in cats.items():
            out[ids == s] = (c, s if isthing[c] else 0)
        return out

    for _ in range(6):
        gt = np.full((48, 64), 1, np.int32)
        gt[24:] = 2
        cats = {1: 9, 2: 7}
        pred, pred_cats = gt.copy(), dict(cats)
        pred[24 - int(rng.integers(0, 8)) : 24] = 2
        for j in range(4):
            y, x, h, w = (int(v) for v in (rng.integers(0, 36), rng.integers(0, 52), rng.integers(6, 12),
                                            rng.integers(6, 12)))
            cats[10 + j] = 1 if j % 2 else 2
            gt[y : y + h, x : x + w] = 10 + j
            py, px = max(0, y + int(rng.integers(-4, 5))), max(0, x + int(rng.integers(-4, 5)))
            pred[py : py + h, px : px + w] = 20 + j
            pred_cats[20 + j] = cats[10 + j] if j != 2 else 3 - cats[10 + j]
        gt[0:3, 0:5] = 0  # true void is fine: both leave predicted pixels on it out of the union
        cats = {s: c for s, c in cats.items() if (gt == s).any()}
        pred_cats = {s: c for s, c in pred_cats.items() if (pred == s).any()}
        pq_update(stats, gt, {s: {"category_id": c, "iscrowd": 0, "area": None} for s, c in cats.items()}, pred,
                  pred_cats)
        preds.append(pairs(pred, pred_cats))
        targets.append(pairs(gt, cats))
    ours = pq_summary(stats, {c: {"isthing": t} for c, t in isthing.items()})["all"]
    metric = torchmetrics.detection.PanopticQuality(things={1, 2}, stuffs={7, 9}, return_sq_and_rq=True)
    pq, sq, rq = metric(torch.tensor(np.stack(preds)), torch.tensor(np.stack(targets))).tolist()
    assert 0 < pq < 1
    assert abs(ours["pq"] - pq) < 1e-3 and abs(ours["sq"] - sq) < 1e-3 and abs(ours["rq"] - rq) < 1e-3
