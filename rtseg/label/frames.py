"""Which frames to pre-label: every N-th frame of a video or image folder, at most N of them, or one per scene."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from numpy.typing import NDArray

from rtseg.config import check_options
from rtseg.errors import ConfigError, SourceError
from rtseg.sources.base import IMAGE_SUFFIXES, open_source

THUMB_WH = (64, 36)  # frames are compared as grey thumbnails: cheap, and blind to noise and compression


@dataclass(frozen=True)
class Sampled:
    """One frame picked for labelling.

    Attributes:
        name: the file stem of its image and labels: the image's own stem (folders), or
            ``<video stem>_<frame index, 6 digits>`` (videos).
        frame_index: its index in the source (in the folder's sorted order for images).
        image: BGR uint8 (H, W, 3).
        file: the image file itself (folders), copied as it is; None for video frames (encoded as JPEG).
    """

    name: str
    frame_index: int
    image: NDArray[np.uint8]
    file: Path | None = None


def scene_distance(a: NDArray[np.uint8], b: NDArray[np.uint8]) -> float:
    """How different two frames look: the mean absolute difference of their grey 64x36 thumbnails, in grey
    levels (0: the same picture, ~10: camera motion, 30 and more: a cut to another scene).

    Example:
        >>> black, white = np.zeros((90, 160, 3), np.uint8), np.full((90, 160, 3), 255, np.uint8)
        >>> scene_distance(black, black), scene_distance(black, white)
        (0.0, 255.0)
    """
    return float(np.abs(_thumb(a) - _thumb(b)).mean())


def _thumb(image: NDArray[np.uint8]) -> NDArray[np.float32]:
    grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) if image.ndim == 3 else image
    return cv2.resize(grey, THUMB_WH, interpolation=cv2.INTER_AREA).astype(np.float32)


def _folder_images(path: Path) -> list[Path]:
    return sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def sample_frames(source: str | Path, *, every: int = 1, max_frames: int | None = None,
                  scene_threshold: float | None = None) -> Iterator[Sampled]:
    """The frames of ``source`` to pre-label, read lazily.

    Args:
        source: a video file, an image file or a folder of images.
        every: take every ``every``-th frame (0, every, 2*every, ...).
        max_frames: stop after this many frames taken.
        scene_threshold: instead of ``every``: take the first frame and each frame whose
            :func:`scene_distance` from the frame before it exceeds this (one frame per scene).

    Raises:
        ConfigError: ``every`` or ``max_frames`` below 1, a negative ``scene_threshold``, or both
            ``every`` (above 1) and ``scene_threshold``.
        SourceError: the source does not exist or cannot be read (a camera or stream is refused: labelling
            reads a recording).
    """
    check_options(every=every, max_frames=max_frames)
    if scene_threshold is not None and scene_threshold < 0:
        raise ConfigError(f"scene_threshold={scene_threshold}: expected a distance >= 0 (grey levels, e.g. 30)")
    if scene_threshold is not None and every != 1:
        raise ConfigError(f"every={every} and scene_threshold={scene_threshold}: choose one way to sample")
    text, path = check_source(source)
    if path.is_dir():
        files = _folder_images(path)
        frames = ((i, f, cv2.imread(str(f), cv2.IMREAD_COLOR)) for i, f in enumerate(files))
    else:
        frames = ((i, None, im) for i, im in _video_frames(text))
    yield from _pick(frames, path.stem, every, max_frames, scene_threshold)


def check_source(source: str | Path, *, open_video: bool = False) -> tuple[str, Path]:
    """``(text, path)`` of a source labelling can read; SourceError for a live source, a missing path, a folder
    without images, or (``open_video``) a video that cannot be opened."""
    text = str(source).strip()
    if text.isdigit() or "://" in text:
        raise SourceError(f"{text}: labelling reads a video file, an image or a folder of images, not a live "
                          "source; record it first")
    path = Path(text).expanduser()
    if path.is_dir():
        if not _folder_images(path):
            raise SourceError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in folder {text}")
    elif open_video:
        open_source(text).close()  # SourceError: missing, not a file, cannot be decoded
    return text, path


def _video_frames(text: str) -> Iterator[tuple[int, NDArray[np.uint8]]]:
    src = open_source(text)  # SourceError: missing, not a file, cannot be decoded
    try:
        index = 0
        while (frame := src.read()) is not None:
            yield index, frame
            index += 1
    finally:
        src.close()


def _pick(frames, stem: str, every: int, max_frames: int | None,  # noqa: ANN001
          scene_threshold: float | None) -> Iterator[Sampled]:
    taken, previous = 0, None
    for index, file, image in frames:
        if image is None:
            raise SourceError(f"cannot read image {file}: not an image OpenCV can decode")
        if scene_threshold is None:
            keep = index % every == 0
        else:
            keep = previous is None or scene_distance(previous, image) > scene_threshold
            previous = image
        if not keep:
            continue
        name = file.stem if file is not None else f"{stem}_{index:06d}"
        yield Sampled(name, index, image, file)
        taken += 1
        if max_frames is not None and taken >= max_frames:
            return


def planned_frames(source: str | Path, *, every: int = 1, max_frames: int | None = None,
                   scene_threshold: float | None = None) -> int | None:
    """How many frames :func:`sample_frames` will give, for a progress bar: None when it is not known in
    advance (one per scene, or a video whose header gives no frame count)."""
    path = Path(str(source)).expanduser()
    if path.is_dir():
        count = len(_folder_images(path))
    elif path.is_file():
        capture = cv2.VideoCapture(str(path))
        count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) if capture.isOpened() else 0
        capture.release()
        count = count if count > 0 else (1 if path.suffix.lower() in IMAGE_SUFFIXES else 0)
    else:
        count = 0
    if scene_threshold is not None or count <= 0:
        return max_frames if scene_threshold is None and count > 0 else None
    count = -(-count // every)
    return min(count, max_frames) if max_frames is not None else count
