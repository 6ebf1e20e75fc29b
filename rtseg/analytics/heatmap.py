"""Where things were: mask presence accumulated per class over a run, drawn live or saved as a PNG.

Each frame adds each instance's box-local mask to its class's (H, W) float32 map, so the cost grows with
mask area, not frame size. A decayed map (``half_life_s``) multiplies every earlier frame's weight by
``0.5 ** (age / half_life_s)`` without touching the whole map each frame: new frames are added with a
growing weight instead, and the map is rescaled only when that weight gets large.
"""

from __future__ import annotations

import cv2
import numpy as np
from numpy.typing import NDArray

from rtseg.types import FrameResult

__all__ = ["Heatmap"]

_RESCALE_AT = 1e12  # weights past this are folded back into the map (float32 keeps 7 digits)


class Heatmap:
    """Mask presence per class for one source.

    Args:
        image_hw: (height, width) of its frames.
        names: class names, indexed by class id.
        half_life_s: None: total presence over the run (each pixel counts the frames a mask covered it);
            seconds: an exponentially decayed presence, recent frames weighing most.

    Example:
        >>> import numpy as np
        >>> from rtseg.types import FrameResult, InstanceMasks
        >>> heat = Heatmap((4, 6), ("person",))
        >>> r = FrameResult(0, (4, 6), np.array([[1, 1, 3, 3]]), np.array([0.9]), np.array([0]),
        ...                 InstanceMasks((np.ones((2, 2), bool),), [[1, 1]]))
        >>> heat.add(r, 0.0); heat.add(r, 0.1)
        >>> int(heat.presence("person").max()), int(heat.presence().sum())
        (2, 8)
    """

    def __init__(self, image_hw: tuple[int, int], names: tuple[str, ...], *, half_life_s: float | None = None) -> None:
        self.image_hw = (int(image_hw[0]), int(image_hw[1]))
        self.names = names
        self.half_life_s = half_life_s
        self._maps: dict[int, NDArray[np.float32]] = {}
        self._weight = 1.0  # weight of the latest frame, relative to the maps' scale
        self._t0: float | None = None
        self.frames = 0

    def add(self, result: FrameResult, timestamp_s: float) -> None:
        """Add one frame's masks (boxes when the result has none)."""
        self.frames += 1
        if self.half_life_s:
            if self._t0 is None:
                self._t0 = timestamp_s
            self._weight = 0.5 ** (-(timestamp_s - self._t0) / self.half_life_s)
            if self._weight > _RESCALE_AT:
                for m in self._maps.values():
                    m /= self._weight
                self._t0, self._weight = timestamp_s, 1.0
        h, w = self.image_hw
        for i, cls in enumerate(result.class_ids.tolist()):
            acc = self._maps.get(cls)
            if acc is None:
                acc = self._maps[cls] = np.zeros(self.image_hw, np.float32)
            if result.masks is not None:
                crop = result.masks.crops[i]
                x, y = (int(v) for v in result.masks.origins_xy[i])
            else:
                x1, y1, x2, y2 = (int(round(float(v))) for v in result.boxes_xyxy[i])
                x, y = max(0, x1), max(0, y1)
                crop = np.ones((max(0, min(y2, h) - y), max(0, min(x2, w) - x)), bool)
            ch, cw = min(crop.shape[0], h - y), min(crop.shape[1], w - x)
            if ch > 0 and cw > 0:
                roi = acc[y : y + ch, x : x + cw]
                # cv2.add with a mask: in place, only where the mask is (no float copy of the crop)
                cv2.add(roi, float(self._weight), dst=roi, mask=np.ascontiguousarray(crop[:ch, :cw]).view(np.uint8))

    def presence(self, class_name: str | None = None) -> NDArray[np.float32]:
        """(H, W) float32: frames each pixel was covered (decayed: in units of the latest frame), for one
        class or summed over all."""
        scale = 1.0 / self._weight
        if class_name is None:
            out = np.zeros(self.image_hw, np.float32)
            for m in self._maps.values():
                out += m
        else:
            ids = [i for i, n in enumerate(self.names) if n == class_name]
            out = self._maps[ids[0]].copy() if ids and ids[0] in self._maps else np.zeros(self.image_hw, np.float32)
        return out * np.float32(scale)

    @property
    def classes(self) -> list[str]:
        """Names of the classes seen so far."""
        return [self.names[k] if 0 <= k < len(self.names) else str(k) for k in sorted(self._maps)]

    def render(self, image: NDArray[np.uint8], *, class_name: str | None = None, alpha: float = 0.5,
               out: NDArray[np.uint8] | None = None) -> NDArray[np.uint8]:
        """The map as a colour ramp (TURBO, normalised to its maximum) blended over ``image`` where anything
        was seen; pixels never covered keep the image. Writes into ``out`` when given (may be ``image``)."""
        heat = self.presence(class_name)
        peak = float(heat.max())
        if out is None:
            out = image.copy()
        elif out is not image:
            np.copyto(out, image)
        if peak <= 0:
            return out
        level = cv2.convertScaleAbs(heat, alpha=255.0 / peak)
        colour = cv2.applyColorMap(level, cv2.COLORMAP_TURBO)
        blended = cv2.addWeighted(image, 1.0 - alpha, colour, alpha, 0.0)
        cv2.copyTo(blended, (heat > 0).view(np.uint8), out)
        return out
