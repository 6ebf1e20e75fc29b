"""Turn raw YOLO head outputs into kept detections, mirroring Ultralytics' ``non_max_suppression``.

Each function takes PyTorch tensors (the PyTorch and TensorRT backends' outputs) or NumPy arrays (ONNX
Runtime's on the CPU) and answers in kind. The NumPy path never imports PyTorch: a run on an ONNX model
starts without paying for that import (1.3-1.8 s on a 2-core CPU).
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from rtseg.preprocess.letterbox import Letterbox

if TYPE_CHECKING:
    import torch

MAX_WH = 7680  # per-class box offset so one NMS call keeps classes apart (as Ultralytics)
MAX_NMS = 30000  # candidates kept before NMS
_NMS: list[Callable[[torch.Tensor, torch.Tensor, float], torch.Tensor]] = []


def nms_op() -> Callable[[torch.Tensor, torch.Tensor, float], torch.Tensor]:
    """torchvision's compiled NMS (``torchvision.ops.nms``: same kernels, same results) loaded from its
    library without importing torchvision's Python package, which costs 1.2-1.7 s of start-up on a 2-core CPU
    and is needed for nothing else on the way to the first frame. Falls back to the import."""
    if not _NMS:
        import torch

        try:
            spec = importlib.util.find_spec("torchvision")
            if spec is None or spec.origin is None:
                raise ImportError("torchvision is not installed")
            folder = Path(spec.origin).parent  # the library torchvision/extension.py loads: _C_stable, else _C
            candidates = [folder / f"{name}{suffix}" for name in ("_C_stable", "_C")
                          for suffix in importlib.machinery.EXTENSION_SUFFIXES]
            library = next(path for path in candidates if path.is_file())
            torch.ops.load_library(str(library))
            _NMS.append(torch.ops.torchvision.nms)
        except (ImportError, OSError, RuntimeError, ValueError, AttributeError, StopIteration):
            import torchvision

            _NMS.append(torchvision.ops.nms)
    return _NMS[0]


def select_nms(pred: torch.Tensor, *, nc: int, conf: float, iou: float, classes: Sequence[int] | None,
               max_det: int = 300, agnostic: bool = False) -> torch.Tensor:
    """NMS for one image of a one-to-many head (YOLOv8 / YOLO11 style).

    Args:
        pred: (4 + nc + nm, A) boxes as centre xywh in input pixels, class scores, mask coefficients.
        nc: number of classes.
        conf: keep candidates whose best class score is above this.
        iou: suppress boxes of the same class overlapping a better one by more than this.
        classes: keep only these class ids (None keeps all).
        max_det: keep at most this many detections.
        agnostic: suppress across classes too.

    Returns:
        (n, 6 + nm): x1, y1, x2, y2, score, class, mask coefficients; best score first.
    """
    if isinstance(pred, np.ndarray):
        return _select_nms_np(pred, nc=nc, conf=conf, iou=iou, classes=classes, max_det=max_det, agnostic=agnostic)
    import torch

    scores_all = pred[4 : 4 + nc]
    x = pred[:, scores_all.amax(0) > conf].T
    if not len(x):
        return x.new_zeros((0, pred.shape[0] + 2))
    xy, wh = x[:, :2], x[:, 2:4] / 2
    box = torch.cat((xy - wh, xy + wh), 1)
    score, cls = x[:, 4 : 4 + nc].max(1, keepdim=True)
    x = torch.cat((box, score, cls.float(), x[:, 4 + nc :]), 1)[score.view(-1) > conf]
    if classes is not None:
        x = x[(x[:, 5:6] == torch.tensor(classes, device=x.device)).any(1)]
    if len(x) > MAX_NMS:
        x = x[x[:, 4].argsort(descending=True)[:MAX_NMS]]
    offset = x[:, 5:6] * (0 if agnostic else MAX_WH)
    keep = nms_op()(x[:, :4] + offset, x[:, 4], iou)[:max_det]
    return x[keep]


def select_end2end(pred: torch.Tensor, *, conf: float, classes: Sequence[int] | None,
                   max_det: int = 300) -> torch.Tensor:
    """Filter one image of a one-to-one (NMS-free, YOLO26 style) head: (K, 6 + nm) rows, already ranked."""
    if isinstance(pred, np.ndarray):
        keep = pred[:, 4] > conf
        if classes is not None:
            keep &= np.isin(pred[:, 5], np.asarray(classes, dtype=pred.dtype))
        return pred[keep][:max_det].astype(np.float32)
    import torch

    keep = pred[:, 4] > conf
    if classes is not None:
        keep &= (pred[:, 5:6] == torch.tensor(classes, device=pred.device)).any(1)
    return pred[keep][:max_det].float()


def boxes_to_frame(boxes_xyxy: torch.Tensor, lb: Letterbox) -> torch.Tensor:
    """Map boxes from network-input pixels to frame pixels, clipped to the frame (as ``scale_boxes``)."""
    gain_y, gain_x = lb.gain_yx
    h, w = lb.image_hw
    if isinstance(boxes_xyxy, np.ndarray):
        out = boxes_xyxy.copy()
        out[:, [0, 2]] = ((out[:, [0, 2]] - lb.left) / gain_x).clip(0, w)
        out[:, [1, 3]] = ((out[:, [1, 3]] - lb.top) / gain_y).clip(0, h)
        return out
    out = boxes_xyxy.clone()
    out[:, [0, 2]] = ((out[:, [0, 2]] - lb.left) / gain_x).clamp(0, w)
    out[:, [1, 3]] = ((out[:, [1, 3]] - lb.top) / gain_y).clamp(0, h)
    return out


def _select_nms_np(pred: np.ndarray, *, nc: int, conf: float, iou: float, classes: Sequence[int] | None,
                   max_det: int, agnostic: bool) -> np.ndarray:
    """:func:`select_nms` in NumPy, step for step (float32 throughout, as the tensor path)."""
    pred = pred.astype(np.float32, copy=False)
    x = pred[:, pred[4 : 4 + nc].max(0) > conf].T
    if not len(x):
        return np.zeros((0, pred.shape[0] + 2), dtype=np.float32)
    xy, wh = x[:, :2], x[:, 2:4] / 2
    box = np.concatenate((xy - wh, xy + wh), 1)
    cls = x[:, 4 : 4 + nc].argmax(1)[:, None]
    score = np.take_along_axis(x[:, 4 : 4 + nc], cls, 1)
    x = np.concatenate((box, score, cls.astype(np.float32), x[:, 4 + nc :]), 1)[score[:, 0] > conf]
    if classes is not None:
        x = x[np.isin(x[:, 5], np.asarray(classes, dtype=np.float32))]
    if len(x) > MAX_NMS:
        x = x[np.argsort(-x[:, 4], kind="stable")[:MAX_NMS]]
    offset = x[:, 5:6] * np.float32(0 if agnostic else MAX_WH)
    return x[nms_np(x[:, :4] + offset, x[:, 4], iou, max_det)]


def nms_np(boxes: np.ndarray, scores: np.ndarray, iou: float, max_keep: int | None = None) -> np.ndarray:
    """Greedy NMS as ``torchvision.ops.nms`` computes it: best score first, a box is dropped when its
    overlap (intersection over union, float32) with a kept box exceeds ``iou``; at most ``max_keep`` kept.

    One pass per kept box over the boxes still standing, so the cost is bounded by ``max_keep`` passes.

    Example:
        >>> b = np.array([[0, 0, 10, 10], [1, 1, 10, 10], [20, 20, 30, 30]], np.float32)
        >>> nms_np(b, np.array([0.9, 0.8, 0.7], np.float32), 0.5).tolist()
        [0, 2]
    """
    boxes = boxes.astype(np.float32, copy=False)
    x1, y1, x2, y2 = boxes.T
    areas = (x2 - x1) * (y2 - y1)
    order = np.argsort(-scores, kind="stable")
    keep: list[int] = []
    limit = len(order) if max_keep is None else max_keep
    while order.size and len(keep) < limit:
        i, rest = order[0], order[1:]
        keep.append(int(i))
        w = np.maximum(np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]), np.float32(0))
        h = np.maximum(np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]), np.float32(0))
        inter = w * h
        order = rest[~(inter / (areas[i] + areas[rest] - inter) > iou)]
    return np.asarray(keep, dtype=np.int64)
