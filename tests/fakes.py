"""Fake backends, sources and sinks with known answers, shared by the tests (conftest.py offers the common ones
as fixtures). A helper module, not a test module: no test module imports another, they all import from here."""

from __future__ import annotations

import time

import cv2
import numpy as np
import torch

from rtseg.backends.base import ModelInfo, SemanticInfo
from rtseg.errors import SinkError
from rtseg.types import FrameResult, InstanceMasks

# --- backends ---------------------------------------------------------------------------------------------------


class StubBackend:
    """An end-to-end head that always finds one class-1 object at input pixels (8, 8)-(40, 40)."""

    info = ModelInfo(names=("a", "b"), imgsz=(64, 64), end2end=True, dynamic=True)
    device = torch.device("cpu")

    def __init__(self, delay_s: float = 0.0) -> None:
        self.delay_s = delay_s

    def infer(self, batch):  # noqa: ANN001, ANN201
        time.sleep(self.delay_s)
        b, _, h, w = batch.shape
        preds = torch.zeros((b, 300, 6 + 2))
        preds[:, 0] = torch.tensor([8.0, 8.0, 40.0, 40.0, 0.9, 1.0, 1.0, 1.0])
        return preds, torch.ones((b, 2, h // 4, w // 4))


class BlobBackend:
    """An end-to-end head that 'detects' every bright square in the input: a detector with a known answer."""

    info = ModelInfo(names=("blob",), imgsz=(320, 320), end2end=True, dynamic=True)
    device = torch.device("cpu")

    def infer(self, batch):  # noqa: ANN001, ANN201
        b, _, h, w = batch.shape
        preds = torch.zeros((b, 300, 6 + 1))
        for i in range(b):
            bright = np.asarray(batch[i].mean(0) > 0.9)  # NumPy, or a tensor on the device frame path
            ys, xs = np.nonzero(bright)
            if len(xs):
                preds[i, 0] = torch.tensor([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1, 0.9, 0, 1.0])
        return preds, torch.ones((b, 1, h // 4, w // 4))


class SquaresBackend:
    """End-to-end head that 'detects' each bright connected region of its input: a detector whose answer is
    known, including the partial objects a tile edge cuts."""

    info = ModelInfo(names=("square",), imgsz=(640, 640), end2end=True, dynamic=True)
    device = torch.device("cpu")

    def infer(self, batch):  # noqa: ANN001, ANN201
        b, _, h, w = batch.shape
        preds = torch.zeros((b, 300, 7))
        for i in range(b):
            bright = (batch[i].mean(0) > 0.9).astype(np.uint8)
            n, _, stats, _ = cv2.connectedComponentsWithStats(bright)
            for k in range(1, min(n, 301)):
                x, y, bw, bh = stats[k, :4]
                preds[i, k - 1] = torch.tensor([x, y, x + bw, y + bh, 0.9, 0, 1.0])
        return preds, torch.ones((b, 1, h // 4, w // 4))


class ColourBackend:
    """Semantic 'model' with an exact answer: class = the red channel's band (0: dark, 1: mid, 2: bright)."""

    info = SemanticInfo(names=("bg", "mid", "bright"), palette_bgr=((0, 0, 0), (0, 128, 0), (0, 0, 255)),
                        imgsz=(640, 640), mean_rgb=(0, 0, 0), std_rgb=(1, 1, 1), arch="test")
    device = torch.device("cpu")

    def infer(self, batch):  # noqa: ANN001, ANN201
        red = torch.from_numpy(batch[:, 0])
        centres = torch.tensor([0.1, 0.5, 0.9])[None, :, None, None]
        return -((red[:, None] - centres) ** 2) * 100


class StubSemantic:
    """Labels every pixel with the frame's first byte modulo 3, after a short delay."""

    names = ("background", "a", "b")

    def __init__(self, delay_s: float = 0.01) -> None:
        self.delay_s = delay_s
        self.backend = type("B", (), {"device": torch.device("cpu")})()

    def __call__(self, images):  # noqa: ANN001, ANN204
        time.sleep(self.delay_s)
        return [np.full(im.shape[:2], int(im[0, 0, 0]) % 3, np.uint8) for im in images]


# --- sources ----------------------------------------------------------------------------------------------------


class ListSource:
    """``n`` 64x64 frames; frame ``i`` is filled with ``(n - 1 - i) % 255``; optionally live and slow to read."""

    def __init__(self, n: int, live: bool = False, delay_s: float = 0.0) -> None:
        self.name, self.live, self.fps, self.frame_count = "list", live, 10.0, n
        self._left, self.delay_s, self.closed = n, delay_s, False

    def read(self):  # noqa: ANN201
        if self._left <= 0 or self.closed:
            return None
        time.sleep(self.delay_s)
        self._left -= 1
        return np.full((64, 64, 3), self._left % 255, np.uint8)

    def close(self) -> None:
        self.closed = True


class SizedSource:
    """``n`` frames of one size; frame ``i`` is filled with ``value + i`` (so each stream is recognisable)."""

    def __init__(self, n: int, hw: tuple[int, int] = (64, 64), value: int = 0, name: str = "s") -> None:
        self.name, self.live, self.fps, self.frame_count = name, False, 10.0, n
        self.hw, self.value, self._i, self.closed = hw, value, 0, False

    def read(self):  # noqa: ANN201
        if self._i >= self.frame_count or self.closed:
            return None
        image = np.full((*self.hw, 3), (self.value + self._i) % 256, np.uint8)
        self._i += 1
        return image

    def close(self) -> None:
        self.closed = True


class FakeCapture:
    """An OpenCV capture stand-in that yields ``frames`` black frames, then fails reads (or never opens)."""

    def __init__(self, frames: int, opened: bool = True) -> None:
        self.frames, self.opened = frames, opened

    def isOpened(self) -> bool:  # noqa: N802 - OpenCV's name
        return self.opened

    def read(self):  # noqa: ANN201
        if self.frames <= 0:
            return False, None
        self.frames -= 1
        return True, np.zeros((4, 4, 3), np.uint8)

    def get(self, prop: int) -> float:
        return 25.0 if prop == cv2.CAP_PROP_FPS else 0.0

    def release(self) -> None:
        pass


# --- sinks ------------------------------------------------------------------------------------------------------


class RecordingSink:
    """Keeps each frame index and annotated image it is given; can be slow, or fail at a given frame."""

    needs_image = True

    def __init__(self, delay_s: float = 0.0, fail_at: int | None = None) -> None:
        self.indices, self.images, self.closed = [], [], False
        self.delay_s, self.fail_at = delay_s, fail_at

    def write(self, frame, annotated, result) -> None:  # noqa: ANN001
        if self.fail_at is not None and len(self.indices) == self.fail_at:
            raise SinkError("disk full")
        time.sleep(self.delay_s)
        self.indices.append(result.frame_index)
        self.images.append(annotated)

    def close(self) -> None:
        self.closed = True


# --- results ----------------------------------------------------------------------------------------------------


def make_result(n: int = 3, hw: tuple[int, int] = (40, 60)) -> FrameResult:
    """A consistent FrameResult of ``n`` small box-local masks, for annotators and sinks."""
    crops = tuple(np.ones((4 + i, 5 + i), bool) for i in range(n))
    origins = np.array([[i * 10, i * 5] for i in range(n)], np.int32)
    boxes = np.array([[x, y, x + 5 + i, y + 4 + i] for i, (x, y) in enumerate(origins)], np.float32).reshape(-1, 4)
    return FrameResult(7, hw, boxes, np.linspace(0.9, 0.3, n, dtype=np.float32), np.arange(n, dtype=np.int32),
                       InstanceMasks(crops, origins))
