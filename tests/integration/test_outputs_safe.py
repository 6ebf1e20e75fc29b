"""Nothing the user has is destroyed, through the real CLI: outputs that would overwrite an input or each other
are refused before any work (exit 2, one line, the input unchanged), every output path is checked before the
model loads, outputs are renamed into place only when complete, and a write that fails mid-run (a full disk, a
file-size limit) ends the run with one line while the other outputs are finalized."""

from __future__ import annotations

import hashlib
import json
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.support import NONET, ROOT, count_frames, run_cli, write_video


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _one_line_error(proc: subprocess.CompletedProcess, expected: str) -> str:
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("rtseg: error: ") and expected in lines[0], lines[0]
    return lines[0]


def _partials(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if ".partial" in p.name)


def _frames_folder(folder: Path, n: int = 3) -> Path:
    folder.mkdir()
    for i in range(n):
        cv2.imwrite(str(folder / f"frame_{i:06d}.jpg"), np.full((48, 64, 3), 60 * i, np.uint8))
    return folder


REFUSED = {
    "--out is the source": (["run", "dog.mp4", "--out", "dog.mp4"], "--out dog.mp4: it is the input dog.mp4"),
    "--out is a link to the source": (["run", "dog.mp4", "--out", "link.mp4"], "(the same file, through a link)"),
    "--jsonl is the source": (["run", "dog.mp4", "--jsonl", "dog.mp4"], "--jsonl dog.mp4: it is the input"),
    "--jsonl is the weights": (["run", "dog.mp4", "--model", "w.pt", "--jsonl", "w.pt"], "it is the input w.pt"),
    "--out and --jsonl on one path": (["run", "dog.mp4", "--out", "same.mp4", "--jsonl", "same.mp4"],
                                      "--out same.mp4 and --jsonl same.mp4: both write"),
    "--save-frames into the globbed folder": (["run", "frames/*.jpg", "--save-frames", "frames/"],
                                              "the source 'frames/*.jpg' matches the files written there"),
    "--save-frames into the source folder": (["run", "frames", "--save-frames", "frames"],
                                             "it is the source folder frames"),
    "suffixed outputs of two sources": (["run", "dog.mp4", "frames", "--out", "o.mp4", "--jsonl", "o.mp4"],
                                        "both write /"),
}


@pytest.mark.parametrize("case", list(REFUSED))
def test_outputs_that_would_destroy_inputs_are_refused_before_any_work(case: str, tmp_path: Path) -> None:
    write_video(tmp_path / "dog.mp4", frames=20)
    (tmp_path / "link.mp4").symlink_to(tmp_path / "dog.mp4")
    (tmp_path / "w.pt").write_bytes(b"weights the run would never get to load")
    _frames_folder(tmp_path / "frames")
    before = {p: _sha(p) for p in tmp_path.rglob("*") if p.is_file()}
    args, expected = REFUSED[case]
    _one_line_error(run_cli(*args, cwd=tmp_path), expected)
    assert {p: _sha(p) for p in tmp_path.rglob("*") if p.is_file()} == before  # nothing changed, nothing added


def test_full_disk_for_the_jsonl_is_one_line_and_the_video_is_finalized(tmp_path: Path) -> None:
    video = write_video(tmp_path / "clip.avi", frames=20)
    proc = run_cli("run", str(video), "--jsonl", "/dev/full", "--out", str(tmp_path / "o.mp4"))
    _one_line_error(proc, "cannot write JSONL /dev/full: No space left on device")
    frames, hw = count_frames(tmp_path / "o.mp4")  # what was written before the failure, playable
    assert 1 <= frames < 20 and hw == (240, 320)
    assert _partials(tmp_path) == []


def _file_size_limit(limit_bytes: int):  # noqa: ANN202 - a preexec_fn
    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past the limit fail with EFBIG instead of killing
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit_bytes, limit_bytes))
    return apply


def test_video_write_failing_mid_run_is_one_line_and_the_jsonl_is_kept(tmp_path: Path) -> None:
    video = write_video(tmp_path / "clip.avi", frames=150)
    out, jsonl = tmp_path / "o.mp4", tmp_path / "o.jsonl"
    env = dict(os.environ, PYTHONPATH=str(NONET))
    # --backend torch: no ONNX export is written to the cache under the limit
    proc = subprocess.run([sys.executable, "-m", "rtseg.cli", "run", str(video), "--backend", "torch", "--out",
                           str(out), "--jsonl", str(jsonl)], capture_output=True, text=True, env=env, timeout=300,
                          preexec_fn=_file_size_limit(100_000))
    _one_line_error(proc, f"cannot write video {out}: File too large")
    records = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert 1 <= len(records) < 150 and [r["frame"] for r in records] == list(range(len(records)))
    assert not out.exists() and _partials(tmp_path) == []  # an unfinished MP4 is not a video: nothing is left


def test_sigint_leaves_final_named_playable_outputs_and_no_partial_files(tmp_path: Path) -> None:
    video = write_video(tmp_path / "long.avi", frames=400, size_wh=(640, 480))
    out, jsonl, frames = tmp_path / "o.mp4", tmp_path / "o.jsonl", tmp_path / "frames"
    env = dict(os.environ, PYTHONPATH=str(NONET))
    proc = subprocess.Popen([sys.executable, "-m", "rtseg.cli", "run", str(video), "--out", str(out), "--jsonl",
                             str(jsonl), "--save-frames", str(frames), "--imgsz", "640"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and (not jsonl.exists() or len(jsonl.read_text().splitlines()) < 8):
        time.sleep(0.1)
    assert not out.exists()  # while the run goes on, the video is only under its temporary name
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    n = len(jsonl.read_text().splitlines())
    assert 8 <= count_frames(out)[0] == n < 400
    assert len(list(frames.glob("frame_*.jpg"))) == n
    assert _partials(tmp_path) == []


def test_eval_and_bench_refuse_bad_report_paths_before_the_model_loads(tmp_path: Path) -> None:
    bad_model = tmp_path / "bad.pt"
    bad_model.write_text("not weights: the commands must fail on the output path before they read this\n")
    data = tmp_path / "data"
    (data / "images").mkdir(parents=True)
    (data / "classes.txt").write_text("background\nthing\n")
    cases = [
        (["eval", "--model", str(bad_model), "--data", str(data), "--json", str(tmp_path / "no" / "m.json")],
         "folder"),
        (["eval", "--model", str(bad_model), "--data", str(data), "--plot", str(tmp_path / "confusion.txt")],
         "--plot"),
        (["eval", "--model", str(bad_model), "--data", str(data), "--json", str(data / "classes.txt")],
         "it is the input"),
        (["bench", "--model", str(bad_model), "--json", str(tmp_path / "no" / "b.json")], "does not exist"),
        (["bench", "--model", str(bad_model), "--json", str(tmp_path / "b.png"), "--plot", str(tmp_path / "b.png")],
         "both write"),
    ]
    for args, expected in cases:
        line = _one_line_error(run_cli(*args), expected)
        assert "bad.pt" not in line, line  # the output path was checked first
    assert (data / "classes.txt").read_text() == "background\nthing\n"


def test_eval_report_on_a_full_disk_is_one_line(tmp_path: Path) -> None:
    data = tmp_path / "data"
    for sub in ("images", "masks"):
        (data / sub).mkdir(parents=True)
    for i in range(2):
        cv2.imwrite(str(data / "images" / f"{i}.png"), np.full((64, 64, 3), 90 * i, np.uint8))
        cv2.imwrite(str(data / "masks" / f"{i}.png"), np.eye(64, dtype=np.uint8))
    (data / "classes.txt").write_text("background\npet\n")
    proc = run_cli("eval", "--model", str(ROOT / "rtseg" / "assets" / "linknet-pets.pt"), "--data", str(data),
                   "--imgsz", "64", "--json", "/dev/full")
    _one_line_error(proc, "cannot write JSON /dev/full: No space left on device")


def test_train_refuses_an_unwritable_checkpoint_before_training(tmp_path: Path) -> None:
    data = tmp_path / "data"
    for sub in ("images", "masks"):
        (data / sub).mkdir(parents=True)
    for i in range(4):
        cv2.imwrite(str(data / "images" / f"{i}.png"), np.full((64, 64, 3), 60 * i, np.uint8))
        cv2.imwrite(str(data / "masks" / f"{i}.png"), np.eye(64, dtype=np.uint8))
    (data / "classes.txt").write_text("background\nthing\n")
    (tmp_path / "folder.pt").mkdir()
    for out, expected in ((tmp_path / "folder.pt", "it is a folder"), (data / "classes.txt", "it is the input"),
                          (tmp_path / "m.png", "both write")):
        args = ["train", "--data", str(data), "--model", "Linknet", "--epochs", "1", "--imgsz", "64", "--crop", "64",
                "--out", str(out)]
        proc = run_cli(*args, *(["--plot", str(tmp_path / "m.png")] if out.name == "m.png" else []))
        _one_line_error(proc, expected)
        assert "training on" not in proc.stderr  # refused before any training
    assert (data / "classes.txt").read_text() == "background\nthing\n"
