"""Shared fixtures and hooks: no network, real data when present, small generated videos, fake stages.

Helpers live in :mod:`tests.support` and fakes in :mod:`tests.fakes`; import them from there."""

from __future__ import annotations

import os
import socket
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.fakes import ListSource, RecordingSink, SizedSource, StubBackend, StubSemantic

# ROOT, YOLO*_WEIGHTS and run_cli: re-exported only for a module that still imports them from here
# (tests/integration/test_hostile_weights.py); new code imports them from tests.support
from tests.support import (  # noqa: F401
    DATA,
    ROOT,
    YOLO11_WEIGHTS,
    YOLO26_WEIGHTS,
    free_port,
    run_cli,
    wait_listening,
    write_video,
)

# exported-model cache of this test session (inherited by CLI subprocesses), not the user's ~/.cache/rtseg
os.environ.setdefault("RTSEG_CACHE", tempfile.mkdtemp(prefix="rtseg-test-cache-"))


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--fuzz-all", action="store_true", help="tests/fuzz: run the larger set of generated bad inputs")


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


@pytest.fixture(scope="session")
def video30(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_video(tmp_path_factory.mktemp("video") / "clip30.avi", frames=30)


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
        wait_listening(int(url.rsplit(":", 1)[1]), server)
        yield url
    finally:
        server.kill()
        server.wait(timeout=10)


# --- the fakes of tests/fakes.py as factory fixtures: call them as the classes, e.g. ``list_source(12, live=True)``


@pytest.fixture
def stub_backend() -> Callable[..., StubBackend]:
    """Makes :class:`tests.fakes.StubBackend` heads (one class-1 object per frame)."""
    return StubBackend


@pytest.fixture
def list_source() -> Callable[..., ListSource]:
    """Makes :class:`tests.fakes.ListSource` sources (``n`` 64x64 frames, frame ``i`` filled with ``n - 1 - i``)."""
    return ListSource


@pytest.fixture
def sized_source() -> Callable[..., SizedSource]:
    """Makes :class:`tests.fakes.SizedSource` sources (frames of one size, frame ``i`` filled with ``value + i``)."""
    return SizedSource


@pytest.fixture
def recording_sink() -> Callable[..., RecordingSink]:
    """Makes :class:`tests.fakes.RecordingSink` sinks (keep frame indices and annotated images)."""
    return RecordingSink


@pytest.fixture
def stub_semantic() -> Callable[..., StubSemantic]:
    """Makes :class:`tests.fakes.StubSemantic` stages (label = first pixel byte % 3)."""
    return StubSemantic
