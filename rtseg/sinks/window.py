"""A live window (``--show``). ``q`` or Esc closes it and stops the run."""

from __future__ import annotations

import os
import sys

import cv2
import numpy as np
from numpy.typing import NDArray

from rtseg.errors import SinkError
from rtseg.sinks.base import StopRequested
from rtseg.types import Frame, FrameResult


class WindowSink:
    """Shows annotated frames in an OpenCV window. Must be written to from the main thread."""

    needs_image = True

    def __init__(self, title: str = "rtseg") -> None:
        if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
            raise SinkError("show=True needs a display, and none is set (DISPLAY is empty); write out=... instead")
        self.title = title
        try:
            cv2.namedWindow(title, cv2.WINDOW_NORMAL)
        except cv2.error:
            raise SinkError("show=True needs OpenCV with GUI support: pip install opencv-python "
                            "(not opencv-python-headless)") from None

    def write(self, frame: Frame, annotated: NDArray[np.uint8] | None, result: FrameResult) -> None:
        cv2.imshow(self.title, annotated if annotated is not None else frame.image)
        key = cv2.waitKey(1) & 0xFF
        if key in (ord("q"), 27) or cv2.getWindowProperty(self.title, cv2.WND_PROP_VISIBLE) < 1:
            raise StopRequested

    def close(self) -> None:
        try:
            cv2.destroyWindow(self.title)
        except cv2.error:
            pass
