"""Live sources through the real CLI, with its progress bar on a terminal, as a user runs them."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

from tests.support import count_frames, read_tty, spawn_cli_tty


def _wait_for_lines(path: Path, n: int, proc, timeout: float = 90) -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        if path.exists() and len(path.read_text().splitlines()) >= n:
            return
        time.sleep(0.1)


def test_live_stream_with_progress_bar_then_ctrl_c_finalizes_outputs(tcp_stream: str, tmp_path: Path) -> None:
    jsonl, out = tmp_path / "live.jsonl", tmp_path / "live.mp4"
    proc, tty = spawn_cli_tty("run", tcp_stream, "--jsonl", str(jsonl), "--out", str(out))
    _wait_for_lines(jsonl, 5, proc)
    assert proc.poll() is None, "rtseg exited before its first frames from a live stream"
    proc.send_signal(signal.SIGINT)  # Ctrl-C
    proc.wait(timeout=60)
    terminal = read_tty(tty, proc)
    assert proc.returncode == 130, terminal
    assert "Traceback" not in terminal and "stopped after" in terminal
    assert "frame" in terminal  # the progress bar drew on the terminal (a live source has no total)
    records = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert len(records) >= 5 and all(r["source"] == tcp_stream for r in records)
    frames, hw = count_frames(out)
    assert frames == len(records) and hw == (240, 320)
