"""`rtseg run` options as a user types them: --track alone, the HUD's default, the bundled-model hint."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from tests.support import run_cli, write_video


def _first_frame(path: Path) -> np.ndarray:
    cap = cv2.VideoCapture(str(path))
    ok, frame = cap.read()
    cap.release()
    assert ok
    return frame.astype(np.int16)


def test_track_alone_means_bytetrack_and_does_not_swallow_the_source(tmp_path: Path) -> None:
    video = write_video(tmp_path / "clip.avi", frames=8)
    jsonl = tmp_path / "t.jsonl"
    proc = run_cli("run", "--track", str(video), "--jsonl", str(jsonl), "--conf", "0.01", "-q")
    assert proc.returncode == 0, proc.stderr
    records = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert len(records) == 8
    assert any("track_id" in d for r in records for d in r["detections"])
    proc = run_cli("run", str(video), "--jsonl", str(jsonl), "-q", "--track")  # last on the line
    assert proc.returncode == 0, proc.stderr
    proc = run_cli("run", str(video), "--jsonl", str(jsonl), "--track", "sort")
    assert proc.returncode == 2 and "--track 'sort'" in proc.stderr and "Traceback" not in proc.stderr


def test_hud_is_not_burned_into_a_written_video_unless_asked(tmp_path: Path) -> None:
    video = write_video(tmp_path / "clip.avi", frames=3, size_wh=(320, 240))
    source = _first_frame(video)
    plain, hud = tmp_path / "plain.avi", tmp_path / "hud.avi"
    for out, extra in ((plain, []), (hud, ["--hud"])):  # conf 1.0: nothing detected, so only a HUD can differ
        proc = run_cli("run", str(video), "--out", str(out), "--conf", "1.0", "-q", *extra)
        assert proc.returncode == 0, proc.stderr
    corner = (slice(0, 30), slice(0, 160))
    assert np.abs(_first_frame(plain)[corner] - source[corner]).mean() < 6  # MJPEG noise only
    assert np.abs(_first_frame(hud)[corner] - source[corner]).mean() > 20


def test_bundled_model_run_says_how_to_get_80_classes(tmp_path: Path) -> None:
    video = write_video(tmp_path / "clip.avi", frames=2)
    proc = run_cli("run", str(video), "--jsonl", str(tmp_path / "x.jsonl"))
    assert proc.returncode == 0, proc.stderr
    assert "--model yolo26n-seg.pt" in proc.stderr
    proc = run_cli("run", str(video), "--jsonl", str(tmp_path / "x.jsonl"), "--model",
                   str(Path(__file__).parents[1] / "assets" / "yolo11n-seg-coco128.pt"))
    assert proc.returncode == 0 and "yolo26n-seg.pt" not in proc.stderr
