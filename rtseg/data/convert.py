"""Label converters: mask PNGs, Oxford-IIIT Pet trimaps and instance PNGs to YOLO-seg polygons.

Ultralytics' trainer reads YOLO-seg labels: one text file per image, one line per instance,
``class x1 y1 x2 y2 ...`` with polygon vertices normalised to 0..1. These helpers turn the label
kinds found in the wild into that format:

* **instance PNG** (Penn-Fudan ``PedMasks``): 0 = background, each other value one object;
* **mask PNG** (semantic): the pixel value is the class id; each connected region becomes one instance;
* **trimap** (Oxford-IIIT Pet): 1 = pet, 2 = background, 3 = border; the pet (with its border) is one instance.

An object split into several pieces (occluded) becomes one polygon: the pieces are joined with
Ultralytics' :func:`~ultralytics.data.converter.merge_multi_segment`, as its COCO converter does.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import cv2
import numpy as np
from numpy.typing import NDArray

from rtseg.errors import ConfigError

IGNORE = 255  # label id that losses and metrics leave out
TRIMAP_PET, TRIMAP_BACKGROUND, TRIMAP_BORDER = 1, 2, 3


def trimap_to_labels(trimap: NDArray[np.integer], *, border: str = "ignore") -> NDArray[np.uint8]:
    """Oxford-IIIT Pet trimap -> label map: 0 background, 1 pet, border pixels ``ignore`` (255) or ``pet`` (1).

    Raises:
        ValueError: values other than 1, 2, 3, or an unknown ``border`` policy.
    """
    trimap = np.asarray(trimap)
    if border not in ("ignore", "pet"):
        raise ValueError(f"border: expected 'ignore' or 'pet', got {border!r}")
    values = np.unique(trimap)
    if not set(values.tolist()) <= {TRIMAP_PET, TRIMAP_BACKGROUND, TRIMAP_BORDER}:
        raise ValueError(f"not a trimap: expected values 1, 2, 3, got {values.tolist()[:10]}")
    out = np.zeros(trimap.shape, np.uint8)
    out[trimap == TRIMAP_PET] = 1
    out[trimap == TRIMAP_BORDER] = IGNORE if border == "ignore" else 1
    return out


def instances_from_instance_png(ids: NDArray[np.integer]) -> list[NDArray[np.bool_]]:
    """One boolean mask per non-zero value of an instance-id PNG, in increasing id order."""
    ids = np.asarray(ids)
    if ids.ndim == 3:
        ids = ids[..., 0]
    return [ids == v for v in np.unique(ids) if v != 0]


def instances_from_mask_png(labels: NDArray[np.integer], *, ignore: int = IGNORE, background: int = 0,
                            min_area: int = 16) -> list[tuple[int, NDArray[np.bool_]]]:
    """(class id, mask) per connected region of each class of a semantic label map (8-connectivity)."""
    out = []
    for cls in np.unique(labels):
        if cls in (ignore, background):
            continue
        n, comp = cv2.connectedComponents((labels == cls).astype(np.uint8), connectivity=8)
        for k in range(1, n):
            mask = comp == k
            if mask.sum() >= min_area:
                out.append((int(cls), mask))
    return out


def mask_to_polygon(mask: NDArray[np.bool_], *, min_area: float = 4.0, epsilon: float = 1.0
                    ) -> NDArray[np.float32] | None:
    """The outline of a binary mask as one (N, 2) pixel-coordinate polygon, or None if the mask is empty.

    Outer contours smaller than ``min_area`` px are dropped; several pieces are merged into one polygon;
    ``epsilon`` (px) simplifies the outline with Douglas-Peucker.
    """
    contours, _ = cv2.findContours(np.ascontiguousarray(mask, dtype=np.uint8), cv2.RETR_EXTERNAL,
                                   cv2.CHAIN_APPROX_SIMPLE)
    pieces = [cv2.approxPolyDP(c, epsilon, True).reshape(-1, 2) for c in contours if cv2.contourArea(c) >= min_area]
    pieces = [p for p in pieces if len(p) >= 3]
    if not pieces:
        return None
    if len(pieces) == 1:
        return pieces[0].astype(np.float32)
    from ultralytics.data.converter import merge_multi_segment

    merged = merge_multi_segment([p.reshape(-1).tolist() for p in pieces])
    return np.concatenate(merged, axis=0).astype(np.float32)


def yolo_seg_lines(instances: Iterable[tuple[int, NDArray[np.bool_]]], shape_hw: tuple[int, int]) -> list[str]:
    """YOLO-seg label lines (``cls x1 y1 ...``, normalised) for (class id, mask) pairs; empty masks skipped."""
    h, w = shape_hw
    lines = []
    for cls, mask in instances:
        poly = mask_to_polygon(mask)
        if poly is None:
            continue
        xy = (poly / np.array([w, h], np.float32)).clip(0, 1)
        lines.append(f"{cls} " + " ".join(f"{v:.6f}" for v in xy.reshape(-1)))
    return lines


def write_yolo_seg(image_path: Path, lines: Sequence[str], out_root: Path, split: str, *,
                   name: str | None = None) -> Path:
    """Link (or copy) an image to ``out_root/images/split/`` and write its label file beside it."""
    name = name or image_path.stem
    img_dir, lab_dir = out_root / "images" / split, out_root / "labels" / split
    img_dir.mkdir(parents=True, exist_ok=True)
    lab_dir.mkdir(parents=True, exist_ok=True)
    target = img_dir / f"{name}{image_path.suffix.lower()}"
    if not target.exists():
        try:
            target.symlink_to(image_path.resolve())
        except OSError:
            import shutil

            shutil.copyfile(image_path, target)
    label = lab_dir / f"{name}.txt"
    label.write_text("".join(f"{line}\n" for line in lines))
    return label


def read_label_png(path: Path) -> NDArray[np.uint8]:
    """A label or instance PNG as a 2-D array (first channel of a colour PNG)."""
    labels = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if labels is None:
        raise ValueError(f"cannot read label image {path}")
    return labels[..., 0] if labels.ndim == 3 else labels


def dataset_to_yolo_seg(dataset, out_root: Path, split: str, progress=None) -> int:  # noqa: ANN001
    """Write any :class:`rtseg.data.datasets.Dataset` as YOLO-seg (``images/split``, ``labels/split``).

    Images are symlinked (copied where links are impossible); returns the number of instances written.
    """
    count = 0
    for i, image in enumerate(dataset.images):
        objects = dataset.instances(i)
        beyond = [c for c, _ in objects if not 0 <= c < len(dataset.names)]
        if beyond:  # the data.yaml written beside these labels names only dataset.names
            raise ConfigError(f"{image}: class id {beyond[0]} of its labels is not one of the {len(dataset.names)} "
                              f"classes ({', '.join(dataset.names)})")
        shape = objects[0][1].shape if objects else dataset.image(i).shape[:2]
        lines = yolo_seg_lines(objects, shape)
        write_yolo_seg(image, lines, out_root, split, name=f"{i:06d}_{image.stem}")
        count += len(lines)
        if progress:
            progress()
    return count


def dataset_to_mask_png(dataset, out_root: Path, progress=None) -> int:  # noqa: ANN001
    """Write any data set as a mask-PNG folder: ``images/`` (links), ``masks/`` (class ids), ``classes.txt``."""
    (out_root / "images").mkdir(parents=True, exist_ok=True)
    (out_root / "masks").mkdir(parents=True, exist_ok=True)
    for i, image in enumerate(dataset.images):
        name = f"{i:06d}_{image.stem}"
        target = out_root / "images" / f"{name}{image.suffix.lower()}"
        if not target.exists():
            target.symlink_to(image.resolve())
        cv2.imwrite(str(out_root / "masks" / f"{name}.png"), dataset.semantic(i))
        if progress:
            progress()
    (out_root / "classes.txt").write_text("".join(f"{n}\n" for n in dataset.semantic_names))
    return len(dataset.images)
