"""One table of model formats. It drives backend selection (``rtseg run``) and export (``rtseg export``)."""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass
from pathlib import Path

from rtseg.backends.base import Backend
from rtseg.errors import BackendUnavailable, ConfigError, ModelError


@dataclass(frozen=True)
class Format:
    """A model format: which files it covers, which backend runs it, and how to export to it.

    Attributes:
        name: the ``--format`` / ``--backend`` name.
        suffixes: model-file suffixes this format reads.
        backend: ``"module:Class"`` of the backend that runs it (imported only when used).
        requires: the Python module the backend needs, and the pip package that provides it.
        exporter: ``"module:function"`` writing this format from PyTorch weights, or None.
    """

    name: str
    suffixes: tuple[str, ...]
    backend: str
    requires: tuple[str, str]
    exporter: str | None = None


FORMATS: dict[str, Format] = {
    "torch": Format("torch", (".pt", ".yaml", ".yml"), "rtseg.backends.torch_backend:TorchBackend",
                    ("ultralytics", "ultralytics")),
    "onnx": Format("onnx", (".onnx",), "rtseg.backends.ort_backend:OrtBackend", ("onnxruntime", "onnxruntime"),
                   exporter="rtseg.exporters.onnx:export_onnx"),
    "engine": Format("engine", (".engine",), "rtseg.backends.trt_backend:TensorRTBackend",
                     ("tensorrt", "tensorrt"), exporter="rtseg.exporters.engine:export_engine"),
}
BACKEND_NAMES = {"auto": None, "torch": "torch", "pytorch": "torch", "onnxruntime": "onnx", "ort": "onnx",
                 "onnx": "onnx", "tensorrt": "engine", "trt": "engine", "engine": "engine"}


def _import(ref: str) -> object:
    module, _, attr = ref.partition(":")
    return getattr(importlib.import_module(module), attr)


def format_for(model: str | Path) -> Format:
    """The format of a model file, from its suffix."""
    suffix = Path(str(model)).suffix.lower()
    for fmt in FORMATS.values():
        if suffix in fmt.suffixes:
            return fmt
    known = ", ".join(s for f in FORMATS.values() for s in f.suffixes)
    raise ModelError(f"{model}: unknown model file type {suffix or '(no suffix)'!r}; rtseg reads {known}")


def check_device(device: str, *, half: bool) -> str:
    """Normalise ``--device`` (``auto``, ``cpu``, ``cuda``, ``cuda:1``, ``0``) and check the machine has it.

    ``auto`` is the first CUDA GPU when PyTorch sees one, else the CPU.
    """
    device = device.strip().lower()
    if device == "auto":
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device.isdigit():
        device = f"cuda:{device}"
    if device != "cpu" and not device.startswith("cuda"):
        raise ConfigError(f"--device {device!r}: expected auto, cpu, cuda, cuda:N or a GPU index")
    if device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise BackendUnavailable(f"--device {device}: no CUDA GPU is visible to PyTorch on this machine; "
                                     "use --device cpu")
    elif half:
        raise ConfigError("--half needs a CUDA device (FP16 on CPU is slower, not faster); drop --half")
    return device


def load_backend(model: str | Path, *, backend: str = "auto", device: str = "auto", half: bool = False,
                 workers: int | None = None) -> Backend:
    """Load ``model`` with the backend its format (or ``backend``) names.

    With ``backend="auto"``, a ``.pt`` checkpoint on the CPU runs on ONNX Runtime through an export cached
    in ``$RTSEG_CACHE`` (default ``~/.cache/rtseg``); ``backend="torch"`` keeps PyTorch.
    ``workers``: inference calls the backend serves at once (ONNX Runtime only; default: 2 on a CPU with 2
    or more cores, see :func:`rtseg.backends.ort_backend.default_workers`; every other backend serves 1).

    Raises:
        ModelError: the file is missing, corrupt, of an unknown type or of the wrong task.
        BackendUnavailable: the backend's package or the device is missing.
        ConfigError: the backend cannot run this model format.
    """
    if backend not in BACKEND_NAMES:
        raise ConfigError(f"--backend {backend!r}: expected one of {', '.join(BACKEND_NAMES)}")
    if workers is not None and workers < 1:
        raise ConfigError(f"--workers {workers}: expected 1 or more")
    fmt = format_for(model)
    wanted = BACKEND_NAMES[backend]
    is_pt = Path(str(model)).suffix.lower() == ".pt"
    if wanted is not None and wanted != fmt.name and not (wanted == "onnx" and is_pt):
        hint = f"; export it first: rtseg export {model} --format {wanted}" if FORMATS[wanted].exporter else ""
        raise ConfigError(f"--backend {backend} cannot run {Path(str(model)).name} ({fmt.name} format){hint}")
    module, package = fmt.requires
    if importlib.util.find_spec(module) is None:
        raise BackendUnavailable(f"the {fmt.name} backend needs {package}: pip install {package}")
    device = check_device(device, half=half)
    if is_pt and (wanted == "onnx" or (wanted is None and device == "cpu")) \
            and importlib.util.find_spec("onnxruntime") is not None:
        # On a CPU, ONNX Runtime runs the pipeline 1.7x faster than PyTorch (benchmarks/): export once, cache.
        from rtseg.exporters.onnx import cached_onnx

        if not Path(str(model)).is_file():
            if wanted == "onnx":
                raise ModelError(f"model file not found: {model}")
        elif (onnx_path := cached_onnx(str(model))) is not None:
            return _import(FORMATS["onnx"].backend)(str(onnx_path), device=device, half=half,  # type: ignore[operator]
                                                    workers=workers)
        elif wanted == "onnx":
            raise BackendUnavailable(f"{model} could not be exported to ONNX; use --backend torch")
    cls = _import(fmt.backend)
    if fmt.name == "onnx":
        return cls(str(model), device=device, half=half, workers=workers)  # type: ignore[operator]
    if workers not in (None, 1):
        raise ConfigError(f"--workers {workers}: only the ONNX Runtime backend runs several inference calls at "
                          f"once (this run uses {fmt.name}); leave --workers out")
    return cls(str(model), device=device, half=half)  # type: ignore[operator]


def model_task(model: str | Path) -> str:
    """``"semantic"`` for a semantic-segmentation model, else ``"segment"`` (instance segmentation).

    Decided from the file without building the network: rtseg semantic checkpoints and ONNX exports carry
    a marker, Ultralytics checkpoints their task, rtseg TensorRT engines their metadata header, YOLO ``-sem``
    configs their name, and pretrained semantic weights are named ``arch.WEIGHTS``. Anything unreadable
    counts as instance segmentation, whose loader then reports the problem.
    """
    source = str(model)
    path = Path(source)
    suffix = path.suffix.lower()
    if "-sem" in path.stem.lower():
        return "semantic"
    if not path.exists():
        from rtseg.models.zoo import ARCHS

        head = source.split(".", 1)[0].lower()
        return "semantic" if "." in source and head in {a.lower() for a in ARCHS} else "segment"
    try:
        if suffix == ".onnx":
            import onnx

            meta = {p.key: p.value for p in onnx.load(source, load_external_data=False).metadata_props}
            return "semantic" if "rtseg_semantic" in meta or meta.get("task") == "semantic" else "segment"
        if suffix == ".engine":
            from rtseg.backends.trt_meta import read_engine_meta

            return read_engine_meta(source).task
        if suffix in (".pt", ".pth"):
            import torch

            try:
                ckpt = torch.load(source, map_location="cpu", weights_only=True)
            except Exception:  # noqa: BLE001 - pickled objects: an Ultralytics checkpoint, read its task below
                import ultralytics  # noqa: F401 - makes its classes importable for unpickling

                ckpt = torch.load(source, map_location="cpu", weights_only=False)
                net = ckpt.get("model") if isinstance(ckpt, dict) else None
                return "semantic" if getattr(net, "task", None) == "semantic" else "segment"
            return "semantic" if isinstance(ckpt, dict) and str(ckpt.get("format", "")).startswith(
                "rtseg-semantic") else "segment"
    except Exception:  # noqa: BLE001 - unreadable: let the instance loader say what is wrong
        return "segment"
    return "segment"
