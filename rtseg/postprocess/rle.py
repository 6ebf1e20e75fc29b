"""COCO run-length encoding of box-local masks, without building the full-frame mask.

COCO RLE runs over the image in column-major order. Columns left and right of the crop are all
background, so only the crop's columns (at full image height) need run-length counting; the counts are
then compressed into COCO's string form by pycocotools, so any COCO tool decodes them.
"""

from __future__ import annotations

from rtseg.types import encode_crop

__all__ = ["encode_crop"]
