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
* **LabelMe folder**: ``NAME.json`` beside ``NAME.jpg`` (LabelMe, AnyLabeling, ``rtseg label``); polygons
  grouped into objects by ``group_id``, classes from ``classes.txt`` there (:mod:`rtseg.data.labelme`);
  semantic names get ``background`` first, as for YOLO-seg.
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
    trimap_to_labels,
)
from rtseg.data.labelme import is_labelme_folder, read_labelme_folder
from rtseg.data.validation import (
    Problems,
    check_label_ids,
    class_range,
    coco_segmentation_problem,
    image_hw,
    parse_yolo_label,
    png_header,
    read_label_ids,
)
from rtseg.errors import ConfigError


class SplitNotFound(ConfigError):
    """The data set has no such split, or the split holds no image (training then holds out its own)."""


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
            labels = self._label_ids(i)
            if self.label_kind == "instance":
                return [(0, m) for m in instances_from_instance_png(labels)]
            if self.label_kind == "trimap":
                return [(0, labels != TRIMAP_BACKGROUND)]
            offset = 1 if self.semantic_names[:1] == (BACKGROUND,) else 0
            return [(c - offset, m) for c, m in instances_from_mask_png(labels, background=0 if offset else -1)]
        h, w = self._shape(i)
        if self.kind == "labelme":  # pixel polygons; the pieces of one object fill one mask
            out = []
            for cls, polys in ref["objects"]:
                mask = np.zeros((h, w), np.uint8)
                cv2.fillPoly(mask, [np.round(p).astype(np.int32) for p in polys], 1)
                out.append((cls, mask.astype(bool)))
            return out
        if self.kind == "yolo-seg":
            out = []
            for cls, poly in ref:  # parsed and checked when the data set was opened
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
            try:
                mask = mask_utils.decode(rle).astype(bool)
            except (ValueError, TypeError) as exc:  # a compressed RLE string is only decoded here
                raise ConfigError(f"{self.images[i]}: annotation id {ann.get('id')}: cannot decode its RLE "
                                  f"segmentation ({exc})") from None
            if mask.shape != (h, w):
                raise ConfigError(f"{self.images[i]}: annotation id {ann.get('id')}: its RLE decodes to "
                                  f"{mask.shape[1]}x{mask.shape[0]} px, the image is {w}x{h}")
            out.append((ref["class_of"][ann["category_id"]], mask))
        return out

    def _label_ids(self, i: int) -> NDArray[np.integer]:
        """Mask-PNG ``i`` as checked ids (see :func:`rtseg.data.validation.check_label_ids`)."""
        return check_label_ids(read_label_ids(self._labels[i]), self._labels[i], self.label_kind,
                               len(self.semantic_names))

    def crowd(self, i: int) -> NDArray[np.bool_]:
        """COCO ``iscrowd`` flags of :meth:`instances` (all False for the other formats)."""
        ref = self._labels[i]
        if self.kind == "coco":
            return np.array([bool(a.get("iscrowd", 0)) for a in ref["annotations"]], bool)
        return np.zeros(len(self.instances(i)), bool)

    def semantic(self, i: int) -> NDArray[np.uint8]:
        """The label map of image ``i``: ids into ``semantic_names``, 255 = ignore."""
        if self.kind == "mask-png":
            labels = self._label_ids(i)
            if self.label_kind == "instance":
                return (labels > 0).astype(np.uint8)
            return trimap_to_labels(labels) if self.label_kind == "trimap" else labels
        labels = np.zeros(self._shape(i), np.uint8)
        for cls, mask in self.instances(i):  # later instances paint over earlier ones
            labels[mask] = cls + 1
        return labels


def _list_images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES) if folder.is_dir() else []


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a text file (it is not UTF-8)") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read it ({exc.strerror})") from None


def _read_structured(path: Path) -> object:
    """A JSON or YAML file's content; a syntax error names its line."""
    text = _read_text(path)
    try:
        if path.suffix.lower() == ".json":
            return json.loads(text)
        return yaml.safe_load(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg}, column {exc.colno})") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        raise ConfigError(f"{where}: not valid YAML ({getattr(exc, 'problem', None) or exc})") from None
    except RecursionError:
        raise ConfigError(f"{path}: nested too deeply to be a data set description") from None


def _names(value: object, where: object, limit: int) -> tuple[str, ...]:
    """Class names from a list, or from an id -> name mapping with ids 0..n-1."""
    if isinstance(value, dict):
        keys = [int(k) if isinstance(k, str) and k.strip().isdigit() else k for k in value]
        if not all(isinstance(k, int) and not isinstance(k, bool) for k in keys) or \
                sorted(keys) != list(range(len(keys))):
            raise ConfigError(f"{where}: class names keyed by {sorted(map(str, value))[:5]}; "
                              "expected ids 0, 1, 2, ... (or a list of names)")
        value = [n for _, n in sorted(zip(keys, value.values()))]
    if not isinstance(value, list) or not all(isinstance(n, (str, int)) and not isinstance(n, bool)
                                              for n in value):
        raise ConfigError(f"{where}: class names must be a list of names (or an id -> name mapping), "
                          f"got {type(value).__name__}")
    if not value:
        raise ConfigError(f"{where}: the class list is empty: name at least one class")
    if len(value) > limit:
        raise ConfigError(f"{where}: {len(value)} classes; label maps hold at most {limit} (ids below 255, "
                          "255 = ignore)")
    return tuple(str(n).strip() for n in value)


def _read_names(root: Path) -> tuple[str, ...]:
    if (root / "classes.json").is_file():
        names = _read_structured(root / "classes.json")
        return _names(names, root / "classes.json", 255)
    if (root / "classes.txt").is_file():
        lines = [line.strip() for line in _read_text(root / "classes.txt").splitlines() if line.strip()]
        return _names(lines, root / "classes.txt", 255)
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
    images, masks = _mask_pairs(root, sub)
    if not images:
        raise ConfigError(f"{root}: no image in images/{sub} has a mask in masks/{sub} (same name, .png)")
    instance_names = names[1:] if names[:1] == (BACKGROUND,) else names
    return Dataset("mask-png", images, instance_names, names, masks, labels)


def _mask_pairs(root: Path, sub: str) -> tuple[list[Path], list[Path]]:
    """(images, masks) of a mask-PNG folder that pair up: same name, a PNG mask of its image's size. A few
    unpaired or mismatched files among many are left out with a warning, more are an error."""
    by_stem = {p.stem: p for p in _list_images(root / "images" / sub)}
    mask_dir = root / "masks" / sub
    mask_stems = {p.stem for p in mask_dir.iterdir() if p.suffix.lower() == ".png"} if mask_dir.is_dir() else set()
    problems = Problems(root, "image/mask pairs", "a mask-PNG folder pairs images/NAME.jpg with masks/NAME.png")
    images, masks = [], []
    for stem in sorted(set(by_stem) | mask_stems):
        image, mask = by_stem.get(stem), mask_dir / f"{stem}.png"
        if image is None:
            problems.add(mask, f"no image {stem}.* in {root / 'images' / sub}")
        elif stem not in mask_stems:
            problems.add(image, f"no mask {mask}")
        elif (header := png_header(mask)) is None:
            problems.add(mask, "not a PNG (masks are PNGs of class ids)")
        elif (hw := image_hw(image)) is None:
            problems.add(image, "cannot read this image")
        elif header[:2] != hw:
            problems.add(mask, f"the mask is {header[1]}x{header[0]} px, its image {image.name} {hw[1]}x{hw[0]}: "
                         "a mask must have its image's size")
        else:
            images.append(image)
            masks.append(mask)
    problems.settle(len(set(by_stem) | mask_stems))
    return images, masks


def _yolo_split_images(root: Path, entry: str | list, data_yaml: Path, split: str) -> list[Path]:
    entries = entry if isinstance(entry, list) else [entry]
    if not all(isinstance(item, str) and item for item in entries):
        raise ConfigError(f"{data_yaml}: split {split!r} is {entry!r}; expected a folder, a .txt list of images, "
                          "or a list of them")
    images: list[Path] = []
    for item in entries:
        path = Path(item) if Path(item).is_absolute() else root / item
        if path.is_dir():
            images += _list_images(path)
        elif path.suffix == ".txt" and path.is_file():  # a list of image paths, one a line
            listed = [(n, line.strip()) for n, line in enumerate(_read_text(path).splitlines(), 1) if line.strip()]
            problems = Problems(path, "image paths", "a list holds one image path a line")
            for number, name in listed:
                image = Path(name) if Path(name).is_absolute() else root / name
                if image.is_file():
                    images.append(image)
                else:
                    problems.add(f"{path}:{number}", f"image {image} not found")
            problems.settle(len(listed))
    return images


def _label_path(image: Path) -> Path:
    """Ultralytics' rule: the last ``/images/`` of the path becomes ``/labels/``, the suffix ``.txt``."""
    sa, sb = f"{os.sep}images{os.sep}", f"{os.sep}labels{os.sep}"
    return Path(sb.join(str(image).rsplit(sa, 1))).with_suffix(".txt")


def load_yolo_seg(path: Path, split: str = "val") -> Dataset:
    data_yaml = path / "data.yaml" if path.is_dir() else path
    if not data_yaml.is_file():
        raise ConfigError(f"{path}: no data.yaml (a YOLO-seg data set is described by one)")
    spec = _read_structured(data_yaml) or {}
    if not isinstance(spec, dict):
        raise ConfigError(f"{data_yaml}: expected a mapping with path, train/val/test and names, "
                          f"got {type(spec).__name__}")
    if not isinstance(spec.get("path") or "", str):
        raise ConfigError(f"{data_yaml}: path is {spec['path']!r}; expected the data set's folder")
    root = Path(spec.get("path") or data_yaml.parent)
    # absolute, so that image paths hold the "/images/" that label paths are derived from even for
    # `path: .` or a data.yaml named relative to the current folder
    root = (root if root.is_absolute() else (data_yaml.parent / root)).absolute()
    if split not in spec:
        have = ", ".join(k for k in ("train", "val", "test") if k in spec)
        raise SplitNotFound(f"{data_yaml}: no {split!r} split (it has: {have or 'none'})")
    if spec.get("names") is None:
        raise ConfigError(f"{data_yaml}: no names (the class names, e.g. names: [person, car])")
    names = _names(spec["names"], f"{data_yaml}: names", 254)  # + background, ids below 255
    images = _yolo_split_images(root, spec[split], data_yaml, split)
    if not images:
        raise SplitNotFound(f"{data_yaml}: split {split!r} has no images")
    label_files = [_label_path(p) for p in images]
    if not any(p.is_file() for p in label_files):
        raise ConfigError(f"{data_yaml}: no label file for any of the {len(images)} images of split {split!r} "
                          f"(looked for {label_files[0]} and the like: YOLO-seg labels live in labels/ beside "
                          "images/)")
    problems = Problems(data_yaml, "label lines", "a YOLO-seg line is: class x1 y1 x2 y2 x3 y3 ..., class ids "
                        f"{class_range(len(names)).removeprefix('ids ').removeprefix('id ')}, coordinates 0..1")
    labels, lines = [], 0
    for label in label_files:
        objects, n = parse_yolo_label(label, len(names), problems)
        labels.append(objects)
        lines += n
    problems.settle(lines)
    return Dataset("yolo-seg", images, names, (BACKGROUND, *names), labels)


def _is_id(value: object) -> bool:
    return isinstance(value, (int, str)) and not isinstance(value, bool)


def _is_size(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value <= 1 << 16


def _coco_lists(spec: object, path: Path) -> tuple[list, list, list]:
    if not isinstance(spec, dict):
        raise ConfigError(f"{path}: expected a COCO instances file (an object with images, annotations and "
                          f"categories), got {type(spec).__name__}")
    out = []
    for key in ("images", "annotations", "categories"):
        value = spec.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            raise ConfigError(f"{path}: {key} must be a list of objects, got {type(value).__name__}")
        out.append(value)
    return out[0], out[1], out[2]


def _coco_classes(cats: list, path: Path) -> tuple[dict, tuple[str, ...]]:
    for k, cat in enumerate(cats):
        if not _is_id(cat.get("id")) or not isinstance(cat.get("name"), str):
            raise ConfigError(f"{path}: categories[{k}] needs an id and a name, got {cat!r:.80}")
    ids = [c["id"] for c in cats]
    if len(set(ids)) != len(ids):
        raise ConfigError(f"{path}: category id {next(i for i in ids if ids.count(i) > 1)!r} is listed twice")
    if not cats:
        raise ConfigError(f"{path}: no categories: the file names no class")
    if len(cats) > 254:
        raise ConfigError(f"{path}: {len(cats)} categories; label maps hold at most 254 (+ background)")
    cats = sorted(cats, key=lambda c: (isinstance(c["id"], str), c["id"]))
    return {c["id"]: i for i, c in enumerate(cats)}, tuple(c["name"] for c in cats)


def load_coco(path: Path, image_dir: Path | None = None) -> Dataset:
    """A COCO instances file, checked entry by entry (see :mod:`rtseg.data.validation` for the policy)."""
    image_list, ann_list, cats = _coco_lists(_read_structured(path), path)
    class_of, names = _coco_classes(cats, path)
    dirs = [d for d in (image_dir, path.parent / "images", path.parent) if d is not None]
    bad_images = Problems(path, "images", f"images are looked up in {', '.join(map(str, dirs))}")
    entries: dict = {}  # image id -> (file, height, width) of the images that are usable
    listed = set()
    for k, img in enumerate(image_list):
        where = f"{path}: images[{k}]"
        if not (_is_id(img.get("id")) and isinstance(img.get("file_name"), str) and img["file_name"]
                and _is_size(img.get("height")) and _is_size(img.get("width"))):
            bad_images.add(where, "needs id, file_name, and height and width in pixels")
            continue
        if img["id"] in listed:
            bad_images.add(where, f"image id {img['id']!r} is listed twice")
            continue
        listed.add(img["id"])
        found = next((d / img["file_name"] for d in dirs if (d / img["file_name"]).is_file()), None)
        hw = image_hw(found) if found is not None else None
        if found is None:
            bad_images.add(where, f"image {img['file_name']} not found")
        elif hw is None:
            bad_images.add(where, f"cannot read the image {found}")
        elif hw != (img["height"], img["width"]):
            bad_images.add(where, f"{found} is {hw[1]}x{hw[0]} px, the file says {img['width']}x{img['height']}")
        else:
            entries[img["id"]] = (found, img["height"], img["width"])
    if not image_list:
        raise ConfigError(f"{path}: no images listed")
    bad_images.settle(len(image_list))
    bad_anns = Problems(path, "annotations", "COCO segmentations are polygons [[x1, y1, x2, y2, ...]] in "
                        "pixels, or RLE {size, counts}")
    anns: dict = {}
    for k, ann in enumerate(ann_list):
        where = f"{path}: annotations[{k}] (id {ann.get('id')!r:.20})"
        image_id = ann.get("image_id")
        if not _is_id(image_id) or image_id not in listed:
            bad_anns.add(where, f"image_id {image_id!r:.20} is not an id in images")
        elif not _is_id(ann.get("category_id")) or ann["category_id"] not in class_of:
            bad_anns.add(where, f"category_id {ann.get('category_id')!r:.20} is not an id in categories")
        elif image_id in entries:  # annotations of images left out above go with them
            why = coco_segmentation_problem(ann.get("segmentation"), entries[image_id][1:])
            if why is not None:
                bad_anns.add(where, why)
            else:
                anns.setdefault(image_id, []).append(ann)
    bad_anns.settle(len(ann_list))
    images, refs = [], []
    for image_id in sorted(entries, key=lambda i: (isinstance(i, str), i)):
        found, h, w = entries[image_id]
        images.append(found)
        refs.append({"height": h, "width": w, "annotations": anns.get(image_id, []), "class_of": class_of})
    return Dataset("coco", images, names, (BACKGROUND, *names), refs)


def load_dataset(path: str | Path, split: str = "val", image_dir: Path | None = None, labels: str = "semantic"
                 ) -> Dataset:
    """Open a data set, detecting its format (see the module docstring).

    Raises:
        ConfigError: a missing path, an unknown layout, a split that does not exist, or labels that cannot be
            used (checked as they are read: :mod:`rtseg.data.validation`; a few bad lines among many are left
            out with a warning instead).
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
    if is_labelme_folder(path):
        images, names, refs = read_labelme_folder(path)
        return Dataset("labelme", images, names, (BACKGROUND, *names), refs)
    raise ConfigError(f"{path}: not a data set rtseg reads (a YOLO-seg data.yaml, a COCO .json, a folder "
                      "with images/, masks/ and classes.txt, or a LabelMe folder of NAME.json beside NAME.jpg)")
