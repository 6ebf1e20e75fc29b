"""Helpers the tests share that are not fakes: paths, generated videos, the CLI in a subprocess or on a terminal,
loopback ports. A helper module, not a test module: tests import from here (fixtures live in conftest.py, fake
stages, sources and sinks in fakes.py)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("RTSEG_DATA", ROOT.parent / "shared" / "data"))
NONET = Path(__file__).parent / "nonet"
YOLO11_WEIGHTS = ROOT / "tests" / "assets" / "yolo11n-seg-coco128.pt"
YOLO26_WEIGHTS = ROOT / "tests" / "assets" / "yolo26n-seg-coco128.pt"


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


def zidane_clip(path: Path, size_wh: tuple[int, int], frames: int) -> Path:
    """``frames`` copies of Ultralytics' zidane.jpg (people the test and bundled models find), resized, in an
    MJPEG AVI at 10 FPS."""
    from ultralytics.utils import ASSETS

    image = cv2.resize(cv2.imread(str(Path(ASSETS) / "zidane.jpg")), size_wh)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, size_wh)
    for _ in range(frames):
        writer.write(image)
    writer.release()
    return path


def road_model(path: Path) -> Path:
    """A semantic U-Net checkpoint whose head says "road" (class 1) everywhere: a known semantic region."""
    import torch

    from rtseg.models.zoo import build_semantic, save_semantic

    net, info = build_semantic("Unet", names=["background", "road"], imgsz=128)
    head = net.net.segmentation_head[0]
    with torch.no_grad():
        head.weight.zero_()
        head.bias.copy_(torch.tensor([0.0, 5.0]))
    return save_semantic(path, net, info)


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


def x264_settings(path: Path) -> str:
    """x264 writes its settings into the stream (an SEI message): "... options: cabac=1 ref=1 ..."."""
    data = path.read_bytes()
    start = data.index(b"options: ")
    return data[start : data.index(b"\x00", start)].decode("ascii", "replace")


def run_cli(*args: str, cwd: Path | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run the real ``rtseg`` CLI in a subprocess with the network blocked."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(NONET), os.environ.get("PYTHONPATH")])))
    return subprocess.run([sys.executable, "-m", "rtseg.cli", *args], capture_output=True, text=True, cwd=cwd,
                          env=env, timeout=timeout)


def coco_frames(n: int = 12) -> list[Path]:
    """Real frames for parity tests: coco128-seg training images (those the test weights were trained on)."""
    return sorted((DATA / "coco128-seg" / "images" / "train2017").glob("*.jpg"))[:n]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_listening(port: int, server: subprocess.Popen, timeout: float = 20) -> None:
    """Wait until ``server`` listens on ``port`` (read from /proc: a probing connection would be its one
    client, and FFmpeg's TCP listener serves exactly one)."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and server.poll() is None:
        for table in ("/proc/net/tcp", "/proc/net/tcp6"):
            with open(table) as f:
                next(f)
                for line in f:
                    local, state = line.split()[1], line.split()[3]
                    if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port:
                        return
        time.sleep(0.05)
    raise RuntimeError(f"the FFmpeg stream server did not start listening on port {port}")


def spawn_cli_tty(*args: str, cwd: Path | None = None) -> tuple[subprocess.Popen, int]:
    """Start the real ``rtseg`` CLI with its stderr on a pseudo-terminal, so the progress bar draws exactly as
    in a user's terminal. Returns the process and the terminal's reading end (see :func:`read_tty`)."""
    import pty

    master, slave = pty.openpty()
    import fcntl
    import struct
    import termios

    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # a terminal of 100 columns: a
    # new pty has 0, where tqdm draws nothing
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


@contextlib.contextmanager
def ray_head(*, gpus: int = 0, env: Mapping[str, str] | None = None) -> Iterator[str]:
    """A real Ray head on 127.0.0.1 (2 CPUs, ``gpus`` fake GPUs, ``env`` added to its environment, which its
    workers inherit), in a process group of its own so that exactly its processes are stopped; yields its address."""
    import pytest

    port = free_port()
    head_env = dict(os.environ, RAY_AUTH_MODE="disabled", RAY_TMPDIR=tempfile.mkdtemp(prefix="rtseg-ray-"),
                    **(env or {}))
    head_env.pop("RAY_ADDRESS", None)
    head = subprocess.Popen([sys.executable, "-m", "ray.scripts.scripts", "start", "--head", "--block",
                             "--node-ip-address", "127.0.0.1", "--port", str(port), "--num-cpus", "2",
                             "--num-gpus", str(gpus), "--object-store-memory", "100000000",
                             "--include-dashboard=false", "--disable-usage-stats"], env=head_env,
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
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
        stop_group(head)


def stop_group(proc: subprocess.Popen) -> None:
    """SIGTERM, then SIGKILL, to the process group ``proc`` leads, waiting for ``proc`` after each."""
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
