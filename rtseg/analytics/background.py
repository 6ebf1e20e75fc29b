"""Webcam background: everything outside the people replaced by a blur, a colour, an image or a video.

The person mask is the union of the person instances' masks (and of the semantic ``person`` class when a
semantic model runs). Its edge is softened over a few pixels and smoothed over time (an exponential moving
average of the soft mask), so the outline does not flicker from frame to frame as masks jitter; the hard
mask of the current frame is then copied back over the result, so every person pixel is exactly the input.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from numpy.typing import NDArray

from rtseg.errors import ConfigError
from rtseg.types import FrameResult

__all__ = ["Background", "parse_background"]

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v", ".mpg", ".mpeg")
COLOURS_RGB = {"black": (0, 0, 0), "white": (255, 255, 255), "gray": (128, 128, 128), "grey": (128, 128, 128),
               "green": (0, 177, 64), "blue": (0, 71, 187), "red": (200, 30, 30)}


def _colour_bgr(text: str) -> tuple[int, int, int] | None:
    """``#rrggbb``, ``#rgb``, ``r,g,b`` or a colour name as BGR; None when ``text`` is none of these."""
    t = text.strip().lower()
    if t in COLOURS_RGB:
        r, g, b = COLOURS_RGB[t]
        return b, g, r
    if t.startswith("#") and len(t) in (4, 7) and all(c in "0123456789abcdef" for c in t[1:]):
        digits = t[1:] if len(t) == 7 else "".join(c * 2 for c in t[1:])
        r, g, b = (int(digits[i : i + 2], 16) for i in (0, 2, 4))
        return b, g, r
    parts = t.split(",")
    if len(parts) == 3 and all(p.strip().isdigit() and int(p) <= 255 for p in parts):
        r, g, b = (int(p) for p in parts)
        return b, g, r
    return None


def parse_background(spec: str) -> tuple[str, object]:
    """What a ``background`` option asks for: ``("blur", None)``, ``("colour", (b, g, r))``,
    ``("image", bgr_array)`` or ``("video", path)``. Images are read and videos opened once here.

    Raises:
        ConfigError: an unreadable image or video, or text that is none of blur, a colour, a file.

    Example:
        >>> parse_background("#00ff00"), parse_background("blur")
        (('colour', (0, 255, 0)), ('blur', None))
    """
    origin = f"background={spec!r}"
    text = str(spec).strip()
    if text.lower() == "blur":
        return "blur", None
    colour = _colour_bgr(text)
    if colour is not None:
        return "colour", colour
    path = Path(text).expanduser()
    suffix = path.suffix.lower()
    if suffix not in IMAGE_SUFFIXES + VIDEO_SUFFIXES and not path.is_file():
        raise ConfigError(f"{origin}: expected blur, a colour (#00b140, 0,177,64, green), an image or a video file")
    if not path.is_file():
        raise ConfigError(f"{origin}: no such file")
    if suffix in VIDEO_SUFFIXES:
        capture = cv2.VideoCapture(str(path))
        ok = capture.isOpened() and capture.read()[0]
        capture.release()
        if not ok:
            raise ConfigError(f"{origin}: cannot read a frame from this video")
        return "video", path
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise ConfigError(f"{origin}: cannot read it as an image (a damaged file, or not an image)")
    return "image", image


class Background:
    """Replaces the background of frames, keeping the people.

    Args:
        spec: ``blur``, a colour, an image file or a video file (looped), as :func:`parse_background` reads it.
        person_ids: instance classes that are people.
        semantic_person_ids: semantic classes that are people (used when a frame has a label map).
        smoothing: weight of the previous frames in the soft mask (0: none; 0.6: the edge settles over about
            3 frames).
        edge_px: the soft edge's width, in pixels: the mask is grown by ``edge_px`` then box-blurred over
            ``2 * edge_px + 1``, so the backdrop shows unmixed from about ``(1 + sqrt 2) * edge_px`` pixels
            outside the person mask on.
    """

    def __init__(self, spec: str, *, person_ids: list[int], semantic_person_ids: list[int] = (),  # type: ignore[assignment]
                 smoothing: float = 0.6, edge_px: int = 4) -> None:
        self.kind, value = parse_background(spec)
        self.spec = spec
        self.person_ids = np.array(sorted(set(person_ids)), np.int64)
        self.semantic_person_ids = [int(k) for k in semantic_person_ids]
        self.smoothing, self.edge_px = float(smoothing), int(edge_px)
        self._colour = value if self.kind == "colour" else None
        self._image = value if self.kind == "image" else None
        self._capture = cv2.VideoCapture(str(value)) if self.kind == "video" else None
        self._fixed: NDArray[np.uint8] | None = None  # colour / image background at the frame size
        self._soft: NDArray[np.float32] | None = None  # the smoothed alpha of the previous frames
        self._soft_rect = (0, 0, 0, 0)  # x0, y0, x1, y1 around its non-zero pixels

    def person_mask(self, result: FrameResult, image_hw: tuple[int, int]) -> NDArray[np.uint8]:
        """(H, W) uint8, 255 on a person pixel of this frame, else 0."""
        mask = np.zeros(image_hw, np.uint8)
        if result.masks is not None:
            for i in np.flatnonzero(np.isin(result.class_ids, self.person_ids)).tolist():
                crop = result.masks.crops[i]
                x, y = (int(v) for v in result.masks.origins_xy[i])
                roi = mask[y : y + crop.shape[0], x : x + crop.shape[1]]
                roi[crop[: roi.shape[0], : roi.shape[1]]] = 255
        else:
            for i in np.flatnonzero(np.isin(result.class_ids, self.person_ids)).tolist():
                x1, y1, x2, y2 = (int(round(float(v))) for v in result.boxes_xyxy[i])
                mask[max(0, y1) : max(0, y2), max(0, x1) : max(0, x2)] = 255
        if self.semantic_person_ids and result.semantic is not None:
            mask[np.isin(result.semantic, self.semantic_person_ids)] = 255
        return mask

    def _backdrop(self, image: NDArray[np.uint8]) -> NDArray[np.uint8]:
        h, w = image.shape[:2]
        if self.kind == "blur":  # a quarter-size blur: the same look as a full-size wide blur, 16x less work
            small = cv2.resize(image, (max(1, w // 8), max(1, h // 8)), interpolation=cv2.INTER_AREA)
            small = cv2.GaussianBlur(small, (0, 0), 3)
            return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
        if self.kind == "video":
            assert self._capture is not None
            ok, frame = self._capture.read()
            if not ok:  # loop
                self._capture.set(cv2.CAP_PROP_POS_FRAMES, 0)
                ok, frame = self._capture.read()
            if not ok:
                frame = np.zeros_like(image)
            return cv2.resize(frame, (w, h), interpolation=cv2.INTER_AREA) if frame.shape[:2] != (h, w) else frame
        if self._fixed is None or self._fixed.shape[:2] != (h, w):
            if self.kind == "colour":
                self._fixed = np.empty_like(image)
                self._fixed[:] = self._colour
            else:
                self._fixed = cv2.resize(self._image, (w, h), interpolation=cv2.INTER_AREA)  # type: ignore[arg-type]
        return self._fixed

    def apply(self, image: NDArray[np.uint8], result: FrameResult) -> NDArray[np.uint8]:
        """Replace the background of ``image`` in place; returns ``image``. Person pixels are unchanged.

        Only the box around the people (grown by the soft edge) and the smoothed edge of earlier frames is
        blended; the rest of the frame is the backdrop, copied: a blend over the whole frame cost 3-4x more
        (measured, 768x432, one person)."""
        h, w = image.shape[:2]
        hard = self.person_mask(result, (h, w))
        backdrop = self._backdrop(image)
        if self._soft is None or self._soft.shape != (h, w):
            self._soft, self._soft_rect = np.zeros((h, w), np.float32), (0, 0, 0, 0)
        reach = 2 * self.edge_px + 1 if self.edge_px > 0 else 0  # how far the soft edge reaches out
        x, y, rw, rh = cv2.boundingRect(hard)
        rect = (max(0, x - reach), max(0, y - reach), min(w, x + rw + reach), min(h, y + rh + reach)) if rw else None
        old = self._soft_rect if self._soft_rect[2] > self._soft_rect[0] else None
        if rect is None and old is None:
            np.copyto(image, backdrop)
            return image
        x0, y0, x1, y1 = rect if old is None else old if rect is None else (
            min(rect[0], old[0]), min(rect[1], old[1]), max(rect[2], old[2]), max(rect[3], old[3]))
        hard_r = hard[y0:y1, x0:x1]
        soft = hard_r
        if self.edge_px > 0:  # grow then blur: a ramp outside the mask, the mask itself stays at 255
            k = 2 * self.edge_px + 1
            soft = cv2.blur(cv2.dilate(hard_r, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))), (k, k))
        alpha = soft.astype(np.float32) * np.float32(1 / 255)
        if self.smoothing > 0:
            cv2.addWeighted(self._soft[y0:y1, x0:x1], self.smoothing, alpha, 1.0 - self.smoothing, 0.0, dst=alpha)
            alpha[alpha < 1 / 512] = 0  # below half a grey level: gone, so the blended region shrinks again
            self._soft[y0:y1, x0:x1] = alpha
            sx, sy, sw, sh = cv2.boundingRect((alpha > 0).view(np.uint8))
            self._soft_rect = (x0 + sx, y0 + sy, x0 + sx + sw, y0 + sy + sh)
        region = image[y0:y1, x0:x1]
        out = cv2.blendLinear(region, backdrop[y0:y1, x0:x1], alpha, 1.0 - alpha)
        cv2.copyTo(region, hard_r, out)  # every person pixel exactly as it came in
        np.copyto(image, backdrop)
        image[y0:y1, x0:x1] = out
        return image

    def close(self) -> None:
        if self._capture is not None:
            self._capture.release()
            self._capture = None
