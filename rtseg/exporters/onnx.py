"""Export PyTorch YOLO-seg weights to other formats; the format table lives in :mod:`rtseg.backends.registry`.

An exported model carries an ``rtseg`` metadata entry (class names, input size, task, stride, head type)
so that ``rtseg run --model x.onnx`` needs no side files.
"""

from __future__ import annotations

import importlib.metadata
import logging
import os
import shutil
import tempfile
from pathlib import Path

from rtseg.backends.base import INSTANCE_METADATA_KEY, ModelInfo
from rtseg.backends.registry import FORMATS, _import
from rtseg.config import __version__, cache_dir, file_digest
from rtseg.errors import ConfigError, ModelError
from rtseg.models.task import model_task

__all__ = ["cache_dir", "cached_onnx", "export", "export_onnx"]  # cache_dir: rtseg.config's, for callers here

LOGGER = logging.getLogger(__name__)


def export_onnx(weights: str, *, out: Path | None = None, imgsz: int | None = None, dynamic: bool = True,
                opset: int | None = None, batch: int = 1, nms: bool | None = None) -> Path:
    """Export YOLO-seg weights to ONNX with Ultralytics' exporter and add rtseg's metadata.

    Args:
        weights: a ``.pt`` checkpoint (or ``.yaml`` config, for untrained tests).
        out: output path; default: beside the weights, with the ``.onnx`` suffix.
        imgsz: input size; default: the size the weights were trained at.
        dynamic: accept any input size and batch (rtseg then pads frames only to the stride, as for
            PyTorch); ``False`` fixes the input at ``imgsz`` x ``imgsz``.
        opset: ONNX opset; default: Ultralytics' choice.
        batch: the fixed batch of a static export (a dynamic one accepts any).
        nms: which YOLO26 head the export holds, as in :class:`rtseg.backends.torch_backend.TorchBackend`:
            None or True the one-to-many head (rtseg runs NMS on its outputs; no NMS is put in the graph),
            False the one-to-one head (final detections). The metadata's ``end2end`` records the choice.
    """
    import onnx

    from rtseg.backends.torch_backend import TorchBackend, load_yolo  # exporting needs PyTorch; a cache hit not

    info = TorchBackend(weights, nms=nms).info  # validates file and task, one-line errors; picks the head
    size = imgsz or info.imgsz[0]
    target = Path(out) if out else Path(weights).with_suffix(".onnx")
    if target.suffix.lower() != ".onnx" and not target.name.endswith(".partial"):
        raise ConfigError(f"out={target}: an ONNX export needs the .onnx suffix")
    if not target.parent.exists():
        raise ConfigError(f"out={target}: folder {target.parent} does not exist")
    with tempfile.TemporaryDirectory(prefix="rtseg-export-") as tmp:
        local = Path(tmp) / Path(weights).name  # Ultralytics writes beside its input; keep that in a temp dir
        if Path(weights).exists():
            shutil.copy(weights, local)
            source = str(local)
        else:
            source = weights
        yolo = load_yolo(source)
        # Ultralytics' exporter keeps the one-to-one head with nms=False and the one-to-many one with nms=None
        kwargs = {"nms": False} if info.end2end else {}
        from ultralytics.utils import LOGGER as ULTRALYTICS_LOGGER

        level = ULTRALYTICS_LOGGER.level
        ULTRALYTICS_LOGGER.setLevel(logging.WARNING)  # its export banner would land on the user's stdout
        try:
            produced = yolo.export(format="onnx", imgsz=size, dynamic=dynamic, simplify=True, batch=batch,
                                   opset=opset, verbose=False, **kwargs)
        except Exception as exc:  # noqa: BLE001 - exporter failures come in many types
            raise ModelError(f"ONNX export of {weights} failed: {str(exc).strip().splitlines()[0]}") from None
        finally:
            ULTRALYTICS_LOGGER.setLevel(level)
        model = onnx.load(str(produced))
        meta = ModelInfo(names=info.names, imgsz=(size, size), task=info.task, stride=info.stride,
                         end2end=info.end2end, dynamic=dynamic)
        entry = next((p for p in model.metadata_props if p.key == INSTANCE_METADATA_KEY), None) \
            or model.metadata_props.add()
        entry.key, entry.value = INSTANCE_METADATA_KEY, meta.to_json()
        partial = target.with_name(f".{target.name}.partial")  # renamed once complete: never half a file
        try:
            onnx.save(model, str(partial))
            partial.replace(target)
        finally:
            partial.unlink(missing_ok=True)
    LOGGER.info("exported %s -> %s", weights, target)
    return target


def cached_onnx(weights: str, *, nms: bool | None = None) -> Path | None:
    """A dynamic ONNX export of ``weights``, made once and reused (keyed by file content, head and versions).

    ``nms`` picks the YOLO26 head as in :func:`export_onnx`; None and True give the same export.

    Returns None (PyTorch is used instead, with a warning) when the export itself fails; problems with the
    weights (missing, corrupt, wrong task) raise :class:`ModelError` as loading them would. A cache hit
    imports neither PyTorch nor Ultralytics (their versions are read from the installed metadata).
    """
    path = Path(weights)
    digest = file_digest(path)[:16]
    head = "no-nms" if nms is False else "nms"  # the graph holds the head: one export per mode
    target = (cache_dir() / "onnx"
              / f"{path.stem}-{digest}-{head}-rtseg{__version__}-ul{_ultralytics_version()}.onnx")
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
    try:
        LOGGER.info("exporting %s to ONNX for CPU inference (once; cached at %s)", weights, target)
        export_onnx(weights, out=partial, nms=nms)
        partial.replace(target)
    except ModelError as exc:
        if "ONNX export" not in str(exc):
            raise
        LOGGER.warning("%s; running it with PyTorch instead", exc)
        return None
    finally:
        partial.unlink(missing_ok=True)
    return target


def _ultralytics_version() -> str:
    """Ultralytics' version without importing it (0.6 s); ``__version__`` where the metadata is missing."""
    try:
        return importlib.metadata.version("ultralytics")
    except importlib.metadata.PackageNotFoundError:
        import ultralytics

        return ultralytics.__version__


def export(weights: str, fmt: str, **kwargs: object) -> Path:
    """Export ``weights`` to ``fmt`` (a key of :data:`rtseg.backends.registry.FORMATS` with an exporter).

    Semantic models (rtseg checkpoints, YOLO ``-sem``, torchvision names) go to ONNX through
    :func:`rtseg.exporters.semantic_onnx.export_semantic_onnx`; other formats' exporters (TensorRT engines)
    handle both tasks themselves.
    """
    spec = FORMATS.get(fmt)
    if spec is None or spec.exporter is None:
        choices = ", ".join(name for name, f in FORMATS.items() if f.exporter)
        raise ConfigError(f"format={fmt!r}: rtseg exports to {choices}")
    if fmt == "onnx" and model_task(weights) == "semantic":
        from rtseg.exporters.semantic_onnx import export_semantic_onnx

        return export_semantic_onnx(weights, **kwargs)  # type: ignore[arg-type]
    return _import(spec.exporter)(weights, **kwargs)  # type: ignore[operator]
