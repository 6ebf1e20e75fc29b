"""Build TensorRT engines (``rtseg export WEIGHTS --format engine``) for YOLO-seg and semantic models.

The weights go to ONNX first, through rtseg's own exporters (:func:`rtseg.exporters.onnx.export_onnx`,
:func:`rtseg.exporters.semantic_onnx.export_semantic_onnx`), and TensorRT (10 or newer, Python API) builds the
ONNX into an engine for the GPU of this machine. The engine file carries rtseg's metadata (class names, input
size, precision, batch range, TensorRT version, GPU): see :mod:`rtseg.backends.trt_meta`.

An engine has a fixed input size (frames are letterboxed to it) and a fixed or dynamic batch. FP16 lets
TensorRT pick half-precision kernels; INT8 also calibrates activation ranges on a folder of images,
letterboxed exactly as rtseg letterboxes frames, and caches the calibration beside the engine so a rebuild
skips it. TensorRT and CUDA are imported only inside :func:`export_engine`; the helpers here are plain Python.
"""

from __future__ import annotations

import json
import logging
import tempfile
import threading
from pathlib import Path
from typing import Any

from rtseg.backends.base import INSTANCE_METADATA_KEY, SEMANTIC_METADATA_KEY, ModelInfo
from rtseg.backends.trt_meta import EngineMeta, engine_name, profile_shapes, write_engine
from rtseg.backends.trt_runtime import gpu_identity, import_tensorrt, trt_logger
from rtseg.errors import BackendUnavailable, ConfigError, ModelError
from rtseg.exporters.calibration import (  # noqa: F401 - re-exported: the build's INT8 pieces
    CALIB_LIMIT,
    IMAGE_SUFFIXES,
    CalibrationFeed,
    CalibrationImages,
    calibration_cache_path,
    calibration_files,
    trt_calibrator,
)
from rtseg.exporters.onnx import export_onnx
from rtseg.exporters.semantic_onnx import export_semantic_onnx
from rtseg.models.task import model_task

LOGGER = logging.getLogger(__name__)

DEFAULT_DIR = Path("engines")

NO_CUDA = ("building a TensorRT engine needs an NVIDIA GPU, and PyTorch sees no CUDA device here: build the "
           "engine on the machine that will run it (with a CUDA build of PyTorch)")


def require_cuda() -> None:
    """A one-line :class:`BackendUnavailable` unless PyTorch sees a CUDA GPU."""
    import torch

    if not torch.cuda.is_available():
        raise BackendUnavailable(NO_CUDA)


class BuildProgress:
    """TensorRT build phases as tqdm bars (the logic of rtseg's ``tensorrt.IProgressMonitor``).

    TensorRT calls these from its own threads; phases nest (a parent phase's bar stays, children's go).
    """

    def __init__(self, file: Any = None) -> None:
        self._bars: dict[str, Any] = {}
        self._depth: dict[str, int] = {}
        self._lock = threading.Lock()
        self._file = file

    def phase_start(self, phase_name: str, parent_phase: str | None, num_steps: int) -> None:
        from tqdm import tqdm

        with self._lock:
            depth = self._depth.get(parent_phase, -1) + 1 if parent_phase else 0
            self._depth[phase_name] = depth
            old = self._bars.pop(phase_name, None)
            if old is not None:
                old.close()
            self._bars[phase_name] = tqdm(total=max(int(num_steps), 1), desc="  " * depth + phase_name,
                                          position=depth, leave=depth == 0, file=self._file, dynamic_ncols=True)

    def step_complete(self, phase_name: str, step: int) -> bool:
        with self._lock:
            bar = self._bars.get(phase_name)
            if bar is not None:
                bar.n = min(int(step) + 1, bar.total)
                bar.refresh()
        return True  # False would cancel the build

    def phase_finish(self, phase_name: str) -> None:
        with self._lock:
            bar = self._bars.pop(phase_name, None)
            self._depth.pop(phase_name, None)
            if bar is not None:
                bar.n = bar.total
                bar.close()

    def close(self) -> None:
        with self._lock:
            for bar in self._bars.values():
                bar.close()
            self._bars.clear()
            self._depth.clear()


def precision_of(half: bool, int8: bool) -> str:
    return "int8" if int8 else "fp16" if half else "fp32"


def _check_options(*, out: str | Path | None, half: bool, int8: bool, calib: str | Path | None, batch: int,
                   dynamic: bool, max_batch: int, workspace_gb: float | None) -> None:
    if int8 and calib is None:
        raise ConfigError("int8=True needs calib=DIR: a folder of sample images to calibrate activation ranges")
    if calib is not None and not int8:
        raise ConfigError("calib is only used with int8=True")
    if calib is not None and not Path(calib).is_dir():
        raise ConfigError(f"calib={calib}: not a folder of images")
    profile_shapes((3, 32, 32), batch, dynamic, max_batch)  # batch range checks, one-line errors
    if workspace_gb is not None and workspace_gb <= 0:
        raise ConfigError(f"workspace_gb={workspace_gb}: expected a positive size in GiB")
    if out is not None:
        target = Path(out)
        if target.suffix.lower() != ".engine":
            raise ConfigError(f"out={target}: a TensorRT engine needs the .engine suffix")
        if not target.parent.exists():
            raise ConfigError(f"out={target}: folder {target.parent} does not exist")


def _onnx_input(path: Path) -> tuple[str, tuple[int, ...], dict[str, str]]:
    """(input name, input shape with -1 for dynamic dims, metadata) of an ONNX file."""
    import onnx

    proto = onnx.load(str(path), load_external_data=False)
    inp = proto.graph.input[0]
    dims = tuple(d.dim_value if d.HasField("dim_value") else -1 for d in inp.type.tensor_type.shape.dim)
    return inp.name, dims, {p.key: p.value for p in proto.metadata_props}


def _export_onnx(weights: str, task: str, target: Path, imgsz: int | None, batch: int, dynamic_onnx: bool,
                 nms: bool | None = None) -> tuple[Path, str, tuple[int, ...], dict[str, Any]]:
    """The ONNX export the engine is built from, and what the engine metadata needs from it."""
    if task == "semantic":
        path = export_semantic_onnx(weights, out=target, imgsz=imgsz, dynamic=dynamic_onnx)
        name, dims, meta = _onnx_input(path)
        sem = json.loads(meta[SEMANTIC_METADATA_KEY])
        fields = {"names": tuple(sem["names"]), "imgsz": tuple(sem["imgsz"]), "task": "semantic",
                  "stride": int(sem.get("stride", 32)), "end2end": False, "semantic": sem}
    else:
        path = export_onnx(weights, out=target, imgsz=imgsz, dynamic=dynamic_onnx, nms=nms,
                           **({} if dynamic_onnx else {"batch": batch}))
        name, dims, meta = _onnx_input(path)
        info = ModelInfo.from_json(meta[INSTANCE_METADATA_KEY])
        if info.task != "segment":
            raise ModelError(f"{weights} is a {info.task!r} model; rtseg engines hold instance or semantic "
                             "segmentation models")
        fields = {"names": info.names, "imgsz": info.imgsz, "task": "segment", "stride": info.stride,
                  "end2end": info.end2end, "semantic": None}
    return path, name, dims, fields


def export_engine(weights: str, *, out: str | Path | None = None, imgsz: int | None = None, half: bool = False,
                  int8: bool = False, calib: str | Path | None = None, batch: int = 1, dynamic: bool = False,
                  max_batch: int = 8, workspace_gb: float | None = 4, progress: bool = True,
                  nms: bool | None = None) -> Path:
    """Build a TensorRT engine from YOLO-seg or semantic weights, for the GPU of this machine.

    Args:
        weights: YOLO-seg ``.pt`` (or ``.yaml``), or anything the semantic exporter reads (rtseg semantic
            checkpoint, YOLO26-sem, pretrained name).
        out: the ``.engine`` file; default: ``engines/<name>`` under the current folder, named by
            :func:`rtseg.backends.trt_meta.engine_name` (e.g. ``engines/yolo11n-seg_640_fp16_b1.engine``).
        imgsz: input size; default: the model's own. The engine's input size is fixed.
        half: allow FP16 kernels.
        int8: allow INT8 kernels (and FP16), calibrated on the images in ``calib``.
        calib: folder of calibration images (INT8 only); the calibration is cached beside the engine.
        batch: frames per call: the fixed batch, or with ``dynamic`` the batch TensorRT tunes for.
        dynamic: accept 1 to ``max_batch`` frames per call (else exactly ``batch``).
        max_batch: the largest batch of a dynamic engine.
        workspace_gb: TensorRT's scratch-memory limit while building, in GiB (None: TensorRT's default).
        progress: show the build phases as progress bars.
        nms: the YOLO26 head the engine holds, as in :func:`rtseg.exporters.onnx.export_onnx`: None or True
            the one-to-many head (rtseg runs NMS), False the one-to-one head.

    Raises:
        ConfigError: contradictory or out-of-range options.
        BackendUnavailable: no CUDA GPU, no TensorRT, or a TensorRT without the precision asked for.
        ModelError: the weights cannot be loaded or exported, or TensorRT cannot build them.
    """
    _check_options(out=out, half=half, int8=int8, calib=calib, batch=batch, dynamic=dynamic, max_batch=max_batch,
                   workspace_gb=workspace_gb)
    precision = precision_of(half, int8)
    files = calibration_files(calib) if int8 else []  # type: ignore[arg-type]
    require_cuda()
    trt = import_tensorrt()
    flags = [f for f, on in (("FP16", precision in ("fp16", "int8")), ("INT8", int8)) if on]
    missing = [f for f in flags if not hasattr(trt.BuilderFlag, f)]
    if missing or (int8 and not hasattr(trt, "IInt8EntropyCalibrator2")):
        raise BackendUnavailable(f"TensorRT {trt.__version__} has no {precision.upper()} builder flag or INT8 "
                                 "calibrator (strongly typed builds only); build an FP32 engine, or use TensorRT 10")
    task = model_task(weights)
    gpu_name, cc = gpu_identity()

    with tempfile.TemporaryDirectory(prefix="rtseg-engine-") as tmp:
        dynamic_onnx = dynamic or (task == "semantic" and batch != 1)  # the semantic exporter fixes batch 1
        onnx_path, input_name, dims, fields = _export_onnx(weights, task, Path(tmp) / "model.onnx", imgsz, batch,
                                                           dynamic_onnx, nms)
        chw = (dims[1] if dims[1] > 0 else 3, *fields["imgsz"])
        shapes = profile_shapes(chw, batch, dynamic, max_batch)
        lo, opt, hi = shapes[0][0], shapes[1][0], shapes[2][0]
        target = Path(out) if out is not None else \
            DEFAULT_DIR / engine_name(_stem(weights), fields["imgsz"], precision, (lo, opt, hi), dynamic)
        target.parent.mkdir(parents=True, exist_ok=True)
        meta = EngineMeta(precision=precision, batch=(lo, opt, hi), trt_version=trt.__version__, gpu_name=gpu_name,
                          compute_capability=cc, source=Path(str(weights)).name, input_name=input_name,
                          calib=str(calib) if int8 else "", **fields)
        calibrator = None
        if int8:
            sem = fields["semantic"]
            images = CalibrationImages(files, fields["imgsz"], opt, mean_rgb=sem["mean_rgb"] if sem else None,
                                       std_rgb=sem["std_rgb"] if sem else None)
            feed = CalibrationFeed(images, calibration_cache_path(target, weights, files, fields["imgsz"], opt))
            calibrator = trt_calibrator(trt, feed)
        LOGGER.info("building a %s TensorRT %s engine for %s (sm %s), input %s, batch %s", precision.upper(),
                    trt.__version__, gpu_name, cc, "x".join(map(str, shapes[1][1:])),
                    f"{lo}-{hi}" if dynamic else lo)
        serialized = _build(trt, onnx_path, weights, input_name, dims, shapes, precision, calibrator,
                            workspace_gb, progress)
    write_engine(target, meta, serialized)
    LOGGER.info("built %s -> %s", weights, target)
    return target


def _stem(weights: str) -> str:
    """``yolo11n-seg`` for ``yolo11n-seg.pt``; a pretrained name ``arch.WEIGHTS`` becomes ``arch_WEIGHTS``."""
    name = Path(str(weights)).name
    return Path(name).stem if Path(name).suffix.lower() in (".pt", ".pth", ".yaml", ".yml") else name.replace(".", "_")


def _trt_progress(trt: Any, progress: BuildProgress) -> Any:
    """A ``tensorrt.IProgressMonitor`` that delegates to ``progress``."""

    class Monitor(trt.IProgressMonitor):
        def __init__(self) -> None:
            trt.IProgressMonitor.__init__(self)
            self.progress = progress

        def phase_start(self, phase_name, parent_phase, num_steps):  # noqa: ANN001, ANN202 - TensorRT callback
            progress.phase_start(phase_name, parent_phase, num_steps)

        def step_complete(self, phase_name, step):  # noqa: ANN001, ANN202
            return progress.step_complete(phase_name, step)

        def phase_finish(self, phase_name):  # noqa: ANN001, ANN202
            progress.phase_finish(phase_name)

    return Monitor()


def _build(trt: Any, onnx_path: Path, weights: str, input_name: str, dims: tuple[int, ...],
           shapes: tuple[tuple[int, ...], ...], precision: str, calibrator: Any, workspace_gb: float | None,
           progress: bool) -> bytes:
    """Parse the ONNX file and build the serialized engine (TensorRT 10 Python API)."""
    logger = trt_logger()
    logger.sink.take_error()
    builder = trt.Builder(logger)
    network = builder.create_network(0)  # explicit batch is the only mode in TensorRT 10
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = [" ".join(str(parser.get_error(i)).split()) for i in range(parser.num_errors)]
        raise ModelError(f"TensorRT {trt.__version__} cannot parse the ONNX export of {weights}: "
                         f"{(errors[0] if errors else logger.sink.take_error() or 'unknown error')[:300]}")
    config = builder.create_builder_config()
    if workspace_gb is not None:
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gb * (1 << 30)))
    if any(d < 0 for d in dims):  # a dynamic ONNX input: the profile fixes the spatial size, ranges the batch
        profile = builder.create_optimization_profile()
        profile.set_shape(input_name, *shapes)
        config.add_optimization_profile(profile)
    elif tuple(dims) != shapes[1]:
        raise ModelError(f"the ONNX export of {weights} has input {dims}, expected {shapes[1]}")
    if precision in ("fp16", "int8"):
        config.set_flag(trt.BuilderFlag.FP16)
    if precision == "int8":
        config.set_flag(trt.BuilderFlag.INT8)
        config.int8_calibrator = calibrator  # calibrates at the profile's opt shape
    monitor = None
    bars = BuildProgress() if progress else None
    if bars is not None and hasattr(trt, "IProgressMonitor"):
        monitor = _trt_progress(trt, bars)
        config.progress_monitor = monitor  # kept referenced (monitor) until the build returns
    try:
        serialized = builder.build_serialized_network(network, config)
    finally:
        if bars is not None:
            bars.close()
    del monitor
    if serialized is None:
        reason = logger.sink.take_error() or "see the TensorRT messages above"
        raise ModelError(f"TensorRT {trt.__version__} could not build an engine from {weights}: {reason}")
    return bytes(memoryview(serialized))
