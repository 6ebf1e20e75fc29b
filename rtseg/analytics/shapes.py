"""Zones and lines: what they are, how they are written (strings, YAML/JSON files) and how they are checked.

A zone is a named polygon of at least 3 points; a line is a named segment of 2 points. Coordinates are
*normalised* (fractions of the frame's width and height, so one file fits every resolution) when every
number lies in 0..1, else pixels; a file may say which with ``normalized: true|false`` (top level or per
entry). Pixel coordinates are checked against the frame size at the first frame of each source.

Strings (``--zone`` / ``--line``)::

    door:0.1,0.2,0.4,0.2,0.4,0.9,0.1,0.9        # zone: name, then x1,y1,x2,y2,... (at least 3 points)
    gate:100,400,1180,400                       # line: name, then x1,y1,x2,y2

File (``--zones FILE``, YAML or JSON)::

    zones:
      - name: door
        points: [[0.1, 0.2], [0.4, 0.2], [0.4, 0.9], [0.1, 0.9]]
      - name: till
        points: [[700, 300], [900, 300], [900, 500]]
        source: cam_b          # only for this source (its tag, its name or its file name)
    lines:
      gate: [[100, 400], [1180, 400]]              # a mapping name -> points works too
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from rtseg.errors import ConfigError

__all__ = ["Line", "Zone", "load_shapes", "parse_line", "parse_zone", "select_shapes"]


@dataclass(frozen=True, eq=False)
class Zone:
    """A named polygon.

    Attributes:
        name: how the JSONL, the report and the overlay call it.
        points: (K, 2) float64 (x, y) vertices, K >= 3, normalised (0..1) or pixels.
        normalized: whether ``points`` are fractions of the frame's width and height.
        origin: the option that defined it, for error messages (``zones=site.yaml``, ``zone='door:...'``).
        source: only for the source with this tag or name (None: every source).

    Example:
        >>> zone = parse_zone("door:0.1,0.2,0.4,0.2,0.4,0.9")
        >>> zone.name, zone.normalized, zone.pixels((100, 200)).tolist()
        ('door', True, [[20.0, 20.0], [80.0, 20.0], [80.0, 90.0]])
    """

    name: str
    points: NDArray[np.float64]
    normalized: bool
    origin: str
    source: str | None = None

    kind = "zone"

    def pixels(self, image_hw: tuple[int, int], source: str = "") -> NDArray[np.float64]:
        """The points in pixels of an (H, W) frame.

        Raises:
            ConfigError: a pixel coordinate lies outside the frame (``zones=x.yaml: zone 'door' point
                (1400, 200) lies outside the 1280x720 frame of clip.mp4``).
        """
        h, w = image_hw
        if self.normalized:
            return self.points * np.array([w, h], np.float64)
        outside = (self.points[:, 0] > w) | (self.points[:, 1] > h) | (self.points < 0).any(1)
        if outside.any():
            x, y = self.points[int(np.flatnonzero(outside)[0])]
            of = f" of {source}" if source else ""
            raise ConfigError(f"{self.origin}: {self.kind} {self.name!r} point ({x:g}, {y:g}) lies outside the "
                              f"{w}x{h} frame{of}; give pixels inside it, or fractions 0..1 of the frame")
        return self.points.copy()


@dataclass(frozen=True, eq=False)
class Line(Zone):
    """A named segment: ``points`` is (2, 2), from (x1, y1) to (x2, y2).

    Crossing it from its left to its right side, as seen on screen walking from (x1, y1) to (x2, y2), is
    ``in``; the other way is ``out``. For a line drawn left to right, ``in`` is downwards; swap the two
    points to swap the directions.

    Example:
        >>> line = parse_line("gate:0,0.5,1,0.5")
        >>> line.name, line.pixels((100, 200)).tolist()
        ('gate', [[0.0, 50.0], [200.0, 50.0]])
    """

    kind = "line"


def _numbers(values: Iterable[object], origin: str) -> list[float]:
    out = []
    for v in values:
        if isinstance(v, bool):
            raise ConfigError(f"{origin}: {v!r} is not a number")
        try:
            number = float(v)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            raise ConfigError(f"{origin}: {str(v).strip()!r} is not a number") from None
        if not math.isfinite(number):
            raise ConfigError(f"{origin}: {v!r} is not a finite number")
        out.append(number)
    return out


def _flat_points(raw: object, origin: str, what: str) -> list[float]:
    """``[[x, y], ...]``, ``[x, y, x, y, ...]`` or ``"x,y,x,y"`` as one flat list of numbers."""
    if isinstance(raw, str):
        return _numbers([p for p in raw.split(",") if p.strip()], origin)
    if not isinstance(raw, (list, tuple)):
        raise ConfigError(f"{origin}: {what} points must be a list [[x, y], ...], got {type(raw).__name__}")
    flat: list[object] = []
    for item in raw:
        if isinstance(item, (list, tuple)):
            if len(item) != 2:
                raise ConfigError(f"{origin}: {what} point {list(item)!r} is not a pair [x, y]")
            flat.extend(item)
        else:
            flat.append(item)
    return _numbers(flat, origin)


def _build(kind: str, name: str, flat: list[float], origin: str, normalized: bool | None,
           source: str | None) -> Zone:
    what = f"{kind} {name!r}"
    if not name or any(c in name for c in ",:\n"):
        raise ConfigError(f"{origin}: {kind} name {name!r}: expected a non-empty name without ',' or ':'")
    if len(flat) % 2:
        raise ConfigError(f"{origin}: {what} has an odd count of numbers ({len(flat)}); give x,y pairs")
    points = np.array(flat, np.float64).reshape(-1, 2)
    if kind == "zone" and len(points) < 3:
        raise ConfigError(f"{origin}: {what} has {len(points)} point{'s' * (len(points) != 1)}; "
                          "a zone needs at least 3")
    if kind == "line" and len(points) != 2:
        raise ConfigError(f"{origin}: {what} has {len(points)} point{'s' * (len(points) != 1)}; "
                          "a line needs exactly 2 (x1,y1,x2,y2)")
    if normalized is None:
        normalized = bool(((points >= 0) & (points <= 1)).all())
    if normalized and not ((points >= 0) & (points <= 1)).all():
        raise ConfigError(f"{origin}: {what} is normalised but has coordinates outside 0..1")
    if (points < 0).any():
        raise ConfigError(f"{origin}: {what} has negative pixel coordinates; points must lie in the frame")
    if kind == "zone":
        x, y = points[:, 0], points[:, 1]
        if abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))) < 1e-12:
            raise ConfigError(f"{origin}: {what} has no area (its points lie on one line)")
    elif np.allclose(points[0], points[1]):
        raise ConfigError(f"{origin}: {what} has two equal points; a line needs two different ones")
    cls = Zone if kind == "zone" else Line
    return cls(name, points, bool(normalized), origin, None if source is None else str(source))


def _parse_string(kind: str, text: str, index: int) -> Zone:
    origin = f"{kind}={text!r}"
    if not isinstance(text, str) or not text.strip():
        raise ConfigError(f"{origin}: expected 'name:x1,y1,x2,y2,...'")
    name, sep, numbers = text.partition(":")
    if not sep:
        name, numbers = f"{kind}{index + 1}", text
    return _build(kind, name.strip(), _flat_points(numbers, origin, kind), origin, None, None)


def parse_zone(text: str, index: int = 0) -> Zone:
    """A zone from ``"name:x1,y1,x2,y2,x3,y3,..."`` (unnamed: ``zone<index+1>``).

    Raises:
        ConfigError: fewer than 3 points, a number that is not one, coordinates off the frame, no area.
    """
    return _parse_string("zone", text, index)


def parse_line(text: str, index: int = 0) -> Line:
    """A line from ``"name:x1,y1,x2,y2"`` (unnamed: ``line<index+1>``).

    Raises:
        ConfigError: not exactly 2 points, equal points, a number that is not one.
    """
    return _parse_string("line", text, index)  # type: ignore[return-value]


def _entries(raw: object, kind: str, origin: str) -> list[tuple[str, object, dict]]:
    """``[(name, points, options)]`` from a list of mappings or a mapping name -> points / mapping."""
    if raw is None:
        return []
    if isinstance(raw, dict):
        items = [(str(k), v) for k, v in raw.items()]
    elif isinstance(raw, list):
        items = []
        for i, entry in enumerate(raw):
            if not isinstance(entry, dict) or "points" not in entry:
                raise ConfigError(f"{origin}: {kind}s entry {i + 1} must be a mapping with 'name' and 'points'")
            items.append((str(entry.get("name", f"{kind}{i + 1}")), entry))
    else:
        raise ConfigError(f"{origin}: '{kind}s' must be a list or a mapping, got {type(raw).__name__}")
    out = []
    for name, value in items:
        options = value if isinstance(value, dict) else {"points": value}
        unknown = set(options) - {"name", "points", "source", "normalized", "normalised"}
        if unknown:
            raise ConfigError(f"{origin}: {kind} {name!r} has unknown key(s) {', '.join(sorted(unknown))}; "
                              "expected name, points, source, normalized")
        out.append((name, options.get("points"), options))
    return out


def load_shapes(path: str | Path) -> tuple[list[Zone], list[Line]]:
    """The zones and lines of a YAML or JSON file (see the module's docstring for the format).

    Raises:
        ConfigError: the file cannot be read or parsed, or a zone or line in it is wrong; the message starts
            with ``zones=<path>:``.
    """
    origin = f"zones={path}"
    try:
        text = Path(path).expanduser().read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{origin}: cannot read it: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{origin}: not a text file; expected YAML or JSON") from None
    try:
        if Path(path).suffix.lower() == ".json":
            data = json.loads(text)
        else:
            import yaml

            data = yaml.safe_load(text)
    except Exception as exc:  # noqa: BLE001 - any parser error is the file's fault: one line
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(f"{origin}: not valid YAML/JSON: {first}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{origin}: expected a mapping with 'zones' and/or 'lines'")
    unknown = set(data) - {"zones", "lines", "normalized", "normalised"}
    if unknown:
        raise ConfigError(f"{origin}: unknown key(s) {', '.join(sorted(map(str, unknown)))}; "
                          "expected zones, lines, normalized")
    default_norm = data.get("normalized", data.get("normalised"))
    shapes: dict[str, list] = {"zone": [], "line": []}
    for kind in ("zone", "line"):
        for name, points, options in _entries(data.get(f"{kind}s"), kind, origin):
            if points is None:
                raise ConfigError(f"{origin}: {kind} {name!r} has no 'points'")
            norm = options.get("normalized", options.get("normalised", default_norm))
            if norm is not None and not isinstance(norm, bool):
                raise ConfigError(f"{origin}: {kind} {name!r}: normalized must be true or false, got {norm!r}")
            shapes[kind].append(_build(kind, name, _flat_points(points, origin, f"{kind} {name!r}"), origin, norm,
                                       options.get("source")))
    if not shapes["zone"] and not shapes["line"]:
        raise ConfigError(f"{origin}: no zones and no lines in it")
    return shapes["zone"], shapes["line"]


def select_shapes(shapes: Sequence[Zone], tag: str = "", source: str = "") -> list:
    """The shapes that apply to one source: those without ``source`` and those whose ``source`` is the
    stream's tag, its name, or its file name.

    Raises:
        ConfigError: two shapes of one kind that apply to this source share a name.
    """
    keys = {k for k in (tag, source, Path(source).name if source else "", Path(source).stem if source else "") if k}
    chosen = [s for s in shapes if s.source is None or s.source in keys]
    seen: dict[str, Zone] = {}
    for s in chosen:
        if s.name in seen:
            raise ConfigError(f"{s.origin}: two {s.kind}s named {s.name!r}"
                              f"{' for ' + (tag or source) if tag or source else ''}; give each its own name")
        seen[s.name] = s
    return chosen
