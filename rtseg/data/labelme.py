"""Reading a LabelMe folder (``NAME.json`` beside ``NAME.jpg``, as LabelMe, AnyLabeling and ``rtseg label``
write it): the polygons people drew or corrected, grouped into objects.

Shapes of one ``group_id`` and label form one object (LabelMe's way to outline an object in several pieces);
a shape without a group is an object of its own. ``polygon`` and ``rectangle`` shapes are read; points, lines
and circles outline no area and are left out with a warning, as are shapes labelled ``__ignore__`` or
``_background_`` (LabelMe's own conventions). Class ids follow ``classes.txt`` in the folder (``rtseg label``
writes the model's classes there; LabelMe's ``--labels`` files list ``__ignore__`` and ``_background_`` first,
which are skipped), else the labels found, sorted.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

from rtseg.data.validation import Problems, image_hw
from rtseg.errors import ConfigError

LOGGER = logging.getLogger(__name__)
SKIPPED_LABELS = ("__ignore__", "_background_")
AREA_SHAPES = ("polygon", "rectangle")


def is_labelme_folder(path: Path) -> bool:
    """A folder holding at least one LabelMe JSON (a ``shapes`` list and an ``imagePath``)."""
    if not path.is_dir():
        return False
    for f in sorted(path.glob("*.json"))[:5]:
        try:
            doc = json.loads(f.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(doc, dict) and isinstance(doc.get("shapes"), list) and "imagePath" in doc:
            return True
    return False


def _class_names(root: Path, found: set[str]) -> tuple[str, ...]:
    listed = root / "classes.txt"
    if not listed.is_file():
        return tuple(sorted(found))
    names = [n.strip() for n in listed.read_text(encoding="utf-8").splitlines() if n.strip()]
    names = [n for n in names if n not in SKIPPED_LABELS]
    unknown = sorted(found - set(names))
    if unknown:
        raise ConfigError(f"{listed}: the label {unknown[0]!r} is used in the JSON files but not listed "
                          f"(classes: {', '.join(names)}); fix the label or add it to classes.txt")
    return tuple(names)


def _shape_points(shape: dict) -> np.ndarray | None:
    pts = np.asarray(shape.get("points"), dtype=np.float64)
    if pts.ndim != 2 or pts.shape[1] != 2 or not np.isfinite(pts).all():
        return None
    if shape.get("shape_type", "polygon") == "rectangle":
        if len(pts) != 2:
            return None
        (x0, y0), (x1, y1) = pts
        pts = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]])
    return pts if len(pts) >= 3 else None


def read_labelme_folder(root: Path) -> tuple[list[Path], tuple[str, ...], list[dict]]:
    """(images, class names, per-image ``{"height", "width", "objects": [(class id, [(N, 2) px polygons])]}``).

    Raises:
        ConfigError: no usable JSON, or labels not in ``classes.txt``; a few unreadable files among many are
            left out with a warning (:class:`~rtseg.data.validation.Problems`).
    """
    files = sorted(root.glob("*.json"))
    problems = Problems(root, "LabelMe files", "a LabelMe file is NAME.json with shapes and imagePath, beside "
                        "its image")
    entries, found, skipped = [], set(), {}
    for f in files:
        try:
            doc = json.loads(f.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            problems.add(f, f"not readable JSON ({exc})")
            continue
        if not isinstance(doc, dict) or not isinstance(doc.get("shapes"), list) or \
                not isinstance(doc.get("imagePath"), str):
            if f.name != "classes.json":
                problems.add(f, "not a LabelMe file (no shapes list and imagePath)")
            continue
        image = (f.parent / doc["imagePath"].replace("\\", "/"))
        if not image.is_file():
            image = next((p for p in f.parent.glob(f"{f.stem}.*") if p.suffix.lower() != ".json"), image)
        hw = image_hw(image) if image.is_file() else None
        if hw is None:
            problems.add(f, f"its image {doc['imagePath']} is missing or unreadable")
            continue
        groups: dict = {}
        for k, shape in enumerate(doc["shapes"]):
            label = str(shape.get("label", "")).strip() if isinstance(shape, dict) else ""
            kind = shape.get("shape_type", "polygon") if isinstance(shape, dict) else None
            if not label or label in SKIPPED_LABELS:
                continue
            pts = _shape_points(shape) if kind in AREA_SHAPES else None
            if pts is None:
                skipped[kind] = skipped.get(kind, 0) + 1
                continue
            found.add(label)
            gid = shape.get("group_id")
            key = (label, gid) if gid is not None else (label, f"shape{k}")
            groups.setdefault(key, []).append(pts)
        entries.append((image, hw, groups))
    problems.settle(len(files))
    if not entries:
        raise ConfigError(f"{root}: no LabelMe file with its image (NAME.json beside NAME.jpg)")
    if skipped:
        LOGGER.warning("%s: left out %s (they outline no area)", root,
                       ", ".join(f"{n} {k} shape(s)" for k, n in skipped.items()))
    names = _class_names(root, found)
    if not names:
        raise ConfigError(f"{root}: no labelled polygon in {len(entries)} LabelMe files and no classes.txt")
    class_of = {n: i for i, n in enumerate(names)}
    refs = [{"height": hw[0], "width": hw[1],
             "objects": [(class_of[label], polys) for (label, _), polys in groups.items()]}
            for _, hw, groups in entries]
    return [e[0] for e in entries], names, refs
