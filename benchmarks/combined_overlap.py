"""Combined mode: instance + semantic models run concurrently vs one after the other, end to end.

Both runs use the same ``Pipeline`` (decode, models, overlay, H.264 encode all included) on the same
video; the only difference is ``overlap_semantic``: the semantic model on its own thread, or before the
instance model on the inference thread. Results go to ``benchmarks/results/combined_overlap.json``.

Usage:
    python benchmarks/combined_overlap.py [--video V] [--frames 100] [--semantic-arch lraspp_mobilenet_v3_large]

The semantic model's weights are random (speed does not depend on them); the instance model is the
bundled one, on the default backend.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_VIDEO = ROOT.parent / "shared" / "data" / "videos" / "people_walking_highangle.avi"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--video", type=Path, default=DEFAULT_VIDEO)
    parser.add_argument("--weights", default=str(ROOT / "tests" / "assets" / "yolo11n-seg-coco128.pt"))
    parser.add_argument("--semantic-arch", default="lraspp_mobilenet_v3_large")
    parser.add_argument("--semantic-imgsz", type=int, default=512)
    parser.add_argument("--imgsz", type=int, default=640)
    parser.add_argument("--frames", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "combined_overlap.json")
    args = parser.parse_args()
    if not args.video.is_file():
        raise SystemExit(f"no video at {args.video}: pass --video")

    import torch

    from rtseg.backends.registry import load_semantic_backend
    from rtseg.models.semantic import SemanticModel
    from rtseg.models.yolo_seg import YoloSegModel
    from rtseg.models.zoo import build_semantic, save_semantic
    from rtseg.overlay.annotator import Annotator
    from rtseg.pipeline.core import Pipeline
    from rtseg.pipeline.loading import load_runtime
    from rtseg.sinks import VideoFileSink
    from rtseg.sources import open_source

    with tempfile.TemporaryDirectory(prefix="rtseg-bench-") as tmp:
        tmp = Path(tmp)
        net, info = build_semantic(args.semantic_arch, names=["background", *(f"class{i}" for i in range(1, 6))],
                                   imgsz=args.semantic_imgsz)
        checkpoint = save_semantic(tmp / "semantic.pt", net, info)
        seg = YoloSegModel(load_runtime(args.weights), imgsz=args.imgsz)
        sem = SemanticModel(load_semantic_backend(checkpoint))
        annotator = Annotator(seg.names, semantic_names=sem.names, semantic_palette=sem.info.palette_bgr)

        def run(overlap: bool, frames: int) -> tuple[float, dict]:
            source = open_source(str(args.video))
            t0 = time.perf_counter()
            summary = Pipeline(source, seg, [VideoFileSink(tmp / "o.mp4", fps=source.fps)], annotator=annotator,
                               max_frames=frames, semantic=sem, overlap_semantic=overlap).run()
            fps = summary.frames / (time.perf_counter() - t0)
            return fps, {k: round(v["p50"], 2) for k, v in summary.stages_ms.items()}

        run(True, 5)  # warm-up
        results: dict[str, list] = {"one after the other": [], "concurrent (rtseg default)": []}
        stages = {}
        for _ in range(args.repeats):  # interleaved, so drift in machine load hits both alike
            for name, overlap in (("one after the other", False), ("concurrent (rtseg default)", True)):
                fps, stages[name] = run(overlap, args.frames)
                results[name].append(round(fps, 2))
    median = {k: sorted(v)[len(v) // 2] for k, v in results.items()}
    gain = median["concurrent (rtseg default)"] / median["one after the other"]
    report = {"video": str(args.video), "frames": args.frames, "repeats": args.repeats, "imgsz": args.imgsz,
              "semantic": {"arch": args.semantic_arch, "imgsz": args.semantic_imgsz},
              "fps_runs": results, "fps_median": median, "overlap_gain": round(gain, 2), "stages_ms_p50": stages,
              "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(), "torch": torch.__version__}}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    table = "\n".join([f"{'mode':<30}{'FPS (median)':>14}"] +
                      [f"{k:<30}{v:>14.2f}" for k, v in median.items()] + [f"{'overlap gain':<30}{gain:>13.2f}x"])
    args.out.with_suffix(".md").write_text(
        f"# Combined mode: concurrent vs sequential models\n\n{Path(args.video).name}, {args.frames} frames, "
        f"instance imgsz {args.imgsz}, {args.semantic_arch} at {args.semantic_imgsz}, CPU ({os.cpu_count()} "
        f"cores), median of {args.repeats}\n\n```\n{table}\n```\n")
    print(table)


if __name__ == "__main__":
    main()
