"""Annotated frames saved as numbered JPEG files (``--save-frames DIR``)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from numpy.typing import NDArray

from rtseg.errors import SinkError
from rtseg.sinks.base import ensure_folder
from rtseg.types import Frame, FrameResult


class ImageFolderSink:
    """Writes ``frame_000000.jpg``, ``frame_000001.jpg``, ... into a folder (created if missing)."""

    needs_image = True

    def __init__(self, folder: Path, *, prefix: str = "frame") -> None:
        self.folder = ensure_folder(folder)
        self.prefix = prefix
        self.written = 0

    def write(self, frame: Frame, annotated: NDArray[np.uint8] | None, result: FrameResult) -> None:
        image = annotated if annotated is not None else frame.image
        path = self.folder / f"{self.prefix}_{result.frame_index:06d}.jpg"
        if not cv2.imwrite(str(path), image):
            raise SinkError(f"cannot write {path}")
        self.written += 1

    def close(self) -> None:
        pass
