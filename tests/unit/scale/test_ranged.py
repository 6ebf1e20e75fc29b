"""rtseg.scale.ranged: a part of a video file read as ``rtseg run`` reads the whole file, reached by a seek that
is checked against the container's timestamps, or by decoding from the start when the check fails."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from rtseg.scale.ranged import RangeSource
from rtseg.scale.split import probe_video
from tests.support import write_video


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_video(tmp_path_factory.mktemp("ranged") / "clip.mp4", frames=40, size_wh=(160, 120))


def _all_frames(path: Path) -> list[np.ndarray]:
    capture, frames = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG), []
    while True:
        ok, frame = capture.read()
        if not ok:
            capture.release()
            return frames
        frames.append(frame)


def _read(source: RangeSource) -> list[np.ndarray]:
    frames = []
    while (frame := source.read()) is not None:
        frames.append(frame)
    source.close()
    return frames


def test_the_driver_reads_each_frames_timestamp_as_opencv_reports_it(clip: Path) -> None:
    frames, fps, times = probe_video(str(clip))
    assert (frames, fps) == (40, 15.0) and times is not None and len(times) == 40
    capture, seen = cv2.VideoCapture(str(clip), cv2.CAP_FFMPEG), []
    while capture.read()[0]:
        seen.append(capture.get(cv2.CAP_PROP_POS_MSEC))
    assert np.allclose(times, seen, atol=0.5)
    assert probe_video("rtsp://cam/live") is None and probe_video(str(clip.with_name("missing.mp4"))) is None


@pytest.mark.parametrize(("first_ms", "how"), [(None, "seek"), (1e6, "decode"), (-1.0, "decode")])
def test_a_part_holds_the_same_frames_however_it_was_reached(clip: Path, first_ms: float | None, how: str) -> None:
    whole = _all_frames(clip)
    times = probe_video(str(clip))[2]
    source = RangeSource(str(clip), 17, 10, times[17] if first_ms is None else first_ms)
    assert source.seek == how and source.fps == 15.0
    part = _read(source)
    assert len(part) == 10 and all(np.array_equal(a, b) for a, b in zip(part, whole[17:27]))


def test_the_last_part_reads_to_the_end(clip: Path) -> None:
    part = _read(RangeSource(str(clip), 35, None, probe_video(str(clip))[2][35]))
    assert len(part) == 5
