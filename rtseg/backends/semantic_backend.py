"""Backends for semantic segmentation models: PyTorch (rtseg / Ultralytics checkpoints) and ONNX Runtime.

Both implement :class:`rtseg.models.semantic.SemanticBackend`: a (B, 3, H, W) float32 normalised RGB batch
in, (B, C, h, w) float32 logits out.
"""

from __future__ import annotations

import importlib.util
import logging
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from numpy.typing import NDArray
from torch import nn

from rtseg.errors import BackendUnavailable, ModelError
from rtseg.models.semantic import SemanticBackend, SemanticInfo

LOGGER = logging.getLogger(__name__)

ONNX_METADATA_KEY = "rtseg_semantic"


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

    @classmethod
    def load(cls, path: str, *, device: str = "cpu", half: bool = False) -> TorchSemanticBackend:
        """Load a checkpoint, Ultralytics YOLO26-sem ``.pt``/``.yaml`` or pretrained name (see ``load_semantic``)."""
        from rtseg.models.zoo import load_semantic

        model, info = load_semantic(path, device=device)
        return cls(model, info, device=device, half=half)

    def infer(self, batch: NDArray[np.float32]) -> torch.Tensor:
        x = torch.from_numpy(batch).to(self.device, non_blocking=True)
        if self._half:
            x = x.half()
        with torch.inference_mode():
            return self._model(x).float()


class OrtSemanticBackend:
    """Runs an ONNX semantic model written by :func:`rtseg.exporters.semantic_onnx.export_semantic_onnx`.

    The :class:`SemanticInfo` comes from the model's ``rtseg_semantic`` metadata entry.
    """

    def __init__(self, path: str, *, device: str = "cpu", half: bool = False) -> None:
        from rtseg.backends.ort_backend import open_session

        if half:
            raise BackendUnavailable("--half is not supported for ONNX semantic models; export an FP16 model instead")
        self._session = open_session(path, device)
        meta = self._session.get_modelmeta().custom_metadata_map
        if ONNX_METADATA_KEY not in meta:
            raise ModelError(f"{path} carries no {ONNX_METADATA_KEY!r} metadata (class names, input contract); "
                             "export it with rtseg.exporters.semantic_onnx.export_semantic_onnx")
        try:
            info = SemanticInfo.from_json(meta[ONNX_METADATA_KEY])
        except (KeyError, ValueError, TypeError) as exc:
            raise ModelError(f"{path}: damaged {ONNX_METADATA_KEY!r} metadata ({exc})") from None
        inp = self._session.get_inputs()[0]
        fixed = all(isinstance(d, int) for d in inp.shape[2:])
        if fixed:
            info = replace(info, imgsz=tuple(inp.shape[2:]), dynamic=False)
        self.info = info
        self._input = inp.name
        self.device = torch.device("cpu")

    def infer(self, batch: NDArray[np.float32]) -> torch.Tensor:
        (logits,) = self._session.run(None, {self._input: np.ascontiguousarray(batch, dtype=np.float32)})[:1]
        return torch.from_numpy(logits).float()


SUFFIXES = {".pt": "torch", ".pth": "torch", ".yaml": "torch", ".yml": "torch", ".onnx": "onnx",
            ".engine": "engine"}


def load_semantic_backend(path: str | Path, *, device: str = "cpu", half: bool = False) -> SemanticBackend:
    """Load a semantic model with the backend its suffix names: ``.pt`` -> PyTorch, ``.onnx`` -> ONNX Runtime,
    ``.engine`` -> TensorRT.

    A pretrained name (``lraspp_mobilenet_v3_large.COCO_WITH_VOC_LABELS_V1``) loads with PyTorch.

    Raises:
        ModelError: missing, corrupt or wrong-kind model, unknown suffix or name.
        BackendUnavailable: onnxruntime (or its CUDA provider) is missing.
    """
    source = str(path)
    suffix = Path(source).suffix.lower()
    kind = SUFFIXES.get(suffix)
    if kind is None and not Path(source).exists() and "." in source:
        kind = "torch"  # a pretrained name: its "suffix" is the weights tag
    if kind is None:
        raise ModelError(f"{source}: unknown semantic model type {suffix or '(no suffix)'!r}; rtseg reads "
                         f"{', '.join(SUFFIXES)} files or a pretrained name")
    if kind == "onnx":
        if not Path(source).is_file():
            raise ModelError(f"model file not found: {source}")
        if importlib.util.find_spec("onnxruntime") is None:
            raise BackendUnavailable("the onnx backend needs onnxruntime: pip install onnxruntime")
        return OrtSemanticBackend(source, device=device, half=half)
    if kind == "engine":
        if not Path(source).is_file():
            raise ModelError(f"model file not found: {source}")
        if importlib.util.find_spec("tensorrt") is None:
            raise BackendUnavailable("the engine backend needs tensorrt: pip install tensorrt (NVIDIA GPU only)")
        from rtseg.backends.trt_backend import TensorRTSemanticBackend

        return TensorRTSemanticBackend(source, device=device, half=half)
    return TorchSemanticBackend.load(source, device=device, half=half)
