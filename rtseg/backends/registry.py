"""One table of model formats. It drives backend selection (``rtseg run``) and export (``rtseg export``).

Each format names, for each task, the backend that runs its files: :func:`load_backend` loads an instance-
segmentation model, :func:`load_semantic_backend` a semantic one, both through the same row. The table holds
``"module:name"`` strings resolved only when a format is used, so it imports no runtime (TensorRT,
ONNX Runtime, Ultralytics) and can name an exporter, or the semantic zoo that rebuilds a PyTorch checkpoint,
without importing them. Policies that need more than a file's format (running ``.pt`` weights on ONNX
Runtime on a CPU) live above, in :func:`rtseg.pipeline.loading.load_runtime`.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path

from rtseg.backends.base import Backend, SemanticBackend
from rtseg.config import check_option
from rtseg.errors import BackendUnavailable, ConfigError, ModelError

LOGGER = logging.getLogger(__name__)


TASKS = ("segment", "semantic")


@dataclass(frozen=True)
class Format:
    """A model format: which files it covers, which backend runs each task's models, and how to export to it.

    Attributes:
        name: the ``--format`` / ``--backend`` name.
        suffixes: model-file suffixes this format reads.
        backends: for each task (``"segment"``, ``"semantic"``), ``"module:name"`` of the backend class (or
            function) that loads a model of this format: ``name(path, *, device, half)`` returns the backend.
            Imported only when used.
        requires: the Python module the backends need, and the pip package that provides it.
        exporter: ``"module:function"`` writing this format from PyTorch weights, or None.
        takes_names: the backend also takes a model name, not only a file (Ultralytics downloads
            ``yolo26n-seg.pt``; torchvision names pretrained semantic weights ``arch.WEIGHTS``).
    """

    name: str
    suffixes: tuple[str, ...]
    backends: dict[str, str] = field(hash=False)
    requires: tuple[str, str]
    exporter: str | None = None
    takes_names: bool = False


FORMATS: dict[str, Format] = {
    "torch": Format("torch", (".pt", ".pth", ".yaml", ".yml"),
                    {"segment": "rtseg.backends.torch_backend:TorchBackend",
                     # a semantic checkpoint names its architecture: the zoo rebuilds the network, then wraps
                     # it in rtseg.backends.torch_backend.TorchSemanticBackend
                     "semantic": "rtseg.models.zoo:torch_semantic_backend"},
                    ("ultralytics", "ultralytics"), takes_names=True),
    "onnx": Format("onnx", (".onnx",),
                   {"segment": "rtseg.backends.ort_backend:OrtBackend",
                    "semantic": "rtseg.backends.ort_backend:OrtSemanticBackend"},
                   ("onnxruntime", "onnxruntime"), exporter="rtseg.exporters.onnx:export_onnx"),
    "engine": Format("engine", (".engine",),
                     {"segment": "rtseg.backends.trt_backend:TensorRTBackend",
                      "semantic": "rtseg.backends.trt_backend:TensorRTSemanticBackend"},
                     ("tensorrt", "tensorrt"), exporter="rtseg.exporters.engine:export_engine"),
}
BACKEND_NAMES = {"auto": None, "torch": "torch", "pytorch": "torch", "onnxruntime": "onnx", "ort": "onnx",
                 "onnx": "onnx", "tensorrt": "engine", "trt": "engine", "engine": "engine"}


def _import(ref: str) -> object:
    module, _, attr = ref.partition(":")
    return getattr(importlib.import_module(module), attr)


def format_for(model: str | Path, task: str = "segment") -> Format:
    """The format of a model file, from its suffix; for a semantic model, a pretrained name
    (``lraspp_mobilenet_v3_large.COCO_WITH_VOC_LABELS_V1``, not a file) is PyTorch's."""
    suffix = Path(str(model)).suffix.lower()
    for fmt in FORMATS.values():
        if suffix in fmt.suffixes:
            return fmt
    if task == "semantic" and suffix and not Path(str(model)).exists():
        return FORMATS["torch"]  # arch.WEIGHTS: its "suffix" is the weights tag
    known = ", ".join(s for f in FORMATS.values() for s in f.suffixes)
    names = " files or a pretrained name (arch.WEIGHTS)" if task == "semantic" else ""
    raise ModelError(f"{model}: unknown model file type {suffix or '(no suffix)'!r}; rtseg reads {known}{names}")


def backend_format(backend: str) -> str | None:
    """The format a ``backend`` name runs (``"onnxruntime"`` -> ``"onnx"``), None for ``"auto"``.

    Raises:
        ConfigError: an unknown name.
    """
    if backend not in BACKEND_NAMES:
        raise ConfigError(f"backend={backend!r}: expected one of {', '.join(BACKEND_NAMES)}")
    return BACKEND_NAMES[backend]


def check_workers(workers: int | None) -> None:
    """``workers`` is None (the backend's default) or a count in ``LIMITS["workers"]`` (1 to twice the cores,
    at most 16), else a :class:`ConfigError`."""
    check_option("workers", workers)


def no_nvidia_gpu() -> bool:
    """True where this machine certainly has no CUDA GPU: Linux with neither ``/dev/nvidia*`` (a driver's
    devices, also in a container given a GPU) nor ``/dev/dxg`` (WSL 2), or macOS. Elsewhere False: PyTorch
    is asked (importing it costs 1.3-1.8 s of start-up on a 2-core CPU)."""
    if sys.platform == "darwin":
        return True
    if not sys.platform.startswith("linux"):
        return False
    dev = Path("/dev")
    return not (dev / "dxg").exists() and not any(dev.glob("nvidia[0-9]*")) and not (dev / "nvidiactl").exists()


def check_device(device: str, *, half: bool) -> str:
    """Normalise ``--device`` (``auto``, ``cpu``, ``cuda``, ``cuda:1``, ``0``) and check the machine has it.

    ``auto`` is the first CUDA GPU when PyTorch sees one, else the CPU; on a Linux machine without NVIDIA's
    device files (:func:`no_nvidia_gpu`) that is the CPU, without importing PyTorch to ask.
    """
    device = device.strip().lower()
    if device == "auto":
        if no_nvidia_gpu():
            device = "cpu"
        else:
            import torch

            device = "cuda" if torch.cuda.is_available() else "cpu"
    if device.isdigit():
        device = f"cuda:{device}"
    if device != "cpu" and not device.startswith("cuda"):
        raise ConfigError(f"device={device!r}: expected auto, cpu, cuda, cuda:N or a GPU index")
    if device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise BackendUnavailable(f"device={device!r}: no CUDA GPU is visible to PyTorch on this machine; "
                                     "use device='cpu'")
    elif half:
        raise ConfigError("half=True needs a CUDA device (FP16 on a CPU is slower, not faster)")
    return device


def load_backend(model: str | Path, *, backend: str = "auto", device: str = "auto", half: bool = False,
                 workers: int | None = None, nms: bool | None = None) -> Backend:
    """Load an instance-segmentation ``model`` with the backend its format (or ``backend``) names.

    A ``.pt`` checkpoint runs on PyTorch here; :func:`rtseg.pipeline.loading.load_runtime` adds rtseg's CPU
    policy (on a CPU, ``.pt`` weights run on ONNX Runtime through a cached export).
    ``workers``: inference calls the backend serves at once (ONNX Runtime only; default: 2 on a CPU with 2
    or more cores, see :func:`rtseg.backends.ort_backend.default_workers`; every other backend serves 1).
    ``nms``: the YOLO26 head of a ``.pt`` checkpoint, as Ultralytics' ``predict(nms=...)``: None (default) or
    True the one-to-many head and NMS, False the one-to-one head (no NMS); see
    :class:`rtseg.backends.torch_backend.TorchBackend`. An exported file holds the head it was exported with.

    Raises:
        ModelError: the file is missing, corrupt, of an unknown type or of the wrong task.
        BackendUnavailable: the backend's package or the device is missing.
        ConfigError: the backend cannot run this model format.
    """
    loaded = _load(model, "segment", backend=backend, device=device, half=half, workers=workers, nms=nms)
    if nms is not None and format_for(model).name != "torch" and loaded.info.end2end == nms:
        held = "one-to-one head (no NMS)" if nms else "one-to-many head (with NMS)"
        LOGGER.warning("nms=%s: %s was exported with the %s, which runs; export the weights with nms=%s to "
                       "change that", nms, Path(str(model)).name, held, nms)
    return loaded  # type: ignore[return-value]


def load_semantic_backend(model: str | Path, *, backend: str = "auto", device: str = "cpu",
                          half: bool = False) -> SemanticBackend:
    """Load a semantic-segmentation ``model`` with the backend its format names: ``.pt`` / ``.pth`` / ``.yaml``
    and pretrained names (``lraspp_mobilenet_v3_large.COCO_WITH_VOC_LABELS_V1``) on PyTorch, ``.onnx`` on ONNX
    Runtime, ``.engine`` on TensorRT.

    Raises:
        ModelError: missing, corrupt or wrong-kind model, unknown suffix or name.
        BackendUnavailable: the backend's package (or ONNX Runtime's CUDA provider) is missing.
        ConfigError: ``backend`` cannot run this model format.
    """
    return _load(model, "semantic", backend=backend, device=device, half=half)  # type: ignore[return-value]


def _load(model: str | Path, task: str, *, backend: str, device: str, half: bool, workers: int | None = None,
          nms: bool | None = None) -> Backend | SemanticBackend:
    """The one loading path: the format row of ``model``, checked against ``backend``, runs ``task``."""
    wanted = backend_format(backend)
    check_workers(workers)
    fmt = format_for(model, task)
    if wanted is not None and wanted != fmt.name:
        hint = f"; export it first: rtseg export {model} --format {wanted}" if FORMATS[wanted].exporter else ""
        raise ConfigError(f"backend={backend!r} cannot run {Path(str(model)).name} ({fmt.name} format){hint}")
    if not fmt.takes_names and not Path(str(model)).is_file():
        raise ModelError(f"model file not found: {model}")
    module, package = fmt.requires
    if importlib.util.find_spec(module) is None:
        raise BackendUnavailable(f"the {fmt.name} backend needs {package}: pip install {package}")
    device = check_device(device, half=half)
    options: dict[str, object] = {}
    if fmt.name == "onnx" and task == "segment":
        options["workers"] = workers
    elif workers not in (None, 1):
        raise ConfigError(f"workers={workers}: only the ONNX Runtime backend runs several inference calls at "
                          f"once (this run uses {fmt.name}); use workers=1")
    if fmt.name == "torch" and task == "segment":
        options["nms"] = nms  # an exported file holds its head
    return _import(fmt.backends[task])(str(model), device=device, half=half, **options)  # type: ignore[operator]
