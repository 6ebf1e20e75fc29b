"""Labelled data sets for ``rtseg eval`` and ``rtseg train``: YOLO-seg, COCO JSON and mask-PNG folders.

Every format answers two questions per image: its semantic label map (``(H, W)`` uint8, class ids,
255 = ignore) and its instances (class id + binary mask each). Formats:

* **mask-PNG folder**: ``DIR/images/*.jpg|png`` and ``DIR/masks/<same stem>.png`` (pixel = class id,
  255 = ignore), class names one per line in ``DIR/classes.txt`` (or a JSON list in ``classes.json``).
  A split is a sub-folder of both (``images/val``, ``masks/val``). Class 0 is the background when it is
  named ``background``; instances are the connected regions of every other class.
* **YOLO-seg**: a ``data.yaml`` (``path``, ``train``/``val``/``test``, ``names``) as Ultralytics reads it, or
  its folder. Semantic label maps rasterise the polygons; their class ids are shifted by one, since YOLO-seg
  has no background class: semantic names are ``("background", *names)``.
  ``labels="instance"`` reads the PNGs as instance ids (0 = background, Penn-Fudan's ``PedMasks``) and
  ``labels="trimap"`` as Oxford-IIIT Pet trimaps (1 object, 2 background, 3 border = ignored); both then
  hold the single object class that ``classes.txt`` names.
* **COCO JSON**: an instances file; images are looked up by ``file_name`` beside the JSON, in
  ``images/`` there, or in ``image_dir``. Category ids map to contiguous class ids in id order; the
  semantic names get ``background`` first, as for YOLO-seg.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import cv2
import numpy as np
import yaml
from numpy.typing import NDArray

from rtseg.data.convert import (
    TRIMAP_BACKGROUND,
    instances_from_instance_png,
    instances_from_mask_png,
    read_label_png,
    trimap_to_labels,
)
from rtseg.errors import ConfigError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
BACKGROUND = "background"


@dataclass
class Dataset:
    """A labelled image set. ``names`` are instance classes; ``semantic_names`` index label-map ids."""

    kind: str
    images: list[Path]
    names: tuple[str, ...]
    semantic_names: tuple[str, ...]
    _labels: list = field(default_factory=list, repr=False)  # per-image label reference (format specific)
    label_kind: str = "semantic"  # mask-PNG only: "semantic", "instance" or "trimap"

    def __len__(self) -> int:
        return len(self.images)

    def subset(self, indices: Sequence[int]) -> Dataset:
        """The images at ``indices`` (in that order), same classes and format."""
        return replace(self, images=[self.images[i] for i in indices], _labels=[self._labels[i] for i in indices])

    def split_every(self, k: int) -> tuple[Dataset, Dataset]:
        """(training, validation): every ``k``-th image (0, k, 2k, ...) is held out for validation."""
        held = list(range(0, len(self), k))
        return self.subset([i for i in range(len(self)) if i % k]), self.subset(held)

    def image(self, i: int) -> NDArray[np.uint8]:
        """Image ``i`` as BGR uint8."""
        image = cv2.imread(str(self.images[i]), cv2.IMREAD_COLOR)
        if image is None:
            raise ConfigError(f"cannot read image {self.images[i]}")
        return image

    def _shape(self, i: int) -> tuple[int, int]:
        ref = self._labels[i]
        if isinstance(ref, dict) and "height" in ref:
            return int(ref["height"]), int(ref["width"])
        return self.image(i).shape[:2]

    def instances(self, i: int) -> list[tuple[int, NDArray[np.bool_]]]:
        """(class id into ``names``, full-image boolean mask) of each object in image ``i``."""
        ref = self._labels[i]
        if self.kind == "mask-png":
            labels = read_label_png(ref)
            if self.label_kind == "instance":
                return [(0, m) for m in instances_from_instance_png(labels)]
            if self.label_kind == "trimap":
                return [(0, labels != TRIMAP_BACKGROUND)]
            offset = 1 if self.semantic_names[:1] == (BACKGROUND,) else 0
            return [(c - offset, m) for c, m in instances_from_mask_png(labels, background=0 if offset else -1)]
        h, w = self._shape(i)
        if self.kind == "yolo-seg":
            out = []
            for cls, poly in _read_yolo_label(ref):
                mask = np.zeros((h, w), np.uint8)
                cv2.fillPoly(mask, [np.round(poly * [w, h]).astype(np.int32)], 1)
                out.append((cls, mask.astype(bool)))
            return out
        from pycocotools import mask as mask_utils

        out = []
        for ann in ref["annotations"]:
            seg = ann["segmentation"]
            if isinstance(seg, list):
                rle = mask_utils.merge(mask_utils.frPyObjects(seg, h, w))
            elif isinstance(seg.get("counts"), list):
                rle = mask_utils.frPyObjects(seg, h, w)
            else:
                rle = seg
            out.append((ref["class_of"][ann["category_id"]], mask_utils.decode(rle).astype(bool)))
        return out

    def crowd(self, i: int) -> NDArray[np.bool_]:
        """COCO ``iscrowd`` flags of :meth:`instances` (all False for the other formats)."""
        ref = self._labels[i]
        if self.kind == "coco":
            return np.array([bool(a.get("iscrowd", 0)) for a in ref["annotations"]], bool)
        return np.zeros(len(self.instances(i)), bool)

    def semantic(self, i: int) -> NDArray[np.uint8]:
        """The label map of image ``i``: ids into ``semantic_names``, 255 = ignore."""
        if self.kind == "mask-png":
            labels = read_label_png(self._labels[i])
            if self.label_kind == "instance":
                return (labels > 0).astype(np.uint8)
            return trimap_to_labels(labels) if self.label_kind == "trimap" else labels
        labels = np.zeros(self._shape(i), np.uint8)
        for cls, mask in self.instances(i):  # later instances paint over earlier ones
            labels[mask] = cls + 1
        return labels


def _read_yolo_label(path: Path) -> list[tuple[int, NDArray[np.float64]]]:
    out = []
    if path.is_file():
        for line in path.read_text().splitlines():
            values = line.split()
            if len(values) >= 7:  # class + at least 3 points (a 5-value line is a box, not a polygon)
                out.append((int(values[0]), np.asarray(values[1:], np.float64).reshape(-1, 2)))
    return out


def _list_images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES) if folder.is_dir() else []


def _read_names(root: Path) -> tuple[str, ...]:
    if (root / "classes.json").is_file():
        names = json.loads((root / "classes.json").read_text())
        names = [names[k] for k in sorted(names, key=int)] if isinstance(names, dict) else names
        return tuple(str(n) for n in names)
    if (root / "classes.txt").is_file():
        return tuple(line.strip() for line in (root / "classes.txt").read_text().splitlines() if line.strip())
    raise ConfigError(f"{root}: a mask-PNG folder needs classes.txt (one class name per line) or classes.json")


LABEL_KINDS = ("semantic", "instance", "trimap")


def load_mask_png(root: Path, split: str | None = None, labels: str = "semantic") -> Dataset:
    if labels not in LABEL_KINDS:
        raise ConfigError(f"labels={labels!r}: expected one of {', '.join(LABEL_KINDS)}")
    names = _read_names(root)
    if labels != "semantic":  # one object class; the label map is background / object
        if len(names) != 1:
            raise ConfigError(f"{root}: {labels} labels hold one object class; classes.txt lists {len(names)}")
        names = (BACKGROUND, names[0])
    sub = split if split and (root / "images" / split).is_dir() else ""
    images, masks = [], []
    for image in _list_images(root / "images" / sub):
        mask = root / "masks" / sub / f"{image.stem}.png"
        if mask.is_file():
            images.append(image)
            masks.append(mask)
    if not images:
        raise ConfigError(f"{root}: no image in images/{sub} has a mask in masks/{sub} (same name, .png)")
    instance_names = names[1:] if names[:1] == (BACKGROUND,) else names
    return Dataset("mask-png", images, instance_names, names, masks, labels)


def _yolo_split_images(root: Path, entry: str | list) -> list[Path]:
    entries = entry if isinstance(entry, list) else [entry]
    images: list[Path] = []
    for item in entries:
        path = Path(item) if Path(item).is_absolute() else root / item
        if path.is_dir():
            images += _list_images(path)
        elif path.suffix == ".txt" and path.is_file():  # a list of image paths
            images += [(root / p.strip()) if not Path(p.strip()).is_absolute() else Path(p.strip())
                       for p in path.read_text().splitlines() if p.strip()]
    return images


def _label_path(image: Path) -> Path:
    """Ultralytics' rule: the last ``/images/`` of the path becomes ``/labels/``, the suffix ``.txt``."""
    sa, sb = f"{os.sep}images{os.sep}", f"{os.sep}labels{os.sep}"
    return Path(sb.join(str(image).rsplit(sa, 1))).with_suffix(".txt")


def load_yolo_seg(path: Path, split: str = "val") -> Dataset:
    data_yaml = path / "data.yaml" if path.is_dir() else path
    if not data_yaml.is_file():
        raise ConfigError(f"{path}: no data.yaml (a YOLO-seg data set is described by one)")
    spec = yaml.safe_load(data_yaml.read_text()) or {}
    root = Path(spec.get("path") or data_yaml.parent)
    # absolute, so that image paths hold the "/images/" that label paths are derived from even for
    # `path: .` or a data.yaml named relative to the current folder
    root = (root if root.is_absolute() else (data_yaml.parent / root)).absolute()
    if split not in spec:
        have = ", ".join(k for k in ("train", "val", "test") if k in spec)
        raise ConfigError(f"{data_yaml}: no {split!r} split (it has: {have or 'none'})")
    names = spec.get("names") or {}
    names = tuple(str(names[k]) for k in sorted(names)) if isinstance(names, dict) else tuple(map(str, names))
    images = _yolo_split_images(root, spec[split])
    if not images:
        raise ConfigError(f"{data_yaml}: split {split!r} has no images")
    labels = [_label_path(p) for p in images]
    if not any(p.is_file() for p in labels):
        raise ConfigError(f"{data_yaml}: no label file for any of the {len(images)} images of split {split!r} "
                          f"(looked for {labels[0]} and the like: YOLO-seg labels live in labels/ beside images/)")
    return Dataset("yolo-seg", images, names, (BACKGROUND, *names), labels)


def load_coco(path: Path, image_dir: Path | None = None) -> Dataset:
    spec = json.loads(path.read_text())
    cats = sorted(spec.get("categories", []), key=lambda c: c["id"])
    class_of = {c["id"]: i for i, c in enumerate(cats)}
    names = tuple(str(c["name"]) for c in cats)
    anns: dict = {}
    for ann in spec.get("annotations", []):
        anns.setdefault(ann["image_id"], []).append(ann)
    images, refs = [], []
    dirs = [d for d in (image_dir, path.parent / "images", path.parent) if d is not None]
    for img in sorted(spec.get("images", []), key=lambda m: m["id"]):
        found = next((d / img["file_name"] for d in dirs if (d / img["file_name"]).is_file()), None)
        if found is None:
            raise ConfigError(f"{path}: image {img['file_name']} not found in {', '.join(map(str, dirs))}")
        images.append(found)
        refs.append({"height": img["height"], "width": img["width"], "annotations": anns.get(img["id"], []),
                     "class_of": class_of})
    if not images:
        raise ConfigError(f"{path}: no images listed")
    return Dataset("coco", images, names, (BACKGROUND, *names), refs)


def load_dataset(path: str | Path, split: str = "val", image_dir: Path | None = None, labels: str = "semantic"
                 ) -> Dataset:
    """Open a data set, detecting its format (see the module docstring).

    Raises:
        ConfigError: a missing path, an unknown layout, or a split that does not exist.
    """
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"data set not found: {path}")
    if path.suffix.lower() in (".yaml", ".yml") or (path / "data.yaml").is_file():
        return load_yolo_seg(path, split)
    if path.suffix.lower() == ".json":
        return load_coco(path, image_dir)
    if (path / "masks").is_dir():
        return load_mask_png(path, split, labels)
    raise ConfigError(f"{path}: not a data set rtseg reads (a YOLO-seg data.yaml, a COCO .json, or a folder "
                      "with images/, masks/ and classes.txt)")
