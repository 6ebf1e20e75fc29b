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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def tcp_stream(video30: Path):  # noqa: ANN201 - yields the URL of a live MPEG-TS stream on 127.0.0.1
    """A real live stream: FFmpeg (from the imageio-ffmpeg wheel) plays a clip in a loop, in real time, as
    MPEG-TS over TCP on 127.0.0.1, as a camera or an encoder on the network would."""
    ffmpeg = pytest.importorskip("imageio_ffmpeg", reason="needs imageio-ffmpeg for a loopback stream").get_ffmpeg_exe()
    url = f"tcp://127.0.0.1:{free_port()}"
    server = subprocess.Popen([ffmpeg, "-loglevel", "error", "-re", "-stream_loop", "-1", "-i", str(video30),
                               "-c:v", "mpeg4", "-q:v", "5", "-f", "mpegts", f"{url}?listen=1"],
                              stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        yield url
    finally:
        server.kill()
        server.wait(timeout=10)


def spawn_cli_tty(*args: str, cwd: Path | None = None) -> tuple[subprocess.Popen, int]:
    """Start the real ``rtseg`` CLI with its stderr on a pseudo-terminal, so the progress bar draws exactly as
    in a user's terminal. Returns the process and the terminal's reading end (see :func:`read_tty`)."""
    import pty

    master, slave = pty.openpty()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(NONET), os.environ.get("PYTHONPATH")])))
    proc = subprocess.Popen([sys.executable, "-m", "rtseg.cli", *args], stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=slave, cwd=cwd, env=env)
    os.close(slave)
    return proc, master


def read_tty(master: int, proc: subprocess.Popen, timeout: float = 120) -> str:
    """Everything the process wrote to its terminal until it exited (or ``timeout``), as text."""
    import select
    import time

    chunks, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.2)
        if ready:
            try:
                data = os.read(master, 65536)
            except OSError:  # the other end closed
                break
            if not data:
                break
            chunks.append(data)
        elif proc.poll() is not None:
            break
    os.close(master)
    return b"".join(chunks).decode(errors="replace")
