"""Frame sampling for ``rtseg label``: every N-th, at most N, one per scene."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from rtseg.errors import ConfigError, SourceError
from rtseg.label.frames import planned_frames, sample_frames


def _three_scenes(path: Path) -> Path:
    """15 frames: 5 dark with a drifting square, 5 bright, 5 dark again (two cuts)."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (160, 90))
    for i in range(15):
        level = 200 if 5 <= i < 10 else 40
        image = np.full((90, 160, 3), level, np.uint8)
        cv2.rectangle(image, (10 + 2 * i, 20), (40 + 2 * i, 50), (level // 2, 90, 160), -1)
        writer.write(image)
    writer.release()
    return path


def test_one_frame_per_scene(tmp_path: Path) -> None:
    clip = _three_scenes(tmp_path / "cuts.avi")
    picked = list(sample_frames(clip, scene_threshold=30))
    assert [f.frame_index for f in picked] == [0, 5, 10]
    assert [f.name for f in picked] == ["cuts_000000", "cuts_000005", "cuts_000010"]
    assert [f.frame_index for f in sample_frames(clip, every=4, max_frames=3)] == [0, 4, 8]
    assert planned_frames(clip, every=4) == 4 and planned_frames(clip, every=4, max_frames=3) == 3
    assert planned_frames(clip, scene_threshold=30) is None


def test_image_folder_keeps_names_and_files(tmp_path: Path) -> None:
    for name in ("b", "a", "c"):
        cv2.imwrite(str(tmp_path / f"{name}.png"), np.zeros((8, 8, 3), np.uint8))
    picked = list(sample_frames(tmp_path, every=2))
    assert [(f.name, f.file.name) for f in picked] == [("a", "a.png"), ("c", "c.png")]


@pytest.mark.parametrize(("kwargs", "error"), [
    ({"every": 0}, ConfigError), ({"max_frames": 0}, ConfigError), ({"scene_threshold": -1}, ConfigError),
    ({"every": 2, "scene_threshold": 30}, ConfigError), ({"source": "0"}, SourceError),
    ({"source": "missing.mp4"}, SourceError),
])
def test_bad_sampling_is_refused(tmp_path: Path, kwargs: dict, error: type) -> None:
    source = kwargs.pop("source", str(_three_scenes(tmp_path / "c.avi")))
    with pytest.raises(error):
        list(sample_frames(source, **kwargs))
