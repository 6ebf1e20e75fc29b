"""Small things a new user hit, each checked through the real CLI: JSON Lines naming the image file, the demo
keeping its photos' shape, ``rtseg eval`` on a data set with more classes than the model, and data sets
whose labels cannot be found."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from rtseg.models.zoo import build_semantic, save_semantic
from tests.support import DATA, YOLO26_WEIGHTS, run_cli

BUNDLED = Path(__file__).resolve().parents[2] / "rtseg" / "assets" / "yolo11n-seg-person-cat-dog.pt"


def _records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _one_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    return lines[0]


# -- JSON Lines: the image file of each record ---------------------------------------------------------------

def test_jsonl_records_name_the_image_file_of_a_folder_or_glob(tmp_path: Path, video30: Path) -> None:
    folder = tmp_path / "shots"
    folder.mkdir()
    for i, name in enumerate(("a.png", "c.png", "d.jpg")):
        cv2.imwrite(str(folder / name), np.full((64, 96, 3), 50 * i, np.uint8))
    (folder / "b.jpg").write_bytes(b"not a jpeg")  # skipped with a warning: paths must not shift
    proc = run_cli("run", str(folder), "--jsonl", str(tmp_path / "folder.jsonl"))
    assert proc.returncode == 0, proc.stderr
    records = _records(tmp_path / "folder.jsonl")
    assert [r["path"] for r in records] == [str(folder / n) for n in ("a.png", "c.png", "d.jpg")]
    assert {r["source"] for r in records} == {str(folder)}

    pattern = str(folder / "*.png")
    proc = run_cli("run", pattern, "--jsonl", str(tmp_path / "glob.jsonl"))
    assert proc.returncode == 0, proc.stderr
    records = _records(tmp_path / "glob.jsonl")
    assert [(r["source"], r["path"]) for r in records] == [(pattern, str(folder / "a.png")),
                                                            (pattern, str(folder / "c.png"))]

    proc = run_cli("run", str(video30), "--jsonl", str(tmp_path / "video.jsonl"), "--max-frames", "3")
    assert proc.returncode == 0, proc.stderr
    assert all("path" not in r for r in _records(tmp_path / "video.jsonl"))  # a video has no file per frame


# -- rtseg demo: photos keep their shape ---------------------------------------------------------------------

def test_demo_clip_keeps_the_photos_aspect_ratio(tmp_path: Path) -> None:
    pytest.importorskip("ultralytics")
    from rtseg.sources.demo import build_clip, sample_images

    bus = next(p for p in sample_images() if p.name == "bus.jpg")
    ih, iw = cv2.imread(str(bus)).shape[:2]
    clip = build_clip(tmp_path / "clip.avi")
    cap = cv2.VideoCapture(str(clip))
    frames = []
    ok, frame = cap.read()
    while ok:
        frames.append(frame)
        ok, frame = cap.read()
    first = next(f for f, p in zip(frames[::30], sample_images()) if p.name == "bus.jpg")
    # frame 0 of a photo shows all of it: the photo is the part that is not the grey (114) padding
    # (columns mostly unlike it: MJPEG blurs the edge by a few pixels)
    photo = np.abs(first.astype(np.int16) - 114).max(axis=2) > 12
    cols = photo.mean(axis=0) > 0.5
    width, height = int(cols.sum()), int((photo[:, cols].mean(axis=1) > 0.5).sum())
    assert height == first.shape[0]
    assert width / height == pytest.approx(iw / ih, rel=0.02)  # stretched to the frame: 960 / 540 = 1.78


@pytest.mark.slow
def test_demo_finds_the_people_in_the_bus_photo(tmp_path: Path) -> None:
    """Squashed into 16:9, bus.jpg gave a person in 4 of its 30 frames; padded, in (nearly) all."""
    proc = run_cli("demo", "--out", str(tmp_path / "demo.mp4"), "--jsonl", "demo.jsonl", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    records = _records(tmp_path / "demo.jsonl")
    assert len(records) == 60  # bus.jpg (frames 0-29), then zidane.jpg
    with_person = [any(d["class_name"] == "person" for d in r["detections"]) for r in records]
    assert sum(with_person[:30]) >= 25, with_person[:30]
    assert sum(with_person[30:]) >= 25, with_person[30:]


# -- rtseg eval: the classes model and data share; labels that cannot be found --------------------------------

def _squares_image(rng: np.random.Generator, size: int) -> tuple[np.ndarray, tuple[int, int], tuple[int, int]]:
    image = rng.integers(0, 90, (size, size, 3), dtype=np.uint8)
    x, y = (int(v) for v in rng.integers(5, size - 40, 2))
    image[y : y + 30, x : x + 30] = (40, 40, 220)
    cx, cy = (int(v) for v in rng.integers(15, size - 15, 2))
    return image, (x, y), (cx, cy)


def make_yolo_seg_set(root: Path, names: list[str], n: int = 4, size: int = 96, *, labels: bool = True,
                      yaml_path: str = ".") -> Path:
    """Squares (class 0) and discs (class 1) as YOLO-seg polygons; ``data.yaml`` says ``path: .``."""
    rng = np.random.default_rng(5)
    (root / "images" / "val").mkdir(parents=True)
    (root / "labels" / "val").mkdir(parents=True)
    for i in range(n):
        image, (x, y), (cx, cy) = _squares_image(rng, size)
        cv2.circle(image, (cx, cy), 12, (40, 220, 40), -1)
        cv2.imwrite(str(root / "images" / "val" / f"{i:03d}.png"), image)
        square = np.array([[x, y], [x + 30, y], [x + 30, y + 30], [x, y + 30]], np.float64) / size
        disc = np.array([[cx + 12 * np.cos(a), cy + 12 * np.sin(a)] for a in np.linspace(0, 2 * np.pi, 12,
                                                                                          endpoint=False)]) / size
        lines = [" ".join(["0", *(f"{v:.5f}" for v in square.ravel())]),
                 " ".join(["1", *(f"{v:.5f}" for v in disc.ravel())])]
        (root / "labels" / "val" / f"{i:03d}.txt").write_text("\n".join(lines) + "\n")
    if not labels:
        shutil.rmtree(root / "labels")
    (root / "data.yaml").write_text(yaml.safe_dump({"path": yaml_path, "val": "images/val", "names": names}))
    return root


def make_mask_png_set(root: Path, names: tuple[str, ...], n: int = 4, size: int = 96) -> Path:
    """Squares (class 1) and discs (class 2) on a noisy background (class 0), as label-map PNGs."""
    rng = np.random.default_rng(6)
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for i in range(n):
        image, (x, y), (cx, cy) = _squares_image(rng, size)
        labels = np.zeros((size, size), np.uint8)
        labels[y : y + 30, x : x + 30] = 1
        cv2.circle(labels, (cx, cy), 12, 2, -1)
        image[labels == 2] = (40, 220, 40)
        cv2.imwrite(str(root / "images" / f"{i:03d}.png"), image)
        cv2.imwrite(str(root / "masks" / f"{i:03d}.png"), labels)
    (root / "classes.txt").write_text("\n".join(names) + "\n")
    return root


def test_instance_eval_measures_the_shared_classes_and_names_the_skipped(tmp_path: Path) -> None:
    """A data set labelling "person" (a class of the model) and "widget" (not one), its data.yaml saying
    ``path: .``, evaluated from its own folder: person is measured on its 4 objects, widget is named as
    skipped on one stderr line."""
    data = make_yolo_seg_set(tmp_path / "data", ["person", "widget"])
    proc = run_cli("eval", "--model", str(YOLO26_WEIGHTS), "--data", "data.yaml", "--json", "e.json", cwd=data)
    assert proc.returncode == 0, proc.stderr
    line = _one_line(proc.stderr)
    assert "widget" in line and "person" not in line
    report = json.loads((data / "e.json").read_text())
    assert report["skipped_classes"] == ["widget"]
    assert [(c["class"], c["gt"]) for c in report["per_class"]] == [("person", 4)]
    assert report["confusion_names"] == ["person", "background"]
    assert "nan" not in proc.stdout


def test_semantic_eval_ignores_the_pixels_of_skipped_classes(tmp_path: Path) -> None:
    data = make_mask_png_set(tmp_path / "data", ("background", "square", "disc"))
    net, info = build_semantic("Linknet", names=("background", "square"), imgsz=96)
    model = save_semantic(tmp_path / "m.pt", net, info)
    proc = run_cli("eval", "--model", str(model), "--data", str(data), "--json", str(tmp_path / "e.json"))
    assert proc.returncode == 0, proc.stderr
    assert "disc" in _one_line(proc.stderr)
    report = json.loads((tmp_path / "e.json").read_text())
    assert report["skipped_classes"] == ["disc"]
    disc_pixels = sum(int((cv2.imread(str(p), cv2.IMREAD_UNCHANGED) == 2).sum()) for p in (data / "masks").iterdir())
    assert report["metrics"]["pixels"] == 4 * 96 * 96 - disc_pixels  # disc pixels count neither way


@pytest.mark.parametrize("case", ["no labels folder", "no class in common", "only skipped classes labelled"])
def test_eval_without_anything_to_measure_is_one_line_and_exit_2(tmp_path: Path, case: str) -> None:
    if case == "no labels folder":
        data, expected = make_yolo_seg_set(tmp_path / "data", ["person", "widget"], labels=False), "no label file"
    elif case == "no class in common":
        data, expected = make_yolo_seg_set(tmp_path / "data", ["widget", "gadget"]), "no class in common"
    else:
        data = make_yolo_seg_set(tmp_path / "data", ["widget", "person"])
        for label in (data / "labels" / "val").iterdir():  # keep only the widgets: no person to measure
            label.write_text(label.read_text().splitlines()[0] + "\n")
        expected = "no labelled object"
    proc = run_cli("eval", "--model", str(YOLO26_WEIGHTS), "--data", str(data / "data.yaml"))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    line = _one_line(proc.stderr)
    assert line.startswith("rtseg: error:") and expected in line, line
    assert "nan" not in proc.stdout


@pytest.mark.data
@pytest.mark.slow
def test_eval_of_coco_labels_with_the_bundled_model_from_the_data_sets_folder(tmp_path: Path) -> None:
    """80 COCO classes, a 3-class model (person, cat, dog), a data.yaml with ``path: .``: the same metrics
    from the data set's folder as from elsewhere, with real person objects, and the 77 others named."""
    src = DATA / "coco128-seg"
    data = tmp_path / "coco"
    for sub in ("images", "labels"):
        (data / sub / "val").mkdir(parents=True)
    for image in sorted((src / "images" / "train2017").glob("*.jpg"))[:12]:
        (data / "images" / "val" / image.name).symlink_to(image)
        (data / "labels" / "val" / f"{image.stem}.txt").symlink_to(src / "labels" / "train2017" / f"{image.stem}.txt")
    from ultralytics.utils import ROOT

    names = yaml.safe_load((ROOT / "cfg/datasets/coco128-seg.yaml").read_text())["names"]
    (data / "data.yaml").write_text(yaml.safe_dump({"path": ".", "val": "images/val", "names": names}))
    inside = run_cli("eval", "--model", str(BUNDLED), "--data", "data.yaml", "--json", str(tmp_path / "in.json"),
                     cwd=data)
    outside = run_cli("eval", "--model", str(BUNDLED), "--data", str(data / "data.yaml"), "--json",
                      str(tmp_path / "out.json"), cwd=tmp_path)
    for proc in (inside, outside):
        assert proc.returncode == 0, proc.stderr
        line = _one_line(proc.stderr)
        assert "77 classes" in line and "giraffe" in line and "person" not in line
    a, b = (json.loads((tmp_path / f).read_text()) for f in ("in.json", "out.json"))
    assert a["metrics"] == b["metrics"] and a["per_class"] == b["per_class"]
    gt = {c["class"]: c["gt"] for c in a["per_class"]}
    assert set(gt) == {"person", "cat", "dog"} and gt["person"] >= 5
    assert a["metrics"]["mask_mAP50"] == a["metrics"]["mask_mAP50"]  # a number, not NaN


def test_semantic_eval_with_no_pixel_of_a_shared_class_is_one_line_and_exit_2(tmp_path: Path) -> None:
    data = make_mask_png_set(tmp_path / "data", ("background", "square", "disc"))
    for mask in (data / "masks").iterdir():  # every pixel background, a class the model does not know
        cv2.imwrite(str(mask), np.zeros((96, 96), np.uint8))
    net, info = build_semantic("Linknet", names=("square", "disc"), imgsz=96)
    model = save_semantic(tmp_path / "m.pt", net, info)
    proc = run_cli("eval", "--model", str(model), "--data", str(data))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    line = _one_line(proc.stderr)
    assert line.startswith("rtseg: error:") and "no labelled pixel" in line, line
