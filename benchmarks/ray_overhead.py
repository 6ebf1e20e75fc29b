"""What ``rtseg run --ray`` costs on one machine, and how fast a source whose worker died starts again.

Wall time of the real CLI, from spawn to exit, on the same clips (``--max-frames`` of each), same options:

- ``plain``: ``rtseg run A B C D --out o.mp4 --jsonl o.jsonl`` (one process, one batched pipeline);
- ``ray, local``: ``rtseg run --ray A B C D --out-dir D --ray-workers 1`` (a Ray started for the run and stopped
  after it: what a user without a cluster pays);
- ``ray, running cluster``: the same against a Ray head already running (``--ray 127.0.0.1:PORT``), the case of
  a real cluster.

Modes alternate within each repeat; the median is reported. Then the retry: the one worker is killed (SIGKILL)
while it writes its first source, and the time from the kill to that source's second attempt starting on the
replacement worker (which loads the model first) is read from ``cluster_summary.json``.

On this 2-core machine a cluster cannot be faster than one process; this measures the overhead only. Several
nodes and GPUs are not measured here.

Usage:
    nice -n 15 python benchmarks/ray_overhead.py [--frames 60] [--repeats 2] [--out FILE.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VIDEOS = ROOT.parent / "shared" / "data" / "videos"
CLIPS = ("pet_dog_pomeranian.mp4", "traffic_car-detection.mp4", "people_walking_highangle.avi",
         "people_one-by-one-person-detection.mp4")
CLI = [sys.executable, "-m", "rtseg.cli", "run"]


def timed(args: list[str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(args, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"failed ({done.returncode}): {' '.join(args)}\n{done.stderr[-2000:]}")
    return time.perf_counter() - start


def start_head(port: int, env: dict[str, str]) -> subprocess.Popen:
    head = subprocess.Popen([sys.executable, "-m", "ray.scripts.scripts", "start", "--head", "--block", "--port",
                             str(port), "--num-cpus", "2", "--object-store-memory", "100000000",
                             "--include-dashboard=false", "--disable-usage-stats"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
                            start_new_session=True)
    for _ in range(300):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return head
        except OSError:
            time.sleep(0.2)
    raise SystemExit("the Ray head did not start")


def stop_head(head: subprocess.Popen) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(head.pid, sig)
            head.wait(timeout=8)
            return
        except ProcessLookupError:
            return
        except subprocess.TimeoutExpired:
            continue


def kill_and_restart(address: str, clips: list[str], opts: list[str], work: Path) -> dict[str, float]:
    """Kill the only worker while it writes the first source; seconds from the kill to the retry's start."""
    out = work / "kill"
    proc = subprocess.Popen([*CLI, "--ray", address, *clips, "--out-dir", str(out), "--ray-workers", "1", *opts],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    killed_at, tag = None, None
    while killed_at is None and proc.poll() is None:
        for attempt in (out / ".rtseg-ray").glob("*.a1"):
            if any(attempt.iterdir()):
                tag = attempt.name.split(".")[0]
                os.kill(int(attempt.name.split(".")[1]), signal.SIGKILL)
                killed_at = time.time()
                break
        time.sleep(0.02)
    _, stderr = proc.communicate()
    if proc.returncode != 0 or killed_at is None:
        raise SystemExit(f"kill run failed ({proc.returncode}):\n{stderr[-2000:]}")
    summary = json.loads((out / "cluster_summary.json").read_text())
    source = next(s for s in summary["sources"] if s["tag"] == tag)
    retry = summary["retries"][0]
    return {"kill_to_restart_s": round(source["started_at"] - killed_at, 3),
            "driver_saw_death_to_dispatch_s": round(retry["dispatched_s"] - retry["death_seen_s"], 3),
            "attempts": source["attempts"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=60, help="frames of each clip (--max-frames)")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "ray_overhead.json")
    args = parser.parse_args()
    clips = [str(VIDEOS / name) for name in CLIPS]
    opts = ["--device", "cpu", "--max-frames", str(args.frames), "-q"]
    env = dict(os.environ, RAY_AUTH_MODE="disabled", RAY_TMPDIR=tempfile.mkdtemp(prefix="rtseg-ray-"))
    env.pop("RAY_ADDRESS", None)
    port = 6500 + os.getpid() % 1000
    head = start_head(port, env)
    address = f"127.0.0.1:{port}"
    times: dict[str, list[float]] = {"plain": [], "ray, local": [], "ray, running cluster": []}
    try:
        with tempfile.TemporaryDirectory(prefix="rtseg-ray-bench-") as tmp:
            work = Path(tmp)
            timed([*CLI, clips[0], "--out", str(work / "warm.mp4"), "--device", "cpu", "--max-frames", "5", "-q"])
            for r in range(args.repeats):
                times["plain"].append(timed([*CLI, *clips, "--out", str(work / f"p{r}.mp4"), "--jsonl",
                                             str(work / f"p{r}.jsonl"), *opts]))
                times["ray, local"].append(timed([*CLI, "--ray", "local", *clips, "--out-dir", str(work / f"l{r}"),
                                                  "--ray-workers", "1", *opts]))
                times["ray, running cluster"].append(timed([*CLI, "--ray", address, *clips, "--out-dir",
                                                            str(work / f"c{r}"), "--ray-workers", "1", *opts]))
                print({k: round(v[-1], 2) for k, v in times.items()}, file=sys.stderr)
            restart = kill_and_restart(address, clips, opts, work)
    finally:
        stop_head(head)
    plain = statistics.median(times["plain"])
    report = {
        "command": " ".join(["python", "benchmarks/ray_overhead.py", *sys.argv[1:]]),
        "clips": list(CLIPS), "frames_per_clip": args.frames, "repeats": args.repeats,
        "wall_s": {k: [round(x, 2) for x in v] for k, v in times.items()},
        "median_s": {k: round(statistics.median(v), 2) for k, v in times.items()},
        "overhead_vs_plain": {k: f"{(statistics.median(v) / plain - 1) * 100:+.1f}%" for k, v in times.items()
                              if k != "plain"},
        "retry": restart,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "note": "2-core VM shared with other jobs during the run; wall times are noisy"},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
