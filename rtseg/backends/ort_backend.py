"""ONNX Runtime backends: :class:`OrtBackend` for YOLO-seg models exported by ``rtseg export`` (or by
Ultralytics), :class:`OrtSemanticBackend` for semantic models exported by
:func:`rtseg.exporters.semantic_onnx.export_semantic_onnx`."""

from __future__ import annotations

import ast
import logging
import os
import queue
from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from rtseg.backends.base import HOST, INSTANCE_METADATA_KEY, SEMANTIC_METADATA_KEY, ModelInfo, SemanticInfo
from rtseg.errors import BackendUnavailable, ModelError

if TYPE_CHECKING:
    import torch

LOGGER = logging.getLogger(__name__)


def _info_from_metadata(meta: dict[str, str], path: str) -> ModelInfo:
    if INSTANCE_METADATA_KEY in meta:
        return ModelInfo.from_json(meta[INSTANCE_METADATA_KEY])
    try:  # Ultralytics' own export metadata, values written as Python literals
        names = ast.literal_eval(meta["names"])
        imgsz = ast.literal_eval(meta["imgsz"])
        # nms=True exports hold NMS in the graph: their rows are final detections, as a one-to-one head's
        embedded_nms = bool(ast.literal_eval(meta.get("args", "{}")).get("nms"))
        return ModelInfo(names=tuple(names[i] for i in range(len(names))), imgsz=tuple(imgsz),
                         task=meta.get("task", "segment"), stride=int(meta.get("stride", 32)),
                         end2end=meta.get("end2end", "False") == "True" or embedded_nms, dynamic=True)
    except (KeyError, ValueError, SyntaxError):
        raise ModelError(f"{path} carries no class names or input size; export it with: "
                         "rtseg export WEIGHTS --format onnx") from None


def default_workers(device: str) -> int:
    """Concurrent inference calls a CPU backend serves by default: 2 sessions (two frames in flight) on a
    machine with 2 or more cores, each with half of the cores.

    One session with every core waits at each op for its slowest thread, and a decode or encode thread
    that takes a core makes that thread slow. Two sessions of half the cores each keep both cores busy:
    measured on 2 cores, 640x384 YOLO11n-seg, 19.9 ms per frame (2 sessions x 1 thread) against 25.2
    (1 session x 2 threads), and 36.5 for 1 session x 1 thread.
    """
    return 2 if not device.startswith("cuda") and (os.cpu_count() or 1) >= 2 else 1


def open_session(path: str, device: str, threads: int | None = None):  # noqa: ANN201 - ort.InferenceSession
    """An ONNX Runtime session on the CPU, or CUDA first when asked and available; one-line errors.

    CPU sessions use ``threads`` cores (default: all) without spin-waiting: ORT's default busy-waits between
    ops, which starves rtseg's decode and encode threads (measured on 2 cores, 720p YOLO11n-seg, whole
    pipeline: 17.0 FPS with spinning, 21.0 FPS without).
    """
    import onnxruntime as ort

    providers = ["CPUExecutionProvider"]
    if device.startswith("cuda"):
        if "CUDAExecutionProvider" not in ort.get_available_providers():
            raise BackendUnavailable("this onnxruntime has no CUDA provider: pip install onnxruntime-gpu, "
                                     "or use device='cpu'")
        providers.insert(0, "CUDAExecutionProvider")
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or os.cpu_count() or 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        return ort.InferenceSession(path, options, providers=providers)
    except Exception as exc:  # noqa: BLE001 - ORT raises its own untyped errors on a bad file
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(f"cannot load {path}: not a valid ONNX model ({reason[:200]})") from None


class OrtBackend:
    """Runs an ONNX YOLO-seg model on ONNX Runtime (CPU, or CUDA when its provider is installed).

    ``workers`` sessions (default: :func:`default_workers`) share the CPU's cores, so that many ``infer``
    calls can run at once from different threads; the pipeline keeps that many frames in flight.
    Outputs are float32 NumPy arrays (``device`` is :data:`~rtseg.backends.base.HOST`): post-processing runs
    in NumPy and a run on an ONNX model never imports PyTorch.
    """

    def __init__(self, path: str, *, device: str = "cpu", half: bool = False, workers: int | None = None) -> None:
        workers = default_workers(device) if workers is None else workers
        if workers < 1:
            raise ValueError(f"workers: expected >= 1, got {workers}")
        threads = max(1, (os.cpu_count() or 1) // workers)
        self._session = open_session(path, device, threads)
        meta = self._session.get_modelmeta().custom_metadata_map
        info = _info_from_metadata(meta, path)
        if info.task != "segment":
            raise ModelError(f"{path} is a {info.task!r} model; rtseg run needs an instance-segmentation model")
        inp = self._session.get_inputs()[0]
        dynamic = not all(isinstance(d, int) for d in inp.shape[2:])
        if not dynamic:
            info = ModelInfo(info.names, tuple(inp.shape[2:]), info.task, info.stride, info.end2end, dynamic=False)
        else:
            info = ModelInfo(info.names, info.imgsz, info.task, info.stride, info.end2end, dynamic=True)
        self.info = info
        self._input = inp.name
        self._fp16 = "float16" in inp.type
        self._fixed_batch = inp.shape[0] if isinstance(inp.shape[0], int) else None  # a static export's batch
        self.device = HOST  # outputs come back to the host as NumPy arrays, whichever provider ran them
        self._pool: queue.SimpleQueue = queue.SimpleQueue()
        self._pool.put(self._session)
        for _ in range(workers - 1):
            self._pool.put(open_session(path, device, threads))
        self.workers = workers

    def infer(self, batch: NDArray[np.float32] | torch.Tensor) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
        """Thread-safe: each call runs on a session of its own, waiting for one to be free."""
        session = self._pool.get()
        try:
            return self._infer(session, batch)
        finally:
            self._pool.put(session)

    def _infer(self, session, batch: NDArray[np.float32] | torch.Tensor  # noqa: ANN001
               ) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
        if not isinstance(batch, np.ndarray):  # prepared on a device (rtseg.preprocess.device): ORT takes NumPy
            batch = batch.cpu().numpy()
        x = batch.astype(np.float16) if self._fp16 else batch
        n, k = len(x), self._fixed_batch
        if k is None or n == k:
            preds, protos = session.run(None, {self._input: x})[:2]
            return preds.astype(np.float32, copy=False), protos.astype(np.float32, copy=False)
        # a static export takes exactly its batch (multi-stream runs batch several frames): split a larger
        # batch, pad a smaller one with its last frame and drop those outputs
        parts = []
        for start in range(0, n, k):
            chunk = x[start : start + k]
            if len(chunk) < k:
                chunk = np.concatenate([chunk, np.repeat(chunk[-1:], k - len(chunk), axis=0)])
            parts.append(session.run(None, {self._input: chunk})[:2])
        preds, protos = (np.concatenate([part[i] for part in parts])[:n] for i in (0, 1))
        return preds.astype(np.float32, copy=False), protos.astype(np.float32, copy=False)


class OrtSemanticBackend:
    """Runs an ONNX semantic model written by :func:`rtseg.exporters.semantic_onnx.export_semantic_onnx`.

    The :class:`SemanticInfo` comes from the model's ``rtseg_semantic`` metadata entry.
    """

    def __init__(self, path: str, *, device: str = "cpu", half: bool = False) -> None:
        if half:
            raise BackendUnavailable("half=True is not supported for ONNX semantic models; export an FP16 model "
                                     "instead")
        self._session = open_session(path, device)
        meta = self._session.get_modelmeta().custom_metadata_map
        if SEMANTIC_METADATA_KEY not in meta:
            raise ModelError(f"{path} carries no {SEMANTIC_METADATA_KEY!r} metadata (class names, input contract); "
                             "export it with rtseg.exporters.semantic_onnx.export_semantic_onnx")
        try:
            info = SemanticInfo.from_json(meta[SEMANTIC_METADATA_KEY])
        except (KeyError, ValueError, TypeError) as exc:
            raise ModelError(f"{path}: damaged {SEMANTIC_METADATA_KEY!r} metadata ({exc})") from None
        inp = self._session.get_inputs()[0]
        fixed = all(isinstance(d, int) for d in inp.shape[2:])
        if fixed:
            info = replace(info, imgsz=tuple(inp.shape[2:]), dynamic=False)
        self.info = info
        self._input = inp.name
        import torch  # the semantic stage post-processes tensors

        self.device = torch.device("cpu")

    def infer(self, batch: NDArray[np.float32]) -> torch.Tensor:
        import torch

        (logits,) = self._session.run(None, {self._input: np.ascontiguousarray(batch, dtype=np.float32)})[:1]
        return torch.from_numpy(logits).float()
