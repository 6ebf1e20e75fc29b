"""Tiled vs full-frame inference on aerial data: accuracy, speed and memory (issue #7's measurements).

1. mIoU (over the 5 labelled classes; 'unlabeled' pixels ignored) on the held-out tiles of
   ``../shared/data/aerial`` with a semantic checkpoint, full frame vs tiled, at the same model input size
   (the tiles see the large images at native resolution, the full frame is downscaled into one input).
2. On ``../shared/data/videos/aerial_drone_city_traffic.mp4`` with an instance model: end-to-end FPS and peak
   RSS without tiling, with tiling, and with tiling plus a full-frame pass. Each runs in its own process so
   the peak memory is that configuration's alone.

Usage:
    python benchmarks/aerial_tiling.py --semantic /tmp/aerial_unet.pt [--frames 40]
Results: ``benchmarks/results/aerial_tiling.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
VIDEO = DATA / "videos" / "aerial_drone_city_traffic.mp4"


def semantic_miou(checkpoint: str, imgsz: int, tile: int, overlap: float) -> dict:
    import cv2
    import numpy as np

    from rtseg.backends.registry import load_semantic_backend
    from rtseg.data.aerial import UNLABELED, load_aerial, split_aerial
    from rtseg.evaluate.semantic import confusion_matrix, semantic_metrics
    from rtseg.models.semantic import SemanticModel
    from rtseg.models.tiling import TiledSemantic

    _, val = split_aerial(load_aerial(DATA / "aerial" / "dubai_landcover_hitl"))
    full = SemanticModel(load_semantic_backend(checkpoint), imgsz=imgsz)
    tiled = TiledSemantic(SemanticModel(load_semantic_backend(checkpoint), imgsz=imgsz), tile=tile, overlap=overlap)
    n = len(full.names)
    confs = {"full frame": np.zeros((n, n), np.int64), "tiled": np.zeros((n, n), np.int64)}
    seconds = {"full frame": 0.0, "tiled": 0.0}
    for path, gt in val:
        image = cv2.imread(str(path))
        for name, model in (("full frame", full), ("tiled", tiled)):
            t0 = time.perf_counter()
            pred = model([image])[0]
            seconds[name] += time.perf_counter() - t0
            confs[name] += confusion_matrix(pred, gt, n, ignore_index=UNLABELED)
    out = {}
    for name, conf in confs.items():
        m = semantic_metrics(conf)
        labelled = [v for i, v in enumerate(m["iou"]) if i != UNLABELED and v == v]  # the 5 real classes
        out[name] = {"mIoU": round(float(np.mean(labelled)), 4), "pixel_accuracy": round(m["pixel_accuracy"], 4),
                     "per_class_iou": [round(v, 4) for v in m["iou"]],
                     "seconds_per_image": round(seconds[name] / len(val), 3)}
    out["images"] = [p.name for p, _ in val]
    return out


def child(config: str, frames: int, imgsz: int, tile: int, overlap: float) -> None:
    """One drone-video configuration in this process; prints its FPS and peak RSS as JSON."""
    from rtseg import DEFAULT_MODEL
    from rtseg.models.tiling import TiledYoloSeg
    from rtseg.models.yolo_seg import YoloSegModel
    from rtseg.overlay.annotator import Annotator
    from rtseg.pipeline.core import Pipeline
    from rtseg.pipeline.loading import load_runtime
    from rtseg.sinks import VideoFileSink
    from rtseg.sources import open_source

    model = YoloSegModel(load_runtime(str(DEFAULT_MODEL)), imgsz=imgsz, conf=0.1)
    if config != "full frame":
        model = TiledYoloSeg(model, tile=tile, overlap=overlap, full_frame=config == "tiled + full frame")
    rss_loaded = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out = Path(os.environ.get("TMPDIR", "/tmp")) / f"rtseg_aerial_{os.getpid()}.mp4"
    source = open_source(str(VIDEO))
    t0 = time.perf_counter()
    summary = Pipeline(source, model, [VideoFileSink(out, fps=source.fps)], annotator=Annotator(model.names),
                       max_frames=frames).run()
    fps = summary.frames / (time.perf_counter() - t0)
    out.unlink(missing_ok=True)
    print(json.dumps({"fps": round(fps, 2), "frames": summary.frames,
                      "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
                      "rss_after_model_load_mib": round(rss_loaded, 1),
                      "infer_ms_p50": round(summary.stages_ms["infer"]["p50"], 1)}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--semantic", help="semantic checkpoint trained on the aerial set")
    parser.add_argument("--semantic-imgsz", type=int, default=512)
    parser.add_argument("--frames", type=int, default=40)
    parser.add_argument("--imgsz", type=int, default=640)
    parser.add_argument("--tile", type=int, default=640)
    parser.add_argument("--overlap", type=float, default=0.2)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "aerial_tiling.json")
    args = parser.parse_args()
    if args.child:
        child(args.child, args.frames, args.imgsz, args.tile, args.overlap)
        return
    report: dict = {"video": VIDEO.name, "frames": args.frames, "imgsz": args.imgsz, "tile": args.tile,
                    "overlap": args.overlap, "cpu_count": os.cpu_count()}
    if args.semantic:
        report["aerial_semantic"] = semantic_miou(args.semantic, args.semantic_imgsz, args.semantic_imgsz,
                                                  args.overlap)
        report["aerial_semantic"]["checkpoint"] = Path(args.semantic).name
    drone = {}
    for config in ("full frame", "tiled", "tiled + full frame"):
        proc = subprocess.run([sys.executable, __file__, "--child", config, "--frames", str(args.frames),
                               "--imgsz", str(args.imgsz), "--tile", str(args.tile), "--overlap",
                               str(args.overlap)], capture_output=True, text=True, check=True)
        drone[config] = json.loads(proc.stdout.strip().splitlines()[-1])
    report["drone_video"] = drone
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    lines = [f"# Tiled vs full-frame inference\n\nCPU ({os.cpu_count()} cores).\n"]
    if args.semantic:
        s = report["aerial_semantic"]
        lines.append(f"Aerial land cover, {len(s['images'])} held-out images, {s['checkpoint']} at input "
                     f"{args.semantic_imgsz}, tiles {args.semantic_imgsz} px overlap {args.overlap}:\n")
        lines.append("| | mIoU | pixel accuracy | s / image |\n|---|---|---|---|")
        for name in ("full frame", "tiled"):
            lines.append(f"| {name} | {s[name]['mIoU']:.3f} | {s[name]['pixel_accuracy']:.3f} | "
                         f"{s[name]['seconds_per_image']:.2f} |")
        lines.append("")
    lines.append(f"Drone video {VIDEO.name} (1920x1080), {args.frames} frames, bundled instance model, imgsz "
                 f"{args.imgsz}, tile {args.tile} overlap {args.overlap}, writing H.264:\n")
    lines.append("| | FPS | peak RSS MiB | infer ms p50 |\n|---|---|---|---|")
    for name, row in drone.items():
        lines.append(f"| {name} | {row['fps']:.2f} | {row['peak_rss_mib']:.0f} | {row['infer_ms_p50']:.0f} |")
    args.out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
