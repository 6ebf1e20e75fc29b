"""Sliced (tiled) inference for large frames with small objects: drone and aerial video.

Each frame is cut into overlapping tiles that run through the model as one batch. Instance detections are
mapped back to the frame with their box-local masks (memory stays bounded: no full-frame mask per tile
instance) and duplicates across tile seams are merged; an optional full-frame pass catches objects larger
than a tile. Semantic models are tiled too: each tile's logits are resized to the tile, weighted by a ramp
that fades out towards tile edges, summed, and the argmax taken over the blended logits.

Both wrappers keep the interface of the model they wrap, so the pipeline runs them unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F
import torchvision
from numpy.typing import NDArray

from rtseg.errors import ConfigError
from rtseg.models.semantic import SemanticModel
from rtseg.models.yolo_seg import Prepared, YoloSegModel
from rtseg.postprocess.morphology import clean_labels
from rtseg.types import FrameResult, InstanceMasks

MERGES = ("nmm", "nms")


def plan_tiles(image_hw: tuple[int, int], tile: int, overlap: float) -> list[tuple[int, int, int, int]]:
    """Tile boxes (x0, y0, x1, y1) covering the frame, ``tile`` pixels square, overlapping by ``overlap``.

    The last row and column are pushed back to end on the frame's edge, so every tile has the same size
    (one batch) and no tile pads; a frame smaller than a tile is one tile of the frame's size.
    """
    if tile < 32:
        raise ConfigError(f"tile={tile}: expected at least 32 pixels")
    if not 0.0 <= overlap < 1.0:
        raise ConfigError(f"overlap={overlap}: expected a fraction in [0, 1)")
    h, w = image_hw
    th, tw = min(tile, h), min(tile, w)
    step_y, step_x = max(1, int(th * (1 - overlap))), max(1, int(tw * (1 - overlap)))

    def starts(size: int, t: int, step: int) -> list[int]:
        out = list(range(0, max(size - t, 0) + 1, step))
        if out[-1] + t < size:
            out.append(size - t)
        return out

    return [(x, y, x + tw, y + th) for y in starts(h, th, step_y) for x in starts(w, tw, step_x)]


def _union_masks(masks: InstanceMasks, members: list[int], box: tuple[int, int, int, int]) -> NDArray[np.bool_]:
    x0, y0, x1, y1 = box
    out = np.zeros((y1 - y0, x1 - x0), dtype=bool)
    for i in members:
        crop = masks.crops[i]
        x, y = (int(v) for v in masks.origins_xy[i])
        out[y - y0 : y - y0 + crop.shape[0], x - x0 : x - x0 + crop.shape[1]] |= crop
    return out


def merge_detections(result: FrameResult, *, method: str = "nmm", threshold: float = 0.5) -> FrameResult:
    """Merge duplicates found in several tiles (same class).

    ``nms`` keeps the best-scoring box of each overlapping group (IoU above ``threshold``). ``nmm`` (greedy
    non-maximum merging, as SAHI) takes detections best first and merges into a kept one every detection
    whose intersection covers more than ``threshold`` of the smaller box: boxes and masks become their
    union, the score the best one. An object cut by a seam thus comes out whole.
    """
    n = len(result)
    if n < 2:
        return result
    boxes = torch.from_numpy(result.boxes_xyxy)
    scores = torch.from_numpy(result.scores)
    classes = torch.from_numpy(result.class_ids.astype(np.int64))
    if method == "nms":
        keep = torchvision.ops.batched_nms(boxes, scores, classes, threshold).numpy()
        return result.select(np.sort(keep))
    if method != "nmm":
        raise ConfigError(f"tile_merge={method!r}: expected one of {', '.join(MERGES)}")
    b = result.boxes_xyxy
    areas = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    order = np.lexsort((-areas, -result.scores))  # best first; at equal scores the larger box seeds the group
    groups: list[list[int]] = []
    group_boxes: list[np.ndarray] = []
    for i in order:
        placed = False
        for g, gbox in zip(groups, group_boxes):
            if result.class_ids[g[0]] != result.class_ids[i]:
                continue
            iw = min(gbox[2], b[i, 2]) - max(gbox[0], b[i, 0])
            ih = min(gbox[3], b[i, 3]) - max(gbox[1], b[i, 1])
            if iw <= 0 or ih <= 0:
                continue
            smaller = min(areas[i], (gbox[2] - gbox[0]) * (gbox[3] - gbox[1]))
            if iw * ih > threshold * max(smaller, 1e-9):
                g.append(int(i))
                gbox[:2] = np.minimum(gbox[:2], b[i, :2])
                gbox[2:] = np.maximum(gbox[2:], b[i, 2:])
                placed = True
                break
        if not placed:
            groups.append([int(i)])
            group_boxes.append(b[i].astype(np.float32).copy())
    if len(groups) == n:
        return result.select(np.sort(order))
    crops, origins = [], []
    for g in groups if result.masks is not None else []:
        if len(g) == 1:
            crops.append(result.masks.crops[g[0]])
            origins.append(result.masks.origins_xy[g[0]])
            continue
        xs = [int(result.masks.origins_xy[i][0]) for i in g]
        ys = [int(result.masks.origins_xy[i][1]) for i in g]
        x1 = max(x + result.masks.crops[i].shape[1] for x, i in zip(xs, g))
        y1 = max(y + result.masks.crops[i].shape[0] for y, i in zip(ys, g))
        box = (min(xs), min(ys), x1, y1)
        crops.append(_union_masks(result.masks, g, box))
        origins.append(box[:2])
    masks = InstanceMasks(tuple(crops), np.asarray(origins, np.int32)) if result.masks is not None else None
    return FrameResult(result.frame_index, result.image_hw, np.stack(group_boxes),
                       np.array([result.scores[g[0]] for g in groups], np.float32),
                       np.array([result.class_ids[g[0]] for g in groups], np.int32), masks,
                       timestamp_s=result.timestamp_s, timings=result.timings)


@dataclass(frozen=True)
class TiledPrepared:
    """The tiles of one frame as one batch, and the optional full-frame pass."""

    tiles: Prepared
    boxes: tuple[tuple[int, int, int, int], ...]
    full: Prepared | None
    image_hw: tuple[int, int]


def _shift(result: FrameResult, dx: int, dy: int, image_hw: tuple[int, int]) -> FrameResult:
    boxes = result.boxes_xyxy + np.array([dx, dy, dx, dy], np.float32)
    masks = result.masks
    if masks is not None:
        masks = InstanceMasks(masks.crops, masks.origins_xy + np.array([dx, dy], np.int32))
    return replace(result, image_hw=image_hw, boxes_xyxy=boxes, masks=masks)


class TiledYoloSeg:
    """A :class:`YoloSegModel` run on overlapping tiles of each frame (one frame per call).

    Args:
        model: the model to run on each tile (its ``imgsz`` should be about the tile size).
        tile: tile size in frame pixels.
        overlap: fraction of a tile shared with its neighbour; objects smaller than ``tile * overlap`` are
            always whole in some tile.
        full_frame: also run the whole (downscaled) frame, for objects larger than a tile.
        merge: ``nmm`` (merge duplicates into their union) or ``nms`` (keep the best).
        merge_threshold: overlap (over the smaller box for ``nmm``, IoU for ``nms``) above which two
            detections of one class are the same object.
        tile_batch: tiles per inference call; None runs all tiles of a frame as one batch.
    """

    def __init__(self, model: YoloSegModel, *, tile: int = 640, overlap: float = 0.2, full_frame: bool = False,
                 merge: str = "nmm", merge_threshold: float = 0.5, tile_batch: int | None = None) -> None:
        if merge not in MERGES:
            raise ConfigError(f"tile_merge={merge!r}: expected one of {', '.join(MERGES)}")
        plan_tiles((tile, tile), tile, overlap)  # validates tile and overlap
        self.model, self.tile, self.overlap = model, tile, overlap
        self.full_frame, self.merge, self.merge_threshold = full_frame, merge, merge_threshold
        self.tile_batch = tile_batch
        self.backend, self.info, self.names = model.backend, model.info, model.names

    # the rtseg.models.base.InstanceStage protocol
    max_batch = 1  # one frame per call: its tiles are the batch

    @property
    def workers(self) -> int:
        return self.model.workers

    @property
    def device(self) -> torch.device:
        return self.model.device

    @property
    def uses_torch_cpu(self) -> bool:
        return self.model.uses_torch_cpu

    def prepare(self, images: Sequence[NDArray[np.uint8]]) -> TiledPrepared:
        if len(images) != 1:
            raise ValueError("TiledYoloSeg prepares one frame at a time")
        image = images[0]
        hw = (int(image.shape[0]), int(image.shape[1]))
        boxes = plan_tiles(hw, self.tile, self.overlap)
        tiles = self.model.prepare([image[y0:y1, x0:x1] for x0, y0, x1, y1 in boxes])
        full = self.model.prepare([image]) if self.full_frame else None
        return TiledPrepared(tiles, tuple(boxes), full, hw)

    def infer(self, prepared: TiledPrepared):  # noqa: ANN201 - (tile outputs, full-frame outputs or None)
        n = len(prepared.boxes)
        step = self.tile_batch or n
        parts = [self.model.infer(Prepared(prepared.tiles.batch[i : i + step],
                                           prepared.tiles.letterboxes[i : i + step])) for i in range(0, n, step)]
        cat = np.concatenate if isinstance(parts[0][0], np.ndarray) else torch.cat  # ONNX Runtime: NumPy outputs
        tiles = parts[0] if len(parts) == 1 else (cat([p[0] for p in parts]), cat([p[1] for p in parts]))
        full = self.model.infer(prepared.full) if prepared.full is not None else None
        return tiles, full

    def infer_frames(self, prepared: Sequence[TiledPrepared]) -> list:
        """Each frame's raw outputs, one frame (its tiles) per call."""
        return [self.infer(p) for p in prepared]

    def finish(self, raw, prepared: TiledPrepared, frame_indices: Sequence[int]) -> list[FrameResult]:  # noqa: ANN001
        tiles_raw, full_raw = raw
        index = frame_indices[0]
        parts = [_shift(r, box[0], box[1], prepared.image_hw) for r, box in
                 zip(self.model.finish(tiles_raw, prepared.tiles, [index] * len(prepared.boxes)), prepared.boxes)]
        if full_raw is not None and prepared.full is not None:
            parts.append(self.model.finish(full_raw, prepared.full, [index])[0])
        merged = _concat(parts, index, prepared.image_hw)
        return [merge_detections(merged, method=self.merge, threshold=self.merge_threshold)]

    def __call__(self, images: Sequence[NDArray[np.uint8]], frame_indices: Sequence[int] | None = None
                 ) -> list[FrameResult]:
        out = []
        for i, image in enumerate(images):
            prepared = self.prepare([image])
            out += self.finish(self.infer(prepared), prepared, [frame_indices[i] if frame_indices else i])
        return out


def _concat(parts: list[FrameResult], index: int, image_hw: tuple[int, int]) -> FrameResult:
    if not parts or not any(len(p) for p in parts):
        return FrameResult.empty(index, image_hw)
    parts = [p for p in parts if len(p)]
    crops = tuple(c for p in parts for c in (p.masks.crops if p.masks is not None else ()))
    origins = np.concatenate([p.masks.origins_xy for p in parts if p.masks is not None])
    return FrameResult(index, image_hw, np.concatenate([p.boxes_xyxy for p in parts]),
                       np.concatenate([p.scores for p in parts]), np.concatenate([p.class_ids for p in parts]),
                       InstanceMasks(crops, origins))


@lru_cache(maxsize=8)
def _ramp(h: int, w: int, fade: int) -> torch.Tensor:
    """(h, w) weights: 1 inside, falling linearly to ~0 over ``fade`` pixels towards each edge."""
    def axis(n: int) -> torch.Tensor:
        d = torch.minimum(torch.arange(n), torch.arange(n).flip(0)).float() + 1
        return (d / max(fade, 1)).clamp(max=1.0)

    return axis(h)[:, None] * axis(w)[None, :]


class TiledSemantic:
    """A :class:`SemanticModel` run on overlapping tiles; logits blended across the overlaps.

    The model's reflect padding (``pad``) does not apply here: tile overlaps give each seam real context.
    Blended logits cost classes x frame pixels of float memory (6 classes at 4K: 200 MB).
    """

    def __init__(self, model: SemanticModel, *, tile: int = 640, overlap: float = 0.2) -> None:
        plan_tiles((tile, tile), tile, overlap)
        self.model, self.tile, self.overlap = model, tile, overlap
        self.backend, self.info, self.names = model.backend, model.info, model.names

    @property
    def device(self) -> torch.device:  # the rtseg.models.base.SemanticStage protocol
        return self.model.device

    @property
    def uses_torch_cpu(self) -> bool:
        return self.model.uses_torch_cpu

    def __call__(self, images: Sequence[NDArray[np.uint8]]) -> list[NDArray[np.uint8]]:
        return [self._one(image) for image in images]

    def _one(self, image: NDArray[np.uint8]) -> NDArray[np.uint8]:
        h, w = image.shape[:2]
        boxes = plan_tiles((h, w), self.tile, self.overlap)
        prepared = self.model.prepare([image[y0:y1, x0:x1] for x0, y0, x1, y1 in boxes])
        logits = self.model.infer(prepared).float()
        acc = torch.zeros((logits.shape[1], h, w))
        weight = torch.zeros((h, w))
        fade = max(1, int(self.tile * self.overlap / 2))
        input_h = prepared.batch.shape[2]
        for (x0, y0, x1, y1), lb, lg in zip(boxes, prepared.letterboxes, logits):
            s = lg.shape[1] / input_h  # logits may be coarser than the input (YOLO26-sem: 1/8)
            top, left = lb.top * s, lb.left * s
            rh, rw = lb.resized_hw[0] * s, lb.resized_hw[1] * s
            content = lg[:, int(top) : int(round(top + rh)), int(left) : int(round(left + rw))]
            tile_logits = F.interpolate(content[None], (y1 - y0, x1 - x0), mode="bilinear", align_corners=False)[0]
            ramp = _ramp(y1 - y0, x1 - x0, fade)
            acc[:, y0:y1, x0:x1] += tile_logits * ramp
            weight[y0:y1, x0:x1] += ramp
        labels = (acc / weight.clamp(min=1e-6)).argmax(0).to(torch.uint8).numpy()
        m = self.model
        if m.open_px or m.close_px or m.min_area:
            labels = clean_labels(labels, open_px=m.open_px, close_px=m.close_px, min_area=m.min_area)
        return labels
