"""Box-local masks against Ultralytics' full-frame native masks, from tensors and from NumPy arrays (ONNX
Runtime's outputs, post-processed without PyTorch)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rtseg.postprocess.masks import box_local_masks
from rtseg.postprocess.nms import boxes_to_frame
from rtseg.preprocess.letterbox import plan_letterbox


@pytest.mark.parametrize("kind", ["tensor", "numpy"])
@pytest.mark.parametrize("image_hw", [(720, 1280), (480, 640), (333, 500), (640, 427), (2160, 3840)])
@pytest.mark.parametrize("imgsz", [320, 640])
def test_box_local_masks_equal_ultralytics_native_masks(image_hw, imgsz, kind) -> None:
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
    ref_boxes = ops.scale_boxes(lb.input_hw, boxes_in.clone(), image_hw)
    ref = ops.process_mask_native(protos, coefs, ref_boxes, image_hw).numpy().astype(bool)
    if kind == "numpy":
        protos, coefs, boxes_in = protos.numpy(), coefs.numpy(), boxes_in.numpy()
    boxes = boxes_to_frame(boxes_in, lb)
    assert isinstance(boxes, type(boxes_in))
    torch.testing.assert_close(torch.as_tensor(boxes), ref_boxes)
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
