"""Stops stay prompt and failures stay one line, through the real CLI (issue 22, items 5 and 6).

Stops: a live stream served by FFmpeg on 127.0.0.1 that stalls (the TCP server is frozen with SIGSTOP), drops
(the TCP server is killed) or vanishes (the UDP sender is killed) and then Ctrl-C; two Ctrl-C in quick
succession; SIGTERM while rtseg starts, while one huge frame is being inferred, while the model is still
exporting. Errors: unreadable inputs, a truncated checkpoint, corrupt images whose decoders
print on their own, an exception from Ultralytics' trainer.
"""

from __future__ import annotations

import ctypes
import json
import os
import pwd
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.streams_support import StreamServer
from tests.support import NONET, ROOT, count_frames, run_cli

SEMANTIC_CHECKPOINT = ROOT / "rtseg" / "assets" / "linknet-pets.pt"


def _env(**extra: str) -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(NONET), os.environ.get("PYTHONPATH")])),
                **extra)


def _start_cli(*args: str, cwd: Path | None = None, **env: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "rtseg.cli", *args], stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=cwd, env=_env(**env))


def _lines(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0


def _wait_for(condition, proc: subprocess.Popen, timeout: float = 120) -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        if condition():
            return
        time.sleep(0.05)
    proc.kill()
    _, err = proc.communicate()
    pytest.fail(f"rtseg never got there (exit {proc.returncode}): {err[-2000:]}")


def _stop(proc: subprocess.Popen, sig: int) -> tuple[float, str]:
    """Send ``sig``; the seconds until the process exited, and its stderr."""
    t0 = time.monotonic()
    proc.send_signal(sig)
    try:
        _, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
        pytest.fail(f"rtseg ignored {signal.Signals(sig).name} for 60 s: {err[-2000:]}")
    return time.monotonic() - t0, err


@pytest.fixture
def stream_server(video30: Path, request: pytest.FixtureRequest) -> Iterator[StreamServer]:
    """FFmpeg plays a clip in a loop, in real time, as MPEG-TS on 127.0.0.1 (over TCP unless the test is
    parametrised with ``protocol``), in a :class:`tests.streams_support.StreamServer` a test can freeze or kill."""
    with StreamServer(video30, getattr(request, "param", "tcp")) as server:
        yield server


def _assert_complete(jsonl: Path, out: Path, url: str) -> None:
    records = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert len(records) >= 5 and all(r["source"] == url for r in records)
    indices = [r["frame"] for r in records]  # a live source drops frames when the model falls behind
    assert indices == sorted(set(indices))
    frames, hw = count_frames(out)  # finalized: OpenCV decodes every frame written
    assert frames == len(records) and hw == (240, 320)


def _no_crash(proc: subprocess.Popen, err: str) -> None:
    assert proc.returncode not in (-signal.SIGSEGV, -signal.SIGABRT, 128 + signal.SIGSEGV), err[-1500:]
    for sign in ("Segmentation fault", "core dumped", "Fatal Python error", "terminate called", "Traceback"):
        assert sign not in err, err[-1500:]


@pytest.mark.parametrize(("stream_server", "how"), [("tcp", "stalled"), ("tcp", "dropped"), ("udp", "vanished")],
                         indirect=["stream_server"])
def test_ctrl_c_on_a_stalled_or_dropped_stream_stops_promptly_and_keeps_the_outputs(
        stream_server: StreamServer, how: str, tmp_path: Path) -> None:
    """Stalled (the TCP server frozen with SIGSTOP: connected, silent) or vanished (the UDP sender killed: no
    error ever reaches the reader), the decode thread is blocked inside FFmpeg's read until its timeout (the
    stall timeout, 10 s); dropped (the TCP server killed), rtseg is in its reconnect back-off. Either way Ctrl-C
    ends the run within seconds: exit 130, no crash (the capture is never released under the blocked read), a
    playable video and a JSONL record for each of its frames. The process is gone, so nothing can crash later
    when the read returns."""
    server = stream_server
    jsonl, out = tmp_path / "live.jsonl", tmp_path / "live.mp4"
    proc = _start_cli("run", server.url, "--jsonl", str(jsonl), "--out", str(out), "--workers", "1")
    _wait_for(lambda: _lines(jsonl) >= 5 or _lines(partial(jsonl)) >= 5, proc)
    if how == "stalled":
        server.freeze()  # the connection stays open; no byte arrives any more
    else:
        server.kill()
    time.sleep(2.0)  # stalled, vanished: the read is blocked by now; dropped: the back-off has begun
    seconds, err = _stop(proc, signal.SIGINT)
    assert proc.returncode == 130, err
    assert seconds < 5, f"Ctrl-C took {seconds:.1f} s: {err[-1500:]}"
    _no_crash(proc, err)
    assert "stopped after" in err
    if how == "dropped":
        assert "reconnecting" in err
    _assert_complete(jsonl, out, server.url)


def test_two_ctrl_c_in_quick_succession_still_finalize_the_outputs(tmp_path: Path) -> None:
    """An impatient double press: the second Ctrl-C, 0.05 s after the first, lands while the outputs are being
    closed; it must not abort that (the MP4 would have no index: unplayable)."""
    from tests.support import write_video

    clip = write_video(tmp_path / "long.avi", frames=300)
    jsonl, out = tmp_path / "x.jsonl", tmp_path / "x.mp4"
    proc = _start_cli("run", str(clip), "--jsonl", str(jsonl), "--out", str(out), "--workers", "1")
    _wait_for(lambda: _lines(jsonl) >= 5 or _lines(partial(jsonl)) >= 5, proc)
    proc.send_signal(signal.SIGINT)
    time.sleep(0.05)
    seconds, err = _stop(proc, signal.SIGINT)
    assert proc.returncode == 130, err
    _no_crash(proc, err)
    assert "stopped after" in err and "aborted" not in err
    records = len(jsonl.read_text().splitlines())
    assert count_frames(out) == (records, (240, 320))
    assert not partial(out).exists() and not partial(jsonl).exists()


def _sigterm_caught(pid: int) -> bool:
    with open(f"/proc/{pid}/status") as f:
        caught = next(int(line.split()[1], 16) for line in f if line.startswith("SigCgt:"))
    return bool(caught & (1 << (signal.SIGTERM - 1)))


def test_sigterm_while_starting_exits_130_not_killed(video30: Path, tmp_path: Path) -> None:
    """SIGTERM is handled from the first lines of the entry point, before the imports (typer, NumPy, ...): a
    service manager stopping rtseg while it starts gets exit 130 and one line, as from Ctrl-C, not a process
    killed by the signal (exit -15) with nothing said."""
    proc = _start_cli("run", str(video30), "--jsonl", str(tmp_path / "x.jsonl"))
    deadline = time.monotonic() + 30
    while not _sigterm_caught(proc.pid) and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.001)
    with open(f"/proc/{proc.pid}/maps") as f:
        numpy_loaded = "_multiarray_umath" in f.read()
    seconds, err = _stop(proc, signal.SIGTERM)
    assert not numpy_loaded, "SIGTERM is handled only after the heavy imports"
    assert proc.returncode == 130, err
    assert seconds < 3 and "Traceback" not in err
    assert [line for line in err.splitlines() if line.strip()] == ["rtseg: interrupted while starting"]


def partial(path: Path) -> Path:
    """Where an output is written until it is complete (rtseg.sinks.atomic)."""
    from rtseg.sinks.atomic import partial_path

    return partial_path(path)


def test_sigterm_during_one_huge_frame_does_not_wait_for_it(video30: Path, tmp_path: Path) -> None:
    """At --imgsz 4096 one frame takes the CPU many seconds inside ONNX Runtime, which cannot be interrupted;
    the stop does not wait for it: about 1.3 s here (it used to take 9 to 27 s, then abort at exit)."""
    jsonl = tmp_path / "huge.jsonl"
    proc = _start_cli("run", str(video30), "--imgsz", "4096", "--workers", "1", "--jsonl", str(jsonl), "-q")
    _wait_for(lambda: partial(jsonl).exists() or jsonl.exists(), proc)  # outputs open: the pipeline is starting
    time.sleep(1.5)  # the first frame is in the model now
    seconds, err = _stop(proc, signal.SIGTERM)
    assert proc.returncode == 130, err
    assert seconds < 3, f"SIGTERM took {seconds:.1f} s: {err[-1500:]}"
    assert "Traceback" not in err and "terminate called" not in err
    assert jsonl.is_file() and not partial(jsonl).exists()  # finalized, complete up to its last frame


def test_sigterm_while_the_model_exports_stops_at_once_and_writes_nothing(video30: Path, tmp_path: Path) -> None:
    """Before the first frame (here: the first run of a .pt on the CPU exports it to ONNX, seconds of work)
    a stop does not wait for the model: nothing has been written, so there is nothing to finalize."""
    cache, jsonl = tmp_path / "cache", tmp_path / "x.jsonl"
    proc = _start_cli("run", str(video30), "--jsonl", str(jsonl), "--verbose", RTSEG_CACHE=str(cache))
    assert proc.stderr is not None
    seen = ""
    while "exporting" not in seen and proc.poll() is None:  # rtseg: INFO: exporting ... to ONNX ...
        seen += proc.stderr.readline()
    seconds, err = _stop(proc, signal.SIGTERM)
    assert proc.returncode == 130, seen + err
    assert seconds < 3, f"SIGTERM took {seconds:.1f} s: {err[-1500:]}"
    assert "stopped before the first frame" in err and "Traceback" not in err
    assert not jsonl.exists() and not partial(jsonl).exists()
    assert not [p for p in cache.rglob("*") if p.is_file()]  # no half-written export left in the cache


def _one_error_line(res: subprocess.CompletedProcess) -> str:
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith("rtseg: error: ") and "\x1b[" not in lines[0], res.stderr
    return lines[0]


def _drop_file_permission_bypass() -> None:
    """preexec: remove CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH from the bounding set, so that root, after exec,
    meets file permissions as any user does (prctl PR_CAPBSET_DROP)."""
    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (1, 2):  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH
        if libc.prctl(24, cap, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


def _run_as_user(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """The CLI as an ordinary user meets permissions: as it is, or as root without its bypass."""
    preexec = _drop_file_permission_bypass if os.geteuid() == 0 else None
    try:
        return subprocess.run([sys.executable, "-m", "rtseg.cli", *args], capture_output=True, text=True, cwd=cwd,
                              env=_env(), timeout=300, preexec_fn=preexec)
    except subprocess.SubprocessError as exc:  # the capability could not be dropped (no CAP_SETPCAP)
        pytest.skip(f"root here cannot give up its permission bypass: {exc}")


@pytest.mark.parametrize("case", ["file", "in_locked_folder", "locked_image_folder"])
def test_unreadable_source_says_permission_denied(case: str, video30: Path, tmp_path: Path) -> None:
    """Not "cannot decode ... truncated" and not a traceback: the file system's own reason."""
    locked = tmp_path / "locked"
    locked.mkdir()
    if case == "file":
        source = tmp_path / "clip.avi"
        source.write_bytes(video30.read_bytes())
        source.chmod(0)
    elif case == "in_locked_folder":
        source = locked / "clip.avi"
        source.write_bytes(video30.read_bytes())
    else:
        source = locked
        cv2.imwrite(str(locked / "a.jpg"), np.zeros((32, 32, 3), np.uint8))
    locked.chmod(0)
    try:
        res = _run_as_user("run", str(source), "--jsonl", str(tmp_path / "x.jsonl"), cwd=tmp_path)
    finally:
        locked.chmod(0o755)
    assert res.returncode == 2, res.stderr
    line = _one_error_line(res)
    assert "Permission denied" in line and str(source) in line and "truncated" not in line


def test_unknown_user_in_a_path_is_one_line(tmp_path: Path) -> None:
    user = "rtseg_no_such_user"
    with pytest.raises(KeyError):
        pwd.getpwnam(user)
    res = run_cli("run", f"~{user}/x.mp4", cwd=tmp_path)
    assert res.returncode == 2, res.stderr
    assert f"~{user}/x.mp4" in _one_error_line(res)


def test_truncated_semantic_checkpoint_says_truncated(video30: Path, tmp_path: Path) -> None:
    """A copy cut short: the zip archive torch.save writes has lost its end (its central directory)."""
    cut = tmp_path / "pets_cut.pt"
    data = SEMANTIC_CHECKPOINT.read_bytes()
    cut.write_bytes(data[: len(data) * 2 // 5])
    for option in ("--model", "--semantic"):
        res = run_cli("run", str(video30), option, str(cut), "--jsonl", str(tmp_path / "x.jsonl"), cwd=tmp_path)
        assert res.returncode == 2, res.stderr
        line = _one_error_line(res)
        assert str(cut) in line
        words = line.split(str(cut), 1)[1]  # the test's own folder name holds the word "truncated"
        assert "truncated" in words and "Ultralytics" not in words


def test_corrupt_images_keep_decoder_chatter_off_the_terminal(tmp_path: Path) -> None:
    """libjpeg and libpng print by themselves, from the decode thread; that goes to the log (--verbose)."""
    folder = tmp_path / "frames"
    folder.mkdir()
    image = np.random.default_rng(0).integers(0, 255, (96, 128, 3), dtype=np.uint8)
    for name in ("a.jpg", "b.jpg", "c.png"):
        cv2.imwrite(str(folder / name), image)
    for name in ("b.jpg", "c.png"):  # cut in half: libjpeg decodes what it has, libpng gives up
        data = (folder / name).read_bytes()
        (folder / name).write_bytes(data[: len(data) // 2])
    res = run_cli("run", str(folder), "--jsonl", str(tmp_path / "x.jsonl"), "-q", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert "Premature end of JPEG" not in res.stderr and "libpng" not in res.stderr, res.stderr
    assert res.stderr.splitlines() == [f"rtseg: WARNING: skipping {folder / 'c.png'}: not an image OpenCV can decode"]
    assert _lines(tmp_path / "x.jsonl") == 2
    verbose = run_cli("run", str(folder), "--jsonl", str(tmp_path / "y.jsonl"), "-q", "--verbose", cwd=tmp_path)
    assert "rtseg: INFO: Premature end of JPEG file" in verbose.stderr  # logged, not lost


def test_truncated_video_is_processed_with_a_warning_and_an_empty_one_is_refused(video30: Path,
                                                                                 tmp_path: Path) -> None:
    """What the README promises: the frames that decode are processed (exit 0, one warning); a video with no
    decodable frame is bad input (exit 2)."""
    data = video30.read_bytes()
    cut = tmp_path / "cut.avi"
    cut.write_bytes(data[: len(data) // 5])
    res = run_cli("run", str(cut), "--jsonl", str(tmp_path / "cut.jsonl"), "-q", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    warning = [line for line in res.stderr.splitlines() if line.strip()]
    assert len(warning) == 1 and "of the 30 frames" in warning[0] and "may be truncated" in warning[0], res.stderr
    assert 0 < _lines(tmp_path / "cut.jsonl") < 30
    empty = tmp_path / "empty.avi"
    empty.write_bytes(data[:4000])  # the header, no whole frame
    res = run_cli("run", str(empty), "--jsonl", str(tmp_path / "empty.jsonl"), cwd=tmp_path)
    assert res.returncode == 2, res.stderr
    assert "cannot decode" in _one_error_line(res)


@pytest.mark.slow
def test_ultralytics_trainer_exception_is_one_line_without_colour(tmp_path: Path) -> None:
    """Instance training on a data.yaml whose validation folder is empty: Ultralytics raises its own coloured,
    two-line FileNotFoundError; the user sees one line in rtseg's words."""
    data = tmp_path / "data"
    for sub in ("images/train", "labels/train", "images/val"):
        (data / sub).mkdir(parents=True)
    for i in range(2):
        cv2.imwrite(str(data / "images" / "train" / f"{i}.jpg"), np.full((64, 64, 3), 90, np.uint8))
        (data / "labels" / "train" / f"{i}.txt").write_text("0 0.1 0.1 0.6 0.1 0.6 0.6\n")
    (data / "data.yaml").write_text(f"path: {data}\ntrain: images/train\nval: images/val\nnames:\n  0: thing\n")
    res = run_cli("train", "--data", str(data / "data.yaml"), "--model", "yolo11n-seg.yaml", "--epochs", "1",
                  "--imgsz", "64", "--out", str(tmp_path / "out.pt"), cwd=tmp_path)
    assert res.returncode != 0 and "Traceback" not in res.stderr, res.stderr
    line = _one_error_line(res)
    assert "images/val" in line
