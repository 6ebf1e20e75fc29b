"""rtseg: real-time video instance segmentation (YOLO-seg) with a threaded, timed pipeline."""

from __future__ import annotations

from pathlib import Path

__version__ = "0.1.0"

ASSETS = Path(__file__).parent / "assets"
DEFAULT_MODEL = ASSETS / "yolo11n-seg-person-cat-dog.pt"  # see assets/MODEL_CARD.md
