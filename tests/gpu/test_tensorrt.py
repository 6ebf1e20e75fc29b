"""TensorRT engines built and run on a real GPU, checked against ONNX Runtime on the same inputs.

Needs an NVIDIA GPU, a CUDA build of PyTorch and the TensorRT Python package; skipped otherwise (the pure logic
of the TensorRT path is tested everywhere in tests/unit/backends/test_trt_logic.py).

Tolerances: an FP32 engine may use TF32 kernels (TensorRT's default on Ampere and newer), so raw outputs are
compared relative to their range (0.5 %), and final detections must match one to one; FP16 and INT8 engines are
compared on final detections only.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

pytestmark = [pytest.mark.gpu, pytest.mark.tensorrt]
trt = pytest.importorskip("tensorrt")
if not torch.cuda.is_available():
    pytest.skip("needs a CUDA GPU", allow_module_level=True)

from rtseg.backends.ort_backend import OrtBackend  # noqa: E402
from rtseg.backends.registry import load_backend  # noqa: E402
from rtseg.backends.trt_backend import TensorRTBackend, TensorRTSemanticBackend  # noqa: E402
from rtseg.backends.trt_meta import read_engine, read_engine_meta, write_engine  # noqa: E402
from rtseg.errors import ModelError  # noqa: E402
from rtseg.exporters.engine import export_engine  # noqa: E402
from rtseg.exporters.onnx import export, export_onnx  # noqa: E402
from rtseg.models.task import model_task  # noqa: E402
from rtseg.models.yolo_seg import YoloSegModel  # noqa: E402
from tests.parity import Comparison  # noqa: E402
from tests.support import YOLO11_WEIGHTS, YOLO26_WEIGHTS  # noqa: E402

IMGSZ = 320


def photos() -> list[np.ndarray]:
    from ultralytics.utils import ASSETS

    images = [cv2.imread(str(p)) for p in sorted(Path(ASSETS).glob("*.jpg"))]
    return images + [cv2.flip(im, 1) for im in images]


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.float().cpu(), b.float().cpu()
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-6))


def compare(ref_backend, backend, images, conf: float = 0.25) -> Comparison:
    # the same NumPy inputs for both (on CUDA a model would otherwise letterbox on the GPU: tests/gpu/test_cuda_path.py)
    ref, ours = YoloSegModel(ref_backend, conf=conf), YoloSegModel(backend, conf=conf, frames_on_device=False)
    cmp = Comparison()
    for i, image in enumerate(images):
        p_ref, p_ours = ref.prepare([image]), ours.prepare([image])
        np.testing.assert_array_equal(p_ref.batch, p_ours.batch)
        r = ref.finish(ref.infer(p_ref), p_ref, [i])[0]
        o = ours.finish(ours.infer(p_ours), p_ours, [i])[0]
        cmp.add_results(r, o)
    return cmp


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("trt")


@pytest.fixture(scope="module")
def onnx11(work: Path) -> OrtBackend:
    return OrtBackend(str(export_onnx(str(YOLO11_WEIGHTS), out=work / "y11.onnx", imgsz=IMGSZ, dynamic=False)))


@pytest.fixture(scope="module")
def engine11(work: Path) -> Path:
    return export_engine(str(YOLO11_WEIGHTS), out=work / "y11_fp32.engine", imgsz=IMGSZ, progress=False)


def test_fp32_engine_matches_onnxruntime(engine11: Path, onnx11: OrtBackend) -> None:
    meta = read_engine_meta(engine11)
    assert meta.precision == "fp32" and meta.batch == (1, 1, 1) and meta.imgsz == (IMGSZ, IMGSZ)
    assert meta.trt_version == trt.__version__ and meta.gpu_name == torch.cuda.get_device_name()
    assert model_task(engine11) == "segment"
    backend = load_backend(engine11, device="cuda")
    assert isinstance(backend, TensorRTBackend) and backend.info.names == onnx11.info.names
    assert backend.info.imgsz == (IMGSZ, IMGSZ) and not backend.info.dynamic and not backend.info.end2end
    batch = YoloSegModel(onnx11).prepare([photos()[0]]).batch
    preds, protos = backend.infer(batch)
    ref_preds, ref_protos = onnx11.infer(batch)
    assert preds.is_cuda and preds.shape == ref_preds.shape and protos.shape == ref_protos.shape
    assert rel_err(preds, ref_preds) < 5e-3 and rel_err(protos, ref_protos) < 5e-3
    cmp = compare(onnx11, backend, photos())
    assert cmp.matched >= 5 and not cmp.unmatched_ref and not cmp.unmatched_ours
    assert min(cmp.box_ious) > 0.98 and min(cmp.mask_ious) > 0.9


def test_cuda_graph_replays_new_inputs(engine11: Path) -> None:
    plain = TensorRTBackend(str(engine11), device="cuda", cuda_graph=False)
    graphed = TensorRTBackend(str(engine11), device="cuda", cuda_graph=True)
    model = YoloSegModel(plain, frames_on_device=False)
    for image in photos()[:3]:  # each call must see its own frame, not the captured one
        batch = model.prepare([image]).batch
        (a, pa), (b, pb) = plain.infer(batch), graphed.infer(batch)
        assert rel_err(b, a) < 1e-4 and rel_err(pb, pa) < 1e-4
    assert graphed._runner._graph is not None  # captured, not fallen back


def test_batches_split_and_pad(work: Path, engine11: Path) -> None:
    single = TensorRTBackend(str(engine11), device="cuda")
    frames = YoloSegModel(single, frames_on_device=False).prepare([photos()[0]]).batch
    many = np.concatenate([YoloSegModel(single, frames_on_device=False).prepare([im]).batch for im in photos()[:3]])
    static2 = export_engine(str(YOLO11_WEIGHTS), out=work / "y11_b2.engine", imgsz=IMGSZ, batch=2, progress=False)
    dyn = export_engine(str(YOLO11_WEIGHTS), out=work / "y11_dyn.engine", imgsz=IMGSZ, batch=2, dynamic=True,
                        max_batch=2, progress=False)
    assert read_engine_meta(static2).batch == (2, 2, 2) and read_engine_meta(dyn).batch == (1, 2, 2)
    ref = [single.infer(many[i : i + 1]) for i in range(3)]
    for path in (static2, dyn):
        backend = TensorRTBackend(str(path), device="cuda")
        preds, protos = backend.infer(frames)  # one frame: padded (static) or a batch of 1 (dynamic)
        assert preds.shape[0] == protos.shape[0] == 1
        preds, protos = backend.infer(many)  # three frames: 2 + 1
        assert preds.shape[0] == 3
        for i in range(3):
            assert rel_err(preds[i : i + 1], ref[i][0]) < 5e-3 and rel_err(protos[i : i + 1], ref[i][1]) < 5e-3


def test_fp16_end2end_engine_gives_the_same_detections(work: Path) -> None:
    ort = OrtBackend(str(export_onnx(str(YOLO26_WEIGHTS), out=work / "y26.onnx", imgsz=IMGSZ, dynamic=False,
                                     nms=False)))  # nms=False: the one-to-one head
    path = export(str(YOLO26_WEIGHTS), "engine", out=work / "y26_fp16.engine", imgsz=IMGSZ, half=True, nms=False,
                  progress=False)
    backend = load_backend(path, backend="tensorrt", device="cuda")
    assert backend.info.end2end and read_engine_meta(path).precision == "fp16"
    cmp = compare(ort, backend, photos())
    borderline = 0.02  # FP16 may move a score across the 0.25 threshold
    assert cmp.matched >= 5
    assert not [s for s in cmp.unmatched_ref if s > 0.25 + borderline]
    assert not [s for s in cmp.unmatched_ours if s > 0.25 + borderline]
    assert min(cmp.box_ious) > 0.95 and min(cmp.mask_ious) > 0.85


def test_int8_engine_calibrates_once(work: Path, caplog: pytest.LogCaptureFixture) -> None:
    calib = work / "calib"
    calib.mkdir()
    for i, image in enumerate(photos()):
        cv2.imwrite(str(calib / f"{i}.jpg"), image)
    out = work / "y11_int8.engine"
    export_engine(str(YOLO11_WEIGHTS), out=out, imgsz=IMGSZ, int8=True, calib=calib, progress=False)
    (cache,) = work.glob("y11_int8.*.calib")
    stamp = cache.stat().st_mtime_ns
    with caplog.at_level("INFO", logger="rtseg.exporters.engine"):
        export_engine(str(YOLO11_WEIGHTS), out=out, imgsz=IMGSZ, int8=True, calib=calib, progress=False)
    assert any("reusing" in r.getMessage() for r in caplog.records) and cache.stat().st_mtime_ns == stamp
    meta = read_engine_meta(out)
    assert meta.precision == "int8" and meta.calib == str(calib)
    backend = TensorRTBackend(str(out), device="cuda")
    preds, protos = backend.infer(YoloSegModel(backend).prepare([photos()[0]]).batch)
    assert torch.isfinite(preds).all() and torch.isfinite(protos).all()


def test_semantic_engine_matches_onnxruntime(work: Path) -> None:
    from rtseg.backends.ort_backend import OrtSemanticBackend
    from rtseg.exporters.semantic_onnx import export_semantic_onnx
    from rtseg.models.semantic import SemanticModel
    from rtseg.models.zoo import build_semantic, save_semantic

    net, info = build_semantic("Unet", num_classes=5, imgsz=128)
    ckpt = save_semantic(work / "unet.pt", net, info)
    assert model_task(ckpt) == "semantic"
    path = export(str(ckpt), "engine", out=work / "unet.engine", imgsz=128, progress=False)
    assert model_task(path) == "semantic"
    backend = TensorRTSemanticBackend(str(path), device="cuda")
    ort = OrtSemanticBackend(str(export_semantic_onnx(ckpt, out=work / "unet.onnx", imgsz=128, dynamic=False)))
    assert backend.info.names == info.names and backend.info.imgsz == (128, 128) and not backend.info.dynamic
    batch = SemanticModel(ort).prepare([photos()[0]]).batch
    logits, ref = backend.infer(batch), ort.infer(batch)
    assert logits.shape == ref.shape and rel_err(logits, ref) < 5e-3


def test_engine_for_another_gpu_is_refused(work: Path, engine11: Path) -> None:
    from dataclasses import replace

    meta, blob = read_engine(engine11)
    other = write_engine(work / "other.engine", replace(meta, compute_capability="1.0", gpu_name="Old GPU"), blob)
    with pytest.raises(ModelError, match=r"built for Old GPU \(sm 1.0\).*rebuild it here: rtseg export"):
        TensorRTBackend(str(other), device="cuda")
