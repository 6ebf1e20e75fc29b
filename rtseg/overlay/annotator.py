"""Draw instance masks, boxes, labels and a HUD onto a frame.

Masks are blended only inside each instance's box-local crop, so the cost grows with mask area, not
with instances x frame size.
"""

from __future__ import annotations

import cv2
import numpy as np
from numpy.typing import NDArray

from rtseg.overlay.palette import color_for
from rtseg.types import FrameResult


class Annotator:
    """Draws a :class:`FrameResult` onto its frame.

    Args:
        names: class names, indexed by class id.
        alpha: mask opacity; 0 draws no masks.
        boxes: draw boxes.
        labels: draw "name score" labels.
        hud: draw frame index and FPS in the top-left corner.
    """

    def __init__(self, names: tuple[str, ...], *, alpha: float = 0.45, boxes: bool = True, labels: bool = True,
                 hud: bool = False) -> None:
        self.names = names
        self.alpha = float(alpha)
        self.boxes, self.labels, self.hud = boxes, labels, hud

    def draw(self, image: NDArray[np.uint8], result: FrameResult, *, fps: float | None = None,
             inplace: bool = False) -> NDArray[np.uint8]:
        """Return the annotated frame (a copy unless ``inplace``)."""
        out = image if inplace else image.copy()
        h, w = out.shape[:2]
        thickness = max(1, round((h + w) / 900))
        if result.masks is not None and self.alpha > 0:
            for crop, (x, y), cls in zip(result.masks.crops, result.masks.origins_xy, result.class_ids):
                if crop.size == 0:
                    continue
                roi = out[y : y + crop.shape[0], x : x + crop.shape[1]]
                color = np.array(color_for(cls), dtype=np.float32)
                pixels = roi[crop].astype(np.float32)
                roi[crop] = (pixels * (1.0 - self.alpha) + color * self.alpha).astype(np.uint8)
        for box, score, cls in zip(result.boxes_xyxy, result.scores, result.class_ids):
            color = color_for(cls)
            x1, y1, x2, y2 = (int(round(v)) for v in box)
            if self.boxes:
                cv2.rectangle(out, (x1, y1), (x2, y2), color, thickness, cv2.LINE_AA)
            if self.labels:
                name = self.names[cls] if 0 <= cls < len(self.names) else str(int(cls))
                self._label(out, f"{name} {score:.2f}", (x1, y1), color, thickness)
        if self.hud:
            text = f"frame {result.frame_index}" + (f"  {fps:.1f} FPS" if fps else "") + f"  {len(result)} obj"
            self._label(out, text, (0, 0), (40, 40, 40), thickness, below=True)
        return out

    @staticmethod
    def _label(image: NDArray[np.uint8], text: str, xy: tuple[int, int], color: tuple[int, int, int],
               thickness: int, *, below: bool = False) -> None:
        scale = thickness / 3 + 0.2
        (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, max(thickness - 1, 1))
        x, y = xy
        top = y if below or y - th - base - 2 < 0 else y - th - base - 2
        cv2.rectangle(image, (x, top), (x + tw + 2, top + th + base + 2), color, -1)
        lum = 0.114 * color[0] + 0.587 * color[1] + 0.299 * color[2]
        ink = (0, 0, 0) if lum > 150 else (255, 255, 255)
        cv2.putText(image, text, (x + 1, top + th + 1), cv2.FONT_HERSHEY_SIMPLEX, scale, ink,
                    max(thickness - 1, 1), cv2.LINE_AA)
