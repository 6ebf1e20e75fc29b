"""Turn raw YOLO head outputs into kept detections, mirroring Ultralytics' ``non_max_suppression``."""

from __future__ import annotations

import importlib.machinery
import importlib.util
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from rtseg.preprocess.letterbox import Letterbox

MAX_WH = 7680  # per-class box offset so one NMS call keeps classes apart (as Ultralytics)
MAX_NMS = 30000  # candidates kept before NMS
_NMS: list[Callable[[torch.Tensor, torch.Tensor, float], torch.Tensor]] = []


def nms_op() -> Callable[[torch.Tensor, torch.Tensor, float], torch.Tensor]:
    """torchvision's compiled NMS (``torchvision.ops.nms``: same kernels, same results) loaded from its
    library without importing torchvision's Python package, which costs 1.2-1.7 s of start-up on a 2-core CPU
    and is needed for nothing else on the way to the first frame. Falls back to the import."""
    if not _NMS:
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
    keep = pred[:, 4] > conf
    if classes is not None:
        keep &= (pred[:, 5:6] == torch.tensor(classes, device=pred.device)).any(1)
    return pred[keep][:max_det].float()


def boxes_to_frame(boxes_xyxy: torch.Tensor, lb: Letterbox) -> torch.Tensor:
    """Map boxes from network-input pixels to frame pixels, clipped to the frame (as ``scale_boxes``)."""
    gain_y, gain_x = lb.gain_yx
    h, w = lb.image_hw
    out = boxes_xyxy.clone()
    out[:, [0, 2]] = ((out[:, [0, 2]] - lb.left) / gain_x).clamp(0, w)
    out[:, [1, 3]] = ((out[:, [1, 3]] - lb.top) / gain_y).clamp(0, h)
    return out
