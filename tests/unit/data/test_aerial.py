"""The aerial data reader on the real data set: colour -> class id mapping and the split by tile."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from rtseg.data.aerial import (
    CLASS_NAMES,
    MASK_COLOURS_RGB,
    PALETTE_BGR,
    UNLABELED,
    load_aerial,
    mask_to_labels,
    split_aerial,
    tile_of,
)
from tests.support import DATA

ROOT = DATA / "aerial" / "dubai_landcover_hitl"
pytestmark = pytest.mark.data


@pytest.fixture(scope="module")
def pairs() -> list:
    return load_aerial(ROOT)


def test_class_colours_match_csv() -> None:
    rows = (ROOT / "class_colors.csv").read_text().splitlines()[1:]
    csv = [(int(r), int(g), int(b)) for *_, r, g, b in (row.split(",") for row in rows)]
    assert tuple(csv) == MASK_COLOURS_RGB
    assert PALETTE_BGR[0] == (0x98, 0x10, 0x3C) and len(CLASS_NAMES) == len(PALETTE_BGR) == 6


def test_real_mask_colours_map_to_ids(pairs: list) -> None:
    by_name = {p.stem: labels for p, labels in pairs}
    for stem in ("tile1_image_part_001", "tile8_image_part_003"):  # RGB masks; tile8 part 3 has black pixels
        rgb = np.asarray(Image.open(ROOT / "masks" / f"{stem}.png").convert("RGB"))
        labels = by_name[stem]
        assert labels.shape == rgb.shape[:2] and labels.dtype == np.uint8
        for class_id, colour in enumerate(MASK_COLOURS_RGB):
            np.testing.assert_array_equal(labels == class_id, (rgb == colour).all(-1)
                                          | ((class_id == UNLABELED) & (rgb == 0).all(-1)))
    assert (np.asarray(Image.open(ROOT / "masks" / "tile8_image_part_003.png").convert("RGB")) == 0).all(-1).any()


def test_every_pixel_mapped(pairs: list) -> None:
    assert len(pairs) == 72
    palette_modes = 0
    for image_path, labels in pairs:
        with Image.open(image_path) as image:
            assert labels.shape == (image.height, image.width)
        assert labels.max() <= UNLABELED  # load_aerial raises on any unknown colour, so this is the rest
        with Image.open(ROOT / "masks" / f"{image_path.stem}.png") as mask:
            palette_modes += mask.mode == "P"
    assert palette_modes == 18  # the palette-mode masks went through .convert("RGB") too


def test_unknown_colour_raises() -> None:
    rgb = np.zeros((2, 2, 3), np.uint8)
    rgb[1, 1] = (1, 2, 3)
    with pytest.raises(ValueError, match="#010203"):
        mask_to_labels(rgb)


def test_split_is_by_tile_and_deterministic(pairs: list) -> None:
    train, val = split_aerial(pairs, val_fraction=0.25, seed=0)
    train_tiles, val_tiles = {tile_of(p) for p, _ in train}, {tile_of(p) for p, _ in val}
    assert not train_tiles & val_tiles and len(val_tiles) == 2 and len(train) + len(val) == 72
    assert val_tiles == {3, 5}  # documented in split_aerial
    again, _ = split_aerial(list(reversed(pairs)), val_fraction=0.25, seed=0)
    assert {p for p, _ in again} == {p for p, _ in train}
    _, val7 = split_aerial(pairs, val_tiles=[7, 8])
    assert {tile_of(p) for p, _ in val7} == {7, 8} and len(val7) == 18
    with pytest.raises(ValueError, match="val_tiles"):
        split_aerial(pairs, val_tiles=[9])
