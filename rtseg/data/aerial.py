"""The "Semantic segmentation of aerial imagery" set (Humans in the Loop, MBRSC satellite images of Dubai).

72 image/mask pairs, 8 tiles x 9 parts, named ``images/tileN_image_part_00K.jpg`` and
``masks/tileN_image_part_00K.png``. Masks are colour-coded (RGB or palette PNGs); the true colours are the
ones of ``class_colors.csv`` (the shipped ``classes.json`` is wrong), see :data:`MASK_COLOURS_RGB`. Pure
black (unpainted pixels, 0.56 % of all mask pixels) is mapped to ``unlabeled`` like ``#9B9B9B``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from PIL import Image

CLASS_NAMES = ("building", "land", "road", "vegetation", "water", "unlabeled")
UNLABELED = 5  # class id of "unlabeled": train with ignore_index=UNLABELED
# The colours painted in the masks, (R, G, B) per class id (class_colors.csv).
MASK_COLOURS_RGB: tuple[tuple[int, int, int], ...] = (
    (0x3C, 0x10, 0x98),  # building
    (0x84, 0x29, 0xF6),  # land (unpaved area)
    (0x6E, 0xC1, 0xE4),  # road
    (0xFE, 0xDD, 0x3A),  # vegetation
    (0xE2, 0xA9, 0x29),  # water
    (0x9B, 0x9B, 0x9B),  # unlabeled
)
# Extra colours that occur in the masks and the class they mean.
EXTRA_COLOURS_RGB: dict[tuple[int, int, int], int] = {(0, 0, 0): UNLABELED}
# The same colours in frame channel order, for SemanticInfo.palette_bgr and the overlay.
PALETTE_BGR: tuple[tuple[int, int, int], ...] = tuple((b, g, r) for r, g, b in MASK_COLOURS_RGB)

_TILE = re.compile(r"tile(\d+)_")


def _colour_table() -> tuple[NDArray[np.int64], NDArray[np.uint8]]:
    pairs = [(c, i) for i, c in enumerate(MASK_COLOURS_RGB)] + list(EXTRA_COLOURS_RGB.items())
    keys = np.array([(r << 16) | (g << 8) | b for (r, g, b), _ in pairs], np.int64)
    ids = np.array([i for _, i in pairs], np.uint8)
    order = np.argsort(keys)
    return keys[order], ids[order]


def mask_to_labels(mask_rgb: NDArray[np.uint8], source: str = "mask") -> NDArray[np.uint8]:
    """Colour-coded (H, W, 3) RGB mask -> (H, W) uint8 class ids 0..5.

    Raises:
        ValueError: a pixel has a colour that is no class colour (the message gives the first few).
    """
    if mask_rgb.ndim != 3 or mask_rgb.shape[2] != 3:
        raise ValueError(f"{source}: expected an (H, W, 3) RGB mask, got shape {mask_rgb.shape}")
    m = mask_rgb.astype(np.int64)
    packed = (m[..., 0] << 16) | (m[..., 1] << 8) | m[..., 2]
    keys, ids = _colour_table()
    pos = np.clip(np.searchsorted(keys, packed), 0, len(keys) - 1)
    known = keys[pos] == packed
    if not known.all():
        bad = np.unique(packed[~known])[:5]
        raise ValueError(f"{source}: {int((~known).sum())} pixels have colours that are no class colour, e.g. "
                         + ", ".join(f"#{int(v):06X}" for v in bad))
    return ids[pos]


def tile_of(path: str | Path) -> int:
    """The tile number N of ``tileN_image_part_00K.*``."""
    match = _TILE.match(Path(path).name)
    if match is None:
        raise ValueError(f"{path}: expected a file name tileN_image_part_00K.*")
    return int(match.group(1))


def load_aerial(root: str | Path) -> list[tuple[Path, NDArray[np.uint8]]]:
    """Every (image path, (H, W) uint8 label map) pair of the data set, sorted by file name.

    Args:
        root: the folder holding ``images/`` and ``masks/``.

    Raises:
        FileNotFoundError: no images, or an image without its mask.
        ValueError: a mask with an unknown colour or a size other than its image's.
    """
    root = Path(root)
    images = sorted((root / "images").glob("*.jpg"))
    if not images:
        raise FileNotFoundError(f"no images/*.jpg under {root}: expected the aerial data set folder")
    pairs = []
    for image_path in images:
        mask_path = root / "masks" / f"{image_path.stem}.png"
        if not mask_path.is_file():
            raise FileNotFoundError(f"{image_path}: its mask {mask_path} is missing")
        with Image.open(mask_path) as mask, Image.open(image_path) as image:
            if mask.size != image.size:
                raise ValueError(f"{mask_path}: size {mask.size} differs from its image's {image.size}")
            labels = mask_to_labels(np.asarray(mask.convert("RGB")), str(mask_path))
        pairs.append((image_path, labels))
    return pairs


def split_aerial(pairs: Sequence[tuple[Path, NDArray[np.uint8]]], val_fraction: float = 0.25, seed: int = 0,
                 val_tiles: Sequence[int] | None = None
                 ) -> tuple[list[tuple[Path, NDArray[np.uint8]]], list[tuple[Path, NDArray[np.uint8]]]]:
    """Split into (train, val) by whole tiles, so validation images are never neighbours of training ones.

    The 9 parts of one tile are cut from one satellite image, so a split by part would validate on the same
    scene seen in training. Here ``round(val_fraction * number of tiles)`` tiles (at least 1, at most all
    but 1) are held out, chosen by ``numpy.random.default_rng(seed).permutation`` of the sorted tile
    numbers (seed 0 on the 8 tiles: tiles 3 and 5, 18 of the 72 images), unless
    ``val_tiles`` names them. The result depends only on the file names and the arguments.

    Args:
        pairs: as returned by :func:`load_aerial`.
        val_fraction: fraction of tiles (not images) to hold out.
        seed: chooses which tiles.
        val_tiles: explicit tile numbers to hold out; overrides ``val_fraction`` and ``seed``.
    """
    tiles = sorted({tile_of(p) for p, _ in pairs})
    if val_tiles is None:
        if not 0 < val_fraction < 1:
            raise ValueError(f"val_fraction: expected a value in (0, 1), got {val_fraction}")
        if len(tiles) < 2:
            raise ValueError(f"split by tile needs at least 2 tiles, got {tiles}")
        n_val = min(max(1, round(val_fraction * len(tiles))), len(tiles) - 1)
        held = {int(t) for t in np.random.default_rng(seed).permutation(tiles)[:n_val]}
    else:
        held = {int(t) for t in val_tiles}
        if not held <= set(tiles):
            raise ValueError(f"val_tiles {sorted(held)}: expected tiles among {tiles}")
    train = [pair for pair in pairs if tile_of(pair[0]) not in held]
    val = [pair for pair in pairs if tile_of(pair[0]) in held]
    return train, val
