"""How fast a live stream comes back: outages of a loopback TCP stream, and the time to the next frame out.

FFmpeg serves a clip in a loop, in real time, as MPEG-TS over TCP on 127.0.0.1 (``tests/streams_support.py``);
``rtseg.run`` reads it with the bundled model and writes a JSONL (``--mode run``: a frame is "out" when it is
written), or a bare :func:`rtseg.sources.open_source` is read in a loop (``--mode source``: the reconnect alone,
no model). The server is killed ``--outages`` times, each time for a random 1-6 s (seeded), and restarted on
the same port. For each outage: did the stream come back, and how long from the server listening again to the
next frame out. Results go to ``benchmarks/results/reconnect.json`` (``reconnect_source.json`` in source mode).

Usage:
    python benchmarks/reconnect.py [--outages 10] [--min-s 1] [--max-s 6] [--seed 0] [--mode run|source]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # tests.streams_support: the loopback stream servers the tests use


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--outages", type=int, default=10)
    parser.add_argument("--min-s", type=float, default=1.0)
    parser.add_argument("--max-s", type=float, default=6.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--mode", choices=("run", "source"), default="run")
    parser.add_argument("--between-s", type=float, default=2.0, help="steady streaming between two outages")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    out = args.out or ROOT / "benchmarks" / "results" / f"reconnect{'' if args.mode == 'run' else '_source'}.json"
    rng = random.Random(args.seed)
    downs = [round(rng.uniform(args.min_s, args.max_s), 2) for _ in range(args.outages)]

    from tests.streams_support import StreamServer
    from tests.support import write_video

    with tempfile.TemporaryDirectory(prefix="rtseg-reconnect-") as tmp:
        clip = write_video(Path(tmp) / "clip.avi", frames=60)
        with StreamServer(clip, "tcp") as server:
            frames_out: list[float] = []
            runner = _start(args.mode, server.url, Path(tmp), frames_out)
            _wait(lambda: len(frames_out) >= 10, 120, "no frame from the stream")
            rows = []
            for i, down_s in enumerate(downs):
                time.sleep(args.between_s)
                server.kill()
                time.sleep(down_s)
                server.start()
                back = server.started_at
                recovered = _wait(lambda b=back: bool(frames_out) and frames_out[-1] > b, 30)
                after = next((t for t in frames_out if t > back), None)
                row = {"down_s": down_s, "recovered": recovered,
                       "to_next_frame_s": round(after - back, 3) if after is not None else None}
                rows.append(row)
                print(f"outage {i + 1:2d}: down {down_s:.2f} s, "
                      + (f"next frame {row['to_next_frame_s']:.2f} s after the server was back" if recovered
                         else "not back within 30 s"), flush=True)
            reconnects = runner.stop()
    times = [r["to_next_frame_s"] for r in rows if r["recovered"]]
    result = {
        "what": "time from the TCP server listening again to rtseg's next frame out, per outage",
        "mode": args.mode, "seed": args.seed, "outages": rows,
        "recovered": f"{len(times)}/{len(rows)}", "reconnects": reconnects,
        "min_s": min(times) if times else None, "median_s": statistics.median(times) if times else None,
        "max_s": max(times) if times else None,
        "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
    }
    print(f"recovered {result['recovered']}; next frame after the server's return: min {result['min_s']:.2f} s, "
          f"median {result['median_s']:.2f} s, max {result['max_s']:.2f} s" if times else "never recovered")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")


def _wait(condition, timeout: float, failure: str | None = None) -> bool:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.005)
    if failure:
        raise SystemExit(failure)
    return False


class _Runner:
    def __init__(self, target, stop) -> None:  # noqa: ANN001
        self.result: list = []
        self._stop = stop
        self.thread = threading.Thread(target=lambda: self.result.append(target()), daemon=True)
        self.thread.start()

    def stop(self) -> int:
        self._stop()
        self.thread.join(30)
        return self.result[0] if self.result else -1


def _start(mode: str, url: str, tmp: Path, frames_out: list[float]) -> _Runner:
    """Read ``url`` in a thread; append the time of each frame out to ``frames_out``; stop() gives the reconnects."""
    if mode == "source":
        from rtseg.sources import open_source

        source = open_source(url)

        def read() -> int:
            while source.read() is not None:
                frames_out.append(time.monotonic())
            return source.reconnects

        return _Runner(read, source.interrupt)
    import rtseg

    stop = threading.Event()

    def run() -> int:
        summary = rtseg.run(url, jsonl=tmp / "out.jsonl", stop=stop,
                            on_frame=lambda *_: frames_out.append(time.monotonic()))
        return summary.streams[0].reconnects

    return _Runner(run, stop.set)


if __name__ == "__main__":
    main()
