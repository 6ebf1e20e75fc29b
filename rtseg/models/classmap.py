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
    hexdigits = "0123456789abcdefABCDEF"
    if isinstance(value, str) and value.startswith("#") and len(value) == 7 and all(c in hexdigits for c in value[1:]):
        r, g, b = (int(value[i : i + 2], 16) for i in (1, 3, 5))
    elif isinstance(value, (list, tuple)) and len(value) == 3 and all(0 <= (_int(v) or 0) <= 255 and
                                                                      _int(v) is not None for v in value):
        r, g, b = (_int(v) for v in value)
    else:
        raise ConfigError(f"{where}: colour {str(value)[:40]!r} is neither '#RRGGBB' nor [r, g, b] (0 to 255 each)")
    return int(b), int(g), int(r)


def _int(value: object) -> int | None:
    """A whole number, also written as text (YAML and JSON keys): never a bool, a float or a list."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    return None


def _parse(section: object, where: str) -> ClassMap:
    if not isinstance(section, dict):
        raise ConfigError(f"{where}: expected a mapping with 'names' (and 'palette', 'map'), "
                          f"got {type(section).__name__}")
    names = section.get("names")
    if isinstance(names, dict):
        ids = [_int(k) for k in names]
        if sorted(i for i in ids if i is not None) != list(range(len(names))):
            raise ConfigError(f"{where}: 'names' as a mapping needs the ids 0, 1, 2, ... as keys")
        names = [n for _, n in sorted(zip(ids, names.values()))]
    if not isinstance(names, list) or not 1 <= len(names) <= 256 or not all(
            isinstance(n, (str, int, float)) and not isinstance(n, bool) for n in names):
        raise ConfigError(f"{where}: 'names' must be a list (or id -> name mapping) of 1 to 256 class names")
    palette = section.get("palette")
    if palette is not None:
        if not isinstance(palette, list) or len(palette) != len(names):
            raise ConfigError(f"{where}: 'palette' must list one colour per name ({len(names)})")
        palette = tuple(_colour(c, where) for c in palette)
    lut = None
    if section.get("map"):
        if not isinstance(section["map"], dict):
            raise ConfigError(f"{where}: 'map' must map model class ids to shown ones, like {{5: 1}}")
        lut = np.arange(256, dtype=np.uint8)
        for src, dst in section["map"].items():
            s, d = _int(src), _int(dst)
            if s is None or d is None or not (0 <= s < 256 and 0 <= d < len(names)):
                raise ConfigError(f"{where}: map {str(src)[:20]} -> {str(dst)[:20]} is out of range "
                                  f"(model ids 0-255 -> ids 0-{len(names) - 1})")
            lut[s] = d
    return ClassMap(tuple(str(n) for n in names), palette, lut)


def _read(path: Path) -> object:
    """The file's YAML or JSON content; one line for every way it can be unreadable."""
    kind = "JSON" if path.suffix.lower() == ".json" else "YAML"
    try:
        text = path.read_text(encoding="utf-8")
        return json.loads(text) if kind == "JSON" else yaml.safe_load(text)
    except UnicodeDecodeError:
        raise ConfigError(f"class_file={path}: not a text file (it is not UTF-8)") from None
    except OSError as exc:
        raise ConfigError(f"class_file={path}: cannot read it ({exc.strerror})") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"class_file={path}: not valid JSON (line {exc.lineno}: {exc.msg})") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f"line {mark.line + 1}: " if mark is not None else ""
        raise ConfigError(f"class_file={path}: not valid YAML ({line}{getattr(exc, 'problem', None) or 'syntax'})"
                          ) from None
    except (RecursionError, ValueError) as exc:  # nested thousands deep; numbers Python refuses to read
        why = "nested too deeply" if isinstance(exc, RecursionError) else str(exc).splitlines()[0][:80]
        raise ConfigError(f"class_file={path}: not a class file ({why})") from None


def load_class_file(path: Path) -> dict[str, ClassMap]:
    """Sections of a class file: ``"semantic"``, ``"instance"`` and/or ``"default"`` (top-level keys)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"class_file={path}: no such file")
    data = _read(path)
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
