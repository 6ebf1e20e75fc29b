"""What rtseg.analytics costs per frame at 720p (issue #18's measurements).

A synthetic scene: 20 tracked instances (ellipse masks of 40..120 x 90..260 px, box-local like the model's)
walking across a 1280x720 frame, 5 zones and 2 lines. Timed separately, per frame, median over the run:

- ``update``: occupancy by mask fraction, crossings, dwell, the JSONL record (target: <= 1 ms);
- ``update (box anchor)``: the same with peers' bottom-centre test, for comparison;
- ``after_draw``: zone outlines, counts, lines;
- ``heatmap``: accumulating the masks (``update`` with ``--heatmap``) and drawing it live (``--heatmap-overlay``);
- ``blur`` / ``pixelate`` / ``box blur``: obscuring 10 of the 20 instances (the other class left alone);
- ``background`` blur / colour: replacing everything but the 20 people.

Usage:
    python benchmarks/analytics_cost.py [--frames 200] [--json results.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import cv2
import numpy as np

from rtseg.analytics import Analytics
from rtseg.types import Frame, FrameResult, InstanceMasks

H, W = 720, 1280
ZONES = ["door:0.05,0.1,0.3,0.1,0.3,0.9,0.05,0.9", "till:0.35,0.5,0.6,0.45,0.65,0.95,0.3,0.9",
         "aisle:0.6,0.05,0.95,0.05,0.95,0.4,0.6,0.4", "queue:0.7,0.5,0.95,0.5,0.95,0.95,0.7,0.95",
         "entry:0.3,0.05,0.55,0.05,0.5,0.35"]
LINES = ["gate:0.0,0.5,1.0,0.5", "exit:0.5,0.0,0.5,1.0"]


class Scene:
    """20 ellipses with fixed sizes and velocities, bouncing off the frame's edges."""

    def __init__(self, n: int = 20, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        self.size = np.stack([rng.integers(40, 121, n), rng.integers(90, 261, n)], 1)  # w, h
        self.pos = rng.uniform([0, 0], [W - 120, H - 260], (n, 2))
        self.vel = rng.uniform(-6, 6, (n, 2))
        self.classes = np.arange(n) % 2  # half "person", half "bag"
        self.crops = []
        for w, h in self.size:
            crop = np.zeros((h, w), np.uint8)
            cv2.ellipse(crop, (w // 2, h // 2), (w // 2 - 1, h // 2 - 1), 0, 0, 360, 1, -1)
            self.crops.append(crop.astype(bool))
        self.background = rng.integers(40, 200, (H, W, 3), dtype=np.uint8)

    def result(self, i: int) -> FrameResult:
        self.pos += self.vel
        limit = np.array([W, H]) - self.size
        bounce = (self.pos < 0) | (self.pos > limit)
        self.vel[bounce] *= -1
        self.pos = np.clip(self.pos, 0, limit)
        origins = self.pos.astype(np.int32)
        boxes = np.concatenate([origins, origins + self.size], 1).astype(np.float32)
        return FrameResult(i, (H, W), boxes, np.full(len(boxes), 0.9, np.float32), self.classes.astype(np.int32),
                           InstanceMasks(tuple(self.crops), origins), track_ids=np.arange(1, len(boxes) + 1))


def per_frame_ms(frames: int, step) -> float:  # noqa: ANN001 - step(i) does one frame's work
    times = []
    for i in range(frames):
        t0 = time.perf_counter_ns()
        step(i)
        times.append((time.perf_counter_ns() - t0) / 1e6)
    return round(statistics.median(times[5:]), 3)


def measure(frames: int) -> dict[str, float]:
    names = ("person", "bag")
    out: dict[str, float] = {}

    def updating(label: str, **options: object) -> Analytics:
        analytics = Analytics.from_options(names=names, fps=30, **options)
        assert analytics is not None
        scene = Scene()
        out[label] = per_frame_ms(frames, lambda i: analytics.update(
            Frame(i, scene.background, i / 30, "bench"), scene.result(i)))
        return analytics

    drawn = updating("update: 5 zones, 2 lines, 20 instances (mask)", zone=ZONES, line=LINES)
    updating("update (box anchor, as peers)", zone=ZONES, line=LINES, zone_anchor="box")
    scene = Scene()
    result = drawn.update(Frame(0, scene.background, 0.0, "bench"), scene.result(0))
    canvas = scene.background.copy()
    out["after_draw: zones, counts, lines"] = per_frame_ms(frames, lambda i: drawn.after_draw(canvas, result))
    heat = updating("update + heatmap accumulation", heatmap_overlay=True)
    out["heatmap drawn live"] = per_frame_ms(frames, lambda i: heat.after_draw(canvas, result))
    for label, options in (("blur (10 of 20 instances, mask, feather 3)", {"blur": "person"}),
                           ("pixelate (10 of 20 instances)", {"blur": "person", "blur_style": "pixelate"}),
                           ("box blur (10 of 20, as peers)", {"blur": "person", "blur_style": "box"}),
                           ("background blur (20 people)", {"background": "blur", "names": ("person",)}),
                           ("background colour (20 people)", {"background": "#00b140", "names": ("person",)})):
        a = Analytics.from_options(**{"names": names, "fps": 30, **options})
        assert a is not None
        scene = Scene()
        results = [scene.result(i) for i in range(frames)]
        images = [scene.background.copy() for _ in range(2)]
        out[label] = per_frame_ms(frames, lambda i, a=a, images=images, results=results: a.before_draw(
            images[i % 2], results[i]))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=200)
    parser.add_argument("--json", type=Path, default=None, help="also write the numbers here")
    args = parser.parse_args()
    cv2.setNumThreads(1)  # the post-processing thread's share of the machine, as in a run
    results = measure(args.frames)
    width = max(map(len, results))
    cpu = platform.processor() or platform.machine()
    print(f"rtseg.analytics at {W}x{H}, median ms per frame over {args.frames} frames, 1 OpenCV thread ({cpu})")
    for name, ms in results.items():
        print(f"  {name:<{width}}  {ms:7.3f}")
    if args.json:
        args.json.write_text(json.dumps({"frame_wh": [W, H], "frames": args.frames, "ms_per_frame": results},
                                        indent=1))


if __name__ == "__main__":
    main()
