"""The sink protocol, a null sink, and the output-path check every file sink runs before any work starts."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from rtseg.errors import SinkError
from rtseg.types import Frame, FrameResult


class StopRequested(Exception):  # noqa: N818 - a signal, not an error
    """A sink asks the pipeline to stop (the user closed the window)."""


class Sink(Protocol):
    """Consumes results in frame order.

    Attributes:
        needs_image: the sink wants the annotated frame; when no sink does, drawing is skipped.
    """

    needs_image: bool

    def write(self, frame: Frame, annotated: NDArray[np.uint8] | None, result: FrameResult) -> None: ...

    def close(self) -> None: ...


class NullSink:
    """Discards everything (for benchmarks and tests)."""

    needs_image = False

    def write(self, frame: Frame, annotated: NDArray[np.uint8] | None, result: FrameResult) -> None:
        pass

    def close(self) -> None:
        pass


def ensure_folder(folder: Path) -> Path:
    """Create an output folder (and its parents) and check it is writable."""
    folder = Path(folder).expanduser()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SinkError(f"cannot create folder {folder}: {exc.strerror}") from None
    if not os.access(folder, os.W_OK):
        raise SinkError(f"cannot write into folder {folder}: permission denied")
    return folder


def check_writable(path: Path, *, what: str = "output") -> Path:
    """Fail early, before any model is loaded, when an output file cannot be created."""
    path = Path(path).expanduser()
    parent = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        raise SinkError(f"cannot write {what} {path}: it is a folder")
    if not parent.is_dir():
        raise SinkError(f"cannot write {what} {path}: folder {parent} does not exist")
    if not os.access(parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise SinkError(f"cannot write {what} {path}: permission denied")
    return path
