"""The default instance model's wider data set: held-out rule, masks to instances, class remapping, splits."""

from __future__ import annotations

import re
from pathlib import Path

import cv2
import numpy as np
import pytest

from rtseg.data.default_instance import (
    EXTRA_IDS,
    Summary,
    add_extra,
    add_people,
    build_default_instance_set,
    is_people_held_out,
    is_val,
    people_instances,
    polygons_mask,
    remap_lines,
    unlabelled_regions,
)
from rtseg.data.shared_sets import COCO_IDS
from tests.support import DATA, ROOT

SQUARE = "0.1 0.1 0.4 0.1 0.4 0.4 0.1 0.4"


def two_people_mask() -> np.ndarray:
    mask = np.zeros((100, 120), np.uint8)
    mask[10:60, 10:30] = 255  # person A
    mask[20:90, 60:80] = 255  # person B, apart from A
    mask[95:97, 110:112] = 255  # a 4-px speck
    return mask


def write_people(root: Path, numbers: range) -> Path:
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for n in numbers:
        cv2.imwrite(str(root / "images" / f"hsd_{n:03d}.jpg"), np.full((100, 120, 3), 90, np.uint8))
        cv2.imwrite(str(root / "masks" / f"hsd_{n:03d}.png"), two_people_mask())
    return root


def stems(folder: Path) -> set[str]:
    """Image names in a split folder, repeats (``_rK``) folded into their original."""
    return {re.sub(r"_r\d+$", "", p.stem) for p in folder.glob("*")} if folder.is_dir() else set()


@pytest.mark.parametrize(("stem", "held"), [("hsd_003", True), ("hsd_300", True), ("hsd_001", False),
                                             ("hsd_289", False), ("pf_FudanPed00003", False)])
def test_every_third_person_image_is_held_out(stem: str, held: bool) -> None:
    assert is_people_held_out(stem) is held


def test_people_in_train_and_val_are_never_held_out(tmp_path: Path) -> None:
    people = write_people(tmp_path / "people", range(1, 121))
    add_people(people, tmp_path / "out", Summary())
    out = tmp_path / "out" / "images"
    trainval = stems(out / "train") | stems(out / "val")
    assert trainval and all(int(s[4:]) % 3 for s in trainval)
    assert stems(out / "test_people") == {f"hsd_{n:03d}" for n in range(3, 121, 3)}
    assert not stems(out / "train") & stems(out / "val")
    assert 0 < len(stems(out / "val")) < len(stems(out / "train")) / 3  # about 10 % validation


def test_binary_mask_becomes_one_instance_per_region_specks_dropped() -> None:
    instances = people_instances(two_people_mask())
    assert [c for c, _ in instances] == [0, 0]
    assert sorted(int(m.sum()) for _, m in instances) == [50 * 20, 70 * 20]


def test_touching_people_merge_into_one_instance() -> None:
    mask = two_people_mask()
    mask[30:40, 30:60] = 255  # an arm joins A and B
    assert len(people_instances(mask)) == 1


def test_extra_classes_remapped_and_others_dropped() -> None:
    lines = [f"0 {SQUARE}", f"1 {SQUARE}", f"3 {SQUARE}", f"2 {SQUARE}", f"7 {SQUARE}", ""]
    assert [line.split()[0] for line in remap_lines(lines, EXTRA_IDS)] == ["0", "1", "2"]
    assert [line.split()[0] for line in remap_lines([f"15 {SQUARE}", f"2 {SQUARE}", f"16 {SQUARE}"], COCO_IDS)] == [
        "1", "2"]
    assert remap_lines(lines, EXTRA_IDS)[0] == f"0 {SQUARE}"


def test_extra_set_writes_only_person_cat_dog(tmp_path: Path) -> None:
    root = tmp_path / "extra" / "cars"
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    for i in range(20):
        cv2.imwrite(str(root / "images" / f"im{i}.jpg"), np.zeros((40, 40, 3), np.uint8))
        (root / "labels" / f"im{i}.txt").write_text(f"3 {SQUARE}\n1 {SQUARE}\n5 {SQUARE}\n")
    summary = Summary()
    add_extra(root, "cars", tmp_path / "out", summary)
    labels = list((tmp_path / "out" / "labels").rglob("*.txt"))
    assert len(labels) == 20 and all(p.read_text() == f"1 {SQUARE}\n" for p in labels)
    assert summary.per_class("train")["cat"] + summary.per_class("val")["cat"] == 20


def test_val_split_is_stable_and_about_ten_percent() -> None:
    names = [f"img{i}" for i in range(2000)]
    val = [n for n in names if is_val("src", n)]
    assert 150 < len(val) < 250
    assert val == [n for n in names if is_val("src", n)]


def test_unlabelled_detections_are_greyed_labelled_ones_are_not() -> None:
    labelled = polygons_mask([f"0 {SQUARE}"], (100, 100))
    on_label = np.zeros((100, 100), bool)
    on_label[12:38, 12:38] = True
    elsewhere = np.zeros((100, 100), bool)
    elsewhere[60:90, 60:80] = True
    grey = unlabelled_regions([(np.array([10, 10, 40, 40], np.float32), on_label),
                               (np.array([58, 58, 82, 92], np.float32), elsewhere)], labelled)
    assert grey[70, 70] and grey[59, 59] and not grey[20, 20]


def test_data_set_is_never_built_inside_the_repository() -> None:
    with pytest.raises(ValueError, match="outside the repository"):
        build_default_instance_set(ROOT / "build" / "x", DATA, train=False)


@pytest.mark.data
def test_real_sets_splits_are_disjoint(tmp_path: Path) -> None:
    sources = ("people", "pennfudan", "coco_tiny", "drone_person", "porong_person")  # the fast ones (~5 s)
    yaml_path, summary = build_default_instance_set(tmp_path / "set", DATA, sources=sources)
    images = tmp_path / "set" / "images"
    train, val = stems(images / "train"), stems(images / "val")
    tests = stems(images / "test_people") | stems(images / "test_pennfudan")
    assert train and val and tests
    assert not train & val and not train & tests and not val & tests
    # the held-out people and Penn-Fudan images are not in train/val under any name either
    used = {p.resolve() for sub in ("train", "val") for p in (images / sub).glob("*")}
    held = {p.resolve() for sub in ("test_people", "test_pennfudan") for p in (images / sub).glob("*")}
    assert not used & held
    assert not [s for s in train | val if s.startswith("hsd_") and int(s[4:]) % 3 == 0]
    assert summary.images["people", "test_people"] == 97
    assert {s for (s, split) in summary.images if split == "val"} == set(sources)  # every source has a val part
    assert "val: images/val" in yaml_path.read_text()
