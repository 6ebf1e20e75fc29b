"""The annotator's labels, HUD and instance colours, checked on the pixels it draws."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rtseg.errors import ConfigError
from rtseg.overlay.annotator import Annotator
from rtseg.overlay.device import blend_masks_on_device
from rtseg.overlay.palette import color_for
from rtseg.types import FrameResult, InstanceMasks

HUD_GREY = (40, 40, 40)


def boxes_result(boxes: list[tuple[int, int, int, int]], classes: list[int], *, frame_index: int = 5,
                 hw: tuple[int, int] = (240, 320), track_ids: list[int] | None = None) -> FrameResult:
    """Instances whose masks fill their boxes."""
    crops = tuple(np.ones((y2 - y1, x2 - x1), bool) for x1, y1, x2, y2 in boxes)
    origins = np.array([(x1, y1) for x1, y1, _, _ in boxes], np.int32).reshape(-1, 2)
    return FrameResult(frame_index, hw, np.array(boxes, np.float32).reshape(-1, 4),
                       np.full(len(boxes), 0.9, np.float32), np.array(classes, np.int32),
                       InstanceMasks(crops, origins),
                       track_ids=None if track_ids is None else np.array(track_ids, np.int64))


def count(image: np.ndarray, colour: tuple[int, int, int]) -> int:
    return int((image == np.array(colour, np.uint8)).all(axis=2).sum())


def labels_only(**kwargs) -> Annotator:  # noqa: ANN003
    """Labels (and the HUD when asked) but no masks or boxes: every pixel of a label's colour is its fill."""
    return Annotator(("person", "cat", "dog"), alpha=0.0, boxes=False, **kwargs)


@pytest.mark.parametrize("box", [(0, 0, 80, 100), (2, 3, 60, 60), (0, 10, 200, 120)])
def test_hud_does_not_cover_the_label_of_a_box_in_the_top_left_corner(box) -> None:
    image = np.full((240, 320, 3), 200, np.uint8)
    result = boxes_result([box], [1])
    label_colour = color_for(1)
    label_alone = count(labels_only(hud=False).draw(image, result), label_colour)
    hud_alone = count(Annotator(("person", "cat", "dog"), alpha=0.0, boxes=False, labels=False, hud=True)
                      .draw(image, result), HUD_GREY)
    both = labels_only(hud=True).draw(image, result)
    assert label_alone > 100 and hud_alone > 100
    assert count(both, label_colour) == label_alone  # the whole label is visible
    assert count(both, HUD_GREY) == hud_alone  # and so is the whole HUD


def test_label_of_a_box_at_the_right_edge_stays_in_the_frame() -> None:
    image = np.full((240, 320, 3), 200, np.uint8)
    middle = count(labels_only().draw(image, boxes_result([(100, 100, 140, 140)], [2])), color_for(2))
    edge = labels_only().draw(image, boxes_result([(310, 100, 320, 140)], [2]))
    assert count(edge, color_for(2)) == middle


def test_hud_fps_is_the_smoothed_rate_not_the_latest_frames() -> None:
    """A pipeline whose frames alternate between 9 and 73 FPS runs at 16 FPS; the HUD says so, steadily."""
    annotator = Annotator(("a",), hud=True)
    shown = [annotator.smoothed_fps(fps) for fps in (9.0, 73.0) * 60]  # 120 frames, 7.5 s
    assert all(v is None for v in shown[:8])  # the first 0.5 s of warm-up rates are not shown
    settled = [v for v in shown[8:]]
    assert all(14.0 <= v <= 17.0 for v in settled), settled
    changes = sum(a != b for a, b in zip(settled, settled[1:]))
    assert changes <= 2 * 7.5  # refreshed at most twice a second, not every frame


def test_hud_draws_the_smoothed_rate() -> None:
    """The HUD text drawn after alternating rates is the one a steady 16 FPS draws, not 73's or 9's."""
    image = np.zeros((120, 400, 3), np.uint8)
    result = boxes_result([], [], hw=(120, 400))

    def hud(rates: list[float]) -> np.ndarray:
        annotator = Annotator(("a",), hud=True)
        for fps in rates[:-1]:
            annotator.smoothed_fps(fps)
        return annotator.draw(image, result, fps=rates[-1])[:30]

    alternating = hud([9.0, 73.0] * 20 + [73.0])
    assert (alternating == hud([16.0] * 41)).all()
    assert (alternating != hud([73.0] * 41)).any() and (alternating != hud([9.0] * 41)).any()


def test_overlapping_instances_of_one_class_get_their_own_colours() -> None:
    image = np.full((240, 320, 3), 120, np.uint8)
    result = boxes_result([(40, 40, 160, 200), (120, 50, 240, 210)], [0, 0])  # two people, overlapping
    out = Annotator(("person",), boxes=False, labels=False).draw(image, result)
    left, right = out[100, 60], out[100, 220]
    assert (left != right).any()
    same = Annotator(("person",), boxes=False, labels=False, colour_by="class").draw(image, result)
    assert (same[100, 60] == same[100, 220]).all()


def test_instance_colours_follow_position_not_score_order() -> None:
    """A still scene keeps its colours when the scores (the result's order) change from frame to frame."""
    boxes = [(10, 10, 60, 60), (100, 20, 150, 80), (200, 30, 260, 90)]
    annotator = Annotator(("person",))
    a = annotator.colours(boxes_result(boxes, [0, 0, 0]))
    b = annotator.colours(boxes_result(boxes[::-1], [0, 0, 0]))
    assert a == b[::-1] and len(set(a)) == 3


def test_labels_keep_the_class_colour_and_name() -> None:
    image = np.full((240, 320, 3), 200, np.uint8)
    result = boxes_result([(20, 60, 100, 200), (150, 60, 230, 200)], [0, 0])
    out = labels_only().draw(image, result)
    one = labels_only().draw(image, boxes_result([(20, 60, 100, 200)], [0]))
    assert count(out, color_for(0)) == 2 * count(one, color_for(0)) > 0  # both labels in the person colour


def test_tracks_keep_their_colour() -> None:
    annotator = Annotator(("person",))
    result = boxes_result([(10, 10, 60, 60), (100, 20, 150, 80)], [0, 0], track_ids=[7, 3])
    assert annotator.colours(result) == [color_for(7), color_for(3)]


def test_a_palette_colours_by_class_unless_told_otherwise() -> None:
    palette = ((1, 2, 3), (4, 5, 6))
    result = boxes_result([(10, 10, 60, 60), (100, 20, 150, 80)], [1, 1])
    assert Annotator(("a", "b"), palette=palette).colours(result) == [(4, 5, 6), (4, 5, 6)]
    assert len(set(Annotator(("a", "b"), palette=palette, colour_by="instance").colours(result))) == 2
    with pytest.raises(ConfigError, match="colour_by"):
        Annotator(("a",), colour_by="track")


def test_device_blend_matches_the_cpu_with_instance_colours() -> None:
    rng = np.random.default_rng(11)
    image = rng.integers(0, 256, (120, 160, 3), dtype=np.uint8)
    result = boxes_result([(10, 10, 90, 110), (50, 20, 140, 100), (100, 5, 160, 60)], [0, 0, 0], hw=(120, 160))
    annotator = Annotator(("person",), alpha=0.45, boxes=False, labels=False)
    assert len(set(annotator.colours(result))) == 3
    ref = annotator.draw(image, result)
    frame = torch.from_numpy(image.copy())
    blend_masks_on_device(frame, [torch.from_numpy(c) for c in result.masks.crops], result.masks.origins_xy,
                          annotator.colours(result), annotator.alpha)
    np.testing.assert_array_equal(frame.numpy(), ref)
