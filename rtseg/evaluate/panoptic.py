"""Panoptic quality (PQ, SQ, RQ) of an instance + semantic model pair on COCO panoptic ground truth.

The ground truth is what COCO panoptic and ``panopticapi`` use: a JSON with ``images``, ``annotations`` (one per
image: ``file_name`` of its PNG, ``image_id``, ``segments_info`` [{``id``, ``category_id``, ``area``, ``iscrowd``}])
and ``categories`` (``id``, ``name``, ``isthing``), and a folder of PNGs whose pixels hold segment ids
RGB-encoded (``id = R + 256 G + 256^2 B``, 0 = void). The PNG folder is the JSON's path without ``.json``
unless given, as in panopticapi; images are looked up in the given folder, ``images/`` beside the JSON, or
beside it.

The measure is panopticapi's ``pq_compute`` (Kirillov et al., "Panoptic Segmentation", CVPR 2019): a predicted
and a ground-truth segment of one category match when their IoU exceeds 0.5, the IoU's union leaving out the
predicted pixels that fall on void; unmatched ground truth is a false negative unless crowd; an unmatched
prediction is a false positive unless more than half of it lies on void or on a crowd region of its category.
Per category PQ = sum(IoU of matches) / (TP + FP/2 + FN/2), SQ = mean IoU of the matches, RQ = TP / (TP + FP/2 +
FN/2); "all", "things" and "stuff" average the categories with any TP, FP or FN. Tests check it against an
independent re-implementation of panopticapi within 1e-3.

Predicted categories map to the ground truth's by name (case-insensitive); a predicted segment whose category
the ground truth does not have is void. Ground-truth categories the models do not know are left out of the
averages and listed as skipped.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from numpy.typing import NDArray

from rtseg.errors import ConfigError
from rtseg.postprocess.panoptic import fuse_panoptic, rgb_to_ids

OFFSET = 256**3  # segment ids are below it (three 8-bit channels)


@dataclass
class PanopticGroundTruth:
    """A checked COCO panoptic ground truth: per image, its file, its PNG and its segments."""

    json_path: Path
    images: list[Path]
    pngs: list[Path]
    segments: list[dict[int, dict]]  # per image: segment id -> {"category_id", "area", "iscrowd"}
    categories: dict[int, dict]  # category id -> {"name", "isthing"}

    def __len__(self) -> int:
        return len(self.images)

    def ids(self, i: int) -> NDArray[np.int64]:
        """The (H, W) segment ids of image ``i``."""
        png = cv2.imread(str(self.pngs[i]), cv2.IMREAD_COLOR)
        if png is None:
            raise ConfigError(f"{self.pngs[i]}: cannot read the panoptic PNG")
        return rgb_to_ids(png[..., ::-1]).astype(np.int64)


def is_panoptic_json(path: Path) -> bool:
    """Whether ``path`` is a COCO panoptic JSON (annotations with ``segments_info``), cheaply and without raising."""
    if Path(path).suffix.lower() != ".json" or not Path(path).is_file():
        return False
    try:
        with open(path, encoding="utf-8") as f:
            head = f.read(1 << 20)
    except OSError:
        return False
    return '"segments_info"' in head


def load_panoptic_gt(path: Path, images: Path | None = None, masks: Path | None = None) -> PanopticGroundTruth:
    """Read and check a COCO panoptic JSON and its PNG folder.

    Raises:
        ConfigError: an unreadable or malformed JSON, a missing PNG folder, PNG or image (the first named, with
            the count), a segment naming an unknown category.
    """
    path = Path(path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the panoptic JSON ({exc})") from None
    if not isinstance(doc, dict) or not all(isinstance(doc.get(k), list) for k in ("images", "annotations",
                                                                                   "categories")):
        raise ConfigError(f"{path}: expected a COCO panoptic JSON with images, annotations and categories lists")
    try:
        categories = {int(c["id"]): {"name": str(c["name"]), "isthing": bool(c.get("isthing", 0))}
                      for c in doc["categories"]}
        files = {img["id"]: str(img["file_name"]) for img in doc["images"]}
    except (KeyError, TypeError, ValueError):
        raise ConfigError(f"{path}: every category needs id and name, every image id and file_name") from None
    folder = Path(masks) if masks is not None else path.with_suffix("")
    if not folder.is_dir():
        raise ConfigError(f"{path}: panoptic PNG folder {folder} not found (pass it with --panoptic-masks)")
    dirs = [d for d in (images, path.parent / "images", path.parent) if d is not None]
    out = PanopticGroundTruth(path, [], [], [], categories)
    missing: list[str] = []
    for k, ann in enumerate(doc["annotations"]):
        try:
            image_id, png_name, infos = ann["image_id"], str(ann["file_name"]), ann["segments_info"]
            segs = {int(s["id"]): {"category_id": int(s["category_id"]), "area": s.get("area"),
                                   "iscrowd": int(s.get("iscrowd", 0))} for s in infos}
        except (KeyError, TypeError, ValueError):
            raise ConfigError(f"{path}: annotations[{k}] needs image_id, file_name and segments_info "
                              "[{id, category_id, ...}]") from None
        unknown = [s["category_id"] for s in segs.values() if s["category_id"] not in categories]
        if unknown:
            raise ConfigError(f"{path}: annotations[{k}]: category_id {unknown[0]} is not in categories")
        if image_id not in files:
            raise ConfigError(f"{path}: annotations[{k}]: image_id {image_id!r} is not in images")
        image = next((d / files[image_id] for d in dirs if (d / files[image_id]).is_file()), None)
        png = folder / png_name
        if not png.is_file():
            missing.append(f"PNG {png}")
        if image is None:
            missing.append(f"image {files[image_id]} (looked up in {', '.join(map(str, dirs))})")
        out.images.append(image if image is not None else Path(files[image_id]))
        out.pngs.append(png)
        out.segments.append(segs)
    if missing:
        more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
        raise ConfigError(f"{path}: {missing[0]} not found{more}")
    if not out.images:
        raise ConfigError(f"{path}: no annotations: nothing to evaluate")
    return out


@dataclass
class PQStats:
    """Sums per category over a data set: matched IoU, true positives, false positives, false negatives."""

    iou: dict[int, float] = field(default_factory=dict)
    tp: dict[int, int] = field(default_factory=dict)
    fp: dict[int, int] = field(default_factory=dict)
    fn: dict[int, int] = field(default_factory=dict)

    def add(self, kind: str, cat: int, value: float = 1) -> None:
        table = getattr(self, kind)
        table[cat] = table.get(cat, 0) + value


def pq_update(stats: PQStats, gt_ids: NDArray[np.integer], gt_segments: dict[int, dict],
              pred_ids: NDArray[np.integer], pred_categories: dict[int, int]) -> None:
    """Add one image to ``stats``.

    Args:
        gt_ids, pred_ids: (H, W) segment ids (0 void).
        gt_segments: ground-truth segment id -> {"category_id", "iscrowd", "area" (None: counted from the PNG)}.
        pred_categories: predicted segment id -> category id (the ground truth's ids). Predicted pixels whose
            id is not listed are void.
    """
    gt_ids, pred_ids = np.asarray(gt_ids, np.int64), np.asarray(pred_ids, np.int64)
    if gt_ids.shape != pred_ids.shape:
        raise ValueError(f"gt and pred: expected one shape, got {gt_ids.shape} and {pred_ids.shape}")
    listed = np.isin(pred_ids, np.fromiter(pred_categories, np.int64, len(pred_categories)))
    pred_ids = np.where(listed, pred_ids, 0)
    keys, counts = np.unique(gt_ids * OFFSET + pred_ids, return_counts=True)
    pairs = {(int(k // OFFSET), int(k % OFFSET)): int(c) for k, c in zip(keys, counts)}
    pred_area: dict[int, int] = {}
    gt_png_area: dict[int, int] = {}
    for (g, p), c in pairs.items():
        pred_area[p] = pred_area.get(p, 0) + c
        gt_png_area[g] = gt_png_area.get(g, 0) + c
    gt_area = {g: int(s["area"]) if s.get("area") is not None else gt_png_area.get(g, 0)
               for g, s in gt_segments.items()}
    matched_gt, matched_pred = set(), set()
    for (g, p), inter in pairs.items():
        if g not in gt_segments or p == 0 or gt_segments[g]["iscrowd"]:
            continue
        cat = gt_segments[g]["category_id"]
        if pred_categories[p] != cat:
            continue
        union = pred_area[p] + gt_area[g] - inter - pairs.get((0, p), 0)
        iou = inter / union
        if iou > 0.5:
            stats.add("tp", cat)
            stats.add("iou", cat, iou)
            matched_gt.add(g)
            matched_pred.add(p)
    crowd = {}
    for g, s in gt_segments.items():
        if g in matched_gt:
            continue
        if s["iscrowd"]:
            crowd[s["category_id"]] = g
            continue
        stats.add("fn", s["category_id"])
    for p, area in pred_area.items():
        if p == 0 or p in matched_pred:
            continue
        cat = pred_categories[p]
        ignored = pairs.get((0, p), 0) + (pairs.get((crowd[cat], p), 0) if cat in crowd else 0)
        if ignored / area > 0.5:
            continue
        stats.add("fp", cat)


def pq_summary(stats: PQStats, categories: dict[int, dict]) -> dict:
    """PQ, SQ, RQ per category and averaged over all / thing / stuff categories (each with ``n``, the
    categories with any TP, FP or FN); as panopticapi's ``pq_average``."""
    per_class = {}
    for cat in categories:
        tp, fp, fn, iou = stats.tp.get(cat, 0), stats.fp.get(cat, 0), stats.fn.get(cat, 0), stats.iou.get(cat, 0.0)
        if tp + fp + fn == 0:
            per_class[cat] = None
            continue
        denom = tp + 0.5 * fp + 0.5 * fn
        per_class[cat] = {"pq": iou / denom, "sq": iou / tp if tp else 0.0, "rq": tp / denom, "tp": tp, "fp": fp,
                          "fn": fn}
    out: dict = {"per_class": per_class}
    for name, isthing in (("all", None), ("things", True), ("stuff", False)):
        rows = [r for c, r in per_class.items()
                if r is not None and (isthing is None or categories[c]["isthing"] == isthing)]
        n = len(rows)
        out[name] = {k: (sum(r[k] for r in rows) / n if n else float("nan")) for k in ("pq", "sq", "rq")}
        out[name]["n"] = n
    return out


def evaluate_panoptic(instance: Callable | None, semantic: Callable | None, gt: PanopticGroundTruth, *,
                      min_area: int = 0, progress: Callable | None = None) -> tuple[dict, tuple[str, ...]]:
    """Run the models over every image, fuse (:func:`rtseg.postprocess.panoptic.fuse_panoptic`) and measure.

    Args:
        instance: the instance stage (``instance([image]) -> [FrameResult]``), or None.
        semantic: the semantic stage (``semantic([image]) -> [labels]``), or None.
        gt: :func:`load_panoptic_gt`'s result.

    Returns:
        (:func:`pq_summary` over the ground-truth categories the models know, the names of those they do not).
    """
    from dataclasses import replace

    from rtseg.types import FrameResult

    names = tuple(instance.names) if instance is not None else ()
    semantic_names = tuple(semantic.names) if semantic is not None else ()
    by_name = {c["name"].lower(): cid for cid, c in gt.categories.items()}
    known = {n.lower() for n in (*names, *semantic_names)}
    measured = {cid: c for cid, c in gt.categories.items() if c["name"].lower() in known}
    if not measured:
        theirs = ", ".join(c["name"] for c in gt.categories.values())
        raise ConfigError(f"no category in common: the ground truth's ({theirs}) are none of the models' "
                          f"({', '.join((*names, *semantic_names))})")
    skipped = tuple(c["name"] for cid, c in gt.categories.items() if cid not in measured)
    stats = PQStats()
    for i in range(len(gt)):
        image = cv2.imread(str(gt.images[i]), cv2.IMREAD_COLOR)
        if image is None:
            raise ConfigError(f"cannot read the image {gt.images[i]}")
        gt_ids = gt.ids(i)
        if gt_ids.shape != image.shape[:2]:
            raise ConfigError(f"{gt.pngs[i]} is {gt_ids.shape[1]}x{gt_ids.shape[0]} px, its image "
                              f"{image.shape[1]}x{image.shape[0]}")
        result = instance([image])[0] if instance is not None else FrameResult.empty(0, image.shape[:2])
        if semantic is not None:
            result = replace(result, semantic=semantic([image])[0])
        pan = fuse_panoptic(result, names, semantic_names, min_area=min_area)
        pred_categories = {k + 1: by_name[n.lower()] for k, n in enumerate(pan.category_names)
                           if n.lower() in by_name}
        pq_update(stats, gt_ids, gt.segments[i], pan.ids, pred_categories)
        if progress:
            progress()
    return pq_summary(stats, measured), skipped
