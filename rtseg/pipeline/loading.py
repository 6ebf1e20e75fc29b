"""Building the model stages a run asks for: instance and/or semantic model, tiling, class file; and the
CPU policy that picks ONNX Runtime for PyTorch weights (:func:`load_runtime`)."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

from rtseg.backends.base import Backend
from rtseg.backends.registry import (
    backend_format,
    check_device,
    check_workers,
    load_backend,
    load_semantic_backend,
)
from rtseg.config import DEFAULT_MODEL, PEOPLE_MODEL, check_options, parse_scales
from rtseg.errors import BackendUnavailable, ConfigError, ModelError


def _parse_classes(text: str | None, names: tuple[str, ...]) -> list[int] | None:
    if not text:
        return None
    ids = []
    lookup = {n.lower(): i for i, n in enumerate(names)}
    for part in (p.strip() for p in text.split(",") if p.strip()):
        if part.isascii() and part.isdigit():  # not str.isdigit alone: '²' is a digit that int() refuses
            if int(part) >= len(names):
                known = ", ".join(f"{i} {n}" for i, n in enumerate(names[:10])) + (", ..." if len(names) > 10 else "")
                raise ConfigError(f"classes={text!r}: this model has class ids 0..{len(names) - 1} ({known})")
            ids.append(int(part))
        elif part.lower() in lookup:
            ids.append(lookup[part.lower()])
        else:
            raise ConfigError(f"classes={text!r}: {part!r} is neither a class id nor a class name of this model")
    if not ids:  # an empty filter would silently keep every class
        raise ConfigError(f"classes={text!r}: name at least one class id or name")
    return ids


@dataclass
class RunOptions:
    """Everything ``rtseg run`` and ``rtseg demo`` pass to :func:`_run`."""

    model: str = ""
    semantic: str = ""
    out: Path | None = None
    jsonl: Path | None = None
    show: bool = False
    save_frames: Path | None = None
    save_labels: Path | None = None
    imgsz: int | None = None
    semantic_imgsz: int | None = None
    conf: float = 0.25
    iou: float = 0.7
    nms: bool | None = None  # YOLO26 head, as Ultralytics' predict(nms=): None/True NMS, False one-to-one
    classes: str | None = None
    device: str = "auto"
    backend: str = "auto"
    half: bool = False
    max_frames: int | None = None
    hud: bool = True
    alpha: float = 0.45
    semantic_alpha: float = 0.35
    quality: str = "fast"
    pad: int = 0
    scales: tuple[float, ...] | str = (1.0,)  # semantic multi-scale factors (rtseg.config.parse_scales)
    flip: bool = False  # semantic: also average the mirror image
    morph_open: int = 0
    morph_close: int = 0
    min_area: int = 0
    image_fps: float = 10.0
    quiet: bool = False
    track: str | None = None
    trails: int = 0
    tile: int | None = None
    overlap: float = 0.2
    tile_full: bool = False
    tile_merge: str = "nmm"
    class_file: Path | None = None
    instance_palette: tuple | None = None
    batch: int | None = None  # frames per inference call; None: one per source (1 with tiling)
    workers: int | None = None  # inference calls at once (ONNX Runtime); None: the backend's default
    video_preset: str = "auto"  # x264 preset; auto: rtseg.sinks.video.auto_preset
    precision: str = "fp32"  # int8: an INT8 ONNX copy on the CPU (rtseg.exporters.quantize.cached_int8)
    calib: str | None = None  # int8: calibration frames (a folder, a video); rtseg.run passes the first source
    calib_frames: int | None = None  # int8: how many; None: rtseg.exporters.quantize.DEFAULT_CALIB_FRAMES


def people_model(sources: list[str], model: object, semantic: object, background: object
                 ) -> tuple[str, Path] | None:
    """Where MediaPipe's selfie segmenter comes in when no model was named: ``("semantic", path)`` beside the
    bundled instance model for a webcam (``rtseg run 0``: person pixels with MediaPipe's edges, boxes and
    cats and dogs from the instance model), ``("model", path)`` alone for background replacement (the
    person mask is all it needs); None otherwise.

    Example:
        >>> people_model(["0"], None, None, None)[0], people_model(["a.mp4"], None, None, "blur")[0]
        ('semantic', 'model')
        >>> people_model(["a.mp4"], None, None, None), people_model(["0"], "my.pt", None, None)
        (None, None)
    """
    if model is not None or semantic not in (None, "") or not PEOPLE_MODEL.is_file():
        return None
    if background not in (None, ""):
        return "model", PEOPLE_MODEL
    return ("semantic", PEOPLE_MODEL) if any(str(s).strip().isdigit() for s in sources) else None


def load_runtime(model: str | Path, *, backend: str = "auto", device: str = "auto", half: bool = False,
                 workers: int | None = None, nms: bool | None = None, precision: str = "fp32",
                 calib: str | Path | None = None, calib_frames: int | None = None,
                 imgsz: int | None = None) -> Backend:
    """Load an instance-segmentation model as :func:`rtseg.backends.registry.load_backend` does, choosing the
    runtime of ``.pt`` weights: with ``backend="auto"`` on a CPU, or ``backend="onnxruntime"``, they run on ONNX
    Runtime through an export made once and cached in ``$RTSEG_CACHE`` (default ``~/.cache/rtseg``);
    ``backend="torch"`` keeps PyTorch. On a CPU, ONNX Runtime runs the whole pipeline 1.7x faster than PyTorch
    (benchmarks/). When the export fails, ``"auto"`` falls back to PyTorch with a warning.

    ``precision="int8"``: an INT8 ONNX Runtime copy on the CPU, built once from ``calib`` frames (letterboxed
    at ``imgsz``) and cached (:func:`int8_model`); an INT8 ``.onnx`` runs as it is.

    Arguments and errors: those of :func:`~rtseg.backends.registry.load_backend`.
    """
    wanted = backend_format(backend)
    check_workers(workers)
    if precision != "fp32":
        path = int8_model(model, backend=backend, device=device, half=half, calib=calib, calib_frames=calib_frames,
                          imgsz=imgsz, nms=nms, precision=precision)
        return load_backend(path, backend="onnx", device="cpu", workers=workers)
    if Path(str(model)).suffix.lower() == ".pt" and wanted in (None, "onnx"):
        device = check_device(device, half=half)
        if wanted == "onnx" or device == "cpu":
            onnx_path = _cached_onnx(str(model), required=wanted == "onnx", nms=nms)
            if onnx_path is not None:  # the export holds the head nms picked
                return load_backend(onnx_path, backend="onnx", device=device, half=half, workers=workers)
    return load_backend(model, backend=backend, device=device, half=half, workers=workers, nms=nms)


def int8_model(model: str | Path, *, backend: str = "auto", device: str = "auto", half: bool = False,
               calib: str | Path | None = None, calib_frames: int | None = None, imgsz: int | None = None,
               nms: bool | None = None, task: str = "segment", precision: str = "int8") -> Path:
    """The INT8 ONNX file ``model`` runs as: itself when it is one, else a cached quantized copy of ``.pt``
    weights, a semantic checkpoint or an FP32 ``.onnx`` (:func:`rtseg.exporters.quantize.cached_int8`)."""
    from rtseg.exporters.quantize import DEFAULT_CALIB_FRAMES, cached_int8, check_precision, is_int8

    check_precision(precision)
    if backend_format(backend) not in (None, "onnx"):
        raise ConfigError(f"precision={precision} runs on ONNX Runtime; backend={backend!r} cannot run it")
    if half:
        raise ConfigError(f"precision={precision} and half=True: pick one")
    if device.strip().lower() not in ("auto", "cpu"):
        raise ConfigError(f"precision={precision} runs on the CPU (ONNX Runtime); use device='cpu'")
    if is_int8(model):
        return Path(str(model))
    if not Path(str(model)).is_file():
        raise ModelError(f"model file not found: {model}")
    if Path(str(model)).suffix.lower() not in (".pt", ".pth", ".onnx"):
        raise ConfigError(f"precision={precision}: {Path(str(model)).name} cannot be quantized here; give .pt "
                          "weights or an .onnx file")
    if importlib.util.find_spec("onnxruntime") is None:
        raise BackendUnavailable("precision=int8 needs onnxruntime: pip install onnxruntime")
    if calib in (None, ""):
        raise ConfigError(f"precision={precision}: name calibration frames (calib=a folder of images or a video)")
    return cached_int8(str(model), calib=calib, calib_frames=calib_frames or DEFAULT_CALIB_FRAMES, imgsz=imgsz,
                       task=task, nms=nms)


def _cached_onnx(weights: str, *, required: bool, nms: bool | None) -> Path | None:
    """The cached ONNX export of ``weights``; None (PyTorch runs them) unless ``required``."""
    if importlib.util.find_spec("onnxruntime") is None:
        if required:
            raise BackendUnavailable("the onnx backend needs onnxruntime: pip install onnxruntime")
        return None
    if not Path(weights).is_file():  # a name Ultralytics downloads: PyTorch loads it
        if required:
            raise ModelError(f"model file not found: {weights}")
        return None
    from rtseg.exporters.onnx import cached_onnx  # exporting needs PyTorch and Ultralytics: not at start-up

    path = cached_onnx(weights, nms=nms)
    if path is None and required:
        raise BackendUnavailable(f"{weights} could not be exported to ONNX; use backend='torch'")
    return path


def load_models(opts: RunOptions):  # noqa: ANN201 - (instance stage | None, semantic stage | None)
    """Build the instance and/or semantic stages a run asks for (tiling, class file included)."""
    from rtseg.models.task import model_task

    check_options(imgsz=opts.imgsz, semantic_imgsz=opts.semantic_imgsz, conf=opts.conf, iou=opts.iou,
                  tile=opts.tile, overlap=opts.overlap, pad=opts.pad, morph_open=opts.morph_open,
                  morph_close=opts.morph_close, min_area=opts.min_area, workers=opts.workers)
    if opts.calib and opts.precision == "fp32":
        raise ConfigError(f"calib={opts.calib}: calibration frames are for precision='int8'")
    instance_spec, semantic_spec = opts.model or str(DEFAULT_MODEL), opts.semantic
    if opts.model and not opts.semantic and model_task(opts.model) == "semantic":
        instance_spec, semantic_spec = "", opts.model  # semantic-only run
    elif semantic_spec and model_task(semantic_spec) != "semantic":
        raise ConfigError(f"semantic={semantic_spec}: not a semantic-segmentation model (pass instance "
                          "models as model=...)")
    if not semantic_spec and opts.save_labels:
        raise ConfigError("save_labels needs a semantic model (semantic=..., or a semantic model=...)")
    scales = parse_scales(opts.scales)  # scales=0: one line before any model loads
    if not semantic_spec and (scales != (1.0,) or opts.flip):
        what = f"scales={opts.scales if isinstance(opts.scales, str) else ','.join(map(str, scales))}" \
            if scales != (1.0,) else "flip=True"
        raise ConfigError(f"{what}: multi-scale and mirrored inference apply to semantic models (semantic=..., "
                          "or a semantic model=...)")
    seg = sem = None
    morph = {"open_px": opts.morph_open, "close_px": opts.morph_close, "min_area": opts.min_area}
    if instance_spec:
        from rtseg.models.yolo_seg import YoloSegModel

        net = load_runtime(instance_spec, backend=opts.backend, device=opts.device, half=opts.half,
                           workers=opts.workers, nms=opts.nms, precision=opts.precision, calib=opts.calib,
                           calib_frames=opts.calib_frames, imgsz=opts.imgsz or opts.tile)
        seg = YoloSegModel(net, imgsz=opts.imgsz or opts.tile, conf=opts.conf, iou=opts.iou,
                           classes=_parse_classes(opts.classes, net.info.names), **morph)
        if opts.tile:
            from rtseg.models.tiling import TiledYoloSeg

            seg = TiledYoloSeg(seg, tile=opts.tile, overlap=opts.overlap, full_frame=opts.tile_full,
                               merge=opts.tile_merge)
    if semantic_spec:
        from rtseg.models.semantic import SemanticModel

        device = check_device(opts.device, half=opts.half)
        imgsz = opts.semantic_imgsz if seg is not None else (opts.semantic_imgsz or opts.imgsz)
        if opts.precision != "fp32":  # an INT8 ONNX copy on the CPU
            semantic_spec = str(int8_model(semantic_spec, backend=opts.backend, device=opts.device,
                                           half=opts.half, calib=opts.calib, calib_frames=opts.calib_frames,
                                           imgsz=imgsz or opts.tile, task="semantic", precision=opts.precision))
            device = "cpu"
        sem = SemanticModel(load_semantic_backend(semantic_spec, device=device, half=opts.half),
                            imgsz=imgsz or opts.tile, quality=opts.quality, pad=opts.pad, scales=opts.scales,
                            flip=opts.flip, **morph)
        if opts.tile:
            from rtseg.models.tiling import TiledSemantic

            sem = TiledSemantic(sem, tile=opts.tile, overlap=opts.overlap)
    if opts.class_file is not None:
        from rtseg.models.classmap import RemappedSemantic, load_class_file

        maps = load_class_file(opts.class_file)
        sem_map = maps.get("semantic") or (maps.get("default") if sem is not None else None)
        inst_map = maps.get("instance") or (maps.get("default") if sem is None else None)
        if sem is not None and sem_map is not None:
            sem = RemappedSemantic(sem, sem_map)
        if seg is not None and inst_map is not None:
            if inst_map.lut is not None or len(inst_map.names) < len(seg.names):
                raise ConfigError(f"class_file={opts.class_file}: the instance model has {len(seg.names)} classes; "
                                  "give as many names ('map' applies to semantic models only)")
            seg.names = inst_map.names
            opts.instance_palette = inst_map.palette_bgr
    return seg, sem


