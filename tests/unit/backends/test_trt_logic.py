"""The TensorRT path's pure logic, on any machine: naming, metadata, profiles, compatibility, errors, registry.

Nothing here needs TensorRT or a GPU; building and running engines is tested in tests/gpu/test_tensorrt.py.
"""

from __future__ import annotations

import io
import json
import logging
import struct
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from rtseg.backends.base import SemanticInfo
from rtseg.backends.registry import BACKEND_NAMES, FORMATS, format_for, load_backend
from rtseg.backends.trt_meta import (
    EngineMeta,
    check_compatible,
    engine_name,
    plan_batches,
    profile_shapes,
    read_engine,
    read_engine_meta,
    rebuild_command,
    write_engine,
)
from rtseg.errors import BackendUnavailable, ConfigError, ModelError
from rtseg.models.task import model_task

ENGINE = b"\x00fake-serialized-engine\xff" * 10


def seg_meta(**kw) -> EngineMeta:
    d = dict(names=("person", "car"), imgsz=(640, 640), task="segment", precision="fp16", batch=(1, 1, 1),
             trt_version="10.3.0", gpu_name="NVIDIA H100 80GB HBM3", compute_capability="9.0", stride=32,
             end2end=True, source="yolo26n-seg.pt")
    d.update(kw)
    return EngineMeta(**d)


def sem_info() -> SemanticInfo:
    return SemanticInfo(names=("bg", "road", "tree"), palette_bgr=((0, 0, 0), (128, 64, 128), (0, 128, 0)),
                        imgsz=(512, 512), mean_rgb=(0.485, 0.456, 0.406), std_rgb=(0.229, 0.224, 0.225),
                        arch="DeepLabV3", encoder=None, stride=16, dynamic=True)


def sem_meta(**kw) -> EngineMeta:
    info = sem_info()
    d = dict(names=info.names, imgsz=(384, 512), task="semantic", precision="fp32", batch=(1, 2, 8),
             trt_version="10.3.0", gpu_name="NVIDIA L4", compute_capability=(8, 9), stride=info.stride,
             semantic=json.loads(info.to_json()), source="deeplab.pt")
    d.update(kw)
    return EngineMeta(**d)


# ---- naming -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("args", "kwargs", "name"), [
    (("yolo11n-seg", 640, "fp16", 1), {}, "yolo11n-seg_640_fp16_b1.engine"),
    (("yolo11n-seg", 640, "int8", 4), {}, "yolo11n-seg_640_int8_b4.engine"),
    (("yolo11n-seg", 640, "fp32", 2), {"dynamic": True, "max_batch": 8}, "yolo11n-seg_640_fp32_dyn1-8.engine"),
    (("yolo11n-seg", 640, "fp32", (1, 4, 16)), {"dynamic": True}, "yolo11n-seg_640_fp32_dyn1-16.engine"),
    (("deeplab", (384, 512), "fp16", (2, 2, 2)), {}, "deeplab_384x512_fp16_b2.engine"),
    (("m", (320, 320), "fp32", 1), {}, "m_320_fp32_b1.engine"),
])
def test_engine_name(args, kwargs, name) -> None:
    assert engine_name(*args, **kwargs) == name


def test_engine_name_rejects_unknown_precision() -> None:
    with pytest.raises(ConfigError, match="precision 'bf16'"):
        engine_name("m", 640, "bf16", 1)


# ---- optimisation profile and batch planning ----------------------------------------------------------------


def test_profile_shapes_static_and_dynamic() -> None:
    assert profile_shapes((3, 640, 640), 1, False, 8) == ((1, 3, 640, 640),) * 3
    assert profile_shapes((3, 384, 512), 4, False, 1) == ((4, 3, 384, 512),) * 3  # max_batch ignored when static
    assert profile_shapes((3, 640, 640), 2, True, 8) == ((1, 3, 640, 640), (2, 3, 640, 640), (8, 3, 640, 640))


@pytest.mark.parametrize(("args", "message"), [
    (((3, 640, 640), 0, False, 8), "^batch=0"),
    (((3, 640, 640), 4, True, 2), "^max_batch=2: must be at least batch=4"),
    (((3, 640), 1, False, 8), "input shape"),
    (((3, 0, 640), 1, False, 8), "input shape"),
])
def test_profile_shapes_errors(args, message) -> None:
    with pytest.raises(ConfigError, match=message):
        profile_shapes(*args)


@pytest.mark.parametrize(("n", "batch", "plan"), [
    (1, (1, 1, 1), [(0, 1, 1)]),
    (3, (1, 1, 1), [(0, 1, 1), (1, 2, 1), (2, 3, 1)]),
    (1, (4, 4, 4), [(0, 1, 4)]),  # a static batch-4 engine given one frame: padded
    (6, (4, 4, 4), [(0, 4, 4), (4, 6, 4)]),
    (10, (1, 2, 8), [(0, 8, 8), (8, 10, 2)]),  # dynamic: no padding
    (0, (1, 1, 8), []),
])
def test_plan_batches(n, batch, plan) -> None:
    assert plan_batches(n, batch) == plan


# ---- metadata and file layout -------------------------------------------------------------------------------


@pytest.mark.parametrize("make", [seg_meta, sem_meta])
def test_engine_file_round_trip(tmp_path, make) -> None:
    meta = make()
    path = write_engine(tmp_path / "m.engine", meta, ENGINE)
    got, blob = read_engine(path)
    assert got == meta and blob == ENGINE
    assert read_engine_meta(path) == meta
    assert not list(tmp_path.glob(".*partial"))
    # Ultralytics' layout: int32 little-endian length, JSON, engine bytes
    raw = path.read_bytes()
    (n,) = struct.unpack("<i", raw[:4])
    assert json.loads(raw[4 : 4 + n])["rtseg_engine"] == 1 and raw[4 + n :] == ENGINE


def test_meta_gives_the_backends_their_model_descriptions() -> None:
    info = seg_meta().model_info()
    assert info.names == ("person", "car") and info.imgsz == (640, 640) and info.end2end and info.stride == 32
    assert info.dynamic is False  # an engine's input size is fixed: frames are letterboxed to it
    sem = sem_meta().semantic_info()
    assert sem == SemanticInfo(**{**sem_info().__dict__, "imgsz": (384, 512), "dynamic": False})
    assert sem_meta().compute_capability == "8.9" and sem_meta().dynamic_batch and not seg_meta().dynamic_batch
    with pytest.raises(ModelError, match="not a semantic one"):
        seg_meta().semantic_info()


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"task": "detect"}, "task"), ({"precision": "fp8"}, "precision"), ({"batch": (2, 1, 4)}, "batch"),
    ({"batch": (1, 1)}, "batch"), ({"imgsz": (640,)}, "imgsz"), ({"task": "semantic"}, "SemanticInfo"),
])
def test_meta_validation(kwargs, message) -> None:
    with pytest.raises(ValueError, match=message):
        seg_meta(**kwargs)


def test_unreadable_engine_files(tmp_path) -> None:
    with pytest.raises(ModelError, match="not found"):
        read_engine(tmp_path / "missing.engine")
    raw = tmp_path / "raw.engine"  # a bare TensorRT engine (trtexec's): no rtseg header
    raw.write_bytes(b"ftrt" + bytes(range(256)) * 4)
    for path in (raw,):
        with pytest.raises(ModelError, match="not an engine built by rtseg.*rtseg export WEIGHTS --format engine"):
            read_engine(path)
        with pytest.raises(ModelError, match="not an engine built by rtseg"):
            read_engine_meta(path)
    other = tmp_path / "ultralytics.engine"  # another tool's JSON header
    header = json.dumps({"names": {"0": "a"}, "imgsz": [640, 640]}).encode()
    other.write_bytes(struct.pack("<i", len(header)) + header + ENGINE)
    with pytest.raises(ModelError, match="not an engine built by rtseg"):
        read_engine(other)
    tiny = tmp_path / "tiny.engine"
    tiny.write_bytes(b"\x01")
    with pytest.raises(ModelError, match="not an engine built by rtseg"):
        read_engine(tiny)
    truncated = tmp_path / "truncated.engine"
    write_engine(truncated, seg_meta(), ENGINE)
    (n,) = struct.unpack("<i", truncated.read_bytes()[:4])
    truncated.write_bytes(truncated.read_bytes()[: 4 + n])
    with pytest.raises(ModelError, match="no engine.*truncated"):
        read_engine(truncated)
    damaged = tmp_path / "damaged.engine"
    header = json.dumps({"rtseg_engine": 1, "names": ["a"]}).encode()
    damaged.write_bytes(struct.pack("<i", len(header)) + header + ENGINE)
    with pytest.raises(ModelError, match="damaged rtseg engine metadata"):
        read_engine(damaged)
    newer = tmp_path / "newer.engine"
    header = json.dumps({"rtseg_engine": 99}).encode()
    newer.write_bytes(struct.pack("<i", len(header)) + header + ENGINE)
    with pytest.raises(ModelError, match="update rtseg"):
        read_engine(newer)


# ---- compatibility ------------------------------------------------------------------------------------------


def test_rebuild_command() -> None:
    assert rebuild_command(seg_meta()) == "rtseg export yolo26n-seg.pt --format engine --imgsz 640 --half"
    assert rebuild_command(seg_meta(precision="int8", calib="frames/", batch=(4, 4, 4), source="")) == \
        "rtseg export WEIGHTS --format engine --imgsz 640 --int8 --calib frames/ --batch 4"
    assert rebuild_command(sem_meta()) == \
        "rtseg export deeplab.pt --format engine --imgsz 512 --dynamic --batch 2 --max-batch 8"


def test_compatible_engine_passes(caplog) -> None:
    with caplog.at_level(logging.WARNING):
        check_compatible(seg_meta(), "10.3.0", "NVIDIA H100 80GB HBM3", (9, 0))
    assert not caplog.records


@pytest.mark.parametrize(("trt", "gpu", "cc", "why"), [
    ("10.3.0", "NVIDIA A100-SXM4-40GB", "8.0", "GPU architecture"),  # other architecture
    ("10.3.0", "NVIDIA H100 80GB HBM3", (8, 9), "GPU architecture"),
    ("10.4.0", "NVIDIA H100 80GB HBM3", "9.0", "TensorRT release"),  # other minor
    ("11.3.0", "NVIDIA H100 80GB HBM3", "9.0", "TensorRT release"),  # other major
    ("8.6.1", "NVIDIA H100 80GB HBM3", "9.0", "TensorRT release"),
])
def test_incompatible_engine_refused_with_rebuild_hint(trt, gpu, cc, why) -> None:
    with pytest.raises(ModelError) as err:
        check_compatible(seg_meta(), trt, gpu, cc, path="m.engine")
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith("m.engine: engine built for NVIDIA H100 80GB HBM3 (sm 9.0) with "
                                              "TensorRT 10.3.0")
    assert f"this machine has {gpu}" in msg and f"TensorRT {trt}" in msg and why in msg
    assert msg.endswith("rebuild it here: rtseg export yolo26n-seg.pt --format engine --imgsz 640 --half")


@pytest.mark.parametrize(("trt", "gpu", "warning"), [
    ("10.3.1", "NVIDIA H100 80GB HBM3", "TensorRT 10.3.1"),  # patch release: TensorRT itself decides
    ("10.3.0", "NVIDIA H100 PCIe", "tuned for the other GPU"),  # same sm, other card
])
def test_near_misses_only_warn(caplog, trt, gpu, warning) -> None:
    with caplog.at_level(logging.WARNING):
        check_compatible(seg_meta(), trt, gpu, "9.0")
    assert len(caplog.records) == 1 and warning in caplog.records[0].getMessage()


# ---- registry ----------------------------------------------------------------------------------------------


def test_registry_knows_engines(tmp_path) -> None:
    fmt = format_for("models/M.ENGINE")
    assert fmt is FORMATS["engine"] and fmt.backends == {
        "segment": "rtseg.backends.trt_backend:TensorRTBackend",
        "semantic": "rtseg.backends.trt_backend:TensorRTSemanticBackend"}
    assert fmt.requires == ("tensorrt", "tensorrt") and fmt.exporter == "rtseg.exporters.engine:export_engine"
    assert BACKEND_NAMES["tensorrt"] == BACKEND_NAMES["trt"] == BACKEND_NAMES["engine"] == "engine"
    with pytest.raises(ConfigError, match="cannot run m.pt.*export it first: rtseg export m.pt --format engine"):
        load_backend("m.pt", backend="trt")
    with pytest.raises(ConfigError, match="cannot run m.engine"):
        load_backend("m.engine", backend="onnxruntime")
    path = write_engine(tmp_path / "s.engine", sem_meta(), ENGINE)
    assert model_task(path) == "semantic"
    assert model_task(write_engine(tmp_path / "i.engine", seg_meta(), ENGINE)) == "segment"


def test_engine_backend_without_tensorrt_is_one_line(tmp_path, monkeypatch) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "tensorrt" else real(name, *a))
    path = write_engine(tmp_path / "m.engine", seg_meta(), ENGINE)
    for backend in ("auto", "tensorrt"):
        with pytest.raises(BackendUnavailable, match="^the engine backend needs tensorrt: pip install tensorrt$"):
            load_backend(path, backend=backend, device="cuda")


def test_tensorrt_backend_errors_without_tensorrt_or_cuda(tmp_path, monkeypatch) -> None:
    from rtseg.backends.trt_backend import TensorRTBackend, TensorRTSemanticBackend, _cuda_device

    monkeypatch.setitem(sys.modules, "tensorrt", None)  # import tensorrt raises ImportError
    seg = write_engine(tmp_path / "i.engine", seg_meta(), ENGINE)
    sem = write_engine(tmp_path / "s.engine", sem_meta(), ENGINE)
    with pytest.raises(BackendUnavailable, match="TensorRT is needed.*NVIDIA GPU") as err:
        TensorRTBackend(str(seg), device="cuda")
    assert "\n" not in str(err.value)
    with pytest.raises(BackendUnavailable, match="TensorRT is needed"):
        TensorRTSemanticBackend(str(sem), device="cuda")
    with pytest.raises(ModelError, match="holds a semantic-segmentation engine; pass it as semantic="):
        TensorRTBackend(str(sem))
    with pytest.raises(ModelError, match="holds an instance-segmentation engine"):
        TensorRTSemanticBackend(str(seg))
    with pytest.raises(ModelError, match="not found"):
        TensorRTBackend(str(tmp_path / "none.engine"))
    with pytest.raises(ConfigError, match="use device='cuda'"):
        _cuda_device("cpu")
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    with pytest.raises(BackendUnavailable, match="no CUDA GPU"):
        _cuda_device("0")


def test_cuda_graph_switch(monkeypatch) -> None:
    from rtseg.backends.trt_backend import cuda_graph_default

    monkeypatch.delenv("RTSEG_TRT_CUDA_GRAPH", raising=False)
    assert not cuda_graph_default()
    monkeypatch.setenv("RTSEG_TRT_CUDA_GRAPH", "1")
    assert cuda_graph_default()


# ---- export ------------------------------------------------------------------------------------------------


def test_export_engine_needs_cuda_then_tensorrt(monkeypatch) -> None:
    from rtseg.exporters.engine import export_engine

    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    with pytest.raises(BackendUnavailable, match="needs an NVIDIA GPU") as err:
        export_engine("yolo11n-seg.pt")
    assert "\n" not in str(err.value)
    monkeypatch.setattr("torch.cuda.is_available", lambda: True)
    monkeypatch.setitem(sys.modules, "tensorrt", None)
    with pytest.raises(BackendUnavailable, match="^TensorRT is needed to build and run engines: install the NVIDIA "
                                                 "TensorRT Python package"):
        export_engine("yolo11n-seg.pt")


def test_export_engine_option_errors(tmp_path) -> None:
    from rtseg.exporters.engine import export_engine

    (tmp_path / "empty").mkdir()
    cases = [
        ({"int8": True}, "^int8=True needs calib="),
        ({"calib": tmp_path}, "^calib is only used with int8=True"),
        ({"int8": True, "calib": tmp_path / "nope"}, "not a folder"),
        ({"int8": True, "calib": tmp_path / "empty"}, "no images"),
        ({"batch": 0}, "^batch=0"),
        ({"batch": 4, "dynamic": True, "max_batch": 2}, "^max_batch=2"),
        ({"workspace_gb": 0}, "^workspace_gb=0"),
        ({"out": tmp_path / "m.onnx"}, ".engine suffix"),
        ({"out": tmp_path / "no" / "m.engine"}, "does not exist"),
    ]
    for kwargs, message in cases:
        with pytest.raises(ConfigError, match=message):
            export_engine("yolo11n-seg.pt", **kwargs)


def test_export_dispatches_engines_of_both_tasks_to_the_engine_exporter(monkeypatch) -> None:
    import rtseg.exporters.engine
    import rtseg.exporters.onnx

    calls = []
    monkeypatch.setattr(rtseg.exporters.engine, "export_engine", lambda w, **kw: calls.append((w, kw)) or "built")
    monkeypatch.setattr(rtseg.exporters.onnx, "model_task", lambda w: "semantic")
    assert rtseg.exporters.onnx.export("deeplab.pt", "engine", half=True, batch=2) == "built"
    assert calls == [("deeplab.pt", {"half": True, "batch": 2})]
    with pytest.raises(ConfigError, match="rtseg exports to onnx, engine"):
        rtseg.exporters.onnx.export("m.pt", "tflite")


def test_export_of_engine_without_cuda_is_one_line() -> None:
    from rtseg.exporters.onnx import export

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(BackendUnavailable, match="needs an NVIDIA GPU"):
        export("yolo11n-seg.pt", "engine", half=True)


# ---- INT8 calibration and build progress -------------------------------------------------------------------


def _write_images(folder, sizes) -> list:
    folder.mkdir(exist_ok=True)
    rng = np.random.default_rng(0)
    paths = []
    for i, (h, w) in enumerate(sizes):
        p = folder / f"im{i}.png"
        cv2.imwrite(str(p), rng.integers(0, 255, (h, w, 3), dtype=np.uint8))
        paths.append(p)
    return paths


def test_calibration_images_are_letterboxed_like_frames(tmp_path) -> None:
    from rtseg.exporters.engine import CalibrationImages, calibration_files
    from rtseg.preprocess.letterbox import apply_letterbox, plan_letterbox, to_input_batch

    paths = _write_images(tmp_path / "calib", [(240, 320), (100, 50), (64, 64), (480, 640), (30, 90)])
    (tmp_path / "calib" / "notes.txt").write_text("not an image")
    files = calibration_files(tmp_path / "calib")
    assert files == sorted(paths)
    images = CalibrationImages(files, (64, 96), 2)
    batches = list(images)
    assert len(images) == len(batches) == 2  # 5 images, batches of 2: the odd one out is not used
    assert all(b.shape == (2, 3, 64, 96) and b.dtype == np.float32 for b in batches)
    first = cv2.imread(str(files[0]))
    expected = to_input_batch([apply_letterbox(first, plan_letterbox(first.shape[:2], (64, 96), rect=False))])
    np.testing.assert_array_equal(batches[0][0], expected[0])
    assert 0.0 <= batches[0].min() and batches[0].max() <= 1.0
    # semantic models: normalised; a folder smaller than one batch is cycled to fill it
    sem = CalibrationImages(files[:1], (64, 96), 3, mean_rgb=(0.5, 0.5, 0.5), std_rgb=(0.25, 0.25, 0.25))
    (batch,) = list(sem)
    np.testing.assert_allclose(batch[2], (expected[0] - 0.5) / 0.25, rtol=1e-6)
    assert calibration_files(tmp_path / "calib", limit=3) == [files[0], files[2], files[4]]  # spread, not first 3


def test_calibration_skips_unreadable_images(tmp_path, caplog) -> None:
    from rtseg.exporters.engine import CalibrationImages

    good = _write_images(tmp_path, [(32, 32)])
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"not a jpeg")
    with caplog.at_level(logging.WARNING):
        batches = list(CalibrationImages([bad, good[0]], (32, 32), 1))
    assert len(batches) == 2 and np.array_equal(batches[0], batches[1])  # the readable image fills in
    assert [r.getMessage() for r in caplog.records] == [f"INT8 calibration: cannot read {bad}, skipped"]
    with pytest.raises(ConfigError, match="none of the 1 images could be read"):
        list(CalibrationImages([bad], (32, 32), 1))


def test_calibration_feed_and_cache(tmp_path) -> None:
    from rtseg.exporters.engine import CalibrationFeed, CalibrationImages, calibration_cache_path

    files = _write_images(tmp_path / "calib", [(40, 40), (50, 60), (20, 20), (70, 30)])
    weights = tmp_path / "w.pt"
    weights.write_bytes(b"weights v1")
    cache = calibration_cache_path(tmp_path / "m_64_int8_b2.engine", weights, files, (64, 64), 2)
    assert cache.parent == tmp_path and cache.name.startswith("m_64_int8_b2.") and cache.suffix == ".calib"
    assert calibration_cache_path(tmp_path / "m_64_int8_b2.engine", weights, files, (64, 64), 2) == cache
    assert calibration_cache_path(tmp_path / "m_64_int8_b2.engine", weights, files[:2], (64, 64), 2) != cache
    assert calibration_cache_path(tmp_path / "m_64_int8_b2.engine", weights, files, (64, 64), 4) != cache
    weights.write_bytes(b"weights v2, retrained")
    assert calibration_cache_path(tmp_path / "m_64_int8_b2.engine", weights, files, (64, 64), 2) != cache

    feed = CalibrationFeed(CalibrationImages(files, (64, 64), 2), cache, device="cpu")
    assert feed.batch_size() == 2 and feed.read_cache() is None
    pointers = [feed.next_pointers() for _ in range(3)]
    assert all(isinstance(p, list) and len(p) == 1 and p[0] > 0 for p in pointers[:2]) and pointers[2] is None
    assert feed.batches == 2
    feed.write_cache(memoryview(b"TRT-1003-EntropyCalibration2\nimages: 3c010a14\n"))
    assert feed.read_cache() == b"TRT-1003-EntropyCalibration2\nimages: 3c010a14\n"
    stamp = cache.stat().st_mtime_ns
    feed.write_cache(b"TRT-1003-EntropyCalibration2\nimages: 3c010a14\n")  # the same cache again: not rewritten
    assert cache.stat().st_mtime_ns == stamp


def test_build_progress_bars() -> None:
    from rtseg.exporters.engine import BuildProgress

    out = io.StringIO()
    progress = BuildProgress(file=out)
    progress.phase_start("Building engine", None, 3)
    progress.phase_start("Tactic timing", "Building engine", 10)
    assert progress.step_complete("Tactic timing", 4) is True
    assert progress._bars["Tactic timing"].n == 5 and progress._depth["Tactic timing"] == 1
    progress.phase_finish("Tactic timing")
    assert progress.step_complete("Building engine", 0) is True
    assert progress.step_complete("unknown phase", 0) is True  # never cancels the build
    progress.phase_finish("Building engine")
    progress.close()
    assert "Building engine" in out.getvalue() and not progress._bars


# ---- the backend against a fake TensorRT (documented API surface only), on the CPU -------------------------


class FakeEngine:
    """An engine whose "inference" writes each frame's input mean into its outputs, through raw pointers."""

    def __init__(self, static_batch: int | None, outputs: dict[str, tuple[int, ...]], hw=(64, 64)) -> None:
        self.static_batch, self.outputs, self.hw = static_batch, outputs, hw
        self.num_io_tensors = 1 + len(outputs)
        self.contexts: list[FakeContext] = []

    def get_tensor_name(self, i: int) -> str:
        return ["images", *self.outputs][i]

    def get_tensor_mode(self, name: str) -> str:
        return "in" if name == "images" else "out"

    def get_tensor_dtype(self, name: str) -> str:
        return "f32" if name == "images" else "f16"

    def get_tensor_shape(self, name: str) -> tuple[int, ...]:
        b = self.static_batch or -1
        return (b, 3, *self.hw) if name == "images" else (b, *self.outputs[name])

    def create_execution_context(self) -> FakeContext:
        self.contexts.append(FakeContext(self))
        return self.contexts[-1]


class FakeContext:
    def __init__(self, engine: FakeEngine) -> None:
        self.engine, self.shapes_set, self.addresses, self.calls = engine, [], {}, []
        self.shape = engine.get_tensor_shape("images")

    def set_input_shape(self, name: str, shape: tuple[int, ...]) -> bool:
        assert name == "images"
        self.shapes_set.append(tuple(shape))
        self.shape = tuple(shape)
        return True

    def get_tensor_shape(self, name: str) -> tuple[int, ...]:
        return self.shape if name == "images" else (self.shape[0], *self.engine.outputs[name])

    def set_tensor_address(self, name: str, ptr: int) -> None:
        self.addresses[name] = ptr

    def execute_async_v3(self, stream: int) -> bool:
        import ctypes

        n = int(np.prod(self.shape))
        x = np.frombuffer((ctypes.c_float * n).from_address(self.addresses["images"]), np.float32).reshape(self.shape)
        self.calls.append(self.shape)
        for name, tail in self.engine.outputs.items():
            y = np.ascontiguousarray(np.broadcast_to(x.mean(axis=(1, 2, 3)).reshape(-1, *[1] * len(tail)),
                                                     (self.shape[0], *tail)).astype(np.float16))
            ctypes.memmove(self.addresses[name], y.ctypes.data, y.nbytes)
        return True


@pytest.fixture()
def fake_trt(monkeypatch):
    """A stand-in ``tensorrt`` module and CPU stand-ins for the CUDA calls the backend makes."""
    import contextlib
    import types

    import rtseg.backends.trt_backend as tb
    import rtseg.exporters.engine as ee

    state = types.SimpleNamespace(engine=None)
    trt = types.ModuleType("tensorrt")
    trt.__version__ = "10.3.0"
    trt.DataType = types.SimpleNamespace(FLOAT="f32", HALF="f16", INT32="i32")
    trt.TensorIOMode = types.SimpleNamespace(INPUT="in", OUTPUT="out")

    class ILogger:
        Severity = types.SimpleNamespace(INTERNAL_ERROR=0, ERROR=1, WARNING=2, INFO=3, VERBOSE=4)

        def __init__(self) -> None:
            pass

    class Runtime:
        def __init__(self, logger) -> None:
            self.logger = logger

        def deserialize_cuda_engine(self, blob):
            if blob != ENGINE:
                self.logger.log(ILogger.Severity.ERROR, "IRuntime::deserializeCudaEngine: version tag mismatch")
                return None
            return state.engine

    trt.ILogger, trt.Runtime = ILogger, Runtime
    monkeypatch.setitem(sys.modules, "tensorrt", trt)
    ee.trt_logger.cache_clear()
    monkeypatch.setattr(tb, "_cuda_device", lambda device: torch.device("cpu"))
    for module in (tb, ee):  # the runner's and the builder's (both rtseg.backends.trt_runtime.gpu_identity)
        monkeypatch.setattr(module, "gpu_identity", lambda index=None: ("NVIDIA H100 80GB HBM3", "9.0"))
    monkeypatch.setattr(torch.cuda, "device", lambda device: contextlib.nullcontext())
    monkeypatch.setattr(torch.cuda, "current_stream", lambda device=None: types.SimpleNamespace(
        cuda_stream=0, synchronize=lambda: None))
    yield state
    ee.trt_logger.cache_clear()


def _frames(n: int) -> np.ndarray:
    return np.stack([np.full((3, 64, 64), (i + 1) / 10, np.float32) for i in range(n)])


@pytest.mark.parametrize(("batch", "static", "n", "calls"), [
    ((1, 1, 1), 1, 3, [(1, 3, 64, 64)] * 3),  # static batch 1: one call per frame
    ((4, 4, 4), 4, 1, [(4, 3, 64, 64)]),  # static batch 4: one frame padded to 4
    ((4, 4, 4), 4, 6, [(4, 3, 64, 64)] * 2),
    ((1, 2, 4), None, 6, [(4, 3, 64, 64), (2, 3, 64, 64)]),  # dynamic: 4 + 2, no padding
])
def test_backend_batches_through_the_tensorrt_api(tmp_path, fake_trt, batch, static, n, calls) -> None:
    from rtseg.backends.trt_backend import TensorRTBackend

    # protos listed first: the backend picks outputs by rank, not position
    fake_trt.engine = FakeEngine(static, {"output1": (32, 16, 16), "output0": (38, 300)})
    path = write_engine(tmp_path / "m.engine", seg_meta(imgsz=(64, 64), batch=batch), ENGINE)
    backend = TensorRTBackend(str(path), device="cuda", cuda_graph=False)
    assert backend.info.imgsz == (64, 64) and not backend.info.dynamic and backend.info.end2end
    preds, protos = backend.infer(_frames(n))
    assert preds.shape == (n, 38, 300) and protos.shape == (n, 32, 16, 16)
    assert preds.dtype == protos.dtype == torch.float32
    expected = np.array([(i + 1) / 10 for i in range(n)], np.float16).astype(np.float32)
    np.testing.assert_array_equal(preds[:, 0, 0].numpy(), expected)
    np.testing.assert_array_equal(protos[:, 5, 3, 7].numpy(), expected)
    (context,) = fake_trt.engine.contexts
    assert context.calls == calls
    assert context.shapes_set == ([] if static else sorted(set(calls), key=calls.index))  # static: never reshaped
    with pytest.raises(ConfigError, match="imgsz=64"):
        backend.infer(np.zeros((1, 3, 32, 32), np.float32))


def test_semantic_backend_and_cuda_graph_fallback(tmp_path, fake_trt, caplog) -> None:
    from rtseg.backends.trt_backend import TensorRTSemanticBackend, load_engine_backend

    fake_trt.engine = FakeEngine(1, {"logits": (3, 64, 64)})
    meta = sem_meta(imgsz=(64, 64), batch=(1, 1, 1), gpu_name="NVIDIA H100 80GB HBM3", compute_capability="9.0")
    path = write_engine(tmp_path / "s.engine", meta, ENGINE)
    with caplog.at_level(logging.WARNING):
        backend = TensorRTSemanticBackend(str(path), device="cuda", cuda_graph=True)  # no CUDA here: falls back
        logits = backend.infer(_frames(2))
    assert logits.shape == (2, 3, 64, 64) and float(logits[1, 0, 0, 0]) == pytest.approx(0.2, abs=1e-3)
    assert any("CUDA graph capture" in r.getMessage() for r in caplog.records)
    assert backend.info.imgsz == (64, 64) and backend.info.names == ("bg", "road", "tree")
    assert isinstance(load_engine_backend(path), TensorRTSemanticBackend)


def test_backend_refuses_foreign_or_unloadable_engines(tmp_path, fake_trt) -> None:
    from rtseg.backends.trt_backend import TensorRTBackend

    fake_trt.engine = FakeEngine(1, {"output0": (38, 300), "output1": (32, 16, 16)})
    other_gpu = write_engine(tmp_path / "a.engine", seg_meta(compute_capability="8.6", gpu_name="RTX 3090"), ENGINE)
    with pytest.raises(ModelError, match=r"built for RTX 3090 \(sm 8.6\).*NVIDIA H100 80GB HBM3 \(sm 9.0\)"):
        TensorRTBackend(str(other_gpu))
    unloadable = write_engine(tmp_path / "b.engine", seg_meta(trt_version="10.3.1"), b"other bytes")
    with pytest.raises(ModelError, match="cannot load this engine \\(IRuntime::deserializeCudaEngine: version tag "
                                         "mismatch\\); rebuild it on this machine: rtseg export yolo26n-seg.pt"):
        TensorRTBackend(str(unloadable))
    fake_trt.engine = FakeEngine(1, {"output0": (38, 300)})
    with pytest.raises(ModelError, match="expected a YOLO-seg engine"):
        TensorRTBackend(str(write_engine(tmp_path / "c.engine", seg_meta(), ENGINE)))


# ---- the build against a fake TensorRT builder: ONNX export, profile, flags, calibrator, file ---------------


@pytest.fixture()
def fake_builder(fake_trt, monkeypatch):
    import types

    import rtseg.exporters.engine as ee

    trt = sys.modules["tensorrt"]
    log = types.SimpleNamespace(parsed=[], profiles=[], flags=[], pools=[], calibrator=None, phases=[])
    trt.MemoryPoolType = types.SimpleNamespace(WORKSPACE="workspace")
    trt.BuilderFlag = types.SimpleNamespace(FP16="FP16", INT8="INT8")

    class Base:
        def __init__(self) -> None:
            pass

    trt.IInt8EntropyCalibrator2 = type("IInt8EntropyCalibrator2", (Base,), {})
    trt.IProgressMonitor = type("IProgressMonitor", (Base,), {})

    class Profile:
        def set_shape(self, name, min, opt, max) -> None:  # noqa: A002 - TensorRT's keyword names
            log.profiles.append((name, min, opt, max))

    class Config:
        int8_calibrator = None
        progress_monitor = None

        def set_memory_pool_limit(self, pool, size) -> None:
            log.pools.append((pool, size))

        def set_flag(self, flag) -> None:
            log.flags.append(flag)

        def add_optimization_profile(self, profile) -> int:
            return 0

    class Builder:
        def __init__(self, logger) -> None:
            pass

        def create_network(self, flags):
            assert flags == 0  # explicit batch is implicit in TensorRT 10
            return types.SimpleNamespace()

        def create_builder_config(self):
            return Config()

        def create_optimization_profile(self):
            return Profile()

        def build_serialized_network(self, network, config):
            monitor, calib = config.progress_monitor, config.int8_calibrator
            if monitor is not None:
                monitor.phase_start("Building engine", None, 2)
                assert monitor.step_complete("Building engine", 0) is True
                monitor.phase_finish("Building engine")
                log.phases.append("Building engine")
            if calib is not None:
                log.calibrator = calib
                assert calib.read_calibration_cache() is None
                calib.write_calibration_cache(b"TRT-1003-EntropyCalibration2\n")
            return memoryview(b"SERIALIZED ENGINE")

    class OnnxParser:
        num_errors = 0

        def __init__(self, network, logger) -> None:
            pass

        def parse_from_file(self, path) -> bool:
            log.parsed.append(path)
            return Path(path).is_file()

    trt.Builder, trt.OnnxParser = Builder, OnnxParser
    monkeypatch.setattr(ee, "require_cuda", lambda: None)
    return log


def test_build_yolo_engine_fp16_dynamic(tmp_path, fake_builder, monkeypatch) -> None:
    from rtseg.exporters.engine import export_engine
    from tests.support import YOLO11_WEIGHTS

    monkeypatch.chdir(tmp_path)
    path = export_engine(str(YOLO11_WEIGHTS), imgsz=64, half=True, batch=2, dynamic=True, max_batch=4,
                         workspace_gb=0.5)
    assert path == Path("engines") / "yolo11n-seg-coco128_64_fp16_dyn1-4.engine"
    meta, blob = read_engine(path)
    assert blob == b"SERIALIZED ENGINE" and meta.precision == "fp16" and meta.batch == (1, 2, 4)
    assert meta.imgsz == (64, 64) and meta.task == "segment" and len(meta.names) == 80 and not meta.end2end
    assert (meta.trt_version, meta.gpu_name, meta.compute_capability) == ("10.3.0", "NVIDIA H100 80GB HBM3", "9.0")
    assert meta.source == "yolo11n-seg-coco128.pt" and meta.input_name == "images"
    assert fake_builder.profiles == [("images", (1, 3, 64, 64), (2, 3, 64, 64), (4, 3, 64, 64))]
    assert fake_builder.flags == ["FP16"] and fake_builder.pools == [("workspace", 1 << 29)]
    assert fake_builder.phases == ["Building engine"]
    assert not Path(fake_builder.parsed[0]).exists()  # the intermediate ONNX lived in a temp folder


def test_build_semantic_engine_int8_static_batch(tmp_path, fake_builder) -> None:
    from rtseg.exporters.onnx import export
    from rtseg.models.zoo import build_semantic, save_semantic

    net, info = build_semantic("Unet", num_classes=4, imgsz=64)
    ckpt = save_semantic(tmp_path / "unet.pt", net, info)
    _write_images(tmp_path / "calib", [(48, 64), (64, 48), (32, 32)])
    out = tmp_path / "unet.engine"
    assert export(str(ckpt), "engine", out=out, int8=True, calib=tmp_path / "calib", batch=2,
                  progress=False) == out
    meta = read_engine_meta(out)
    assert meta.task == "semantic" and meta.precision == "int8" and meta.batch == (2, 2, 2)
    assert meta.semantic_info().names == info.names and meta.semantic_info().mean_rgb == info.mean_rgb
    assert meta.calib == str(tmp_path / "calib") and model_task(out) == "semantic"
    # the semantic exporter fixes batch 1, so a batch-2 engine comes from a dynamic ONNX pinned by the profile
    assert fake_builder.profiles == [("images", (2, 3, 64, 64), (2, 3, 64, 64), (2, 3, 64, 64))]
    assert fake_builder.flags == ["FP16", "INT8"] and fake_builder.phases == []
    feed = fake_builder.calibrator.feed
    assert feed.batch_size() == 2 and feed.images.input_hw == (64, 64)
    assert feed.images._mean is not None  # semantic calibration images are normalised like frames
    (cache,) = tmp_path.glob("unet.*.calib")
    assert cache.read_bytes() == b"TRT-1003-EntropyCalibration2\n"
