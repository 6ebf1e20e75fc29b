"""Images already in memory (NumPy arrays) read as frames: what ``Segmenter.predict`` runs on."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from rtseg.errors import SourceError


def check_image(image: object, what: str = "image") -> NDArray[np.uint8]:
    """A BGR uint8 (H, W, 3) array, or (H, W) grey turned into one; anything else is a one-line error."""
    if not isinstance(image, np.ndarray):
        raise SourceError(f"{what}: expected a NumPy array, a path or a glob, got {type(image).__name__}")
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    if image.ndim != 3 or image.shape[2] not in (3, 4) or image.shape[0] < 1 or image.shape[1] < 1:
        raise SourceError(f"{what}: expected an (H, W, 3) BGR image, got shape {image.shape}")
    if image.dtype != np.uint8:
        raise SourceError(f"{what}: expected uint8 pixels (0..255), got {image.dtype}")
    return np.ascontiguousarray(image[:, :, :3])


class ArraySource:
    """Yields the given images in order (they may differ in size)."""

    live = False

    def __init__(self, images: Sequence[NDArray[np.uint8]], *, name: str = "array", fps: float = 1.0) -> None:
        self.name = name
        self.fps = float(fps)
        self._images = [check_image(im, f"images[{i}]") for i, im in enumerate(images)]
        self.frame_count: int | None = len(self._images)
        self._next = 0

    def read(self) -> NDArray[np.uint8] | None:
        if self._next >= len(self._images):
            return None
        self._next += 1
        return self._images[self._next - 1]

    def close(self) -> None:
        self._next = len(self._images)
