"""What ``rtseg run --ray --split`` gains on one long video: 2 workers against 1, and against a plain run.

A real clip (``people_walking_highangle.avi``, 1280x720 at 50 FPS) is cut to its first ``--frames`` frames and
resized to ``--width`` (OpenCV, Motion-JPEG, in a temporary folder) so that each run costs seconds of CPU, not
minutes. Then, against one Ray head started for the benchmark (2 CPUs, already running: Ray's own start is not
measured), the real CLI, modes alternating within each repeat:

- ``plain``: ``rtseg run CLIP --out o.mp4 --jsonl o.jsonl`` (one process);
- ``ray 1 worker``: ``rtseg run --ray ADDR CLIP --out-dir D --ray-workers 1`` (the whole clip on one worker);
- ``split, 1 worker`` / ``split, 2 workers``: the same with ``--split SPLIT`` (parts one after the other on one
  worker, or two at a time).

Reported per mode: the command's wall time (spawn to exit: interpreter, driver, workers' start and model load
included) and, for the Ray modes, the cluster's busy time (first part's start to last part's end, from
``cluster_summary.json``) and FPS over it. The 2-worker split's JSONL is checked against the plain run's (every
field but the timings, frame for frame) and its video's frame count against the plain one's.

On a 2-core machine two workers share the two cores with each other (and with the ONNX Runtime threads of each),
so this measures what the split costs and what little two workers gain there, not a cluster.

Usage:
    nice -n 15 python benchmarks/ray_split.py [--frames 300] [--width 640] [--split 2s] [--repeats 2]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ray_overhead import start_head, stop_head  # noqa: E402 - the sibling benchmark's Ray head

ROOT = Path(__file__).resolve().parents[1]
VIDEO = ROOT.parent / "shared" / "data" / "videos" / "people_walking_highangle.avi"
CLI = [sys.executable, "-m", "rtseg.cli", "run"]


def cut_clip(src: Path, dest: Path, frames: int, width: int) -> tuple[int, float]:
    capture = cv2.VideoCapture(str(src))
    fps = capture.get(cv2.CAP_PROP_FPS)
    writer = None
    written = 0
    while written < frames:
        ok, image = capture.read()
        if not ok:
            break
        h, w = image.shape[:2]
        size = (width, round(h * width / w / 2) * 2)
        if writer is None:
            writer = cv2.VideoWriter(str(dest), cv2.VideoWriter_fourcc(*"MJPG"), fps, size)
        writer.write(cv2.resize(image, size, interpolation=cv2.INTER_AREA))
        written += 1
    capture.release()
    writer.release()
    return written, fps


def timed(args: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(args, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise SystemExit(f"failed ({done.returncode}): {' '.join(args)}\n{done.stderr[-2000:]}")
    return time.perf_counter() - start


def busy(out: Path) -> dict[str, float]:
    """The source's busy time and FPS, and its parts' nodes/pids, from the run's summary."""
    source = json.loads((out / "cluster_summary.json").read_text())["sources"][0]
    return {"busy_s": round(source["elapsed_s"], 2), "fps": round(source["fps"], 1),
            "parts": len(source["parts"]), "workers_used": len({p["pid"] for p in source["parts"]}) or 1,
            "parts_reached_by": [p["seek"] or "-" for p in source["parts"]],
            "parts_seek_s": [p["seek_s"] for p in source["parts"]]}


def same_as_plain(plain: Path, joined: Path) -> bool:
    def records(path: Path) -> list[dict]:
        return [{k: v for k, v in json.loads(line).items() if k != "timings_ms"}
                for line in path.read_text().splitlines()]

    return records(plain) == records(joined)


def count(path: Path) -> int:
    capture, n = cv2.VideoCapture(str(path)), 0
    while capture.read()[0]:
        n += 1
    capture.release()
    return n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--split", default="2s")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "ray_split.json")
    args = parser.parse_args()
    env = dict(os.environ, RAY_AUTH_MODE="disabled", RAY_TMPDIR=tempfile.mkdtemp(prefix="rtseg-ray-"))
    env.pop("RAY_ADDRESS", None)
    port = 6500 + os.getpid() % 1000
    head = start_head(port, env)
    address = f"127.0.0.1:{port}"
    opts = ["--device", "cpu", "-q"]
    modes = {"plain": [], "ray 1 worker": ["--ray-workers", "1"],
             "split, 1 worker": ["--ray-workers", "1", "--split", args.split],
             "split, 2 workers": ["--ray-workers", "2", "--split", args.split]}
    wall: dict[str, list[float]] = {m: [] for m in modes}
    cluster: dict[str, list[dict[str, float]]] = {m: [] for m in modes if m != "plain"}
    try:
        with tempfile.TemporaryDirectory(prefix="rtseg-ray-split-") as tmp:
            work = Path(tmp)
            clip = work / "people.avi"
            frames, fps = cut_clip(VIDEO, clip, args.frames, args.width)
            timed([*CLI, str(clip), "--out", str(work / "warm.mp4"), "--max-frames", "5", *opts], env)
            for r in range(args.repeats):
                for mode, extra in modes.items():
                    if mode == "plain":
                        wall[mode].append(timed([*CLI, str(clip), "--out", str(work / f"p{r}.mp4"), "--jsonl",
                                                 str(work / f"p{r}.jsonl"), *opts], env))
                        continue
                    out = work / f"{mode.replace(' ', '_').replace(',', '')}{r}"
                    wall[mode].append(timed([*CLI, "--ray", address, str(clip), "--out-dir", str(out), *extra, *opts],
                                            env))
                    cluster[mode].append(busy(out))
                print({m: round(v[-1], 2) for m, v in wall.items()}, file=sys.stderr)
            split2 = work / "split_2_workers0"
            check = {"jsonl_equal_to_plain": same_as_plain(work / "p0.jsonl", split2 / "people.jsonl"),
                     "video_frames": {"plain": count(work / "p0.mp4"),
                                      "split, 2 workers": count(split2 / "people.mp4")}}
    finally:
        stop_head(head)
    report = {
        "command": " ".join(["python", "benchmarks/ray_split.py", *sys.argv[1:]]),
        "clip": f"{VIDEO.name}: first {frames} frames, resized to {args.width} px wide, {fps:g} FPS "
                f"({frames / fps:.1f} s)", "split": args.split, "repeats": args.repeats,
        "wall_s": {m: [round(x, 2) for x in v] for m, v in wall.items()},
        "median_wall_s": {m: round(statistics.median(v), 2) for m, v in wall.items()},
        "cluster": {m: {"median_busy_s": round(statistics.median(x["busy_s"] for x in v), 2),
                        "median_fps": round(statistics.median(x["fps"] for x in v), 1), "runs": v}
                    for m, v in cluster.items()},
        "check": check,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "note": "2-core VM shared with other jobs during the run; wall times are noisy"},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
