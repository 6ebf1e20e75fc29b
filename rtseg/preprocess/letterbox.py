"""Letterbox pre-processing: resize keeping aspect ratio, pad to the network input, BGR uint8 -> RGB float.

The geometry follows Ultralytics' ``LetterBox`` exactly (same rounding of the resized size and of the
padding split), so boxes and masks map back to the frame the same way Ultralytics maps them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
from numpy.typing import NDArray

from rtseg.errors import ConfigError

PAD_VALUE = 114


@dataclass(frozen=True)
class Letterbox:
    """Where a frame sits inside the network input.

    Attributes:
        image_hw: source frame (height, width).
        input_hw: padded network input (height, width).
        resized_hw: size of the resized frame inside the input.
        top, left: padding above and left of the resized frame, in input pixels.
    """

    image_hw: tuple[int, int]
    input_hw: tuple[int, int]
    resized_hw: tuple[int, int]
    top: int
    left: int

    @property
    def gain_yx(self) -> tuple[float, float]:
        """Input pixels per frame pixel along y and x."""
        return self.resized_hw[0] / self.image_hw[0], self.resized_hw[1] / self.image_hw[1]


def plan_letterbox(image_hw: tuple[int, int], imgsz: tuple[int, int], *, rect: bool, stride: int = 32) -> Letterbox:
    """Compute the letterbox for a frame.

    Args:
        image_hw: frame (height, width).
        imgsz: target (height, width) the longer side is fitted into.
        rect: pad only up to the next multiple of ``stride`` (a smaller input, for models that accept any
            shape) instead of to the full ``imgsz``.
        stride: the model's largest stride.
    """
    h, w = image_hw
    r = min(imgsz[0] / h, imgsz[1] / w)
    new_w, new_h = max(round(w * r), 1), max(round(h * r), 1)
    dw, dh = imgsz[1] - new_w, imgsz[0] - new_h
    if rect:
        dw, dh = dw % stride, dh % stride
    top, bottom = round(dh / 2 - 0.1), round(dh / 2 + 0.1)
    left, right = round(dw / 2 - 0.1), round(dw / 2 + 0.1)
    return Letterbox(image_hw=(h, w), input_hw=(new_h + top + bottom, new_w + left + right),
                     resized_hw=(new_h, new_w), top=top, left=left)


def resolve_imgsz(imgsz: int | Sequence[int] | None, *, model_imgsz: Sequence[int], stride: int,
                  dynamic: bool) -> tuple[int, int]:
    """The inference size for ``--imgsz``: the model's own when None, rounded up to the stride.

    Raises:
        ConfigError: too small, or a size other than the one a fixed-size export was built for.
    """
    if imgsz is None:
        size = tuple(int(v) for v in model_imgsz)
    elif isinstance(imgsz, int):
        size = (imgsz, imgsz)
    else:
        size = tuple(int(v) for v in imgsz)
    if len(size) != 2 or min(size) < stride:
        raise ConfigError(f"imgsz={imgsz}: expected a size of at least {stride} pixels")
    if not dynamic and size != tuple(model_imgsz):
        raise ConfigError(f"imgsz={imgsz}: this model was exported at a fixed size {model_imgsz[0]}x{model_imgsz[1]}; "
                          "run it at that size (the default) or export it again at yours")
    if dynamic:  # round up to the stride like Ultralytics' check_imgsz
        size = tuple(-(-s // stride) * stride for s in size)
    return size  # type: ignore[return-value]


def apply_letterbox(image: NDArray[np.uint8], lb: Letterbox) -> NDArray[np.uint8]:
    """Resize (bilinear) and pad a BGR frame as planned by :func:`plan_letterbox`."""
    if image.shape[:2] != lb.resized_hw:
        image = cv2.resize(image, lb.resized_hw[::-1], interpolation=cv2.INTER_LINEAR)
    bottom = lb.input_hw[0] - lb.resized_hw[0] - lb.top
    right = lb.input_hw[1] - lb.resized_hw[1] - lb.left
    if lb.top or bottom or lb.left or right:
        image = cv2.copyMakeBorder(image, lb.top, bottom, lb.left, right, cv2.BORDER_CONSTANT,
                                   value=(PAD_VALUE,) * 3)
    return image


class Letterboxer:
    """Letterboxes frames to one input size, planning each frame size once (a video has one)."""

    def __init__(self, imgsz: tuple[int, int], *, rect: bool, stride: int) -> None:
        self.imgsz, self.rect, self.stride = imgsz, rect, stride
        self._plans: dict[tuple[int, int], Letterbox] = {}

    def plan(self, images: Sequence[NDArray[np.uint8]]) -> tuple[Letterbox, ...]:
        """The letterbox of each frame, without applying it."""
        lbs = []
        for image in images:
            hw = (int(image.shape[0]), int(image.shape[1]))
            lb = self._plans.get(hw)
            if lb is None:
                lb = self._plans[hw] = plan_letterbox(hw, self.imgsz, rect=self.rect, stride=self.stride)
            lbs.append(lb)
        return tuple(lbs)

    def __call__(self, images: Sequence[NDArray[np.uint8]]
                 ) -> tuple[list[NDArray[np.uint8]], tuple[Letterbox, ...]]:
        lbs = self.plan(images)
        return [apply_letterbox(im, lb) for im, lb in zip(images, lbs)], lbs


def to_input_batch(images: list[NDArray[np.uint8]]) -> NDArray[np.float32]:
    """Stack letterboxed BGR uint8 (H, W, 3) images into a (B, 3, H, W) float32 RGB batch in [0, 1]."""
    batch = np.stack(images)[..., ::-1].transpose(0, 3, 1, 2)
    return np.ascontiguousarray(batch, dtype=np.float32) * np.float32(1 / 255)
