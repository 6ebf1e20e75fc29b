"""``rtseg eval``: run a model over a labelled data set and measure it.

* **Semantic models**: every image goes through :class:`rtseg.models.semantic.SemanticModel` (as in
  ``rtseg run``); one confusion matrix is summed over the set and :func:`rtseg.evaluate.semantic.semantic_metrics`
  gives pixel accuracy, mean pixel accuracy, per-class IoU / Dice (F1) / precision / recall and their means.
* **Instance models**: every image goes through :class:`rtseg.models.yolo_seg.YoloSegModel` at a low
  confidence (0.001, as COCO evaluation expects); box and mask mAP@0.5 and mAP@0.5:0.95 follow the COCO
  definition (:func:`rtseg.evaluate.instance.coco_map`, equal to pycocotools' within 1e-3, tested). The
  confusion matrix matches detections at ``conf`` >= 0.25 to ground truth at mask IoU >= 0.5, with a
  "background" row (missed objects) and column (false detections).

Model and data classes are matched by name (case-insensitive) and only the classes both know are measured:
model classes the data does not label are ignored, and data classes the model does not know are skipped
(their objects, or their pixels, count neither for nor against the model) and listed in
:attr:`EvalReport.skipped`. No class in common, or no labelled object (pixel) of a shared class in the whole
set, is an error: a table of NaN would say nothing.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from rtseg.data.convert import IGNORE
from rtseg.data.datasets import Dataset
from rtseg.errors import ConfigError
from rtseg.sinks.atomic import save_figure, write_bytes

CONFUSION_CONF = 0.25
EVAL_CONF = 0.001  # rtseg eval's default score threshold (COCO mAP wants every detection)
PANOPTIC_CONF = 0.25  # instances fused for PQ when --conf is left at EVAL_CONF: rtseg run's default
CONFUSION_IOU = 0.5


@dataclass
class EvalReport:
    """The outcome of one evaluation; :meth:`to_json` is what ``--json`` writes."""

    task: str
    model: str
    data: str
    images: int
    names: tuple[str, ...]  # rows/columns of the confusion matrix (instance: + "background")
    metrics: dict
    confusion: NDArray[np.int64]
    per_class: list[dict] = field(default_factory=list)
    skipped: tuple[str, ...] = ()  # data classes the model does not know, left out of every metric

    def to_json(self) -> dict:
        return {"task": self.task, "model": self.model, "data": self.data, "images": self.images,
                "metrics": self.metrics, "per_class": self.per_class, "skipped_classes": list(self.skipped),
                "confusion_names": list(self.names), "confusion": self.confusion.tolist()}


_BACKGROUND = ("background", "unlabeled", "unlabelled", "void")


def _name_map(model_names: tuple[str, ...], data_names: tuple[str, ...], what: str
              ) -> tuple[dict[int, int], tuple[str, ...]]:
    """(data class id -> model class id for the classes both name, data classes the model lacks)."""
    lookup = {n.lower(): i for i, n in enumerate(model_names)}
    mapping = {i: lookup[n.lower()] for i, n in enumerate(data_names) if n.lower() in lookup}
    skipped = tuple(n for n in data_names if n.lower() not in lookup)
    if all(data_names[i].strip("_ ").lower() in _BACKGROUND for i in mapping):  # background alone measures nothing
        raise ConfigError(f"no class in common: the data's {what} classes ({', '.join(data_names)}) are none of "
                          f"the model's ({', '.join(model_names)}); rename them in the data set's class list")
    return mapping, skipped


def evaluate_semantic_model(model, data: Dataset, progress: Callable | None = None) -> EvalReport:  # noqa: ANN001
    from rtseg.evaluate.boundary import bf_scores, bf_update
    from rtseg.evaluate.semantic import confusion_matrix, semantic_metrics

    names = tuple(model.names)
    mapping, skipped = _name_map(names, data.semantic_names, "semantic")
    lut = np.full(256, IGNORE, np.uint8)  # pixels of skipped classes are ignored
    for d, m in mapping.items():
        lut[d] = m
    conf = np.zeros((len(names), len(names)), np.int64)
    edges = np.zeros((len(names), 4), np.int64)  # boundary pixels and matches per class (rtseg.evaluate.boundary)
    for i in range(len(data)):
        (pred,) = model([data.image(i)])
        gt = lut[data.semantic(i)]
        conf += confusion_matrix(pred, gt, len(names), ignore_index=IGNORE)
        bf_update(edges, pred, gt, ignore_index=IGNORE)
        if progress:
            progress()
    if not conf.sum():
        shared = ", ".join(names[m] for m in sorted(set(mapping.values())))
        raise ConfigError(f"no labelled pixel of the classes {shared} in the {len(data)} images: check the label files")
    metrics = semantic_metrics(conf)
    bf, mean_bf = bf_scores(edges)
    per_class = [{"class": n, **{k: metrics[k][c] for k in ("iou", "dice", "precision", "recall")}, "bf": bf[c],
                  "gt_pixels": int(conf[c].sum())} for c, n in enumerate(names)]
    summary = {k: metrics[k] for k in ("pixel_accuracy", "mean_pixel_accuracy", "mIoU", "mDice", "pixels")}
    summary["mBF"] = mean_bf  # boundary F-score, tolerance 0.75% of each image's diagonal
    summary["mF1"] = summary["mDice"]  # F1 and Dice are the same quantity
    present = [c for c in range(len(names)) if conf[c].sum() or conf[:, c].sum()]
    summary["mPrecision"] = float(np.nanmean([metrics["precision"][c] for c in present])) if present else np.nan
    summary["mRecall"] = float(np.nanmean([metrics["recall"][c] for c in present])) if present else np.nan
    return EvalReport("semantic", "", "", len(data), names, summary, conf, per_class, skipped)


def _gt_instances(data: Dataset, i: int, to_model: dict[int, int]):  # noqa: ANN202
    from pycocotools import mask as mask_utils

    from rtseg.evaluate.instance import ImageInstances

    objects, crowd = data.instances(i), data.crowd(i)
    keep = [c in to_model for c, _ in objects]  # objects of classes the model does not know are skipped
    objects, crowd = [o for o, k in zip(objects, keep) if k], crowd[np.asarray(keep, bool)]
    h, w = data.image(i).shape[:2] if not objects else objects[0][1].shape
    masks = [mask_utils.encode(np.asfortranarray(m.astype(np.uint8))) for _, m in objects]
    boxes = np.array([mask_utils.toBbox(r) for r in masks], np.float64).reshape(-1, 4)
    boxes[:, 2:] += boxes[:, :2]  # xywh -> xyxy
    return ImageInstances(i, h, w, boxes, np.array([to_model[c] for c, _ in objects], np.int64), masks,
                          iscrowd=crowd)


def _pred_instances(result, i: int):  # noqa: ANN001, ANN202
    from rtseg.evaluate.instance import ImageInstances
    from rtseg.postprocess.rle import encode_crop

    h, w = result.image_hw
    masks = [encode_crop(c, tuple(o), (h, w)) for c, o in zip(result.masks.crops, result.masks.origins_xy)]
    return ImageInstances(i, h, w, result.boxes_xyxy.astype(np.float64), result.class_ids.astype(np.int64),
                          masks, scores=result.scores.astype(np.float64))


def _confusion_update(conf: NDArray[np.int64], gt, pred, background: int) -> None:  # noqa: ANN001
    """Greedy one-to-one matching by mask IoU (class-agnostic), as a detection confusion matrix."""
    from pycocotools import mask as mask_utils

    keep = pred.scores >= CONFUSION_CONF
    pred_masks = [m for m, k in zip(pred.masks, keep) if k]
    pred_cls = pred.classes[keep]
    if len(gt.masks) and len(pred_masks):
        ious = np.asarray(mask_utils.iou(pred_masks, gt.masks, [0] * len(gt.masks)), np.float64)
    else:
        ious = np.zeros((len(pred_masks), len(gt.masks)))
    matched_p, matched_g = set(), set()
    for p, g in sorted(zip(*np.nonzero(ious >= CONFUSION_IOU)), key=lambda pg: -ious[pg]):
        if p not in matched_p and g not in matched_g:
            matched_p.add(p)
            matched_g.add(g)
            conf[gt.classes[g], pred_cls[p]] += 1
    for g in set(range(len(gt.masks))) - matched_g:
        conf[gt.classes[g], background] += 1
    for p in set(range(len(pred_masks))) - matched_p:
        conf[background, pred_cls[p]] += 1


def evaluate_instance_model(model, data: Dataset, progress: Callable | None = None) -> EvalReport:  # noqa: ANN001
    from rtseg.evaluate.instance import coco_map

    names = tuple(model.names)
    to_model, skipped = _name_map(names, data.names, "instance")
    classes = sorted(set(to_model.values()))
    n = len(names)
    conf = np.zeros((n + 1, n + 1), np.int64)
    gts = [_gt_instances(data, i, to_model) for i in range(len(data))]  # labels first: cheap, and may be wrong
    if not any(len(g.classes) for g in gts):
        raise ConfigError(f"no labelled object of the classes {', '.join(names[c] for c in classes)} in the "
                          f"{len(data)} images: check the label files")
    preds = []
    for i in range(len(data)):
        (result,) = model([data.image(i)])
        preds.append(_pred_instances(result, i))
        _confusion_update(conf, gts[i], preds[-1], n)
        if progress:
            progress()
    box = coco_map(gts, preds, iou_type="bbox", class_ids=classes)
    mask = coco_map(gts, preds, iou_type="segm", class_ids=classes)
    metrics = {"box_mAP50": box["mAP50"], "box_mAP50_95": box["mAP50_95"],
               "mask_mAP50": mask["mAP50"], "mask_mAP50_95": mask["mAP50_95"]}
    per_class = [{"class": names[c], "gt": mask["per_class"][c]["gt"],
                  "box_AP50": box["per_class"][c]["AP50"], "box_AP50_95": box["per_class"][c]["AP50_95"],
                  "mask_AP50": mask["per_class"][c]["AP50"], "mask_AP50_95": mask["per_class"][c]["AP50_95"]}
                 for c in classes]
    keep = [*classes, n]  # only the classes the data labels, and background
    return EvalReport("instance", "", "", len(data), tuple([*(names[c] for c in classes), "background"]),
                      metrics, conf[np.ix_(keep, keep)], per_class, skipped)


def format_table(report: EvalReport) -> str:
    """A plain-text table of the per-class metrics and the means."""
    if report.task == "panoptic":
        return _panoptic_table(report)
    if report.task == "semantic":
        cols = ("iou", "dice", "precision", "recall", "bf")
        head = ["class", "IoU", "Dice/F1", "precision", "recall", "BF", "gt pixels"]
    else:
        cols = ("box_AP50", "box_AP50_95", "mask_AP50", "mask_AP50_95")
        head = ["class", "box AP50", "box AP50-95", "mask AP50", "mask AP50-95", "instances"]
    rows = [[r["class"], *(f"{r[c]:.4f}" if r[c] == r[c] else "-" for c in cols),
             str(r.get("gt_pixels", r.get("gt")))] for r in report.per_class]
    if report.task == "semantic":
        m = report.metrics
        rows.append(["mean", *(f"{m[k]:.4f}" if m[k] == m[k] else "-" for k in ("mIoU", "mDice", "mPrecision",
                                                                                    "mRecall", "mBF")),
                     str(m["pixels"])])
    else:
        m = report.metrics
        rows.append(["all", *(f"{m[k]:.4f}" for k in ("box_mAP50", "box_mAP50_95", "mask_mAP50", "mask_mAP50_95")),
                     str(sum(r["gt"] for r in report.per_class))])
    widths = [max(len(str(x)) for x in col) for col in zip(head, *rows)]
    lines = ["  ".join(str(x).ljust(w) if j == 0 else str(x).rjust(w) for j, (x, w) in enumerate(zip(row, widths)))
             for row in (head, *rows)]
    lines.insert(1, "-" * len(lines[0]))
    lines.insert(len(lines) - 1, "-" * len(lines[0]))
    if report.task == "semantic":
        lines.append(f"pixel accuracy {m['pixel_accuracy']:.4f}   mean pixel accuracy {m['mean_pixel_accuracy']:.4f}   "
                     "BF: boundary F-score, tolerance 0.75% of the image diagonal")
    return "\n".join(lines)


def evaluate_panoptic_files(model: str, semantic: str, data: Path, images: Path | None, masks: Path | None,
                            plot_out: Path | None, bar: Callable, **options: object) -> EvalReport:
    """``rtseg eval`` on COCO panoptic ground truth: the ground truth checked first (one line naming a missing
    file), then both models loaded, fused and measured (:mod:`rtseg.evaluate.panoptic`)."""
    from rtseg.evaluate.panoptic import evaluate_panoptic, is_panoptic_json, load_panoptic_gt
    from rtseg.pipeline.loading import RunOptions, load_models

    if not is_panoptic_json(data):
        raise ConfigError(f"semantic, panoptic_masks: only for panoptic ground truth (a COCO panoptic .json); "
                          f"{data} is not one")
    if plot_out is not None:
        raise ConfigError("plot_out: a panoptic evaluation has no confusion matrix to plot")
    gt = load_panoptic_gt(Path(data), images, masks)
    if options.get("conf") == EVAL_CONF:  # mAP's "every detection" would paste hundreds of false things
        options["conf"] = PANOPTIC_CONF
    seg, sem = load_models(RunOptions(model=model, semantic=semantic or "", **options))  # type: ignore[arg-type]
    with bar(len(gt), "eval") as progress:
        summary, skipped = evaluate_panoptic(seg, sem, gt, progress=progress.update)
    measured = {c: gt.categories[c] for c in summary["per_class"]}
    return panoptic_report(summary, measured, len(gt), skipped)


def panoptic_report(summary: dict, categories: dict[int, dict], images: int, skipped: tuple[str, ...]) -> EvalReport:
    """An :class:`EvalReport` of :func:`rtseg.evaluate.panoptic.evaluate_panoptic`'s summary (no confusion)."""
    metrics = {}
    for group in ("all", "things", "stuff"):
        for k in ("pq", "sq", "rq", "n"):
            metrics[f"{k.upper()}_{group}" if k != "n" else f"n_{group}"] = summary[group][k]
    per_class = []
    for cat, row in summary["per_class"].items():
        entry = {"class": categories[cat]["name"], "isthing": categories[cat]["isthing"], "category_id": cat}
        entry.update(row or {"pq": float("nan"), "sq": float("nan"), "rq": float("nan"), "tp": 0, "fp": 0, "fn": 0})
        per_class.append(entry)
    return EvalReport("panoptic", "", "", images, tuple(r["class"] for r in per_class), metrics,
                      np.zeros((0, 0), np.int64), per_class, skipped)


def _panoptic_table(report: EvalReport) -> str:
    head = ["class", "kind", "PQ", "SQ", "RQ", "TP", "FP", "FN"]
    fmt = lambda v: f"{100 * v:.1f}" if v == v else "-"  # noqa: E731 - percent, as panopticapi prints
    rows = [[r["class"], "thing" if r["isthing"] else "stuff", *(fmt(r[k]) for k in ("pq", "sq", "rq")),
             *(str(r[k]) for k in ("tp", "fp", "fn"))] for r in report.per_class]
    m = report.metrics
    for group in ("all", "things", "stuff"):
        rows.append([group, f"n={m['n_' + group]}", *(fmt(m[f"{k}_{group}"]) for k in ("PQ", "SQ", "RQ")), "", "", ""])
    widths = [max(len(str(x)) for x in col) for col in zip(head, *rows)]
    lines = ["  ".join(str(x).ljust(w) if j < 2 else str(x).rjust(w) for j, (x, w) in enumerate(zip(row, widths)))
             for row in (head, *rows)]
    lines.insert(1, "-" * len(lines[0]))
    lines.insert(len(lines) - 3, "-" * len(lines[0]))
    return "\n".join(lines)


def plot_confusion(report: EvalReport, path: Path) -> Path:
    """The confusion matrix, each row normalised to 1 (counts in the cells), as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    conf = report.confusion.astype(np.float64)
    norm = conf / np.maximum(conf.sum(1, keepdims=True), 1)
    n = len(report.names)
    fig, ax = plt.subplots(figsize=(2.2 + 0.6 * n, 1.8 + 0.6 * n))
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(n), report.names, rotation=45, ha="right")
    ax.set_yticks(range(n), report.names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("ground truth")
    unit = "pixels" if report.task == "semantic" else f"instances, conf>={CONFUSION_CONF}, mask IoU>={CONFUSION_IOU}"
    ax.set_title(f"confusion matrix, rows sum to 1\n({unit})", fontsize=8)
    if n <= 20:
        for (r, c), v in np.ndenumerate(norm):
            ax.text(c, r, f"{v:.2f}", ha="center", va="center", fontsize=7, color="white" if v > 0.5 else "black")
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    return save_figure(fig, path, dpi=110)


def write_json(report: EvalReport, path: Path) -> Path:
    def clean(x):  # noqa: ANN001, ANN202 - NaN is not JSON
        if isinstance(x, float) and x != x:
            return None
        if isinstance(x, dict):
            return {k: clean(v) for k, v in x.items()}
        if isinstance(x, list):
            return [clean(v) for v in x]
        return x

    return write_bytes(path, json.dumps(clean(report.to_json()), indent=1), what="JSON")
