"""Live sources through the real CLI, with its progress bar on a terminal, as a user runs them."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

from tests.streams_support import StreamServer
from tests.support import count_frames, read_tty, spawn_cli_tty


def _wait_for_lines(path: Path, n: int, proc, timeout: float = 90) -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        if _count(path) >= n:
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
    assert "frame/s]" in terminal  # the progress bar drew on the terminal (a live source has no total)
    records = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert len(records) >= 5 and all(r["source"] == tcp_stream for r in records)
    # the frames the server sent while the model loaded are skipped, said, and leave no gap in the indices
    assert "buffered before the start skipped" in terminal, terminal
    assert [r["frame"] for r in records] == list(range(len(records)))
    frames, hw = count_frames(out)
    assert frames == len(records) and hw == (240, 320)


def test_an_outage_on_the_terminal_is_one_line_down_and_one_back(video30: Path, tmp_path: Path) -> None:
    """FFmpeg's own HTTP server (a ``live.ts`` name, no length: a live stream, not a file that ended) is killed
    for 2.5 s (a dozen reconnect attempts) and comes back: the user sees one warning when it drops and one when
    it is back, with how long it was down, the progress bar going on; every frame received is written."""
    jsonl, out = tmp_path / "live.jsonl", tmp_path / "live.mp4"
    with StreamServer(video30, "http") as server:
        proc, tty = spawn_cli_tty("run", server.url, "--jsonl", str(jsonl), "--out", str(out))
        _wait_for_lines(jsonl, 5, proc)
        assert proc.poll() is None, "rtseg exited before its first frames from a live stream"
        server.kill()
        time.sleep(2.5)
        before = _count(jsonl)
        server.start()
        _wait_for_lines(jsonl, before + 5, proc)
        assert proc.poll() is None, "rtseg ended when the HTTP stream dropped, as if a file had ended"
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)
        terminal = read_tty(tty, proc)
    assert proc.returncode == 130, terminal
    assert terminal.count(f"stream {server.url} dropped; reconnecting") == 1, terminal
    assert terminal.count(f"stream {server.url} is back after") == 1, terminal
    assert "attempt " not in terminal.replace("attempts)", "")  # no line per attempt (those are --verbose)
    records = _count(jsonl)
    assert records >= before + 5 and count_frames(out) == (records, (240, 320))


def _count(path: Path) -> int:
    from rtseg.sinks.atomic import partial_path

    for candidate in (path, partial_path(path)):
        if candidate.exists():
            return len(candidate.read_text().splitlines())
    return 0
