"""Blending instance masks into a frame that is already on the model's device, and one download: the
overlay half of the device frame path (:mod:`rtseg.preprocess.letterbox.device` is the upload and letterbox half)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from rtseg.types import FrameResult

if TYPE_CHECKING:
    import torch

    from rtseg.overlay.annotator import Annotator


def blend_masks_on_device(frame: torch.Tensor, crops: Sequence[torch.Tensor], origins_xy: NDArray[np.int32],
                          colours: Sequence[tuple[int, int, int]], alpha: float) -> None:
    """Blend each instance's colour into ``frame`` (H, W, 3) uint8, in place, inside its box-local mask.

    The same arithmetic as the CPU overlay (float32 ``pixel * (1 - alpha) + colour * alpha``, truncated), so
    both give the same pixels.
    """
    if not len(crops):
        return
    import torch

    colours_t = torch.tensor(colours, dtype=torch.float32).to(frame.device)  # one copy for every instance
    for crop, (x, y), colour in zip(crops, origins_xy, colours_t):
        if crop.numel() == 0:
            continue
        roi = frame[int(y) : int(y) + crop.shape[0], int(x) : int(x) + crop.shape[1]]
        roi[crop] = (roi[crop].float() * (1.0 - alpha) + colour * alpha).to(torch.uint8)


def download(frame: torch.Tensor) -> NDArray[np.uint8]:
    """The frame back on the CPU as a writable NumPy array (one copy)."""
    host = frame.cpu()
    return host.numpy() if frame.device.type != "cpu" else host.numpy().copy()


def overlay_on_device(prepared: object, result: FrameResult, annotator: Annotator) -> NDArray[np.uint8] | None:
    """On the device frame path: blend the masks into the frame where it already is and download it once,
    for the CPU to draw boxes, labels and the HUD on. None where the CPU must draw everything: no uploaded
    frame, masks not kept on the device, or semantic colours (they belong under the masks)."""
    frames = getattr(prepared, "frames", None)
    masks = result.masks if result.masks is not None and len(result.masks) else None
    if frames is None or result.semantic is not None or (masks is not None and masks.device_crops is None) \
            or annotator.style != "fill":  # contours are drawn on the CPU
        return None
    if masks is not None and annotator.alpha > 0:
        blend_masks_on_device(frames[0], masks.device_crops, masks.origins_xy,  # type: ignore[arg-type]
                              annotator.colours(result), annotator.alpha)
    return download(frames[0])
