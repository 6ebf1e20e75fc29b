"""The real data sets in ``../shared/data`` as YOLO-seg folders (for Ultralytics' trainer and ``rtseg eval``).

The default instance model's classes are ``person, cat, dog``:

Held-out images are never used for training or to pick a checkpoint.

* **Oxford-IIIT Pet** (``pets/``): one instance per image, the pet = trimap pet + border pixels; the class
  from the original list files (species 1 = cat, 2 = dog). Splits: the original ``trainval`` / ``test``.
* **Penn-Fudan** (``pennfudan/``): person instances from the instance PNGs. Split: every 5th image
  (sorted by name) is held out.
* **coco128-seg**: the person, cat and dog instances of all 128 images (training only: it has no
  held-out part; the other 77 classes are left unlabelled).

Nothing is copied: images are symlinked into the output folder, labels are written there.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import yaml

from rtseg.data.convert import (
    TRIMAP_BACKGROUND,
    instances_from_instance_png,
    read_label_png,
    write_yolo_seg,
    yolo_seg_lines,
)

NAMES = ("person", "cat", "dog")
COCO_IDS = {0: 0, 15: 1, 16: 2}  # coco class id -> ours


def shared_data() -> Path:
    """``../shared/data`` beside the repository (where CI and the tests find it)."""
    return Path(__file__).resolve().parents[3] / "shared" / "data"


def pets_split(root: Path, split: str) -> list[tuple[str, int]]:
    """(image name, class id: 1 cat / 2 dog) of an Oxford-IIIT Pet split file (``trainval`` or ``test``)."""
    out = []
    for line in (root / "splits" / f"{split}.txt").read_text().splitlines():
        parts = line.split()
        if len(parts) >= 3 and (root / "images" / f"{parts[0]}.jpg").exists():
            out.append((parts[0], 1 if parts[2] == "1" else 2))
    return out


def add_pets(root: Path, out: Path, split: str, out_split: str) -> int:
    n = 0
    for name, cls in pets_split(root, split):
        trimap = read_label_png(root / "trimaps" / f"{name}.png")
        lines = yolo_seg_lines([(cls, trimap != TRIMAP_BACKGROUND)], trimap.shape)
        write_yolo_seg(root / "images" / f"{name}.jpg", lines, out, out_split, name=f"pets_{name}")
        n += 1
    return n


def pennfudan_split(root: Path, split: str) -> list[Path]:
    images = sorted((root / "images").glob("*.jpg"))
    held = {p for i, p in enumerate(images) if i % 5 == 4}
    return [p for p in images if (p in held) == (split == "test")]


def add_pennfudan(root: Path, out: Path, split: str, out_split: str) -> int:
    images = pennfudan_split(root, split)
    for image in images:
        ids = read_label_png(root / "masks" / f"{image.stem}.png")
        lines = yolo_seg_lines([(0, m) for m in instances_from_instance_png(ids)], ids.shape)
        write_yolo_seg(image, lines, out, out_split, name=f"pf_{image.stem}")
    return len(images)


def add_coco128(root: Path, out: Path, out_split: str) -> int:
    images = sorted((root / "images" / "train2017").glob("*.jpg"))
    for image in images:
        label = root / "labels" / "train2017" / f"{image.stem}.txt"
        lines = []
        for line in label.read_text().splitlines() if label.exists() else []:
            cls, *rest = line.split()
            if int(cls) in COCO_IDS:
                lines.append(" ".join([str(COCO_IDS[int(cls)]), *rest]))
        write_yolo_seg(image, lines, out, out_split, name=f"coco_{image.stem}")
    return len(images)


HELD_OUT = {"test_pets": "images/test_pets", "test_pennfudan": "images/test_pennfudan"}


def write_data_yaml(out: Path, names: tuple[str, ...] = NAMES, splits: dict | None = None) -> Path:
    splits = splits or {"train": "images/train", "val": list(HELD_OUT.values()), **HELD_OUT}
    path = out / "data.yaml"
    path.write_text(yaml.safe_dump({"path": str(out.resolve()), **splits, "names": dict(enumerate(names))},
                                   sort_keys=False))
    return path


def build_instance_sets(out: Path, data: Path | None = None, *, train: bool = True, test: bool = True) -> Path:
    """The default instance model's training (``images/train``) and held-out (``images/test``) sets.

    Returns the ``data.yaml`` path. Held-out splits: ``test_pets`` (the pets test split: cat, dog),
    ``test_pennfudan`` (every 5th Penn-Fudan image: person) and ``val``, both together.
    """
    data = data or shared_data()
    out.mkdir(parents=True, exist_ok=True)
    if train:
        add_pets(data / "pets", out, "trainval", "train")
        add_pennfudan(data / "pennfudan", out, "train", "train")
        add_coco128(data / "coco128-seg", out, "train")
    if test:
        add_pets(data / "pets", out, "test", "test_pets")
        add_pennfudan(data / "pennfudan", out, "test", "test_pennfudan")
    return write_data_yaml(out)


def pets_semantic(root: Path, split: str, *, border: str = "ignore") -> list[tuple[Path, np.ndarray]]:
    """(image path, label map 0 background / 1 pet / 255 border) pairs of an Oxford-IIIT Pet split."""
    from rtseg.data.convert import trimap_to_labels

    return [(root / "images" / f"{name}.jpg",
             trimap_to_labels(read_label_png(root / "trimaps" / f"{name}.png"), border=border))
            for name, _ in pets_split(root, split)]


def write_mask_png_set(pairs: list[tuple[Path, np.ndarray]], out: Path, names: tuple[str, ...]) -> Path:
    """A mask-PNG folder (``images/``, ``masks/``, ``classes.txt``) from (image, label map) pairs."""
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "masks").mkdir(parents=True, exist_ok=True)
    for image, labels in pairs:
        target = out / "images" / image.name
        if not target.exists():
            target.symlink_to(image.resolve())
        cv2.imwrite(str(out / "masks" / f"{image.stem}.png"), labels)
    (out / "classes.txt").write_text("".join(f"{n}\n" for n in names))
    return out


def pets_trimap_folder(out: Path, split: str = "test", data: Path | None = None) -> Path:
    """An Oxford-IIIT Pet split as a mask-PNG folder of links (read it with ``labels="trimap"``)."""
    root = (data or shared_data()) / "pets"
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "masks").mkdir(parents=True, exist_ok=True)
    for name, _ in pets_split(root, split):
        for sub, src, suffix in (("images", "images", ".jpg"), ("masks", "trimaps", ".png")):
            target = out / sub / f"{name}{suffix}"
            if not target.exists():
                target.symlink_to((root / src / f"{name}{suffix}").resolve())
    (out / "classes.txt").write_text("pet\n")
    return out


def aerial_splits(data: Path | None = None) -> tuple[list, list, list]:
    """(train, val, test) (image path, label map) pairs of the aerial land-cover set, split by whole tiles.

    Test: tiles 3 and 5 (:func:`rtseg.data.aerial.split_aerial`, seed 0); validation (picks the best
    epoch): one more tile (seed 1). "unlabeled" pixels become 255 (ignored); classes are building, land,
    road, vegetation, water.
    """
    from rtseg.data.aerial import UNLABELED, load_aerial, split_aerial

    pairs = [(p, np.where(lab == UNLABELED, 255, lab).astype(np.uint8))
             for p, lab in load_aerial((data or shared_data()) / "aerial" / "dubai_landcover_hitl")]
    trainval, test = split_aerial(pairs, 0.25, 0)
    train, val = split_aerial(trainval, 0.17, 1)
    return train, val, test


AERIAL_NAMES = ("building", "land", "road", "vegetation", "water")
HELD_OUT_SETS = ("instance-pets", "instance-pennfudan", "pets", "aerial")


def held_out_eval_args(case: str, out: Path, data: Path | None = None) -> list[str]:
    """``rtseg eval`` data arguments for a default model's held-out set (one of :data:`HELD_OUT_SETS`),
    built under ``out`` from links into ``../shared/data``."""
    data = data or shared_data()
    if case in ("instance-pets", "instance-pennfudan"):
        split = "test_pets" if case == "instance-pets" else "test_pennfudan"
        return ["--data", str(build_instance_sets(out, data, train=False)), "--split", split]
    if case == "pets":
        return ["--data", str(pets_trimap_folder(out, "test", data)), "--labels", "trimap"]
    if case == "aerial":
        return ["--data", str(write_mask_png_set(aerial_splits(data)[2], out, AERIAL_NAMES))]
    raise ValueError(f"unknown held-out set {case!r}; expected one of {HELD_OUT_SETS}")
