"""Checks of labelled data as it is read, so that bad labels end in one clear line, not a table of NaN.

Every reader of :mod:`rtseg.data.datasets` collects what it cannot use in a :class:`Problems` list: a YOLO-seg
line that is not ``class x1 y1 x2 y2 x3 y3 ...`` with finite coordinates in 0..1 and a known class id, a COCO
annotation with a malformed segmentation or an unknown image or category, an image file that is missing. A few
bad entries among many (at most :data:`MAX_BAD_FRACTION` of them) are left out with one warning that gives the
count; more are an error that names the first one (``file:line: what is wrong``). Label images are checked
when decoded (:func:`check_label_ids`): one channel (or equal colour channels), class ids the class list
names, the size of their image (checked from the file headers when the set is opened).
"""

from __future__ import annotations

import logging
import math
import struct
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from rtseg.errors import ConfigError

log = logging.getLogger(__name__)

MAX_BAD_FRACTION = 0.05  # bad entries left out with a warning; more than this share of them is an error
COORD_TOLERANCE = 0.01  # YOLO-seg coordinates a little outside 0..1 (rounding) are clipped, not refused
IGNORE = 255
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


class Problems:
    """Bad entries (``where: why``) of one data set, counted against ``total`` by :meth:`settle`."""

    def __init__(self, source: Path | str, what: str, hint: str = "") -> None:
        self.source, self.what, self.hint = source, what, hint
        self.found: list[str] = []

    def add(self, where: object, why: str) -> None:
        self.found.append(f"{where}: {why}")

    def __len__(self) -> int:
        return len(self.found)

    def settle(self, total: int) -> None:
        """Raise :class:`ConfigError` when too many of ``total`` entries are bad, else warn about the few.

        Raises:
            ConfigError: more than :data:`MAX_BAD_FRACTION` of ``total`` bad, naming the first.
        """
        n = len(self.found)
        if not n:
            return
        if n > MAX_BAD_FRACTION * total:
            more = f" (and {n - 1} more bad {self.what} of {total})" if n > 1 else ""
            raise ConfigError(f"{self.found[0]}{more}{'; ' + self.hint if self.hint else ''}")
        log.warning("%s: left out %d bad %s of %d (first: %s)", self.source, n, self.what, total, self.found[0])


def class_range(n: int) -> str:
    return f"ids 0-{n - 1}" if n > 1 else "id 0"


def parse_yolo_label(path: Path, n_classes: int, problems: Problems) -> tuple[list[tuple[int, NDArray]], int]:
    """(class id, ``(N, 2)`` polygon normalised to 0..1) per good line of a YOLO-seg label file, and the number
    of lines read. Bad lines go to ``problems`` as ``file:line: why``; a missing file is an image without
    objects (Ultralytics' rule); 5-value lines are boxes, not polygons, and are passed over."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return [], 0
    except (OSError, UnicodeDecodeError) as exc:
        problems.add(path, "not a readable text file" + (f" ({exc.strerror})" if isinstance(exc, OSError) else ""))
        return [], 1
    out, lines = [], 0
    for number, line in enumerate(text.splitlines(), 1):
        values = line.split()
        if not values:
            continue
        lines += 1
        parsed = _yolo_line(values, n_classes)
        if isinstance(parsed, str):
            problems.add(f"{path}:{number}", parsed)
        elif parsed is not None:
            out.append(parsed)
    return out, lines


def _yolo_line(values: list[str], n_classes: int) -> tuple[int, NDArray] | str | None:
    try:
        numbers = [float(v) for v in values]
    except ValueError:
        bad = next(v for v in values if not _is_float(v))
        return f"{bad[:20]!r} is not a number"
    cls = numbers[0]
    if not (math.isfinite(cls) and cls.is_integer()):
        return f"class id {values[0][:20]!r} is not a whole number"
    if not 0 <= cls < n_classes:
        return f"class id {int(cls)}, but the data set names {n_classes} classes ({class_range(n_classes)})"
    if len(values) == 5:  # a box (class cx cy w h): no polygon to measure masks with
        return None
    coords = np.asarray(numbers[1:], np.float64)
    if len(coords) < 6 or len(coords) % 2:
        return (f"{len(coords)} coordinates; a polygon needs x y pairs, at least 3 of them "
                "(class x1 y1 x2 y2 x3 y3 ...)")
    if not np.isfinite(coords).all():
        return f"coordinate {values[1 + int(np.argmin(np.isfinite(coords)))][:20]!r} is not a finite number"
    outside = (coords < -COORD_TOLERANCE) | (coords > 1 + COORD_TOLERANCE)
    if outside.any():
        return f"coordinate {coords[outside][0]:g} is outside 0..1 (YOLO-seg coordinates are fractions of the image)"
    return int(cls), coords.clip(0, 1).reshape(-1, 2)


def _is_float(value: str) -> bool:
    try:
        float(value)
    except ValueError:
        return False
    return True


def _number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def coco_segmentation_problem(seg: object, hw: tuple[int, int]) -> str | None:
    """Why a COCO ``segmentation`` cannot be read for an image of ``hw`` pixels, or None when it can.

    Polygons: a list of ``[x1, y1, x2, y2, x3, y3, ...]`` lists, finite, inside the image (within 1 %).
    RLE: ``{"size": [h, w], "counts": str or list of non-negative ints}``, ``size`` the image's.
    """
    h, w = hw
    if isinstance(seg, list):
        if not seg:
            return "segmentation is an empty list"
        for poly in seg:
            if not isinstance(poly, list) or not all(_number(v) for v in poly):
                return "segmentation polygon is not a list of finite numbers"
            if len(poly) < 6 or len(poly) % 2:
                return f"segmentation polygon has {len(poly)} coordinates; it needs x y pairs, at least 3 of them"
            xy = np.asarray(poly, np.float64).reshape(-1, 2)
            tol = np.array([max(2.0, 0.01 * w), max(2.0, 0.01 * h)])
            if (xy < -tol).any() or (xy > np.array([w, h]) + tol).any():
                return f"segmentation polygon leaves the {w}x{h} image (e.g. x, y = {_outside(xy, w, h, tol)})"
        return None
    if isinstance(seg, dict):
        size, counts = seg.get("size"), seg.get("counts")
        if not (isinstance(size, list) and len(size) == 2 and all(isinstance(v, int) for v in size)):
            return "segmentation RLE has no [height, width] size"
        if tuple(size) != (h, w):
            return f"segmentation RLE size {size[0]}x{size[1]} (h x w) is not the image's {h}x{w}"
        if isinstance(counts, list):
            if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in counts):
                return "segmentation RLE counts are not non-negative whole numbers"
            if sum(counts) != h * w:
                return f"segmentation RLE counts cover {sum(counts)} pixels, the image has {h * w}"
            return None
        if isinstance(counts, str) and counts.isascii() and counts:
            return None
        return "segmentation RLE counts are neither a string nor a list of numbers"
    return f"segmentation is a {type(seg).__name__}, neither polygons (lists) nor an RLE (dict)"


def _outside(xy: NDArray, w: int, h: int, tol: NDArray) -> str:
    bad = ((xy < -tol) | (xy > np.array([w, h]) + tol)).any(axis=1)
    x, y = xy[bad][0]
    return f"{x:g}, {y:g}"


def png_header(path: Path) -> tuple[int, int, int, int] | None:
    """(height, width, bit depth, colour type) from a PNG's IHDR chunk, or None when it is not a PNG."""
    try:
        with open(path, "rb") as f:
            head = f.read(29)
    except OSError:
        return None
    if len(head) < 29 or head[:8] != PNG_SIGNATURE or head[12:16] != b"IHDR":
        return None
    w, h, depth, colour = struct.unpack(">IIBB", head[16:26])
    return h, w, depth, colour


def image_hw(path: Path) -> tuple[int, int] | None:
    """An image's (height, width) from its header (no decoding), or None when it cannot be read."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            return image.height, image.width
    except (OSError, UnidentifiedImageError, ValueError):
        return None


def read_label_ids(path: Path) -> NDArray[np.integer]:
    """A label PNG as a 2-D array of ids: palette PNGs give their indices (as VOC-style masks mean them),
    grey ones their values, colour ones their value where all colour channels agree (grey saved as RGB).

    Raises:
        ConfigError: unreadable, or colour channels that differ (a colour-coded mask, not ids).
    """
    import cv2

    header = png_header(path)
    if header is not None and header[3] == 3:  # palette: the index is the id, the colour only its display
        from PIL import Image

        try:
            with Image.open(path) as image:
                return np.asarray(image)
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{path}: cannot read this label PNG ({exc})") from None
    labels = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if labels is None:
        raise ConfigError(f"{path}: cannot read this label image (not a PNG, or damaged)")
    if labels.ndim == 3:
        colour = labels[..., :3] if labels.shape[2] >= 3 else labels[..., :1]
        if (colour != colour[..., :1]).any():
            raise ConfigError(f"{path}: a colour mask (its channels differ); rtseg reads class ids from "
                              "single-channel PNGs (pixel = class id): convert the colours to ids first")
        labels = colour[..., 0]
    return labels


def check_label_ids(labels: NDArray[np.integer], path: Path, kind: str, n_classes: int) -> NDArray[np.integer]:
    """``labels`` (from :func:`read_label_ids`) as the label kind wants them, or a one-line error.

    ``kind``: ``semantic`` (ids below ``n_classes``, or 255 = ignore; returned as uint8), ``trimap`` (1, 2, 3)
    or ``instance`` (any ids, 0 = background). Sizes are checked when the data set is opened (PNG headers).
    """
    if kind == "instance":
        return labels
    values = np.unique(labels)
    if kind == "trimap":
        bad = values[~np.isin(values, (1, 2, 3))]
        if len(bad):
            raise ConfigError(f"{path}: value {int(bad[0])} in a trimap (expected 1 object, 2 background, 3 border)")
        return labels.astype(np.uint8)
    bad = values[(values >= n_classes) & (values != IGNORE)]
    if len(bad):
        raise ConfigError(f"{path}: class id {int(bad[0])} in the mask, but the class list names {n_classes} "
                          f"classes ({class_range(n_classes)}; 255 = ignore)")
    return labels.astype(np.uint8)
