from __future__ import annotations

import numpy as np
import pytest

from rtseg.types import FrameResult, InstanceMasks, StageTimings
from tests.fakes import make_result


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"boxes_xyxy": np.zeros((2, 3))}, "boxes_xyxy"),
    ({"scores": np.zeros(2)}, "scores"),
    ({"class_ids": np.zeros((3, 1))}, "class_ids"),
    ({"masks": InstanceMasks((), np.zeros((0, 2)))}, "masks"),
])
def test_frame_result_rejects_inconsistent_fields(kwargs, message) -> None:
    good = make_result()
    fields = {"frame_index": 0, "image_hw": (40, 60), "boxes_xyxy": good.boxes_xyxy, "scores": good.scores,
              "class_ids": good.class_ids, "masks": good.masks, **kwargs}
    with pytest.raises(ValueError, match=message):
        FrameResult(**fields)


def test_instance_masks_reject_non_bool_crops() -> None:
    with pytest.raises(ValueError, match="bool"):
        InstanceMasks((np.ones((2, 2), np.uint8),), np.zeros((1, 2)))


def test_select_and_empty() -> None:
    r = make_result()
    picked = r.select(np.array([True, False, True]))
    assert len(picked) == 2 and picked.class_ids.tolist() == [0, 2]
    assert picked.masks.crops[1].shape == (6, 7) and picked.masks.origins_xy[1].tolist() == [20, 10]
    assert len(r.select(np.array([2]))) == 1
    empty = FrameResult.empty(3, (10, 10))
    assert len(empty) == 0 and empty.boxes_xyxy.shape == (0, 4) and len(empty.masks) == 0


def test_to_dense_places_crop() -> None:
    r = make_result()
    dense = r.masks.to_dense(1, r.image_hw)
    assert dense.sum() == 5 * 6 and dense[5:10, 10:16].all() and r.masks.areas().tolist() == [20, 30, 42]


def test_timings_in_ms() -> None:
    t = StageTimings(infer_ns=2_500_000, capture_ns=1, done_ns=10_000_001)
    ms = t.as_ms()
    assert ms["infer"] == 2.5 and ms["latency"] == 10.0
