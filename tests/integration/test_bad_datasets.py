"""Bad data sets through the real ``rtseg eval``, ``train`` and ``convert``: one line naming the file (and line),
exit 2, no traceback, no table of NaN, no checkpoint; a few bad lines among many: one warning with the count.

Each data set is generated in ``tmp_path``; every command runs with a time limit, so a hang fails the test.
(The finer cases of each check are unit tests: tests/unit/data/test_validation.py.)
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.support import YOLO26_WEIGHTS, run_cli

H, W = 48, 64
SQUARE = "0 0.1 0.1 0.5 0.1 0.5 0.5 0.1 0.5"
POLY = [[10, 10, 40, 10, 40, 30, 10, 30]]
TIMEOUT = 180  # seconds; the hang this guards against (cv2.fillPoly on NaN) never ends


def write_image(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = np.full((H, W, 3), 90, np.uint8)
    image[10:30, 10:40] = (40, 40, 200)
    cv2.imwrite(str(path), image)
    return path


def yolo_set(root: Path, labels: list[str], names: str = "[cat]") -> Path:
    """One image per label text, in both a train and a val split."""
    for split in ("train", "val"):
        for i, text in enumerate(labels):
            write_image(root / "images" / split / f"{i:03d}.png")
            (root / "labels" / split).mkdir(parents=True, exist_ok=True)
            (root / "labels" / split / f"{i:03d}.txt").write_text(text)
    (root / "data.yaml").write_text(f"path: {root}\ntrain: images/train\nval: images/val\nnames: {names}\n")
    return root / "data.yaml"


def coco_set(root: Path, segmentation: object = POLY, image_id: int = 1, text: str | None = None) -> Path:
    for i in range(4):
        write_image(root / f"{i}.png")
    anns = [{"id": i + 1, "image_id": i + 1, "category_id": 1, "segmentation": POLY, "iscrowd": 0} for i in range(4)]
    anns[0].update(segmentation=segmentation, image_id=image_id)
    spec = {"images": [{"id": i + 1, "file_name": f"{i}.png", "height": H, "width": W} for i in range(4)],
            "annotations": anns, "categories": [{"id": 1, "name": "cat"}]}
    (root / "i.json").write_text(text if text is not None else json.dumps(spec))
    return root / "i.json"


def mask_set(root: Path, n: int = 4, bad: np.ndarray | None = None, classes: str = "background\ncat\n",
             n_bad: int = 1) -> Path:
    """``n`` images with a square of class 1; the first ``n_bad`` masks replaced by ``bad`` when given."""
    (root / "masks").mkdir(parents=True, exist_ok=True)
    for i in range(n):
        write_image(root / "images" / f"{i:03d}.png")
        mask = np.zeros((H, W), np.uint8)
        mask[10:30, 10:40] = 1
        cv2.imwrite(str(root / "masks" / f"{i:03d}.png"), bad if i < n_bad and bad is not None else mask)
    (root / "classes.txt").write_text(classes)
    return root


def square(value: int, dtype: type = np.uint8) -> np.ndarray:
    mask = np.zeros((H, W), dtype)
    mask[10:30, 10:40] = value
    return mask


@pytest.fixture(scope="module")
def semantic_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from rtseg.models.zoo import build_semantic, save_semantic

    net, info = build_semantic("Linknet", names=("background", "cat"), imgsz=64)
    return save_semantic(tmp_path_factory.mktemp("model") / "sem.pt", net, info)


def cli(*args: str) -> subprocess.CompletedProcess:
    return run_cli(*args, timeout=TIMEOUT)


def assert_one_line_error(res: subprocess.CompletedProcess, *names: str) -> str:
    """Exit 2, one line on stderr that names ``names`` (file, line), no traceback, no NaN table."""
    assert res.returncode == 2, (res.returncode, res.stdout[-2000:], res.stderr[-3000:])
    lines = [line for line in res.stderr.strip().splitlines() if not line.startswith("training on ")]  # progress
    assert len(lines) == 1 and lines[0].startswith("rtseg: error: "), res.stderr[-3000:]
    assert "Traceback" not in res.stderr and "nan" not in res.stdout.lower()
    for name in names:
        assert name in lines[0], lines[0]
    return lines[0]


# (builder, the names the error line must hold); the model: YOLO-seg weights, or the semantic model for masks
EVAL_CASES = {
    "yolo-nan": (lambda d: yolo_set(d, [SQUARE, "0 0.1 nan 0.5 0.1 0.5 0.5"]), ["labels/val/001.txt:1", "'nan'"]),
    "yolo-unknown-class": (lambda d: yolo_set(d, [SQUARE, "4 0.1 0.1 0.5 0.1 0.5 0.5"]),
                           ["labels/val/001.txt:1", "class id 4"]),
    "yolo-out-of-range": (lambda d: yolo_set(d, [SQUARE, f"{SQUARE}\n0 3 0.1 9 0.1 9 9 3 9"]),
                          ["labels/val/001.txt:2", "outside 0..1"]),
    "yolo-empty-names": (lambda d: yolo_set(d, [SQUARE], names="[]"), ["data.yaml", "class list is empty"]),
    "coco-truncated": (lambda d: coco_set(d, text='{"images": [{"id": 1, "file_na'), ["i.json:1", "not valid JSON"]),
    "coco-missing-image": (lambda d: coco_set(d, image_id=99), ["i.json", "annotations[0]", "image_id 99"]),
    "coco-garbage-segmentation": (lambda d: coco_set(d, segmentation=[["x", None, 3]]),
                                  ["i.json", "annotations[0]", "not a list of finite numbers"]),
    "coco-outside-image": (lambda d: coco_set(d, segmentation=[[900, 900, 990, 900, 990, 990]]),
                           ["i.json", "annotations[0]", "leaves the 64x48 image"]),
    "mask-rgb": (lambda d: mask_set(d, bad=np.dstack([square(1), square(0), square(1)])),
                 ["masks/000.png", "colour mask"]),
    "mask-16-bit": (lambda d: mask_set(d, bad=square(1000, np.uint16)), ["masks/000.png", "class id 1000"]),
    "mask-ids-beyond-classes": (lambda d: mask_set(d, bad=square(5)), ["masks/000.png", "class id 5"]),
    "mask-size-mismatch": (lambda d: mask_set(d, bad=square(1)[:24]), ["masks/000.png", "its image"]),
    "mask-missing-image": (lambda d: _drop(mask_set(d), "images/000.png"), ["masks/000.png", "no image 000"]),
    "mask-empty-classes": (lambda d: mask_set(d, classes="\n"), ["classes.txt", "class list is empty"]),
}


def _drop(root: Path, rel: str) -> Path:
    (root / rel).unlink()
    return root


@pytest.mark.parametrize("case", sorted(EVAL_CASES))
def test_eval_on_a_bad_data_set_is_one_line(case: str, tmp_path: Path, semantic_model: Path) -> None:
    build, names = EVAL_CASES[case]
    data = build(tmp_path / "data")
    model = semantic_model if case.startswith("mask") else YOLO26_WEIGHTS
    res = cli("eval", "--model", str(model), "--data", str(data), "--json", str(tmp_path / "m.json"))
    assert_one_line_error(res, *names)
    assert not (tmp_path / "m.json").exists()


def test_eval_leaves_out_a_few_bad_lines_among_many_with_one_warning(tmp_path: Path) -> None:
    good = f"{SQUARE}\n" * 5
    data = yolo_set(tmp_path / "data", [good] * 7 + ["0 0.1 nan 0.5 0.1 0.5 0.5\n" + f"{SQUARE}\n" * 4])
    res = cli("eval", "--model", str(YOLO26_WEIGHTS), "--data", str(data), "--json", str(tmp_path / "m.json"))
    assert res.returncode == 0, res.stderr[-3000:]
    warnings = [line for line in res.stderr.splitlines() if "WARNING" in line]
    assert len(warnings) == 1 and "left out 1 bad label lines of 40" in warnings[0], res.stderr
    assert "labels/val/007.txt:1" in warnings[0] and "Traceback" not in res.stderr
    report = json.loads((tmp_path / "m.json").read_text())
    assert "nan" not in res.stdout.lower() and np.isfinite(report["metrics"]["mask_mAP50"])


TRAIN = ("--model", "Linknet", "--epochs", "1", "--imgsz", "32", "--crop", "32", "--batch", "2", "--val-every", "2")


@pytest.mark.parametrize("case", ["all-ignored", "yolo-nan", "coco-garbage", "mask-rgb"])
def test_semantic_train_on_a_bad_data_set_writes_no_checkpoint(case: str, tmp_path: Path) -> None:
    build, names = {  # all-ignored: every mask is 255 (ignore), the loss has nothing to learn from
        "all-ignored": (lambda d: mask_set(d, bad=np.full((H, W), 255, np.uint8), n_bad=4), ["no labelled pixel"]),
        "yolo-nan": (lambda d: yolo_set(d, [SQUARE, "0 nan 0.1 0.5 0.1 0.5 0.5"]), ["labels/train/001.txt:1"]),
        "coco-garbage": (lambda d: coco_set(d, segmentation={"counts": 5}), ["i.json", "annotations[0]"]),
        "mask-rgb": (lambda d: mask_set(d, bad=np.dstack([square(1), square(0), square(1)])), ["masks/000.png"]),
    }[case]
    built = build(tmp_path / "data")
    out = tmp_path / "m.pt"
    assert_one_line_error(cli("train", "--data", str(built), *TRAIN, "--out", str(out)), *names)
    assert not out.exists()


def test_instance_train_checks_a_data_yaml_before_ultralytics(tmp_path: Path) -> None:
    data = yolo_set(tmp_path / "data", [SQUARE, "3 0.1 0.1 0.5 0.1 0.5 0.5"])
    out = tmp_path / "inst.pt"
    res = cli("train", "--data", str(data), "--model", "yolo11n-seg.yaml", "--epochs", "1", "--imgsz", "32",
              "--out", str(out))
    assert_one_line_error(res, "labels/train/001.txt:1", "class id 3")
    assert not out.exists()


@pytest.mark.parametrize("case", ["mask-ids-beyond-classes", "coco-outside-image", "yolo-nan-to-mask-png"])
def test_convert_of_a_bad_data_set_is_one_line(case: str, tmp_path: Path) -> None:
    if case == "mask-ids-beyond-classes":  # once written as YOLO class 4 under a data.yaml naming one class
        data, to, names = mask_set(tmp_path / "data", bad=square(5)), "yolo-seg", ["masks/000.png", "class id 5"]
    elif case == "coco-outside-image":
        data, to, names = coco_set(tmp_path / "data", segmentation=[[900, 900, 990, 900, 990, 990]]), "yolo-seg", \
            ["i.json", "annotations[0]"]
    else:
        data, to, names = yolo_set(tmp_path / "data", [SQUARE, "0 0.1 nan 0.5 0.1 0.5 0.5"]), "mask-png", \
            ["labels/train/001.txt:1"]
    res = cli("convert", str(data), "--out", str(tmp_path / "out"), "--to", to)
    assert_one_line_error(res, *names)
    assert not (tmp_path / "out" / "data.yaml").exists() and not (tmp_path / "out" / "classes.txt").exists()


def test_run_with_a_binary_class_file_is_one_line(tmp_path: Path, semantic_model: Path) -> None:
    (tmp_path / "classes.yaml").write_bytes(b"\xff\xfe\x00\x81\x00garbage")
    image = write_image(tmp_path / "a.png")
    res = cli("run", str(image), "--model", str(semantic_model), "--class-file", str(tmp_path / "classes.yaml"),
              "--save-labels", str(tmp_path / "labels"))
    assert_one_line_error(res, "--class-file", "classes.yaml", "not a text file")
