"""The browser view's sink: hands each annotated frame of one source to its :class:`~rtseg.serve.hub.Channel`."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from rtseg.serve.hub import Channel
from rtseg.types import Frame, FrameResult


class ServeSink:
    """One source's frames into the browser view (made by :meth:`rtseg.serve.view.LiveView.sink`).

    :meth:`write` is O(1) whatever the number of viewers: it keeps a reference to the annotated frame
    (never copied, never encoded here) in place of the previous one. The pipeline times it as a stage of its
    own (``stage = "serve"``).

    Attributes:
        tag: the source's name in the view's URLs (``/stream/<tag>.mjpg``).
        channel: where the frames go.
    """

    needs_image = True
    stage = "serve"

    def __init__(self, channel: Channel) -> None:
        self.channel = channel
        self.tag = channel.tag

    def write(self, frame: Frame, annotated: NDArray[np.uint8] | None, result: FrameResult) -> None:
        """Publish the frame: ``annotated``, or the frame itself when nothing is drawn."""
        self.channel.publish(frame, frame.image if annotated is None else annotated, result)

    def close(self) -> None:
        """The source is done: its streams end; its last frame stays for snapshots."""
        self.channel.end()
