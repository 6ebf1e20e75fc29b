"""Settings every layer may read: the package version, the bundled model, and the process environment
rtseg runs best in (quiet native libraries, no package installs behind the user's back)."""

from __future__ import annotations

import os
from pathlib import Path

__version__ = "0.1.0"

ASSETS = Path(__file__).parent / "assets"
DEFAULT_MODEL = ASSETS / "yolo11n-seg-person-cat-dog.pt"  # see assets/MODEL_CARD.md
FULL_MODEL_HINT = ("the bundled model knows person, cat and dog only; for the 80 COCO classes pass "
                   "--model yolo26n-seg.pt (downloaded once when online)")


def quiet_environment() -> None:
    """Set (unless the user did) the variables that keep OpenCV, FFmpeg and Ultralytics from printing around
    rtseg's own one-line errors, and Ultralytics from pip-installing packages at run time. Call it before
    those libraries are imported; :mod:`rtseg` does, on import."""
    os.environ.setdefault("OPENCV_LOG_LEVEL", "OFF")
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
    os.environ.setdefault("YOLO_VERBOSE", "False")
    os.environ.setdefault("YOLO_AUTOINSTALL", "False")
