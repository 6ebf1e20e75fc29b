"""Our pre/post-processing against Ultralytics' own ``predict`` on the same weights, frames and settings.

Criteria (issue #2): every reference detection matched (same class, box IoU >= 0.99) and every mask
IoU >= 0.95, on at least 10 real frames, with weights that give many detections with varied scores.
YOLO26 (issue item 7): the head ``nms`` picks, as Ultralytics' ``predict(nms=...)`` picks it, on a checkpoint
saved in NMS mode (as Ultralytics' trainer saves them) and on one saved in end-to-end mode.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from rtseg.backends.registry import load_backend
from rtseg.exporters.onnx import export_onnx
from rtseg.models.yolo_seg import YoloSegModel
from rtseg.pipeline.loading import load_runtime
from tests.parity import Comparison, parity_images
from tests.support import DATA, YOLO11_WEIGHTS, YOLO26_WEIGHTS

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


@pytest.fixture(scope="module")
def weight_files(tmp_path_factory) -> dict[str, Path]:
    """The test weights, and the YOLO26 ones saved in end-to-end mode the way Ultralytics records it (the
    head's ``end2end`` setter, pickled as ``_end2end``); its trainer saves them in NMS mode."""
    from ultralytics import YOLO

    ckpt = torch.load(YOLO26_WEIGHTS, map_location="cpu", weights_only=False)
    ckpt["model"].end2end = True
    end2end = tmp_path_factory.mktemp("weights") / "yolo26n-seg-end2end.pt"
    torch.save(ckpt, end2end)
    assert YOLO(str(end2end)).model.end2end and not YOLO(str(YOLO26_WEIGHTS)).model.end2end
    return {"yolo11": YOLO11_WEIGHTS, "yolo26": YOLO26_WEIGHTS, "yolo26-end2end": end2end}


@pytest.fixture(scope="module")
def references(images) -> Callable[[Path, bool | None], list]:
    """Ultralytics' predictions per (weights, nms), made once for both backends' tests."""
    from ultralytics import YOLO

    made: dict = {}

    def predict(weights: Path, nms: bool | None) -> list:
        if (weights, nms) not in made:
            yolo = YOLO(str(weights))
            kwargs = {} if nms is None else {"nms": nms}  # None: predict()'s own default, not passed
            made[weights, nms] = [yolo.predict(image, imgsz=IMGSZ, conf=CONF, iou=0.7, retina_masks=True,
                                               verbose=False, **kwargs)[0] for image in images]
        return made[weights, nms]

    return predict


HEAD_CASES = [("yolo11", None), ("yolo26", None), ("yolo26", False), ("yolo26", True), ("yolo26-end2end", None),
              ("yolo26-end2end", False), ("yolo26-end2end", True)]


@pytest.mark.parametrize("backend", ["torch", "onnxruntime"])
@pytest.mark.parametrize(("weights", "nms"), HEAD_CASES, ids=[f"{w}-nms={n}" for w, n in HEAD_CASES])
def test_backend_matches_ultralytics_predict(backend, weights, nms, weight_files, references, images,
                                             tmp_path_factory, monkeypatch) -> None:
    """Same head and same detections as Ultralytics' ``predict(nms=nms)`` (with ``nms`` left out when None).
    ONNX Runtime runs the CPU export cached per weights and head mode."""
    cache = tmp_path_factory.getbasetemp() / "parity-onnx-cache"  # shared by this module's tests
    monkeypatch.setenv("RTSEG_CACHE", str(cache))
    path = weight_files[weights]
    model = YoloSegModel(load_runtime(path, backend=backend, nms=nms), imgsz=IMGSZ, conf=CONF, iou=0.7)
    # Ultralytics 8.4 runs the one-to-one head only with nms=False, whatever mode the checkpoint was saved in
    assert model.info.end2end == (weights != "yolo11" and nms is False)
    if backend == "onnxruntime":  # the export holds the head asked for, cached under its own name
        head = "no-nms" if nms is False else "nms"
        assert list((cache / "onnx").glob(f"{path.stem}-*-{head}-*.onnx"))
    cmp = Comparison()
    for image, ref in zip(images, references(path, nms)):
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
        assert np.allclose(batched[k], np.concatenate([s[k] for s in single]), atol=1e-4)


def test_ultralytics_export_with_nms_in_the_graph(images, tmp_path) -> None:
    """An ONNX file Ultralytics exported with nms=True holds final detections (NMS in the graph), like a
    one-to-one head's: rtseg reads it from the metadata and gives what Ultralytics gives on that file."""
    import shutil

    from ultralytics import YOLO

    local = tmp_path / YOLO26_WEIGHTS.name  # Ultralytics writes its export beside the weights
    shutil.copy(YOLO26_WEIGHTS, local)
    onnx_path = YOLO(str(local)).export(format="onnx", imgsz=IMGSZ, nms=True, conf=CONF, verbose=False)
    model = YoloSegModel(load_backend(onnx_path), conf=CONF, iou=0.7)
    assert model.info.end2end
    reference = YOLO(str(onnx_path), task="segment")
    cmp = Comparison()
    for image in images:
        ref = reference.predict(image, imgsz=IMGSZ, conf=CONF, iou=0.7, retina_masks=True, verbose=False)[0]
        cmp.add_ultralytics(ref, model([image])[0])
    _assert_parity(cmp)
