"""Letterbox, NMS, box-local masks and RLE against Ultralytics' and pycocotools' own implementations."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from pycocotools import mask as mask_utils

from rtseg.postprocess.masks import box_local_masks
from rtseg.postprocess.nms import boxes_to_frame, select_end2end, select_nms
from rtseg.postprocess.rle import encode_crop
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


def _random_head(rng: np.random.Generator, n: int, nc: int, nm: int, hw: tuple[int, int]) -> torch.Tensor:
    h, w = hw
    xy = rng.uniform(0, 1, (n, 2)) * [w, h]
    wh = rng.uniform(4, 0.5 * min(h, w), (n, 2))
    xy[: n // 2] = xy[0] + rng.normal(0, 6, (n // 2, 2))  # a cluster, so NMS has work to do
    scores = rng.uniform(0, 1, (n, nc)) ** 4
    coefs = rng.normal(0, 1, (n, nm))
    return torch.from_numpy(np.concatenate([xy, wh, scores, coefs], 1).T.astype(np.float32))


@pytest.mark.parametrize("classes", [None, [0, 2]])
@pytest.mark.parametrize("agnostic", [False, True])
def test_nms_equals_ultralytics(classes, agnostic) -> None:
    from ultralytics.utils.nms import non_max_suppression

    rng = np.random.default_rng(1)
    pred = _random_head(rng, 800, 5, 4, (384, 640))
    ref = non_max_suppression(pred[None].clone(), 0.25, 0.5, classes=classes, agnostic=agnostic, nc=5)[0]
    ours = select_nms(pred, nc=5, conf=0.25, iou=0.5, classes=classes, agnostic=agnostic)
    assert len(ours) > 5
    torch.testing.assert_close(ours, ref)


def test_end2end_filter_equals_ultralytics() -> None:
    from ultralytics.utils.nms import non_max_suppression

    rng = np.random.default_rng(2)
    rows = np.concatenate([rng.uniform(0, 300, (300, 4)), np.sort(rng.uniform(0, 1, (300, 1)), 0)[::-1],
                           rng.integers(0, 4, (300, 1)), rng.normal(0, 1, (300, 8))], 1).astype(np.float32)
    pred = torch.from_numpy(rows)
    ref = non_max_suppression(pred[None].clone(), 0.3, 0.7, classes=[1, 3], end2end=True, max_det=50)[0]
    torch.testing.assert_close(select_end2end(pred, conf=0.3, classes=[1, 3], max_det=50), ref)


@pytest.mark.parametrize("image_hw", [(720, 1280), (480, 640), (333, 500), (640, 427), (2160, 3840)])
@pytest.mark.parametrize("imgsz", [320, 640])
def test_box_local_masks_equal_ultralytics_native_masks(image_hw, imgsz) -> None:
    """Same pixels as Ultralytics' full-frame process_mask_native, computed inside each box only."""
    from ultralytics.utils import ops

    rng = np.random.default_rng(3)
    lb = plan_letterbox(image_hw, (imgsz, imgsz), rect=True, stride=32)
    mh, mw = lb.input_hw[0] // 4, lb.input_hw[1] // 4
    # smooth prototypes, like real ones: random fields blurred by upsampling a coarse grid
    coarse = torch.from_numpy(rng.normal(0, 1, (1, 8, mh // 8 + 1, mw // 8 + 1)).astype(np.float32))
    protos = torch.nn.functional.interpolate(coarse, (mh, mw), mode="bicubic")[0]
    coefs = torch.from_numpy(rng.normal(0, 1, (12, 8)).astype(np.float32))
    x1y1 = rng.uniform(0, 0.7, (12, 2)) * [lb.input_hw[1], lb.input_hw[0]]
    x2y2 = x1y1 + rng.uniform(10, 0.5 * min(lb.input_hw), (12, 2))
    boxes_in = torch.from_numpy(np.concatenate([x1y1, x2y2], 1).astype(np.float32))
    boxes = boxes_to_frame(boxes_in, lb)
    ref_boxes = ops.scale_boxes(lb.input_hw, boxes_in.clone(), image_hw)
    torch.testing.assert_close(boxes, ref_boxes)
    ref = ops.process_mask_native(protos, coefs, ref_boxes, image_hw).numpy().astype(bool)
    masks, nonempty = box_local_masks(protos, coefs, boxes, lb)
    assert len(masks) == 12
    for i in range(12):
        dense = masks.to_dense(i, image_hw)
        differ = int((dense != ref[i]).sum())
        assert differ <= max(2, ref[i].sum() // 2000), f"mask {i}: {differ} pixels differ"
        assert nonempty[i] == ref[i].any()


def test_masks_never_leave_their_box() -> None:
    lb = plan_letterbox((480, 640), (320, 320), rect=True)
    protos = torch.ones((4, lb.input_hw[0] // 4, lb.input_hw[1] // 4))
    boxes = torch.tensor([[10.2, 20.7, 100.5, 200.1], [600.0, 400.0, 640.0, 480.0]])
    masks, nonempty = box_local_masks(protos, torch.ones((2, 4)), boxes, lb)
    assert nonempty.all()
    assert tuple(masks.origins_xy[0]) == (11, 21) and masks.crops[0].shape == (201 - 21, 101 - 11)
    assert masks.crops[0].all() and tuple(masks.origins_xy[1]) == (600, 400)


@pytest.mark.parametrize("seed", range(40))
def test_rle_of_crop_equals_pycocotools(seed) -> None:
    rng = np.random.default_rng(seed)
    h, w = (int(v) for v in rng.integers(1, 60, 2))
    ch, cw = int(rng.integers(0, h + 1)), int(rng.integers(0, w + 1))
    y0, x0 = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
    crop = rng.random((ch, cw)) < rng.random()
    full = np.zeros((h, w), np.uint8)
    full[y0 : y0 + ch, x0 : x0 + cw] = crop
    rle = encode_crop(crop, (x0, y0), (h, w))
    assert rle["counts"] == mask_utils.encode(np.asfortranarray(full))["counts"].decode()
    np.testing.assert_array_equal(mask_utils.decode({"size": rle["size"], "counts": rle["counts"].encode()}), full)
