"""``--scales`` and ``--flip`` through the real CLI: measured by ``rtseg eval``, refused in one line when wrong."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.support import ROOT, run_cli

PETS = ROOT / "rtseg" / "assets" / "linknet-pets.pt"


@pytest.fixture(scope="module")
def tiny_set(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three 96x96 images of a bright disc (pet) on grey (background), as a mask-PNG folder."""
    root = tmp_path_factory.mktemp("tiny")
    (root / "images").mkdir()
    (root / "masks").mkdir()
    (root / "classes.txt").write_text("background\npet\n")
    for k in range(3):
        image = np.full((96, 96, 3), 120, np.uint8)
        labels = np.zeros((96, 96), np.uint8)
        cv2.circle(image, (30 + 15 * k, 48), 22, (40, 90, 200), -1)
        cv2.circle(labels, (30 + 15 * k, 48), 22, 1, -1)
        cv2.imwrite(str(root / "images" / f"{k}.png"), image)
        cv2.imwrite(str(root / "masks" / f"{k}.png"), labels)
    return root


def test_eval_with_scales_and_flip(tiny_set: Path, tmp_path: Path) -> None:
    from rtseg.backends.registry import load_semantic_backend
    from rtseg.data.datasets import load_dataset
    from rtseg.evaluate.semantic import confusion_matrix, semantic_metrics
    from rtseg.models.semantic import SemanticModel

    proc = run_cli("eval", "--model", str(PETS), "--data", str(tiny_set), "--backend", "torch", "--imgsz", "64",
                   "--scales", "0.5,2", "--flip", "--json", str(tmp_path / "multi.json"))
    assert proc.returncode == 0, proc.stderr
    report = json.loads((tmp_path / "multi.json").read_text())
    data, backend = load_dataset(tiny_set), load_semantic_backend(str(PETS), device="cpu")
    miou = {}
    for name, options in (("one", {}), ("multi", {"scales": "0.5,2", "flip": True})):
        model, conf = SemanticModel(backend, imgsz=64, **options), np.zeros((2, 2), np.int64)
        for i in range(len(data)):
            conf += confusion_matrix(model([data.image(i)])[0], data.semantic(i), 2, ignore_index=255)
        miou[name] = semantic_metrics(conf)["mIoU"]
    assert report["metrics"]["mIoU"] == pytest.approx(miou["multi"], abs=1e-9)  # the CLI averaged those views
    assert miou["multi"] != miou["one"]


@pytest.mark.parametrize(("command", "scales", "expected"), [
    ("eval", "0", "--scales 0: 0 is out of range; each scale must be above 0"),
    ("eval", "", "--scales '': expected at least one scale"),
    ("run", "-0.5,1", "--scales -0.5,1: -0.5 is out of range"),
    ("run", "1,x", "--scales '1,x': expected comma-separated numbers"),
])
def test_bad_scales_are_one_line(tiny_set: Path, tmp_path: Path, command: str, scales: str, expected: str) -> None:
    args = ["--data", str(tiny_set)] if command == "eval" else [str(tiny_set / "images"), "-o", str(tmp_path / "o.mp4")]
    proc = run_cli(command, *args, "--model", str(PETS), f"--scales={scales}")
    assert proc.returncode == 2 and expected in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
