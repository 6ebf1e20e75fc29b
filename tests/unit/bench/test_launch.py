"""The launch-to-first-frame timer of ``rtseg bench`` on stand-in commands (the real one: tests/integration)."""

from __future__ import annotations

import sys
from pathlib import Path

from rtseg.bench.launch import launch_to_first_frame, run_command


def test_first_line_marks_the_first_frame_and_exit_comes_after() -> None:
    slow_exit = [sys.executable, "-c", "import time; print('{}', flush=True); time.sleep(0.4)"]
    got = launch_to_first_frame(slow_exit, repeats=2)
    assert got["runs"] == 2 and got["exit_s"] - got["first_frame_s"] >= 0.35


def test_a_failing_run_gives_its_last_error_line_not_a_figure() -> None:
    failing = [sys.executable, "-c", "import sys; sys.stderr.write('noise\\nrtseg: bad model\\n'); sys.exit(2)"]
    got = launch_to_first_frame(failing)
    assert got["error"] == "rtseg: bad model" and "first_frame_s" not in got


def test_the_command_runs_one_frame_of_the_configuration() -> None:
    command = run_command(model="m.onnx", source=Path("clip.mp4"), imgsz=320, backend="onnxruntime", device="cpu",
                          half=False, workers=2, precision="int8", calib="calib/")
    text = " ".join(command[3:])
    assert text.startswith("run clip.mp4 --model m.onnx") and "--max-frames 1 --jsonl - -q" in text
    assert "--imgsz 320" in text and "--workers 2" in text and "--precision int8 --calib calib/" in text
