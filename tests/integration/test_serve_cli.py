"""``rtseg run SRC --serve`` as a user runs it: the real CLI, its progress bar on a terminal, on a real loopback
stream; the view read with http.client while it runs (token, MJPEG, snapshot, stats, a bad request), then
Ctrl-C ends the run and the server with it."""

from __future__ import annotations

import http.client
import json
import signal
import socket
import time
from pathlib import Path

import cv2
import numpy as np

from tests.events_support import WebhookServer
from tests.support import free_port, read_tty, run_cli, spawn_cli_tty

TOKEN = "s3cret-token"


def _get(port: int, path: str, token: str | None = TOKEN) -> tuple[int, bytes, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("GET", path, headers={"Authorization": f"Bearer {token}"} if token else {})
    resp = conn.getresponse()
    body = resp.read()
    conn.close()
    return resp.status, body, resp.getheader("Content-Type", "")


def _wait_for_source(port: int, proc, timeout: float = 120) -> dict:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            status, body, _ = _get(port, "/stats.json")
            stats = json.loads(body) if status == 200 else {}
            if any(s.get("frames", 0) >= 5 for s in stats.get("sources", {}).values()):
                return stats
        except OSError:
            pass
        time.sleep(0.3)
    raise AssertionError(f"the view at port {port} never showed frames (exit {proc.poll()})")


def _mjpeg_frames(port: int, path: str, n: int) -> list[np.ndarray]:
    """The first ``n`` JPEG parts of a multipart MJPEG response, decoded."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("GET", path, headers={"Authorization": f"Bearer {TOKEN}"})
    resp = conn.getresponse()
    assert resp.status == 200
    kind = resp.getheader("Content-Type", "")
    assert kind.startswith("multipart/x-mixed-replace"), kind
    boundary = kind.split("boundary=")[1].strip().encode()
    data, images = b"", []
    while len(images) < n:
        data += resp.read1(65536)
        while (start := data.find(b"\xff\xd8")) >= 0 and (end := data.find(b"\xff\xd9", start)) >= 0:
            assert b"--" + boundary in data[:start], "a JPEG part came without the multipart boundary"
            images.append(cv2.imdecode(np.frombuffer(data[start:end + 2], np.uint8), cv2.IMREAD_COLOR))
            data = data[end + 2:]
    conn.close()
    return images


def test_run_serve_on_a_live_stream_then_ctrl_c(tcp_stream: str, tmp_path: Path) -> None:
    port, jsonl = free_port(), tmp_path / "live.jsonl"
    proc, tty = spawn_cli_tty("run", tcp_stream, "--imgsz", "320", "--serve", f"127.0.0.1:{port}",
                              "--serve-token", TOKEN, "--jsonl", str(jsonl), "--out", str(tmp_path / "live.mp4"))
    try:
        stats = _wait_for_source(port, proc)
        (tag, source), = stats["sources"].items()
        assert source["live"] and "serve" in source["stages_ms"] and source["fps"] > 0
        assert tcp_stream not in json.dumps(stats)  # the page and its data name sources, never their addresses

        assert _get(port, "/stats.json", token=None)[0] == 401
        assert _get(port, "/stats.json", token="wrong")[0] == 401
        status, page, kind = _get(port, "/")
        assert status == 200 and kind.startswith("text/html") and tag in page.decode()
        assert tcp_stream.encode() not in page and str(tmp_path).encode() not in page

        frames = _mjpeg_frames(port, f"/stream/{tag}.mjpg?height=120&fps=10", 3)
        assert all(f is not None and f.shape[0] == 120 for f in frames)
        status, snap, kind = _get(port, f"/frame/{tag}.jpg")
        assert status == 200 and kind == "image/jpeg"
        assert cv2.imdecode(np.frombuffer(snap, np.uint8), cv2.IMREAD_COLOR).shape[:2] == (240, 320)

        for bad in (f"/stream/{tag}.mjpg?fps=abc", "/stream/nope.mjpg", "/frame/../../etc/passwd", "/nothing"):
            status, body, _ = _get(port, bad)
            assert 400 <= status < 500, (bad, status)
            assert b"Traceback" not in body and str(tmp_path).encode() not in body
        before = _wait_for_source(port, proc)["sources"][tag]["frames"]
        time.sleep(1.5)
        assert proc.poll() is None, "a bad request ended the run"
        assert _wait_for_source(port, proc)["sources"][tag]["frames"] > before, "the run stalled after bad requests"
    finally:
        proc.send_signal(signal.SIGINT)  # Ctrl-C
        proc.wait(timeout=60)
    terminal = read_tty(tty, proc)
    assert proc.returncode == 130, terminal
    assert f"live view at http://127.0.0.1:{port}/" in terminal and "Traceback" not in terminal
    assert "stopped after" in terminal and "frame/s]" in terminal  # the progress bar drew
    assert len(jsonl.read_text().splitlines()) >= 5
    with socket.socket() as probe:  # the server ended with the run
        assert probe.connect_ex(("127.0.0.1", port)) != 0


def test_serve_on_a_port_in_use_is_one_line_before_anything_loads(tcp_stream: str, tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        out = tmp_path / "never.mp4"
        result = run_cli("run", tcp_stream, "--serve", f"127.0.0.1:{port}", "--out", str(out), timeout=120)
    assert result.returncode == 2, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("rtseg: error:")]
    assert len(errors) == 1 and str(port) in errors[0], result.stderr
    assert "Traceback" not in result.stderr and not out.exists()


def test_the_view_reports_the_event_outputs_counts(tcp_stream: str, tmp_path: Path) -> None:
    """/stats.json carries each event output's sent and dropped records while the run goes on."""
    port = free_port()
    with WebhookServer() as hook:
        proc, tty = spawn_cli_tty("run", tcp_stream, "--imgsz", "320", "--serve", f"127.0.0.1:{port}", "--serve-token",
                                  TOKEN, "--webhook", hook.url, "--every", "2")
        try:
            _wait_for_source(port, proc)
            deadline, outputs = time.monotonic() + 60, {}
            while time.monotonic() < deadline and outputs.get("webhook", {}).get("sent", 0) < 3:
                outputs = json.loads(_get(port, "/stats.json")[1])["outputs"]
                time.sleep(0.3)
            assert outputs["webhook"]["sent"] >= 3 and outputs["webhook"]["dropped"] == 0, outputs
        finally:
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=60)
        terminal = read_tty(tty, proc)
    assert proc.returncode == 130, terminal
    assert "webhook: " in terminal and len(hook.records) >= 3
