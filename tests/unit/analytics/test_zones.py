"""Occupancy by mask against peers' box anchor, line crossings (once per track and direction, hysteresis) and
dwell times, on synthetic scenes whose answers are known."""

from __future__ import annotations

import doctest

import numpy as np
import pytest

import rtseg.analytics.zones as zones_module
from rtseg.analytics.shapes import parse_line, parse_zone
from rtseg.analytics.zones import DwellTracker, LineCounter, ZoneMap, anchor_points, mask_centroids, rasterize
from rtseg.types import FrameResult, InstanceMasks


def result_of(masks: list[np.ndarray], hw: tuple[int, int], classes: list[int] | None = None,
              tracks: list[int] | None = None) -> FrameResult:
    """A result whose instances are the given full-frame masks (boxes and crops derived from them)."""
    crops, origins, boxes = [], [], []
    for m in masks:
        ys, xs = np.nonzero(m)
        x1, y1, x2, y2 = xs.min(), ys.min(), xs.max() + 1, ys.max() + 1
        crops.append(m[y1:y2, x1:x2].copy())
        origins.append([x1, y1])
        boxes.append([x1, y1, x2, y2])
    n = len(masks)
    return FrameResult(0, hw, np.array(boxes, np.float32).reshape(-1, 4), np.full(n, 0.9, np.float32),
                       np.array(classes or [0] * n, np.int32), InstanceMasks(crops, np.array(origins).reshape(-1, 2)),
                       track_ids=None if tracks is None else np.array(tracks))


def l_shape() -> np.ndarray:
    """An L: a tall bar on the left and a foot along the bottom. Its box's bottom centre (100, 190) lies in the
    'counter' zone below, while only 13% of its mask does."""
    m = np.zeros((200, 200), bool)
    m[20:190, 20:40] = True
    m[170:190, 20:180] = True
    return m


def blob_with_leash() -> np.ndarray:
    """A blob inside the 'shelf' zone with a thin leash trailing out of it: the box's bottom centre (95, 180)
    lies outside the zone (in the 'counter' zone), 97% of the mask inside."""
    m = np.zeros((200, 200), bool)
    m[10:90, 10:90] = True
    for i in range(90, 180):
        m[i, i : i + 2] = True
    return m


def test_examples_run() -> None:
    finder, runner = doctest.DocTestFinder(), doctest.DocTestRunner()
    for test in finder.find(zones_module):
        runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.failed == 0 and result.attempted > 0


def test_rasterize_counts_pixel_centres() -> None:
    assert rasterize(np.array([[0, 0], [50, 0], [50, 100], [0, 100]], float), (100, 100)).sum() == 50 * 100
    tri = rasterize(np.array([[0, 0], [100, 0], [0, 100]], float), (100, 100))
    assert abs(int(tri.sum()) - 5000) <= 100 and tri[0, 0] and not tri[99, 99]


def test_mask_occupancy_differs_from_the_box_anchor_where_it_should() -> None:
    counter = parse_zone("counter:80,150,120,150,120,200,80,200")
    shelf = parse_zone("shelf:0,0,100,0,100,100,0,100")
    zmap = ZoneMap([counter, shelf], (200, 200))
    r = result_of([l_shape(), blob_with_leash()], (200, 200))
    frac = zmap.fractions(r)
    assert frac[0, 0] == pytest.approx(40 * 20 / (170 * 20 + 140 * 20))  # the L's foot under the counter
    assert frac[1, 1] > 0.95
    by_mask = frac >= 0.5
    by_box = zmap.anchors_inside(anchor_points(r))
    assert by_mask.tolist() == [[False, False], [False, True]]
    # peers' anchor: the L counts at the counter; the blob's anchor, at the end of its leash, lands there too
    assert by_box.tolist() == [[True, False], [True, False]]


def test_fractions_many_zones_and_without_masks() -> None:
    zs = [parse_zone(f"z{k}:{k * 10},0,{k * 10 + 10},0,{k * 10 + 10},10,{k * 10},10") for k in range(10)]
    zmap = ZoneMap(zs, (10, 100))  # two bit planes
    m = np.zeros((10, 100), bool)
    m[:, 85:95] = True  # half in z8, half in z9
    frac = zmap.fractions(result_of([m], (10, 100)))
    assert frac[0, 8] == pytest.approx(0.5) and frac[0, 9] == pytest.approx(0.5) and frac[0, :8].sum() == 0
    boxes_only = FrameResult(0, (10, 100), np.array([[85, 0, 95, 10]]), np.array([0.9]), np.array([0]))
    assert zmap.fractions(boxes_only)[0, 8:].tolist() == [0.5, 0.5]


def test_mask_centroid() -> None:
    m = np.zeros((50, 50), bool)
    m[10:20, 30:40] = True
    assert mask_centroids(result_of([m], (50, 50)))[0].tolist() == [35.0, 15.0]


def run_line(counter: LineCounter, path_y: list[float], x: float = 50.0, track: int = 1, cls: str = "person",
             xs: list[float] | None = None) -> list[dict]:
    events = []
    for i, y in enumerate(path_y):
        px = xs[i] if xs is not None else x
        events += counter.update(np.array([track]), np.array([[px, y]]), [cls], i / 10)
    return events


def test_crossing_counted_once_per_track_and_direction() -> None:
    line = parse_line("gate:0,50,100,50")
    counter = LineCounter(line, line.pixels((100, 100)), band_px=4, min_frames=2)
    down = [20, 30, 40, 48, 52, 60, 70, 80]
    events = run_line(counter, down)
    assert [(e["direction"], e["track_id"]) for e in events] == [("in", 1)]
    assert events[0]["t"] == pytest.approx(0.6)  # confirmed on the second frame beyond the band (y=60, 70)
    # back up (out), down again (in: already counted for this track), up again (out: already counted)
    events = run_line(counter, [80, 60, 40, 30, 60, 70, 30, 20])
    assert [e["direction"] for e in events] == ["out"]
    assert counter.totals == {"in": {"person": 1}, "out": {"person": 1}}


def test_a_track_wiggling_on_the_line_counts_once() -> None:
    line = parse_line("gate:0,50,100,50")
    counter = LineCounter(line, line.pixels((100, 100)), band_px=4, min_frames=2)
    # starts above; wiggles across the line, staying two frames at a time on either side but inside the band;
    # a single excursion beyond the band for one frame (not staying), back beyond the band above; then crosses
    # for good and wiggles on the line again
    wiggle = [30, 40, 47, 53, 47, 53, 48, 52, 53, 48, 47, 51, 52, 49, 57, 40, 47, 53, 60, 65, 70, 52, 48, 55, 66]
    events = run_line(counter, wiggle, track=7, cls="dog")
    assert [(e["direction"], e["class_name"]) for e in events] == [("in", "dog")]
    assert counter.totals == {"in": {"dog": 1}, "out": {}}


def test_passing_beyond_the_end_of_the_segment_is_no_crossing() -> None:
    line = parse_line("gate:0,50,40,50")
    counter = LineCounter(line, line.pixels((100, 100)), band_px=4, min_frames=1)
    assert run_line(counter, [20, 40, 60, 80], x=70) == []  # crosses the line's extension at x=70
    assert [e["direction"] for e in run_line(counter, [20, 40, 60, 80], x=20, track=2)] == ["in"]
    # diagonal path: over the segment between two sightings far apart
    assert len(run_line(counter, [10, 90], xs=[60, 10], track=3)) == 1  # crosses y=50 at x=35, on the segment


def test_direction_follows_the_line_orientation() -> None:
    line = parse_line("gate:100,50,0,50")  # drawn right to left: "in" is upwards
    counter = LineCounter(line, line.pixels((100, 100)), band_px=2, min_frames=1)
    assert [e["direction"] for e in run_line(counter, [80, 60, 40, 20])] == ["in"]


def test_dwell_within_one_frame_interval() -> None:
    dwell = DwellTracker(["door"], grace_s=0.5)
    events = []
    fps = 10
    for i in range(60):
        inside = 10 <= i <= 29 and i != 20  # a one-frame dip in the middle does not split the visit
        seen = i != 25  # nor does a missed detection
        ids = np.array([4]) if seen else np.zeros(0, np.int64)
        events += dwell.update(ids, np.array([[inside]]) if seen else np.zeros((0, 1), bool), ["person"] * seen,
                               i / fps)
    kinds = [(e["type"], e["t"]) for e in events]
    assert kinds == [("enter", 1.0), ("leave", 3.0)]
    true_dwell = 20 / fps  # frames 10..29
    assert abs(events[1]["dwell_s"] - true_dwell) <= 1 / fps
    assert events[1]["dwell_s"] == pytest.approx(2.0)


def test_dwell_open_visits_close_at_the_end() -> None:
    dwell = DwellTracker(["door", "till"], grace_s=0.5)
    for i in range(5):
        dwell.update(np.array([1]), np.array([[True, i >= 2]]), ["person"], i * 0.1)
    assert dwell.dwelling(0.4) == {"door": {"1": 0.4}, "till": {"1": pytest.approx(0.2)}}
    closed = dwell.close(0.1)
    assert [(e["zone"], e["dwell_s"], e["reason"]) for e in closed] == [("door", 0.5, "end"), ("till", 0.3, "end")]


def test_a_part_inside_a_whole_of_its_class_is_a_duplicate_whatever_the_scores() -> None:
    """The nano model's whole-body and upper-body boxes of one person (box IoU 0.7, which NMS keeps): the part
    repeats the whole even with the higher score; two people side by side, a dog inside a person's box, and one
    person half in front of another are not duplicates."""
    hw = (100, 100)
    whole, part = np.zeros(hw, bool), np.zeros(hw, bool)
    whole[10:90, 30:60] = True
    part[15:60, 32:58] = True
    result = result_of([whole, part], hw)
    result = FrameResult(0, hw, result.boxes_xyxy, np.array([0.3, 0.35], np.float32), result.class_ids,
                         result.masks)
    assert zones_module.duplicate_of(result).tolist() == [-1, 0]
    assert zones_module.duplicate_of(result_of([whole, part], hw, classes=[0, 1])).tolist() == [-1, -1]
    beside = np.zeros(hw, bool)
    beside[10:90, 62:92] = True
    assert zones_module.duplicate_of(result_of([whole, beside], hw)).tolist() == [-1, -1]
    behind = np.zeros(hw, bool)
    behind[10:90, 45:75] = True  # half hidden: the masks share half of the smaller one
    behind[10:90, 45:60] = False
    assert zones_module.duplicate_of(result_of([whole, behind], hw)).tolist() == [-1, -1]
    ring = np.zeros(hw, bool)  # a box inside the whole's box, but its mask is not inside the whole's mask
    ring[20:50, 40:50] = True
    hollow = whole.copy()
    hollow[18:52, 38:52] = False
    assert zones_module.duplicate_of(result_of([hollow, ring], hw)).tolist() == [-1, -1]
