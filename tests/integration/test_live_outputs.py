"""A live run's files, through the real CLI on a real loopback stream: they play while the run goes on and
after it is killed, and ``--segment`` rotates them without losing a frame."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.support import count_frames


def _start(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "rtseg.cli", "run", *args], stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _records(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0


def _wait_records(path: Path, n: int, proc: subprocess.Popen, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None and _records(path) < n:
        time.sleep(0.1)
    assert proc.poll() is None, proc.communicate()[1]


def test_a_killed_live_run_leaves_a_video_that_plays_up_to_its_last_second(tcp_stream: str, tmp_path: Path) -> None:
    """SIGKILL finalizes nothing: the fragmented MP4 under its final name still plays, up to within a second
    (15 frames of this stream) of the last JSONL record."""
    out, jsonl = tmp_path / "live.mp4", tmp_path / "live.jsonl"
    proc = _start(tcp_stream, "--out", str(out), "--jsonl", str(jsonl))
    _wait_records(jsonl, 40, proc)
    proc.kill()
    proc.communicate(timeout=30)
    records, (frames, hw) = _records(jsonl), count_frames(out)
    assert hw == (240, 320) and records - 15 <= frames <= records, (frames, records)


def test_segment_rotates_the_live_video_and_jsonl_without_losing_a_frame(tcp_stream: str, tmp_path: Path) -> None:
    out, jsonl = tmp_path / "cam.mp4", tmp_path / "cam.jsonl"
    proc = _start(tcp_stream, "--out", str(out), "--jsonl", str(jsonl), "--segment", "1s")
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and proc.poll() is None and not (tmp_path / "cam_002.jsonl").exists():
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    videos, parts = sorted(tmp_path.glob("cam_*.mp4")), sorted(tmp_path.glob("cam_*.jsonl"))
    assert len(videos) >= 3 and [p.stem for p in videos] == [p.stem for p in parts]
    assert not out.exists() and not jsonl.exists()
    per_part = [_records(p) for p in parts]
    assert [count_frames(v)[0] for v in videos] == per_part
    assert all(n >= 10 for n in per_part[:-1])  # a second of a 15 fps stream, give or take dropped frames
    indices = [json.loads(line)["frame"] for p in parts for line in p.read_text().splitlines()]
    assert indices == sorted(indices) and len(set(indices)) == len(indices)
    for path in [*videos, *parts]:
        assert f"wrote {path}" in err
