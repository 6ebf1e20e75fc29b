"""A run's analytics options: what they read and write, per-source heatmap names, the frame-size check before
any output opens, and the end of a run (report only when some frame was seen)."""

from __future__ import annotations

import doctest
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

import rtseg.analytics.options as options_module
from rtseg.analytics import AnalyticsOptions, finish_analytics, probe_frame_hw
from rtseg.errors import ConfigError
from rtseg.types import Frame, FrameResult

NAMES = ("person", "dog")


def test_examples_run() -> None:
    finder, runner = doctest.DocTestFinder(), doctest.DocTestRunner()
    for test in finder.find(options_module):
        runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.failed == 0 and result.attempted > 0


def test_what_asks_for_analytics_and_for_tracking() -> None:
    assert not AnalyticsOptions().wanted and not AnalyticsOptions(zone=None, line=None).wanted  # type: ignore[arg-type]
    assert AnalyticsOptions(blur="person").wanted and not AnalyticsOptions(blur="person").needs_tracking
    assert AnalyticsOptions(background="blur").wanted and not AnalyticsOptions(heatmap="h.png").needs_tracking
    assert AnalyticsOptions(line=["g:0,0.5,1,0.5"]).needs_tracking
    assert AnalyticsOptions(heatmap="h.png").writes_files and not AnalyticsOptions(blur="person").writes_files


def test_outputs_and_inputs(tmp_path: Path) -> None:
    back = tmp_path / "beach.jpg"
    opts = AnalyticsOptions(zones=tmp_path / "z.yaml", background=str(back), heatmap=tmp_path / "heat.png",
                            report=tmp_path / "r.csv")
    assert opts.inputs() == [tmp_path / "z.yaml", back]
    assert AnalyticsOptions(background="#00ff00").inputs() == []
    one = [(o.param, o.path.name) for o in opts.output_paths(["clip"])]
    assert one == [("report", "r.csv"), ("heatmap", "heat.png")]
    two = [(o.param, o.path.name) for o in opts.output_paths(["a", "b"])]
    assert two == [("report", "r.csv"), ("heatmap", "heat_a.png"), ("heatmap", "heat_b.png")]


def test_pixel_zones_are_checked_against_a_known_frame_size() -> None:
    opts = AnalyticsOptions(zone=["door:10,10,600,10,600,200"])
    assert opts.build(names=NAMES, image_hw=(480, 640)) is not None
    with pytest.raises(ConfigError, match=r"point \(600, 10\) lies outside the 320x240 frame"):
        opts.build(names=NAMES, image_hw=(240, 320), source="clip.mp4")
    assert opts.build(names=NAMES) is not None  # unknown size: checked at the first frame
    with pytest.raises(ConfigError, match="'cow' is not a class"):
        AnalyticsOptions(blur="cow").build(names=NAMES)


def test_probe_frame_hw(tmp_path: Path) -> None:
    image = tmp_path / "a.png"
    cv2.imwrite(str(image), np.zeros((30, 50, 3), np.uint8))
    video = tmp_path / "v.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 5.0, (64, 48))
    for _ in range(2):
        writer.write(np.zeros((48, 64, 3), np.uint8))
    writer.release()
    assert probe_frame_hw(str(image)) == (30, 50)
    assert probe_frame_hw(str(video)) == (48, 64)
    assert probe_frame_hw("0") is None and probe_frame_hw("rtsp://cam/live") is None
    assert probe_frame_hw(str(tmp_path)) is None


def test_finish_writes_the_report_only_after_a_frame(tmp_path: Path) -> None:
    opts = AnalyticsOptions(zone=["top:0,0,1,0,1,0.5"], report=tmp_path / "r.json")
    idle = opts.build(names=NAMES, tag="idle")
    assert finish_analytics([idle, None], opts.report) == [] and not (tmp_path / "r.json").exists()
    seen = opts.build(names=NAMES, fps=10, tag="cam")
    assert seen is not None
    seen.update(Frame(0, np.zeros((40, 40, 3), np.uint8), 0.0, "cam"), FrameResult.empty(0, (40, 40)))
    assert finish_analytics([seen], opts.report) == [tmp_path / "r.json"]
    assert json.loads((tmp_path / "r.json").read_text())["sources"][0]["frames"] == 1
