"""The default instance model's (person, cat, dog) wider training set: every labelled source in ``../shared/data``.

:func:`build_default_instance_set` writes one YOLO-seg folder (``images/<split>``, ``labels/<split>``,
``data.yaml``) under a folder the caller names (a temporary folder or ``$RTSEG_CACHE``; never the repository).
Images are symlinked, except the few ``coco_tiny`` images that are greyed (below), which are written there.

Sources (class ids are :data:`rtseg.data.shared_sets.NAMES`: 0 person, 1 cat, 2 dog):

* **pets**, **Penn-Fudan**, **coco128-seg**: as :func:`rtseg.data.shared_sets.build_instance_sets` reads them.
* **people/** (binary masks, 255 = person): each 8-connected region of the mask becomes one person instance,
  so **people who touch or overlap merge into one instance** (the set has no instance ids), and one person
  cut in two by an occluder becomes two. Regions under ``max(64 px, 0.2 % of the image)`` (specks the
  automatic remove.bg masks leave) are dropped. Every third image (``hsd_NNN`` with NNN % 3 == 0) is held
  out (``test_people``): never in ``train`` or ``val``.
* **extra/coco_tiny, feral_cats, drone_person, porong_person** (8 classes: 0 person, 1 cat, 2 dog, 3 car ...):
  person/cat/dog lines are kept (ids mapped by :data:`EXTRA_IDS`), other classes' lines dropped (those
  objects become background, as coco128's other 77 classes do today).
* **coco_tiny crowd regions**: COCO's 10 ``iscrowd`` person regions are not in its labels and their location
  is not known here. Unlabelled people must not be taught as background, so before training every region
  where a detector (the bundled model, at a confident threshold: :func:`unlabelled_regions`) finds a person
  that the labels do not cover is filled with the image's mean colour: unlabelled people become grey, not
  background. This finds the crowds the detector can see; the rest stay (see the summary for the count).

Splits, all deterministic:

* ``val`` (picks the checkpoint): about 10 % of each source's non-held-out images, chosen by a stable hash of
  ``source/name`` (:func:`is_val`); for the two drone sets, frames of one video each, the last 10 % of the
  frames in order instead, so validation frames are not the neighbours of training frames.
* ``test_pets``, ``test_pennfudan``, ``test_people``: the held-out sets; never in ``train`` or ``val``.
* ``train``: the rest, balanced: ``feral_cats`` (about 4,200 cats) is subsampled by the same hash and images
  with a dog are listed ``dog_repeat`` times (links named ``..._rK``), see :func:`build_default_instance_set`.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from numpy.typing import NDArray

from rtseg.data.convert import (
    instances_from_mask_png,
    read_label_png,
    write_yolo_seg,
    yolo_seg_lines,
)
from rtseg.data.shared_sets import (
    COCO_IDS,
    NAMES,
    instances_from_instance_png,
    pennfudan_split,
    pets_split,
    shared_data,
    write_data_yaml,
)

logger = logging.getLogger(__name__)

EXTRA_IDS = {0: 0, 1: 1, 2: 2}  # extra/ class id (person, cat, dog, car, ...) -> ours (NAMES order)
EXTRA_SETS = ("coco_tiny", "feral_cats", "drone_person", "porong_person")
SOURCES = ("pets", "pennfudan", "coco128", "people", *EXTRA_SETS)
VIDEO_SETS = ("drone_person", "porong_person")  # frames of one video: validation is a block, not a hash
VAL_PERCENT = 10
TEST_SPLITS = {"test_pets": "images/test_pets", "test_pennfudan": "images/test_pennfudan",
               "test_people": "images/test_people"}

# A detection (bundled model, person, conf >= this) that the labels do not cover marks unlabelled people.
CROWD_CONF = 0.5
# ...when less than this fraction of its mask lies on labelled people.
CROWD_COVERED = 0.5

Finder = Callable[[NDArray[np.uint8]], list[tuple[NDArray[np.float32], NDArray[np.bool_]]]]


def is_people_held_out(stem: str) -> bool:
    """``hsd_NNN`` with NNN % 3 == 0: the person set's held-out third (issue #19)."""
    match = re.fullmatch(r"hsd_(\d+)", stem)
    return bool(match) and int(match.group(1)) % 3 == 0


def is_val(source: str, name: str, percent: int = VAL_PERCENT) -> bool:
    """Whether ``source/name`` is in the validation split: a stable hash (SHA-1), the same on every machine.
    (Not CRC-32: it is linear, and ``crc32 % 100`` of names that differ in a digit follows the digits: 1 of
    the people set's 80 training names of a test fell in a 10 % split.)"""
    return _stable(f"{source}/{name}") % 100 < percent


def hash_fraction(source: str, name: str) -> float:
    """A stable number in [0, 1) per image (another hash than :func:`is_val`'s), to subsample a source."""
    return (_stable(f"keep:{source}/{name}") % 10_000) / 10_000


def _stable(text: str) -> int:
    return int.from_bytes(hashlib.sha1(text.encode()).digest()[:8], "big")


def people_instances(mask: NDArray[np.integer], *, min_fraction: float = 0.002, min_px: int = 64
                     ) -> list[tuple[int, NDArray[np.bool_]]]:
    """(0 = person, mask) per 8-connected region of a binary person mask (> 127 = person).

    Touching people merge into one instance; regions under ``max(min_px, min_fraction * H * W)`` are dropped.
    """
    person = (np.asarray(mask) > 127).astype(np.uint8)
    min_area = max(min_px, int(min_fraction * person.size))
    return [(NAMES.index("person"), m) for _, m in instances_from_mask_png(person, min_area=min_area)]


def remap_lines(lines: list[str], mapping: dict[int, int]) -> list[str]:
    """YOLO-seg label lines with class ids mapped by ``mapping``; lines of other classes (and blank ones) dropped."""
    out = []
    for line in lines:
        parts = line.split()
        if parts and int(parts[0]) in mapping:
            out.append(" ".join([str(mapping[int(parts[0])]), *parts[1:]]))
    return out


def polygons_mask(lines: list[str], shape_hw: tuple[int, int], classes: set[int] | None = None) -> NDArray[np.bool_]:
    """The union of the YOLO-seg polygons in ``lines`` (optionally only ``classes``) as an (H, W) mask."""
    h, w = shape_hw
    canvas = np.zeros((h, w), np.uint8)
    for line in lines:
        parts = line.split()
        if not parts or (classes is not None and int(parts[0]) not in classes):
            continue
        xy = np.asarray(parts[1:], np.float32).reshape(-1, 2) * np.array([w, h], np.float32)
        cv2.fillPoly(canvas, [np.round(xy).astype(np.int32)], 1)
    return canvas.astype(bool)


def unlabelled_regions(detections: list[tuple[NDArray[np.float32], NDArray[np.bool_]]],
                       labelled_people: NDArray[np.bool_], *, covered: float = CROWD_COVERED) -> NDArray[np.bool_]:
    """Pixels to grey: the boxes of person detections whose mask lies less than ``covered`` on labelled people.

    Args:
        detections: (box xyxy in pixels, full-frame (H, W) bool mask) per confident person detection.
        labelled_people: (H, W) union of the labelled person masks.
    """
    out = np.zeros(labelled_people.shape, bool)
    h, w = labelled_people.shape
    for box, mask in detections:
        area = int(mask.sum())
        if area == 0 or (mask & labelled_people).sum() >= covered * area:
            continue
        x0, y0, x1, y1 = np.clip(np.round(box), 0, [w, h, w, h]).astype(int)
        out[y0:y1, x0:x1] = True
    return out


@dataclass
class Summary:
    """Images and instances per (source, split), and per class and split; ``notes`` on rules applied."""

    images: dict[tuple[str, str], int] = field(default_factory=dict)
    instances: dict[tuple[str, str, int], int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def add(self, source: str, split: str, lines: list[str], copies: int = 1) -> None:
        self.images[source, split] = self.images.get((source, split), 0) + copies
        for line in lines:
            key = (source, split, int(line.split()[0]))
            self.instances[key] = self.instances.get(key, 0) + copies

    def per_class(self, split: str) -> dict[str, int]:
        return {name: sum(n for (_, s, c), n in self.instances.items() if s == split and c == k)
                for k, name in enumerate(NAMES)}

    def table(self) -> str:
        """A markdown table: one row per source and split, then one total row per split."""
        head = "| source | split | images | " + " | ".join(NAMES) + " |\n|---|---|---|" + "---|" * len(NAMES)
        rows = [head]
        for source, split in sorted(self.images):
            counts = [self.instances.get((source, split, k), 0) for k in range(len(NAMES))]
            rows.append(f"| {source} | {split} | {self.images[source, split]} | " + " | ".join(map(str, counts)) + " |")
        for split in sorted({s for _, s in self.images}):
            n = sum(v for (_, s), v in self.images.items() if s == split)
            counts = " | ".join(map(str, self.per_class(split).values()))
            rows.append(f"| **all** | **{split}** | {n} | {counts} |")
        return "\n".join(rows + [f"\n- {note}" for note in self.notes])


def _emit(summary: Summary, source: str, image: Path, lines: list[str], out: Path, split: str, name: str,
          repeat: int = 1) -> None:
    write_yolo_seg(image, lines, out, split, name=name)
    for k in range(1, repeat if split == "train" else 1):  # the same image listed again under another name
        write_yolo_seg(image, lines, out, split, name=f"{name}_r{k}")
    summary.add(source, split, lines, repeat if split == "train" else 1)


def _trainval(source: str, name: str) -> str:
    return "val" if is_val(source, name) else "train"


def _repeat(lines: list[str], dog_repeat: int) -> int:
    return dog_repeat if any(line.split()[0] == str(NAMES.index("dog")) for line in lines) else 1


def add_people(root: Path, out: Path, summary: Summary, *, test: bool = True, train: bool = True) -> None:
    for image in sorted((root / "images").glob("hsd_*.jpg")):
        mask = read_label_png(root / "masks" / f"{image.stem}.png")
        held = is_people_held_out(image.stem)
        if (held and not test) or (not held and not train):
            continue
        split = "test_people" if held else _trainval("people", image.stem)
        _emit(summary, "people", image, yolo_seg_lines(people_instances(mask), mask.shape), out, split,
              f"hsd_{image.stem[4:]}")


def add_extra(root: Path, source: str, out: Path, summary: Summary, *, dog_repeat: int = 1, keep: float = 1.0,
              finder: Finder | None = None) -> None:
    """One ``extra/`` set: classes remapped, other classes dropped, split by hash (or by frame order for
    :data:`VIDEO_SETS`), ``keep`` of its training images kept (by hash), ``coco_tiny`` unlabelled people greyed."""
    images = sorted((root / "images").glob("*.jpg"))
    n_val = max(1, round(len(images) * VAL_PERCENT / 100))
    greyed = regions = 0
    for i, image in enumerate(images):
        label = root / "labels" / f"{image.stem}.txt"
        lines = remap_lines(label.read_text().splitlines() if label.exists() else [], EXTRA_IDS)
        if source in VIDEO_SETS:
            split = "val" if i >= len(images) - n_val else "train"
        else:
            split = _trainval(source, image.stem)
        if split == "train" and hash_fraction(source, image.stem) >= keep:
            continue
        src = image
        if finder is not None:
            bgr = cv2.imread(str(image), cv2.IMREAD_COLOR)
            people = polygons_mask(lines, bgr.shape[:2], {NAMES.index("person")})
            found = [d for d in finder(bgr) if (d[1] & people).sum() < CROWD_COVERED * max(1, d[1].sum())]
            grey = unlabelled_regions(found, people) & ~polygons_mask(lines, bgr.shape[:2])
            if grey.any():
                bgr[grey] = bgr.reshape(-1, 3).mean(0).astype(np.uint8)
                src = out / "greyed" / f"{source}_{image.name}"
                src.parent.mkdir(parents=True, exist_ok=True)
                cv2.imwrite(str(src), bgr, [cv2.IMWRITE_JPEG_QUALITY, 95])
                greyed, regions = greyed + 1, regions + len(found)
        _emit(summary, source, src, lines, out, split, f"{source}_{image.stem[:60]}", _repeat(lines, dog_repeat))
    if finder is not None:
        summary.notes.append(f"{source}: {regions} unlabelled person detections greyed in {greyed} of "
                             f"{len(images)} images (conf >= {CROWD_CONF}, < {CROWD_COVERED:.0%} on labelled people)")


def add_pets_split(root: Path, out: Path, summary: Summary, split: str, dog_repeat: int = 1) -> None:
    from rtseg.data.convert import TRIMAP_BACKGROUND

    for name, cls in pets_split(root, split):
        trimap = read_label_png(root / "trimaps" / f"{name}.png")
        lines = yolo_seg_lines([(cls, trimap != TRIMAP_BACKGROUND)], trimap.shape)
        target = "test_pets" if split == "test" else _trainval("pets", name)
        _emit(summary, "pets", root / "images" / f"{name}.jpg", lines, out, target, f"pets_{name}",
              _repeat(lines, dog_repeat))


def add_pennfudan_split(root: Path, out: Path, summary: Summary, split: str) -> None:
    for image in pennfudan_split(root, split):
        ids = read_label_png(root / "masks" / f"{image.stem}.png")
        lines = yolo_seg_lines([(0, m) for m in instances_from_instance_png(ids)], ids.shape)
        target = "test_pennfudan" if split == "test" else _trainval("pennfudan", image.stem)
        _emit(summary, "pennfudan", image, lines, out, target, f"pf_{image.stem}")


def add_coco128_split(root: Path, out: Path, summary: Summary, dog_repeat: int = 1) -> None:
    for image in sorted((root / "images" / "train2017").glob("*.jpg")):
        label = root / "labels" / "train2017" / f"{image.stem}.txt"
        lines = remap_lines(label.read_text().splitlines() if label.exists() else [], COCO_IDS)
        _emit(summary, "coco128", image, lines, out, _trainval("coco128", image.stem), f"coco_{image.stem}",
              _repeat(lines, dog_repeat))


def build_default_instance_set(out: Path, data: Path | None = None, *, cat_keep: float = 0.35, dog_repeat: int = 4,
                               finder: Finder | None = None, train: bool = True, test: bool = True,
                               sources: Collection[str] = SOURCES) -> tuple[Path, Summary]:
    """Write the wider person/cat/dog set under ``out`` and return (``data.yaml``, :class:`Summary`).

    Args:
        out: the folder to fill (outside the repository: a temporary folder or ``$RTSEG_CACHE``).
        data: ``../shared/data`` (default: beside the repository).
        cat_keep: fraction of ``feral_cats``' training images kept (by hash): its ~4,200 cats would otherwise
            outnumber the people about 3 to 1. Its validation images are all kept.
        dog_repeat: training images with a dog are listed this many times (dogs are the rarest class:
            ~115 instances, almost all American bulldogs).
        finder: a person detector for ``coco_tiny``'s unlabelled crowds (``image -> [(box_xyxy, mask)]``);
            None leaves those images as they are.
        train, test: write the ``train``/``val`` splits, the held-out ``test_*`` splits.
        sources: only these of :data:`SOURCES` (tests, quick looks).
    """
    data = data or shared_data()
    resolved = out.resolve()
    repo = Path(__file__).resolve().parents[2]
    if resolved == repo or repo in resolved.parents:
        raise ValueError(f"out={out}: the data set is built outside the repository ({repo}), e.g. in $RTSEG_CACHE")
    out.mkdir(parents=True, exist_ok=True)
    summary = Summary()
    unknown = set(sources) - set(SOURCES)
    if unknown:
        raise ValueError(f"sources: unknown {sorted(unknown)}; expected some of {SOURCES}")
    if train and "pets" in sources:
        add_pets_split(data / "pets", out, summary, "trainval", dog_repeat)
    if train and "pennfudan" in sources:
        add_pennfudan_split(data / "pennfudan", out, summary, "train")
    if train and "coco128" in sources:
        add_coco128_split(data / "coco128-seg", out, summary, dog_repeat)
    for source in EXTRA_SETS if train else ():
        if source in sources:
            add_extra(data / "extra" / source, source, out, summary, dog_repeat=dog_repeat,
                      keep=cat_keep if source == "feral_cats" else 1.0,
                      finder=finder if source == "coco_tiny" else None)
    if test and "pets" in sources:
        add_pets_split(data / "pets", out, summary, "test")
    if test and "pennfudan" in sources:
        add_pennfudan_split(data / "pennfudan", out, summary, "test")
    if "people" in sources:
        add_people(data / "people", out, summary, test=test, train=train)
    splits = {"train": "images/train", "val": "images/val", **TEST_SPLITS} if train else dict(TEST_SPLITS)
    return write_data_yaml(out, NAMES, splits), summary
