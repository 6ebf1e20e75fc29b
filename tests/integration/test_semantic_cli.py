"""Semantic-only and combined (instance + semantic) runs through the real CLI."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from pycocotools import mask as mask_utils

from rtseg.models.yolo_seg import YoloSegModel
from rtseg.pipeline.loading import load_runtime
from tests.support import YOLO11_WEIGHTS, count_frames, run_cli
from tests.support import road_model as make_road_model
from tests.support import zidane_clip as make_zidane_clip

SIZE_WH = (640, 480)


@pytest.fixture(scope="module")
def road_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A U-Net whose head is forced to say "road" (class 1) everywhere: a known semantic region."""
    return make_road_model(tmp_path_factory.mktemp("sem") / "road.pt")


@pytest.fixture(scope="module")
def zidane_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Ten frames of Ultralytics' zidane.jpg, in which the bundled model finds 4 people at conf 0.1."""
    return make_zidane_clip(tmp_path_factory.mktemp("clip") / "zidane.avi", SIZE_WH, 10)


def _frame(video: Path, index: int = 5) -> np.ndarray:
    cap = cv2.VideoCapture(str(video))
    for _ in range(index + 1):
        ok, frame = cap.read()
        assert ok
    return frame.astype(np.float32)


def test_combined_run_draws_both_layers_and_records_both(road_model, zidane_clip, tmp_path) -> None:
    both, sem_only, jsonl = tmp_path / "both.mp4", tmp_path / "sem.mp4", tmp_path / "both.jsonl"
    common = ["--conf", "0.1", "--no-hud", "--semantic-alpha", "0.5"]
    proc = run_cli("run", str(zidane_clip), "--model", str(YOLO11_WEIGHTS), "--semantic", str(road_model), "--out",
                   str(both), "--jsonl", str(jsonl), *common)
    assert proc.returncode == 0, proc.stderr
    proc = run_cli("run", str(zidane_clip), "--model", str(road_model), "--out", str(sem_only), *common)
    assert proc.returncode == 0, proc.stderr
    assert count_frames(both) == count_frames(sem_only) == (10, (480, 640))

    # where the instance model puts its masks, computed independently of the CLI
    source = _frame(zidane_clip)
    ref = YoloSegModel(load_runtime(YOLO11_WEIGHTS), conf=0.1)([source.astype(np.uint8)])[0]
    assert len(ref) > 0
    inside = np.zeros((480, 640), bool)
    for i in range(len(ref)):
        inside |= ref.masks.to_dense(i, (480, 640))
    boxes = np.zeros((480, 640), bool)
    for x1, y1, x2, y2 in ref.boxes_xyxy.astype(int):
        boxes[max(y1 - 30, 0) : y2 + 4, max(x1 - 4, 0) : x2 + 120] = True  # with the label above
    outside = ~boxes
    assert inside.sum() > 1000 and outside.sum() > 1000

    combined, semantic = _frame(both), _frame(sem_only)
    diff = lambda a, b, m: float(np.abs(a - b)[m].mean())  # noqa: E731
    assert diff(semantic, source, outside) > 15, "semantic colours not drawn"
    assert diff(combined, source, outside) > 15, "semantic colours missing in combined mode"
    assert diff(combined, semantic, outside) < 4, "combined differs from semantic-only away from instances"
    assert diff(combined, semantic, inside) > 8, "instance masks not drawn over the semantic layer"

    records = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert len(records) == 10
    for r in records:
        assert r["detections"], "instances missing from the JSONL"
        (road,) = r["semantic"]
        assert road["class_name"] == "road" and road["area_fraction"] == 1.0
        mask = mask_utils.decode({"size": road["mask"]["size"], "counts": road["mask"]["counts"].encode()})
        assert mask.shape == (480, 640) and mask.all()
        assert r["timings_ms"]["semantic"] > 0


def test_semantic_only_labels_and_onnx_export(road_model, zidane_clip, tmp_path) -> None:
    labels = tmp_path / "labels"
    proc = run_cli("run", str(zidane_clip), "--model", str(road_model), "--save-labels", str(labels),
                   "--max-frames", "3")
    assert proc.returncode == 0, proc.stderr
    assert json.loads((labels / "classes.json").read_text())["names"] == ["background", "road"]
    pngs = sorted(labels.glob("frame_*.png"))
    assert [p.name for p in pngs] == ["frame_000000.png", "frame_000001.png", "frame_000002.png"]
    label_map = cv2.imread(str(pngs[0]), cv2.IMREAD_UNCHANGED)
    assert label_map.shape == (480, 640) and (label_map == 1).all()

    onnx_path = tmp_path / "road.onnx"
    proc = run_cli("export", str(road_model), "--format", "onnx", "--out", str(onnx_path))
    assert proc.returncode == 0, proc.stderr
    proc = run_cli("run", str(zidane_clip), "--model", str(onnx_path), "--save-labels", str(tmp_path / "l2"),
                   "--max-frames", "2")
    assert proc.returncode == 0, proc.stderr
    assert (cv2.imread(str(tmp_path / "l2" / "frame_000001.png"), cv2.IMREAD_UNCHANGED) == 1).all()


@pytest.mark.parametrize(("args", "message"), [
    (["--semantic", str(YOLO11_WEIGHTS)], "not a semantic-segmentation model"),
    (["--save-labels", "labels"], "--save-labels needs a semantic model"),
])
def test_semantic_option_errors(args, message, zidane_clip, tmp_path) -> None:
    proc = run_cli("run", str(zidane_clip), "--out", str(tmp_path / "o.mp4"), *args, cwd=tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert message in proc.stderr.strip().splitlines()[-1]
