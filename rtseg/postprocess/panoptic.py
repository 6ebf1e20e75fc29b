"""Panoptic fusion: an instance model's things over a semantic model's stuff, every pixel one segment.

The rule is the one Detectron2 and the COCO panoptic baselines use. Instances are pasted in descending score
order, each onto the pixels no higher-scoring instance took (so overlaps go to the higher score); an instance
whose mask is more than ``overlap`` covered already is dropped as a duplicate. The pixels left over take their
semantic class as stuff, one segment per class; a stuff segment smaller than ``min_area`` pixels is removed
(void). Semantic classes that share a name with an instance class (``person`` in both models) are things:
their pixels that no instance claims stay void rather than becoming an instance-less "person" region.

Instance masks stay box-local until here: each is pasted only inside its crop, so the cost grows with mask
area, not with instances x frame size. The segment-id map is the one full-frame array.

Segment ids are written to PNG as COCO panoptic does: ``id = R + 256 G + 256^2 B`` (:func:`ids_to_rgb`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from numpy.typing import NDArray

from rtseg.types import FrameResult, PanopticResult

VOID_NAMES = ("unlabeled", "unlabelled", "void", "ignore")  # semantic classes that are no segment at all


@dataclass(frozen=True)
class Category:
    """One panoptic category: ``id`` as written to ``category_id``; ``source`` the class id in its model."""

    id: int
    name: str
    isthing: bool
    source: int


def categories(names: tuple[str, ...], semantic_names: tuple[str, ...] = ()) -> tuple[Category, ...]:
    """The panoptic categories of an instance + semantic model pair.

    Things are the instance classes (``id = class_id + 1``); stuff are the semantic classes that are neither
    named like an instance class nor void-like (``id = len(names) + 1 + semantic_class_id``), so ids are
    unique, stable for a model pair, and never 0.

    Example:
        >>> [(c.id, c.name, c.isthing) for c in categories(("person", "car"), ("background", "person", "road"))]
        [(1, 'person', True), (2, 'car', True), (3, 'background', False), (5, 'road', False)]
    """
    things = tuple(Category(k + 1, n, True, k) for k, n in enumerate(names))
    lower = {n.lower() for n in names}
    stuff = tuple(Category(len(names) + 1 + j, n, False, j) for j, n in enumerate(semantic_names)
                  if n.lower() not in lower and n.strip("_ ").lower() not in VOID_NAMES)
    return things + stuff


def fuse_panoptic(result: FrameResult, names: tuple[str, ...] | None = None,
                  semantic_names: tuple[str, ...] | None = None, *, min_area: int = 0,
                  overlap: float = 0.5) -> PanopticResult:
    """Fuse a result's instances and semantic labels into one panoptic map.

    Args:
        result: a frame's instances (box-local masks; instances without masks are skipped) and, optionally,
            its semantic label map.
        names, semantic_names: the models' class names (default: the result's own).
        min_area: stuff segments with fewer pixels than this become void.
        overlap: an instance whose mask lies more than this fraction under higher-scoring instances is
            dropped (a duplicate); below it, it keeps its free pixels.

    Returns:
        The :class:`~rtseg.types.PanopticResult`: things first (by descending score), then stuff (by class id).

    Example:
        >>> import numpy as np
        >>> from rtseg.types import FrameResult, InstanceMasks
        >>> labels = np.zeros((4, 6), np.uint8)                       # all "background"
        >>> r = FrameResult(0, (4, 6), [[0, 0, 2, 2]], [0.9], [0], InstanceMasks((np.ones((2, 2), bool),), [[0, 0]]),
        ...                 semantic=labels, names=("person",), semantic_names=("background",))
        >>> p = fuse_panoptic(r)
        >>> [(s["id"], s["category_name"], s["area"]) for s in p.segments_info()]
        [(1, 'person', 4), (2, 'background', 20)]
    """
    names = result.names if names is None else names
    semantic_names = result.semantic_names if semantic_names is None else semantic_names
    cats = categories(names, semantic_names)
    h, w = result.image_hw
    ids = np.zeros((h, w), np.int32)
    cat_ids: list[int] = []
    cat_names: list[str] = []
    things: list[bool] = []
    areas: list[int] = []
    boxes: list[tuple[int, int, int, int]] = []
    instances: list[int] = []
    thing_names = {c.source: c.name for c in cats if c.isthing}
    masks = result.masks
    if masks is not None:
        for i in np.argsort(-result.scores, kind="stable"):
            crop = masks.crops[i]
            x0, y0 = (int(v) for v in masks.origins_xy[i])
            # a crop may reach past the frame's edge: keep its part inside
            cx, cy = max(0, -x0), max(0, -y0)
            x0, y0 = max(0, x0), max(0, y0)
            crop = crop[cy:, cx:][: h - y0, : w - x0]
            area = int(np.count_nonzero(crop))
            if area == 0:
                continue
            region = ids[y0 : y0 + crop.shape[0], x0 : x0 + crop.shape[1]]
            free = crop & (region == 0)
            kept = int(np.count_nonzero(free))
            if kept == 0 or (area - kept) / area > overlap:
                continue
            region[free] = len(cat_ids) + 1
            cls = int(result.class_ids[i])
            cat_ids.append(cls + 1)
            cat_names.append(thing_names.get(cls, str(cls)))
            things.append(True)
            areas.append(kept)
            boxes.append(_box(free, x0, y0))
            instances.append(int(i))
    if result.semantic is not None:
        stuff_of = {c.source: c for c in cats if not c.isthing}
        void = ids == 0
        counts = np.bincount(result.semantic[void], minlength=256)
        seg_of_label = np.zeros(256, np.int32)
        for label in np.flatnonzero(counts):
            cat = stuff_of.get(int(label))
            if cat is None or counts[label] < max(1, min_area):
                continue
            seg_of_label[label] = len(cat_ids) + 1
            cat_ids.append(cat.id)
            cat_names.append(cat.name)
            things.append(False)
            areas.append(int(counts[label]))
            boxes.append((0, 0, 0, 0))
            instances.append(-1)
        if not all(things):  # some stuff kept
            ids[void] = seg_of_label[result.semantic[void]]
            for k in range(len(cat_ids)):
                if not things[k]:
                    boxes[k] = _box(ids == k + 1, 0, 0)
    return PanopticResult(ids, np.array(cat_ids, np.int32).reshape(-1), tuple(cat_names),
                          np.array(things, np.bool_).reshape(-1), np.array(areas, np.int64).reshape(-1),
                          np.array(boxes, np.int32).reshape(-1, 4), np.array(instances, np.int32).reshape(-1))


def _box(mask: NDArray[np.bool_], x0: int, y0: int) -> tuple[int, int, int, int]:
    """Tight (x, y, w, h) box of a mask whose top-left pixel sits at (x0, y0) in the frame."""
    cols, rows = np.flatnonzero(mask.any(0)), np.flatnonzero(mask.any(1))
    if not len(cols):
        return 0, 0, 0, 0
    return x0 + int(cols[0]), y0 + int(rows[0]), int(cols[-1] - cols[0] + 1), int(rows[-1] - rows[0] + 1)


class PanopticFuser:
    """The pipeline's fusion step for one stream: ``fuser(result)`` returns the result with ``panoptic`` set
    (results without semantic labels pass unchanged)."""

    def __init__(self, names: tuple[str, ...], semantic_names: tuple[str, ...], *, min_area: int = 0,
                 overlap: float = 0.5) -> None:
        self.names, self.semantic_names = names, semantic_names
        self.min_area, self.overlap = int(min_area), float(overlap)

    def __call__(self, result: FrameResult) -> FrameResult:
        if result.semantic is None:
            return result
        return replace(result, panoptic=fuse_panoptic(result, self.names, self.semantic_names,
                                                      min_area=self.min_area, overlap=self.overlap))


def ids_to_rgb(ids: NDArray[np.integer]) -> NDArray[np.uint8]:
    """COCO panoptic PNG pixels of a segment-id map: (H, W, 3) uint8 RGB with ``id = R + 256 G + 256^2 B``.

    Example:
        >>> ids_to_rgb(np.array([[0, 1, 256 + 2]])).tolist()
        [[[0, 0, 0], [1, 0, 0], [2, 1, 0]]]
    """
    ids = np.asarray(ids, np.int64)
    if ids.size and (ids.min() < 0 or ids.max() >= 256**3):
        raise ValueError(f"ids: expected 0..{256**3 - 1}, got {ids.min()}..{ids.max()}")
    return np.stack([ids % 256, ids // 256 % 256, ids // 65536], axis=-1).astype(np.uint8)


def rgb_to_ids(rgb: NDArray[np.uint8]) -> NDArray[np.int32]:
    """Segment ids from COCO panoptic PNG pixels ((H, W, 3) RGB), the inverse of :func:`ids_to_rgb`.

    Example:
        >>> rgb_to_ids(np.array([[[2, 1, 0]]], np.uint8)).tolist()
        [[258]]
    """
    rgb = np.asarray(rgb, np.int32)
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"rgb: expected (H, W, 3), got {rgb.shape}")
    return (rgb[..., 0] + 256 * rgb[..., 1] + 65536 * rgb[..., 2]).astype(np.int32)
