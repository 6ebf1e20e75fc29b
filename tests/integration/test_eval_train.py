"""``rtseg eval`` / ``rtseg train`` / ``rtseg convert`` through the real CLI, checked against references.

* Semantic metrics equal an independent numpy computation on the label maps ``rtseg run`` saved.
* Instance metrics equal pycocotools' COCOeval on the detections ``rtseg run`` wrote to JSON Lines.
* A train -> eval round trip on a generated data set: loss falls, mIoU rises, eval agrees with training.
"""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from rtseg.data.datasets import load_dataset
from rtseg.models.zoo import build_semantic, save_semantic
from tests.support import DATA, YOLO11_WEIGHTS, YOLO26_WEIGHTS, run_cli

NAMES = ("background", "red", "green")


def make_mask_png_set(root: Path, n: int, seed: int, size: int = 96) -> Path:
    """Red squares (class 1) and green discs (class 2) on a noisy background, with their label maps."""
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for i in range(n):
        image = rng.integers(0, 90, (size, size, 3), dtype=np.uint8)
        labels = np.zeros((size, size), np.uint8)
        x, y = (int(v) for v in rng.integers(5, size - 40, 2))
        image[y : y + 30, x : x + 30] = (40, 40, 220)
        labels[y : y + 30, x : x + 30] = 1
        cx, cy = (int(v) for v in rng.integers(15, size - 15, 2))
        disc = np.zeros_like(labels)
        cv2.circle(disc, (cx, cy), 12, 1, -1)
        image[disc > 0] = (40, 220, 40)
        labels[disc > 0] = 2
        cv2.imwrite(str(root / "images" / f"{i:03d}.png"), image)
        cv2.imwrite(str(root / "masks" / f"{i:03d}.png"), labels)
    (root / "classes.txt").write_text("\n".join(NAMES) + "\n")
    return root


def test_semantic_eval_equals_independent_numpy(tmp_path: Path) -> None:
    data = make_mask_png_set(tmp_path / "data", 6, seed=1)
    net, info = build_semantic("Linknet", names=NAMES, imgsz=96)  # untrained: varied, wrong predictions
    model = save_semantic(tmp_path / "m.pt", net, info)
    run = run_cli("run", str(data / "images"), "--model", str(model), "--save-labels", str(tmp_path / "pred"))
    assert run.returncode == 0, run.stderr
    res = run_cli("eval", "--model", str(model), "--data", str(data), "--json", str(tmp_path / "m.json"),
                  "--plot", str(tmp_path / "c.png"))
    assert res.returncode == 0, res.stderr
    report = json.loads((tmp_path / "m.json").read_text())
    preds = [cv2.imread(str(p), cv2.IMREAD_UNCHANGED) for p in sorted((tmp_path / "pred").glob("frame_*.png"))]
    gts = [cv2.imread(str(p), cv2.IMREAD_UNCHANGED) for p in sorted((data / "masks").glob("*.png"))]
    pred, gt = np.concatenate([p.ravel() for p in preds]), np.concatenate([g.ravel() for g in gts])
    ious = []
    for c in range(3):
        inter, union = np.sum((pred == c) & (gt == c)), np.sum((pred == c) | (gt == c))
        if union:
            ious.append(inter / union)
        per_class = report["per_class"][c]
        if (gt == c).any():
            assert per_class["recall"] == pytest.approx(np.sum((pred == c) & (gt == c)) / np.sum(gt == c), abs=1e-9)
    assert report["metrics"]["mIoU"] == pytest.approx(np.mean(ious), abs=1e-9)
    assert report["metrics"]["pixel_accuracy"] == pytest.approx(np.mean(pred == gt), abs=1e-9)
    assert cv2.imread(str(tmp_path / "c.png")) is not None
    assert "mean" in res.stdout and "IoU" in res.stdout


@pytest.mark.data
@pytest.mark.slow
def test_instance_eval_equals_pycocotools_on_run_output(tmp_path: Path) -> None:
    """mAP of ``rtseg eval`` == COCOeval on ``rtseg run --jsonl`` detections of the same images, within 1e-3."""
    src = DATA / "coco128-seg"
    data = tmp_path / "coco"
    for sub in ("images", "labels"):
        (data / sub / "val").mkdir(parents=True)
    for image in sorted((src / "images" / "train2017").glob("*.jpg"))[:16]:
        (data / "images" / "val" / image.name).symlink_to(image)
        (data / "labels" / "val" / f"{image.stem}.txt").symlink_to(src / "labels" / "train2017" / f"{image.stem}.txt")
    import yaml
    from ultralytics.utils import ROOT

    names = yaml.safe_load((ROOT / "cfg/datasets/coco128-seg.yaml").read_text())["names"]
    (data / "data.yaml").write_text(yaml.safe_dump({"path": str(data), "val": "images/val", "names": names}))
    weights = str(YOLO11_WEIGHTS)
    res = run_cli("eval", "--model", weights, "--data", str(data / "data.yaml"), "--json", str(tmp_path / "e.json"))
    assert res.returncode == 0, res.stderr
    report = json.loads((tmp_path / "e.json").read_text())
    run = run_cli("run", str(data / "images" / "val"), "--model", weights, "--conf", "0.001", "--jsonl",
                  str(tmp_path / "d.jsonl"))
    assert run.returncode == 0, run.stderr

    ds = load_dataset(data / "data.yaml", "val")  # ground truth as COCO JSON, from the data set's polygons
    images, anns, cats = [], [], set()
    for i in range(len(ds)):
        h, w = ds.image(i).shape[:2]
        images.append({"id": i, "height": h, "width": w, "file_name": ds.images[i].name})
        for cls, mask in ds.instances(i):
            rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
            anns.append({"id": len(anns) + 1, "image_id": i, "category_id": cls, "iscrowd": 0,
                         "area": float(mask_utils.area(rle)), "bbox": mask_utils.toBbox(rle).tolist(),
                         "segmentation": {"size": rle["size"], "counts": rle["counts"].decode()}})
            cats.add(cls)
    results = []
    for line in (tmp_path / "d.jsonl").read_text().splitlines():
        rec = json.loads(line)
        for det in rec["detections"]:
            x1, y1, x2, y2 = det["box_xyxy"]
            results.append({"image_id": rec["frame"], "category_id": det["class_id"], "score": det["score"],
                            "bbox": [x1, y1, x2 - x1, y2 - y1], "segmentation": det["mask"]})
    gt = COCO()
    gt.dataset = {"images": images, "annotations": anns, "categories": [{"id": c} for c in sorted(cats)]}
    with contextlib.redirect_stdout(io.StringIO()):
        gt.createIndex()
        dt = gt.loadRes(results)
        for iou_type, key in (("bbox", "box"), ("segm", "mask")):
            ev = COCOeval(gt, dt, iou_type)
            ev.evaluate()
            ev.accumulate()
            ev.summarize()
            assert report["metrics"][f"{key}_mAP50_95"] == pytest.approx(ev.stats[0], abs=1e-3), iou_type
            assert report["metrics"][f"{key}_mAP50"] == pytest.approx(ev.stats[1], abs=1e-3), iou_type
    assert report["metrics"]["mask_mAP50"] > 0.03  # non-trivial: these weights were trained on these images


@pytest.mark.slow
def test_train_then_eval_round_trip(tmp_path: Path) -> None:
    """Loss falls and validation mIoU rises over a few epochs; ``rtseg eval`` reproduces the best mIoU."""
    data = make_mask_png_set(tmp_path / "data", 28, seed=2, size=64)
    out = tmp_path / "m.pt"
    res = run_cli("train", "--data", str(data), "--model", "Linknet", "--epochs", "8", "--imgsz", "64",
                  "--crop", "64", "--scale", "0.8,1.25", "--batch", "8", "--lr", "0.005", "--val-every", "4",
                  "--out", str(out), "--half")
    assert res.returncode == 0, res.stderr
    summary = json.loads(res.stdout.strip().splitlines()[-1])
    history = summary["history"]
    assert history[-1]["loss"] < 0.7 * history[0]["loss"]
    assert summary["val_mIoU"] > history[0]["val_mIoU"] + 0.1
    assert out.with_suffix(".png").is_file()
    # the held-out images (every 4th) evaluated through the CLI give the mIoU training reported
    val = tmp_path / "val"
    for sub in ("images", "masks"):
        (val / sub).mkdir(parents=True)
        for p in sorted((data / sub).glob("*.png"))[::4]:
            (val / sub / p.name).symlink_to(p)
    (val / "classes.txt").write_text((data / "classes.txt").read_text())
    ev = run_cli("eval", "--model", str(out), "--data", str(val), "--imgsz", "64", "--json", str(tmp_path / "e.json"))
    assert ev.returncode == 0, ev.stderr
    # --half stores float16 weights; training validated the float32 ones, so a few pixels may flip
    assert json.loads((tmp_path / "e.json").read_text())["metrics"]["mIoU"] == pytest.approx(summary["val_mIoU"],
                                                                                              abs=0.005)


@pytest.mark.slow
def test_instance_train_via_ultralytics_from_mask_png(tmp_path: Path) -> None:
    """A mask-PNG set is converted to YOLO-seg and trained with Ultralytics; eval reads the result."""
    data = make_mask_png_set(tmp_path / "data", 12, seed=3, size=64)
    out = tmp_path / "inst.pt"
    res = run_cli("train", "--data", str(data), "--model", "yolo11n-seg.yaml", "--epochs", "1", "--imgsz", "64",
                  "--batch", "4", "--out", str(out), timeout=600)
    assert res.returncode == 0, res.stderr
    assert out.is_file()
    ev = run_cli("eval", "--model", str(out), "--data", str(data), "--json", str(tmp_path / "e.json"))
    assert ev.returncode == 0, ev.stderr
    report = json.loads((tmp_path / "e.json").read_text())
    assert report["task"] == "instance" and [c["class"] for c in report["per_class"]] == ["red", "green"]
    assert report["confusion"] and len(report["confusion"]) == 3  # red, green, background


def test_convert_cli_and_one_line_errors(tmp_path: Path) -> None:
    data = make_mask_png_set(tmp_path / "data", 3, seed=4)
    res = run_cli("convert", str(data), "--out", str(tmp_path / "yolo"))
    assert res.returncode == 0, res.stderr
    ds = load_dataset(tmp_path / "yolo" / "data.yaml", "train")
    assert len(ds) == 3 and ds.names == NAMES[1:] and len(ds.instances(0)) == 2
    for args in (("eval", "--model", str(YOLO26_WEIGHTS), "--data", str(tmp_path / "missing")),
                 ("convert", str(data), "--out", str(tmp_path / "x"), "--to", "voc"),
                 ("eval", "--model", str(YOLO26_WEIGHTS), "--data", str(data)),  # red/green are not COCO classes
                 ("train", "--data", str(data), "--out", "/proc/rtseg/m.pt"),  # fails before training, not after
                 ("train", "--data", str(data), "--out", str(tmp_path / "m.pt"), "--scale", "0.5")):
        bad = run_cli(*args)
        assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1, bad.stderr
        assert bad.stderr.startswith("rtseg: error:")
