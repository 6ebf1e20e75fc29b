"""Class names, colours and class merges from a file (``--class-file``), e.g. for aerial land-cover classes.

YAML or JSON::

    # applies to the semantic model when the run has one, else to the instance model
    names: [building, land, road, vegetation, water, unlabeled]
    palette: ["#3C1098", "#8429F6", "#6EC1E4", "#FEDD3A", "#E2A929", "#9B9B9B"]   # RGB, hex or [r, g, b]
    map: {5: 1}          # optional: show model class 5 as class 1 (merge classes)

or the same keys under ``semantic:`` and/or ``instance:`` to set both models of a combined run.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
import yaml
from numpy.typing import NDArray

from rtseg.errors import ConfigError


@dataclass(frozen=True)
class ClassMap:
    """Names (indexed by displayed class id), optional BGR colours, and an optional class-id remap."""

    names: tuple[str, ...]
    palette_bgr: tuple[tuple[int, int, int], ...] | None = None
    lut: NDArray[np.uint8] | None = None  # 256 entries: model class id -> displayed class id


def _colour(value: object, where: str) -> tuple[int, int, int]:
    if isinstance(value, str) and value.startswith("#") and len(value) == 7:
        r, g, b = (int(value[i : i + 2], 16) for i in (1, 3, 5))
    elif isinstance(value, (list, tuple)) and len(value) == 3 and all(isinstance(v, int) for v in value):
        r, g, b = value
    else:
        raise ConfigError(f"{where}: colour {value!r} is neither '#RRGGBB' nor [r, g, b]")
    return int(b), int(g), int(r)


def _parse(section: dict, where: str) -> ClassMap:
    names = section.get("names")
    if isinstance(names, dict):
        names = [names[k] for k in sorted(names)]
    if not isinstance(names, list) or not names or not 1 <= len(names) <= 256:
        raise ConfigError(f"{where}: 'names' must be a list (or id -> name mapping) of 1 to 256 class names")
    palette = section.get("palette")
    if palette is not None:
        if not isinstance(palette, list) or len(palette) != len(names):
            raise ConfigError(f"{where}: 'palette' must list one colour per name ({len(names)})")
        palette = tuple(_colour(c, where) for c in palette)
    lut = None
    if section.get("map"):
        lut = np.arange(256, dtype=np.uint8)
        for src, dst in dict(section["map"]).items():
            if not (0 <= int(src) < 256 and 0 <= int(dst) < len(names)):
                raise ConfigError(f"{where}: map {src} -> {dst} is out of range")
            lut[int(src)] = int(dst)
    return ClassMap(tuple(str(n) for n in names), palette, lut)


def load_class_file(path: Path) -> dict[str, ClassMap]:
    """Sections of a class file: ``"semantic"``, ``"instance"`` and/or ``"default"`` (top-level keys)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"class_file={path}: no such file")
    try:
        data = json.loads(path.read_text()) if path.suffix.lower() == ".json" else yaml.safe_load(path.read_text())
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"class_file={path}: not valid {path.suffix.lstrip('.') or 'YAML'} ({exc})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"class_file={path}: expected a mapping with 'names' (and 'palette', 'map')")
    out = {key: _parse(data[key], f"class_file={path} [{key}]") for key in ("semantic", "instance")
           if key in data}
    if "names" in data:
        out["default"] = _parse(data, f"class_file={path}")
    if not out:
        raise ConfigError(f"class_file={path}: no 'names' (top level, or under semantic: / instance:)")
    return out


class RemappedSemantic:
    """A semantic stage whose labels, names and colours go through a :class:`ClassMap`."""

    def __init__(self, model, classmap: ClassMap) -> None:  # noqa: ANN001 - SemanticModel or TiledSemantic
        self.model, self.classmap, self.backend = model, classmap, model.backend
        if classmap.lut is None and len(classmap.names) < len(model.names):
            raise ConfigError(f"class_file lists {len(classmap.names)} names, the semantic model has "
                              f"{len(model.names)} classes; add names or a 'map'")
        palette = classmap.palette_bgr or tuple(model.info.palette_bgr[i % len(model.info.palette_bgr)]
                                                for i in range(len(classmap.names)))
        self.info = replace(model.info, names=classmap.names, palette_bgr=palette)
        self.names = classmap.names

    @property
    def device(self) -> torch.device:  # the rtseg.models.base.SemanticStage protocol
        return self.model.device

    @property
    def uses_torch_cpu(self) -> bool:
        return self.model.uses_torch_cpu

    def __call__(self, images):  # noqa: ANN001, ANN204
        labels = self.model(images)
        if self.classmap.lut is None:
            return labels
        return [self.classmap.lut[lab] for lab in labels]
