"""An independent re-implementation of panopticapi's ``pq_compute`` (``panopticapi/evaluation.py``:
``pq_compute_single_core`` + ``PQStat.pq_average``), the reference rtseg's PQ is tested against.

panopticapi is not on the package registry here. This follows its algorithm the way it is written there: file
based, PNGs read with PIL and ``rgb2id``, dictionaries of segments, a Python loop over the (gt, pred) pairs;
it shares no code with :mod:`rtseg.evaluate.panoptic`. ``tests/unit/evaluate/test_panoptic.py`` checks it on
hand-made cases whose PQ is known. A helper module, not a test module.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import numpy as np
import PIL.Image

OFFSET, VOID = 256 * 256 * 256, 0


def _rgb2id(color: np.ndarray) -> np.ndarray:
    color = color.astype(np.int32)
    return color[:, :, 0] + 256 * color[:, :, 1] + 256 * 256 * color[:, :, 2]


def reference_pq_compute(gt_json: Path, pred_json: Path, gt_folder: Path, pred_folder: Path) -> dict:
    gt_doc, pred_doc = json.loads(gt_json.read_text()), json.loads(pred_json.read_text())
    categories = {c["id"]: c for c in gt_doc["categories"]}
    preds = {a["image_id"]: a for a in pred_doc["annotations"]}
    stat = defaultdict(lambda: {"iou": 0.0, "tp": 0, "fp": 0, "fn": 0})
    for gt_ann in gt_doc["annotations"]:
        pred_ann = preds[gt_ann["image_id"]]
        pan_gt = _rgb2id(np.array(PIL.Image.open(gt_folder / gt_ann["file_name"]), dtype=np.uint32))
        pan_pred = _rgb2id(np.array(PIL.Image.open(pred_folder / pred_ann["file_name"]), dtype=np.uint32))
        gt_segms = {el["id"]: dict(el) for el in gt_ann["segments_info"]}
        pred_segms = {el["id"]: dict(el) for el in pred_ann["segments_info"]}
        pred_labels_set = set(pred_segms)
        labels, labels_cnt = np.unique(pan_pred, return_counts=True)
        for label, label_cnt in zip(labels, labels_cnt):
            if label not in pred_segms:
                if label == VOID:
                    continue
                raise KeyError(f"segment {label} in the PNG, not in the JSON")
            pred_segms[label]["area"] = label_cnt
            pred_labels_set.remove(label)
            if pred_segms[label]["category_id"] not in categories:
                raise KeyError(f"unknown category {pred_segms[label]['category_id']}")
        if pred_labels_set:
            raise KeyError(f"segments {pred_labels_set} in the JSON, not in the PNG")
        pan_gt_pred = pan_gt.astype(np.uint64) * OFFSET + pan_pred.astype(np.uint64)
        gt_pred_map = {}
        labels, labels_cnt = np.unique(pan_gt_pred, return_counts=True)
        for label, intersection in zip(labels, labels_cnt):
            gt_pred_map[(label // OFFSET, label % OFFSET)] = intersection
        gt_matched, pred_matched = set(), set()
        for (gt_label, pred_label), intersection in gt_pred_map.items():
            if gt_label not in gt_segms or pred_label not in pred_segms:
                continue
            if gt_segms[gt_label]["iscrowd"] == 1:
                continue
            if gt_segms[gt_label]["category_id"] != pred_segms[pred_label]["category_id"]:
                continue
            union = (pred_segms[pred_label]["area"] + gt_segms[gt_label]["area"] - intersection
                     - gt_pred_map.get((VOID, pred_label), 0))
            iou = intersection / union
            if iou > 0.5:
                stat[gt_segms[gt_label]["category_id"]]["tp"] += 1
                stat[gt_segms[gt_label]["category_id"]]["iou"] += iou
                gt_matched.add(gt_label)
                pred_matched.add(pred_label)
        crowd_labels_dict = {}
        for gt_label, gt_info in gt_segms.items():
            if gt_label in gt_matched:
                continue
            if gt_info["iscrowd"] == 1:
                crowd_labels_dict[gt_info["category_id"]] = gt_label
                continue
            stat[gt_info["category_id"]]["fn"] += 1
        for pred_label, pred_info in pred_segms.items():
            if pred_label in pred_matched:
                continue
            intersection = gt_pred_map.get((VOID, pred_label), 0)
            if pred_info["category_id"] in crowd_labels_dict:
                intersection += gt_pred_map.get((crowd_labels_dict[pred_info["category_id"]], pred_label), 0)
            if intersection / pred_info["area"] > 0.5:
                continue
            stat[pred_info["category_id"]]["fp"] += 1
    results: dict = {}
    for name, isthing in (("All", None), ("Things", True), ("Stuff", False)):
        pq = sq = rq = n = 0
        per_class = {}
        for label, info in categories.items():
            if isthing is not None and (info["isthing"] == 1) != isthing:
                continue
            s = stat[label]
            if s["tp"] + s["fp"] + s["fn"] == 0:
                per_class[label] = {"pq": 0.0, "sq": 0.0, "rq": 0.0}
                continue
            n += 1
            denom = s["tp"] + 0.5 * s["fp"] + 0.5 * s["fn"]
            per_class[label] = {"pq": s["iou"] / denom, "sq": s["iou"] / s["tp"] if s["tp"] else 0,
                                "rq": s["tp"] / denom}
            pq, sq, rq = pq + per_class[label]["pq"], sq + per_class[label]["sq"], rq + per_class[label]["rq"]
        results[name] = {"pq": pq / n, "sq": sq / n, "rq": rq / n, "n": n} if n else {"pq": 0, "sq": 0, "rq": 0,
                                                                                     "n": 0}
        if name == "All":
            results["per_class"] = per_class
    return results
