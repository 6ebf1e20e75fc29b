"""INT8 calibration for TensorRT engine builds: sample images letterboxed as rtseg letterboxes frames, fed
to TensorRT's entropy calibrator in batches, with the calibration cached beside the engine.

Plain Python, NumPy and OpenCV (PyTorch for the device buffers); TensorRT itself is only touched through the
``trt`` module passed to :func:`trt_calibrator`.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray

from rtseg.errors import ConfigError
from rtseg.preprocess.letterbox import apply_letterbox, plan_letterbox, to_input_batch

LOGGER = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
CALIB_LIMIT = 512  # TensorRT's guidance: about 500 images calibrate INT8 as well as more


def calibration_files(folder: str | Path, limit: int = CALIB_LIMIT) -> list[Path]:
    """Up to ``limit`` images of ``folder`` (sorted, recursively), or a one-line :class:`ConfigError`."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ConfigError(f"calib={folder}: not a folder; INT8 calibration needs a folder of sample images "
                          "(a few hundred frames like those the engine will see)")
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise ConfigError(f"calib={folder}: no images ({', '.join(IMAGE_SUFFIXES)}) found")
    if len(files) > limit:  # an even spread over the folder, not its first frames only
        files = [files[round(i * (len(files) - 1) / (limit - 1))] for i in range(limit)] if limit > 1 else files[:1]
    return files


class CalibrationImages:
    """INT8 calibration batches: images letterboxed like rtseg's frames, as (batch, 3, H, W) float32 arrays.

    Args:
        files: image files (see :func:`calibration_files`).
        input_hw: the engine's input (height, width).
        batch: images per batch (the engine's optimisation batch); short folders are cycled to fill one.
        mean_rgb, std_rgb: normalisation of a semantic model (``(x - mean) / std`` after scaling to 0..1);
            None for YOLO models, whose input is RGB in 0..1.
    """

    def __init__(self, files: Sequence[Path], input_hw: tuple[int, int], batch: int, *,
                 mean_rgb: Sequence[float] | None = None, std_rgb: Sequence[float] | None = None) -> None:
        if not files:
            raise ConfigError("INT8 calibration needs at least one image")
        self.files = list(files)
        self.input_hw = (int(input_hw[0]), int(input_hw[1]))
        self.batch = int(batch)
        self._mean = None if mean_rgb is None else np.asarray(mean_rgb, np.float32).reshape(1, 3, 1, 1)
        self._inv_std = None if std_rgb is None else (1 / np.asarray(std_rgb, np.float32)).reshape(1, 3, 1, 1)

    def __len__(self) -> int:
        return max(1, len(self.files) // self.batch)

    def _load(self, path: Path) -> NDArray[np.uint8] | None:
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            LOGGER.warning("INT8 calibration: cannot read %s, skipped", path)
            return None
        lb = plan_letterbox(image.shape[:2], self.input_hw, rect=False)
        return apply_letterbox(image, lb)

    def __iter__(self) -> Iterator[NDArray[np.float32]]:
        needed = len(self) * self.batch
        pending: list[NDArray[np.uint8]] = []
        produced = 0
        bad: set[int] = set()
        i = 0
        while produced < needed and len(bad) < len(self.files):  # cycle a short folder; unreadables are skipped
            k = i % len(self.files)
            i += 1
            if k in bad:
                continue
            image = self._load(self.files[k])
            if image is None:
                bad.add(k)
                continue
            pending.append(image)
            if len(pending) == self.batch:
                batch = to_input_batch(pending)
                if self._mean is not None:
                    batch -= self._mean
                if self._inv_std is not None:
                    batch *= self._inv_std
                pending = []
                produced += self.batch
                yield batch
        if produced == 0:
            raise ConfigError(f"INT8 calibration: none of the {len(self.files)} images could be read")


def calibration_cache_path(engine_path: str | Path, weights: str | Path, files: Sequence[Path],
                           input_hw: tuple[int, int], batch: int) -> Path:
    """Where the INT8 calibration cache of an engine lives: beside it, named by what the ranges depend on.

    The name carries a digest of the weights (file content, else name), the calibration files (names and
    sizes), the input size and batch, so a retrained model or another image folder calibrates afresh instead
    of reusing stale ranges.
    """
    h = hashlib.sha256()
    w = Path(str(weights))
    h.update(w.read_bytes() if w.is_file() else str(weights).encode())
    for f in files:
        h.update(f"{f.name}:{f.stat().st_size if f.exists() else -1};".encode())
    h.update(f"{input_hw[0]}x{input_hw[1]}b{batch}".encode())
    engine_path = Path(engine_path)
    return engine_path.with_name(f"{engine_path.stem}.{h.hexdigest()[:12]}.calib")


class CalibrationFeed:
    """The logic of rtseg's INT8 calibrator, free of TensorRT: batches to device memory, the cache file.

    :func:`export_engine` wraps it in a ``tensorrt.IInt8EntropyCalibrator2`` subclass; the pointers it hands
    TensorRT are ``data_ptr()`` of torch CUDA tensors it keeps alive until the next batch (no pycuda).
    """

    def __init__(self, images: CalibrationImages, cache: Path, *, device: str = "cuda") -> None:
        self.images, self.cache, self.device = images, Path(cache), device
        self._iter: Iterator[NDArray[np.float32]] | None = None
        self._current = None  # the torch tensor whose memory TensorRT is reading
        self.batches = 0

    def batch_size(self) -> int:
        return self.images.batch

    def next_pointers(self) -> list[int] | None:
        """Device pointers of the next batch (one input), or None when the images are exhausted."""
        import torch

        if self._iter is None:
            self._iter = iter(self.images)
        try:
            batch = next(self._iter)
        except StopIteration:
            self._current = None
            return None
        self._current = torch.from_numpy(batch).to(self.device).contiguous()
        if self._current.is_cuda:
            torch.cuda.current_stream(self._current.device).synchronize()  # TensorRT reads it on its own stream
        self.batches += 1
        return [int(self._current.data_ptr())]

    def read_cache(self) -> bytes | None:
        if self.cache.is_file():
            LOGGER.info("INT8 calibration: reusing %s", self.cache)
            return self.cache.read_bytes()
        return None

    def write_cache(self, data: Any) -> None:
        blob = bytes(memoryview(data))
        if self.cache.is_file() and self.cache.read_bytes() == blob:
            return  # TensorRT hands back the cache it was given
        self.cache.write_bytes(blob)
        LOGGER.info("INT8 calibration cached at %s", self.cache)


def trt_calibrator(trt: Any, feed: CalibrationFeed) -> Any:
    """A ``tensorrt.IInt8EntropyCalibrator2`` that delegates to ``feed``."""

    class Calibrator(trt.IInt8EntropyCalibrator2):
        def __init__(self) -> None:
            trt.IInt8EntropyCalibrator2.__init__(self)
            self.feed = feed

        def get_batch_size(self):  # noqa: ANN202 - TensorRT callback
            return feed.batch_size()

        def get_batch(self, names):  # noqa: ANN001, ANN202
            return feed.next_pointers()

        def read_calibration_cache(self):  # noqa: ANN202
            return feed.read_cache()

        def write_calibration_cache(self, cache):  # noqa: ANN001, ANN202
            feed.write_cache(cache)

    return Calibrator()
