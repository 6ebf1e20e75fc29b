"""COCO run-length encoding of box-local masks, without building the full-frame mask.

COCO RLE runs over the image in column-major order. Columns left and right of the crop are all
background, so only the crop's columns (at full image height) need run-length counting; the counts are
then compressed into COCO's string form by pycocotools, so any COCO tool decodes them.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from pycocotools import mask as mask_utils


def encode_crop(crop: NDArray[np.bool_], origin_xy: tuple[int, int], image_hw: tuple[int, int]) -> dict:
    """COCO RLE (``{"size": [h, w], "counts": str}``) of a crop placed at ``origin_xy`` in an image."""
    h, w = image_hw
    x0, y0 = int(origin_xy[0]), int(origin_xy[1])
    ch, cw = crop.shape
    if ch == 0 or cw == 0 or not crop.any():
        counts = [h * w]
    else:
        band = np.zeros((h, cw), dtype=np.uint8)
        band[y0 : y0 + ch] = crop
        flat = band.ravel(order="F")
        change = np.flatnonzero(np.diff(flat)) + 1
        edges = np.concatenate(([0], change, [flat.size]))
        runs = np.diff(edges)
        if flat[0]:  # COCO RLE starts with a background run, possibly empty
            runs = np.concatenate(([0], runs))
        runs[0] += x0 * h
        tail = (w - x0 - cw) * h  # background columns right of the crop
        if len(runs) % 2 == 1:  # ends in background: extend that run
            runs[-1] += tail
        elif tail:
            runs = np.concatenate((runs, [tail]))
        counts = runs.tolist()
    rle = mask_utils.frPyObjects({"size": [h, w], "counts": counts}, h, w)
    return {"size": [int(h), int(w)], "counts": rle["counts"].decode("ascii")}
