"""Output files rotated every so long (``--segment``), and the live video that plays at any moment."""

from __future__ import annotations

import json

import numpy as np
import pytest

from rtseg.errors import ConfigError
from rtseg.sinks import JsonlSink, VideoFileSink
from rtseg.sinks.segments import SegmentedSink, parse_duration, segment_path
from rtseg.types import Frame
from tests.fakes import make_result
from tests.support import count_frames


@pytest.mark.parametrize(("text", "seconds"), [("90s", 90), ("10m", 600), ("1h", 3600), ("45", 45), ("2.5m", 150),
                                               (30, 30), ("10 min", 600)])
def test_parse_duration(text, seconds) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "ten", "10x", "-5m", "0.5", "0s"])
def test_parse_duration_refuses_what_is_not_a_duration_of_a_second_or_more(text) -> None:
    with pytest.raises(ConfigError, match=r"^segment="):
        parse_duration(text)


def _frames(n: int, fps: float) -> list[Frame]:
    return [Frame(i, np.full((48, 64, 3), (i * 7) % 255, np.uint8), i / fps) for i in range(n)]


def test_segmented_video_and_jsonl_split_every_n_seconds_and_lose_no_frame(tmp_path) -> None:
    fps, result = 10.0, make_result(hw=(48, 64))
    video = SegmentedSink(tmp_path / "out.mp4", 2.0, lambda p: VideoFileSink(p, fps=fps, preset="ultrafast"))
    jsonl = SegmentedSink(tmp_path / "out.jsonl", 2.0, lambda p: JsonlSink(p, ("person",)))
    for frame in _frames(45, fps):  # 4.5 s: parts of 2 s, 2 s and 0.5 s
        video.write(frame, None, result)
        jsonl.write(frame, None, result)
    video.close()
    jsonl.close()
    assert [p.name for p in video.parts] == ["out_000.mp4", "out_001.mp4", "out_002.mp4"]
    assert [count_frames(p)[0] for p in video.parts] == [20, 20, 5]
    records = [[json.loads(line) for line in p.read_text().splitlines()] for p in jsonl.parts]
    assert [len(part) for part in records] == [20, 20, 5]
    assert not (tmp_path / "out.mp4").exists() and video.needs_image and not jsonl.needs_image


def test_segment_path() -> None:
    from pathlib import Path

    assert segment_path(Path("a/cam.mp4"), 12) == Path("a/cam_012.mp4")


def test_live_video_plays_while_it_is_written_and_after_a_cut(tmp_path) -> None:
    """From a live source the video is fragmented MP4 under its final name: a copy taken mid-run (what a crash
    leaves) plays up to less than a second before the cut; a file source's video is written as before."""
    path = tmp_path / "live.mp4"
    sink = VideoFileSink(path, fps=10.0, preset="ultrafast", live=True)
    result = make_result(hw=(48, 64))
    for frame in _frames(40, 10.0):
        sink.write(frame, None, result)
        if frame.index == 29:
            (tmp_path / "cut.mp4").write_bytes(path.read_bytes())  # the file as a SIGKILL would leave it
    sink.close()
    assert count_frames(path)[0] == 40
    played = count_frames(tmp_path / "cut.mp4")[0]
    assert 30 - 10 <= played <= 30, played  # at most one second (10 frames) short of the 30 written


def test_file_source_video_is_not_readable_before_it_is_finalized(tmp_path) -> None:
    path = tmp_path / "file.mp4"
    sink = VideoFileSink(path, fps=10.0, preset="ultrafast")
    for frame in _frames(5, 10.0):
        sink.write(frame, None, make_result(hw=(48, 64)))
    assert not path.exists()  # written under a temporary name, renamed once complete
    sink.close()
    assert count_frames(path)[0] == 5
