"""Several sources: one batched pipeline vs one pipeline per source run one after the other, end to end.

Every mode writes an annotated H.264 video per source (decode, model, overlay, encode all included), on the
same video opened twice, ``--frames`` frames per source:

- ``one after the other``: a ``Pipeline`` per source, run in sequence (what ``rtseg run a b`` did before);
- ``one pipeline, batch 1``: ``Pipeline.multi``, streams interleaved, one frame per inference call
  (the gain from overlapping the streams' decode/encode alone);
- ``one pipeline, batched (rtseg default)``: ``Pipeline.multi`` with one frame of each stream per call.

FPS is total frames (all sources) over wall time. Results go to ``benchmarks/results/multistream_<device>.json``.

Usage:
    python benchmarks/multistream.py [--video V] [--streams 2] [--frames 100] [--device cpu]
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
MODES = ("one after the other", "one pipeline, batch 1", "one pipeline, batched (rtseg default)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--video", type=Path, default=DEFAULT_VIDEO)
    parser.add_argument("--weights", default=str(ROOT / "tests" / "assets" / "yolo11n-seg-coco128.pt"))
    parser.add_argument("--streams", type=int, default=2)
    parser.add_argument("--imgsz", type=int, default=640)
    parser.add_argument("--frames", type=int, default=100, help="frames per source")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    if not args.video.is_file():
        raise SystemExit(f"no video at {args.video}: pass --video")
    device_kind = "cpu" if args.device == "cpu" else "cuda"
    out = args.out or ROOT / "benchmarks" / "results" / f"multistream_{device_kind}.json"

    import torch

    from rtseg.models.yolo_seg import YoloSegModel
    from rtseg.overlay.annotator import Annotator
    from rtseg.pipeline.core import Pipeline, Stream
    from rtseg.pipeline.loading import load_runtime
    from rtseg.sinks import VideoFileSink
    from rtseg.sources import open_source

    seg = YoloSegModel(load_runtime(args.weights, device=args.device), imgsz=args.imgsz)
    load_before = os.getloadavg()  # other work on the machine makes every number noisy: recorded with them

    with tempfile.TemporaryDirectory(prefix="rtseg-bench-") as tmp:
        tmp = Path(tmp)

        def stream(i: int) -> Stream:
            source = open_source(str(args.video))
            return Stream(source, [VideoFileSink(tmp / f"o{i}.mp4", fps=source.fps)], Annotator(seg.names))

        def run(mode: str, frames: int) -> tuple[float, dict, list[int]]:
            t0 = time.perf_counter()
            if mode == MODES[0]:
                summaries = [Pipeline.multi([stream(i)], seg, max_frames=frames).run() for i in range(args.streams)]
            else:
                batch = 1 if mode == MODES[1] else None  # None: one frame of each stream per call
                summaries = [Pipeline.multi([stream(i) for i in range(args.streams)], seg, max_frames=frames,
                                            batch=batch).run()]
            elapsed = time.perf_counter() - t0
            per_stream = [s.frames for summary in summaries for s in summary.streams]
            stages = {k: round(v["p50"], 2) for k, v in summaries[-1].stages_ms.items()}
            return sum(per_stream) / elapsed, stages, per_stream

        run(MODES[2], 5)  # warm-up
        results: dict[str, list] = {m: [] for m in MODES}
        stages, frames_out = {}, {}
        for _ in range(args.repeats):  # interleaved, so drift in machine load hits every mode alike
            for mode in MODES:
                fps, stages[mode], frames_out[mode] = run(mode, args.frames)
                results[mode].append(round(fps, 2))
    median = {k: sorted(v)[len(v) // 2] for k, v in results.items()}
    gain = median[MODES[2]] / median[MODES[0]]
    machine = {"cpu_count": os.cpu_count(), "platform": platform.platform(), "torch": torch.__version__,
               "device": torch.cuda.get_device_name(0) if device_kind == "cuda" else "cpu",
               "loadavg_1min_before_after": [round(load_before[0], 2), round(os.getloadavg()[0], 2)]}
    report = {"video": str(args.video), "streams": args.streams, "frames_per_stream": args.frames,
              "repeats": args.repeats, "imgsz": args.imgsz, "weights": Path(args.weights).name,
              "fps_runs": results, "fps_median": median, "batched_vs_sequential": round(gain, 2),
              "frames_out_per_stream": frames_out, "stages_ms_p50": stages, "machine": machine}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    table = "\n".join([f"{'mode':<42}{'FPS (median, all streams)':>27}"] +
                      [f"{k:<42}{v:>27.2f}" for k, v in median.items()] +
                      [f"{'batched vs one after the other':<42}{gain:>26.2f}x"])
    print(table)


if __name__ == "__main__":
    main()
