"""Data set readers (mask-PNG, YOLO-seg, COCO JSON) and label converters agree on the same generated scene."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from pycocotools import mask as mask_utils

from rtseg.data.convert import (
    IGNORE,
    dataset_to_mask_png,
    dataset_to_yolo_seg,
    instances_from_instance_png,
    mask_to_polygon,
    trimap_to_labels,
    yolo_seg_lines,
)
from rtseg.data.datasets import load_dataset
from rtseg.errors import ConfigError

H, W = 120, 160
NAMES = ("cat", "dog")


def scene(seed: int) -> tuple[np.ndarray, list[tuple[int, np.ndarray]]]:
    """An image with a rectangle (class 0) and an ellipse (class 1) at seeded positions."""
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 60, (H, W, 3), dtype=np.uint8)
    rect = np.zeros((H, W), np.uint8)
    x, y = (int(v) for v in rng.integers(5, 60, 2))
    rect[y : y + 40, x : x + 50] = 1
    ell = np.zeros((H, W), np.uint8)
    cv2.ellipse(ell, (110, 70), (int(rng.integers(15, 30)), 20), 30, 0, 360, 1, -1)
    ell[rect > 0] = 0  # the rectangle occludes the ellipse
    image[rect > 0] = (200, 50, 50)
    image[ell > 0] = (50, 200, 50)
    return image, [(0, rect.astype(bool)), (1, ell.astype(bool))]


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


@pytest.fixture()
def scenes(tmp_path: Path) -> list[tuple[Path, list]]:
    out = []
    for i in range(3):
        image, objects = scene(i)
        path = tmp_path / "src" / f"img{i}.png"
        path.parent.mkdir(exist_ok=True)
        cv2.imwrite(str(path), image)
        out.append((path, objects))
    return out


def write_mask_png(root: Path, scenes: list) -> Path:
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for path, objects in scenes:
        (root / "images" / path.name).write_bytes(path.read_bytes())
        labels = np.zeros((H, W), np.uint8)
        for cls, mask in objects:
            labels[mask] = cls + 1
        labels[0, :] = IGNORE
        cv2.imwrite(str(root / "masks" / f"{path.stem}.png"), labels)
    (root / "classes.txt").write_text("background\ncat\ndog\n")
    return root


def write_yolo(root: Path, scenes: list) -> Path:
    for path, objects in scenes:
        (root / "images" / "val").mkdir(parents=True, exist_ok=True)
        (root / "labels" / "val").mkdir(parents=True, exist_ok=True)
        (root / "images" / "val" / path.name).write_bytes(path.read_bytes())
        (root / "labels" / "val" / f"{path.stem}.txt").write_text("\n".join(yolo_seg_lines(objects, (H, W))))
    (root / "data.yaml").write_text(f"path: {root}\nval: images/val\nnames:\n  0: cat\n  1: dog\n")
    return root


def write_coco(root: Path, scenes: list) -> Path:
    images, anns = [], []
    for i, (path, objects) in enumerate(scenes):
        images.append({"id": 10 + i, "file_name": path.name, "height": H, "width": W})
        for cls, mask in objects:
            rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
            rle["counts"] = rle["counts"].decode()
            anns.append({"id": len(anns) + 1, "image_id": 10 + i, "category_id": [17, 18][cls], "segmentation": rle,
                         "area": int(mask.sum()), "bbox": mask_utils.toBbox(rle).tolist(), "iscrowd": 0})
    spec = {"images": images, "annotations": anns,
            "categories": [{"id": 18, "name": "dog"}, {"id": 17, "name": "cat"}]}
    path = root / "instances.json"
    root.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(spec))
    return path


@pytest.mark.parametrize("fmt", ["mask-png", "yolo-seg", "coco"])
def test_every_format_reads_the_same_objects(fmt: str, scenes: list, tmp_path: Path) -> None:
    writer = {"mask-png": write_mask_png, "yolo-seg": write_yolo, "coco": write_coco}[fmt]
    data = writer(tmp_path / fmt, scenes)
    ds = load_dataset(data, "val", image_dir=scenes[0][0].parent)
    assert ds.kind == fmt and len(ds) == 3
    assert ds.names == NAMES and ds.semantic_names == ("background", *NAMES)
    for i, (_, objects) in enumerate(scenes):
        got = ds.instances(i)
        assert [c for c, _ in got] == [c for c, _ in objects]
        for (_, want), (_, mask) in zip(objects, got):
            assert iou(want, mask) > (0.999 if fmt != "yolo-seg" else 0.93)  # polygons lose a little
        sem = ds.semantic(i)
        want_sem = np.zeros((H, W), np.uint8)
        for cls, mask in objects:
            want_sem[mask] = cls + 1
        valid = sem != IGNORE
        assert (sem[valid] == want_sem[valid]).mean() > 0.98
        assert ds.image(i).shape == (H, W, 3)


def test_converters_round_trip_through_yolo_seg_and_mask_png(scenes: list, tmp_path: Path) -> None:
    ds = load_dataset(write_coco(tmp_path / "coco", scenes), image_dir=scenes[0][0].parent)
    assert dataset_to_yolo_seg(ds, tmp_path / "yolo", "val") == 6
    (tmp_path / "yolo" / "data.yaml").write_text("val: images/val\nnames: [cat, dog]\n")
    back = load_dataset(tmp_path / "yolo" / "data.yaml", "val")
    dataset_to_mask_png(back, tmp_path / "png")
    png = load_dataset(tmp_path / "png")
    for i, (_, objects) in enumerate(scenes):
        for (_, want), (_, mask) in zip(objects, png.instances(i)):
            assert iou(want, mask) > 0.93


def test_trimap_and_instance_png_label_kinds(tmp_path: Path) -> None:
    trimap = np.full((40, 50), 2, np.uint8)
    trimap[10:30, 10:40] = 3
    trimap[12:28, 12:38] = 1
    labels = trimap_to_labels(trimap)
    assert labels[20, 20] == 1 and labels[0, 0] == 0 and labels[10, 10] == IGNORE
    assert trimap_to_labels(trimap, border="pet")[10, 10] == 1
    with pytest.raises(ValueError, match="not a trimap"):
        trimap_to_labels(np.zeros((4, 4), np.uint8))
    ids = np.zeros((40, 50), np.uint8)
    ids[5:15, 5:15], ids[20:30, 30:45] = 1, 2
    masks = instances_from_instance_png(ids)
    assert [int(m.sum()) for m in masks] == [100, 150]
    root = tmp_path / "trimaps"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    cv2.imwrite(str(root / "images" / "a.jpg"), np.zeros((40, 50, 3), np.uint8))
    cv2.imwrite(str(root / "masks" / "a.png"), trimap)
    (root / "classes.txt").write_text("pet\n")
    ds = load_dataset(root, labels="trimap")
    assert ds.names == ("pet",) and ds.semantic_names == ("background", "pet")
    ((cls, mask),) = ds.instances(0)
    assert cls == 0 and mask.sum() == 20 * 30  # pet + border
    assert (ds.semantic(0) == labels).all()


def test_occluded_object_becomes_one_polygon() -> None:
    mask = np.zeros((60, 80), bool)
    mask[10:50, 5:30] = True
    mask[10:50, 45:75] = True  # two pieces of one object
    poly = mask_to_polygon(mask)
    filled = np.zeros((60, 80), np.uint8)
    cv2.fillPoly(filled, [np.round(poly).astype(np.int32)], 1)
    assert iou(filled.astype(bool), mask) > 0.9


@pytest.mark.parametrize("case", ["missing", "no-classes", "bad-split"])
def test_bad_data_sets_raise_config_error(case: str, tmp_path: Path, scenes: list) -> None:
    if case == "missing":
        path = tmp_path / "nope"
    elif case == "no-classes":
        path = write_mask_png(tmp_path / "d", scenes)
        (path / "classes.txt").unlink()
    else:
        path = write_yolo(tmp_path / "y", scenes) / "data.yaml"
    with pytest.raises(ConfigError):
        load_dataset(path, "train" if case == "bad-split" else "val")


def test_split_every_holds_out_every_kth_image(scenes: list, tmp_path: Path) -> None:
    ds = load_dataset(write_mask_png(tmp_path / "d", scenes))
    train, val = ds.split_every(2)
    assert [p.name for p in val.images] == ["img0.png", "img2.png"] and [p.name for p in train.images] == ["img1.png"]
    assert (train.semantic(0) == ds.semantic(1)).all() and val.names == ds.names
