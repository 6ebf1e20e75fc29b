"""Shared fixtures: no network, real data when present, small generated videos, and the CLI."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("RTSEG_DATA", ROOT.parent / "shared" / "data"))
NONET = Path(__file__).parent / "nonet"
# exported-model cache of this test session (inherited by CLI subprocesses), not the user's ~/.cache/rtseg
os.environ.setdefault("RTSEG_CACHE", tempfile.mkdtemp(prefix="rtseg-test-cache-"))
YOLO11_WEIGHTS = ROOT / "tests" / "assets" / "yolo11n-seg-coco128.pt"
YOLO26_WEIGHTS = ROOT / "tests" / "assets" / "yolo26n-seg-coco128.pt"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    import torch

    skips = {
        "gpu": (not torch.cuda.is_available(), "needs a CUDA GPU"),
        "data": (not DATA.is_dir(), f"needs the shared data folder {DATA}"),
    }
    try:
        import tensorrt  # noqa: F401
        has_trt = True
    except ImportError:
        has_trt = False
    skips["tensorrt"] = (not has_trt, "needs TensorRT (import tensorrt failed)")
    for item in items:
        for name, (skip, reason) in skips.items():
            if skip and name in item.keywords:
                item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never reach the network: connecting anywhere but loopback raises."""
    real = socket.socket.connect

    def guarded(self: socket.socket, address: object) -> object:
        host = address[0] if isinstance(address, tuple) else str(address)
        if self.family == socket.AF_UNIX or str(host).startswith("127.") or host in ("localhost", "::1"):
            return real(self, address)
        raise OSError(f"network access blocked in tests: {address}")

    monkeypatch.setattr(socket.socket, "connect", guarded)


def write_video(path: Path, frames: int = 30, size_wh: tuple[int, int] = (320, 240), fps: float = 15.0,
                seed: int = 0) -> Path:
    """A synthetic clip: moving filled shapes on a textured background (MJPEG in AVI, or mp4v)."""
    rng = np.random.default_rng(seed)
    w, h = size_wh
    fourcc = "MJPG" if path.suffix == ".avi" else "mp4v"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, size_wh)
    assert writer.isOpened()
    background = rng.integers(60, 120, (h, w, 3), dtype=np.uint8)
    for i in range(frames):
        image = background.copy()
        cv2.circle(image, (20 + i * 5 % (w - 40), h // 2), 25, (40, 200, 60), -1)
        cv2.rectangle(image, (w - 80, 20 + i * 3 % (h - 80)), (w - 20, 80 + i * 3 % (h - 80)), (200, 60, 40), -1)
        writer.write(image)
    writer.release()
    return path


def count_frames(path: Path) -> tuple[int, tuple[int, int]]:
    """Decode a video with OpenCV: (frame count, (height, width))."""
    cap = cv2.VideoCapture(str(path))
    n, hw = 0, (0, 0)
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        n, hw = n + 1, frame.shape[:2]
    cap.release()
    return n, hw


def run_cli(*args: str, cwd: Path | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run the real ``rtseg`` CLI in a subprocess with the network blocked."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(NONET), os.environ.get("PYTHONPATH")])))
    return subprocess.run([sys.executable, "-m", "rtseg.cli", *args], capture_output=True, text=True, cwd=cwd,
                          env=env, timeout=timeout)


@pytest.fixture(scope="session")
def video30(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_video(tmp_path_factory.mktemp("video") / "clip30.avi", frames=30)


def coco_frames(n: int = 12) -> list[Path]:
    """Real frames for parity tests: coco128-seg training images (those the test weights were trained on)."""
    return sorted((DATA / "coco128-seg" / "images" / "train2017").glob("*.jpg"))[:n]
