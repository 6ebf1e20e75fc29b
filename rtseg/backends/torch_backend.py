"""PyTorch backends: :class:`TorchBackend` runs Ultralytics YOLO-seg weights (``.pt``) or architecture configs
(``.yaml``), :class:`TorchSemanticBackend` a semantic network already built (by :mod:`rtseg.models.zoo`, which
reads checkpoints, YOLO26-sem weights and pretrained names; see :func:`rtseg.models.zoo.torch_semantic_backend`).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
from numpy.typing import NDArray
from torch import nn

from rtseg.backends.base import ModelInfo, SemanticInfo
from rtseg.errors import ModelError

LOGGER = logging.getLogger(__name__)


def load_yolo(weights: str):  # noqa: ANN201 - returns ultralytics.YOLO, imported lazily
    """Load Ultralytics weights or a config, turning every failure into a one-line :class:`ModelError`.

    A bare name such as ``yolo26n-seg.pt`` that is not on disk is downloaded by Ultralytics when online.
    A ``.pt`` is unpickled as data (:func:`rtseg.backends.weights.load_weights`) unless weights are trusted.
    """
    from ultralytics import YOLO

    from rtseg.backends.weights import ultralytics_loads

    path = Path(weights)
    if not path.exists() and path.parent != Path("."):
        raise ModelError(f"model file not found: {weights}")
    try:
        with ultralytics_loads():
            return YOLO(weights)
    except ModelError:
        raise
    except ConnectionError:
        raise ModelError(f"cannot find or download {weights!r} (offline?): download it on a connected machine, "
                         "or pass a local file as model=PATH") from None
    except FileNotFoundError:
        if path.exists():
            raise
        raise ModelError(f"model file not found: {weights} (neither a local file nor an Ultralytics model "
                         "name)") from None
    except Exception as exc:  # noqa: BLE001 - torch.load / YAML parsing raise many types on a bad file
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(f"cannot load {weights}: not a valid Ultralytics checkpoint or config ({reason})") from None


def _select_head(net, nms: bool | None, weights: str) -> bool:  # noqa: ANN001 - an Ultralytics model
    """Whether the one-to-one (end-to-end) head runs: ``nms is False``, as Ultralytics 8.4's predictor asks
    its ``AutoBackend`` (``end2end=nms is False``), unless the network lacks the head asked for.
    """
    head = net.model[-1]
    has_one2one = getattr(head, "one2one_cv2", None) is not None
    has_one2many = getattr(head, "cv2", None) is not None
    if nms is False and not has_one2one:
        LOGGER.warning("nms=False: %s has no one-to-one head (YOLO26 has one); running NMS", weights)
        return False
    if not has_one2many and has_one2one:  # saved fused in end-to-end mode: the one-to-many head is gone
        if nms:
            LOGGER.warning("nms=True: %s keeps only its one-to-one head; running it without NMS", weights)
        return True
    return nms is False


class TorchBackend:
    """Runs a YOLO-seg model through Ultralytics' own PyTorch module (fused, in eval mode).

    YOLO26 models carry two heads. ``nms`` picks one as Ultralytics 8.4's ``predict(nms=...)`` does: None
    (its default) or True runs the one-to-many head, whose outputs then go through NMS, whatever mode the
    checkpoint was saved in; False runs the one-to-one head, whose outputs are final detections (no NMS).
    ``info.end2end`` says which one runs. ``channels_last`` (default: on CUDA) stores weights and inputs NHWC,
    the layout cuDNN's tensor-core convolutions work in.
    """

    computes_with_torch = True  # on a CPU it needs PyTorch's intra-op threads (see rtseg.pipeline.core)

    def __init__(self, weights: str, *, device: str = "cpu", half: bool = False,
                 channels_last: bool | None = None, nms: bool | None = None) -> None:
        from ultralytics.nn.autobackend import AutoBackend

        yolo = load_yolo(weights)
        if yolo.task != "segment":
            raise ModelError(f"{weights} is a {yolo.task!r} model; rtseg run needs an instance-segmentation "
                             "model (a YOLO '-seg' checkpoint or config)")
        net = yolo.model
        end2end = _select_head(net, nms, str(weights))
        self.device = torch.device(device)
        self._model = AutoBackend(net, device=self.device, fp16=half, fuse=True, verbose=False,
                                  end2end=end2end).eval()
        if end2end and hasattr(net, "set_head_attr"):
            self._model.model.set_head_attr(max_det=300)
        args = getattr(net, "args", None) or {}
        imgsz = args.get("imgsz", 640) if isinstance(args, dict) else 640
        imgsz = (imgsz, imgsz) if isinstance(imgsz, int) else tuple(imgsz)
        self.info = ModelInfo(names=tuple(net.names[i] for i in range(len(net.names))), imgsz=imgsz,
                              task="segment", stride=int(max(net.stride)), end2end=end2end, dynamic=True)
        self._half = half
        self._channels_last = self.device.type == "cuda" if channels_last is None else channels_last
        if self._channels_last:  # the network inside Ultralytics' AutoBackend (8.4 wraps it in a plain object)
            net = getattr(getattr(self._model, "backend", None), "model", None)
            (net if isinstance(net, torch.nn.Module) else self._model).to(memory_format=torch.channels_last)

    def infer(self, batch: NDArray[np.float32] | torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = (batch if isinstance(batch, torch.Tensor) else torch.from_numpy(batch)).to(self.device, non_blocking=True)
        if self._half:
            x = x.half()
        if self._channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.inference_mode():
            out = self._model(x)
        first = out[0]
        preds, protos = (first[0], first[1]) if isinstance(first, (tuple, list)) else (out[0], out[1])
        return preds.float(), protos.float()


class TorchSemanticBackend:
    """Runs a semantic network (a module whose forward returns logits) with PyTorch.

    Args:
        model: e.g. the first value returned by :func:`rtseg.models.zoo.load_semantic`.
        info: its description.
        device: ``cpu`` or ``cuda[:N]``.
        half: FP16 inference (CUDA only).
    """

    computes_with_torch = True  # on a CPU it needs PyTorch's intra-op threads (see rtseg.pipeline.core)

    def __init__(self, model: nn.Module, info: SemanticInfo, *, device: str = "cpu", half: bool = False) -> None:
        self.device = torch.device(device)
        self._half = half
        self._model = model.to(self.device).eval()
        if half:
            self._model = self._model.half()
        self.info = info

    def infer(self, batch: NDArray[np.float32]) -> torch.Tensor:
        x = torch.from_numpy(batch).to(self.device, non_blocking=True)
        if self._half:
            x = x.half()
        with torch.inference_mode():
            return self._model(x).float()
