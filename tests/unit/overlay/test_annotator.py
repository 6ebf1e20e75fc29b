"""The annotator: masks blended inside their pixels only, boxes and labels, the semantic layer and its legend."""

from __future__ import annotations

import numpy as np
import pytest

from rtseg.overlay.annotator import Annotator
from rtseg.overlay.palette import color_for
from rtseg.types import FrameResult, InstanceMasks
from tests.fakes import make_result


def test_masks_blend_only_inside_masks() -> None:
    result = make_result(hw=(40, 60))
    image = np.full((40, 60, 3), 100, np.uint8)
    out = Annotator(("a", "b", "c"), alpha=0.5, boxes=False, labels=False).draw(image, result)
    union = np.zeros((40, 60), bool)
    for i in range(len(result)):
        union |= result.masks.to_dense(i, (40, 60))
    assert (out[~union] == 100).all() and (image == 100).all()  # outside untouched, input not modified
    expected = (100 * 0.5 + np.array(color_for(0)) * 0.5).astype(np.uint8)
    np.testing.assert_array_equal(out[1, 1], expected)


@pytest.mark.parametrize("alpha", [0.45, 0.3, 1.0])
def test_mask_blend_matches_the_float_formula_pixel_for_pixel(alpha) -> None:
    # the annotator blends through a lookup table; the reference is the per-pixel float32 formula, truncated
    rng = np.random.default_rng(7)
    image = rng.integers(0, 256, (70, 90, 3), dtype=np.uint8)
    crops = (rng.random((30, 40)) > 0.4, rng.random((20, 25)) > 0.5, rng.random((70, 90)) > 0.8)
    origins = np.array([[0, 0], [65, 50], [0, 0]], np.int32)  # one at the top left, one at the bottom right
    boxes = np.array([[0, 0, 40, 30], [65, 50, 90, 70], [0, 0, 90, 70]], np.float32)
    result = FrameResult(0, (70, 90), boxes, np.full(3, 0.9, np.float32), np.array([0, 1, 0], np.int32),
                         InstanceMasks(crops, origins))
    annotator = Annotator(("a", "b"), alpha=alpha, boxes=False, labels=False)
    ref = image.copy()
    for crop, (x, y), colour in zip(crops, origins, annotator.colours(result)):
        roi = ref[y : y + crop.shape[0], x : x + crop.shape[1]]
        pixels = roi[crop].astype(np.float32)
        roi[crop] = (pixels * (1.0 - alpha) + np.array(colour, np.float32) * alpha).astype(np.uint8)
    out = annotator.draw(image, result)
    assert (out != image).any()
    np.testing.assert_array_equal(out, ref)


def test_boxes_and_labels_are_drawn() -> None:
    result = make_result(hw=(60, 80))
    out = Annotator(("a", "b", "c"), alpha=0.0, hud=True).draw(np.zeros((60, 80, 3), np.uint8), result, fps=9.5)
    assert out.any()


def test_semantic_layer_blends_classes_leaves_background_and_draws_a_legend() -> None:
    from dataclasses import replace

    from rtseg.types import FrameResult

    names, palette = ("background", "road", "water"), ((0, 0, 0), (0, 0, 200), (200, 0, 0))
    labels = np.zeros((200, 300), np.uint8)
    labels[:, 100:200], labels[:, 200:] = 1, 2
    image = np.full((200, 300, 3), 100, np.uint8)
    result = replace(FrameResult.empty(0, (200, 300)), semantic=labels)
    annotator = Annotator((), semantic_names=names, semantic_palette=palette, semantic_alpha=0.5, legend=False)
    out = annotator.draw(image, result)
    assert (out[:, :100] == 100).all()  # background stays as it was
    np.testing.assert_allclose(out[:, 100:200], np.broadcast_to([50, 50, 150], (200, 100, 3)), atol=1)
    np.testing.assert_allclose(out[:, 200:], np.broadcast_to([150, 50, 50], (200, 100, 3)), atol=1)
    with_legend = Annotator((), semantic_names=names, semantic_palette=palette, semantic_alpha=0.5).draw(image, result)
    assert (with_legend[150:, :100] != 100).any() and (with_legend[:100] == out[:100]).all()


def test_semantic_layer_in_place_when_every_class_is_coloured() -> None:
    from dataclasses import replace

    from rtseg.types import FrameResult

    labels = np.zeros((50, 60), np.uint8)
    labels[:, 30:] = 1
    image = np.full((50, 60, 3), 100, np.uint8)
    result = replace(FrameResult.empty(0, (50, 60)), semantic=labels)
    out = Annotator((), semantic_names=("road", "water"), semantic_palette=((0, 0, 200), (200, 0, 0)),
                    semantic_alpha=0.5, legend=False).draw(image, result)
    assert out[:, :30].tolist() == np.broadcast_to([50, 50, 150], (50, 30, 3)).tolist()
    assert out[:, 30:].tolist() == np.broadcast_to([150, 50, 50], (50, 30, 3)).tolist()
    assert (image == 100).all()
