"""TensorRT backends for engines built by ``rtseg export WEIGHTS --format engine`` (:mod:`rtseg.exporters.engine`).

:class:`TensorRTBackend` runs YOLO-seg engines (the :class:`~rtseg.backends.base.Backend` protocol: raw head
outputs), :class:`TensorRTSemanticBackend` semantic ones (the :class:`~rtseg.backends.base.SemanticBackend`
protocol: logits). Both read the engine's metadata (:mod:`rtseg.backends.trt_meta`), refuse an engine built for
another GPU architecture or TensorRT release with the command that rebuilds it, and run on PyTorch's CUDA
memory and current stream (TensorRT 10 ``set_tensor_address`` / ``execute_async_v3``; no pycuda), so their
outputs are torch CUDA tensors like the PyTorch backend's.

Engines have a fixed input size (``info.dynamic`` is False: frames are letterboxed to exactly ``imgsz``). A
batch larger than the engine's is split into several calls, a smaller one padded up to a static engine's
batch. With ``cuda_graph=True`` (or ``RTSEG_TRT_CUDA_GRAPH=1``) a static engine's call is captured once as a
CUDA graph and replayed, saving the kernel-launch overhead of small models.

Importing this module needs neither TensorRT nor CUDA; constructing a backend does.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray

from rtseg.backends.trt_meta import (
    EngineMeta,
    check_compatible,
    plan_batches,
    read_engine,
    read_engine_meta,
    rebuild_command,
)
from rtseg.backends.trt_runtime import gpu_identity, import_tensorrt, trt_logger
from rtseg.errors import BackendUnavailable, ConfigError, ModelError

LOGGER = logging.getLogger(__name__)


def _cuda_device(device: str) -> torch.device:
    device = str(device).strip().lower()
    if device.isdigit():
        device = f"cuda:{device}"
    if not device.startswith("cuda"):
        raise ConfigError(f"device={device!r}: a TensorRT engine runs on an NVIDIA GPU; use device='cuda'")
    if not torch.cuda.is_available():
        raise BackendUnavailable(f"device={device!r}: no CUDA GPU is visible to PyTorch on this machine; a TensorRT "
                                 "engine needs one")
    dev = torch.device(device)
    return torch.device("cuda", torch.cuda.current_device() if dev.index is None else dev.index)


def _torch_dtypes(trt: Any) -> dict[Any, torch.dtype]:
    table = {"FLOAT": torch.float32, "HALF": torch.float16, "INT8": torch.int8, "INT32": torch.int32,
             "BOOL": torch.bool, "UINT8": torch.uint8, "INT64": torch.int64, "BF16": torch.bfloat16}
    return {getattr(trt.DataType, k): v for k, v in table.items() if hasattr(trt.DataType, k)}


def cuda_graph_default() -> bool:
    return os.environ.get("RTSEG_TRT_CUDA_GRAPH", "0").strip().lower() in ("1", "true", "yes", "on")


class EngineRunner:
    """One deserialized engine and its execution context on one GPU: numpy batch in, torch CUDA outputs out.

    Args:
        path: the ``.engine`` file.
        meta, blob: its metadata and serialized engine (from :func:`rtseg.backends.trt_meta.read_engine`).
        device: ``cuda`` or ``cuda:N``.
        cuda_graph: capture a static engine's call as a CUDA graph (see the module docstring).
    """

    def __init__(self, path: str, meta: EngineMeta, blob: bytes, *, device: str = "cuda",
                 cuda_graph: bool | None = None) -> None:
        trt = import_tensorrt()
        self.device = _cuda_device(device)
        gpu_name, cc = gpu_identity(self.device.index)
        check_compatible(meta, trt.__version__, gpu_name, cc, path=path)
        logger = trt_logger()
        logger.sink.take_error()
        with torch.cuda.device(self.device):
            self._runtime = trt.Runtime(logger)
            self._engine = self._runtime.deserialize_cuda_engine(blob)
            if self._engine is None:
                reason = logger.sink.take_error() or "unknown reason"
                raise ModelError(f"{path}: TensorRT {trt.__version__} cannot load this engine ({reason}); rebuild "
                                 f"it on this machine: {rebuild_command(meta)}")
            self._context = self._engine.create_execution_context()
        if self._context is None:
            raise ModelError(f"{path}: TensorRT could not create an execution context (out of GPU memory?)")
        dtypes = _torch_dtypes(trt)
        names = [self._engine.get_tensor_name(i) for i in range(self._engine.num_io_tensors)]
        inputs = [n for n in names if self._engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        if len(inputs) != 1:
            raise ModelError(f"{path}: expected an engine with one input, found {len(inputs)}")
        self._input = inputs[0]
        self.outputs = [n for n in names if n != self._input]
        try:
            self._dtypes = {n: dtypes[self._engine.get_tensor_dtype(n)] for n in names}
        except KeyError as exc:
            raise ModelError(f"{path}: unsupported tensor type {exc.args[0]} in the engine") from None
        self.meta = meta
        fixed = tuple(self._engine.get_tensor_shape(self._input))
        self._shape: tuple[int, ...] | None = fixed if all(d > 0 for d in fixed) else None  # static: set already
        self._graphs = (cuda_graph_default() if cuda_graph is None else cuda_graph) and not meta.dynamic_batch
        self._graph: Any = None
        self._static_in: torch.Tensor | None = None
        self._static_out: list[torch.Tensor] = []

    def _set_shape(self, shape: tuple[int, ...]) -> None:
        if shape != self._shape:
            if not self._context.set_input_shape(self._input, shape):
                raise ModelError(f"TensorRT refused input shape {shape} (engine batch {self.meta.batch}, "
                                 f"size {self.meta.imgsz})")
            self._shape = shape

    def _bind(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Shape the context for ``x``, allocate outputs, and point every IO tensor at its memory."""
        self._set_shape(tuple(x.shape))
        outs = [torch.empty(tuple(self._context.get_tensor_shape(n)), dtype=self._dtypes[n], device=self.device)
                for n in self.outputs]
        self._context.set_tensor_address(self._input, int(x.data_ptr()))
        for name, out in zip(self.outputs, outs):
            self._context.set_tensor_address(name, int(out.data_ptr()))
        return outs

    def _enqueue(self) -> None:
        if not self._context.execute_async_v3(torch.cuda.current_stream(self.device).cuda_stream):
            raise ModelError("TensorRT inference failed (execute_async_v3 returned False); see the TensorRT "
                             "messages above")

    def _capture(self, x: torch.Tensor) -> bool:
        """Capture one call at ``x``'s shape as a CUDA graph on static buffers; False (and no graphs) on failure."""
        try:
            self._static_in = torch.empty_like(x)
            self._static_in.copy_(x)
            self._static_out = self._bind(self._static_in)
            self._enqueue()  # TensorRT wants one call after a shape change before a capture
            torch.cuda.current_stream(self.device).synchronize()
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                self._enqueue()
            self._graph = graph
            return True
        except Exception as exc:  # noqa: BLE001 - capture support depends on the engine's kernels
            LOGGER.warning("CUDA graph capture of the TensorRT engine failed (%s); running it without", exc)
            self._graphs, self._graph, self._static_in, self._static_out = False, None, None, []
            return False

    def _call(self, x: torch.Tensor) -> list[torch.Tensor]:
        if self._graphs:
            if self._graph is None:
                if self._capture(x):
                    self._graph.replay()
                    return [o.clone() for o in self._static_out]
            else:
                self._static_in.copy_(x)  # type: ignore[union-attr]
                self._graph.replay()
                return [o.clone() for o in self._static_out]  # the next replay overwrites the static outputs
        outs = self._bind(x)
        self._enqueue()
        return outs

    def run(self, batch: NDArray[np.float32] | torch.Tensor) -> list[torch.Tensor]:
        """All outputs (engine order) for a (B, C, H, W) float32 batch, B split or padded to the engine's range."""
        expected = (*self.meta.imgsz,)
        if batch.ndim != 4 or tuple(batch.shape[2:]) != expected:
            raise ConfigError(f"input of shape {tuple(batch.shape)}: this engine takes (B, 3, {expected[0]}, "
                              f"{expected[1]}) batches; run it at imgsz={max(expected)} or rebuild it")
        with torch.cuda.device(self.device):
            x = batch if isinstance(batch, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(batch))
            x = x.to(self.device, non_blocking=True)
            x = x.to(self._dtypes[self._input])
            parts: list[list[torch.Tensor]] = [[] for _ in self.outputs]
            for start, stop, size in plan_batches(len(x), self.meta.batch):
                chunk = x[start:stop]
                if size > stop - start:  # a static engine takes exactly its batch: pad with the last frame
                    chunk = torch.cat([chunk, chunk[-1:].expand(size - (stop - start), *chunk.shape[1:])])
                outs = self._call(chunk.contiguous())
                for i, out in enumerate(outs):
                    parts[i].append(out[: stop - start])
            return [p[0] if len(p) == 1 else torch.cat(p) for p in parts]


def _load(path: str, task: str, device: str, half: bool, cuda_graph: bool | None) -> EngineRunner:
    meta, blob = read_engine(path)
    if meta.task != task:
        what = "a semantic-segmentation" if meta.task == "semantic" else "an instance-segmentation"
        use = "semantic=... (or model=... alone)" if meta.task == "semantic" else "model=..."
        raise ModelError(f"{path} holds {what} engine; pass it as {use}")
    if half and meta.precision == "fp32":
        LOGGER.warning("%s: half=True has no effect on a TensorRT engine, whose precision (fp32) was fixed when it was "
                       "built; rebuild it with half=True", path)
    return EngineRunner(path, meta, blob, device=device, cuda_graph=cuda_graph)


class TensorRTBackend:
    """Runs a YOLO-seg TensorRT engine: (B, 3, H, W) float32 RGB in [0, 1] in, ``(preds, protos)`` out."""

    def __init__(self, path: str, *, device: str = "cuda", half: bool = False,
                 cuda_graph: bool | None = None) -> None:
        self._runner = _load(str(path), "segment", device, half, cuda_graph)
        self.info = self._runner.meta.model_info()
        self.device = self._runner.device
        shapes = {n: len(self._runner._context.get_tensor_shape(n)) for n in self._runner.outputs}
        preds = [n for n, nd in shapes.items() if nd == 3]  # engine order is the ONNX export's output order
        protos = [n for n, nd in shapes.items() if nd == 4]
        if not preds or not protos:
            raise ModelError(f"{path}: expected a YOLO-seg engine (a 3-D predictions and a 4-D prototypes output), "
                             f"found outputs {shapes}")
        self._order = (self._runner.outputs.index(preds[0]), self._runner.outputs.index(protos[0]))

    @property
    def meta(self) -> EngineMeta:
        return self._runner.meta

    def infer(self, batch: NDArray[np.float32]) -> tuple[torch.Tensor, torch.Tensor]:
        outs = self._runner.run(batch)
        return outs[self._order[0]].float(), outs[self._order[1]].float()


class TensorRTSemanticBackend:
    """Runs a semantic TensorRT engine: a (B, 3, H, W) normalised float32 RGB batch in, (B, C, h, w) logits out."""

    def __init__(self, path: str, *, device: str = "cuda", half: bool = False,
                 cuda_graph: bool | None = None) -> None:
        self._runner = _load(str(path), "semantic", device, half, cuda_graph)
        self.info = self._runner.meta.semantic_info()
        self.device = self._runner.device
        if len(self._runner.outputs) != 1:
            raise ModelError(f"{path}: expected a semantic engine with one output (logits), found "
                             f"{len(self._runner.outputs)}")

    @property
    def meta(self) -> EngineMeta:
        return self._runner.meta

    def infer(self, batch: NDArray[np.float32]) -> torch.Tensor:
        return self._runner.run(batch)[0].float()


def load_engine_backend(path: str | Path, *, device: str = "cuda", half: bool = False):  # noqa: ANN201
    """The backend an engine's metadata calls for: :class:`TensorRTBackend` or :class:`TensorRTSemanticBackend`."""
    cls = TensorRTSemanticBackend if read_engine_meta(path).task == "semantic" else TensorRTBackend
    return cls(str(path), device=device, half=half)
