"""INT8 against FP32 on the CPU (issue #17): model-only speed and time to first frame.

1. Model-only: the bundled instance model's FP32 ONNX export and its INT8 copy (calibrated on 64 frames of
   the same clip, as ``rtseg run --precision int8`` does), one ONNX Runtime session each with the same thread
   count, on the same prepared input (a real frame of the clip letterboxed by rtseg), called in turn
   (interleaved pairs); the ratio is the median of the pairwise FP32 / INT8 time ratios.
   At imgsz 320 and 640, on the 720p crowd clip and the 1080p drone clip of ``../shared/data/videos``.
2. Time to first frame: the whole ``rtseg run CLIP --max-frames 1`` process (launch to exit, caches warm),
   FP32 and INT8 runs interleaved, median of ``--ttff-repeats``.

The machine may be shared (a soak run was competing for the 2 cores when the committed figures were
taken): interleaving makes both halves of every ratio see the same load; absolute times are not comparable
between runs.

Usage:
    nice -n 15 python benchmarks/int8.py [--pairs 30] [--ttff-repeats 3]
Results: ``benchmarks/results/int8.json``.
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

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
CLIPS = {"crowd_720p": DATA / "videos" / "people_walking_highangle.avi",
         "drone_1080p": DATA / "videos" / "aerial_drone_city_traffic.mp4"}
MODEL = ROOT / "rtseg" / "assets" / "yolo11n-seg-person-cat-dog.pt"


def frame_of(clip: Path, index: int = 10):  # noqa: ANN201
    import cv2

    cap = cv2.VideoCapture(str(clip))
    for _ in range(index):
        cap.grab()
    ok, frame = cap.read()
    cap.release()
    assert ok, clip
    return frame


def session(path: Path, threads: int):  # noqa: ANN201
    from rtseg.backends.ort_backend import open_session

    return open_session(str(path), "cpu", threads)


def model_only(fp32: Path, int8: Path, batch, threads: int, pairs: int) -> dict:  # noqa: ANN001
    a, b = session(fp32, threads), session(int8, threads)
    name = a.get_inputs()[0].name
    for s in (a, b, a, b):
        s.run(None, {name: batch})
    ratios, ta, tb = [], [], []
    for i in range(pairs):
        order = (a, b) if i % 2 == 0 else (b, a)  # alternate which goes first
        times = {}
        for s in order:
            t = time.perf_counter()
            s.run(None, {name: batch})
            times[id(s)] = time.perf_counter() - t
        ta.append(times[id(a)])
        tb.append(times[id(b)])
        ratios.append(times[id(a)] / times[id(b)])
    return {"input_wh": [int(batch.shape[3]), int(batch.shape[2])], "threads": threads, "pairs": pairs,
            "fp32_ms_median": round(1000 * statistics.median(ta), 2),
            "int8_ms_median": round(1000 * statistics.median(tb), 2),
            "int8_speedup_median_of_ratios": round(statistics.median(ratios), 3),
            "ratio_p25_p75": [round(statistics.quantiles(ratios, n=4)[0], 3),
                              round(statistics.quantiles(ratios, n=4)[2], 3)]}


def ttff(clip: Path, precision: str, imgsz: int, out: Path) -> float:
    cmd = [sys.executable, "-m", "rtseg.cli", "run", str(clip), "--max-frames", "1", "--imgsz", str(imgsz),
           "--jsonl", str(out), "-q", "--precision", precision]
    t = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True)
    return time.perf_counter() - t


BREAKDOWN = """
import json, sys, time
t = [time.perf_counter()]
marks = {}
def mark(name):
    t.append(time.perf_counter()); marks[name] = round(t[-1] - t[-2], 3)
import rtseg.cli.app; mark("import rtseg.cli (typer, CLI modules)")
import torch; mark("import torch")
import torchvision; mark("import torchvision (rtseg.postprocess.nms)")
import rtseg.api; mark("import rtseg.api (pipeline, models, sinks)")
from rtseg.models.task import model_task
model_task(sys.argv[1]); mark("model_task (reads the weights' task)")
from rtseg.pipeline.loading import RunOptions, load_models
seg, _ = load_models(RunOptions(model=sys.argv[1], imgsz=320, precision=sys.argv[3], calib=sys.argv[2]
                                if sys.argv[3] != "fp32" else None)); mark("load (cache lookup, ONNX Runtime sessions)")
from rtseg.sources import open_source
src = open_source(sys.argv[2]); frame = src.read(); mark("open source, decode first frame")
seg([frame]); mark("first inference (prepare, infer, masks)")
print(json.dumps(marks))
"""


def breakdown(clip: Path, precision: str) -> dict:
    """Where launch-to-first-frame goes, step by step, in a fresh interpreter (caches warm)."""
    proc = subprocess.run([sys.executable, "-c", BREAKDOWN, str(MODEL), str(clip), precision], check=True,
                          capture_output=True, text=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=30)
    parser.add_argument("--ttff-repeats", type=int, default=3)
    parser.add_argument("--threads", default=f"1,{os.cpu_count() or 1}",
                        help="comma list of ONNX Runtime thread counts (rtseg run: 2 sessions x 1 thread on 2 cores)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "int8.json")
    args = parser.parse_args()

    import numpy as np

    from rtseg.exporters.onnx import cached_onnx
    from rtseg.exporters.quantize import cached_int8, prepared_batches

    fp32 = cached_onnx(str(MODEL))
    assert fp32 is not None
    rows = []
    for clip_name, clip in CLIPS.items():
        if not clip.is_file():
            print(f"skipped {clip_name}: {clip} not found", file=sys.stderr)
            continue
        for imgsz in (320, 640):
            t = time.perf_counter()
            int8 = cached_int8(str(MODEL), calib=str(clip), imgsz=imgsz)
            built = time.perf_counter() - t
            (batch,) = prepared_batches(fp32, "segment", [frame_of(clip)], imgsz)
            for threads in (int(t) for t in args.threads.split(",")):
                row = {"clip": clip_name, "imgsz": imgsz, "int8_build_or_cache_s": round(built, 1),
                       **model_only(fp32, int8, np.ascontiguousarray(batch), threads, args.pairs)}
                print(json.dumps(row), flush=True)
                rows.append(row)
    starts = []
    with tempfile.TemporaryDirectory() as tmp:
        clip = CLIPS["crowd_720p"]
        times: dict[str, list[float]] = {"fp32": [], "int8": []}
        for precision in ("fp32", "int8"):  # warm the caches (exports, INT8 copy, OS file cache)
            ttff(clip, precision, 320, Path(tmp) / "warm.jsonl")
        for _ in range(args.ttff_repeats):
            for precision in ("fp32", "int8"):
                times[precision].append(ttff(clip, precision, 320, Path(tmp) / f"{precision}.jsonl"))
        for precision in ("fp32", "int8"):
            steps = [breakdown(clip, precision) for _ in range(args.ttff_repeats)]
            starts.append({"clip": "crowd_720p", "imgsz": 320, "precision": precision, "in_process_steps_s_median":
                           {k: round(statistics.median(s[k] for s in steps), 3) for k in steps[0]}})
            print(json.dumps(starts[-1]), flush=True)
        for precision, values in times.items():
            starts.append({"clip": "crowd_720p", "imgsz": 320, "precision": precision,
                           "whole_process_one_frame_s_median": round(statistics.median(values), 2),
                           "runs_s": [round(v, 2) for v in values]})
            print(json.dumps(starts[-1]), flush=True)
    load = os.getloadavg()
    report = {"model": str(MODEL.relative_to(ROOT)), "model_only": rows, "time_to_first_frame": starts,
              "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                          "loadavg_at_end": [round(v, 2) for v in load]},
              "note": "ratios from interleaved pairs on one machine; the soak benchmark shared the CPU"}
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    print(args.out)


if __name__ == "__main__":
    main()
