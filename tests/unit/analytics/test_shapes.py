"""Zones and lines from strings and files: parsing, normalised vs pixel coordinates, per-source selection, and
one-line errors that name the option."""

from __future__ import annotations

import doctest
from pathlib import Path

import numpy as np
import pytest

import rtseg.analytics.shapes as shapes
from rtseg.analytics.shapes import load_shapes, parse_line, parse_zone, select_shapes
from rtseg.errors import ConfigError


def test_examples_run() -> None:
    finder, runner = doctest.DocTestFinder(), doctest.DocTestRunner()
    for test in finder.find(shapes):
        runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.failed == 0 and result.attempted > 0


def test_string_forms_normalised_and_pixels() -> None:
    door = parse_zone("door:0.1,0.2,0.4,0.2,0.4,0.9,0.1,0.9")
    assert door.name == "door" and door.normalized and door.points.shape == (4, 2)
    assert door.pixels((100, 200))[1].tolist() == [80.0, 20.0]
    till = parse_zone("till:700,300,900,300,900,500")
    assert not till.normalized and till.pixels((720, 1280)).tolist() == till.points.tolist()
    unnamed = parse_zone("0,0,1,0,1,1", index=2)
    assert unnamed.name == "zone3"
    gate = parse_line("gate:100,400,1180,400")
    assert gate.kind == "line" and gate.points.tolist() == [[100, 400], [1180, 400]]


def test_file_forms(tmp_path: Path) -> None:
    yaml_file = tmp_path / "site.yaml"
    yaml_file.write_text("""
zones:
  - name: door
    points: [[0.1, 0.2], [0.4, 0.2], [0.4, 0.9], [0.1, 0.9]]
  - name: till
    points: [[700, 300], [900, 300], [900, 500]]
    source: cam_b
lines:
  gate: [[100, 400], [1180, 400]]
  half: {points: "0.5,0,0.5,1", normalized: true}
""")
    zones, lines = load_shapes(yaml_file)
    assert [z.name for z in zones] == ["door", "till"] and [ln.name for ln in lines] == ["gate", "half"]
    assert zones[1].source == "cam_b" and lines[1].normalized
    json_file = tmp_path / "site.json"
    json_file.write_text('{"zones": {"a": [0, 0, 10, 0, 10, 10]}, "normalized": false}')
    zones, lines = load_shapes(json_file)
    assert zones[0].name == "a" and not zones[0].normalized and lines == []
    # per source: shapes without a source apply everywhere; "cam_b" by tag, name, file name or stem
    zones, _ = load_shapes(yaml_file)
    assert [z.name for z in select_shapes(zones, "cam_a")] == ["door"]
    assert [z.name for z in select_shapes(zones, "x", "/videos/cam_b.mp4")] == ["door", "till"]


@pytest.mark.parametrize("text, message", [
    ("door:0.1,0.2,0.4,0.2", "zone='door:0.1,0.2,0.4,0.2': zone 'door' has 2 points; a zone needs at least 3"),
    ("door:0.1,0.2,0.4", "zone 'door' has an odd count of numbers (3)"),
    ("door:0.1,x,0.4,0.2,0.3,0.3", "'x' is not a number"),
    ("door:0,0,1,1,2,2", "has no area"),
    ("door:-5,0,10,0,10,10", "negative pixel coordinates"),
    ("door:0,0,nan,0,1,1", "is not a finite number"),
    ("a,b:0,0,1,0,1,1", "zone name 'a,b'"),
])
def test_bad_zone_strings(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=".*") as info:
        parse_zone(text)
    assert message in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize("text, message", [
    ("gate:1,2,3,4,5,6", "line 'gate' has 3 points; a line needs exactly 2"),
    ("gate:1,2,1,2", "two equal points"),
])
def test_bad_line_strings(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_line(text)
    assert str(info.value).startswith(f"line={text!r}: ") and message in str(info.value)


@pytest.mark.parametrize("content, message", [
    ("zones:\n  - name: door\n    points: [[0.1, 0.2], [0.4, 0.2]]\n",
     "zone 'door' has 2 points; a zone needs at least 3"),
    ("zones: [1, 2\n", "not valid YAML/JSON"),
    ("zone:\n  door: [0, 0, 1, 0, 1, 1]\n", "unknown key(s) zone"),
    ("zones:\n  door: {pts: [0, 0, 1, 0, 1, 1]}\n", "unknown key(s) pts"),
    ("- 1\n", "expected a mapping"),
    ("zones: {}\n", "no zones and no lines"),
    ("zones:\n  door: {points: [0, 0, 1, 0, 1, 1], normalized: 2}\n", "normalized must be true or false"),
])
def test_bad_files(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "x.yaml"
    path.write_text(content)
    with pytest.raises(ConfigError) as info:
        load_shapes(path)
    assert str(info.value).startswith(f"zones={path}: ") and message in str(info.value)
    assert "\n" not in str(info.value)


def test_missing_file_and_pixels_outside_the_frame(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"zones=.*nope.yaml: cannot read it"):
        load_shapes(tmp_path / "nope.yaml")
    zone = parse_zone("till:700,300,1400,300,900,500")
    with pytest.raises(ConfigError, match=r"zone 'till' point \(1400, 300\) lies outside the 1280x720 frame of cam"):
        zone.pixels((720, 1280), "cam")
    assert np.allclose(parse_zone("t:0,0,1280,0,1280,720").pixels((720, 1280))[2], [1280, 720])


def test_duplicate_names_for_one_source() -> None:
    with pytest.raises(ConfigError, match="two zones named 'door'"):
        select_shapes([parse_zone("door:0,0,1,0,1,1"), parse_zone("door:0,0,0.5,0,0.5,1")])
