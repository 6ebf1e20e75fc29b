"""``--segment 10m``: a run of days writes a series of files (``out_000.mp4``, ``out_001.mp4``, ...) rather than
one that grows without end, so each finished part can be moved, played or deleted while the run goes on.

:class:`SegmentedSink` wraps any file sink: it opens a new one, under the next numbered name, once the
current part holds ``seconds`` of frames (by the frames' timestamps: stream time for a live source, video
time for a file), and closes (finalizes) the part it leaves.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from rtseg.errors import ConfigError
from rtseg.types import Frame, FrameResult

LOGGER = logging.getLogger(__name__)
_UNITS = {"": 1.0, "s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*(s|m|min|h)?\s*$", re.IGNORECASE)


def parse_duration(text: str | float | int, *, param: str = "segment") -> float:
    """``"10m"``, ``"90s"``, ``"1h"``, ``"45"`` (seconds) or a number -> seconds.

    Raises:
        ConfigError: not a duration, or not above one second.
    """
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        seconds = float(text)
    else:
        match = _DURATION.match(str(text))
        if not match:
            raise ConfigError(f"{param}={text}: expected a duration such as 90s, 10m or 1h")
        seconds = float(match.group(1)) * _UNITS[(match.group(2) or "").lower()]
    if not seconds >= 1.0:
        raise ConfigError(f"{param}={text}: expected at least 1 second")
    return seconds


def segment_path(path: Path, index: int) -> Path:
    """``out.mp4``, 3 -> ``out_003.mp4``."""
    return path.with_name(f"{path.stem}_{index:03d}{path.suffix}")


class SegmentedSink:
    """Writes through ``open_part(path)`` sinks, a new part every ``seconds`` of frames.

    Attributes:
        path: the name asked for; the parts are ``segment_path(path, 0)``, ``segment_path(path, 1)``, ...
        parts: the paths of the parts opened so far.
    """

    def __init__(self, path: Path, seconds: float, open_part: Callable[[Path], object]) -> None:
        self.path, self.seconds, self._open_part = Path(path), float(seconds), open_part
        self.parts: list[Path] = []
        self._sink: object | None = None
        self._start_s = 0.0
        probe = open_part(segment_path(self.path, 0))  # fails now, before any frame, when it cannot be written
        self.needs_image = bool(getattr(probe, "needs_image", True))
        self._sink = probe
        self.parts.append(segment_path(self.path, 0))
        self._fresh = True  # the open part has no frame yet: its clock starts at its first frame

    def write(self, frame: Frame, annotated: NDArray[np.uint8] | None, result: FrameResult) -> None:
        if self._fresh:
            self._start_s, self._fresh = frame.timestamp_s, False
        elif frame.timestamp_s - self._start_s >= self.seconds:
            self._rotate()
            self._start_s, self._fresh = frame.timestamp_s, False
        self._sink.write(frame, annotated, result)  # type: ignore[union-attr]

    def _rotate(self) -> None:
        sink, self._sink = self._sink, None
        sink.close()  # type: ignore[union-attr]
        path = segment_path(self.path, len(self.parts))
        self._sink = self._open_part(path)
        self.parts.append(path)
        LOGGER.info("next segment: %s", path)

    def close(self) -> None:
        sink, self._sink = self._sink, None
        if sink is not None:
            sink.close()  # type: ignore[attr-defined]
