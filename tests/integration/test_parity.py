"""Our pre/post-processing against Ultralytics' own ``predict`` on the same weights, frames and settings.

Criteria (issue #2): every reference detection matched (same class, box IoU >= 0.99) and every mask
IoU >= 0.95, on at least 10 real frames, with weights that give many detections with varied scores.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rtseg.backends.registry import load_backend
from rtseg.exporters.onnx import export_onnx
from rtseg.models.yolo_seg import YoloSegModel
from tests.conftest import DATA, YOLO11_WEIGHTS, YOLO26_WEIGHTS
from tests.parity import Comparison, parity_images

IMGSZ = 320
CONF = 0.02
BORDERLINE = 2e-3  # a detection this close to the threshold may flip on float rounding; not a mismatch


@pytest.fixture(scope="module")
def images() -> list[np.ndarray]:
    imgs = parity_images(DATA)
    assert len(imgs) >= 10
    return imgs


def _assert_parity(cmp: Comparison, *, min_matched: int = 30) -> None:
    assert cmp.matched >= min_matched, f"only {cmp.matched} detections: weights too weak for a parity test"
    assert max(cmp.scores) - min(cmp.scores) > 0.2, "scores do not vary enough to exercise thresholds"
    missing = [s for s in cmp.unmatched_ref if abs(s - CONF) > BORDERLINE]
    extra = [s for s in cmp.unmatched_ours if abs(s - CONF) > BORDERLINE]
    assert not missing, f"reference detections we did not produce (scores {missing})"
    assert not extra, f"detections the reference does not have (scores {extra})"
    assert min(cmp.box_ious) >= 0.99, f"worst box IoU {min(cmp.box_ious):.4f}"
    assert min(cmp.mask_ious) >= 0.95, f"worst mask IoU {min(cmp.mask_ious):.4f}"


@pytest.mark.parametrize("weights", [YOLO11_WEIGHTS, YOLO26_WEIGHTS], ids=["yolo11n-seg", "yolo26n-seg"])
def test_torch_backend_matches_ultralytics_predict(weights, images) -> None:
    from ultralytics import YOLO

    model = YoloSegModel(load_backend(weights, backend="torch"), imgsz=IMGSZ, conf=CONF, iou=0.7)
    reference = YOLO(str(weights))
    # YOLO26: rtseg runs the NMS-free one-to-one head, which Ultralytics selects with nms=False
    kwargs = {"nms": False} if model.info.end2end else {}
    assert model.info.end2end == ("26" in weights.name)
    cmp = Comparison()
    for image in images:
        ref = reference.predict(image, imgsz=IMGSZ, conf=CONF, iou=0.7, retina_masks=True, verbose=False,
                                **kwargs)[0]
        cmp.add_ultralytics(ref, model([image])[0])
    _assert_parity(cmp)


@pytest.mark.parametrize("weights", [YOLO11_WEIGHTS, YOLO26_WEIGHTS], ids=["yolo11n-seg", "yolo26n-seg"])
def test_onnx_backend_matches_torch_backend(weights, images, tmp_path) -> None:
    onnx_path = export_onnx(str(weights), out=tmp_path / "model.onnx")
    ort_model = YoloSegModel(load_backend(onnx_path), imgsz=IMGSZ, conf=CONF, iou=0.7)
    torch_model = YoloSegModel(load_backend(weights, backend="torch"), imgsz=IMGSZ, conf=CONF, iou=0.7)
    assert ort_model.names == torch_model.names and ort_model.info.end2end == torch_model.info.end2end
    cmp = Comparison()
    for image in images:
        cmp.add_results(torch_model([image])[0], ort_model([image])[0])
    _assert_parity(cmp)


def test_static_onnx_matches_ultralytics_on_the_same_file(images, tmp_path) -> None:
    """A fixed-size export letterboxes to the full square, as Ultralytics does for static ONNX."""
    from ultralytics import YOLO

    onnx_path = export_onnx(str(YOLO11_WEIGHTS), out=tmp_path / "static.onnx", dynamic=False)
    model = YoloSegModel(load_backend(onnx_path), conf=CONF, iou=0.7)
    assert not model.info.dynamic and model.imgsz == (IMGSZ, IMGSZ)
    reference = YOLO(str(onnx_path), task="segment")
    cmp = Comparison()
    for image in images:
        ref = reference.predict(image, imgsz=IMGSZ, conf=CONF, iou=0.7, retina_masks=True, verbose=False)[0]
        cmp.add_ultralytics(ref, model([image])[0])
    _assert_parity(cmp)
    # a batch-1 export given several frames (a multi-stream batch) runs them one by one: same outputs
    prepared = model.prepare(images[:3])
    batched = model.backend.infer(prepared.batch)
    single = [model.backend.infer(prepared.batch[i : i + 1]) for i in range(3)]
    for k in (0, 1):
        assert batched[k].shape[0] == 3
        assert torch.allclose(batched[k], torch.cat([s[k] for s in single]), atol=1e-4)
