"""Blur what must not be seen: the exact mask pixels of chosen classes, feathered at the edge.

Peers (supervision's ``BlurAnnotator``, Ultralytics' ``ObjectBlurrer``) blur the whole box, which hides
the background around a person and still shows the parts of a person that stick out of a box drawn a
little short. Here each chosen instance's box-local mask picks the pixels: inside the mask they are fully
replaced, over ``feather_px`` pixels outside it they fade back to the original, and every other pixel is
left untouched. The blurred values come from the box padded by the kernel radius, so the work grows with
the instances' box area, not the frame's.
"""

from __future__ import annotations

import cv2
import numpy as np
from numpy.typing import NDArray

from rtseg.errors import ConfigError
from rtseg.types import FrameResult

__all__ = ["BLUR_STYLES", "Privacy", "feather_alpha", "obscure"]

BLUR_STYLES = ("blur", "pixelate", "box")


def _kernel(size_px: int) -> int:
    """Odd blur kernel of about a quarter of the object's size (at least 15 px): faces and plates are no longer
    legible at that scale."""
    k = max(15, size_px // 4)
    return k + 1 - k % 2


def obscure(region: NDArray[np.uint8], style: str, size_px: int) -> NDArray[np.uint8]:
    """``region`` blurred (``blur``, ``box``) or pixelated (``pixelate``, blocks of about a tenth of
    ``size_px``, at least 6 px), as a new array."""
    h, w = region.shape[:2]
    if style == "pixelate":
        block = max(6, size_px // 10)
        small = cv2.resize(region, (max(1, w // block), max(1, h // block)), interpolation=cv2.INTER_AREA)
        return cv2.resize(small, (w, h), interpolation=cv2.INTER_NEAREST)
    k = _kernel(size_px)
    step = max(1, k // 8)
    if step == 1:
        return cv2.GaussianBlur(region, (k, k), 0)
    # a wide blur at 1/step of the size, then scaled back up: the same look for step^2 less work (0.85 ->
    # 0.1 ms for a 120x260 person at 720p, measured)
    small = cv2.resize(region, (max(1, round(w / step)), max(1, round(h / step))), interpolation=cv2.INTER_AREA)
    ks = max(3, (k // step) | 1)
    return cv2.resize(cv2.GaussianBlur(small, (ks, ks), 0), (w, h), interpolation=cv2.INTER_LINEAR)


def feather_alpha(mask: NDArray[np.bool_], feather_px: int) -> NDArray[np.float32]:
    """(h, w) float32 weight: 1 on the mask, falling linearly to 0 over ``feather_px`` pixels outside it
    (``1 - d / feather_px`` at Euclidean distance ``d``, approximated within 3%), 0 from ``feather_px`` on.
    ``mask`` must have ``feather_px`` pixels of margin for the ramp to fit."""
    if feather_px <= 0:
        return mask.astype(np.float32)
    # the 5x5 approximation: within 3% of the exact distance, 10x faster than DIST_MASK_PRECISE (measured)
    dist = cv2.distanceTransform((~mask).view(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_5)
    return np.clip(1.0 - dist / np.float32(feather_px), 0.0, 1.0)


class Privacy:
    """Blurs or pixelates the instances of chosen classes (and chosen semantic classes) in a frame.

    Args:
        class_ids: instance classes to obscure.
        semantic_ids: semantic classes to obscure (their label-map pixels), when a semantic model runs.
        style: ``blur`` or ``pixelate`` the mask pixels; ``box``: blur the whole box (what peers do, for
            comparison).
        feather_px: width of the fade outside each mask, in pixels (0: a hard edge): pixels closer to the mask
            than this mix the obscured and the original pixels, farther ones are untouched.

    Example:
        >>> import numpy as np
        >>> from rtseg.types import FrameResult, InstanceMasks
        >>> image = np.random.default_rng(0).integers(0, 255, (40, 40, 3), np.uint8)
        >>> mask = np.zeros((20, 20), bool); mask[5:15, 5:15] = True
        >>> r = FrameResult(0, (40, 40), np.array([[10, 10, 30, 30]]), np.array([0.9]), np.array([0]),
        ...                 InstanceMasks((mask,), [[10, 10]]))
        >>> out = Privacy([0], feather_px=0).apply(image.copy(), r)
        >>> changed = (out != image).any(2)
        >>> bool(changed[15:25, 15:25].mean() > 0.9), bool(changed[:15].any() or changed[25:].any())
        (True, False)
    """

    def __init__(self, class_ids: list[int], *, semantic_ids: list[int] = (), style: str = "blur",  # type: ignore[assignment]
                 feather_px: int = 3) -> None:
        if style not in BLUR_STYLES:
            raise ConfigError(f"blur_style={style!r}: expected one of {', '.join(BLUR_STYLES)}")
        self.class_ids = set(int(k) for k in class_ids)
        self.semantic_ids = [int(k) for k in semantic_ids]
        self.style, self.feather_px = style, int(feather_px)

    def apply(self, image: NDArray[np.uint8], result: FrameResult) -> NDArray[np.uint8]:
        """Obscure the chosen instances of ``result`` in ``image``, in place; returns ``image``."""
        h, w = image.shape[:2]
        for i, cls in enumerate(result.class_ids.tolist()):
            if cls not in self.class_ids:
                continue
            if self.style == "box" or result.masks is None:
                x1, y1, x2, y2 = (int(round(float(v))) for v in result.boxes_xyxy[i])
                x1, y1, x2, y2 = max(0, x1), max(0, y1), min(w, x2), min(h, y2)
                if x2 > x1 and y2 > y1:
                    size = max(x2 - x1, y2 - y1)
                    pad = _kernel(size) // 2 + 1
                    px1, py1, px2, py2 = max(0, x1 - pad), max(0, y1 - pad), min(w, x2 + pad), min(h, y2 + pad)
                    blurred = obscure(image[py1:py2, px1:px2], "blur", size)
                    image[y1:y2, x1:x2] = blurred[y1 - py1 : y2 - py1, x1 - px1 : x2 - px1]
                continue
            crop = result.masks.crops[i]
            x, y = (int(v) for v in result.masks.origins_xy[i])
            self._obscure_mask(image, crop, x, y)
        if self.semantic_ids and result.semantic is not None:
            labels = result.semantic
            mask = np.isin(labels, self.semantic_ids)
            if mask.any():
                ys, xs = np.nonzero(mask.any(1))[0], np.nonzero(mask.any(0))[0]
                y0, x0 = int(ys[0]), int(xs[0])
                self._obscure_mask(image, mask[y0 : int(ys[-1]) + 1, x0 : int(xs[-1]) + 1], x0, y0)
        return image

    def _obscure_mask(self, image: NDArray[np.uint8], crop: NDArray[np.bool_], x: int, y: int) -> None:
        """Replace the pixels of ``crop`` (placed at x, y) by obscured ones, fading over the feather."""
        h, w = image.shape[:2]
        if not crop.size or not crop.any():
            return
        size = max(crop.shape)
        f = self.feather_px
        margin = max(f, (_kernel(size) // 2 + 1) if self.style == "blur" else 0)
        # the region the output may change (mask + feather), and the wider one the blur reads from
        ox1, oy1 = max(0, x - f), max(0, y - f)
        ox2, oy2 = min(w, x + crop.shape[1] + f), min(h, y + crop.shape[0] + f)
        rx1, ry1 = max(0, x - margin), max(0, y - margin)
        rx2, ry2 = min(w, x + crop.shape[1] + margin), min(h, y + crop.shape[0] + margin)
        if self.style == "pixelate":  # blocks aligned to the mask region, so they do not shift with the padding
            rx1, ry1, rx2, ry2 = ox1, oy1, ox2, oy2
        blurred = obscure(image[ry1:ry2, rx1:rx2], self.style, size)[oy1 - ry1 : oy2 - ry1, ox1 - rx1 : ox2 - rx1]
        region = image[oy1:oy2, ox1:ox2]
        local = np.zeros(region.shape[:2], bool)
        cy, cx = y - oy1, x - ox1  # the crop's offset in the region (>= 0: the region starts at or before it)
        ch, cw = min(crop.shape[0], local.shape[0] - cy), min(crop.shape[1], local.shape[1] - cx)
        local[cy : cy + ch, cx : cx + cw] = crop[:ch, :cw]
        if f <= 0:
            cv2.copyTo(blurred, local.view(np.uint8), region)
            return
        alpha = feather_alpha(local, f)
        # exact at both ends: alpha 1 (the mask) gives the obscured pixel, alpha 0 (beyond the feather) the
        # original (blendLinear rounds a weighted sum, and 1 * v + 0 * u is v)
        region[:] = cv2.blendLinear(blurred, region, alpha, 1.0 - alpha)
