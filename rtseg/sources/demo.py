"""``rtseg demo``: a short clip built from photos that installed packages ship, run with the default model."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from rtseg.errors import SourceError


def sample_images() -> list[Path]:
    """Sample photos bundled with Ultralytics (``bus.jpg``, ``zidane.jpg``): present offline."""
    try:
        from ultralytics.utils import ASSETS
    except ImportError:
        raise SourceError("rtseg demo needs ultralytics' bundled sample images: pip install ultralytics") from None
    images = sorted(Path(ASSETS).glob("*.jpg"))
    if not images:
        raise SourceError(f"no sample images found in {ASSETS}")
    return images


def build_clip(path: Path, *, size_wh: tuple[int, int] = (960, 540), seconds_per_image: float = 2.0,
               fps: int = 15) -> Path:
    """Write a clip that slowly pans and zooms across each sample image (so frames differ).

    Each photo keeps its aspect ratio: the window panned across it is scaled by one factor to fit the frame
    and centred, grey (114) around it. Stretching the portrait ``bus.jpg`` into a 16:9 frame squashed its
    people so much that the default model found a person in 4 of its 30 frames (padded: every frame).
    """
    w, h = size_wh
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, size_wh)
    if not writer.isOpened():
        raise SourceError(f"cannot write demo clip {path}")
    n = int(seconds_per_image * fps)
    for file in sample_images():
        image = cv2.imread(str(file))
        ih, iw = image.shape[:2]
        for i in range(n):
            zoom = 1.0 + 0.15 * i / n  # window shrinks from the whole image to 1/1.15 of it
            cw, ch = iw / zoom, ih / zoom
            x0, y0 = (iw - cw) * i / n, (ih - ch) / 2
            s = min(w / cw, h / ch)  # one scale for x and y: no stretching
            tx, ty = (w - cw * s) / 2 - x0 * s, (h - ch * s) / 2 - y0 * s
            m = np.float32([[s, 0, tx], [0, s, ty]])
            writer.write(cv2.warpAffine(image, m, size_wh, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                                        borderValue=(114, 114, 114)))
    writer.release()
    return path
