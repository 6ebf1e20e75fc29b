"""``rtseg run`` with the analytics flags, as a user runs it: the real CLI in a subprocess on real footage (the
bundled person/cat/dog model on the people clip of ../shared/data) and on generated clips for the error lines.

The people clip (768x432, 10 fps): one person at a time walks in from the bottom of the frame to a standing
table, stays there, and leaves to the right; the first walks in at frame ~65 and stands at the table from frame
~80 to ~185 (x 0.52..0.75 of the width)."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from pycocotools import mask as mask_utils

from tests.support import DATA, NONET, run_cli, write_video

PEOPLE = DATA / "videos" / "people_one-by-one-person-detection.mp4"
TABLE = "table:0.45,0,0.85,0,0.85,1,0.45,1"  # where the people stand
ENTRY = "entry:0.85,0.56,0.3,0.56"  # walking up the frame, towards the table, is 'in'
NOTICE = "tracking switched on"


def cut(path: Path, first: int, count: int) -> Path:
    """Frames ``first`` .. ``first + count - 1`` of the people clip as an MJPEG AVI at 10 fps."""
    capture = cv2.VideoCapture(str(PEOPLE))
    capture.set(cv2.CAP_PROP_POS_FRAMES, first)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (768, 432))
    for _ in range(count):
        ok, image = capture.read()
        assert ok
        writer.write(image)
    writer.release()
    capture.release()
    return path


def decode(path: Path) -> list[np.ndarray]:
    capture = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, image = capture.read()
        if not ok:
            break
        frames.append(image.astype(np.int16))
    capture.release()
    return frames


def records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def people_mask(record: dict) -> np.ndarray:
    """The union of the record's person masks (instances and the semantic person class), (H, W) bool."""
    h, w = record["image_hw"]
    union = np.zeros((h, w), bool)
    for det in [*record["detections"], *record.get("semantic", [])]:
        if det["class_name"] == "person":
            rle = {"size": det["mask"]["size"], "counts": det["mask"]["counts"].encode()}
            union |= mask_utils.decode(rle).astype(bool)
    return union


def grow(mask: np.ndarray, px: int) -> np.ndarray:
    return cv2.dilate(mask.astype(np.uint8), np.ones((2 * px + 1, 2 * px + 1), np.uint8)).astype(bool)


def shrink(mask: np.ndarray, px: int) -> np.ndarray:
    return cv2.erode(mask.astype(np.uint8), np.ones((2 * px + 1, 2 * px + 1), np.uint8)).astype(bool)


@pytest.fixture(scope="module")
def walk_in(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The first person walking in and standing at the table (frames 55..134)."""
    return cut(tmp_path_factory.mktemp("people") / "walk_in.avi", 55, 80)


@pytest.fixture(scope="module")
def standing(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The first person standing at the table (frames 100..111)."""
    return cut(tmp_path_factory.mktemp("people") / "standing.avi", 100, 12)


@pytest.fixture(scope="module")
def plain(standing: Path, tmp_path_factory: pytest.TempPathFactory) -> list[np.ndarray]:
    """The standing clip through a run that draws nothing (conf 1.0: no detection), encoded as the others are."""
    out = tmp_path_factory.mktemp("plain") / "plain.avi"
    proc = run_cli("run", str(standing), "--out", str(out), "--conf", "1.0", "-q")
    assert proc.returncode == 0, proc.stderr
    return decode(out)


@pytest.mark.data
def test_zone_line_and_report_on_real_footage(walk_in: Path, tmp_path: Path) -> None:
    report, jsonl = tmp_path / "counts.json", tmp_path / "walk.jsonl"
    proc = run_cli("run", str(walk_in), "--zone", TABLE, "--line", ENTRY, "--report", str(report),
                   "--jsonl", str(jsonl), "--classes", "person")
    assert proc.returncode == 0, proc.stderr
    assert sum(NOTICE in line for line in proc.stderr.splitlines()) == 1, proc.stderr
    assert f"wrote {report}" in proc.stderr  # the run summary names the report
    got = records(jsonl)
    assert len(got) == 80 and all("analytics" in r for r in got)
    events = [e for r in got for e in r["analytics"]["events"]]
    assert [(e["type"], e["direction"]) for e in events if e["type"] == "cross"] == [("cross", "in")]
    assert [e["type"] for e in events if e.get("zone") == "table"] == ["enter"]  # still there at the end
    assert got[-1]["analytics"]["zones"] == {"table": {"person": 1}}
    assert got[-1]["analytics"]["lines"] == {"entry": {"in": {"person": 1}, "out": {}}}
    summary = json.loads(report.read_text())["sources"]
    assert [s["source"] for s in summary] == ["walk_in"] and summary[0]["frames"] == 80
    table = summary[0]["zones"]["table"]["total"]["person"]
    assert table["entries"] == table["visits"] == 1 and table["max_occupancy"] == 1
    assert table["mean_dwell_s"] > 5  # the visit still open at the end is closed into the report
    assert summary[0]["lines"]["entry"]["total"] == {"in": {"person": 1}, "out": {}}


@pytest.mark.data
def test_several_sources_with_tiling_write_one_csv_report(standing: Path, tmp_path: Path) -> None:
    second = tmp_path / "again.avi"
    second.write_bytes(standing.read_bytes())
    report = tmp_path / "counts.csv"
    proc = run_cli("run", str(standing), str(second), "--zone", TABLE, "--report", str(report), "--tile", "480",
                   "--jsonl", str(tmp_path / "r.jsonl"), "-q", "--track", "bytetrack")
    assert proc.returncode == 0, proc.stderr
    assert NOTICE not in proc.stderr  # --track given: nothing to switch on
    rows = list(csv.DictReader(report.read_text().splitlines()))
    totals = {(r["source"], r["metric"]): r["value"] for r in rows
              if r["minute"] == "" and r["name"] == "table" and r["class"] == "person"}
    assert totals[("standing", "entries")] == totals[("again", "entries")] == "1"
    assert totals[("standing", "max_occupancy")] == totals[("again", "max_occupancy")] == "1"
    for tag in ("standing", "again"):
        got = records(tmp_path / f"r_{tag}.jsonl")
        assert len(got) == 12 and got[-1]["analytics"]["zones"] == {"table": {"person": 1}}


@pytest.mark.data
def test_blur_changes_the_people_and_nothing_else(standing: Path, plain: list[np.ndarray], tmp_path: Path) -> None:
    out, jsonl = tmp_path / "private.avi", tmp_path / "private.jsonl"
    proc = run_cli("run", str(standing), "--blur", "person", "--blur-only", "--out", str(out), "--jsonl", str(jsonl),
                   "-q")
    assert proc.returncode == 0, proc.stderr
    blurred, got = decode(out), records(jsonl)
    assert len(blurred) == len(plain) == len(got) == 12
    for image, before, record in zip(blurred, plain, got):
        person = people_mask(record)
        assert person.sum() > 5000, "the bundled model lost the person standing at the table"
        diff = np.abs(image - before).max(axis=2)
        away = ~grow(person, 12)  # the feather reaches a few pixels out
        assert np.percentile(diff[away], 99) < 12  # MJPEG noise: no box, label or mask colour drawn
        inner = shrink(person, 4)
        assert diff[inner].mean() > 8  # the person's detail is gone
        grey, grey_before = (cv2.cvtColor(x.astype(np.uint8), cv2.COLOR_BGR2GRAY).astype(np.float64)
                             for x in (image, before))
        detail = np.abs(grey - cv2.blur(grey, (5, 5)))[inner].mean()
        assert detail < 0.5 * np.abs(grey_before - cv2.blur(grey_before, (5, 5)))[inner].mean()


@pytest.mark.data
def test_background_colour_keeps_the_person(standing: Path, plain: list[np.ndarray], tmp_path: Path) -> None:
    out, jsonl = tmp_path / "green.avi", tmp_path / "green.jsonl"
    proc = run_cli("run", str(standing), "--background", "#00ff00", "--out", str(out), "--jsonl", str(jsonl), "-q")
    assert proc.returncode == 0, proc.stderr
    assert "people from MediaPipe's selfie segmenter" in proc.stderr  # no model named: the selfie model alone
    frames, got = decode(out), records(jsonl)
    assert len(frames) == len(got) == 12
    assert all(not r["detections"] and any(s["class_name"] == "person" for s in r["semantic"]) for r in got)
    for image, before, record in zip(frames, plain, got):
        person = people_mask(record)
        assert person.sum() > 5000
        background = ~grow(person, 8)
        assert np.abs(image[background] - np.array([0, 255, 0])).mean() < 6  # BGR green, MJPEG noise
        inner = shrink(person, 3)
        assert np.abs(image[inner] - before[inner]).mean() < 6  # the person as in the input, nothing drawn


@pytest.mark.data
def test_ctrl_c_still_writes_the_report(tmp_path: Path) -> None:
    report, jsonl = tmp_path / "counts.json", tmp_path / "r.jsonl"
    env = dict(os.environ, PYTHONPATH=str(NONET))
    proc = subprocess.Popen([sys.executable, "-m", "rtseg.cli", "run", str(PEOPLE), "--zone", TABLE, "--report",
                             str(report), "--jsonl", str(jsonl)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and (not jsonl.exists() or len(jsonl.read_text().splitlines()) < 10):
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr and f"wrote {report}" in stderr
    frames = len(jsonl.read_text().splitlines())
    assert 10 <= json.loads(report.read_text())["sources"][0]["frames"] == frames < 1394


def test_tracking_switches_on_with_one_notice(tmp_path: Path) -> None:
    video = write_video(tmp_path / "clip.avi", frames=4)
    jsonl = tmp_path / "r.jsonl"
    proc = run_cli("run", str(video), "--line", "gate:0,0.5,1,0.5", "--jsonl", str(jsonl), "--conf", "0.01")
    assert proc.returncode == 0, proc.stderr
    notices = [line for line in proc.stderr.splitlines() if NOTICE in line]
    assert notices == ["rtseg: zones and lines count tracks: tracking switched on (bytetrack; --track botsort to "
                       "choose)"]
    got = records(jsonl)
    assert len(got) == 4 and all(r["analytics"]["lines"] == {"gate": {"in": {}, "out": {}}} for r in got)
    proc = run_cli("run", str(video), "--blur", "person", "--jsonl", str(jsonl), "-q")  # no zone, no line
    assert proc.returncode == 0 and NOTICE not in proc.stderr, proc.stderr


def _bad_background(folder: Path) -> str:
    path = folder / "back.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    return str(path)


BAD_INPUTS = {  # flags -> the one error line's words
    "zone-two-points": (lambda d: ["--zone", "door:0.1,0.2,0.4,0.2"],
                        "--zone 'door:0.1,0.2,0.4,0.2': zone 'door' has 2 points; a zone needs at least 3"),
    "zone-outside-frame": (lambda d: ["--zone", "door:10,10,400,10,400,200"],
                           "zone 'door' point (400, 10) lies outside the 320x240 frame"),
    "line-outside-frame": (lambda d: ["--line", "gate:0,300,100,300"],
                           "line 'gate' point (0, 300) lies outside the 320x240 frame"),
    "blur-unknown-class": (lambda d: ["--blur", "persn"], "--blur 'persn': 'persn' is not a class of this model "
                                                          "(person, cat, dog)"),
    "background-unreadable": (lambda d: ["--background", _bad_background(d)], "cannot read it as an image"),
    "background-missing": (lambda d: ["--background", str(d / "none.jpg")], "no such file"),
    "report-suffix": (lambda d: ["--zone", "a:0,0,1,0,1,1", "--report", str(d / "out" / "counts.xlsx")],
                      "expected a .json or .csv file"),
    "report-without-zones": (lambda d: ["--report", str(d / "out" / "counts.json")],
                             "counts zones and lines; give --zones FILE, --zone ... or --line ..."),
    "blur-only-alone": (lambda d: ["--blur-only"], "--blur-only needs --blur CLASSES"),
    "heatmap-decay": (lambda d: ["--heatmap-decay", "0", "--heatmap", str(d / "out" / "h.png")],
                      "--heatmap-decay 0.0: expected seconds above 0"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_analytics_input_is_one_line_and_writes_nothing(case: str, tmp_path: Path) -> None:
    video = write_video(tmp_path / "clip.avi", frames=4)
    (tmp_path / "out").mkdir()
    args, expected = BAD_INPUTS[case]
    proc = run_cli("run", str(video), "--out", str(tmp_path / "out" / "o.mp4"), "--jsonl",
                   str(tmp_path / "out" / "o.jsonl"), *args(tmp_path), cwd=tmp_path)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and len(lines) == 1, proc.stderr
    assert lines[0].startswith("rtseg: error: ") and expected in lines[0], lines[0]
    assert list((tmp_path / "out").iterdir()) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["clip.avi", "out", *(["back.png"] if "unreadable"
                                                                                     in case else [])])
