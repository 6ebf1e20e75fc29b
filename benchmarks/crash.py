"""Crashes and stops at random moments of a live run: are the outputs still there, and do they play?

A real FFmpeg server streams a clip in a loop, in real time, as MPEG-TS over TCP on 127.0.0.1, and the real
CLI (``rtseg run tcp://... --out o.mp4 --jsonl o.jsonl``) reads it. Then:

- ``--kills`` runs end by SIGKILL at a random moment (no chance to finalize anything): the video must open
  and play up to within a second of the last JSONL record (the JSONL is flushed per record, so it tells
  how far the run got);
- ``--stops`` runs end by SIGINT or SIGTERM at a random moment, from start-up (model loading, sources
  opening) to well into the run, some while the stream is frozen (the server stopped with SIGSTOP, so a
  read blocks inside FFmpeg): every one must exit with code 130, and the outputs, if the run got as far as
  opening them, must play.

Results go to ``benchmarks/results/crash.json``.

Usage:
    python benchmarks/crash.py [--kills 10] [--stops 20] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from tests.support import count_frames, free_port, wait_listening, write_video  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "crash.json"
FPS = 15.0


def serve(clip: Path, port: int) -> subprocess.Popen:
    import imageio_ffmpeg

    server = subprocess.Popen([imageio_ffmpeg.get_ffmpeg_exe(), "-loglevel", "error", "-re", "-stream_loop", "-1",
                               "-i", str(clip), "-c:v", "mpeg4", "-q:v", "5", "-f", "mpegts",
                               f"tcp://127.0.0.1:{port}?listen=1"],
                              stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_listening(port, server)
    return server


def start_run(url: str, out: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "rtseg.cli", "run", url, "--out", str(out / "o.mp4"), "--jsonl",
                             str(out / "o.jsonl"), "--stall-timeout", "5"], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def playable(path: Path) -> int:
    """Frames a player decodes from ``path`` (0: none, or no file)."""
    return count_frames(path)[0] if path.exists() else 0


def records(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0


def one(clip: Path, mode: str, at_s: float, freeze: bool, sig: int) -> dict:
    port = free_port()
    server = serve(clip, port)
    with tempfile.TemporaryDirectory(prefix="rtseg-crash-") as tmp:
        out = Path(tmp)
        run = start_run(f"tcp://127.0.0.1:{port}", out)
        try:
            time.sleep(at_s)
            if freeze:
                server.send_signal(signal.SIGSTOP)  # connected, no data: the read blocks inside FFmpeg
                time.sleep(1.5)
            t_signal = time.monotonic()
            run.send_signal(sig)
            try:
                _, err = run.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                run.kill()
                _, err = run.communicate()
            exit_s = time.monotonic() - t_signal
        finally:
            server.send_signal(signal.SIGCONT)
            server.kill()
            server.wait()
        n_video, n_records = playable(out / "o.mp4"), records(out / "o.jsonl")
        opened = (out / "o.jsonl").exists()
    row = {"mode": mode, "signal": signal.Signals(sig).name, "at_s": round(at_s, 2), "frozen": freeze,
           "exit": run.returncode, "exit_s": round(exit_s, 2), "video_frames": n_video, "jsonl_records": n_records,
           "segfault": "Segmentation fault" in err or run.returncode == -signal.SIGSEGV,
           "traceback": "Traceback" in err}
    if mode == "kill":
        row["ok"] = n_records == 0 or n_video >= n_records - FPS  # plays up to within a second of the last record
    else:
        row["ok"] = run.returncode == 130 and not row["segfault"] and not row["traceback"] and (
            not opened or n_records == 0 or n_video >= n_records - 1)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--stops", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    rows = []
    with tempfile.TemporaryDirectory(prefix="rtseg-crash-clip-") as tmp:
        clip = write_video(Path(tmp) / "clip.avi", frames=90, size_wh=(640, 360), fps=FPS)
        for _ in range(args.kills):
            rows.append(one(clip, "kill", rng.uniform(4.0, 14.0), False, signal.SIGKILL))
            print(json.dumps(rows[-1]), flush=True)
        for i in range(args.stops):
            sig = signal.SIGINT if i % 2 == 0 else signal.SIGTERM
            freeze = i % 4 in (2, 3)  # a quarter of each signal while the stream is frozen
            at_s = rng.uniform(0.1, 3.0) if i % 5 == 0 else rng.uniform(4.0, 12.0)  # some during start-up
            rows.append(one(clip, "stop", at_s, freeze, sig))
            print(json.dumps(rows[-1]), flush=True)
    kills = [r for r in rows if r["mode"] == "kill"]
    stops = [r for r in rows if r["mode"] == "stop"]
    summary = {"kills_ok": f"{sum(r['ok'] for r in kills)}/{len(kills)}",
               "stops_ok": f"{sum(r['ok'] for r in stops)}/{len(stops)}",
               "stop_exit_s_max": max((r["exit_s"] for r in stops), default=0.0),
               "machine": f"{os.cpu_count()} cores", "rows": rows}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(summary, indent=1) + "\n")
    print(f"SIGKILL: {summary['kills_ok']} videos play up to within a second of the kill; "
          f"SIGINT/SIGTERM: {summary['stops_ok']} clean exits 130 with playable outputs "
          f"(slowest exit {summary['stop_exit_s_max']} s)")


if __name__ == "__main__":
    main()
