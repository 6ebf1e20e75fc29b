"""End-to-end FPS of ``rtseg run`` (writing an annotated video) vs Ultralytics ``predict(save=True)``.

Same weights, same 1280x720 video, same imgsz / conf / iou, same machine, measured side by side in one
run. rtseg is driven through the same ``Pipeline``, source, annotator and H.264 video sink that
``rtseg run`` builds. Model loading is outside the timed region for both; each contender first processes
a few frames to warm up. Results go to ``benchmarks/results/run_vs_ultralytics.json`` and a Markdown table.

Usage:
    python benchmarks/run_vs_ultralytics.py [--video V] [--weights W] [--imgsz 640] [--frames 150]

Without ``--video`` it uses ``../shared/data/videos/people_walking_highangle.avi`` (1280x720) when
present, else a 1280x720 clip generated from Ultralytics' sample photos.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_VIDEO = ROOT.parent / "shared" / "data" / "videos" / "people_walking_highangle.avi"


def clip_720p(path: Path, frames: int) -> Path:
    from ultralytics.utils import ASSETS

    images = [cv2.resize(cv2.imread(str(p)), (1280, 720)) for p in sorted(Path(ASSETS).glob("*.jpg"))]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25, (1280, 720))
    for i in range(frames):
        shift = np.roll(images[(i // 50) % len(images)], 4 * (i % 50), axis=1)
        writer.write(shift)
    writer.release()
    return path


def bench_rtseg(model_path: str, video: Path, imgsz: int, out_dir: Path, warmup: int, backend: str,
                frames: int) -> dict:
    """rtseg's pipeline as ``rtseg run`` builds it, timed by the same code as ``rtseg bench``."""
    from rtseg.bench.core import end_to_end
    from rtseg.models.yolo_seg import YoloSegModel
    from rtseg.pipeline.loading import load_runtime
    from rtseg.sources import open_source

    model = YoloSegModel(load_runtime(model_path, backend=backend), imgsz=imgsz, conf=0.25, iou=0.7)
    row = end_to_end(lambda: open_source(str(video)), model, None, 1, frames=frames, warmup=warmup, repeats=1,
                     out_dir=out_dir)
    return {"frames": row["frames"], "fps": row["fps"],
            "stages_ms_p50": {k: v["p50"] for k, v in row["stages_ms"].items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--video", type=Path, default=None)
    parser.add_argument("--weights", default=str(ROOT / "tests" / "assets" / "yolo11n-seg-coco128.pt"))
    parser.add_argument("--imgsz", type=int, default=640)
    parser.add_argument("--frames", type=int, default=150)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "run_vs_ultralytics.json")
    args = parser.parse_args()

    import torch

    from rtseg.bench.core import ultralytics_predict

    with tempfile.TemporaryDirectory(prefix="rtseg-bench-") as tmp:
        tmp = Path(tmp)
        source = args.video or (DEFAULT_VIDEO if DEFAULT_VIDEO.exists() else None)
        video = source or clip_720p(tmp / "input.avi", args.frames)
        cap = cv2.VideoCapture(str(video))
        size = (int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)))
        cap.release()
        same = {"imgsz": args.imgsz, "device": "cpu", "frames": args.frames, "warmup": args.warmup,
                "project": tmp}
        rows = {
            "ultralytics predict(save=True)": ultralytics_predict(args.weights, video, save=True, **same),
            # the default: a .pt on the CPU runs on ONNX Runtime through a cached export of the same weights
            "rtseg run (default backend)": bench_rtseg(args.weights, video, args.imgsz, tmp,
                                                       args.warmup, "auto", args.frames),
            "rtseg run --backend torch": bench_rtseg(args.weights, video, args.imgsz, tmp,
                                                     args.warmup, "torch", args.frames),
            "ultralytics predict(save=False)": ultralytics_predict(args.weights, video, save=False, **same),
        }
    base = rows["ultralytics predict(save=True)"]["fps"]
    for row in rows.values():
        row["vs_ultralytics_save"] = round(row["fps"] / base, 2)
    report = {"video": str(source or "generated 1280x720 clip"), "size_wh": size, "frames": args.frames,
              "imgsz": args.imgsz, "weights": Path(args.weights).name, "device": "cpu",
              "machine": {"cpu_count": __import__("os").cpu_count(), "platform": platform.platform(),
                          "torch": torch.__version__, "torch_threads": torch.get_num_threads()},
              "results": rows}
    for name, row in rows.items():
        if row["frames"] != args.frames:
            raise SystemExit(f"{name} processed {row['frames']} frames, not {args.frames}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    lines = [f"{'contender':<34}{'FPS':>8}{'x ultralytics(save)':>22}"]
    lines += [f"{name:<34}{row['fps']:>8.2f}{row['vs_ultralytics_save']:>22.2f}" for name, row in rows.items()]
    table = "\n".join(lines)
    args.out.with_suffix(".md").write_text(
        f"# rtseg run vs Ultralytics predict\n\n{size[0]}x{size[1]}, {args.frames} frames, imgsz {args.imgsz}, "
        f"{Path(args.weights).name}, CPU ({report['machine']['cpu_count']} cores)\n\n```\n{table}\n```\n")
    print(table)


if __name__ == "__main__":
    main()
