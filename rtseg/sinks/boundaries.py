"""Boundary maps (``--save-boundaries DIR``): one PNG per frame, 255 where the labels change, else 0."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from numpy.typing import NDArray

from rtseg.errors import SinkError
from rtseg.postprocess.boundaries import boundary_map, check_width, segment_map
from rtseg.sinks.atomic import write_bytes
from rtseg.sinks.base import ensure_folder
from rtseg.types import Frame, FrameResult


class BoundarySink:
    """Writes ``frame_%06d.png`` (8-bit, 255 on a boundary) per frame: the boundaries of the panoptic segments
    when fused, else of the semantic classes and the instance masks (:func:`rtseg.postprocess.boundaries.segment_map`),
    ``width`` pixels wide. A frame with nothing segmented gets an all-zero map."""

    needs_image = False
    FILES = ("frame_*.png",)

    def __init__(self, folder: Path, width: int = 2) -> None:
        self.width = check_width(width)
        self.folder = ensure_folder(folder)

    def write(self, frame: Frame, annotated: NDArray[np.uint8] | None, result: FrameResult) -> None:
        ids = segment_map(result)
        edges = np.zeros(result.image_hw, np.uint8)
        if ids is not None:
            edges[boundary_map(ids, self.width)] = 255
        path = self.folder / f"frame_{result.frame_index:06d}.png"
        ok, data = cv2.imencode(".png", edges)
        if not ok:
            raise SinkError(f"cannot encode {path} as PNG")
        write_bytes(path, data.tobytes(), what="boundary map")

    def close(self) -> None:
        pass
