"""``rtseg label`` through the real CLI: pre-labels that LabelMe, pycocotools and CVAT's format read, and the
LabelMe round trip back through ``rtseg convert``."""

from __future__ import annotations

import json
import os
import xml.etree.ElementTree as ET
from pathlib import Path

import cv2
import numpy as np
import pytest

from rtseg.data.datasets import load_dataset
from tests.support import YOLO11_WEIGHTS, read_tty, run_cli, spawn_cli_tty
from tests.support import zidane_clip as make_zidane_clip

SIZE_WH = (320, 180)
MODEL = ["--model", str(YOLO11_WEIGHTS), "--backend", "torch", "--conf", "0.1"]


@pytest.fixture(scope="module")
def zidane_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Six frames of Ultralytics' zidane.jpg: the test model finds 4 people, scored 0.11 to 0.17."""
    return make_zidane_clip(tmp_path_factory.mktemp("clip") / "zidane.avi", SIZE_WH, 6)


def data_names(coco_dir: Path) -> tuple[str, ...]:
    return tuple(c["name"] for c in json.loads((coco_dir / "annotations.json").read_text())["categories"])


def _fill(polys: list, hw: tuple[int, int]) -> np.ndarray:
    mask = np.zeros(hw, np.uint8)
    cv2.fillPoly(mask, [np.round(np.asarray(p)).astype(np.int32) for p in polys], 1)
    return mask.astype(bool)


def test_labelme_opens_in_labelme_and_converts_back(zidane_clip: Path, tmp_path: Path) -> None:
    label_file = pytest.importorskip("labelme", reason="labelme is not installed (pip install labelme)").LabelFile
    out = tmp_path / "to_check"
    proc, master = spawn_cli_tty("label", str(zidane_clip), *MODEL, "--out", str(out), "--every", "3",
                                 "--review-below", "0.15")
    screen = read_tty(master, proc)
    assert proc.wait() == 0, screen
    assert "zidane.avi" in screen and "0/2" in screen, screen  # the progress bar (of 2 frames), on the terminal
    assert "2 frames" in proc.stdout.read().decode()
    files = sorted(out.glob("*.json"))
    assert [f.stem for f in files] == ["zidane_000000", "zidane_000003"]
    written = {}
    for f in files:
        lf = label_file(str(f))  # labelme's own loader
        assert (out / lf.imagePath).is_file() and lf.imageData is not None  # it found and read the image
        assert lf.shapes and all(s["shape_type"] == "polygon" for s in lf.shapes)
        scores = {s["group_id"]: float(s["description"].split()[0].removeprefix("score=")) for s in lf.shapes}
        assert len(scores) >= 3
        for s in lf.shapes:  # flagged exactly below --review-below
            assert s["flags"]["review"] == (scores[s["group_id"]] < 0.15)
        assert any(s["flags"]["review"] for s in lf.shapes) and not all(s["flags"]["review"] for s in lf.shapes)
        written[f.stem] = lf.shapes

    # rtseg reads the folder back with the same polygons, pieces of one object as one object
    data = load_dataset(out, "train")
    assert data.kind == "labelme" and data.names[:2] == ("person", "bicycle") and len(data.names) == 80
    for i, image in enumerate(data.images):
        shapes = written[image.stem]
        objects = data._labels[i]["objects"]
        assert len(objects) == len({s["group_id"] for s in shapes})
        got = sorted(p.tolist() for _, polys in objects for p in polys)
        assert got == sorted(s["points"] for s in shapes)

    # ... and converts it for training: the same outlines, as YOLO-seg polygons
    proc = run_cli("convert", str(out), "--to", "yolo-seg", "--out", str(tmp_path / "yolo"))
    assert proc.returncode == 0, proc.stderr
    labels = sorted((tmp_path / "yolo" / "labels" / "train").glob("*.txt"))
    assert len(labels) == 2
    w, h = SIZE_WH
    for label in labels:
        shapes = written[label.stem.split("_", 1)[1]]
        lines = [line.split() for line in label.read_text().splitlines()]
        assert len(lines) == len({s["group_id"] for s in shapes}) and {r[0] for r in lines} == {"0"}
        back = _fill([np.asarray(r[1:], float).reshape(-1, 2) * [w, h] for r in lines], (h, w))
        drawn = _fill([s["points"] for s in shapes], (h, w))
        assert (back & drawn).sum() / (back | drawn).sum() > 0.95


def test_coco_yolo_and_cvat_outputs(zidane_clip: Path, tmp_path: Path) -> None:
    from pycocotools.coco import COCO

    for fmt in ("coco", "yolo-seg", "cvat"):
        proc = run_cli("label", str(zidane_clip), *MODEL, "--out", str(tmp_path / fmt), "--format", fmt,
                       "--max", "1", "--review-below", "0.15", "-q")
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.startswith("1 frames"), proc.stdout
    coco = COCO(str(tmp_path / "coco" / "annotations.json"))  # the reference reader
    (image,) = coco.loadImgs(coco.getImgIds())
    assert (tmp_path / "coco" / "images" / image["file_name"]).is_file()
    anns = coco.loadAnns(coco.getAnnIds(imgIds=image["id"]))
    assert len(anns) >= 3 and {coco.loadCats(a["category_id"])[0]["name"] for a in anns} == {"person"}
    for a in anns:
        assert coco.annToMask(a).sum() > 50 and a["review"] == (a["score"] < 0.15)
    assert len(load_dataset(tmp_path / "coco" / "annotations.json")) == 1  # rtseg convert / train read it

    yolo = load_dataset(tmp_path / "yolo-seg", "train")  # as Ultralytics lays it out
    assert yolo.names == data_names(tmp_path / "coco") and len(yolo.instances(0)) >= len(anns)
    review = (tmp_path / "yolo-seg" / "review.txt").read_text().splitlines()
    assert len(review) >= sum(a["review"] for a in anns) > 0

    root = ET.parse(tmp_path / "cvat" / "annotations.xml").getroot()
    assert root.findtext("version") == "1.1"
    assert tuple(n.findtext("name") for n in root.iter("label")) == data_names(tmp_path / "coco")
    (img,) = root.findall("image")
    assert (tmp_path / "cvat" / "images" / img.get("name")).is_file()
    polygons = img.findall("polygon")
    assert polygons and all(len(p.get("points").split(";")) >= 3 for p in polygons)
    assert {p.find("attribute[@name='review']").text for p in polygons} == {"true", "false"}


@pytest.mark.parametrize(("args", "expected"), [
    (["--format", "pascal"], "--format 'pascal': expected one of labelme, coco, yolo-seg, cvat"),
    (["--review-below", "2"], "--review-below 2: expected a score in 0..1"),
    (["--tolerance", "-1"], "--tolerance -1: expected a distance"),
    (["--every", "2", "--scene-change"], "--scene-change and --every"),
])
def test_bad_options_are_one_line(zidane_clip: Path, tmp_path: Path, args: list[str], expected: str) -> None:
    proc = run_cli("label", str(zidane_clip), "--out", str(tmp_path / "o"), *args)
    assert proc.returncode == 2 and expected in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and not (tmp_path / "o").exists()


def test_bad_source_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    for source in (tmp_path / "missing.mp4", tmp_path / "empty"):
        proc = run_cli("label", str(source), *MODEL, "--out", str(tmp_path / "o"))
        assert proc.returncode == 2, proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1 and str(source) in proc.stderr, proc.stderr
        assert not (tmp_path / "o").exists()
    assert os.listdir(tmp_path) == ["empty"]
