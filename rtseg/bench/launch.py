"""Time to the first frame as a user waits for it: a fresh ``rtseg run`` process, from launch to its first
segmented frame out (imports, the model loaded from the cache, the source opened, one frame).

``rtseg bench`` measures every configuration this way beside its in-process figure (which starts with the
libraries already imported): ``rtseg run SOURCE --max-frames 1 --jsonl -`` is launched ``repeats`` times and
the first JSONL line on its standard output marks the first frame.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path


def run_command(*, model: str, source: Path, imgsz: int | None, backend: str, device: str, half: bool,
                workers: int | None, precision: str, calib: str | None, semantic: str = "") -> list[str]:
    """The ``rtseg run`` command line that runs one frame of ``source`` as a benchmarked configuration."""
    command = [sys.executable, "-m", "rtseg.cli", "run", str(source), "--model", model, "--backend", backend,
               "--device", device, "--max-frames", "1", "--jsonl", "-", "-q"]
    if semantic:
        command += ["--semantic", semantic]
    if imgsz:
        command += ["--imgsz", str(imgsz)]
    if half:
        command.append("--half")
    if workers:
        command += ["--workers", str(workers)]
    if precision != "fp32":
        command += ["--precision", precision] + (["--calib", calib] if calib else [])
    return command


def launch_to_first_frame(command: list[str], *, repeats: int = 3, timeout: float = 300) -> dict:
    """Median seconds from launching ``command`` to its first line on standard output, and to its exit.

    Returns ``{"first_frame_s", "exit_s", "runs", "command"}``, or ``{"error": ...}`` (the run's last line on
    standard error) when it fails: a benchmark row then says so instead of a figure.
    """
    firsts, exits = [], []
    for _ in range(repeats):
        started = time.perf_counter()
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert proc.stdout is not None
        line = proc.stdout.readline()
        first = time.perf_counter() - started
        try:
            _, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            return {"error": f"no exit within {timeout:g} s", "command": command[3:]}
        if proc.returncode != 0 or not line.strip():
            last = (err.strip().splitlines() or [f"exit code {proc.returncode}"])[-1]
            return {"error": last[:300], "command": command[3:]}
        firsts.append(first)
        exits.append(time.perf_counter() - started)
    return {"first_frame_s": round(statistics.median(firsts), 3), "exit_s": round(statistics.median(exits), 3),
            "runs": repeats, "command": command[3:]}
