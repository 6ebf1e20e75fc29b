"""What the browser view (``--serve``) costs a run: end-to-end FPS at 720p with 0, 1 and 5 MJPEG viewers.

Each mode runs the same pipeline (a 720p clip decoded by rtseg, the bundled model, the annotator, a
:class:`~rtseg.serve.view.LiveView` sink; no other output, so the view's share is as large as it gets) while N
viewers read ``/stream/<tag>.mjpg`` at full size with ``http.client``, as fast as parts come, each in a process
of its own (on this machine: their CPU time is the run's loss too, as a browser on the same machine's would be).
Modes alternate over ``--repeats`` rounds so that drifting load on a shared machine hits all of them; the median
round of each mode is reported, and every round is kept in the JSON. On a shared machine wall-clock FPS is noisy;
the process's CPU time per frame (pipeline, server and JPEG threads together) is the steadier measure of what the
view costs: on a machine the run keeps busy, FPS falls by about the extra CPU share.

Results go to ``benchmarks/results/serve_cost.json``.

Usage:
    python benchmarks/serve_cost.py [--video V] [--frames 240] [--viewers 0,1,5] [--repeats 3] [--height 0]
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing as mp
import os
import platform
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# 1280x720, 25 fps, 341 frames (../shared/data/MANIFEST.md); read in place, never copied
DEFAULT_VIDEO = ROOT.parent / "shared" / "data" / "videos" / "people_walking_highangle.avi"


def viewer(port: int, path: str, ready: mp.Event, counts: mp.Queue) -> None:  # type: ignore[valid-type]
    """Reads the MJPEG stream until it ends; puts (parts, bytes, max part age in ms) on ``counts``."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    conn.request("GET", path)
    resp = conn.getresponse()
    ready.set()
    parts = size = 0
    ages: list[float] = []
    resp.readline()  # the opening boundary
    while True:
        headers = {}
        while (line := resp.readline()) not in (b"\r\n", b""):
            key, _, value = line.partition(b":")
            headers[key.strip().lower()] = value.strip()
        if not headers:  # the run ended, and its stream with it
            break
        size += len(resp.read(int(headers[b"content-length"])))
        ages.append(float(headers[b"x-age-ms"]))
        parts += 1
        resp.readline(), resp.readline()  # the part's end and the next boundary
    counts.put((parts, size, max(ages) if ages else 0.0, sorted(ages)[len(ages) // 2] if ages else 0.0,
                time.process_time()))


def one_run(video: Path, model: object, frames: int, n_viewers: int, height: int = 0) -> dict:
    from rtseg.overlay.annotator import Annotator
    from rtseg.pipeline.core import Pipeline
    from rtseg.serve.view import LiveView
    from rtseg.sources.base import open_source

    view = LiveView("127.0.0.1:0").start()
    source = open_source(str(video))
    sink = view.sink(video.stem, source, names=model.names)
    ctx = mp.get_context("spawn")
    counts = ctx.Queue()
    readers = []
    for _ in range(n_viewers):
        ready = ctx.Event()
        path = f"/stream/{sink.tag}.mjpg" + (f"?height={height}" if height else "")
        proc = ctx.Process(target=viewer, args=(view.port, path, ready, counts), daemon=True)
        proc.start()
        readers.append((proc, ready))
    for _, ready in readers:
        ready.wait(60)
    pipeline = Pipeline(source, model.instance, [sink], annotator=Annotator(model.names, hud=True), max_frames=frames)
    t0, cpu0 = time.perf_counter(), time.process_time()
    summary = pipeline.run()
    elapsed, cpu_s = time.perf_counter() - t0, time.process_time() - cpu0  # all threads: pipeline and server
    stats = view.stats()["sources"][sink.tag]
    view.stop()
    got = [counts.get(timeout=60) for _ in readers]
    for proc, _ in readers:
        proc.join(10)
    viewers_cpu_s = sum(g[4] for g in got)
    return {"viewers": n_viewers, "frames": summary.frames, "fps": round(summary.frames / elapsed, 2),
            "run_cpu_ms_per_frame": round(1000 * cpu_s / summary.frames, 2),
            "viewers_cpu_ms_per_frame": round(1000 * viewers_cpu_s / summary.frames, 2),
            "jpeg_encodes": stats["encodes"],
            "parts_per_viewer": [g[0] for g in got], "mb_per_viewer": [round(g[1] / 1e6, 1) for g in got],
            "part_age_ms_p50": [round(g[3], 1) for g in got], "part_age_ms_max": [round(g[2], 1) for g in got],
            "serve_stage_ms_p50": round(summary.stages_ms.get("serve", {}).get("p50", 0.0), 3),
            "latency_ms_p50": round(summary.stages_ms.get("latency", {}).get("p50", 0.0), 1),
            "load_avg_1m": os.getloadavg()[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--video", type=Path, default=DEFAULT_VIDEO)
    parser.add_argument("--frames", type=int, default=240)
    parser.add_argument("--viewers", default="0,1,5")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--height", type=int, default=0, help="viewers ask for frames this high (0: full size; "
                        "the page asks for about its display size, e.g. 480 on a desktop, 720 on a phone)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "serve_cost.json")
    args = parser.parse_args()
    if not args.video.is_file():
        raise SystemExit(f"no video at {args.video}: pass --video (a 720p clip)")
    import cv2

    import rtseg

    cap = cv2.VideoCapture(str(args.video))
    size_wh = (int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)))
    cap.release()
    model = rtseg.load_model(device=args.device)
    modes = [int(v) for v in args.viewers.split(",")]
    one_run(args.video, model, 20, 0)  # warm-up: model, caches
    rounds = []
    for r in range(args.repeats):
        for n in modes:
            result = one_run(args.video, model, args.frames, n, args.height)
            result["round"] = r
            rounds.append(result)
            print(f"round {r}: {n} viewers: {result['fps']:.2f} FPS", flush=True)
    def median(values: list[float]) -> float:
        values = sorted(values)
        return (values[(len(values) - 1) // 2] + values[len(values) // 2]) / 2

    per_mode = {n: [x for x in rounds if x["viewers"] == n] for n in modes}
    summary = {n: {"fps_median": round(median([x["fps"] for x in xs]), 2),
                   "fps_best": max(x["fps"] for x in xs),
                   "run_cpu_ms_per_frame": round(median([x["run_cpu_ms_per_frame"] for x in xs]), 2),
                   "viewers_cpu_ms_per_frame": round(median([x["viewers_cpu_ms_per_frame"] for x in xs]), 2),
                   "jpeg_encodes_per_frame": round(median([x["jpeg_encodes"] / x["frames"] for x in xs]), 2),
                   "part_age_ms_p50": round(median([max(x["part_age_ms_p50"] or [0]) for x in xs]), 1),
                   "serve_stage_ms_p50": round(median([x["serve_stage_ms_p50"] for x in xs]), 3)}
               for n, xs in per_mode.items()}
    base = summary[modes[0]]
    for n in modes:  # on a machine the run keeps busy, FPS falls as CPU per frame rises
        extra = summary[n]["run_cpu_ms_per_frame"] - base["run_cpu_ms_per_frame"]
        summary[n]["extra_cpu_pct"] = round(100 * extra / base["run_cpu_ms_per_frame"], 1)
        summary[n]["fps_vs_0_pct"] = round(100 * (summary[n]["fps_median"] / base["fps_median"] - 1), 1)
    print(f"\n{size_wh[0]}x{size_wh[1]}, {args.frames} frames, bundled model on {args.device}, "
          f"viewers at {args.height or size_wh[1]}p, median of {args.repeats} rounds "
          f"(load avg now {os.getloadavg()[0]:.1f})")
    print(f"{'viewers':>7} {'FPS':>7} {'vs 0':>7} {'run CPU ms/frame':>17} {'extra CPU':>10} {'viewers CPU':>12} "
          f"{'JPEG/frame':>11} {'age p50 ms':>11} {'serve ms':>9}")
    for n in modes:
        x = summary[n]
        print(f"{n:>7} {x['fps_median']:>7.2f} {x['fps_vs_0_pct']:>+6.1f}% {x['run_cpu_ms_per_frame']:>17.2f} "
              f"{x['extra_cpu_pct']:>+9.1f}% {x['viewers_cpu_ms_per_frame']:>12.2f} "
              f"{x['jpeg_encodes_per_frame']:>11.2f} "
              f"{x['part_age_ms_p50']:>11.0f} {x['serve_stage_ms_p50']:>9.3f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "video": args.video.name, "size_wh": size_wh, "frames": args.frames, "device": args.device,
        "viewer_height": args.height or size_wh[1],
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "summary": {str(n): summary[n] for n in modes},
        "rounds": rounds}, indent=2) + "\n")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
