"""Soak: a live run with the browser view and one viewer for a long time; does anything grow or slow down?

A real FFmpeg server loops a clip in real time over TCP on 127.0.0.1; the real CLI runs on it with
``--serve``, ``--jsonl`` and a segmented ``--out``; one MJPEG viewer reads the view all along. Every
``--every`` seconds the script samples the run's resident memory (``/proc/PID/status``) and its
``/stats.json`` (latency, FPS, dropped frames). At the end (SIGINT) it reports:

- RSS growth from the end of the warm-up (``--warmup`` minutes) to the end (target < 5 %);
- latency p95 in the first and the last 5 minutes (target: within 20 % of each other);
- gaps in the JSONL frame indices (frames the run dropped), and whether it exited 130.

Results go to ``benchmarks/results/soak.json``.

Usage:
    python benchmarks/soak.py [--minutes 30] [--clip ../shared/data/videos/people_walking_highangle.avi]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from tests.support import free_port, wait_listening  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "soak.json"
DEFAULT_CLIP = ROOT.parent / "shared" / "data" / "videos" / "people_walking_highangle.avi"


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def viewer(port: int, tag: str, stop: threading.Event, seen: list[int]) -> None:
    """One browser-like MJPEG client, reconnecting if the stream ends."""
    while not stop.is_set():
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            conn.request("GET", f"/stream/{tag}.mjpg")
            response = conn.getresponse()
            while not stop.is_set():
                chunk = response.read(65536)
                if not chunk:
                    break
                seen[0] += len(chunk)
            conn.close()
        except OSError:
            time.sleep(1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--warmup", type=float, default=3.0, help="minutes before the RSS baseline")
    parser.add_argument("--every", type=float, default=10.0, help="seconds between samples")
    parser.add_argument("--clip", type=Path, default=DEFAULT_CLIP)
    parser.add_argument("--height", type=int, default=360, help="the stream's frame height")
    parser.add_argument("--fps", type=float, default=10.0, help="the stream's frame rate")
    args = parser.parse_args()
    import imageio_ffmpeg

    stream_port, view_port = free_port(), free_port()
    server = subprocess.Popen([imageio_ffmpeg.get_ffmpeg_exe(), "-loglevel", "error", "-re", "-stream_loop", "-1",
                               "-i", str(args.clip), "-vf", f"scale=-2:{args.height},fps={args.fps}", "-c:v", "mpeg4",
                               "-q:v", "5", "-f", "mpegts", f"tcp://127.0.0.1:{stream_port}?listen=1"],
                              stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_listening(stream_port, server)
    samples: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="rtseg-soak-") as tmp:
        out = Path(tmp)
        run = subprocess.Popen([sys.executable, "-m", "rtseg.cli", "run", f"tcp://127.0.0.1:{stream_port}",
                                "--serve", f"127.0.0.1:{view_port}", "--jsonl", str(out / "soak.jsonl"),
                                "--out", str(out / "soak.mp4"), "--segment", "10m"],
                               stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        stop, seen = threading.Event(), [0]
        t0 = time.monotonic()
        try:
            while time.monotonic() - t0 < 60:  # the view is up once the model has loaded
                try:
                    stats = json.load(urllib.request.urlopen(f"http://127.0.0.1:{view_port}/stats.json", timeout=5))
                    if stats.get("sources"):
                        break
                except OSError:
                    pass
                time.sleep(1)
            tag = next(iter(stats["sources"])) if isinstance(stats.get("sources"), dict) else \
                stats["sources"][0]["tag"]
            threading.Thread(target=viewer, args=(view_port, tag, stop, seen), daemon=True).start()
            end = t0 + args.minutes * 60
            while time.monotonic() < end and run.poll() is None:
                time.sleep(args.every)
                try:
                    stats = json.load(urllib.request.urlopen(f"http://127.0.0.1:{view_port}/stats.json", timeout=5))
                except OSError as exc:
                    stats = {"error": str(exc)}
                source = stats.get("sources", {})
                source = (source.get(tag) if isinstance(source, dict) else next(
                    (s for s in source if s.get("tag") == tag), None)) or {}  # None: the run is ending
                samples.append({"t_s": round(time.monotonic() - t0, 1), "rss_mb": round(rss_mb(run.pid), 1),
                                "latency_ms": source.get("latency_ms"), "fps": source.get("fps"),
                                "dropped": source.get("dropped"), "viewers": source.get("viewers"),
                                "viewer_bytes": seen[0]})
                print(json.dumps(samples[-1]), flush=True)
        finally:
            stop.set()
            run.send_signal(signal.SIGINT)
            try:
                _, err = run.communicate(timeout=60)
            except subprocess.TimeoutExpired:
                run.kill()
                _, err = run.communicate()
            server.kill()
            server.wait()
        indices = []
        for part in sorted(out.glob("soak*.jsonl")):
            indices += [json.loads(line)["frame"] for line in part.read_text().splitlines() if line.strip()]
        parts = sorted(p.name for p in out.glob("soak_*.mp4"))
    steady = [s for s in samples if s["t_s"] >= args.warmup * 60]
    rss0, rss1 = (steady[0]["rss_mb"], steady[-1]["rss_mb"]) if steady else (0.0, 0.0)
    lat = [(s["t_s"], s["latency_ms"]) for s in samples if isinstance(s.get("latency_ms"), (int, float))]
    first = [v for t, v in lat if t <= 300]
    last = [v for t, v in lat if t >= lat[-1][0] - 300] if lat else []
    gaps = int(sum(np.diff(indices) > 1)) if len(indices) > 1 else 0
    report = {"minutes": args.minutes, "clip": args.clip.name, "height": args.height, "fps": args.fps,
              "exit": run.returncode, "frames": len(indices), "index_gaps": gaps,
              "rss_mb_after_warmup": rss0, "rss_mb_end": rss1,
              "rss_growth_pct": round(100 * (rss1 - rss0) / rss0, 2) if rss0 else None,
              "latency_p95_first5_ms": round(float(np.percentile(first, 95)), 1) if first else None,
              "latency_p95_last5_ms": round(float(np.percentile(last, 95)), 1) if last else None,
              "video_parts": parts, "viewer_bytes": seen[0], "stderr_tail": err[-2000:],
              "machine": f"{os.cpu_count()} cores", "samples": samples}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps({k: v for k, v in report.items() if k not in ("samples", "stderr_tail")}, indent=1))


if __name__ == "__main__":
    main()
