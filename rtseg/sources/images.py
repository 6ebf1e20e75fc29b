"""A sequence of still images read as frames (a folder, a glob, or one file)."""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np
from numpy.typing import NDArray

from rtseg.errors import SourceError

LOGGER = logging.getLogger(__name__)


class ImageSource:
    """Reads image files in order; unreadable files are skipped with a warning.

    Frames keep their own size; sinks that need one size (a video file) resize to the first frame's.

    Attributes:
        path: the file the last :meth:`read` frame came from (None before the first), so that records name
            the image and not only the folder or pattern the user typed.
    """

    live = False

    def __init__(self, name: str, files: list[Path], *, fps: float = 10.0) -> None:
        self.name = name
        self.fps = float(fps)
        self._files = list(files)
        self.frame_count: int | None = len(self._files)
        self._next = 0
        self.path: str | None = None
        self._skipped: list[tuple[Path, str]] = []

    def read(self) -> NDArray[np.uint8] | None:
        while self._next < len(self._files):
            path = self._files[self._next]
            self._next += 1
            image = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if image is not None:
                self._flush_skipped()
                self.path = str(path)
                return image
            self._skipped.append((path, _unreadable(path) or "not an image OpenCV can decode"))
        if self.path is None and self._skipped:  # not one image decoded: an error, not an empty run
            path, why = self._skipped[0]
            if len(self._files) == 1:
                raise SourceError(f"cannot read image {path}: {why}")
            raise SourceError(f"none of the {len(self._files)} images of {self.name} can be read (first: {path}: "
                              f"{why})")
        self._flush_skipped()
        return None

    def _flush_skipped(self) -> None:
        """Unreadable files are reported once a readable one shows the set is usable (else one error)."""
        for path, why in self._skipped:
            LOGGER.warning("skipping %s: %s", path, why)
        self._skipped.clear()

    def close(self) -> None:
        self._next = len(self._files)


def _unreadable(path: Path) -> str | None:
    """Why ``path`` cannot be read at all (OpenCV says only "no image"), or None when it can."""
    try:
        with open(path, "rb"):
            return None
    except OSError as exc:
        return exc.strerror or str(exc)
