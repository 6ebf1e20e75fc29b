"""The frame path on the model's device: upload once, letterbox and normalise there, blend masks there.

On a CUDA GPU, pre-processing on the CPU and drawing full-resolution masks on the CPU can cost more than
the model. With this path each decoded frame is uploaded once (through a pinned staging buffer, an
asynchronous copy), letterboxed and normalised on the device, and kept there until the post-processing
stage has blended the instance masks into it (the masks never leave the device for drawing); the
annotated frame then comes back in one download, and only boxes, labels and the HUD are drawn on the CPU.

Every function here is plain PyTorch and runs on any device: on the CPU the tests compare it with the
OpenCV / NumPy path it replaces (``rtseg.preprocess``, ``rtseg.overlay.annotator``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from numpy.typing import NDArray

from rtseg.preprocess import PAD_VALUE, Letterbox
from rtseg.types import FrameResult

if TYPE_CHECKING:
    from rtseg.overlay.annotator import Annotator


class FrameUploader:
    """Copies BGR uint8 frames to ``device``: through a reused pinned buffer on CUDA (an asynchronous copy
    that does not wait for pageable memory), as a zero-copy view on the CPU.

    One uploader per thread. The staging buffer is reused: each upload first waits for the previous copy
    out of it to finish.
    """

    def __init__(self, device: torch.device) -> None:
        self.device = torch.device(device)
        self._staging: torch.Tensor | None = None
        self._copied: torch.cuda.Event | None = None

    def __call__(self, image: NDArray[np.uint8]) -> torch.Tensor:
        host = torch.from_numpy(np.ascontiguousarray(image))
        if self.device.type != "cuda":
            return host.to(self.device)
        if self._copied is not None:
            self._copied.synchronize()
        if self._staging is None or self._staging.shape != host.shape:
            self._staging = torch.empty(host.shape, dtype=torch.uint8, pin_memory=True)
        self._staging.copy_(host)
        out = self._staging.to(self.device, non_blocking=True)
        self._copied = torch.cuda.Event()
        self._copied.record(torch.cuda.current_stream(self.device))
        return out


def letterbox_on_device(frame: torch.Tensor, lb: Letterbox) -> torch.Tensor:
    """(H, W, 3) BGR uint8 -> (3, h, w) RGB float32 in [0, 1], resized and padded as planned by ``lb``.

    Bilinear resizing with OpenCV's pixel-centre convention (``align_corners=False``, no antialiasing, as
    ``cv2.INTER_LINEAR``), rounded to whole levels like OpenCV's uint8 output, then padded with 114. OpenCV
    interpolates in fixed point, so about one pixel in ten differs by one level (tested); never more.
    """
    x = frame.permute(2, 0, 1).unsqueeze(0).float()
    if tuple(frame.shape[:2]) != lb.resized_hw:
        x = F.interpolate(x, size=lb.resized_hw, mode="bilinear", align_corners=False).round_().clamp_(0, 255)
    h, w = lb.resized_hw
    out = torch.full((1, 3, *lb.input_hw), float(PAD_VALUE), dtype=torch.float32, device=frame.device)
    out[:, :, lb.top : lb.top + h, lb.left : lb.left + w] = x
    return out[0].flip(0).mul_(1 / 255)  # as rtseg.preprocess.to_input_batch: the same float32 values


def blend_masks_on_device(frame: torch.Tensor, crops: Sequence[torch.Tensor], origins_xy: NDArray[np.int32],
                          colours: Sequence[tuple[int, int, int]], alpha: float) -> None:
    """Blend each instance's colour into ``frame`` (H, W, 3) uint8, in place, inside its box-local mask.

    The same arithmetic as the CPU overlay (float32 ``pixel * (1 - alpha) + colour * alpha``, truncated), so
    both give the same pixels.
    """
    for crop, (x, y), colour in zip(crops, origins_xy, colours):
        if crop.numel() == 0:
            continue
        roi = frame[int(y) : int(y) + crop.shape[0], int(x) : int(x) + crop.shape[1]]
        colour_t = torch.tensor(colour, dtype=torch.float32, device=frame.device)
        roi[crop] = (roi[crop].float() * (1.0 - alpha) + colour_t * alpha).to(torch.uint8)


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
    if frames is None or result.semantic is not None or (masks is not None and masks.device_crops is None):
        return None
    if masks is not None and annotator.alpha > 0:
        blend_masks_on_device(frames[0], masks.device_crops, masks.origins_xy,  # type: ignore[arg-type]
                              annotator.colours(result), annotator.alpha)
    return download(frames[0])
