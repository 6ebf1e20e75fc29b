"""``rtseg run --ray``: the real CLI against a real Ray cluster on this machine.

One Ray head for the module (2 CPUs and 2 fake GPUs, so workers are scheduled by ``num_gpus`` as on a GPU
cluster while they compute on the CPU with ``--device cpu``), short clips written with OpenCV, the bundled
model. A worker process is killed with SIGKILL in the middle of a source, as a lost node would lose it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import count_frames, free_port, read_tty, run_cli, spawn_cli_tty, write_video
from tests.support import ray_head as start_ray_head

pytest.importorskip("ray", reason="needs Ray (pip install -e '.[ray]')")
pytestmark = pytest.mark.slow
FRAMES = {"a": 24, "b": 36, "c": 18, "d": 30}
FAST = ("--device", "cpu", "--imgsz", "160")  # the workers compute on the CPU; small frames, a small input
PEOPLE = ("--device", "cpu", "--imgsz", "320")  # people_clip: the input size at which the model finds its people


@pytest.fixture(scope="module")
def ray_head() -> Iterator[str]:
    """A Ray head on 127.0.0.1 with 2 fake GPUs (:func:`tests.support.ray_head`)."""
    with start_ray_head(gpus=2) as address:
        yield address


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("clips")
    return {tag: write_video(folder / f"{tag}.avi", frames=n, size_wh=(160, 120), seed=i)
            for i, (tag, n) in enumerate(FRAMES.items())}


@pytest.fixture(scope="module")
def first_run(ray_head: str, clips: dict[str, Path], tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    """The four clips on two workers of one fake GPU each, on a terminal: (out dir, terminal text, exit code)."""
    out = tmp_path_factory.mktemp("ray") / "out"
    proc, master = spawn_cli_tty("run", "--ray", ray_head, *map(str, clips.values()), "--out-dir", str(out),
                                 *FAST, "--gpus-per-worker", "1")
    text = read_tty(master, proc, timeout=240)
    return out, text, proc.wait(timeout=30)


def _outputs_complete(out: Path, frames: dict[str, int]) -> None:
    """Exactly one video and one JSONL per source, each whole, and nothing half written left behind."""
    names = sorted(p.name for p in out.iterdir() if not p.name.startswith("."))
    assert names == sorted([*(f"{t}.mp4" for t in frames), *(f"{t}.jsonl" for t in frames), "cluster_summary.json"])
    assert [p.name for p in (out / ".rtseg-ray").iterdir() if p.is_dir()] == []  # no attempt folder left
    for tag, n in frames.items():
        assert count_frames(out / f"{tag}.mp4")[0] == n
        records = [json.loads(line) for line in (out / f"{tag}.jsonl").read_text().splitlines()]
        assert [r["frame"] for r in records] == list(range(n))


def test_four_clips_give_four_complete_outputs_and_a_summary(first_run) -> None:
    out, text, code = first_run
    assert code == 0, text
    _outputs_complete(out, FRAMES)
    summary = json.loads((out / "cluster_summary.json").read_text())
    assert summary["workers"] == 2 and summary["failed"] == 0 and summary["frames"] == sum(FRAMES.values())
    assert [(s["tag"], s["status"], s["frames"]) for s in summary["sources"]] == [
        (t, "ok", n) for t, n in FRAMES.items()]
    assert {s["gpus"] for s in summary["sources"]} <= {"0", "1"}  # scheduled on the (fake) GPUs, one each
    assert [n["sources"] for n in summary["nodes"]] == [4]
    assert "/4 sources" in text and "frame/s" in text  # the progress bar on the terminal: frames, sources done
    assert "node" in text and "infer p50/p95" in text and "Traceback" not in text


def test_rerun_skips_finished_sources_and_redoes_a_deleted_one(first_run, ray_head: str,
                                                               clips: dict[str, Path]) -> None:
    out, _, code = first_run
    assert code == 0
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir() if p.suffix in (".mp4", ".jsonl")}
    args = ("run", "--ray", ray_head, *map(str, clips.values()), "--out-dir", str(out), *FAST)
    again = run_cli(*args, timeout=120)
    assert again.returncode == 0, again.stderr
    assert "4 sources already complete" in again.stderr
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir() if p.suffix in (".mp4", ".jsonl")} == before
    (out / "c.mp4").unlink()
    redo = run_cli(*args, timeout=240)
    assert redo.returncode == 0, redo.stderr
    summary = json.loads((out / "cluster_summary.json").read_text())
    assert {s["tag"]: s["status"] for s in summary["sources"]} == {"a": "skipped", "b": "skipped", "c": "ok",
                                                                   "d": "skipped"}
    _outputs_complete(out, FRAMES)
    assert {n: t for n, t in before.items() if not n.startswith("c.")} == {
        p.name: p.stat().st_mtime_ns for p in out.iterdir() if p.suffix in (".mp4", ".jsonl") and p.stem != "c"}


def test_a_killed_worker_has_its_source_retried_and_a_corrupt_clip_fails_alone(ray_head: str, tmp_path: Path) -> None:
    """One run for both (each costs a cluster run): a worker killed mid-source, and a file that cannot decode."""
    frames = {"long": 150, "s1": 20}
    for i, (tag, n) in enumerate(frames.items()):
        write_video(tmp_path / f"{tag}.avi", frames=n, size_wh=(160, 120), seed=10 + i)
    bad = tmp_path / "bad.avi"
    bad.write_bytes(b"RIFF" + os.urandom(4000))
    out = tmp_path / "out"
    proc = subprocess.Popen([*_cli(), "run", "--ray", ray_head, *(str(tmp_path / f"{t}.avi") for t in frames),
                             str(bad), "--out-dir", str(out), *FAST, "--retries", "1"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env())
    killed = None
    deadline = time.monotonic() + 180
    while killed is None and time.monotonic() < deadline and proc.poll() is None:
        attempts = list((out / ".rtseg-ray").glob("long.*.a1"))
        if attempts and any(attempts[0].iterdir()):  # the worker is writing the long clip's outputs
            killed = int(attempts[0].name.split(".")[1])
            os.kill(killed, signal.SIGKILL)  # the Ray worker process running that source
        time.sleep(0.05)
    _, stderr = proc.communicate(timeout=240)
    assert killed is not None, stderr
    assert proc.returncode == 2, stderr  # the corrupt clip
    assert "Traceback" not in stderr
    assert stderr.strip().splitlines()[-1].startswith("rtseg: error: bad: cannot decode")
    assert any(line.startswith("bad ") and " failed " in line for line in stderr.splitlines())  # its table row
    assert not (out / "bad.mp4").exists() and not (out / "bad.jsonl").exists()
    _outputs_complete(out, frames)  # each exactly once, whole, and nothing of the corrupt clip
    summary = json.loads((out / "cluster_summary.json").read_text())
    assert {s["tag"]: s["status"] for s in summary["sources"]} == {"long": "ok", "s1": "ok", "bad": "failed"}
    long = next(s for s in summary["sources"] if s["tag"] == "long")
    assert long["attempts"] == 2 and long["pid"] != killed
    assert [r["tag"] for r in summary["retries"]] == ["long"] and summary["retries"][0]["dispatched_s"] is not None


@pytest.mark.parametrize(("extra", "expected"), [
    (["--gpus-per-worker", "3"], "--gpus-per-worker 3: the cluster has 2 GPUs"),
    (["--gpus-per-worker", "1", "--ray-workers", "3"], "--ray-workers 3: 3 workers of 1 GPU"),
    (["--jsonl", "x.jsonl"], "--jsonl does not apply with --ray"),
])
def test_bad_requests_to_the_cluster_are_one_line_before_any_work(ray_head: str, clips: dict[str, Path],
                                                                  tmp_path: Path, extra: list[str],
                                                                  expected: str) -> None:
    result = run_cli("run", "--ray", ray_head, str(clips["a"]), str(clips["b"]), str(clips["c"]), "--out-dir",
                     str(tmp_path / "out"), *FAST, *extra, timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [result.stderr.strip()] and expected in result.stderr
    assert not list((tmp_path / "out").glob("*.mp4"))


def test_an_unreachable_address_and_an_unwritable_out_dir_fail_fast(clips: dict[str, Path], tmp_path: Path) -> None:
    started = time.monotonic()
    result = run_cli("run", "--ray", f"127.0.0.1:{free_port()}", str(clips["a"]), "--out-dir", str(tmp_path / "o"))
    assert result.returncode == 2 and result.stderr.startswith("rtseg: error: --ray 127.0.0.1:")
    assert "cannot reach a Ray cluster" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    result = run_cli("run", "--ray", str(clips["a"]), "--out-dir", str(blocker / "out"))
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert result.stderr.startswith("rtseg: error: --out-dir ") and "cannot write there" in result.stderr
    assert time.monotonic() - started < 30  # neither started Ray nor loaded a model


@pytest.fixture(scope="module")
def people_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """150 frames (10 s at 15 FPS) of real photos with people in them, panned: the bundled model finds and
    tracks them, and ``--split 2s`` cuts the clip into 5 parts, each cut while the same people are in view."""
    from rtseg.sources.demo import build_clip

    return build_clip(tmp_path_factory.mktemp("people") / "people.avi", size_wh=(320, 180), seconds_per_image=5.0)


def _plain_run(clip: Path, folder: Path, *extra: str) -> tuple[Path, Path]:
    video, jsonl = folder / "plain.mp4", folder / "plain.jsonl"
    result = run_cli("run", str(clip), "--out", str(video), "--jsonl", str(jsonl), *PEOPLE, *extra, timeout=120)
    assert result.returncode == 0, result.stderr
    return video, jsonl


def _records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _no_parts_left(out: Path) -> None:
    state = out / ".rtseg-ray"
    assert sorted(p.name for p in state.iterdir()) == ["people.done.json"]  # no part, part marker or attempt left


def test_split_resumes_a_failed_part_and_equals_a_plain_run_frame_for_frame(ray_head: str, people_clip: Path,
                                                                             tmp_path: Path) -> None:
    """A part whose worker is killed (no retry allowed) fails its source and only it is run again by the same
    command; the joined outputs are then those of a plain run: same frames, detections and timestamps."""
    plain_video, plain_jsonl = _plain_run(people_clip, tmp_path)
    out = tmp_path / "out"
    args = ["run", "--ray", ray_head, str(people_clip), "--out-dir", str(out), *PEOPLE, "--split", "2s", "--retries",
            "0"]
    proc = subprocess.Popen([*_cli(), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env())
    killed = None
    deadline = time.monotonic() + 180
    while killed is None and time.monotonic() < deadline and proc.poll() is None:
        attempts = list((out / ".rtseg-ray").glob("people.part001.*.a1"))
        if attempts and any(attempts[0].iterdir()):  # the worker is writing part001
            killed = int(attempts[0].name.rsplit(".", 2)[1])
            os.kill(killed, signal.SIGKILL)
        time.sleep(0.01)
    _, stderr = proc.communicate(timeout=240)
    assert killed is not None, stderr
    assert proc.returncode == 2, stderr
    assert stderr.strip().splitlines()[-1] == "rtseg: error: people: part001: its worker died 1 times (--retries 0)"
    assert not (out / "people.mp4").exists() and not (out / "people.jsonl").exists()
    first = json.loads((out / "cluster_summary.json").read_text())["sources"][0]
    assert [(p["tag"], p["status"]) for p in first["parts"]] == [
        ("people.part000", "ok"), ("people.part001", "failed"), ("people.part002", "ok"), ("people.part003", "ok"),
        ("people.part004", "ok")]

    again = run_cli(*args, timeout=240)
    assert again.returncode == 0, again.stderr
    summary = json.loads((out / "cluster_summary.json").read_text())
    (source,) = summary["sources"]
    assert (source["status"], source["frames"]) == ("ok", 150)
    assert [p["status"] for p in source["parts"]] == ["skipped", "ok", "skipped", "skipped", "skipped"]
    assert source["parts"][1]["seek"] == "seek"  # it sought to its first frame, checked, rather than decode to it
    assert "  part001  ok" in again.stderr  # each part's row under its source in the table
    _no_parts_left(out)
    plain, joined = _records(plain_jsonl), _records(out / "people.jsonl")
    assert len(joined) == len(plain) == 150 and sum(len(r["detections"]) for r in plain) > 150
    for a, b in zip(plain, joined):  # every field but the timings: frame, timestamp, source, detections, masks
        assert {k: v for k, v in b.items() if k != "timings_ms"} == {k: v for k, v in a.items() if k != "timings_ms"}
    assert count_frames(out / "people.mp4") == count_frames(plain_video) == (150, (180, 320))


def _iou(a: list[float], b: list[float]) -> float:
    w, h = min(a[2], b[2]) - max(a[0], b[0]), min(a[3], b[3]) - max(a[1], b[1])
    inter = max(0.0, w) * max(0.0, h)
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def test_split_with_track_keeps_each_objects_id_across_the_cuts(ray_head: str, people_clip: Path,
                                                                tmp_path: Path) -> None:
    _, plain_jsonl = _plain_run(people_clip, tmp_path, "--track")
    out = tmp_path / "out"
    result = run_cli("run", "--ray", ray_head, str(people_clip), "--out-dir", str(out), *PEOPLE, "--track",
                     "--split", "2s", timeout=240)
    assert result.returncode == 0, result.stderr
    plain, joined = _records(plain_jsonl), _records(out / "people.jsonl")
    assert [r["frame"] for r in joined] == list(range(150))
    assert [r["timestamp_s"] for r in joined] == [r["timestamp_s"] for r in plain]
    across = 0
    for cut in (30, 60, 90, 120):  # an object in view on both sides of a cut keeps its id
        before, after = joined[cut - 1]["detections"], joined[cut]["detections"]
        for det in after:
            same = [d for d in before
                    if d["class_id"] == det["class_id"] and _iou(d["box_xyxy"], det["box_xyxy"]) > 0.5]
            if same:
                across += 1
                assert det["track_id"] == same[0]["track_id"], (cut, det, same)
    assert across >= 4
    for record in joined:  # no two objects of a frame share an id
        ids = [d["track_id"] for d in record["detections"]]
        assert len(ids) == len(set(ids)), record["frame"]
    _no_parts_left(out)


@pytest.mark.parametrize(("args", "expected"), [
    (["--ray", "127.0.0.1:1", "--out-dir", "o", "--split", "abc"],
     "rtseg: error: --split abc: expected a duration such as 90s, 10m or 1h"),
    (["--ray", "127.0.0.1:1", "--out-dir", "o", "--split", "0.5"],
     "rtseg: error: --split 0.5: expected at least 1 second"),
    (["--split", "60s", "--out", "x.mp4"], "rtseg: error: --split goes with --ray"),
    (["--ray", "127.0.0.1:1", "--out-dir", "o", "--segment", "2s"],
     "rtseg: error: --segment 2s: on a cluster it cuts live streams' outputs into parts; video files get one output"),
    (["--ray", "127.0.0.1:1", "--out-dir", "o", "--segment", "0"], "rtseg: error: --segment 0: expected at least 1"),
])
def test_a_bad_split_is_one_line_before_any_work(clips: dict[str, Path], tmp_path: Path, args: list[str],
                                                 expected: str) -> None:
    result = run_cli("run", str(clips["a"]), *args, cwd=tmp_path, timeout=60)
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1 and result.stderr.startswith(expected), result.stderr
    assert list(tmp_path.iterdir()) == []  # no out dir, no video


def test_bench_ray_writes_one_row_per_worker_count(ray_head: str, clips: dict[str, Path], tmp_path: Path) -> None:
    report, figure = tmp_path / "scaling.json", tmp_path / "scaling.png"
    result = run_cli("bench", "--ray", ray_head, "--source", str(clips["b"]), "--ray-workers", "1,2", "--frames", "20",
                     "--repeats", "1", "--device", "cpu", "--imgsz", "160", "--json", str(report), "--plot",
                     str(figure), timeout=240)
    assert result.returncode == 0, result.stderr
    data = json.loads(report.read_text())
    assert data["kind"] == "ray-scaling" and len(data["sources"]) == 2  # the clip twice: work for 2 workers
    assert [row["workers"] for row in data["rows"]] == [1, 2]
    for row in data["rows"]:
        assert row["frames"] == 40 and row["fps"] > 0 and row["failed"] == 0 and row["busy_s"] <= row["wall_s"]
        assert {"decode", "infer", "encode"} <= set(row["nodes"][0]["stages_ms"])
    assert data["rows"][0]["speedup"] == 1.0
    assert figure.read_bytes()[:4] == b"\x89PNG"
    assert "speedup" in result.stdout and not list(tmp_path.glob("rtseg-bench-ray-*"))


def test_bench_ray_refuses_what_it_cannot_measure_in_one_line(clips: dict[str, Path]) -> None:
    result = run_cli("bench", "--ray", "127.0.0.1:1", "--source", str(clips["a"]), "--imgsz", "160,320", timeout=60)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert result.stderr.startswith("rtseg: error: --imgsz 160,320: --ray measures one configuration")
    result = run_cli("bench", "--ray-workers", "1,2", "--source", str(clips["a"]), timeout=60)
    assert result.returncode == 2 and result.stderr.startswith("rtseg: error: --ray-workers, --out-dir and --split "
                                                               "go with --ray")


def test_a_live_streams_parts_appear_while_it_runs_and_a_retry_never_overwrites_them(ray_head: str,
                                                                                     tmp_path: Path) -> None:
    """A live stream (FFmpeg on 127.0.0.1, 15 FPS) in parts of 1 s: a finished part is in the out dir, whole, while
    the stream goes on; then its worker is killed, and the retry goes on with the next part numbers, every earlier
    part left as it was. The stream ends with --max-frames; a rerun of the command skips it."""
    from tests.streams_support import StreamServer

    clip = write_video(tmp_path / "loop.avi", frames=30, size_wh=(160, 120), fps=15)
    out = tmp_path / "out"
    with StreamServer(clip, "tcp") as server:
        args = ["run", "--ray", ray_head, server.url, "--out-dir", str(out), *FAST, "--segment", "1s", "--max-frames",
                "45", "--retries", "1"]
        proc = subprocess.Popen([*_cli(), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env=_env())
        seen: dict[str, bytes] = {}
        deadline = time.monotonic() + 120
        while not seen and time.monotonic() < deadline and proc.poll() is None:
            attempt = list((out / ".rtseg-ray").glob("stream.*.a1"))
            if attempt and (out / "stream_000.jsonl").exists():  # a part's JSONL goes out after its video
                seen = {p.name: p.read_bytes() for p in out.glob("stream_*")}
                os.kill(int(attempt[0].name.split(".")[1]), signal.SIGKILL)  # the worker, while the stream goes on
            time.sleep(0.05)
        assert seen, "no part reached the out dir while the stream ran: " + proc.communicate(timeout=60)[1]
        server.restart()  # FFmpeg's TCP server serves one client: back for the retry
        _, stderr = proc.communicate(timeout=180)
    assert proc.returncode == 0, stderr
    assert {"stream_000.mp4", "stream_000.jsonl"} <= set(seen)
    (source,) = json.loads((out / "cluster_summary.json").read_text())["sources"]
    assert (source["status"], source["attempts"]) == ("ok", 2) and 0 < source["frames"] <= 45
    parts = sorted(p.name for p in out.glob("stream_*"))
    numbers = sorted({int(name[7:10]) for name in parts})
    assert parts == [f"stream_{i:03d}.{ext}" for i in numbers for ext in ("jsonl", "mp4")]
    assert numbers == list(range(len(numbers)))  # no gap, no number twice
    for name, data in seen.items():  # the first attempt's parts, as they were when it was killed
        assert (out / name).read_bytes() == data
    retry = sorted(source["segments"])
    assert retry and not set(retry) & set(seen) and min(retry) > max(n for n in parts if n not in retry)
    frames, first = [], []
    for i in numbers:
        records = [json.loads(line) for line in (out / f"stream_{i:03d}.jsonl").read_text().splitlines()]
        assert records and count_frames(out / f"stream_{i:03d}.mp4") == (len(records), (120, 160))
        assert {r["source"] for r in records} == {server.url}
        (frames if f"stream_{i:03d}.jsonl" in retry else first).extend(r["frame"] for r in records)
    assert max(first) < 44  # the first attempt was killed before its last frame: its parts went out while it ran
    # the retry's parts hold its frames, each once, in order (a frame dropped to keep up with the stream leaves a gap)
    assert len(frames) == source["frames"] and frames == sorted(set(frames)) and frames[-1] < 45
    assert [p for p in (out / ".rtseg-ray").iterdir() if p.is_dir()] == []
    again = run_cli(*args, timeout=120)  # the stream is over: complete, so skipped (it is not even opened)
    assert again.returncode == 0 and "1 sources already complete" in again.stderr, again.stderr


def _cli() -> list[str]:
    return [sys.executable, "-m", "rtseg.cli"]


def _env() -> dict[str, str]:
    from tests.support import NONET

    return dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(NONET), os.environ.get("PYTHONPATH")])))
