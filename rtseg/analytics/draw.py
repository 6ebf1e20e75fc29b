"""Zones, lines and their counts drawn over an annotated frame."""

from __future__ import annotations

import cv2
import numpy as np
from numpy.typing import NDArray

from rtseg.overlay.palette import color_for

__all__ = ["draw_lines", "draw_zones", "label"]


def _thickness(image: NDArray[np.uint8]) -> int:
    h, w = image.shape[:2]
    return max(1, round((h + w) / 900))  # the annotator's line width


def label(image: NDArray[np.uint8], text: str, xy: tuple[int, int], colour: tuple[int, int, int]) -> None:
    """``text`` on a filled box of ``colour`` with its top-left corner at ``xy``, kept inside the frame."""
    t = _thickness(image)
    scale = t / 3 + 0.2
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, max(t - 1, 1))
    h, w = image.shape[:2]
    x = int(max(0, min(xy[0], w - 1 - tw - 2)))
    y = int(max(0, min(xy[1], h - 1 - th - base - 2)))
    cv2.rectangle(image, (x, y), (x + tw + 2, y + th + base + 2), colour, -1)
    lum = 0.114 * colour[0] + 0.587 * colour[1] + 0.299 * colour[2]
    ink = (0, 0, 0) if lum > 150 else (255, 255, 255)
    cv2.putText(image, text, (x + 1, y + th + 1), cv2.FONT_HERSHEY_SIMPLEX, scale, ink, max(t - 1, 1), cv2.LINE_AA)


def _counts(per_class: dict[str, int]) -> str:
    return " ".join(f"{n} {cls}" for cls, n in sorted(per_class.items()) if n) or "0"


def draw_zones(image: NDArray[np.uint8], polygons: list[NDArray[np.float64]], names: list[str],
               occupancy: dict[str, dict[str, int]]) -> None:
    """Each zone's outline in a colour of its own, and its name with the count of each class inside."""
    t = _thickness(image)
    for k, (poly, name) in enumerate(zip(polygons, names)):
        colour = color_for(k + 7)  # offset: zones do not share the first instance colours
        pts = np.round(poly * 16).astype(np.int32)
        cv2.polylines(image, [pts], True, colour, t + 1, cv2.LINE_AA, shift=4)
        top = poly[int(np.argmin(poly[:, 1] * 4096 + poly[:, 0]))]
        label(image, f"{name}: {_counts(occupancy.get(name, {}))}", (int(top[0]), int(top[1]) + t + 2), colour)


def draw_lines(image: NDArray[np.uint8], points: list[NDArray[np.float64]], names: list[str],
               totals: dict[str, dict[str, dict[str, int]]]) -> None:
    """Each line, an arrow from its middle towards its ``in`` side, and its in/out totals."""
    t = _thickness(image)
    for k, (pts, name) in enumerate(zip(points, names)):
        colour = color_for(k + 3)
        p1, p2 = pts[0], pts[1]
        cv2.line(image, tuple(int(v) for v in p1), tuple(int(v) for v in p2), colour, t + 1, cv2.LINE_AA)
        d = p2 - p1
        normal = np.array([-d[1], d[0]]) / max(float(np.hypot(*d)), 1e-9)  # towards the right side: "in"
        mid = (p1 + p2) / 2
        tip = mid + normal * 12 * t
        cv2.arrowedLine(image, tuple(int(v) for v in mid), tuple(int(v) for v in tip), colour, t, cv2.LINE_AA,
                        tipLength=0.4)
        per = totals.get(name, {"in": {}, "out": {}})
        n_in, n_out = sum(per["in"].values()), sum(per["out"].values())
        label(image, f"{name} in {n_in} out {n_out}", (int(min(p1[0], p2[0])), int(min(p1[1], p2[1])) - 8 * t - 10),
              colour)
