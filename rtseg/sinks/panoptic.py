"""Panoptic output (``--save-panoptic DIR``): COCO panoptic PNGs and the JSON that describes them.

Each frame becomes ``frame_000000.png``, its segment ids RGB-encoded (``id = R + 256 G + 256^2 B``, as
COCO panoptic and ``panopticapi`` read them), and ``panoptic.json`` lists every frame's ``segments_info``
(``id``, ``category_id``, ``area``, ``bbox`` as x, y, w, h, ``iscrowd``) with the ``categories`` (``isthing``).
The JSON is rewritten whole when the run ends (also when stopped early), under a temporary name first
(:mod:`rtseg.sinks.atomic`), so it always describes PNGs that exist.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
from numpy.typing import NDArray

from rtseg.errors import SinkError
from rtseg.postprocess.panoptic import categories, ids_to_rgb
from rtseg.sinks.atomic import write_bytes
from rtseg.sinks.base import ensure_folder
from rtseg.types import Frame, FrameResult


class PanopticSink:
    """Writes ``frame_%06d.png`` (RGB-encoded segment ids) per frame and ``panoptic.json`` at the end.

    Args:
        folder: where (created if missing).
        names, semantic_names: the models' class names, for the ``categories`` table
            (:func:`rtseg.postprocess.panoptic.categories`).
    """

    needs_image = False
    FILES = ("frame_*.png", "panoptic.json")  # what it writes into the folder, for the output-path check

    def __init__(self, folder: Path, names: tuple[str, ...], semantic_names: tuple[str, ...]) -> None:
        self.folder = ensure_folder(folder)
        self.categories = [{"id": c.id, "name": c.name, "supercategory": "thing" if c.isthing else "stuff",
                            "isthing": int(c.isthing)}
                           for c in categories(names, semantic_names)]
        self.images: list[dict] = []
        self.annotations: list[dict] = []

    def write(self, frame: Frame, annotated: NDArray[np.uint8] | None, result: FrameResult) -> None:
        if result.panoptic is None:
            return
        name = f"frame_{result.frame_index:06d}"
        ok, data = cv2.imencode(".png", np.ascontiguousarray(ids_to_rgb(result.panoptic.ids)[..., ::-1]))
        if not ok:
            raise SinkError(f"cannot encode {self.folder / name}.png as PNG")
        write_bytes(self.folder / f"{name}.png", data.tobytes(), what="panoptic PNG")
        h, w = result.image_hw
        file_name = Path(frame.path).name if frame.path else f"{name}.jpg"
        self.images.append({"id": result.frame_index, "file_name": file_name, "height": h, "width": w})
        segments = [{k: s[k] for k in ("id", "category_id", "area", "bbox", "iscrowd")}
                    for s in result.panoptic.segments_info()]
        self.annotations.append({"image_id": result.frame_index, "file_name": f"{name}.png",
                                 "segments_info": segments})

    def close(self) -> None:
        doc = {"info": {"description": "rtseg panoptic output"}, "images": self.images,
               "annotations": self.annotations, "categories": self.categories}
        write_bytes(self.folder / "panoptic.json", json.dumps(doc) + "\n", what="panoptic JSON")
