"""INT8 ONNX models for the CPU: ONNX Runtime static quantization (QDQ, per-channel weights) calibrated on
frames letterboxed exactly as ``rtseg run`` letterboxes them.

The calibration frames go through the model's own stage (:meth:`YoloSegModel.prepare` /
:meth:`SemanticModel.prepare`, at the input size the INT8 model will run at), so the activation ranges are
those of real inputs, grey letterbox bars included. Calibration is ONNX Runtime's MinMax: the range of
every activation over the calibration frames.

What stays in FP32 was chosen by measurement (``benchmarks/int8.py`` and the model card): in a YOLO-seg
head, the decoding tail (DFL, anchor arithmetic, the concatenation of pixel boxes with 0..1 scores and
mask coefficients into one tensor) cannot share one INT8 scale; it is excluded (:func:`nodes_to_exclude`).

The file keeps rtseg's metadata (class names, input size, task) and adds a ``rtseg_quantization`` entry:
precision, calibration set name and frame count, the method and the nodes left in FP32.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from rtseg.errors import ConfigError, ModelError

LOGGER = logging.getLogger(__name__)

QUANT_METADATA_KEY = "rtseg_quantization"
DEFAULT_CALIB_FRAMES = 64  # MinMax ranges settle well before this (see the model card's INT8 section)
MAX_CALIB_FRAMES = 2048
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
VIDEO_SUFFIXES = (".mp4", ".mkv", ".mov", ".avi", ".webm", ".m4v", ".mpg", ".mpeg", ".ts", ".gif")
_MAX_SKIP = 30  # a long video: at most every 30th frame, so a calibration reads at most 30 x frames


def check_calib_frames(frames: int) -> int:
    """``frames`` as a count in 1..:data:`MAX_CALIB_FRAMES`, else a one-line :class:`ConfigError`."""
    if isinstance(frames, bool) or not isinstance(frames, int) or not 1 <= frames <= MAX_CALIB_FRAMES:
        raise ConfigError(f"calib_frames={frames!r}: expected a whole number in 1..{MAX_CALIB_FRAMES}")
    return frames


def calibration_frames(source: str | Path, frames: int = DEFAULT_CALIB_FRAMES) -> list[NDArray[np.uint8]]:
    """Up to ``frames`` BGR frames from ``source``: a folder of images (recursively, spread evenly over the
    sorted files), a glob, one image, or a video (its first frames; every k-th frame of a longer clip, k at
    most 30, so the calibration sees more than its first seconds), a camera index or a stream URL.

    Raises:
        ConfigError: no readable image in ``source`` (one line naming it).
    """
    check_calib_frames(frames)
    import cv2

    text = str(source)
    path = Path(text).expanduser()
    if path.is_dir() or any(c in text for c in "*?[") or path.suffix.lower() in IMAGE_SUFFIXES:
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        elif path.suffix.lower() in IMAGE_SUFFIXES and path.is_file():
            files = [path]
        else:
            import glob

            files = sorted(Path(p) for p in glob.glob(text, recursive=True) if Path(p).suffix.lower()
                           in IMAGE_SUFFIXES)
        if len(files) > frames:  # an even spread over the folder, not its first images only
            files = [files[round(i * (len(files) - 1) / max(1, frames - 1))] for i in range(frames)]
        images = [im for im in (cv2.imread(str(f), cv2.IMREAD_COLOR) for f in files) if im is not None]
        if not images:
            raise ConfigError(f"calib={text}: no readable images ({', '.join(IMAGE_SUFFIXES)}) found; INT8 "
                              "calibration needs frames like those the model will see")
        return images
    if not text.isdigit() and "://" not in text and not path.is_file():
        raise ConfigError(f"calib={text}: no such file or folder (expected a folder of images or a video)")
    cap = cv2.VideoCapture(int(text) if text.isdigit() else text)
    try:
        total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0) if cap.isOpened() else 0
        skip = min(_MAX_SKIP, max(1, total // frames)) if total > 0 else 1
        images, index = [], 0
        while cap.isOpened() and len(images) < frames:
            if index % skip == 0:
                ok, frame = cap.read()
                if ok and frame is not None:
                    images.append(frame if frame.ndim == 3 else cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR))
            else:
                ok = cap.grab()
            if not ok:
                break
            index += 1
    finally:
        cap.release()
    if not images:
        raise ConfigError(f"calib={text}: no frames could be read (not an image folder, nor a video OpenCV "
                          "decodes); INT8 calibration needs frames like those the model will see")
    return images


def calibration_name(source: str | Path) -> str:
    """How the metadata names a calibration set: the folder's or file's name (never a full local path)."""
    text = str(source).rstrip("/")
    return text if text.isdigit() or "://" in text else Path(text).name or text


def source_fingerprint(source: str | Path) -> str:
    """A short key that changes when the calibration source does (paths, sizes, modification times)."""
    path = Path(str(source)).expanduser()
    digest = hashlib.sha256(str(path.resolve() if path.exists() else source).encode())
    items = sorted(path.rglob("*")) if path.is_dir() else [path] if path.is_file() else []
    for item in items[:100000]:
        with contextlib.suppress(OSError):
            stat = item.stat()
            digest.update(f"{item}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:12]


def nodes_to_exclude(model, task: str) -> list[str]:  # noqa: ANN001 - onnx.ModelProto
    """Nodes left in FP32, by measurement (model card, INT8 section).

    YOLO-seg (Ultralytics' ``Segment`` head, the last ``/model.N/`` of the graph): every node of the head that
    is not one of its convolution branches (``cv2`` boxes, ``cv3`` classes, ``cv4`` mask coefficients,
    ``proto`` prototypes), i.e. DFL, anchors, the box arithmetic and the final concatenations, plus the
    last 1x1 convolution of each branch (raw box distances, class logits and mask coefficients), whose
    outputs feed the decoding directly. Quantizing the tail too gives mAP 0 (one scale for pixel boxes and
    0..1 scores); keeping the prototype branch in FP32 as well recovers 0.007 of Penn-Fudan mask mAP@0.5 but
    takes the speed-up from 1.5x to 1.35x. Semantic models (LinkNet-MobileNetV2 on pets): nothing; INT8
    logits lose 0.0004 mIoU, and keeping the last convolution in FP32 made the model slower than FP32.
    """
    names = [n.name for n in model.graph.node]
    if task == "semantic":
        return []
    heads = sorted({n.split("/")[1] for n in names if n.startswith("/model.") and n.count("/") >= 2},
                   key=lambda s: int(s.split(".")[1]) if s.split(".")[1].isdigit() else -1)
    if not heads:
        return []
    prefix = f"/{heads[-1]}/"
    branches = tuple(f"{prefix}{b}" for b in ("cv2", "cv3", "cv4", "proto", "one2one"))
    excluded = [n for n in names if n.startswith(prefix) and not n.startswith(branches)]
    last_convs = {}
    for node in model.graph.node:  # the last Conv of each cvK.i branch
        if node.op_type == "Conv" and node.name.startswith(branches[:3]):
            last_convs[node.name.split("/")[2]] = node.name
    return excluded + sorted(last_convs.values())


@contextlib.contextmanager
def _quiet_quantizer() -> Iterator[None]:
    """ONNX Runtime's quantizer logs advice on the root logger ("consider pre-processing"), which would
    configure it and print around rtseg's one-line output: drop those records while it runs."""
    root = logging.getLogger()
    added = logging.NullHandler() if not root.handlers else None  # logging.warning() would add a stderr one
    drop = logging.Filter("rtseg")  # passes rtseg's own records only

    import onnxruntime as ort

    if added is not None:
        root.addHandler(added)
    root.addFilter(drop)
    ort.set_default_logger_severity(3)  # "Removing initializer ... not used": the quantizer's own graphs
    try:
        yield
    finally:
        ort.set_default_logger_severity(2)
        root.removeFilter(drop)
        if added is not None:
            root.removeHandler(added)


class _Frames:
    """ONNX Runtime's ``CalibrationDataReader``: prepared batches, one frame each."""

    def __init__(self, input_name: str, batches: Sequence[NDArray[np.float32]]) -> None:
        self._items: Iterator = iter([{input_name: np.ascontiguousarray(b, dtype=np.float32)} for b in batches])

    def get_next(self) -> dict | None:
        return next(self._items, None)


def prepared_batches(fp32_onnx: str | Path, task: str, frames: Sequence[NDArray[np.uint8]],
                     imgsz: int | None = None) -> list[NDArray[np.float32]]:
    """Each frame as the model's stage prepares it at run time (letterbox, RGB, scaling, normalisation)."""
    from rtseg.backends.registry import load_backend, load_semantic_backend

    if task == "semantic":
        from rtseg.models.semantic import SemanticModel

        stage = SemanticModel(load_semantic_backend(fp32_onnx, backend="onnx", device="cpu"), imgsz=imgsz)
    else:
        from rtseg.models.yolo_seg import YoloSegModel

        stage = YoloSegModel(load_backend(fp32_onnx, backend="onnx", device="cpu", workers=1), imgsz=imgsz,
                             frames_on_device=False)
    return [np.asarray(stage.prepare([f]).batch) for f in frames]


def quantize_onnx(fp32_onnx: str | Path, out: str | Path, *, frames: Sequence[NDArray[np.uint8]],
                  calib_name: str, task: str, imgsz: int | None = None, exclude: Sequence[str] | None = None,
                  op_types: Sequence[str] | None = None) -> Path:
    """Write an INT8 (QDQ) copy of an rtseg FP32 ONNX model, calibrated on ``frames`` (BGR uint8).

    Args:
        fp32_onnx: a model written by ``rtseg export`` (instance or semantic).
        out: the INT8 file (written whole or not at all).
        frames: calibration frames, letterboxed here as ``rtseg run`` would at ``imgsz``.
        calib_name: the calibration set's name for the metadata.
        task: ``"segment"`` or ``"semantic"``.
        imgsz: the inference size the frames are prepared at (default: the model's own).
        exclude: nodes to keep in FP32; default :func:`nodes_to_exclude`.
        op_types: operator types to quantize; default ONNX Runtime's (all it can).
    """
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    if not frames:
        raise ConfigError("INT8 calibration needs at least one frame")
    batches = prepared_batches(fp32_onnx, task, frames, imgsz)
    model = onnx.load(str(fp32_onnx))
    input_name = model.graph.input[0].name
    excluded = list(nodes_to_exclude(model, task) if exclude is None else exclude)
    target = Path(out)
    with tempfile.TemporaryDirectory(prefix="rtseg-int8-") as tmp:
        staged = Path(tmp) / "int8.onnx"
        try:
            with _quiet_quantizer():
                quantize_static(str(fp32_onnx), str(staged), _Frames(input_name, batches),
                                quant_format=QuantFormat.QDQ, per_channel=True, activation_type=QuantType.QUInt8,
                                weight_type=QuantType.QInt8, nodes_to_exclude=excluded,
                                op_types_to_quantize=list(op_types) if op_types else None,
                                calibrate_method=CalibrationMethod.MinMax,
                                extra_options={"CalibTensorRangeSymmetric": False})
        except (ConfigError, ModelError):
            raise
        except Exception as exc:  # noqa: BLE001 - the quantizer raises many types
            reason = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
            raise ModelError(f"INT8 quantization of {fp32_onnx} failed: {reason}") from None
        quantized = onnx.load(str(staged))
        meta = {p.key: p.value for p in model.metadata_props}
        meta[QUANT_METADATA_KEY] = json.dumps({
            "precision": "int8", "calibration": {"name": calib_name, "frames": len(frames),
                                                 "input_hw": list(batches[0].shape[2:])},
            "method": "onnxruntime static QDQ, per-channel int8 weights, uint8 activations, MinMax",
            "fp32_nodes": len(excluded)})
        del quantized.metadata_props[:]
        for key, value in meta.items():
            entry = quantized.metadata_props.add()
            entry.key, entry.value = key, value
        save_onnx(quantized, target)
    LOGGER.info("quantized %s -> %s (INT8, %d calibration frames of %s)", fp32_onnx, target, len(frames),
                calib_name)
    return target


def quantization_info(path: str | Path) -> dict | None:
    """The ``rtseg_quantization`` metadata of an ONNX file (None for an FP32 one)."""
    import onnx

    try:
        meta = {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
    except Exception:  # noqa: BLE001 - not an ONNX file: no quantization to report
        return None
    with contextlib.suppress(ValueError, TypeError):
        return json.loads(meta[QUANT_METADATA_KEY]) if QUANT_METADATA_KEY in meta else None
    return None


PRECISIONS = ("fp32", "int8")


def check_precision(precision: str) -> str:
    if precision not in PRECISIONS:
        raise ConfigError(f"precision={precision!r}: expected one of {', '.join(PRECISIONS)}")
    return precision


def is_int8(path: str | Path) -> bool:
    """Whether ``path`` is an ONNX file rtseg quantized (its ``rtseg_quantization`` metadata says int8)."""
    info = quantization_info(path) if str(path).lower().endswith(".onnx") else None
    return bool(info and info.get("precision") == "int8")


def cached_int8(model: str | Path, *, calib: str | Path, calib_frames: int = DEFAULT_CALIB_FRAMES,
                imgsz: int | None = None, task: str = "segment", nms: bool | None = None) -> Path:
    """An INT8 copy of ``model`` (``.pt`` weights, a semantic checkpoint or an FP32 ``.onnx``), made once and
    reused from ``$RTSEG_CACHE/int8`` (keyed by the model's bytes, the calibration source's paths, sizes and
    times, the frame count, the input size and the versions of rtseg and ONNX Runtime).

    Building it logs one notice (the calibration source and frame count). The FP32 export behind a ``.pt``
    is :func:`rtseg.exporters.onnx.cached_onnx`'s.

    Raises:
        ConfigError: no frames in ``calib``; ModelError: unreadable weights or a failed export.
    """
    from importlib.metadata import version

    from rtseg.config import __version__
    from rtseg.exporters.onnx import cache_dir

    check_calib_frames(calib_frames)
    path = Path(str(model))
    if not path.is_file():
        raise ModelError(f"model file not found: {model}")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    head = "no-nms" if nms is False else "nms"
    key = (f"{path.stem}-{digest}-{head}-{imgsz or 'own'}-calib{source_fingerprint(calib)}x{calib_frames}"
           f"-rtseg{__version__}-ort{version('onnxruntime')}")
    target = cache_dir() / "int8" / f"{key}.onnx"
    if target.is_file():
        return target
    frames = calibration_frames(calib, calib_frames)
    LOGGER.warning("INT8: calibrating %s on %d frames of %s (once; cached in %s); calib=... chooses the frames",
                   path.name, len(frames), calibration_name(calib), target.parent)
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="rtseg-int8-") as tmp:
        if path.suffix.lower() == ".onnx":
            fp32 = path
        elif task == "semantic":
            from rtseg.exporters.semantic_onnx import export_semantic_onnx

            fp32 = export_semantic_onnx(path, out=Path(tmp) / "fp32.onnx")
        else:
            from rtseg.exporters.onnx import cached_onnx

            fp32 = cached_onnx(str(path), nms=nms)
            if fp32 is None:
                raise ModelError(f"{model} could not be exported to ONNX, so it cannot run in INT8; use "
                                 "precision='fp32'")
        partial = target.with_name(f".{target.name}.{os.getpid()}.partial.onnx")
        try:
            quantize_onnx(fp32, partial, frames=frames, calib_name=calibration_name(calib), task=task, imgsz=imgsz)
            partial.replace(target)
        finally:
            partial.unlink(missing_ok=True)
    return target


def save_onnx(proto: object, target: Path) -> None:
    """Write an ONNX model under a temporary name, then rename it: ``target`` is whole or absent."""
    import onnx

    partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
    try:
        onnx.save(proto, str(partial))
        partial.replace(target)
    finally:
        partial.unlink(missing_ok=True)
