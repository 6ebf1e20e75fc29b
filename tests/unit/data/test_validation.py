"""Labelled data is checked as it is read: bad entries end in one line naming the file (and line), a few bad
ones among many are left out with one warning that counts them (rtseg/data/validation.py, datasets.py)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import cv2
import numpy as np
import pytest

from rtseg.data.datasets import load_dataset
from rtseg.data.validation import Problems, coco_segmentation_problem, parse_yolo_label
from rtseg.errors import ConfigError

H, W = 48, 64
SQUARE = "0 0.1 0.1 0.5 0.1 0.5 0.5 0.1 0.5"  # class 0, a square in normalised coordinates


def image(path: Path, hw: tuple[int, int] = (H, W)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.full((*hw, 3), 90, np.uint8))
    return path


def yolo_set(root: Path, labels: list[str], names: str = "[cat, dog]") -> Path:
    """One image per label text in ``labels`` (images/val/NNN.png, labels/val/NNN.txt)."""
    for i, text in enumerate(labels):
        image(root / "images" / "val" / f"{i:03d}.png")
        (root / "labels" / "val").mkdir(parents=True, exist_ok=True)
        (root / "labels" / "val" / f"{i:03d}.txt").write_text(text)
    (root / "data.yaml").write_text(f"path: {root}\nval: images/val\nnames: {names}\n")
    return root / "data.yaml"


def coco_set(root: Path, annotations: list, images: list | None = None, categories: list | None = None) -> Path:
    image(root / "a.png")
    spec = {"images": images if images is not None else [{"id": 1, "file_name": "a.png", "height": H, "width": W}],
            "annotations": annotations,
            "categories": categories if categories is not None else [{"id": 1, "name": "cat"}]}
    (root / "i.json").write_text(json.dumps(spec))
    return root / "i.json"


def mask_set(root: Path, masks: list[np.ndarray], classes: str = "background\ncat\n") -> Path:
    for i, mask in enumerate(masks):
        image(root / "images" / f"{i:03d}.jpg")
        (root / "masks").mkdir(exist_ok=True)
        cv2.imwrite(str(root / "masks" / f"{i:03d}.png"), mask)
    (root / "classes.txt").write_text(classes)
    return root


def ids(value: int = 1, dtype: type = np.uint8) -> np.ndarray:
    mask = np.zeros((H, W), dtype)
    mask[10:30, 10:40] = value
    return mask


@pytest.mark.parametrize(("line", "why"), [
    ("0 0.1 nan 0.5 0.1 0.5 0.5", "'nan' is not a finite number"),
    ("0 0.1 0.1 inf 0.1 0.5 0.5", "'inf' is not a finite number"),
    ("0 0.1 0.1 0.5 zz 0.5 0.5", "'zz' is not a number"),
    ("0 0.1 0.1 0.5 0.1 0.5 0.5 0.3", "7 coordinates"),
    ("0 0.1 0.1 0.5", "3 coordinates"),
    ("0 0.1 0.1 1.7 0.1 0.5 0.5", "1.7 is outside 0..1"),
    ("0 -3 0.1 0.5 0.1 0.5 0.5", "-3 is outside 0..1"),
    ("7 0.1 0.1 0.5 0.1 0.5 0.5", "class id 7, but the data set names 2 classes"),
    ("-1 0.1 0.1 0.5 0.1 0.5 0.5", "class id -1"),
    ("0.5 0.1 0.1 0.5 0.1 0.5 0.5", "not a whole number"),
])
def test_bad_yolo_lines_name_file_and_line(tmp_path: Path, line: str, why: str) -> None:
    label = tmp_path / "a.txt"
    label.write_text(f"{SQUARE}\n\n{line}\n")
    problems = Problems(tmp_path, "label lines")
    objects, lines = parse_yolo_label(label, 2, problems)
    assert lines == 2 and len(objects) == 1
    assert problems.found == [f"{label}:3: {problems.found[0].split(': ', 1)[1]}"]
    assert why in problems.found[0]


def test_good_yolo_lines_parse_and_clip_rounding(tmp_path: Path) -> None:
    label = tmp_path / "a.txt"
    label.write_text("1 0 0 1.004 0 1 1\n0 0.5 0.5 0.2 0.2\n")  # a polygon a hair outside; a box (passed over)
    problems = Problems(tmp_path, "label lines")
    ((cls, poly),), lines = parse_yolo_label(label, 2, problems)
    assert not problems.found and lines == 2 and cls == 1 and poly.max() == 1.0 and poly.shape == (3, 2)


def test_one_bad_yolo_line_of_few_is_an_error_naming_it(tmp_path: Path) -> None:
    data = yolo_set(tmp_path, [SQUARE, "0 0.1 nan 0.5 0.1 0.5 0.5"])
    with pytest.raises(ConfigError, match=r"labels/val/001\.txt:1: coordinate 'nan' is not a finite number"):
        load_dataset(data, "val")


def test_a_few_bad_yolo_lines_among_many_are_left_out_with_a_count(tmp_path: Path,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    data = yolo_set(tmp_path, [f"{SQUARE}\n" * 10] * 4 + ["0 0.1 0.1 9 0.1 0.5 0.5\n" + f"{SQUARE}\n" * 9])
    with caplog.at_level(logging.WARNING, logger="rtseg"):
        ds = load_dataset(data, "val")
    (record,) = caplog.records
    assert "left out 1 bad label lines of 50" in record.getMessage() and "004.txt:1" in record.getMessage()
    assert sum(len(ds.instances(i)) for i in range(len(ds))) == 49


def test_binary_yolo_label_file_is_refused(tmp_path: Path) -> None:
    data = yolo_set(tmp_path, [SQUARE])
    (tmp_path / "labels" / "val" / "000.txt").write_bytes(b"\xff\xfe\x00\x81garbage")
    with pytest.raises(ConfigError, match=r"000\.txt: not a readable text file"):
        load_dataset(data, "val")


@pytest.mark.parametrize(("yaml_text", "why"), [
    ("val: images/val\nnames: []\n", "class list is empty"),
    ("val: images/val\n", "no names"),
    ("val: images/val\nnames: 5\n", "must be a list"),
    ("val: images/val\nnames: {a: x, b: y}\n", "expected ids 0, 1, 2"),
    ("val: 7\nnames: [a]\n", "split 'val' is 7"),
    ("val: [images/val\nnames: [a]\n", r"data\.yaml:\d+: not valid YAML"),
    ("- just\n- a list\n", "expected a mapping"),
])
def test_bad_data_yaml(tmp_path: Path, yaml_text: str, why: str) -> None:
    data = yolo_set(tmp_path, [SQUARE])
    data.write_text(yaml_text)
    with pytest.raises(ConfigError, match=why):
        load_dataset(data, "val")


def test_yolo_image_list_with_missing_images(tmp_path: Path) -> None:
    data = yolo_set(tmp_path, [SQUARE])
    (tmp_path / "val.txt").write_text("images/val/000.png\nimages/val/gone.png\n")
    data.write_text(f"path: {tmp_path}\nval: val.txt\nnames: [cat]\n")
    with pytest.raises(ConfigError, match=r"val\.txt:2: image .*gone\.png not found"):
        load_dataset(data, "val")


POLY = [[10, 10, 40, 10, 40, 30, 10, 30]]


@pytest.mark.parametrize(("seg", "why"), [
    (POLY, None),
    ([[10, 10, 40, 10, 40, 30, 10, 30.0 + W]], "leaves the 64x48 image"),
    ([[10, 10, "x", 10, 40, 30]], "not a list of finite numbers"),
    ([[10, 10, float("nan"), 10, 40, 30]], "not a list of finite numbers"),
    ([[10, 10, 40, 10, 40]], "5 coordinates"),
    ([], "empty list"),
    ("garbage", "a str, neither polygons"),
    ({"size": [H, W], "counts": [H * W]}, None),
    ({"size": [H, W], "counts": [5, 5]}, f"cover 10 pixels, the image has {H * W}"),
    ({"size": [10, 10], "counts": "abc"}, "size 10x10"),
    ({"counts": "abc"}, "no [height, width] size"),
])
def test_coco_segmentation_checks(seg: object, why: str | None) -> None:
    problem = coco_segmentation_problem(seg, (H, W))
    assert problem is None if why is None else why in problem


@pytest.mark.parametrize(("case", "why"), [
    ("truncated", r"i\.json:1: not valid JSON"),
    ("not-object", "expected a COCO instances file"),
    ("images-str", "images must be a list of objects"),
    ("no-categories", "no categories"),
    ("category-no-name", r"categories\[0\] needs an id and a name"),
    ("missing-image-id", r"annotations\[0\] \(id 5\): image_id 99 is not an id in images"),
    ("unknown-category", "category_id 3 is not an id in categories"),
    ("garbage-seg", "segmentation is a str"),
    ("far-outside", "leaves the 64x48 image"),
    ("image-not-found", r"images\[0\]: image gone\.png not found"),
    ("image-size", r"a\.png is 64x48 px, the file says 640x480"),
    ("image-fields", "needs id, file_name, and height and width"),
])
def test_bad_coco_files(tmp_path: Path, case: str, why: str) -> None:
    ann = {"id": 5, "image_id": 1, "category_id": 1, "segmentation": POLY}
    img = {"id": 1, "file_name": "a.png", "height": H, "width": W}
    kwargs: dict = {"annotations": [ann]}
    if case == "missing-image-id":
        ann["image_id"] = 99
    elif case == "unknown-category":
        ann["category_id"] = 3
    elif case == "garbage-seg":
        ann["segmentation"] = "garbage"
    elif case == "far-outside":
        ann["segmentation"] = [[5000, 10, 5040, 10, 5040, 30]]
    elif case == "no-categories":
        kwargs["categories"] = []
    elif case == "category-no-name":
        kwargs["categories"] = [{"id": 1}]
    elif case in ("image-not-found", "image-size", "image-fields"):
        kwargs["images"] = [{**img, **{"image-not-found": {"file_name": "gone.png"},
                                       "image-size": {"height": 480, "width": 640},
                                       "image-fields": {"height": "big"}}[case]}]
    path = coco_set(tmp_path, **kwargs)
    if case == "truncated":
        path.write_text(path.read_text()[:40])
    elif case == "not-object":
        path.write_text("[1, 2]")
    elif case == "images-str":
        path.write_text(json.dumps({"images": "a.png", "categories": [{"id": 1, "name": "cat"}]}))
    with pytest.raises(ConfigError, match=why):
        load_dataset(path)


def test_a_few_bad_coco_annotations_among_many_are_left_out(tmp_path: Path,
                                                            caplog: pytest.LogCaptureFixture) -> None:
    anns = [{"id": k, "image_id": 1, "category_id": 1, "segmentation": POLY} for k in range(30)]
    anns[7]["segmentation"] = [[1, 2, "x", 4, 5, 6]]
    with caplog.at_level(logging.WARNING, logger="rtseg"):
        ds = load_dataset(coco_set(tmp_path, anns))
    assert "left out 1 bad annotations of 30" in caplog.text and "annotations[7]" in caplog.text
    assert len(ds.instances(0)) == 29


@pytest.mark.parametrize(("case", "why"), [
    ("rgb", "a colour mask"),
    ("ids-beyond", r"class id 5 in the mask, but the class list names 2 classes \(ids 0-1; 255 = ignore\)"),
    ("16-bit", "class id 300 in the mask"),
])
def test_bad_mask_pngs_fail_when_read(tmp_path: Path, case: str, why: str) -> None:
    mask = {"rgb": np.dstack([ids(1), ids(2), ids(1)]), "ids-beyond": ids(5), "16-bit": ids(300, np.uint16)}[case]
    ds = load_dataset(mask_set(tmp_path, [mask]))
    for read in (ds.semantic, ds.instances):
        with pytest.raises(ConfigError, match=rf"masks/000\.png: {why}"):
            read(0)


def test_grey_saved_as_rgb_and_palette_masks_read_as_ids(tmp_path: Path) -> None:
    from PIL import Image

    ds = load_dataset(mask_set(tmp_path, [np.dstack([ids(1)] * 3), ids(1)]))
    palette = Image.fromarray(ids(1), "P")
    palette.putpalette([0, 0, 0, 128, 0, 0] + [0] * 762)  # VOC: class 1 drawn dark red (blue channel 0)
    palette.save(tmp_path / "masks" / "001.png")
    assert (ds.semantic(0) == ids(1)).all() and (ds.semantic(1) == ids(1)).all()


@pytest.mark.parametrize(("case", "why"), [
    ("size", r"masks/000\.png: the mask is 32x24 px, its image 000\.jpg 64x48"),
    ("no-image", r"masks/000\.png: no image 000\.\* in"),
    ("not-png", r"masks/000\.png: not a PNG"),
    ("empty-classes", r"classes\.txt: the class list is empty"),
    ("classes-json", r"classes\.json: class names must be a list"),
    ("classes-json-syntax", r"classes\.json:1: not valid JSON"),
    ("trimap", r"value 7 in a trimap"),
])
def test_bad_mask_png_folders(tmp_path: Path, case: str, why: str) -> None:
    root = mask_set(tmp_path, [ids(1)], classes="cat\n" if case == "trimap" else "background\ncat\n")
    if case == "size":
        cv2.imwrite(str(root / "masks" / "000.png"), ids(1)[::2, ::2])
    elif case == "no-image":
        (root / "images" / "000.jpg").unlink()
    elif case == "not-png":
        (root / "masks" / "000.png").write_bytes(b"GIF89a" + bytes(40))
    elif case == "empty-classes":
        (root / "classes.txt").write_text("\n  \n")
    elif case == "classes-json":
        (root / "classes.json").write_text('["cat", {"deep": [1, 2]}]')
    elif case == "classes-json-syntax":
        (root / "classes.json").write_text('["background", "cat"')
    elif case == "trimap":
        cv2.imwrite(str(root / "masks" / "000.png"), ids(6) + 1)
    with pytest.raises(ConfigError, match=why):
        ds = load_dataset(root, labels="trimap" if case == "trimap" else "semantic")
        ds.semantic(0)


def test_a_few_unpaired_masks_among_many_are_left_out(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    root = mask_set(tmp_path, [ids(1)] * 20)
    cv2.imwrite(str(root / "masks" / "orphan.png"), ids(1))
    with caplog.at_level(logging.WARNING, logger="rtseg"):
        ds = load_dataset(root)
    assert len(ds) == 20 and "left out 1 bad image/mask pairs of 21" in caplog.text and "orphan.png" in caplog.text


def test_problems_settle_at_the_bad_fraction() -> None:
    problems = Problems("set", "lines")
    problems.add("a.txt:1", "bad")
    problems.settle(20)  # 1 of 20: left out with a warning
    problems.add("a.txt:2", "worse")
    with pytest.raises(ConfigError, match=r"^a\.txt:1: bad \(and 1 more bad lines of 20\)$"):
        problems.settle(20)
