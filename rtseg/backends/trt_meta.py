"""TensorRT engine files: naming, the metadata they carry, optimisation-profile shapes, compatibility checks.

Pure Python (no TensorRT, no CUDA), so everything here is tested on any machine; building lives in
:mod:`rtseg.exporters.engine` and running in :mod:`rtseg.backends.trt_backend`.

File layout (the one Ultralytics uses for its ``.engine`` files, so either tool can strip the header):

    4 bytes   little-endian signed int32 N, the length of the metadata
    N bytes   UTF-8 JSON metadata (:class:`EngineMeta`), with ``"rtseg_engine": 1`` marking rtseg's layout
    rest      the serialized TensorRT engine (``builder.build_serialized_network`` output)

One file rather than a ``.json`` sidecar: an engine copied or renamed without its sidecar would lose its class
names and input contract, and a stale sidecar could describe a different engine.

Naming (:func:`engine_name`): ``<model stem>_<imgsz>_<precision>_<batch>.engine`` where ``imgsz`` is ``640``
for a square input or ``480x640`` (height x width), ``precision`` is ``fp32``, ``fp16`` or ``int8``, and
``batch`` is ``b4`` for an engine fixed at 4 frames per call or ``dyn1-8`` for a dynamic batch of 1 to 8
frames. Example: ``yolo11n-seg_640_fp16_b1.engine``.

Compatibility (:func:`check_compatible`): a serialized engine runs only on the GPU architecture (compute
capability) and the TensorRT release it was built with. rtseg refuses an engine whose TensorRT major.minor
or compute capability differs, with the command that rebuilds it. A different TensorRT patch release
(10.3.0 vs 10.3.1) is let through to TensorRT, which either loads the engine or refuses it (then
:class:`~rtseg.backends.trt_backend.TensorRTBackend` reports the same rebuild hint); a different GPU
model of the same compute capability only logs a warning (it runs, but was tuned for the other card).
"""

from __future__ import annotations

import json
import logging
import struct
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rtseg.backends.base import ENGINE_METADATA_KEY, ModelInfo, SemanticInfo
from rtseg.errors import ConfigError, ModelError

LOGGER = logging.getLogger(__name__)

FORMAT_KEY = ENGINE_METADATA_KEY  # "rtseg_engine": marks rtseg's header, its value is the layout version
FORMAT_VERSION = 1
PRECISIONS = ("fp32", "fp16", "int8")
TASKS = ("segment", "semantic")
_HEADER = struct.Struct("<i")
_MAX_META = 64 << 20  # a metadata block larger than this is not ours (class names are a few KiB)


def _size_text(imgsz: int | Sequence[int]) -> str:
    h, w = (imgsz, imgsz) if isinstance(imgsz, int) else (int(imgsz[0]), int(imgsz[1]))
    return str(h) if h == w else f"{h}x{w}"


def engine_name(model_stem: str, imgsz: int | Sequence[int], precision: str, batch: int | Sequence[int],
                dynamic: bool = False, max_batch: int | None = None) -> str:
    """The default file name of an engine, e.g. ``yolo11n-seg_640_fp16_b1.engine`` (scheme: module docstring).

    Args:
        model_stem: weights file name without suffix (``yolo11n-seg``).
        imgsz: input size, one int (square) or (height, width).
        precision: ``fp32``, ``fp16`` or ``int8``.
        batch: frames per call (static), or the (min, opt, max) batch range.
        dynamic: a dynamic batch range, named ``dyn<min>-<max>``.
        max_batch: the upper end of a dynamic range when ``batch`` is one int (the lower end is 1).
    """
    if precision not in PRECISIONS:
        raise ConfigError(f"precision {precision!r}: expected one of {', '.join(PRECISIONS)}")
    if isinstance(batch, int):
        lo, hi = (1, max_batch or batch) if dynamic else (batch, batch)
    else:
        lo, hi = int(batch[0]), int(batch[-1])
    tag = f"dyn{lo}-{hi}" if dynamic else f"b{lo}"
    return f"{model_stem}_{_size_text(imgsz)}_{precision}_{tag}.engine"


def profile_shapes(input_shape_chw: Sequence[int], batch: int, dynamic: bool, max_batch: int
                   ) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
    """(min, opt, max) NCHW shapes of the optimisation profile of the engine's input.

    The spatial size is always fixed (rtseg letterboxes every frame to the engine's input); only the batch
    may vary. A static engine has min = opt = max = ``batch``; a dynamic one accepts 1 to ``max_batch``
    frames and is tuned for ``batch``.

    Raises:
        ConfigError: a batch below 1, ``max_batch`` below ``batch``, or a non-positive input dimension.
    """
    chw = tuple(int(v) for v in input_shape_chw)
    if len(chw) != 3 or min(chw) < 1:
        raise ConfigError(f"input shape {tuple(input_shape_chw)}: expected positive (channels, height, width)")
    if batch < 1:
        raise ConfigError(f"batch={batch}: expected 1 or more frames per call")
    if not dynamic:
        shape = (batch, *chw)
        return shape, shape, shape
    if max_batch < batch:
        raise ConfigError(f"max_batch={max_batch}: must be at least batch={batch} (the batch the engine is "
                          "tuned for)")
    return (1, *chw), (batch, *chw), (max_batch, *chw)


def plan_batches(n: int, batch: Sequence[int]) -> list[tuple[int, int, int]]:
    """Split ``n`` frames into engine calls: ``(start, stop, run_size)`` for each call.

    ``batch`` is the engine's (min, opt, max) batch range. Each call takes at most ``max`` frames; a call with
    fewer frames than ``min`` (a static engine built for 4 frames, given 1) is padded to ``run_size = min``
    and its extra outputs dropped.
    """
    lo, _, hi = (int(v) for v in batch)
    plans = []
    for start in range(0, n, hi):
        stop = min(start + hi, n)
        plans.append((start, stop, max(stop - start, lo)))
    return plans


def _compute_capability_text(value: str | Sequence[int]) -> str:
    return value if isinstance(value, str) else ".".join(str(int(v)) for v in value)


@dataclass(frozen=True)
class EngineMeta:
    """What an rtseg engine file says about itself (see the module docstring for the file layout).

    Attributes:
        names: class names, indexed by class id.
        imgsz: (height, width) of the engine's fixed input.
        task: ``"segment"`` (YOLO-seg instance segmentation) or ``"semantic"``.
        precision: ``"fp32"``, ``"fp16"`` or ``"int8"`` (the fastest layers TensorRT was allowed to pick).
        batch: (min, opt, max) frames per call; all equal for a static engine.
        trt_version: ``tensorrt.__version__`` of the build.
        gpu_name: ``torch.cuda.get_device_name()`` of the build GPU.
        compute_capability: of the build GPU, e.g. ``"9.0"``.
        stride: the model's largest stride.
        end2end: the YOLO head is one-to-one (YOLO26): outputs are final detections, no NMS.
        semantic: for a semantic engine, its :class:`~rtseg.backends.base.SemanticInfo` as a JSON object.
        source: the weights the engine was built from (file name), for the rebuild hint.
        input_name: the engine's input tensor.
        calib: for INT8, the calibration image folder (for the rebuild hint).
    """

    names: tuple[str, ...]
    imgsz: tuple[int, int]
    task: str
    precision: str
    batch: tuple[int, int, int]
    trt_version: str
    gpu_name: str
    compute_capability: str
    stride: int = 32
    end2end: bool = False
    semantic: dict[str, Any] | None = field(default=None, compare=True, hash=False)
    source: str = ""
    input_name: str = "images"
    calib: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "names", tuple(str(n) for n in self.names))
        object.__setattr__(self, "imgsz", tuple(int(v) for v in self.imgsz))
        object.__setattr__(self, "batch", tuple(int(v) for v in self.batch))
        object.__setattr__(self, "compute_capability", _compute_capability_text(self.compute_capability))
        if self.task not in TASKS:
            raise ValueError(f"task {self.task!r}: expected one of {', '.join(TASKS)}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision {self.precision!r}: expected one of {', '.join(PRECISIONS)}")
        if len(self.imgsz) != 2 or min(self.imgsz) < 1:
            raise ValueError(f"imgsz {self.imgsz}: expected positive (height, width)")
        lo, opt, hi = self.batch if len(self.batch) == 3 else (0, 0, 0)
        if not 1 <= lo <= opt <= hi:
            raise ValueError(f"batch {self.batch}: expected (min, opt, max) with 1 <= min <= opt <= max")
        if self.task == "semantic" and not self.semantic:
            raise ValueError("a semantic engine needs its SemanticInfo (semantic=...)")

    @property
    def dynamic_batch(self) -> bool:
        return self.batch[0] != self.batch[2]

    def model_info(self) -> ModelInfo:
        """The :class:`~rtseg.backends.base.ModelInfo` of a YOLO-seg engine (fixed input size)."""
        return ModelInfo(names=self.names, imgsz=self.imgsz, task=self.task, stride=self.stride,
                         end2end=self.end2end, dynamic=False)

    def semantic_info(self) -> SemanticInfo:
        """The :class:`~rtseg.backends.base.SemanticInfo` of a semantic engine (fixed input size)."""
        if self.semantic is None:
            raise ModelError("this engine holds an instance-segmentation model, not a semantic one")
        d = dict(self.semantic, imgsz=list(self.imgsz), dynamic=False)
        return SemanticInfo.from_json(json.dumps(d))

    def to_json(self) -> str:
        return json.dumps({FORMAT_KEY: FORMAT_VERSION, **asdict(self)})

    @classmethod
    def from_json(cls, text: str | bytes) -> EngineMeta:
        """Parse metadata written by :meth:`to_json`.

        Raises:
            ValueError: not JSON, not rtseg's, or fields missing or out of range.
        """
        d = json.loads(text)
        if not isinstance(d, dict) or FORMAT_KEY not in d:
            raise ValueError("no rtseg engine metadata")
        if int(d[FORMAT_KEY]) > FORMAT_VERSION:
            raise ValueError(f"metadata version {d[FORMAT_KEY]} is newer than this rtseg reads ({FORMAT_VERSION}); "
                             "update rtseg")
        try:
            return cls(names=tuple(d["names"]), imgsz=tuple(d["imgsz"]), task=str(d["task"]),
                       precision=str(d["precision"]), batch=tuple(d["batch"]), trt_version=str(d["trt_version"]),
                       gpu_name=str(d["gpu_name"]), compute_capability=str(d["compute_capability"]),
                       stride=int(d.get("stride", 32)), end2end=bool(d.get("end2end", False)),
                       semantic=d.get("semantic"), source=str(d.get("source", "")),
                       input_name=str(d.get("input_name", "images")), calib=str(d.get("calib", "")))
        except KeyError as exc:
            raise ValueError(f"field {exc.args[0]!r} missing") from None


def write_engine(path: str | Path, meta: EngineMeta, engine_bytes: bytes | bytearray | memoryview) -> Path:
    """Write ``meta`` and the serialized engine to ``path`` (layout: module docstring), atomically."""
    path = Path(path)
    header = meta.to_json().encode()
    partial = path.with_name(f".{path.name}.partial")
    try:
        with open(partial, "wb") as f:
            f.write(_HEADER.pack(len(header)))
            f.write(header)
            f.write(memoryview(engine_bytes))
        partial.replace(path)
    finally:
        partial.unlink(missing_ok=True)
    return path


def _split(data: bytes, path: Path) -> tuple[EngineMeta, bytes]:
    hint = f"{path}: not an engine built by rtseg (no rtseg metadata); build one with: " \
           "rtseg export WEIGHTS --format engine"
    if len(data) < _HEADER.size:
        raise ModelError(hint)
    (n,) = _HEADER.unpack_from(data)
    if not 0 < n <= min(_MAX_META, len(data) - _HEADER.size):
        raise ModelError(hint)
    try:
        meta = EngineMeta.from_json(data[_HEADER.size : _HEADER.size + n].decode())
    except UnicodeDecodeError:
        raise ModelError(hint) from None
    except (ValueError, TypeError) as exc:
        if "no rtseg engine metadata" in str(exc):
            raise ModelError(hint) from None
        raise ModelError(f"{path}: damaged rtseg engine metadata ({exc})") from None
    engine = data[_HEADER.size + n :]
    if not engine:
        raise ModelError(f"{path}: the file holds metadata but no engine (truncated?); rebuild it")
    return meta, engine


def read_engine(path: str | Path) -> tuple[EngineMeta, bytes]:
    """The metadata and the serialized engine of an rtseg ``.engine`` file.

    Raises:
        ModelError: missing file, no rtseg metadata (a bare TensorRT engine, another tool's), damaged or
            truncated.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"model file not found: {path}")
    return _split(path.read_bytes(), path)


def read_engine_meta(path: str | Path) -> EngineMeta:
    """Only the metadata (reads the header, not the whole engine)."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"model file not found: {path}")
    with open(path, "rb") as f:
        head = f.read(_HEADER.size)
        n = _HEADER.unpack(head)[0] if len(head) == _HEADER.size else 0
        body = f.read(min(max(n, 0), _MAX_META) + 1) if 0 < n <= _MAX_META else b""
    return _split(head + body, path)[0]


def rebuild_command(meta: EngineMeta) -> str:
    """The ``rtseg export`` command that builds ``meta``'s engine again (on the machine that runs it)."""
    parts = ["rtseg export", meta.source or "WEIGHTS", "--format engine", f"--imgsz {max(meta.imgsz)}"]
    if meta.precision == "fp16":
        parts.append("--half")
    elif meta.precision == "int8":
        parts += ["--int8", f"--calib {meta.calib or 'IMAGES_DIR'}"]
    lo, opt, hi = meta.batch
    if lo != hi:
        parts += ["--dynamic", f"--batch {opt}", f"--max-batch {hi}"]
    elif lo != 1:
        parts.append(f"--batch {lo}")
    return " ".join(parts)


def _major_minor(version: str) -> tuple[str, ...]:
    return tuple(version.strip().split(".")[:2])


def check_compatible(meta: EngineMeta, trt_version: str, gpu_name: str, compute_capability: str | Sequence[int],
                     *, path: str | Path | None = None) -> None:
    """Refuse an engine this machine cannot run, with a one-line :class:`ModelError` naming the fix.

    Strict on the TensorRT major.minor and on the compute capability (TensorRT refuses both, or worse); a
    TensorRT patch difference or another GPU model of the same compute capability only logs a warning.
    """
    cc = _compute_capability_text(compute_capability)
    where = f"{path}: " if path else ""
    built = f"built for {meta.gpu_name} (sm {meta.compute_capability}) with TensorRT {meta.trt_version}"
    here = f"this machine has {gpu_name} (sm {cc}) with TensorRT {trt_version}"
    fix = f"rebuild it here: {rebuild_command(meta)}"
    if meta.compute_capability != cc:
        raise ModelError(f"{where}engine {built}, but {here}; an engine runs only on the GPU architecture it was "
                         f"built for: {fix}")
    if _major_minor(meta.trt_version) != _major_minor(trt_version):
        raise ModelError(f"{where}engine {built}, but {here}; an engine loads only in the TensorRT release it was "
                         f"built with: {fix}")
    if meta.trt_version.strip() != trt_version.strip():
        LOGGER.warning("%sengine built with TensorRT %s, running TensorRT %s: if it fails to load, %s", where,
                       meta.trt_version, trt_version, fix)
    if meta.gpu_name != gpu_name:
        LOGGER.warning("%sengine built on %s, running on %s (same sm %s): it runs, but was tuned for the other "
                       "GPU; for the best speed, %s", where, meta.gpu_name, gpu_name, cc, fix)
