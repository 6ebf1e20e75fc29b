"""End-to-end FPS of the privacy and background modes against a plain run (issue #18: within 10 %).

Each mode is a whole ``rtseg.run`` over the same clip with an annotated video written (the output the blur and
the background are for): plain (masks, boxes, labels drawn), ``--blur person``, ``--background blur`` and
``--background '#00ff00'``. One model is loaded once and shared; the modes run interleaved (plain, blur,
background blur, background colour, plain, ...) for several rounds, so that a machine whose speed drifts (other
work, thermal limits) drifts every mode alike. Reported per mode: the median over rounds of the steady FPS
(``RunSummary.steady_fps``: after the pipeline has filled) and of the whole-run FPS, and the ratio of each
median to plain's; and the process's CPU time per frame (every thread), which other work on a shared machine
disturbs far less than wall-clock rates: on a CPU-bound run, FPS ratios follow the inverse CPU-time ratios.

Usage:
    python benchmarks/analytics_fps.py [CLIP] [--frames 150] [--rounds 5] [--device auto]
        [--json benchmarks/results/analytics_fps.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path

import rtseg
from rtseg.config import PEOPLE_MODEL

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CLIP = ROOT.parent / "shared" / "data" / "videos" / "people_one-by-one-person-detection.mp4"
MODES = {"plain": {}, "blur person": {"blur": "person"}, "background blur": {"background": "blur"},
         "background #00ff00": {"background": "#00ff00"},
         "plain, selfie model": {}, "background #00ff00, selfie model": {"background": "#00ff00"}}
# what rtseg run --background uses when no model is named: the selfie segmenter alone (rtseg.config.PEOPLE_MODEL);
# its ratio is to "plain, selfie model", the same model with nothing replaced
PEOPLE_MODES = {"plain, selfie model", "background #00ff00, selfie model"}


def measure(clip: Path, frames: int, rounds: int, device: str, shared: bool = False) -> dict:
    seg = rtseg.load_model(device=device)
    people = rtseg.load_model(PEOPLE_MODEL, device=device, quality="high")
    runs: dict[str, list[dict]] = {m: [] for m in MODES}
    with tempfile.TemporaryDirectory(prefix="rtseg-analytics-fps-") as tmp:
        out = Path(tmp) / "out.mp4"
        rtseg.run(str(clip), seg, out=out, max_frames=min(frames, 20))  # warm-up: caches, encoder, threads
        rtseg.run(str(clip), people, out=out, max_frames=min(frames, 20), background="#00ff00")
        for r in range(rounds):
            for mode, options in MODES.items():
                cpu0 = time.process_time()
                model = people if mode in PEOPLE_MODES else seg
                summary = rtseg.run(str(clip), model, out=out, max_frames=frames, **options)
                cpu_ms = (time.process_time() - cpu0) * 1e3 / max(summary.frames, 1)
                runs[mode].append({"fps": summary.fps, "steady_fps": summary.steady_fps, "frames": summary.frames,
                                   "cpu_ms_per_frame": cpu_ms})
                print(f"round {r + 1}/{rounds} {mode:<20} {summary.steady_fps:6.1f} steady FPS "
                      f"({summary.fps:.1f} whole run), {cpu_ms:.1f} CPU-ms/frame", flush=True)
    medians = {m: {key: statistics.median(x[key] for x in v) for key in ("steady_fps", "fps", "cpu_ms_per_frame")}
               for m, v in runs.items()}
    base = {m: medians["plain, selfie model" if m in PEOPLE_MODES else "plain"] for m in medians}
    return {"clip": str(clip.name), "frames": frames, "rounds": rounds, "device": seg.device,
            "machine": platform.processor() or platform.machine(), "python": platform.python_version(),
            "medians": medians,
            "ratio_to_plain": {m: {"steady_fps": round(v["steady_fps"] / base[m]["steady_fps"], 3),
                                   "fps": round(v["fps"] / base[m]["fps"], 3),
                                   "cpu_ms_per_frame": round(v["cpu_ms_per_frame"] / base[m]["cpu_ms_per_frame"], 3)}
                               for m, v in medians.items()},
            "runs": runs, "note": "interleaved rounds; niced runs on a shared machine compare modes, not machines"
                                  if shared else "interleaved rounds"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("clip", nargs="?", type=Path, default=DEFAULT_CLIP)
    parser.add_argument("--frames", type=int, default=150)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--shared", action="store_true", help="say in the results that the machine was shared")
    parser.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "analytics_fps.json")
    args = parser.parse_args()
    result = measure(args.clip, args.frames, args.rounds, args.device, args.shared)
    for mode, ratio in result["ratio_to_plain"].items():
        m = result["medians"][mode]
        print(f"{mode:<20} {m['steady_fps']:6.1f} steady FPS  x{ratio['steady_fps']:.3f}   "
              f"{m['fps']:6.1f} FPS  x{ratio['fps']:.3f}   {m['cpu_ms_per_frame']:5.1f} CPU-ms/frame  "
              f"x{ratio['cpu_ms_per_frame']:.3f}")
    args.json.write_text(json.dumps(result, indent=1))
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
