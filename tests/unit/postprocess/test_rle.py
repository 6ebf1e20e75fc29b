"""RLE of box-local crops against pycocotools' own encoding."""

from __future__ import annotations

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from rtseg.postprocess.rle import encode_crop


@pytest.mark.parametrize("seed", range(40))
def test_rle_of_crop_equals_pycocotools(seed) -> None:
    rng = np.random.default_rng(seed)
    h, w = (int(v) for v in rng.integers(1, 60, 2))
    ch, cw = int(rng.integers(0, h + 1)), int(rng.integers(0, w + 1))
    y0, x0 = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
    crop = rng.random((ch, cw)) < rng.random()
    full = np.zeros((h, w), np.uint8)
    full[y0 : y0 + ch, x0 : x0 + cw] = crop
    rle = encode_crop(crop, (x0, y0), (h, w))
    assert rle["counts"] == mask_utils.encode(np.asfortranarray(full))["counts"].decode()
    np.testing.assert_array_equal(mask_utils.decode({"size": rle["size"], "counts": rle["counts"].encode()}), full)
