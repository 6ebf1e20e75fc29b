"""Occupancy of zones by masks, line crossings and dwell times: the counting half of :mod:`rtseg.analytics`.

Occupancy is decided by the mask, not one point of the box: an instance is in a zone when at least
``overlap`` of its mask pixels lie inside it. Peers (Ultralytics ``solutions``, supervision's
``PolygonZone``) test one anchor of the box (its bottom centre), which counts an arm reaching over a counter
as a person behind it and misses a person whose feet the box's corner hides; ``anchor="box"`` does what they
do, for comparison. The zones are rasterised once per source into bit planes (8 zones per uint8 plane), so
one masked histogram of each box-local crop (``cv2.calcHist``) gives its overlap with every zone at once:
the cost grows with mask area, not with zones x frame size.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np
from numpy.typing import NDArray

from rtseg.analytics.shapes import Line, Zone
from rtseg.types import FrameResult, InstanceMasks

__all__ = ["DwellTracker", "LineCounter", "ZoneMap", "anchor_points", "duplicate_of", "mask_centroids", "rasterize"]

ANCHORS = ("mask", "box")
_BITS = np.array([[(v >> b) & 1 for b in range(8)] for v in range(256)], np.float32)  # (256, 8): value -> bits


def anchor_points(result: FrameResult) -> NDArray[np.float64]:
    """(N, 2) bottom centre (x, y) of each box: the point peers test zones with."""
    b = result.boxes_xyxy.astype(np.float64)
    return np.stack([(b[:, 0] + b[:, 2]) / 2, b[:, 3]], 1) if len(b) else np.zeros((0, 2))


def duplicate_of(result: FrameResult, min_overlap: float = 0.8) -> NDArray[np.intp]:
    """(N,) for an instance that lies within a larger one of its class, that one's row; -1 for the others.
    Within: at least ``min_overlap`` of its
    mask inside the other's mask (of its box inside the other's box, without masks). A nano model sometimes
    finds a person twice, the whole body and the upper body, boxes of IoU 0.7 that NMS keeps, either of them
    with the higher score: counted, the part would be a second visitor. Two people side by side, or one in
    front of the other, share far less of the smaller one's mask."""
    n = len(result)
    of = np.full(n, -1, np.intp)
    if n < 2:
        return of
    b = result.boxes_xyxy.astype(np.float64)
    area = np.maximum(b[:, 2] - b[:, 0], 0) * np.maximum(b[:, 3] - b[:, 1], 0)
    iw = np.clip(np.minimum(b[:, None, 2], b[None, :, 2]) - np.maximum(b[:, None, 0], b[None, :, 0]), 0, None)
    ih = np.clip(np.minimum(b[:, None, 3], b[None, :, 3]) - np.maximum(b[:, None, 1], b[None, :, 1]), 0, None)
    box_share = iw * ih / np.maximum(area[:, None], 1e-9)  # [i, j]: share of box i inside box j
    same = result.class_ids[:, None] == result.class_ids[None, :]
    order = np.lexsort((-result.scores, -area))  # larger first; the higher score first among equals
    rank = np.empty(n, np.intp)
    rank[order] = np.arange(n)
    for i, j in zip(*np.nonzero(same & (box_share >= min_overlap) & (rank[:, None] > rank[None, :]))):
        if of[i] >= 0 or of[j] >= 0:
            continue
        if result.masks is None or _mask_share(result.masks, int(i), int(j)) >= min_overlap:
            of[i] = j
    return of


def _mask_share(masks: InstanceMasks, i: int, j: int) -> float:
    """Share of mask ``i``'s pixels that are also in mask ``j``."""
    (xi, yi), (xj, yj) = masks.origins_xy[i].tolist(), masks.origins_xy[j].tolist()
    ci, cj = masks.crops[i], masks.crops[j]
    total = int(ci.sum())
    x1, y1 = max(xi, xj), max(yi, yj)
    x2, y2 = min(xi + ci.shape[1], xj + cj.shape[1]), min(yi + ci.shape[0], yj + cj.shape[0])
    if not total or x2 <= x1 or y2 <= y1:
        return 0.0
    both = ci[y1 - yi:y2 - yi, x1 - xi:x2 - xi] & cj[y1 - yj:y2 - yj, x1 - xj:x2 - xj]
    return int(both.sum()) / total


def mask_centroids(result: FrameResult, rows: NDArray[np.bool_] | None = None) -> NDArray[np.float64]:
    """(N, 2) centroid (x, y) of each mask in frame pixels (pixel centres); the box centre where an instance
    has no mask pixel, the result no masks, or ``rows`` (N,) is False (the centroid is not needed there)."""
    b = result.boxes_xyxy.astype(np.float64)
    out = np.stack([(b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2], 1) if len(b) else np.zeros((0, 2))
    if result.masks is None:
        return out
    for i, (crop, (x, y)) in enumerate(zip(result.masks.crops, result.masks.origins_xy)):
        if crop.size and (rows is None or rows[i]):
            m = cv2.moments(crop.view(np.uint8), binaryImage=True)
            if m["m00"] > 0:
                out[i] = (x + m["m10"] / m["m00"] + 0.5, y + m["m01"] / m["m00"] + 0.5)
    return out


def rasterize(polygon: NDArray[np.float64], image_hw: tuple[int, int]) -> NDArray[np.uint8]:
    """(H, W) uint8, 1 on each pixel whose centre lies inside ``polygon`` ((K, 2) x, y in continuous pixel
    coordinates: pixel (i, j) covers [j, j+1) x [i, i+1)), by the even-odd rule, edges half-open.

    Exact where ``cv2.fillPoly`` is not: it fills every pixel its rounded edges touch, a column more on one
    side (a 50-pixel-wide zone would hold 51 columns).

    Example:
        >>> rasterize(np.array([[0, 0], [2.6, 0], [2.6, 2], [0, 2]]), (3, 4)).tolist()   # centres 0.5, 1.5, 2.5
        [[1, 1, 1, 0], [1, 1, 1, 0], [0, 0, 0, 0]]
    """
    h, w = image_hw
    x0, y0 = polygon[:, 0], polygon[:, 1]
    x1, y1 = np.roll(x0, -1), np.roll(y0, -1)
    yc = np.arange(h, dtype=np.float64)[:, None] + 0.5  # row centres
    crosses = ((y0 <= yc) & (yc < y1)) | ((y1 <= yc) & (yc < y0))  # (H, E)
    with np.errstate(divide="ignore", invalid="ignore"):
        xs = np.where(crosses, x0 + (yc - y0) * (x1 - x0) / (y1 - y0), np.inf)
    xs.sort(axis=1)
    n = crosses.sum(1)
    diff = np.zeros((h, w + 1), np.int32)
    for j in range(0, xs.shape[1] - 1, 2):
        live = n > j + 1  # rows with a span between crossings j and j + 1
        rows = np.flatnonzero(live)
        # pixel c is in the span [a, b) when its centre c + 0.5 is: c in [ceil(a - 0.5), ceil(b - 0.5))
        start = np.clip(np.ceil(xs[rows, j] - 0.5), 0, w).astype(np.intp)
        stop = np.clip(np.ceil(xs[rows, j + 1] - 0.5), 0, w).astype(np.intp)
        np.add.at(diff, (rows, start), 1)
        np.add.at(diff, (rows, stop), -1)
    return (np.cumsum(diff[:, :w], axis=1) > 0).astype(np.uint8)


class ZoneMap:
    """The zones of one source rasterised at its frame size: which instances lie in which zone.

    Args:
        zones: the source's zones.
        image_hw: (height, width) of its frames.
        source: its name, for error messages.

    Raises:
        ConfigError: a zone given in pixels reaches outside the frame.

    Example:
        >>> import numpy as np
        >>> from rtseg.analytics.shapes import parse_zone
        >>> from rtseg.types import FrameResult, InstanceMasks, InstanceMasks
        >>> zmap = ZoneMap([parse_zone("left:0,0,50,0,50,100,0,100")], (100, 100))
        >>> r = FrameResult(0, (100, 100), np.array([[40, 0, 80, 10]]), np.array([0.9]), np.array([0]),
        ...                 InstanceMasks((np.ones((10, 40), bool),), [[40, 0]]))
        >>> zmap.fractions(r).round(2).tolist()     # 10 of its 40 columns are in the zone
        [[0.25]]
    """

    def __init__(self, zones: list[Zone], image_hw: tuple[int, int], source: str = "") -> None:
        self.zones = zones
        self.image_hw = (int(image_hw[0]), int(image_hw[1]))
        self.polygons = [z.pixels(self.image_hw, source) for z in zones]
        h, w = self.image_hw
        self.planes = [np.zeros((h, w), np.uint8) for _ in range((len(zones) + 7) // 8)]
        # per zone, a summed-area table: a box wholly inside or outside every zone (most, in most frames) is
        # decided by 4 look-ups per zone, without reading its pixels
        self._sums = np.zeros((len(zones), h + 1, w + 1), np.int32)
        for k, poly in enumerate(self.polygons):
            inside = rasterize(poly, self.image_hw)
            plane = self.planes[k // 8]
            plane |= inside << np.uint8(k % 8)
            self._sums[k] = cv2.integral(inside)

    def fractions(self, result: FrameResult) -> NDArray[np.float64]:
        """(N, K) fraction of each instance's mask pixels that lie inside each zone (0 for an empty mask).
        Without masks, each box counts as its mask."""
        n, k = len(result), len(self.zones)
        out = np.zeros((n, k), np.float64)
        if not n or not k:
            return out
        h, w = self.image_hw
        crops, extents = [], np.zeros((n, 4), np.intp)  # x, y, x + w, y + h of each crop, cut to the frame
        for i in range(n):
            if result.masks is not None:
                crop = result.masks.crops[i]
                x, y = (int(v) for v in result.masks.origins_xy[i])
            else:
                x1, y1, x2, y2 = (int(round(float(v))) for v in result.boxes_xyxy[i])
                x, y = min(max(0, x1), w), min(max(0, y1), h)
                crop = np.ones((max(0, min(y2, h) - y), max(0, min(x2, w) - x)), bool)
            # a crop never reaches past the frame (masks are cut to it); clip anyway rather than trust it
            ch, cw = max(0, min(crop.shape[0], h - y)), max(0, min(crop.shape[1], w - x))
            crops.append(crop[:ch, :cw])
            extents[i] = (x, y, x + cw, y + ch)
        x1, y1, x2, y2 = extents.T
        box_in = self._sums[:, y2, x2] - self._sums[:, y1, x2] - self._sums[:, y2, x1] + self._sums[:, y1, x1]
        box_area = (x2 - x1) * (y2 - y1)
        whole = box_in == box_area  # (K, N): the box lies wholly inside the zone
        partial = ((box_in > 0) & ~whole).any(0)
        for i in range(n):
            if not box_area[i]:
                continue
            x, y = int(x1[i]), int(y1[i])
            crop = np.ascontiguousarray(crops[i]).view(np.uint8)
            ch, cw = crop.shape
            area = cv2.countNonZero(crop)
            if not area:
                continue
            if not partial[i]:
                out[i] = whole[:, i]
                continue
            for p, plane in enumerate(self.planes):
                hist = cv2.calcHist([plane[y : y + ch, x : x + cw]], [0], crop, [256], [0, 256]).ravel()
                counts = hist @ _BITS
                width = min(8, k - 8 * p)
                out[i, 8 * p : 8 * p + width] = counts[:width] / area
        return out

    def anchors_inside(self, points: NDArray[np.float64]) -> NDArray[np.bool_]:
        """(N, K): whether each (x, y) point (box anchors) lies in each zone."""
        h, w = self.image_hw
        out = np.zeros((len(points), len(self.zones)), bool)
        if not len(points):
            return out
        xs = np.clip(np.floor(points[:, 0]).astype(np.int64), 0, w - 1)
        ys = np.clip(np.floor(points[:, 1]).astype(np.int64), 0, h - 1)
        for k in range(len(self.zones)):
            out[:, k] = (self.planes[k // 8][ys, xs] >> (k % 8)) & 1
        return out


@dataclass
class _Side:
    side: int = 0  # confirmed side of the line: -1 left, +1 right, 0 not yet known
    pending: int = 0  # consecutive frames seen beyond the band on the other side
    d_prev: float | None = None  # signed distance at the previous sighting
    t_prev: float = 0.0  # position along the segment at the previous sighting (0..1 on it)
    cross_t: float | None = None  # where the path last went over the line, along the segment
    counted: set = field(default_factory=set)  # directions already counted for this track
    last_s: float = 0.0  # timestamp of the last sighting


class LineCounter:
    """Counts tracks crossing one line, by direction and class, each track at most once per direction.

    The rule: a track's side of the line is *confirmed* when its point (mask centroid, or box anchor) is
    seen farther than ``band_px`` from the line. It crosses when its point is then seen beyond the band on
    the other side in ``min_frames`` frames with no sighting beyond the band on its old side in between
    (sightings within the band neither add nor reset), having gone over the segment itself (not past one of
    its ends). Wiggling within the band never changes the side; a brief excursion to the other side that
    does not stay ``min_frames`` frames counts nothing. A track that crosses in, back out and in again counts
    one ``in`` and one ``out``.

    Args:
        line: the line.
        points_xy: its two points in frame pixels, (2, 2).
        band_px: half-width of the dead band around the line, in pixels.
        min_frames: frames a track must stay on its new side before the crossing counts.
        forget_s: tracks unseen this long are forgotten (memory stays bounded on long runs).
    """

    def __init__(self, line: Line, points_xy: NDArray[np.float64], *, band_px: float = 4.0, min_frames: int = 2,
                 forget_s: float = 60.0) -> None:
        self.line, self.name = line, line.name
        self.band_px, self.min_frames, self.forget_s = float(band_px), int(min_frames), float(forget_s)
        self.totals: dict[str, dict[str, int]] = {"in": {}, "out": {}}
        self._tracks: dict[int, _Side] = {}
        self.place(points_xy)

    def place(self, points_xy: NDArray[np.float64]) -> None:
        """Put the line at these (2, 2) pixel points (a new frame size); the counts so far stay."""
        self.points_xy = np.asarray(points_xy, np.float64).reshape(2, 2)
        self.p1 = self.points_xy[0]
        self.direction = self.points_xy[1] - self.p1
        self.length = float(np.hypot(*self.direction))
        self._tracks.clear()

    def near(self, boxes_xyxy: NDArray[np.float32]) -> NDArray[np.bool_]:
        """(N,): boxes that reach into the band around the (infinite) line. A mask's centroid lies in its box,
        so for any other box the box centre is on the same side beyond the band: the exact centroid (cv2.moments,
        ~25 us a box at 720p) is only needed for these."""
        b = boxes_xyxy.astype(np.float64)
        corners = np.stack([b[:, [0, 1]], b[:, [2, 1]], b[:, [0, 3]], b[:, [2, 3]]], 1).reshape(-1, 2)
        d = self.geometry(corners)[0].reshape(-1, 4) if len(b) else np.zeros((0, 4))
        return (d.min(1) <= self.band_px) & (d.max(1) >= -self.band_px)

    def geometry(self, points: NDArray[np.float64]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Signed distance of each point from the line (positive: right of p1 -> p2 on screen) and its
        position along the segment (0 at p1, 1 at p2)."""
        rel = points - self.p1
        d = (self.direction[0] * rel[:, 1] - self.direction[1] * rel[:, 0]) / self.length
        t = (rel @ self.direction) / (self.length**2)
        return d, t

    def update(self, track_ids: NDArray[np.int64], points: NDArray[np.float64], class_names: list[str],
               timestamp_s: float) -> list[dict]:
        """Fold in one frame's tracked points; the crossings it completes, as events."""
        events = []
        d_all, t_all = self.geometry(points) if len(points) else (np.zeros(0), np.zeros(0))
        for tid, d, t, cls in zip(track_ids.tolist(), d_all.tolist(), t_all.tolist(), class_names):
            st = self._tracks.get(tid)
            if st is None:
                st = self._tracks[tid] = _Side()
            if st.d_prev is not None and (st.d_prev < 0) != (d < 0) and st.d_prev != d:
                # where the path between the two sightings went over the (infinite) line
                st.cross_t = st.t_prev + (t - st.t_prev) * st.d_prev / (st.d_prev - d)
            st.d_prev, st.t_prev, st.last_s = d, t, timestamp_s
            if abs(d) <= self.band_px:
                continue  # on the line: the side stays what it was
            side = 1 if d > 0 else -1
            if st.side == 0:
                st.side = side
            elif side == st.side:
                st.pending = 0
            else:
                st.pending += 1
                if st.pending >= self.min_frames:
                    st.side, st.pending = side, 0
                    direction = "in" if side > 0 else "out"
                    over = st.cross_t is not None and -1e-9 <= st.cross_t <= 1 + 1e-9
                    if over and direction not in st.counted:
                        st.counted.add(direction)
                        per_class = self.totals[direction]
                        per_class[cls] = per_class.get(cls, 0) + 1
                        events.append({"type": "cross", "line": self.name, "direction": direction,
                                       "track_id": int(tid), "class_name": cls, "t": round(timestamp_s, 4)})
        for tid in [k for k, st in self._tracks.items() if timestamp_s - st.last_s > self.forget_s]:
            del self._tracks[tid]
        return events


@dataclass
class _Visit:
    enter_s: float
    last_in_s: float
    class_name: str
    first_out_s: float | None = None  # timestamp of the first frame after last_in_s the track was not inside


class DwellTracker:
    """Enter and leave events and dwell time of each track in each zone.

    A track enters a zone at the first frame it is inside; it leaves once it has been outside (or unseen)
    for ``grace_s``, so a mask that dips below the overlap for a frame or a detection missed for a frame
    does not split a visit. The leave event carries the time of the first frame it was out (the end of the
    run: its last frame in plus one frame interval), so the dwell time is ``leave - enter``: the frames it
    was in times the frame interval, for a regular source. The event itself is emitted ``grace_s`` later.

    Args:
        zone_names: the zones, in :class:`ZoneMap`'s order.
        grace_s: how long a track must stay out before it has left.
    """

    def __init__(self, zone_names: list[str], *, grace_s: float = 0.5) -> None:
        self.zone_names = zone_names
        self.grace_s = float(grace_s)
        self._visits: dict[tuple[int, int], _Visit] = {}
        self.done: list[dict] = []  # every completed visit, as its leave event

    def _leave(self, key: tuple[int, int], leave_s: float, reason: str) -> dict:
        visit = self._visits.pop(key)
        event = {"type": "leave", "zone": self.zone_names[key[0]], "track_id": key[1],
                 "class_name": visit.class_name, "t": round(leave_s, 4),
                 "dwell_s": round(leave_s - visit.enter_s, 4)}
        if reason != "left":
            event["reason"] = reason
        self.done.append(event)
        return event

    def update(self, track_ids: NDArray[np.int64], inside: NDArray[np.bool_], class_names: list[str],
               timestamp_s: float) -> list[dict]:
        """Fold in one frame: ``inside`` is (N, K) for the N tracked instances; the events it completes."""
        events = []
        now_in = set()
        for row, (tid, hits) in enumerate(zip(track_ids.tolist(), inside.tolist())):
            for k in (k for k, hit in enumerate(hits) if hit):
                key = (k, tid)
                now_in.add(key)
                visit = self._visits.get(key)
                if visit is None:
                    self._visits[key] = _Visit(timestamp_s, timestamp_s, class_names[row])
                    events.append({"type": "enter", "zone": self.zone_names[k], "track_id": tid,
                                   "class_name": class_names[row], "t": round(timestamp_s, 4)})
                else:
                    visit.last_in_s, visit.first_out_s = timestamp_s, None
        for key, visit in list(self._visits.items()):
            if key in now_in:
                continue
            if visit.first_out_s is None:
                visit.first_out_s = timestamp_s
            if timestamp_s - visit.last_in_s > self.grace_s:
                events.append(self._leave(key, visit.first_out_s, "left"))
        return events

    def dwelling(self, timestamp_s: float) -> dict[str, dict[str, float]]:
        """Seconds each track has been in each zone so far: ``{zone: {track_id: seconds}}``."""
        out: dict[str, dict[str, float]] = {}
        for (k, tid), visit in self._visits.items():
            if visit.first_out_s is None:
                out.setdefault(self.zone_names[k], {})[str(tid)] = round(timestamp_s - visit.enter_s, 4)
        return out

    def close(self, interval_s: float) -> list[dict]:
        """End of the run: every open visit leaves at its last frame in plus one frame interval."""
        return [self._leave(key, (v.first_out_s if v.first_out_s is not None else v.last_in_s + interval_s), "end")
                for key, v in list(self._visits.items())]
