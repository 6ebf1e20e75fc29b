"""Sliced inference: tile plans, merging across seams, batched vs tile-by-tile, semantic blending."""

from __future__ import annotations

import cv2
import numpy as np

from rtseg.models.semantic import SemanticModel
from rtseg.models.tiling import TiledSemantic, TiledYoloSeg, plan_tiles
from rtseg.models.yolo_seg import YoloSegModel
from tests.fakes import ColourBackend, SquaresBackend

SIZE_HW = (2160, 3840)


def frame_with_squares(squares: list[tuple[int, int, int]]) -> np.ndarray:
    image = np.full((*SIZE_HW, 3), 40, np.uint8)
    for x, y, s in squares:
        image[y : y + s, x : x + s] = 255
    return image


# tile 640, overlap 0.2: tile columns start every 512 px, so seams (tile edges) lie at 512, 640, 1024, 1152, ...
SEAM_SQUARES = [(600, 300, 80), (1100, 1000, 90), (2020, 1500, 100), (3000, 600, 60), (200, 2050, 100)]


def test_tile_plan_covers_the_frame_with_equal_overlapping_tiles() -> None:
    tiles = plan_tiles(SIZE_HW, 640, 0.2)
    covered = np.zeros(SIZE_HW, np.int32)
    for x0, y0, x1, y1 in tiles:
        assert (x1 - x0, y1 - y0) == (640, 640)
        covered[y0:y1, x0:x1] += 1
    assert covered.min() >= 1
    xs = sorted({t[0] for t in tiles})
    assert all(b - a <= 512 for a, b in zip(xs, xs[1:])) and xs[-1] == 3840 - 640
    assert plan_tiles((300, 500), 640, 0.2) == [(0, 0, 500, 300)]


def test_objects_across_seams_come_out_once_with_their_box() -> None:
    image = frame_with_squares(SEAM_SQUARES)
    raw_tiles = TiledYoloSeg(YoloSegModel(SquaresBackend()), tile=640, overlap=0.2, merge="nms")([image])[0]
    assert len(raw_tiles) > len(SEAM_SQUARES)  # the seams really cut them: nms keeps partial duplicates
    result = TiledYoloSeg(YoloSegModel(SquaresBackend()), tile=640, overlap=0.2)([image])[0]
    assert len(result) == len(SEAM_SQUARES)
    expected = sorted([x, y, x + s, y + s] for x, y, s in SEAM_SQUARES)
    got = sorted(result.boxes_xyxy.round().astype(int).tolist())
    np.testing.assert_allclose(got, expected, atol=1)
    for i in range(len(result)):  # masks stay box-local and cover the square
        crop = result.masks.crops[i]
        x0, y0, x1, y1 = result.boxes_xyxy[i]
        assert crop.shape == (round(y1 - y0), round(x1 - x0)) and crop.mean() > 0.95


def test_batched_tiles_equal_tile_by_tile() -> None:
    image = frame_with_squares(SEAM_SQUARES)
    batched = TiledYoloSeg(YoloSegModel(SquaresBackend()), tile=640, overlap=0.2)([image])[0]
    single = TiledYoloSeg(YoloSegModel(SquaresBackend()), tile=640, overlap=0.2, tile_batch=1)([image])[0]
    np.testing.assert_array_equal(batched.boxes_xyxy, single.boxes_xyxy)
    np.testing.assert_array_equal(batched.scores, single.scores)
    for a, b in zip(batched.masks.crops, single.masks.crops):
        np.testing.assert_array_equal(a, b)


def test_full_frame_pass_keeps_an_object_larger_than_a_tile_whole() -> None:
    image = frame_with_squares([(900, 500, 1200)])
    result = TiledYoloSeg(YoloSegModel(SquaresBackend()), tile=640, overlap=0.2, full_frame=True)([image])[0]
    assert len(result) == 1
    np.testing.assert_allclose(result.boxes_xyxy[0], [900, 500, 2100, 1700], atol=8)


def test_semantic_tiles_blend_to_the_exact_labels() -> None:
    rng = np.random.default_rng(0)
    coarse = rng.integers(0, 3, (27, 48)).astype(np.uint8)
    truth = cv2.resize(coarse, SIZE_HW[::-1], interpolation=cv2.INTER_NEAREST)
    image = np.zeros((*SIZE_HW, 3), np.uint8)
    image[..., 2] = np.array([25, 128, 230], np.uint8)[truth]  # red channel in BGR
    tiled = TiledSemantic(SemanticModel(ColourBackend()), tile=640, overlap=0.25)([image])[0]
    assert tiled.shape == SIZE_HW
    assert (tiled == truth).mean() > 0.995
    full = SemanticModel(ColourBackend())([image])[0]  # one 640 pass over the whole 4K frame
    assert (full == truth).mean() < (tiled == truth).mean()  # tiling sees the small regions better
