"""Semantic label maps as PNG files (``--save-labels DIR``), with the class list beside them; each file written
under a temporary name and renamed once complete (:mod:`rtseg.sinks.atomic`)."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
from numpy.typing import NDArray

from rtseg.errors import SinkError
from rtseg.sinks.atomic import write_bytes
from rtseg.sinks.base import ensure_folder
from rtseg.types import Frame, FrameResult


class LabelMapSink:
    """Writes ``frame_000000.png`` (8-bit, pixel value = class id) per frame and ``classes.json`` once.

    ``classes.json`` holds ``{"names": [...], "palette_bgr": [[b, g, r], ...]}``, indexed by pixel value.
    """

    needs_image = False
    FILES = ("frame_*.png", "classes.json")  # what it writes into the folder, for the output-path check

    def __init__(self, folder: Path, names: tuple[str, ...], palette_bgr: tuple[tuple[int, int, int], ...]) -> None:
        self.folder = ensure_folder(folder)
        write_bytes(self.folder / "classes.json", json.dumps(
            {"names": list(names), "palette_bgr": [list(c) for c in palette_bgr]}, indent=1) + "\n",
            what="class list")

    def write(self, frame: Frame, annotated: NDArray[np.uint8] | None, result: FrameResult) -> None:
        if result.semantic is None:
            return
        path = self.folder / f"frame_{result.frame_index:06d}.png"
        ok, data = cv2.imencode(".png", result.semantic)
        if not ok:
            raise SinkError(f"cannot encode {path} as PNG")
        write_bytes(path, data.tobytes(), what="label map")

    def close(self) -> None:
        pass
