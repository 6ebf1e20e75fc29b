"""Live streams that go down and come back, through the real CLI: FFmpeg servers on 127.0.0.1 (MPEG-TS over TCP,
over FFmpeg's own HTTP server with a file-like ``live.ts`` name, and over UDP) are killed, frozen and restarted
under a running ``rtseg run``; it must come back each time, and every frame it received must be written."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO

import pytest

from rtseg.pipeline.assemble import Outputs, stream_outputs
from rtseg.sinks.atomic import partial_path
from tests.streams_support import PROTOCOLS, StreamServer
from tests.support import NONET, count_frames

STALL_S = 2.0
OUTAGE_S = 3.0  # longer than the stall timeout: a vanished UDP sender is noticed (a shorter gap is no outage)


def _start_cli(*args: str, err: IO[str]) -> subprocess.Popen:
    """The real CLI, network blocked, its stderr to a file (a pipe nobody reads could fill and block it)."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(NONET), os.environ.get("PYTHONPATH")])))
    return subprocess.Popen([sys.executable, "-m", "rtseg.cli", *args], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=err, env=env)


def _lines(path: Path) -> int:
    for candidate in (path, partial_path(path)):
        if candidate.exists():
            return len(candidate.read_text().splitlines())
    return 0


def _wait(condition: Callable[[], bool], proc: subprocess.Popen, log: Path, what: str, timeout: float = 45) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        if condition():
            return
        time.sleep(0.1)
    proc.kill()
    proc.wait()
    pytest.fail(f"{what} (exit {proc.returncode}): {log.read_text()[-3000:]}")


def test_streams_come_back_after_every_outage_and_every_frame_received_is_written(video30: Path,
                                                                                   tmp_path: Path) -> None:
    """Three streams in one run. Round 1: every server killed (TCP and HTTP: the connection drops; UDP: the
    sender vanishes, a stall). Round 2: TCP and HTTP frozen (SIGSTOP: connected, silent: the stall watchdog),
    UDP killed. Each time the servers come back on the same ports, and so must every stream."""
    servers = [StreamServer(video30, protocol).start() for protocol in PROTOCOLS]
    urls = [s.url for s in servers]
    outputs = stream_outputs(urls, Outputs(out=tmp_path / "live.mp4", jsonl=tmp_path / "live.jsonl"))
    jsonls = [o.jsonl for o in outputs]
    log = tmp_path / "stderr.txt"
    try:
        with log.open("w") as err:
            proc = _start_cli("run", *urls, "--out", str(tmp_path / "live.mp4"), "--jsonl",
                              str(tmp_path / "live.jsonl"), "--stall-timeout", str(STALL_S), "--workers", "1", err=err)
            _wait(lambda: all(_lines(j) >= 3 for j in jsonls), proc, log, "no frames from the streams")
            for round_ in ("killed", "frozen"):
                for server in servers:
                    server.freeze() if round_ == "frozen" and server.protocol != "udp" else server.kill()
                time.sleep(OUTAGE_S)
                before = [_lines(j) for j in jsonls]
                for server in servers:
                    server.kill()  # a frozen TCP or HTTP server has its one client still: it must start afresh
                    server.start()
                _wait(lambda b=before: all(_lines(j) >= n + 3 for j, n in zip(jsonls, b)), proc, log,
                      f"a stream did not come back after the servers were {round_}")
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=60)
    finally:
        for server in servers:
            server.kill()
        if "proc" in locals() and proc.poll() is None:
            proc.kill()
    text = log.read_text()
    assert proc.returncode == 130, text[-3000:]
    assert "Traceback" not in text and "Segmentation fault" not in text, text[-3000:]
    for url in urls:
        assert len(re.findall(rf"stream {re.escape(url)} is back after", text)) >= 2, text[-3000:]
        stalls = len(re.findall(rf"stream {re.escape(url)}: no frame for {STALL_S:g} s; reopening", text))
        assert stalls >= (2 if url.startswith("udp") else 1), text[-3000:]  # the watchdog saw the silences
    summary = {m[1]: int(m[2]) for m in re.finditer(r"^\s+(\S+): (\d+) frames", text, re.M)}
    for url, own in zip(urls, outputs):
        records = [json.loads(line) for line in own.jsonl.read_text().splitlines()]
        assert len(records) == summary[url], f"{url}: {len(records)} records, summary says {summary[url]}"
        indices = [r["frame"] for r in records]
        assert indices == sorted(set(indices)) and all(r["source"] == url for r in records)
        assert count_frames(own.out) == (len(records), (240, 320)), url  # finalized, every frame written


def test_a_stream_that_stays_down_is_given_up_after_the_attempts_asked_for(video30: Path, tmp_path: Path) -> None:
    """``--reconnect 2``: the server is killed for good; the run ends by itself, exit 2, one error line last,
    outputs complete (the default is to retry forever)."""
    jsonl, out = tmp_path / "x.jsonl", tmp_path / "x.mp4"
    with StreamServer(video30, "tcp") as server:
        log = tmp_path / "stderr.txt"
        with log.open("w") as err:
            proc = _start_cli("run", server.url, "--reconnect", "2", "--jsonl", str(jsonl), "--out", str(out),
                              err=err)
            _wait(lambda: _lines(jsonl) >= 3, proc, log, "no frames from the stream")
            server.kill()
            t0 = time.monotonic()
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                pytest.fail(f"never gave up: {log.read_text()[-3000:]}")
    text = log.read_text()
    assert proc.returncode == 2, text[-3000:]
    assert time.monotonic() - t0 < 15, "giving up took long: the back-off starts at 0.1 s"
    records = len(jsonl.read_text().splitlines())
    last = [line for line in text.splitlines() if line.strip()][-1]
    assert last == (f"rtseg: error: stream {server.url}: gave up after 2 reconnect attempts; outputs are complete "
                    f"({records} frames)"), text[-3000:]
    assert count_frames(out) == (records, (240, 320))
