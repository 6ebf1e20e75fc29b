"""Letterbox and the input batch against Ultralytics' own implementation."""

from __future__ import annotations

import numpy as np
import pytest

from rtseg.preprocess.letterbox import apply_letterbox, plan_letterbox, to_input_batch

SHAPES = [(720, 1280), (1080, 1920), (480, 640), (333, 500), (640, 427), (101, 977), (2160, 3840)]


@pytest.mark.parametrize("image_hw", SHAPES)
@pytest.mark.parametrize("rect", [True, False], ids=["rect", "square"])
@pytest.mark.parametrize("imgsz", [320, 640])
def test_letterbox_equals_ultralytics(image_hw, rect, imgsz) -> None:
    from ultralytics.data.augment import LetterBox

    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (*image_hw, 3), dtype=np.uint8)
    ref = LetterBox((imgsz, imgsz), auto=rect, stride=32)(image=image)
    lb = plan_letterbox(image_hw, (imgsz, imgsz), rect=rect, stride=32)
    ours = apply_letterbox(image, lb)
    assert ours.shape == ref.shape == (*lb.input_hw, 3)
    np.testing.assert_array_equal(ours, ref)


def test_input_batch_is_rgb_chw_unit_range() -> None:
    image = np.zeros((2, 3, 3), np.uint8)
    image[..., 0] = 255  # blue in BGR
    batch = to_input_batch([image])
    assert batch.shape == (1, 3, 2, 3) and batch.dtype == np.float32
    assert batch[0, 2].max() == 1.0 and batch[0, 0].max() == 0.0  # blue ends up in the last (RGB) channel
