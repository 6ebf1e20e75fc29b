"""The real CLI, run as a user runs it: outputs checked by decoding them, errors by their one line."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from tests.support import DATA, NONET, count_frames, run_cli, write_video, x264_settings


def test_run_writes_one_output_frame_and_one_record_per_input_frame(video30: Path, tmp_path: Path) -> None:
    out, jsonl = tmp_path / "out.mp4", tmp_path / "out.jsonl"
    proc = run_cli("run", str(video30), "--out", str(out), "--jsonl", str(jsonl), "--conf", "0.01")
    assert proc.returncode == 0, proc.stderr
    assert count_frames(out) == count_frames(video30) == (30, (240, 320))
    records = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert [r["frame"] for r in records] == list(range(30))
    for r in records:
        assert r["image_hw"] == [240, 320]
        assert r["timestamp_s"] == pytest.approx(r["frame"] / 15.0, abs=1e-3)
        assert set(r["timings_ms"]) >= {"decode", "preprocess", "infer", "postprocess"}
        for det in r["detections"]:
            assert 0 <= det["class_id"] < 80 and isinstance(det["class_name"], str)
            x1, y1, x2, y2 = det["box_xyxy"]
            assert 0 <= x1 <= x2 <= 320 and 0 <= y1 <= y2 <= 240
            m = mask_utils.decode({"size": det["mask"]["size"], "counts": det["mask"]["counts"].encode()})
            assert m.shape == (240, 320)
    assert "30 frames" in proc.stderr and "FPS" in proc.stderr


@pytest.mark.data
def test_jsonl_masks_cover_detections_on_real_video(tmp_path: Path) -> None:
    video = DATA / "videos" / "people_walking_highangle.avi"
    jsonl = tmp_path / "people.jsonl"
    proc = run_cli("run", str(video), "--jsonl", str(jsonl), "--max-frames", "12", "--imgsz", "640",
                   "--conf", "0.03")  # the bundled model is weak: see its model card
    assert proc.returncode == 0, proc.stderr
    records = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert len(records) == 12
    dets = [d for r in records for d in r["detections"]]
    assert dets, "the bundled model finds nobody in the crowd clip"
    for det in dets:
        m = mask_utils.decode({"size": det["mask"]["size"], "counts": det["mask"]["counts"].encode()})
        ys, xs = np.nonzero(m)
        x1, y1, x2, y2 = det["box_xyxy"]
        assert len(xs) and xs.min() >= np.floor(x1) and xs.max() < np.ceil(x2) + 1 and ys.min() >= np.floor(y1)


@pytest.mark.data
def test_inference_workers_give_the_same_results_in_the_same_order(tmp_path: Path) -> None:
    video = DATA / "videos" / "people_walking_highangle.avi"
    records = {}
    for workers in (1, 3):
        jsonl = tmp_path / f"w{workers}.jsonl"
        proc = run_cli("run", str(video), "--jsonl", str(jsonl), "--max-frames", "16", "--imgsz", "640",
                       "--conf", "0.03", "--workers", str(workers))
        assert proc.returncode == 0, proc.stderr
        records[workers] = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert [r["frame"] for r in records[3]] == list(range(16))
    assert sum(len(r["detections"]) for r in records[1]) > 0
    for a, b in zip(records[1], records[3]):  # sessions of other thread counts round differently: IoU, not bits
        assert [d["score"] for d in a["detections"]] == pytest.approx([d["score"] for d in b["detections"]], abs=1e-4)
        for da, db in zip(a["detections"], b["detections"]):
            ma, mb = ({"size": d["mask"]["size"], "counts": d["mask"]["counts"].encode()} for d in (da, db))
            assert mask_utils.iou([ma], [mb], [0])[0, 0] >= 0.99


def test_image_folder_to_frames_and_several_sources(tmp_path: Path, video30: Path) -> None:
    import cv2

    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(3):
        cv2.imwrite(str(folder / f"{i}.jpg"), np.full((120, 160, 3), 60 * i, np.uint8))
    proc = run_cli("run", str(folder), str(video30), "--save-frames", str(tmp_path / "frames"),
                   "--out", str(tmp_path / "o.mp4"), "--max-frames", "5")
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in (tmp_path / "frames" / "imgs").iterdir()) == [
        "frame_000000.jpg", "frame_000001.jpg", "frame_000002.jpg"]
    assert len(list((tmp_path / "frames" / "clip30").iterdir())) == 5
    assert count_frames(tmp_path / "o_imgs.mp4")[0] == 3
    assert count_frames(tmp_path / "o_clip30.mp4") == (5, (240, 320))


def _records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_several_sources_are_batched_into_one_output_each(tmp_path: Path) -> None:
    """Three clips of different lengths and sizes in one run (two share a name): each output is its own."""
    (tmp_path / "x").mkdir()
    (tmp_path / "y").mkdir()
    clips = {"clip1": (write_video(tmp_path / "x" / "clip.avi", 12), 12, (240, 320)),
             "clip2": (write_video(tmp_path / "y" / "clip.avi", 7, size_wh=(160, 120), seed=1), 7, (120, 160)),
             "wide": (write_video(tmp_path / "wide.avi", 5, size_wh=(256, 144), seed=2), 5, (144, 256))}
    proc = run_cli("run", *(str(c[0]) for c in clips.values()), "--out", str(tmp_path / "out.mp4"),
                   "--jsonl", str(tmp_path / "out.jsonl"), "--conf", "0.01")
    assert proc.returncode == 0, proc.stderr
    for tag, (_, n, hw) in clips.items():
        assert count_frames(tmp_path / f"out_{tag}.mp4") == (n, hw), tag
        records = _records(tmp_path / f"out_{tag}.jsonl")
        assert [r["frame"] for r in records] == list(range(n)), tag
        assert all(r["image_hw"] == list(hw) for r in records), tag
    assert "3 sources: 24 frames" in proc.stderr
    for path, n in ((clips["clip1"][0], 12), (clips["clip2"][0], 7), (clips["wide"][0], 5)):
        assert f"{path}: {n} frames" in proc.stderr


def test_signal_mid_run_with_several_sources_finalizes_every_output(tmp_path: Path) -> None:
    videos = [write_video(tmp_path / f"v{i}.avi", frames=300, seed=i) for i in range(2)]
    env = dict(os.environ, PYTHONPATH=str(NONET))
    proc = subprocess.Popen([sys.executable, "-m", "rtseg.cli", "run", *map(str, videos), "--out",
                             str(tmp_path / "p.mp4"), "--jsonl", str(tmp_path / "p.jsonl")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    jsonls = [tmp_path / f"p_v{i}.jsonl" for i in range(2)]
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not all(j.exists() and len(j.read_text().splitlines()) >= 5 for j in jsonls):
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr and "stopped after" in stderr
    for i, jsonl in enumerate(jsonls):
        records = jsonl.read_text().splitlines()
        assert all(json.loads(line)["frame"] == k for k, line in enumerate(records))  # complete lines only
        frames, hw = count_frames(tmp_path / f"p_v{i}.mp4")
        assert 5 <= frames == len(records) < 300 and hw == (240, 320)


def _one_line_error(proc: subprocess.CompletedProcess, expected: str) -> None:
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("rtseg: error: ") and expected in lines[0], lines[0]


def _truncated_mp4(tmp_path: Path) -> Path:
    full = write_video(tmp_path / "full.mp4", frames=20)
    cut = tmp_path / "truncated.mp4"
    cut.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    return cut


BAD_INPUTS = {
    "missing file": (lambda t: ["run", str(t / "nope.mp4"), "--out", str(t / "o.mp4")], "no such file"),
    "not a video": (lambda t: ["run", str(_text_file(t, "notes.mp4")), "--out", str(t / "o.mp4")],
                    "cannot decode"),
    "truncated video": (lambda t: ["run", str(_truncated_mp4(t)), "--out", str(t / "o.mp4")], "cannot decode"),
    "camera": (lambda t: ["run", "57", "--out", str(t / "o.mp4")], "cannot open camera 57"),
    "unsupported URL": (lambda t: ["run", "ftp://example.com/v.mp4", "--out", str(t / "o.mp4")],
                        "unsupported URL"),
    "corrupt weights": (lambda t: ["run", str(write_video(t / "v.avi", 3)), "--model",
                                   str(_text_file(t, "w.pt")), "--out", str(t / "o.mp4")], "cannot load"),
    "wrong task": (lambda t: ["run", str(write_video(t / "v.avi", 3)), "--model", "yolo11n.yaml",
                              "--out", str(t / "o.mp4")], "'detect' model"),
    "offline download": (lambda t: ["run", str(write_video(t / "v.avi", 3)), "--model", "yolo26n-seg.pt",
                                     "--out", str(t / "o.mp4")], "--model PATH"),
    "missing weights": (lambda t: ["run", str(write_video(t / "v.avi", 3)), "--model",
                                   str(t / "none" / "w.pt"), "--out", str(t / "o.mp4")], "model file not found"),
    "unwritable output": (lambda t: ["run", str(write_video(t / "v.avi", 3)), "--out",
                                     str(t / "no" / "such" / "o.mp4")], "does not exist"),
    "output is a folder": (lambda t: ["run", str(write_video(t / "v.avi", 3)), "--jsonl", str(t)],
                           "it is a folder"),
    "unknown class": (lambda t: ["run", str(write_video(t / "v.avi", 3)), "--classes", "unicorn",
                                 "--out", str(t / "o.mp4")], "unicorn"),
    "cuda missing": (lambda t: ["run", str(write_video(t / "v.avi", 3)), "--device", "cuda",
                                "--out", str(t / "o.mp4")], "CUDA"),
    "batch with tiles": (lambda t: ["run", str(write_video(t / "v.avi", 3)), "--tile", "320", "--batch", "2",
                                    "--out", str(t / "o.mp4")], "--batch 2 with --tile 320"),
}


def _text_file(folder: Path, name: str) -> Path:
    path = folder / name
    path.write_text("this is not what the suffix says\n" * 50)
    return path


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_is_one_line_and_exit_2(case: str, tmp_path: Path) -> None:
    if case == "cuda missing":
        import torch

        if torch.cuda.is_available():
            pytest.skip("this machine has CUDA")
    args, expected = BAD_INPUTS[case]
    _one_line_error(run_cli(*args(tmp_path)), expected)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_mid_run_leaves_playable_partial_video(sig: int, tmp_path: Path) -> None:
    video = write_video(tmp_path / "long.avi", frames=400, size_wh=(640, 480))
    out, jsonl = tmp_path / "partial.mp4", tmp_path / "partial.jsonl"
    env = dict(os.environ, PYTHONPATH=str(NONET))
    proc = subprocess.Popen([sys.executable, "-m", "rtseg.cli", "run", str(video), "--out", str(out),
                             "--jsonl", str(jsonl), "--imgsz", "640"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and (not jsonl.exists() or len(jsonl.read_text().splitlines()) < 8):
        time.sleep(0.1)
    proc.send_signal(sig)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr and "stopped after" in stderr
    records = jsonl.read_text().splitlines()
    assert all(json.loads(line)["frame"] == i for i, line in enumerate(records))  # complete lines only
    frames, hw = count_frames(out)
    assert 8 <= frames == len(records) < 400
    assert hw == (480, 640)


def test_demo_runs_offline(tmp_path: Path) -> None:
    proc = run_cli("demo", "--out", str(tmp_path / "demo.mp4"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    n, hw = count_frames(tmp_path / "demo.mp4")
    assert n == 60 and hw == (540, 960)


def test_help_teaches() -> None:
    proc = run_cli("run", "--help")
    assert proc.returncode == 0
    for option in ("--model", "--out", "--jsonl", "--show", "--imgsz", "--conf", "--iou", "--classes",
                   "--device", "--backend", "--max-frames", "Examples"):
        assert option in proc.stdout


@pytest.mark.data
def test_track_ids_persist_on_real_video(tmp_path: Path) -> None:
    video = DATA / "videos" / "people_walking_highangle.avi"
    jsonl = tmp_path / "tracks.jsonl"
    proc = run_cli("run", str(video), "--track", "bytetrack", "--trails", "10", "--jsonl", str(jsonl),
                   "--out", str(tmp_path / "t.mp4"), "--max-frames", "30", "--imgsz", "640", "--conf", "0.1")
    assert proc.returncode == 0, proc.stderr
    records = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert len(records) == 30 and count_frames(tmp_path / "t.mp4")[0] == 30
    frames_per_id: dict[int, int] = {}
    for r in records:
        ids = [d["track_id"] for d in r["detections"]]
        assert len(ids) == len(set(ids))  # one detection per track per frame
        for i in ids:
            frames_per_id[i] = frames_per_id.get(i, 0) + 1
    assert max(frames_per_id.values()) >= 25, frames_per_id  # someone is followed through the clip


def test_video_preset_auto_is_ultrafast_on_the_cpu_and_can_be_chosen(tmp_path: Path, video30: Path) -> None:
    for preset, cabac in (("auto", "cabac=0"), ("superfast", "cabac=1")):
        out = tmp_path / f"{preset}.mp4"
        proc = run_cli("run", str(video30), "--max-frames", "3", "--device", "cpu", "--video-preset", preset,
                       "--out", str(out))
        assert proc.returncode == 0, proc.stderr
        assert count_frames(out)[0] == 3 and cabac in x264_settings(out).split()
    _one_line_error(run_cli("run", str(video30), "--video-preset", "quick", "--out", str(tmp_path / "q.mp4")),
                    "expected one of ultrafast")
    assert not (tmp_path / "q.mp4").exists()


def test_unknown_tracker_is_one_line(tmp_path: Path, video30: Path) -> None:
    _one_line_error(run_cli("run", str(video30), "--track", "sort", "--out", str(tmp_path / "o.mp4")),
                    "bytetrack, botsort")


def test_tiled_run_keeps_frames_and_size(tmp_path: Path) -> None:
    video = write_video(tmp_path / "wide.avi", frames=4, size_wh=(1280, 720))
    out, jsonl = tmp_path / "tiled.mp4", tmp_path / "tiled.jsonl"
    proc = run_cli("run", str(video), "--tile", "480", "--overlap", "0.25", "--tile-full", "--conf", "0.01",
                   "--out", str(out), "--jsonl", str(jsonl))
    assert proc.returncode == 0, proc.stderr
    assert count_frames(out) == (4, (720, 1280))
    records = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert len(records) == 4 and all(r["image_hw"] == [720, 1280] for r in records)
    for det in (d for r in records for d in r["detections"]):
        x1, y1, x2, y2 = det["box_xyxy"]
        assert 0 <= x1 <= x2 <= 1280 and 0 <= y1 <= y2 <= 720
