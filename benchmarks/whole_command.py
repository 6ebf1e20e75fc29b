"""The whole command, start-up included: ``rtseg run`` against Ultralytics' ``yolo predict`` on a short clip.

A user with a short clip waits for the whole process: imports, model load, every frame, the video written.
Both commands run on the same 90-frame 720p clip (the first 90 frames of the crowd clip), the same weights
(rtseg's bundled person/cat/dog model) and the same imgsz, each writing an annotated video, launch to exit.
Runs alternate (rtseg, Ultralytics, rtseg, ...) so load from other processes hits both alike; the ratio is
the median of the pairwise ratios. ``rtseg run --precision int8`` (its INT8 copy cached by a first run) is a
third row. Caches are warm for all: one untimed run of each first (ONNX export, INT8 copy, OS file cache).

Usage:
    python benchmarks/whole_command.py [--repeats 5] [--imgsz 320,640] [--frames 90]
Results: ``benchmarks/results/whole_command.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2

ROOT = Path(__file__).resolve().parents[1]
CLIP = ROOT.parent / "shared" / "data" / "videos" / "people_walking_highangle.avi"
MODEL = ROOT / "rtseg" / "assets" / "yolo11n-seg-person-cat-dog.pt"


def cut(src: Path, dst: Path, frames: int) -> Path:
    cap = cv2.VideoCapture(str(src))
    fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
    writer = None
    for _ in range(frames):
        ok, image = cap.read()
        if not ok:
            break
        image = cv2.resize(image, (1280, 720))
        if writer is None:
            writer = cv2.VideoWriter(str(dst), cv2.VideoWriter_fourcc(*"mp4v"), fps, (1280, 720))
        writer.write(image)
    cap.release()
    assert writer is not None, src
    writer.release()
    return dst


def timed(command: list[str], cwd: Path) -> float:
    t = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    elapsed = time.perf_counter() - t
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({done.returncode}): {done.stderr[-800:]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--imgsz", default="320,640")
    parser.add_argument("--frames", type=int, default=90)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "whole_command.json")
    args = parser.parse_args()
    yolo = shutil.which("yolo")
    if yolo is None or not CLIP.is_file():
        raise SystemExit("needs Ultralytics' `yolo` command and ../shared/data/videos")
    rows = []
    with tempfile.TemporaryDirectory(prefix="rtseg-whole-") as tmp:
        work = Path(tmp)
        clip = cut(CLIP, work / "clip90.mp4", args.frames)
        for imgsz in (int(s) for s in args.imgsz.split(",")):
            commands = {
                "rtseg run": [sys.executable, "-m", "rtseg.cli", "run", str(clip), "--imgsz", str(imgsz),
                              "--out", str(work / "rtseg.mp4"), "-q"],
                "rtseg run --precision int8": [sys.executable, "-m", "rtseg.cli", "run", str(clip), "--imgsz",
                                               str(imgsz), "--precision", "int8", "--out", str(work / "int8.mp4"),
                                               "-q"],
                "yolo predict save=True": [yolo, "predict", f"model={MODEL}", f"source={clip}", f"imgsz={imgsz}",
                                           "save=True", f"project={work}", "name=yolo", "exist_ok=True",
                                           "verbose=False"],
            }
            for command in commands.values():  # warm: exports, the INT8 copy, the OS file cache
                timed(command, work)
            times: dict[str, list[float]] = {name: [] for name in commands}
            for r in range(args.repeats):
                names = list(commands)
                for name in names[r % len(names):] + names[:r % len(names)]:
                    times[name].append(timed(commands[name], work))
            base = times["yolo predict save=True"]
            row = {"imgsz": imgsz, "frames": args.frames,
                   "median_s": {n: round(statistics.median(v), 2) for n, v in times.items()},
                   "runs_s": {n: [round(x, 2) for x in v] for n, v in times.items()},
                   "x_ultralytics_median_of_ratios": {n: round(statistics.median(b / x for b, x in zip(base, v)), 2)
                                                      for n, v in times.items()}}
            print(json.dumps(row), flush=True)
            rows.append(row)
    report = {"clip": f"first {args.frames} frames of {CLIP.name}, resized to 1280x720", "model": MODEL.name,
              "rows": rows, "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                                        "loadavg_at_end": [round(v, 2) for v in os.getloadavg()]}}
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    print(args.out)


if __name__ == "__main__":
    main()
