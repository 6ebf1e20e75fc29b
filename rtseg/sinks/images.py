"""Annotated frames saved as numbered JPEG files (``--save-frames DIR``), each written under a temporary name
and renamed once complete (:mod:`rtseg.sinks.atomic`)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from numpy.typing import NDArray

from rtseg.errors import SinkError
from rtseg.sinks.atomic import write_bytes
from rtseg.sinks.base import ensure_folder
from rtseg.types import Frame, FrameResult


class ImageFolderSink:
    """Writes ``frame_000000.jpg``, ``frame_000001.jpg``, ... into a folder (created if missing)."""

    needs_image = True
    FILES = ("frame_*.jpg",)  # what it writes into the folder (default prefix), for the output-path check

    def __init__(self, folder: Path, *, prefix: str = "frame") -> None:
        self.folder = ensure_folder(folder)
        self.prefix = prefix
        self.written = 0

    def write(self, frame: Frame, annotated: NDArray[np.uint8] | None, result: FrameResult) -> None:
        image = annotated if annotated is not None else frame.image
        path = self.folder / f"{self.prefix}_{result.frame_index:06d}.jpg"
        ok, data = cv2.imencode(".jpg", image)
        if not ok:
            raise SinkError(f"cannot encode {path} as JPEG")
        write_bytes(path, data.tobytes(), what="frame")
        self.written += 1

    def close(self) -> None:
        pass
