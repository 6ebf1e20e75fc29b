"""``--jsonl -``: JSON Lines to standard output, each record flushed as written (a pipe reader sees frames as
they come), byte for byte what a file gets, and a reader that goes away is one SinkError line, no traceback."""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
from pathlib import Path

import pytest

from rtseg.errors import SinkError
from rtseg.sinks.jsonl import JsonlSink, is_stdout
from tests.events_support import detections, frame_of
from tests.support import ROOT

# The child process: a JsonlSink("-") writing frames; with "step", it waits for a line on stdin before each
# frame after the first, so the parent can check each record arrives before the next is written.
CHILD = """
import sys
from rtseg.errors import RtsegError
from rtseg.sinks.jsonl import JsonlSink
from tests.events_support import detections, frame_of

mode, count = sys.argv[1], int(sys.argv[2])
sink = JsonlSink("-", ("person", "cat", "dog"))
try:
    for i in range(count):
        if mode == "step" and i:
            sys.stdin.readline()
        result = detections(i, [i % 3])
        sink.write(frame_of(result, source="cam"), None, result)
    sink.close()
except RtsegError as exc:
    print(f"rtseg: error: {exc}", file=sys.stderr)
    sys.exit(2)
"""


def spawn(tmp_path: Path, mode: str, count: int) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    env.pop("PYTHONUNBUFFERED", None)  # standard output buffered, as in a user's shell: only a flush sends a line
    return subprocess.Popen([sys.executable, "-c", CHILD, mode, str(count)], cwd=tmp_path, env=env,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def read_line(proc: subprocess.Popen, timeout: float = 30.0) -> bytes:
    """One line from the child's stdout, failing if it does not come within ``timeout`` (it was held back)."""
    line = b""
    while not line.endswith(b"\n"):
        ready, _, _ = select.select([proc.stdout], [], [], timeout)
        assert ready, f"no complete line on stdout within {timeout:g} s (got {line!r}): the record was not flushed"
        chunk = os.read(proc.stdout.fileno(), 1)
        assert chunk, f"stdout closed after {line!r}; stderr: {proc.stderr.read().decode()}"
        line += chunk
    return line


def test_each_record_reaches_the_pipe_before_the_next_frame_is_written(tmp_path) -> None:
    proc = spawn(tmp_path, "step", 3)
    try:
        lines = []
        for _ in range(3):
            lines.append(read_line(proc))  # the child is now waiting: only a flush got this line here
            proc.stdin.write(b"go\n")
            proc.stdin.flush()
        rest, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 0, err.decode()
    assert rest == b""  # nothing else on stdout
    records = [json.loads(line) for line in lines]
    assert [r["frame"] for r in records] == [0, 1, 2] and records[1]["detections"][0]["class_name"] == "cat"
    assert not (tmp_path / "-").exists()  # no file named "-"


def test_stdout_gets_byte_for_byte_what_a_file_gets(tmp_path) -> None:
    proc = spawn(tmp_path, "all", 5)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err.decode()
    sink = JsonlSink(tmp_path / "same.jsonl", ("person", "cat", "dog"))
    for i in range(5):
        result = detections(i, [i % 3])
        sink.write(frame_of(result, source="cam"), None, result)
    sink.close()
    assert out == (tmp_path / "same.jsonl").read_bytes()


def test_a_reader_that_goes_away_is_one_error_line_and_no_traceback(tmp_path) -> None:
    proc = spawn(tmp_path, "all", 100000)
    try:
        read_line(proc)
        proc.stdout.close()  # `rtseg run ... --jsonl - | head -1`: head exits after one line
        err = proc.stderr.read().decode()
        proc.wait(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 2
    assert err == "rtseg: error: jsonl=-: the program reading standard output went away (broken pipe)\n"


def test_a_closed_stdout_is_a_sink_error(monkeypatch) -> None:
    import io

    stream = io.BytesIO()
    monkeypatch.setattr(sys, "stdout", io.TextIOWrapper(stream))
    sink = JsonlSink("-", ("person",))
    stream.close()
    result = detections(0, [0])
    with pytest.raises(SinkError, match=r"^jsonl=-: cannot write to standard output: "):
        sink.write(frame_of(result), None, result)


@pytest.mark.parametrize(("path", "expected"), [("-", True), (Path("-"), True), ("./-", False), ("x.jsonl", False),
                                                (None, False)])
def test_is_stdout(path, expected) -> None:
    assert is_stdout(path) is expected
