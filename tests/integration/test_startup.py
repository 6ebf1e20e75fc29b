"""Start-up, as a user pays it: a run on an ONNX model (the CPU default for ``.pt`` weights, through the cached
export) imports neither PyTorch nor Ultralytics, whose imports were most of the time to the first frame.

The real CLI in a subprocess, with its progress bar (no ``-q``); what the process imported is read at its exit.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import NONET, YOLO11_WEIGHTS, count_frames, write_video

HEAVY = ("torch", "torchvision", "ultralytics")
PROBE = """
import atexit, json, sys
heavy = {heavy!r}
atexit.register(lambda: open({report!r}, "w").write(json.dumps(sorted(m for m in heavy if m in sys.modules))))
sys.argv = ["rtseg", *{args!r}]
from rtseg.cli import main
main()
"""


def run_probed(tmp_path: Path, *args: str, cache: Path) -> tuple[subprocess.CompletedProcess, list[str]]:
    """``rtseg ARGS`` in a subprocess; also which of :data:`HEAVY` it had imported when it exited."""
    report = tmp_path / "imported.json"
    report.unlink(missing_ok=True)
    env = dict(os.environ, RTSEG_CACHE=str(cache),
               PYTHONPATH=os.pathsep.join(filter(None, [str(NONET), os.environ.get("PYTHONPATH")])))
    done = subprocess.run([sys.executable, "-c", PROBE.format(heavy=HEAVY, report=str(report), args=list(args))],
                          capture_output=True, text=True, env=env, timeout=300)
    return done, json.loads(report.read_text()) if report.is_file() else ["(no report)"]


@pytest.mark.parametrize("model", ["bundled", "coco128"])
def test_a_run_on_cached_weights_imports_neither_pytorch_nor_ultralytics(tmp_path: Path, model: str) -> None:
    clip = write_video(tmp_path / "clip.avi", frames=12)
    cache = tmp_path / "cache"
    weights = [] if model == "bundled" else ["--model", str(YOLO11_WEIGHTS)]
    first, imported = run_probed(tmp_path, "run", str(clip), *weights, "--device", "cpu",
                                 "--jsonl", str(tmp_path / "first.jsonl"), "-q", cache=cache)
    assert first.returncode == 0, first.stderr
    assert "torch" in imported  # the first run exports the weights to ONNX, with PyTorch and Ultralytics

    out = tmp_path / "out.mp4"
    again, imported = run_probed(tmp_path, "run", str(clip), *weights, "--device", "cpu", "--out", str(out),
                                 "--jsonl", str(tmp_path / "again.jsonl"), cache=cache)
    assert again.returncode == 0, again.stderr
    assert imported == [], f"a run on the cached export imported {imported}"
    assert "12 frames" in again.stderr  # the progress bar's summary: the run went the whole way
    assert count_frames(out) == (12, (240, 320))
    records = [(tmp_path / name).read_text().splitlines() for name in ("first.jsonl", "again.jsonl")]
    strip = [[{k: v for k, v in json.loads(line).items() if k != "timings_ms"} for line in r] for r in records]
    assert len(strip[1]) == 12 and strip[0] == strip[1]


def test_auto_device_on_a_machine_without_nvidia_devices_does_not_import_pytorch(tmp_path: Path) -> None:
    from rtseg.backends.registry import no_nvidia_gpu

    if not no_nvidia_gpu():
        pytest.skip("this machine has NVIDIA device files: --device auto asks PyTorch, as it should")
    clip = write_video(tmp_path / "clip.avi", frames=3)
    cache = tmp_path / "cache"
    assert run_probed(tmp_path, "run", str(clip), "-q", cache=cache)[0].returncode == 0  # warms the export
    done, imported = run_probed(tmp_path, "run", str(clip), "--out", str(tmp_path / "o.mp4"), cache=cache)
    assert done.returncode == 0, done.stderr
    assert imported == []


def test_torch_weights_still_run_on_pytorch_when_asked(tmp_path: Path) -> None:
    """``--backend torch`` keeps PyTorch (and its tensor post-processing): same detections as ONNX Runtime's."""
    clip = write_video(tmp_path / "clip.avi", frames=4)
    cache = tmp_path / "cache"
    outputs = []
    for backend in ("torch", "onnxruntime"):
        jsonl = tmp_path / f"{backend}.jsonl"
        done, imported = run_probed(tmp_path, "run", str(clip), "--model", str(YOLO11_WEIGHTS), "--device", "cpu",
                                    "--backend", backend, "--jsonl", str(jsonl), "--conf", "0.05", "-q", cache=cache)
        assert done.returncode == 0, done.stderr
        outputs.append([[(d["class_id"], [round(v) for v in d["box_xyxy"]]) for d in json.loads(line)["detections"]]
                        for line in jsonl.read_text().splitlines()])
        if backend == "torch":
            assert "torch" in imported
    assert sum(map(len, outputs[0])) > 0 and outputs[0] == outputs[1]
