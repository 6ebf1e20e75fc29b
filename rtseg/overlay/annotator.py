"""Draw semantic classes, instance masks, boxes, labels, a legend and a HUD onto a frame.

Layers, bottom to top: semantic colours at low opacity, instance masks, boxes and labels, the legend of
the semantic classes present in the frame, the HUD. Instance masks are blended only inside each
instance's box-local crop, so their cost grows with box area, not with instances x frame size.
"""

from __future__ import annotations

import collections

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
        semantic_names: class names of the semantic model, if any.
        semantic_palette: one BGR colour per semantic class.
        semantic_alpha: opacity of the semantic colours (low, so instances stay readable).
        legend: list the semantic classes present in the frame, bottom left.
        trails: with tracking, draw each track's path over this many past frames (0: none).
        palette: BGR colour per instance class (default: rtseg's palette); tracks keep rtseg's palette.
    """

    def __init__(self, names: tuple[str, ...], *, alpha: float = 0.45, boxes: bool = True, labels: bool = True,
                 hud: bool = False, semantic_names: tuple[str, ...] = (),
                 semantic_palette: tuple[tuple[int, int, int], ...] = (), semantic_alpha: float = 0.35,
                 legend: bool = True, trails: int = 0,
                 palette: tuple[tuple[int, int, int], ...] | None = None) -> None:
        self.names = names
        self.alpha = float(alpha)
        self.boxes, self.labels, self.hud = boxes, labels, hud
        self.semantic_names = semantic_names
        self.trails = int(trails)
        self.palette = palette
        self._paths: dict[int, collections.deque] = {}
        self._blend_luts: dict[tuple[int, int, int], NDArray[np.uint8]] = {}
        self._last_seen: dict[int, int] = {}
        self.semantic_alpha, self.legend = float(semantic_alpha), legend
        lut = np.zeros((256, 3), np.uint8)
        lut[: len(semantic_palette)] = np.asarray(semantic_palette, np.uint8).reshape(-1, 3)
        self._lut = lut
        self._lut3 = np.ascontiguousarray(lut.reshape(1, 256, 3))  # cv2.LUT form
        # background-like classes are left uncoloured, so the scene stays visible under them
        draw = np.full(256, 255, np.uint8)
        for i, name in enumerate(semantic_names):
            if name.strip("_ ").lower() in ("background", "unlabeled", "unlabelled", "void"):
                draw[i] = 0
        self._draw_lut = None if draw.all() else draw

    def colours(self, result: FrameResult) -> list[tuple[int, int, int]]:
        """Each instance's BGR colour: its track's when tracking (stable per object), else its class's."""
        if result.track_ids is not None:
            return [color_for(int(k)) for k in result.track_ids]
        if self.palette:
            return [self.palette[int(k) % len(self.palette)] for k in result.class_ids]
        return [color_for(int(k)) for k in result.class_ids]

    def draw(self, image: NDArray[np.uint8], result: FrameResult, *, fps: float | None = None,
             inplace: bool = False, masks: bool = True) -> NDArray[np.uint8]:
        """Return the annotated frame (a copy unless ``inplace``); ``masks=False`` when the instance masks
        are already blended in (:func:`rtseg.preprocess.device.blend_masks_on_device`)."""
        out = image if inplace else image.copy()
        h, w = out.shape[:2]
        thickness = max(1, round((h + w) / 900))
        present: list[int] = []
        if result.semantic is not None and self.semantic_alpha > 0:
            present = self._draw_semantic(out, result.semantic)
        tracks = result.track_ids
        colours = self.colours(result)
        if masks and result.masks is not None and self.alpha > 0:
            for crop, (x, y), colour in zip(result.masks.crops, result.masks.origins_xy, colours):
                if crop.size == 0:
                    continue
                roi = out[y : y + crop.shape[0], x : x + crop.shape[1]]
                # blend the whole box through a 256-entry table, then copy it in where the mask is: 13x faster
                # than boolean indexing (a 300x150 box, measured), with the same pixels
                cv2.copyTo(cv2.LUT(roi, self._blend_lut(colour)), crop.view(np.uint8), roi)
        if tracks is not None and self.trails > 0:
            self._draw_trails(out, result, thickness)
        for i, (box, score, cls) in enumerate(zip(result.boxes_xyxy, result.scores, result.class_ids)):
            color = colours[i]
            x1, y1, x2, y2 = (int(round(v)) for v in box)
            if self.boxes:
                cv2.rectangle(out, (x1, y1), (x2, y2), color, thickness, cv2.LINE_AA)
            if self.labels:
                name = self.names[cls] if 0 <= cls < len(self.names) else str(int(cls))
                prefix = f"#{tracks[i]} " if tracks is not None else ""
                self._label(out, f"{prefix}{name} {score:.2f}", (x1, y1), color, thickness)
        if present and self.legend:
            self._draw_legend(out, present, thickness)
        if self.hud:
            text = f"frame {result.frame_index}" + (f"  {fps:.1f} FPS" if fps else "") + f"  {len(result)} obj"
            self._label(out, text, (0, 0), (40, 40, 40), thickness, below=True)
        return out

    def _blend_lut(self, colour: tuple[int, int, int]) -> NDArray[np.uint8]:
        """cv2.LUT table of ``pixel * (1 - alpha) + colour * alpha`` per channel, in float32 and truncated, as
        :func:`rtseg.preprocess.device.blend_masks_on_device` computes it on the device."""
        lut = self._blend_luts.get(colour)
        if lut is None:
            levels = np.arange(256, dtype=np.float32)[:, None]
            lut = (levels * (1.0 - self.alpha) + np.array(colour, np.float32) * self.alpha).astype(np.uint8)
            lut = self._blend_luts[colour] = np.ascontiguousarray(lut.reshape(1, 256, 3))
        return lut

    def _draw_trails(self, out: NDArray[np.uint8], result: FrameResult, thickness: int) -> None:
        """Each track's recent box centres as a polyline; tracks unseen for ``trails`` frames are forgotten."""
        assert result.track_ids is not None
        frame = result.frame_index
        for tid, box in zip(result.track_ids.tolist(), result.boxes_xyxy):
            path = self._paths.setdefault(tid, collections.deque(maxlen=self.trails))
            path.append((int((box[0] + box[2]) / 2), int((box[1] + box[3]) / 2)))
            self._last_seen[tid] = frame
        for tid in [t for t, seen in self._last_seen.items() if frame - seen > self.trails]:
            del self._paths[tid], self._last_seen[tid]
        for tid, path in self._paths.items():
            if len(path) > 1:
                cv2.polylines(out, [np.array(path, np.int32)], False, color_for(tid), thickness, cv2.LINE_AA)

    def _draw_semantic(self, out: NDArray[np.uint8], labels: NDArray[np.uint8]) -> list[int]:
        """Blend class colours over the frame (skipping background-like classes); return the classes present."""
        # OpenCV table look-ups and blends: ~10x faster than numpy fancy indexing at 720p (measured)
        hist = cv2.calcHist([labels], [0], None, [256], [0, 256]).ravel()
        present = [int(c) for c in np.flatnonzero(hist) if c < len(self.semantic_names)]
        colours = cv2.LUT(cv2.merge([labels, labels, labels]), self._lut3)
        if self._draw_lut is None:  # every class coloured: blend in place
            cv2.addWeighted(out, 1.0 - self.semantic_alpha, colours, self.semantic_alpha, 0.0, dst=out)
        else:  # write the blend only where a coloured class is; skipped classes keep their pixels
            blended = cv2.addWeighted(out, 1.0 - self.semantic_alpha, colours, self.semantic_alpha, 0.0)
            cv2.copyTo(blended, cv2.LUT(labels, self._draw_lut), out)
        return present

    def _draw_legend(self, out: NDArray[np.uint8], present: list[int], thickness: int) -> None:
        scale = thickness / 3 + 0.2
        (_, th), base = cv2.getTextSize("Ag", cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
        row = th + base + 6
        y = out.shape[0] - row * len(present) - 4
        for cls in present:
            colour = tuple(int(v) for v in self._lut[cls])
            cv2.rectangle(out, (4, y), (4 + row - 4, y + row - 4), colour, -1)
            cv2.rectangle(out, (4, y), (4 + row - 4, y + row - 4), (255, 255, 255), 1)
            self._label(out, self.semantic_names[cls], (row + 4, y), (40, 40, 40), thickness, below=True)
            y += row

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
