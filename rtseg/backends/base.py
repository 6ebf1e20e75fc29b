"""The backend protocol and the model description every backend exposes."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Protocol

import numpy as np
import torch
from numpy.typing import NDArray


@dataclass(frozen=True)
class ModelInfo:
    """What the pipeline needs to know about a loaded model; exported models carry it in their metadata.

    Attributes:
        names: class names, indexed by class id.
        imgsz: (height, width) the model was trained or exported at; the default inference size.
        task: ``"segment"`` for instance segmentation.
        stride: the largest feature stride; dynamic inputs are padded to a multiple of it.
        end2end: the head is one-to-one (YOLO26): outputs are final detections, no NMS.
        dynamic: the backend accepts any input size that is a multiple of ``stride``.
    """

    names: tuple[str, ...]
    imgsz: tuple[int, int]
    task: str = "segment"
    stride: int = 32
    end2end: bool = False
    dynamic: bool = True

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> ModelInfo:
        d = json.loads(text)
        return cls(names=tuple(d["names"]), imgsz=tuple(d["imgsz"]), task=d["task"], stride=int(d["stride"]),
                   end2end=bool(d["end2end"]), dynamic=bool(d.get("dynamic", True)))


class Backend(Protocol):
    """Runs the network: a (B, 3, H, W) float32 RGB batch in [0, 1] in, raw head outputs out.

    The batch is a NumPy array, or a tensor already on ``device`` (the device frame path,
    :mod:`rtseg.preprocess.device`). ``infer`` returns ``(preds, protos)``: ``preds`` is (B, 4 + nc + nm, A) for
    a one-to-many head or (B, K, 6 + nm) for an end-to-end head; ``protos`` is (B, nm, mh, mw).

    Optional attributes the pipeline reads: ``workers`` (how many ``infer`` calls may run at once from
    different threads; 1 when absent) and ``computes_with_torch`` (the network runs on PyTorch, so on a CPU
    the run keeps PyTorch's intra-op threads).
    """

    info: ModelInfo
    device: torch.device

    def infer(self, batch: NDArray[np.float32] | torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]: ...
