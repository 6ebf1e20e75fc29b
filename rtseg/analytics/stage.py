"""The per-stream :class:`Analytics` object and how the pipeline calls it.

Protocol (what :meth:`rtseg.pipeline.core.Pipeline` does with a :class:`~rtseg.pipeline.streams.Stream`'s
``analytics``, in its post-processing stage, frame by frame in order):

1. ``result = analytics.update(frame, result)`` after the tracker: occupancy, crossings, dwell, heatmap;
   the returned result carries the frame's record in ``result.analytics`` (written to the JSONL).
2. ``frame.image = analytics.before_draw(frame.image, result)`` when ``analytics.edits_image`` (privacy blur,
   background): edits the frame in place, before anything draws on it, so every visual output (video,
   window, frames, browser view) and the frame a loop over the pipeline gets are edited. The device overlay
   path (masks blended on the letterboxed tensor) is skipped then: it would draw over the unedited frame.
3. The annotator draws only when ``analytics.draws_instances`` (False in blur-only and background modes:
   no masks, boxes, labels or HUD).
4. ``annotated = analytics.after_draw(annotated, result)``: zones, lines, counts and the live heatmap.
5. ``analytics.written(frame.index)`` once the frame has reached every sink, when the pipeline called
   ``analytics.hold_until_written()`` before its first frame: the report then counts exactly the frames the
   outputs hold (a stop can leave a few frames post-processed but never written). Without the call, every
   updated frame counts (a loop of your own).
6. At the end, whoever built it calls :meth:`Analytics.close` (closes open visits, writes the heatmap PNG)
   and :meth:`Analytics.report`; :func:`rtseg.analytics.report.write_report` writes every source's report.

Steps 3 and 4 run when some sink of the stream needs the image, as drawing always has.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
from numpy.typing import NDArray

from rtseg.analytics.background import Background, parse_background
from rtseg.analytics.draw import draw_lines, draw_zones
from rtseg.analytics.heatmap import Heatmap
from rtseg.analytics.privacy import BLUR_STYLES, Privacy
from rtseg.analytics.report import ReportBuilder, check_report_path
from rtseg.analytics.shapes import Line, Zone, load_shapes, parse_line, parse_zone, select_shapes
from rtseg.analytics.zones import (
    ANCHORS,
    DwellTracker,
    LineCounter,
    ZoneMap,
    anchor_points,
    duplicate_of,
    mask_centroids,
)
from rtseg.errors import ConfigError
from rtseg.sinks.atomic import write_bytes
from rtseg.types import Frame, FrameResult

__all__ = ["Analytics", "check_analytics_options"]

HELD_MAX = 256  # report entries held for frames not yet written (the pipeline's queues hold far fewer)

LOGGER = logging.getLogger(__name__)
HEATMAP_SUFFIXES = (".png", ".jpg", ".jpeg")


def _shapes(zones: str | Path | None, zone: Sequence[str], line: Sequence[str]) -> tuple[list[Zone], list[Line]]:
    zs, ls = load_shapes(zones) if zones not in (None, "") else ([], [])
    if isinstance(zone, str) or isinstance(line, str):
        raise ConfigError("zone and line take a list of strings ('name:x1,y1,...'), not one string")
    return zs + [parse_zone(z, i) for i, z in enumerate(zone)], ls + [parse_line(s, i) for i, s in enumerate(line)]


def _class_list(blur: str | Sequence[str | int] | None) -> list[str]:
    items = blur.split(",") if isinstance(blur, str) else [str(b) for b in (blur or ())]
    return [i.strip() for i in items if i.strip()]


def _resolve(blur: str | Sequence, names: Sequence[str], semantic_names: Sequence[str]) -> tuple[list[int], list[int]]:
    """Instance and semantic class ids of a blur list (names regardless of case, or instance ids)."""
    inst, sem = [], []
    for item in _class_list(blur):
        low = item.lower()
        hit_i = [i for i, n in enumerate(names) if n.lower() == low]
        hit_s = [i for i, n in enumerate(semantic_names) if n.lower() == low]
        if item.isascii() and item.isdigit() and int(item) < len(names):
            hit_i = [int(item)]
        if not hit_i and not hit_s:
            known = ", ".join(list(dict.fromkeys([*names, *semantic_names]))[:12])
            raise ConfigError(f"blur={blur!r}: {item!r} is not a class of this model ({known})")
        inst += hit_i
        sem += hit_s
    return inst, sem


def check_analytics_options(*, zones: str | Path | None = None, zone: Sequence[str] = (), line: Sequence[str] = (),
                            zone_overlap: float = 0.5, zone_anchor: str = "mask", heatmap: str | Path | None = None,
                            heatmap_overlay: bool = False, heatmap_decay_s: float | None = None,
                            blur: str | Sequence[str] | None = None, blur_style: str = "blur", blur_only: bool = False,
                            background: str | None = None, report: str | Path | None = None,
                            names: Sequence[str] | None = None, semantic_names: Sequence[str] = ()) -> None:
    """Check every analytics option before any source opens or model loads: parse the zones, lines and
    background, check ranges and suffixes; with ``names`` (once a model is known) the blur classes too.

    Raises:
        ConfigError: one line naming the parameter, e.g. ``zones=x.yaml: zone 'door' has 2 points; a zone
            needs at least 3``.

    Example:
        >>> check_analytics_options(zone=["door:0.1,0.2,0.4,0.2,0.4,0.9"], line=["gate:0,0.5,1,0.5"])
        >>> check_analytics_options(zone=["door:0.1,0.2,0.4,0.2"])
        Traceback (most recent call last):
        rtseg.errors.ConfigError: zone='door:0.1,0.2,0.4,0.2': zone 'door' has 2 points; a zone needs at least 3
    """
    zs, ls = _shapes(zones, zone, line)
    for group in (zs, ls):  # names clash among the shapes that apply to one source
        for key in {s.source for s in group}:
            select_shapes([s for s in group if s.source in (None, key)], key or "")
    if isinstance(zone_overlap, bool) or not isinstance(zone_overlap, (int, float)) or not 0 < zone_overlap <= 1:
        raise ConfigError(f"zone_overlap={zone_overlap}: expected above 0, up to 1 (the fraction of a mask inside)")
    if zone_anchor not in ANCHORS:
        raise ConfigError(f"zone_anchor={zone_anchor!r}: expected one of {', '.join(ANCHORS)}")
    if heatmap not in (None, "") and Path(heatmap).suffix.lower() not in HEATMAP_SUFFIXES:
        raise ConfigError(f"heatmap={heatmap}: expected a .png (or .jpg) file")
    if heatmap_decay_s is not None and not (isinstance(heatmap_decay_s, (int, float)) and heatmap_decay_s > 0
                                            and np.isfinite(heatmap_decay_s)):
        raise ConfigError(f"heatmap_decay_s={heatmap_decay_s}: expected seconds above 0")
    if blur_style not in BLUR_STYLES:
        raise ConfigError(f"blur_style={blur_style!r}: expected one of {', '.join(BLUR_STYLES)}")
    if blur is not None and not _class_list(blur):
        raise ConfigError(f"blur={blur!r}: name at least one class to blur")
    if blur_only and blur is None:
        raise ConfigError("blur_only needs blur=CLASSES (the classes to blur)")
    if background not in (None, ""):
        parse_background(str(background))
    check_report_path(report)
    if report not in (None, "") and not zs and not ls:
        raise ConfigError(f"report={report}: counts zones and lines; give zones=FILE, zone=... or line=...")
    if names is not None:
        if blur is not None:
            _resolve(blur, names, semantic_names)
        if background not in (None, ""):
            _person_ids(background, names, semantic_names)


def _person_ids(background: str, names: Sequence[str], semantic_names: Sequence[str]) -> tuple[list[int], list[int]]:
    inst = [i for i, n in enumerate(names) if n.lower() == "person"]
    sem = [i for i, n in enumerate(semantic_names) if n.lower() == "person"]
    if not inst and not sem:
        raise ConfigError(f"background={background!r}: keeps the people, but this model has no 'person' class "
                          f"({', '.join(list(names)[:12])})")
    return inst, sem


class Analytics:
    """What one stream's results are used for: zone occupancy, line crossings, dwell, heatmap, privacy.

    Build it with :meth:`from_options` (one per source); the module docstring says how the pipeline calls it.

    Attributes:
        needs_tracking: lines and dwell times need track ids (without them: occupancy only).
        edits_image: it changes the frame's pixels (privacy blur, background).
        draws_instances: the annotator should draw masks, boxes, labels and the HUD (False in blur-only and
            background modes).
        outputs: files :meth:`close` wrote.
    """

    def __init__(self, *, names: Sequence[str], semantic_names: Sequence[str] = (), fps: float = 0.0,
                 zones: Sequence[Zone] = (), lines: Sequence[Line] = (), zone_overlap: float = 0.5,
                 zone_anchor: str = "mask", heatmap_path: Path | None = None, heatmap_overlay: bool = False,
                 heatmap_decay_s: float | None = None, privacy: Privacy | None = None, blur_only: bool = False,
                 background: Background | None = None, tag: str = "", source: str = "") -> None:
        self.names, self.semantic_names = tuple(names), tuple(semantic_names)
        self.fps = float(fps) if fps and fps > 0 else 0.0
        self.zones, self.lines = list(zones), list(lines)
        self.zone_overlap, self.zone_anchor = float(zone_overlap), zone_anchor
        self.heatmap_path, self.heatmap_overlay, self.heatmap_decay_s = heatmap_path, heatmap_overlay, heatmap_decay_s
        self.privacy, self.blur_only, self.background = privacy, blur_only, background
        self.tag, self.source = tag, source
        self.needs_tracking = bool(self.zones or self.lines)
        self.edits_image = privacy is not None or background is not None
        self.draws_instances = not (blur_only or background is not None)
        self.outputs: list[Path] = []
        self._zmap: ZoneMap | None = None
        self._counters: list[LineCounter] = []
        self._line_hw: tuple[int, int] | None = None
        self._dwell = DwellTracker([z.name for z in self.zones])
        self._alias: dict[int, int] = {}  # track id of a part -> the whole's (duplicate_of)
        self._held: dict[int, tuple] | None = None  # frame index -> its report entry, until written
        self._builder = ReportBuilder(tag or source, [z.name for z in self.zones], [ln.name for ln in self.lines])
        self._heat: Heatmap | None = None
        self._backdrop: NDArray[np.uint8] | None = None  # the frame the saved heatmap is drawn over
        self._occupancy: dict[str, dict[str, int]] = {}
        self._last_s: float | None = None
        self._interval_s = 1.0 / self.fps if self.fps else 0.0
        self._closed = False

    @classmethod
    def from_options(cls, *, names: Sequence[str], semantic_names: Sequence[str] = (), fps: float = 0.0,
                     zones: str | Path | None = None, zone: Sequence[str] = (), line: Sequence[str] = (),
                     zone_overlap: float = 0.5, zone_anchor: str = "mask", heatmap: str | Path | None = None,
                     heatmap_overlay: bool = False, heatmap_decay_s: float | None = None,
                     blur: str | Sequence[str] | None = None, blur_style: str = "blur", blur_only: bool = False,
                     background: str | None = None, tag: str = "", source: str = "") -> Analytics | None:
        """The analytics of one source from the run's options; None when no option asks for any.

        Args:
            names, semantic_names: class names of the instance and semantic models.
            fps: the source's frame rate (0: unknown, live: the interval is measured).
            zones: a YAML/JSON file of zones and lines (:mod:`rtseg.analytics.shapes`); zone, line: strings
                ``"name:x1,y1,x2,y2,..."``. Shapes with a ``source`` apply only to the source whose ``tag`` or
                ``source`` (name, file name or stem) it is.
            zone_overlap: an instance is in a zone when at least this fraction of its mask is inside.
            zone_anchor: ``mask`` (the fraction above; lines use the mask centroid) or ``box``: the box's bottom
                centre, as peers do (zones and lines).
            heatmap: PNG the heatmap of every class is saved to at :meth:`close`, over the source's first frame
                (``{class}`` in the name: one file per class); heatmap_overlay: draw it live;
                heatmap_decay_s: half-life of a decayed heatmap (None: total presence).
            blur: classes to obscure (``"person,dog"``, names or ids; semantic class names too);
                blur_style: ``blur``, ``pixelate`` (the mask pixels) or ``box`` (the whole box);
                blur_only: draw nothing else (no masks, boxes, labels, HUD; zones and lines still are).
            background: replace everything but the people: ``blur``, a colour (``#00b140``, ``0,177,64``,
                ``green``), an image file or a video file (looped).
            tag, source: the source's short name (in the report) and full name.

        Raises:
            ConfigError: as :func:`check_analytics_options`, with the class names known.

        Example:
            >>> a = Analytics.from_options(names=("person", "car"), fps=25, zone=["door:0,0,0.5,0,0.5,1"])
            >>> a.needs_tracking, a.edits_image, a.draws_instances
            (True, False, True)
            >>> Analytics.from_options(names=("person",)) is None
            True
        """
        check_analytics_options(zones=zones, zone=zone, line=line, zone_overlap=zone_overlap, zone_anchor=zone_anchor,
                                heatmap=heatmap, heatmap_overlay=heatmap_overlay, heatmap_decay_s=heatmap_decay_s,
                                blur=blur, blur_style=blur_style, blur_only=blur_only, background=background,
                                names=names, semantic_names=semantic_names)
        zs, ls = _shapes(zones, zone, line)
        zs, ls = select_shapes(zs, tag, source), select_shapes(ls, tag, source)
        privacy = None
        if blur is not None:
            inst, sem = _resolve(blur, names, semantic_names)
            privacy = Privacy(inst, semantic_ids=sem, style=blur_style)
        back = None
        if background not in (None, ""):
            person, sem_person = _person_ids(str(background), names, semantic_names)
            back = Background(str(background), person_ids=person, semantic_person_ids=sem_person)
        if not (zs or ls or heatmap not in (None, "") or heatmap_overlay or privacy or back):
            return None
        return cls(names=names, semantic_names=semantic_names, fps=fps, zones=zs, lines=ls, zone_overlap=zone_overlap,
                   zone_anchor=zone_anchor, heatmap_path=None if heatmap in (None, "") else Path(heatmap).expanduser(),
                   heatmap_overlay=heatmap_overlay, heatmap_decay_s=heatmap_decay_s, privacy=privacy,
                   blur_only=blur_only, background=back, tag=tag, source=source)

    def _class_name(self, k: int) -> str:
        return self.names[k] if 0 <= k < len(self.names) else str(k)

    def _bind(self, image_hw: tuple[int, int]) -> None:
        """Rasterise the zones and place the lines for this frame size (once, and again if it changes)."""
        if self.zones and (self._zmap is None or self._zmap.image_hw != tuple(image_hw)):
            self._zmap = ZoneMap(self.zones, image_hw, self.source or self.tag)
        if self.lines and self._line_hw != tuple(image_hw):
            pts = [ln.pixels(image_hw, self.source or self.tag) for ln in self.lines]
            if not self._counters:
                band = max(2.0, 0.004 * float(np.hypot(*image_hw)))  # ~6 px at 720p: centroid jitter
                self._counters = [LineCounter(ln, p, band_px=band) for ln, p in zip(self.lines, pts)]
            else:
                for counter, p in zip(self._counters, pts):
                    counter.place(p)
            self._line_hw = tuple(image_hw)  # type: ignore[assignment]

    def fit(self, image_hw: tuple[int, int]) -> None:
        """Place the zones and lines on an (H, W) frame now (else at the first frame), e.g. a file's size read
        from its header before a run opens its outputs.

        Raises:
            ConfigError: a zone or line in pixels reaches outside the frame.
        """
        self._bind((int(image_hw[0]), int(image_hw[1])))

    def update(self, frame: Frame, result: FrameResult) -> FrameResult:
        """Fold in one frame (after the tracker); the result with its analytics record, or unchanged when
        there is nothing to record (privacy or heatmap only).

        Raises:
            ConfigError: at the first frame, a zone or line in pixels that reaches outside it.
        """
        t = float(frame.timestamp_s)
        image_hw = tuple(result.image_hw)
        self._bind(image_hw)  # type: ignore[arg-type]
        if self._last_s is not None and not self.fps and t > self._last_s:
            step = t - self._last_s  # live sources: the interval as measured
            self._interval_s = step if not self._interval_s else 0.9 * self._interval_s + 0.1 * step
        self._last_s = t
        if (self.heatmap_path is not None or self.heatmap_overlay):
            if self._heat is None:
                self._heat = Heatmap(image_hw, self.names, half_life_s=self.heatmap_decay_s)  # type: ignore[arg-type]
            if self._heat.image_hw == image_hw:
                self._heat.add(result, t)
            if self._backdrop is None and not self.edits_image:
                self._backdrop = frame.image.copy()
        if not (self.zones or self.lines):
            return result
        classes = [self._class_name(k) for k in result.class_ids.tolist()]
        tracks = result.track_ids
        # a second detection of someone already counted (a part inside the whole) is not counted again, and in
        # the zones its track, should it outlive the whole's, goes on as the whole's: an alias, not a new visitor
        # (not for lines: the part's centroid is not the whole's, and the jump would cross a line)
        partner = duplicate_of(result)
        dup = partner >= 0
        events: list[dict] = []
        record: dict = {}
        if self._zmap is not None:
            if self.zone_anchor == "mask" and result.masks is not None:
                inside = self._zmap.fractions(result) >= self.zone_overlap - 1e-9
            else:
                inside = self._zmap.anchors_inside(anchor_points(result))
            inside[dup] = False
            occupancy: dict[str, dict[str, int]] = {z.name: {} for z in self.zones}
            in_zones = []
            for row, cls in zip(inside.tolist(), classes):  # plain lists: faster than NumPy calls at N ~ 20
                where = [z.name for z, hit in zip(self.zones, row) if hit]
                for name in where:
                    occupancy[name][cls] = occupancy[name].get(cls, 0) + 1
                in_zones.append(where)
            self._occupancy = occupancy
            record["zones"] = occupancy
            record["in_zones"] = in_zones
            if tracks is not None:
                events += self._dwell.update(self._unalias(tracks, partner), inside, classes, t)
                record["dwell_s"] = self._dwell.dwelling(t)
        if self._counters:
            if tracks is not None:
                if self.zone_anchor == "mask":  # exact centroids only where a box reaches a line's band
                    near = np.logical_or.reduce([c.near(result.boxes_xyxy) for c in self._counters])
                    points = mask_centroids(result, near)
                else:
                    points = anchor_points(result)
                keep = ~dup
                kept = [c for c, k in zip(classes, keep.tolist()) if k]
                for counter in self._counters:
                    events += counter.update(tracks[keep], points[keep], kept, t)
            record["lines"] = {c.name: {d: dict(sorted(v.items())) for d, v in c.totals.items()}
                               for c in self._counters}
        record["events"] = events
        if self._held is None:
            self._builder.add_frame(t, self._occupancy, events)
        else:
            self._held[frame.index] = (t, self._occupancy, events)
            if len(self._held) > HELD_MAX:  # nobody says what was written: count the oldest as written
                self.written(next(iter(self._held)))
        return replace(result, analytics=record)

    def _unalias(self, tracks: NDArray[np.int64], partner: NDArray[np.intp]) -> NDArray[np.int64]:
        ids = tracks.tolist()
        for i, j in enumerate(partner.tolist()):
            if j >= 0 and ids[i] != ids[j]:
                self._alias[ids[i]] = self._alias.get(ids[j], ids[j])
        if len(self._alias) > 4096:  # a run of days: the oldest aliases (long-gone tracks) go first
            for key in list(self._alias)[:2048]:
                del self._alias[key]
        present = set(ids)  # the whole in this frame too, and not the part's container: two tracks after all
        return np.array([a if (a := self._alias.get(t, t)) == t or a not in present or partner[i] >= 0 else t
                         for i, t in enumerate(ids)], np.int64)

    def hold_until_written(self) -> None:
        """Count a frame in the report only once :meth:`written` says it reached the outputs."""
        self._held = {}

    def written(self, frame_index: int) -> None:
        """The frame ``frame_index`` (updated before) reached every output: count it in the report."""
        if self._held is not None and (held := self._held.pop(frame_index, None)) is not None:
            self._builder.add_frame(*held)

    def before_draw(self, image: NDArray[np.uint8], result: FrameResult) -> NDArray[np.uint8]:
        """Background replacement, then the privacy blur, on ``image`` in place; returns it."""
        if self.background is not None:
            self.background.apply(image, result)
        if self.privacy is not None:
            self.privacy.apply(image, result)
        if self._heat is not None and self._backdrop is None:
            self._backdrop = image.copy()  # the saved heatmap's frame is edited too
        return image

    def after_draw(self, annotated: NDArray[np.uint8], result: FrameResult) -> NDArray[np.uint8]:
        """The live heatmap, zones with their counts and lines with their totals over ``annotated``, in place."""
        if self.heatmap_overlay and self._heat is not None and self._heat.image_hw == annotated.shape[:2]:
            self._heat.render(annotated, alpha=0.4, out=annotated)
        if self._zmap is not None and self._zmap.image_hw == annotated.shape[:2]:
            draw_zones(annotated, self._zmap.polygons, [z.name for z in self.zones], self._occupancy)
        if self._counters:
            draw_lines(annotated, [c.points_xy for c in self._counters], [c.name for c in self._counters],
                       {c.name: c.totals for c in self._counters})
        return annotated

    def close(self) -> list[Path]:
        """End of the run: close the visits still open, write the heatmap, release the background video.
        Safe to call twice. Returns the files written.

        Raises:
            SinkError: the heatmap cannot be written.
        """
        if self._closed:
            return self.outputs
        self._closed = True
        if self.background is not None:
            self.background.close()
        if self.zones:
            self._builder.add_events(self._dwell.close(self._interval_s or 1 / 30))
        if self.heatmap_path is not None and self._heat is not None and self._backdrop is not None:
            path = self.heatmap_path
            per_class = "{class}" in path.name
            for cls in (self._heat.classes if per_class else [None]):
                target = path.with_name(path.name.replace("{class}", cls)) if cls else path
                image = self._heat.render(self._backdrop, class_name=cls, alpha=0.55)
                ok, data = cv2.imencode(target.suffix.lower() or ".png", image)
                if ok:
                    self.outputs.append(write_bytes(target, data.tobytes(), what="heatmap"))
        return self.outputs

    def report(self) -> dict:
        """This source's summary: counts per zone and line, per class, per minute (:mod:`~rtseg.analytics.report`).
        Call :meth:`close` first so the visits still open at the end are in it."""
        return self._builder.report()

    def heatmap(self, class_name: str | None = None) -> NDArray[np.float32] | None:
        """The accumulated presence map (see :meth:`Heatmap.presence`), or None without a heatmap."""
        return None if self._heat is None else self._heat.presence(class_name)
