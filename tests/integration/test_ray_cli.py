"""``rtseg run --ray``: the real CLI against a real Ray cluster on this machine.

One Ray head for the module (2 CPUs and 2 fake GPUs, so workers are scheduled by ``num_gpus`` as on a GPU
cluster while they compute on the CPU with ``--device cpu``), short clips written with OpenCV, the bundled
model. A worker process is killed with SIGKILL in the middle of a source, as a lost node would lose it.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from tests.support import count_frames, free_port, read_tty, run_cli, spawn_cli_tty, write_video

pytest.importorskip("ray", reason="needs Ray (pip install -e '.[ray]')")
pytestmark = pytest.mark.slow
FRAMES = {"a": 24, "b": 36, "c": 18, "d": 30}
FAST = ("--device", "cpu", "--imgsz", "160")  # the workers compute on the CPU; small frames, a small input


@pytest.fixture(scope="module")
def ray_head() -> str:
    """A Ray head on 127.0.0.1, in a process group of its own so that exactly its processes are stopped."""
    port = free_port()
    env = dict(os.environ, RAY_AUTH_MODE="disabled", RAY_TMPDIR=tempfile.mkdtemp(prefix="rtseg-ray-"))
    env.pop("RAY_ADDRESS", None)
    head = subprocess.Popen([sys.executable, "-m", "ray.scripts.scripts", "start", "--head", "--block",
                             "--node-ip-address", "127.0.0.1", "--port", str(port), "--num-cpus", "2",
                             "--num-gpus", "2", "--object-store-memory", "100000000", "--include-dashboard=false",
                             "--disable-usage-stats"], env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or head.poll() is not None:
                    pytest.fail("the Ray head did not start")
                time.sleep(0.2)
        yield f"127.0.0.1:{port}"
    finally:
        _stop_group(head)


def _stop_group(proc: subprocess.Popen) -> None:
    for sig, wait_s in ((signal.SIGTERM, 5), (signal.SIGKILL, 10)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait_s)
            if sig == signal.SIGKILL:
                return
        except subprocess.TimeoutExpired:
            continue


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


def _cli() -> list[str]:
    return [sys.executable, "-m", "rtseg.cli"]


def _env() -> dict[str, str]:
    from tests.support import NONET

    return dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(NONET), os.environ.get("PYTHONPATH")])))
