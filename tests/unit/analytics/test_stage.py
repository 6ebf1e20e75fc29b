"""The per-stream Analytics object: its record in the JSONL, events, drawing, heatmap and report files, and
the one-line errors of its options."""

from __future__ import annotations

import csv
import doctest
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

import rtseg.analytics.report as report_module
import rtseg.analytics.stage as stage_module
from rtseg.analytics import Analytics, check_analytics_options, write_report
from rtseg.errors import ConfigError
from rtseg.types import Frame, FrameResult, InstanceMasks

HW = (100, 100)
NAMES = ("person", "dog")


def person_at(cy: int, track: int | None = 1, cls: int = 0, cx: int = 50) -> FrameResult:
    """A 20x20 square instance centred at (cx, cy)."""
    x, y = cx - 10, cy - 10
    return FrameResult(0, HW, np.array([[x, y, x + 20, y + 20]]), np.array([0.9]), np.array([cls]),
                       InstanceMasks((np.ones((20, 20), bool),), [[x, y]]),
                       track_ids=None if track is None else np.array([track]))


def frame(i: int, fps: float = 10.0) -> Frame:
    return Frame(i, np.full((*HW, 3), 90, np.uint8), i / fps, "clip.mp4")


def walk(analytics: Analytics, n: int = 40, track: int | None = 1) -> list[FrameResult]:
    """A person walks down from y=10 at 2 px a frame, through the 'top' zone and over the 'gate' line."""
    return [analytics.update(frame(i), person_at(10 + 2 * i, track)) for i in range(n)]


def scene(**options: object) -> Analytics:
    a = Analytics.from_options(names=NAMES, fps=10, zone=["top:0,0,1,0,1,0.4,0,0.4"], line=["gate:0,0.5,1,0.5"],
                               tag="clip", **options)
    assert a is not None
    return a


@pytest.mark.parametrize("module", [stage_module, report_module])
def test_examples_run(module: object) -> None:
    finder, runner = doctest.DocTestFinder(), doctest.DocTestRunner()
    for test in finder.find(module):
        runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.failed == 0 and result.attempted > 0


def test_flags() -> None:
    assert Analytics.from_options(names=NAMES) is None
    blur = Analytics.from_options(names=NAMES, blur="Person", blur_only=True)
    assert blur is not None and blur.edits_image and not blur.draws_instances and not blur.needs_tracking
    assert blur.privacy is not None and blur.privacy.class_ids == {0}
    back = Analytics.from_options(names=NAMES, background="green")
    assert back is not None and back.edits_image and not back.draws_instances
    heat = Analytics.from_options(names=NAMES, heatmap_overlay=True)
    assert heat is not None and not heat.edits_image and heat.draws_instances and not heat.needs_tracking
    assert scene().needs_tracking


def test_record_events_and_report() -> None:
    a = scene()
    results = walk(a)
    first = results[0].analytics
    assert first["zones"] == {"top": {"person": 1}} and first["in_zones"] == [["top"]]
    assert first["events"] == [{"type": "enter", "zone": "top", "track_id": 1, "class_name": "person", "t": 0.0}]
    assert first["lines"] == {"gate": {"in": {}, "out": {}}}
    events = [e for r in results for e in r.analytics["events"]]
    # in the zone while at least half of the mask is (centre y <= 40: frames 0..15); over the line at y=50 once
    assert [(e["type"], e["t"]) for e in events] == [("enter", 0.0), ("leave", 1.6), ("cross", 2.3)]
    assert events[1]["dwell_s"] == pytest.approx(1.6) and events[2]["direction"] == "in"
    assert results[-1].analytics["lines"] == {"gate": {"in": {"person": 1}, "out": {}}}
    assert results[-1].analytics["zones"] == {"top": {}} and results[10].analytics["dwell_s"] == {"top": {"1": 1.0}}
    record = results[20].to_dict(frame(20), names=NAMES)
    assert record["analytics"]["zones"] == {"top": {}} and json.loads(json.dumps(record)) == record
    assert a.close() == []
    rep = a.report()
    assert rep["source"] == "clip" and rep["frames"] == 40
    top = rep["zones"]["top"]["total"]["person"]
    assert top == {"entries": 1, "visits": 1, "mean_dwell_s": 1.6, "max_occupancy": 1, "mean_occupancy": 0.4}
    assert rep["lines"]["gate"]["total"] == {"in": {"person": 1}, "out": {}}


def test_box_anchor_mode_counts_as_peers_do() -> None:
    a = scene(zone_anchor="box")
    results = walk(a)
    inside = [i for i, r in enumerate(results) if r.analytics["in_zones"][0]]
    assert inside == list(range(0, 10))  # the box's bottom centre (cy + 10) is above y=40 up to frame 9
    by_mask = [i for i, r in enumerate(walk(scene())) if r.analytics["in_zones"][0]]
    assert by_mask == list(range(0, 16))


def test_zone_overlap_threshold() -> None:
    strict = [i for i, r in enumerate(walk(scene(zone_overlap=1.0))) if r.analytics["in_zones"][0]]
    assert strict == list(range(0, 11))  # wholly inside: bottom edge y + 10 <= 40


def test_without_tracking_only_occupancy() -> None:
    a = scene()
    results = walk(a, track=None)
    assert all(r.analytics["events"] == [] for r in results)
    assert results[0].analytics["zones"] == {"top": {"person": 1}} and "dwell_s" not in results[0].analytics
    assert results[-1].analytics["lines"] == {"gate": {"in": {}, "out": {}}}


def test_pixel_zone_outside_the_frame_fails_at_the_first_frame() -> None:
    a = Analytics.from_options(names=NAMES, zone=["door:10,10,150,10,150,50"], source="clip.mp4")
    assert a is not None
    with pytest.raises(ConfigError, match=r"^zone='door:10,10,150,10,150,50': zone 'door' point \(150, 10\) lies "
                                          r"outside the 100x100 frame of clip.mp4"):
        a.update(frame(0), person_at(50))


def test_drawing() -> None:
    a = scene(blur="person", heatmap_overlay=True)
    result = a.update(frame(0), person_at(50))
    image = frame(0).image
    before = a.before_draw(image, result)
    assert before is image  # in place
    drawn = a.after_draw(image.copy(), result)
    assert (drawn[:, :, :] != image).any(2)[38:42].any()  # the zone's lower edge at y=40
    assert (drawn != image).any(2)[48:52, 20:80].any()  # the line


def test_heatmap_files(tmp_path: Path) -> None:
    a = Analytics.from_options(names=NAMES, heatmap=tmp_path / "heat.png")
    b = Analytics.from_options(names=NAMES, heatmap=tmp_path / "heat_{class}.png", blur="person")
    for analytics in (a, b):
        for i in range(5):
            result = analytics.update(frame(i), person_at(50))
            result = analytics.update(frame(i), person_at(50, cls=1, cx=20))
            if analytics.edits_image:
                analytics.before_draw(frame(i).image, result)
    assert a.close() == [tmp_path / "heat.png"] and a.close() == [tmp_path / "heat.png"]
    image = cv2.imread(str(tmp_path / "heat.png"))
    assert image.shape == (*HW, 3) and (image[45:55, 45:55] != 90).any() and (image[0:5, 0:5] == 90).all()
    assert sorted(p.name for p in b.close()) == ["heat_dog.png", "heat_person.png"]
    assert a.heatmap("person")[50, 50] == 5


def test_write_report_json_and_csv(tmp_path: Path) -> None:
    a = scene()
    for i in range(1300):  # two minutes and a bit at 10 fps: the person stays in the zone from 61 s to 62 s
        cy = 30 if 610 <= i < 620 else 80
        a.update(frame(i), person_at(cy, track=1 if i < 615 else 2))
    a.close()
    rep = a.report()
    minutes = rep["zones"]["top"]["per_minute"]
    assert [m["minute"] for m in minutes] == [1]
    assert minutes[0]["person"]["entries"] == 2 and minutes[0]["person"]["visits"] == 2
    assert minutes[0]["person"]["mean_occupancy"] == pytest.approx(10 / 600, abs=1e-4)
    write_report(tmp_path / "r.json", [rep])
    assert json.loads((tmp_path / "r.json").read_text())["sources"][0]["zones"]["top"]["total"]["person"][
        "entries"] == 2
    write_report(tmp_path / "r.csv", [rep])
    rows = list(csv.DictReader((tmp_path / "r.csv").open()))
    entries = [r for r in rows if r["metric"] == "entries"]
    assert {(r["minute"], r["value"]) for r in entries} == {("", "2"), ("1", "2")}
    with pytest.raises(ConfigError, match=r"report=.*r.txt: expected a .json or .csv file"):
        write_report(tmp_path / "r.txt", [rep])


@pytest.mark.parametrize("options, message", [
    ({"zone": ["door:0.1,0.2,0.4,0.2"]},
     "zone='door:0.1,0.2,0.4,0.2': zone 'door' has 2 points; a zone needs at least 3"),
    ({"line": ["gate:1,2,3"]}, "line='gate:1,2,3': line 'gate' has an odd count of numbers (3)"),
    ({"zone": "door:0,0,1,0,1,1"}, "zone and line take a list of strings"),
    ({"zone": ["a:0,0,1,0,1,1", "a:0,0,0.5,0,0.5,1"]}, "two zones named 'a'"),
    ({"zone_overlap": 0}, "zone_overlap=0: expected above 0, up to 1"),
    ({"zone_overlap": 1.5}, "zone_overlap=1.5: expected above 0, up to 1"),
    ({"zone_anchor": "feet"}, "zone_anchor='feet': expected one of mask, box"),
    ({"heatmap": "heat.gif"}, "heatmap=heat.gif: expected a .png (or .jpg) file"),
    ({"heatmap": "h.png", "heatmap_decay_s": 0}, "heatmap_decay_s=0: expected seconds above 0"),
    ({"blur": ",,"}, "blur=',,': name at least one class to blur"),
    ({"blur_style": "smear", "blur": "person"}, "blur_style='smear': expected one of blur, pixelate, box"),
    ({"blur_only": True}, "blur_only needs blur"),
    ({"blur": "persn", "names": NAMES}, "blur='persn': 'persn' is not a class of this model (person, dog)"),
    ({"background": "blur", "names": ("cat", "dog")}, "background='blur': keeps the people, but this model has no "
                                                      "'person' class (cat, dog)"),
    ({"background": "no/such.png"}, "background='no/such.png': no such file"),
    ({"report": "r.json"}, "report=r.json: counts zones and lines; give zones=FILE, zone=... or line=..."),
    ({"report": "r.xlsx", "zone": ["a:0,0,1,0,1,1"]}, "report=r.xlsx: expected a .json or .csv file"),
])
def test_bad_options_are_one_line(options: dict, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        check_analytics_options(**options)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_unreadable_background_image_and_zones_file(tmp_path: Path) -> None:
    bad = tmp_path / "bg.jpg"
    bad.write_bytes(b"\xff\xd8 truncated")
    with pytest.raises(ConfigError, match=r"^background='.*bg.jpg': cannot read it as an image"):
        Analytics.from_options(names=NAMES, background=str(bad))
    zones = tmp_path / "x.yaml"
    zones.write_text("zones:\n  door: [[0.1, 0.2], [0.4, 0.2]]\n")
    with pytest.raises(ConfigError, match=rf"^zones={zones}: zone 'door' has 2 points; a zone needs at least 3$"):
        Analytics.from_options(names=NAMES, zones=zones)


def test_shapes_per_source(tmp_path: Path) -> None:
    site = tmp_path / "site.yaml"
    site.write_text("zones:\n  - {name: a, points: [0, 0, 1, 0, 1, 1]}\n  - {name: b, points: [0, 0, 1, 0, 1, 1], "
                    "source: cam_b}\n")
    a = Analytics.from_options(names=NAMES, zones=site, tag="cam_a")
    b = Analytics.from_options(names=NAMES, zones=site, tag="cam_b")
    assert a is not None and b is not None
    assert [z.name for z in a.zones] == ["a"] and [z.name for z in b.zones] == ["a", "b"]


def test_a_duplicate_part_is_not_a_second_visitor_nor_a_new_one_when_it_outlives_the_whole() -> None:
    """Someone stands in the 'top' zone (track 1); for 3 frames the model also finds their upper body (track 2,
    inside the whole); then only the part is found (the tracker kept track 2). One visitor: one entry,
    occupancy 1 throughout, and no visit ends while they stand there."""
    a = scene()
    whole = person_at(20, track=1)
    x1, y1, x2, y2 = whole.boxes_xyxy[0]
    part_box = [x1 + 2, y1 + 2, x2 - 2, y1 + 12]
    both = FrameResult(0, HW, np.array([[x1, y1, x2, y2], part_box]), np.array([0.3, 0.4]), np.array([0, 0]),
                       InstanceMasks((np.ones((20, 20), bool), np.ones((10, 16), bool)),
                                     [[x1, y1], [x1 + 2, y1 + 2]]), track_ids=np.array([1, 2]))
    only_part = both.select(np.array([1]))
    results = [a.update(frame(i), r) for i, r in enumerate([whole] * 3 + [both] * 3 + [only_part] * 20)]
    events = [e for r in results for e in r.analytics["events"]]
    assert [e["type"] for e in events] == ["enter"], events
    assert max(r.analytics["zones"]["top"].get("person", 0) for r in results) == 1
